//! The gate against a fake monitor on a real Unix socket: what is
//! declared, what is relayed, and what the client is answered.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixListener,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};

use super::{
    declarer::{Declarer, DeclarerOptions},
    gate::{Admission, Gate, GateOptions},
    jsonrpc::{NOT_RELAYED, scan},
};

/// A monitor that allows every tool but `forbidden`, refuses `refused`,
/// will not bind pid 4242, and records every request. It hangs up after
/// `hang_up_after` requests on a connection, when set.
struct FakeMonitor {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeMonitor {
    fn start(hang_up_after: Option<usize>) -> FakeMonitor {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let reader = BufReader::new(stream.try_clone().unwrap());
                for (n, line) in reader.lines().enumerate() {
                    let Ok(line) = line else { break };
                    if hang_up_after == Some(n) {
                        break;
                    }
                    let request: Value = serde_json::from_str(&line).unwrap();
                    let reply = answer(&request);
                    seen.lock().unwrap().push(request);
                    let _ = stream.write_all(format!("{reply}\n").as_bytes());
                }
            }
        });
        FakeMonitor {
            _dir: dir,
            socket,
            requests,
        }
    }

    fn gate(&self, options: GateOptions) -> Gate {
        let declarer = Declarer::connect(DeclarerOptions {
            socket: Some(self.socket.clone()),
            agent: None,
        })
        .expect("the fake monitor answers");
        Gate::new(Arc::new(declarer), options)
    }

    /// The requests of `type`, once the gate's declarer has finished.
    fn sent(&self, gate: &Gate, kind: &str) -> Vec<Value> {
        gate.declarer().finish();
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == kind)
            .cloned()
            .collect()
    }
}

fn answer(request: &Value) -> Value {
    match (request["type"].as_str(), request["tool"].as_str()) {
        (Some("tool.start"), _) if request["pid"] == 4242 => json!({
            "ok": false,
            "error": {"code": "not_bound", "message": "pid 4242 is not a live process of agent `a`"},
        }),
        (Some("tool.start"), Some("forbidden")) => json!({
            "ok": true, "decision": "deny", "reason": "no, never", "rule": "deny.forbidden",
        }),
        (Some("tool.start"), Some("refused")) => json!({
            "ok": false, "error": {"code": "bad_field", "message": "field `args`: too odd"},
        }),
        (Some("tool.start"), _) => {
            json!({"ok": true, "decision": "allow", "reason": "fine", "rule": "infer"})
        }
        _ => json!({"ok": true}),
    }
}

fn call(id: Value, tool: &str, args: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
        .to_string()
}

async fn admit(gate: &Gate, line: &str, pid: Option<u32>) -> Admission {
    gate.admit("", scan(line.as_bytes()).as_ref(), pid).await
}

fn observe(gate: &Gate, line: &str) {
    gate.observe("", &scan(line.as_bytes()).unwrap());
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
    assert_eq!(admitted, Admission::Relay);
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
            &json!(3),
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
        admit(&gate, &call(json!(1), "forbidden", json!({})), None).await,
        Admission::Relay
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
            admit(&gate, &call(json!(id), "t", json!({})), None).await,
            Admission::Relay
        );
    }
    observe(
        &gate,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool: t"}}"#,
    );
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#;
    assert_eq!(
        admit(&gate, cancel, None).await,
        Admission::Relay,
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
    assert_eq!(admit(&gate, &batch, None).await, Admission::Relay);
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
        admit(&gate, &call(json!(1), "a", json!({})), Some(4242)).await,
        Admission::Relay
    );
    assert_eq!(
        admit(&gate, &call(json!(2), "b", json!({})), Some(4242)).await,
        Admission::Relay
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
            admit(&lenient, &call(json!(1), "a", json!({})), None).await,
            Admission::Relay
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
        admit(&gate, &call(json!(1), "a", json!({})), None).await,
        Admission::Relay
    );
    // The lost connection is noticed on the next call, which gets a fresh one.
    assert_eq!(
        admit(&gate, &call(json!(2), "b", json!({})), None).await,
        Admission::Relay
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
async fn what_is_not_json_is_relayed_and_nothing_is_declared() {
    let monitor = FakeMonitor::start(None);
    let gate = monitor.gate(GateOptions::default());
    assert_eq!(gate.admit("", None, None).await, Admission::Relay);
    assert!(monitor.sent(&gate, "tool.start").is_empty());
}
