//! The gate against a fake monitor on a real Unix socket: what is
//! declared, what is relayed, and what the client is answered.

use std::{os::unix::net::UnixListener, sync::Arc, task::Poll, time::Duration};

use serde_json::{Value, json};

use super::{
    declarer::{Declarer, DeclarerOptions},
    fake_monitor::{FakeMonitor, SLOW},
    gate::{Admission, Gate, GateOptions},
    jsonrpc::{NOT_RELAYED, PARSE_ERROR, scan},
};

fn call(id: Value, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
        .to_string()
}

async fn admit(gate: &Gate, line: &str, pid: Option<u32>) -> Admission {
    gate.admit("", &scan(line.as_bytes()), pid).await
}

fn observe(gate: &Gate, line: &str) {
    gate.observe("", &scan(line.as_bytes()).unwrap().unwrap());
}

/// How many declared calls a relayed message carried; panics when it was
/// not relayed.
fn relayed(admission: Admission) -> usize {
    match admission {
        Admission::Relay(calls) => calls.len(),
        other => panic!("expected it relayed, got {other:?}"),
    }
}

fn denial_text(admission: &Admission) -> String {
    match admission {
        Admission::Answer(Some(answer)) => {
            assert_eq!(answer["result"]["isError"], true, "{answer}");
            answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        }
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[tokio::test]
async fn an_allowed_call_is_declared_bound_to_the_server_and_ended_by_its_response() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let admitted = admit(
        &gate,
        &call(json!(3), "read_file", json!({"path": "/etc/hostname"})),
        Some(77),
    )
    .await;
    assert_eq!(relayed(admitted), 1);
    assert_eq!(gate.open_calls(), 1);
    // Another id's response ends nothing.
    observe(&gate, r#"{"jsonrpc":"2.0","id":4,"result":{}}"#);
    observe(
        &gate,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"vm"}],"isError":false}}"#,
    );
    assert_eq!(gate.open_calls(), 0);

    let starts = monitor.sent(&gate, "tool.start");
    assert_eq!(starts.len(), 1);
    let start = &starts[0];
    assert_eq!(
        (
            &start["tool"],
            &start["args"],
            &start["source"],
            &start["mcp_request_id"],
            &start["pid"]
        ),
        (
            &json!("read_file"),
            &json!({"path": "/etc/hostname"}),
            &json!("mcp"),
            &json!("3"),
            &json!(77)
        )
    );
    let call_id = start["call_id"].as_str().unwrap();
    assert!(
        call_id.starts_with(&format!("mcp-{}-", std::process::id())),
        "{call_id}"
    );
    let ends = monitor.requests.lock().unwrap().clone();
    let end = ends.iter().find(|r| r["type"] == "tool.end").unwrap();
    assert_eq!(
        end,
        &json!({"type": "tool.end", "call_id": call_id, "status": "ok",
                "result": {"content": [{"type": "text", "text": "vm"}], "isError": false}})
    );
}

#[tokio::test]
async fn a_denied_call_is_answered_by_the_proxy_and_ended_as_denied() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let admitted = admit(&gate, &call(json!("x"), "forbidden", json!({})), Some(77)).await;
    assert_eq!(
        denial_text(&admitted),
        "agent-monitor denied this tool call: no, never"
    );
    let Admission::Answer(Some(answer)) = &admitted else {
        unreachable!()
    };
    assert_eq!(answer["id"], "x");
    assert_eq!(gate.open_calls(), 0);
    let ends = monitor.sent(&gate, "tool.end");
    assert_eq!(ends.len(), 1);
    assert_eq!(
        (&ends[0]["status"], &ends[0]["result"]),
        (&json!("error"), &json!({"denied": true}))
    );
}

#[tokio::test]
async fn observe_only_relays_a_denied_call_and_ends_it_by_its_response() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions {
        observe_only: true,
        ..GateOptions::default()
    });
    assert_eq!(
        relayed(admit(&gate, &call(json!(1), "forbidden", json!({})), None).await),
        1
    );
    observe(
        &gate,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}"#,
    );
    let ends = monitor.sent(&gate, "tool.end");
    assert_eq!(
        ends[0]["status"], "error",
        "isError ends the call as an error"
    );
}

#[tokio::test]
async fn errors_and_cancellations_end_calls_as_errors() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    for id in [1, 2, 3] {
        assert_eq!(
            relayed(admit(&gate, &call(json!(id), "t", json!({})), None).await),
            1
        );
    }
    observe(
        &gate,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: t"}}"#,
    );
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#;
    assert_eq!(
        relayed(admit(&gate, cancel, None).await),
        0,
        "a cancellation is relayed"
    );
    gate.end_all("the server exited before answering");
    let ends: Vec<(Value, Value)> = monitor
        .sent(&gate, "tool.end")
        .into_iter()
        .map(|e| (e["status"].clone(), e["result"].clone()))
        .collect();
    assert_eq!(
        ends,
        vec![
            (
                json!("error"),
                json!({"code": -32602, "message": "Unknown tool: t"})
            ),
            (json!("error"), json!({"cancelled": true})),
            (
                json!("error"),
                json!({"unanswered": "the server exited before answering"})
            ),
        ]
    );
}

#[tokio::test]
async fn a_batch_with_a_denied_call_is_not_relayed_and_every_request_in_it_is_answered() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let batch = format!(
        "[{},{},{},{{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}},{}]",
        call(json!(1), "fine", json!({})),
        call(json!(2), "forbidden", json!({})),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
        call(json!(4), "never_declared", json!({})),
    );
    let Admission::Answer(Some(Value::Array(answers))) = admit(&gate, &batch, None).await else {
        panic!("the proxy answers the batch")
    };
    let ids: Vec<&Value> = answers.iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2), &json!(3), &json!(4)]);
    assert_eq!(answers[0]["error"]["code"], NOT_RELAYED);
    assert_eq!(answers[1]["result"]["isError"], true);
    assert_eq!(answers[2]["error"]["code"], NOT_RELAYED);
    assert_eq!(gate.open_calls(), 0);
    let starts = monitor.sent(&gate, "tool.start");
    let tools: Vec<&Value> = starts.iter().map(|s| &s["tool"]).collect();
    assert_eq!(
        tools,
        [&json!("fine"), &json!("forbidden")],
        "calls after the refusal are not declared"
    );
    let ends = monitor.requests.lock().unwrap().clone();
    let results: Vec<&Value> = ends
        .iter()
        .filter(|r| r["type"] == "tool.end")
        .map(|e| &e["result"])
        .collect();
    assert_eq!(
        results,
        [
            &json!({"denied": true}),
            &json!({"not_relayed": "another call in its batch was refused"})
        ]
    );
}

#[tokio::test]
async fn a_batch_of_allowed_calls_is_relayed_and_each_is_ended_by_its_response() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let batch = format!(
        "[{},{}]",
        call(json!(1), "a", json!({})),
        call(json!(2), "b", json!({}))
    );
    assert_eq!(relayed(admit(&gate, &batch, None).await), 2);
    observe(
        &gate,
        r#"[{"jsonrpc":"2.0","id":2,"result":{}},{"jsonrpc":"2.0","id":1,"result":{"isError":true}}]"#,
    );
    let statuses: Vec<Value> = monitor
        .sent(&gate, "tool.end")
        .into_iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("ok"), json!("error")]);
}

#[tokio::test]
async fn an_invalid_tools_call_gets_invalid_params_and_is_not_declared() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let line = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"x","arguments":"rm -rf /"}}"#;
    let Admission::Answer(Some(answer)) = admit(&gate, line, None).await else {
        panic!("answered")
    };
    assert_eq!(answer["error"]["code"], -32602);
    assert_eq!(
        admit(
            &gate,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
            None
        )
        .await,
        Admission::Answer(None),
        "without an id there is nothing to answer"
    );
    assert!(monitor.sent(&gate, "tool.start").is_empty());
}

#[tokio::test]
async fn a_call_the_monitor_refuses_is_not_relayed() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let text = denial_text(&admit(&gate, &call(json!(1), "refused", json!({})), None).await);
    assert!(
        text.contains("the monitor refused to declare it (bad_field: field `args`: too odd)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_server_pid_the_monitor_will_not_bind_is_left_out() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    assert_eq!(
        relayed(admit(&gate, &call(json!(1), "a", json!({})), Some(4242)).await),
        1
    );
    assert_eq!(
        relayed(admit(&gate, &call(json!(2), "b", json!({})), Some(4242)).await),
        1
    );
    let starts = monitor.sent(&gate, "tool.start");
    let pids: Vec<&Value> = starts.iter().map(|s| &s["pid"]).collect();
    // Asked once with the pid; then without it.
    assert_eq!(pids, [&json!(4242), &Value::Null, &Value::Null]);
}

#[tokio::test]
async fn without_a_monitor_calls_are_refused_unless_unmonitored_relaying_is_allowed() {
    let strict = Gate::new(Arc::new(Declarer::unmonitored()), GateOptions::default());
    let text = denial_text(&admit(&strict, &call(json!(1), "a", json!({})), None).await);
    assert!(text.contains("the monitor cannot be reached"), "{text}");
    assert!(text.contains("--allow-unmonitored"), "{text}");
    for options in [
        GateOptions {
            allow_unmonitored: true,
            ..GateOptions::default()
        },
        GateOptions {
            observe_only: true,
            ..GateOptions::default()
        },
    ] {
        let lenient = Gate::new(Arc::new(Declarer::unmonitored()), options);
        assert_eq!(
            relayed(admit(&lenient, &call(json!(1), "a", json!({})), None).await),
            0
        );
        assert_eq!(lenient.open_calls(), 0, "nothing declared, nothing to end");
    }
}

#[tokio::test]
async fn a_monitor_that_went_away_fails_closed_and_one_that_came_back_is_used_again() {
    // The monitor hangs up after the first request on each connection.
    let monitor = FakeMonitor::start(Some(1));
    let gate = monitor.gate(GateOptions::default());
    assert_eq!(
        relayed(admit(&gate, &call(json!(1), "a", json!({})), None).await),
        1
    );
    // The lost connection is noticed on the next call, which gets a fresh one.
    assert_eq!(
        relayed(admit(&gate, &call(json!(2), "b", json!({})), None).await),
        1
    );
    let starts = monitor.sent(&gate, "tool.start");
    assert_eq!(starts.len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let gone = dir.path().join("gone.sock");
    let listener = UnixListener::bind(&gone).unwrap();
    let declarer = Declarer::connect(DeclarerOptions {
        socket: Some(gone.clone()),
        agent: None,
    })
    .unwrap();
    drop(listener);
    std::fs::remove_file(&gone).unwrap();
    let gate = Gate::new(Arc::new(declarer), GateOptions::default());
    let text = denial_text(&admit(&gate, &call(json!(1), "a", json!({})), None).await);
    assert!(text.contains("the monitor cannot be reached"), "{text}");
}

#[tokio::test]
async fn what_is_not_json_is_refused_with_a_parse_error_and_nothing_is_declared() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    // Python's parsers take NaN: the server would run this call.
    let nan = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"x":NaN}}}"#;
    for line in [nan, "not json at all\r\n"] {
        let Admission::NotJson(answer) = admit(&gate, line, None).await else {
            panic!("{line} is refused")
        };
        assert_eq!(answer["id"], Value::Null);
        assert_eq!(answer["error"]["code"], PARSE_ERROR);
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("Parse error: expected "), "{message}");
    }
    // Blank lines and JSON scalars hold no message: they are relayed.
    for line in ["\r\n", "", "42"] {
        assert_eq!(relayed(admit(&gate, line, None).await), 0, "{line:?}");
    }
    assert!(monitor.sent(&gate, "tool.start").is_empty());
}

#[tokio::test]
async fn what_is_not_json_is_relayed_when_the_proxy_declares_nothing_anyway() {
    let nan = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"w","arguments":{"x":NaN}}}"#;
    let monitor = FakeMonitor::start(None);
    let observing = monitor.gate(GateOptions {
        observe_only: true,
        ..GateOptions::default()
    });
    assert_eq!(relayed(admit(&observing, nan, None).await), 0);
    let unmonitored = Gate::new(
        Arc::new(Declarer::unmonitored()),
        GateOptions {
            allow_unmonitored: true,
            ..GateOptions::default()
        },
    );
    assert_eq!(relayed(admit(&unmonitored, nan, None).await), 0);
    assert!(monitor.sent(&observing, "tool.start").is_empty());
}

/// Polls `admit` for `line` once, waits `wait`, then drops it, as hyper
/// drops a request's future when its client goes away.
async fn give_up(gate: &Gate, line: &str, wait: Duration) {
    let mut admitting = std::pin::pin!(admit(gate, line, None));
    let first = std::future::poll_fn(|cx| Poll::Ready(admitting.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "the monitor takes its time with `slow`");
    tokio::time::sleep(wait).await;
}

#[tokio::test]
async fn a_call_given_up_on_while_it_is_declared_is_ended() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    // Given up before the monitor's reply, and after it came unread.
    give_up(&gate, &call(json!(9), "slow", json!({})), Duration::ZERO).await;
    give_up(&gate, &call(json!(10), "slow", json!({})), SLOW * 3).await;
    assert_eq!(gate.open_calls(), 0);
    let starts = monitor.sent(&gate, "tool.start");
    assert_eq!(starts.len(), 2);
    let requests = monitor.requests.lock().unwrap().clone();
    let ends: Vec<&Value> = requests
        .iter()
        .filter(|r| r["type"] == "tool.end")
        .collect();
    let gave_up = |start: &Value| {
        json!({"type": "tool.end", "call_id": start["call_id"], "status": "error",
               "result": {"unanswered": "the proxy stopped handling the request before relaying it"}})
    };
    assert_eq!(ends, [&gave_up(&starts[0]), &gave_up(&starts[1])]);
}

#[tokio::test]
async fn abandoning_ends_only_the_call_that_was_relayed_under_the_id() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    let Admission::Relay(first) = admit(&gate, &call(json!(1), "a", json!({})), None).await else {
        panic!("relayed")
    };
    observe(&gate, r#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
    let Admission::Relay(second) = admit(&gate, &call(json!(1), "b", json!({})), None).await else {
        panic!("relayed")
    };
    assert_ne!(first, second);
    let result = json!({"http_status": 404});
    gate.abandon("", &first, &result);
    assert_eq!(gate.open_calls(), 1, "the later call under id 1 stays open");
    gate.abandon("other scope", &second, &result);
    assert_eq!(gate.open_calls(), 1, "scopes are apart");
    gate.abandon("", &second, &result);
    assert_eq!(gate.open_calls(), 0);
    let ends: Vec<(Value, Value)> = monitor
        .sent(&gate, "tool.end")
        .into_iter()
        .map(|e| (e["call_id"].clone(), e["result"].clone()))
        .collect();
    assert_eq!(
        ends,
        [
            (json!(first[0].call_id), json!({})),
            (json!(second[0].call_id), result)
        ]
    );
}
