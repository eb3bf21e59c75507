use serde_json::{Value, json};

use super::jsonrpc::{
    INVALID_PARAMS, Message, NotJson, PARSE_ERROR, RequestId, Scan, ToolCall, denial,
    error_response, parse_error, scan,
};
use crate::declare::Status;

fn id(value: Value) -> RequestId {
    RequestId::from_value(&value).expect("a string or number id")
}

fn one(line: &str) -> Message {
    let scan = scan(line.as_bytes()).expect("JSON").expect("a message");
    assert!(!scan.batch, "{line}");
    assert_eq!(scan.messages.len(), 1);
    scan.messages.into_iter().next().unwrap()
}

#[test]
fn a_tools_call_yields_its_id_name_and_arguments() {
    let message = one(
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"/etc/hostname"},"_meta":{"progressToken":1}}}"#,
    );
    assert_eq!(
        message,
        Message::ToolCall(ToolCall {
            id: id(json!(7)),
            name: "read_file".into(),
            arguments: json!({"path": "/etc/hostname"})
                .as_object()
                .unwrap()
                .clone(),
        })
    );
}

#[test]
fn absent_or_null_arguments_are_an_empty_object_and_string_ids_are_kept() {
    for params in [r#"{"name":"now"}"#, r#"{"name":"now","arguments":null}"#] {
        let line =
            format!(r#"{{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{params}}}"#);
        let Message::ToolCall(call) = one(&line) else {
            panic!("{line}")
        };
        assert!(call.arguments.is_empty());
        assert_eq!(call.id.value(), &json!("a-1"));
    }
}

#[test]
fn ids_compare_by_their_json_text() {
    assert_eq!(id(json!(1)), id(json!(1)));
    assert_ne!(id(json!(1)), id(json!("1")));
    assert_eq!(id(json!("x")).to_string(), "\"x\"");
    for bad in [json!(null), json!(true), json!([1]), json!({"a": 1})] {
        assert!(RequestId::from_value(&bad).is_none(), "{bad}");
    }
}

#[test]
fn a_tools_call_no_server_could_run_says_why() {
    let cases = [
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1,2]}}"#,
            Some(json!(1)),
            "params.arguments is not an object",
        ),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}"#,
            Some(json!(2)),
            "params.name is not a non-empty string",
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":""}}"#,
            Some(json!(3)),
            "params.name is not a non-empty string",
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call"}"#,
            Some(json!(4)),
            "its params are not an object",
        ),
        (
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
            None,
            "it has no id: a tools/call must be a request",
        ),
        (
            r#"{"jsonrpc":"2.0","id":{"k":1},"method":"tools/call","params":{"name":"x"}}"#,
            None,
            "its id is neither a string nor a number",
        ),
    ];
    for (line, want_id, want_problem) in cases {
        match one(line) {
            Message::BadToolCall { id, problem } => {
                assert_eq!(id.map(|i| i.value().clone()), want_id, "{line}");
                assert_eq!(problem, want_problem, "{line}");
            }
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn responses_end_ok_or_error() {
    let ok = one(
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"vm"}],"isError":false}}"#,
    );
    assert_eq!(
        ok,
        Message::Response {
            id: id(json!(7)),
            status: Status::Ok,
            result: json!({"content":[{"type":"text","text":"vm"}],"isError":false}),
        }
    );
    let tool_error = one(r#"{"jsonrpc":"2.0","id":8,"result":{"content":[],"isError":true}}"#);
    assert!(matches!(
        tool_error,
        Message::Response {
            status: Status::Error,
            ..
        }
    ));
    let protocol_error =
        one(r#"{"jsonrpc":"2.0","id":"s","error":{"code":-32602,"message":"Unknown tool"}}"#);
    assert_eq!(
        protocol_error,
        Message::Response {
            id: id(json!("s")),
            status: Status::Error,
            result: json!({"code": -32602, "message": "Unknown tool"}),
        }
    );
    // A result that is not an object still ends the call, as ok.
    assert!(matches!(
        one(r#"{"jsonrpc":"2.0","id":9,"result":"done"}"#),
        Message::Response {
            status: Status::Ok,
            ..
        }
    ));
}

#[test]
fn cancellations_name_the_request() {
    assert_eq!(
        one(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}"#
        ),
        Message::Cancelled {
            request_id: id(json!(7))
        }
    );
    // Without a usable request id it is just another notification.
    assert_eq!(
        one(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{}}"#),
        Message::Other { request_id: None }
    );
}

#[test]
fn other_requests_keep_their_id_and_notifications_have_none() {
    assert_eq!(
        one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        Message::Other {
            request_id: Some(id(json!(1)))
        }
    );
    assert_eq!(
        one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        Message::Other { request_id: None }
    );
    assert_eq!(
        one(r#"{"hello":"world"}"#),
        Message::Other { request_id: None }
    );
}

#[test]
fn a_batch_is_read_element_by_element() {
    let scanned = scan(
        br#" [ {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
              {"jsonrpc":"2.0","method":"notifications/progress"}, 5,
              {"jsonrpc":"2.0","id":2,"result":{}} ] "#,
    )
    .expect("JSON")
    .expect("a batch");
    assert!(scanned.batch);
    assert!(scanned.has_tool_calls());
    assert_eq!(scanned.messages.len(), 4);
    assert!(matches!(&scanned.messages[0], Message::ToolCall(c) if c.name == "a"));
    assert_eq!(scanned.messages[2], Message::Other { request_id: None });
    assert!(matches!(&scanned.messages[3], Message::Response { .. }));
    assert_eq!(
        scan(b"[]"),
        Ok(Some(Scan {
            batch: true,
            messages: vec![]
        }))
    );
}

#[test]
fn whitespace_and_json_that_is_no_object_or_array_hold_no_message() {
    for line in [&b"\"a string\""[..], b"42\r\n", b"null", b"", b" \t\r\n"] {
        assert_eq!(scan(line), Ok(None), "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn what_serde_json_cannot_read_is_not_json_and_says_why() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: [(&[u8], &str); 10] = [
        (b"not json\n", "expected ident"),
        (b"{\"jsonrpc\":\"2.0\",\"id\":1,", "EOF while parsing"),
        (b"\xff\xfe{}", "expected value"),
        (b"{} {}", "trailing characters"),
        // What Python's parsers take (the MCP SDK's among them).
        (b"{\"x\":NaN}", "expected value"),
        (b"{\"x\":-Infinity}", "invalid number"),
        (b"{\"x\":1e400}", "number out of range"),
        (deep.as_bytes(), "recursion limit exceeded"),
        (b"{\"x\":\"\\ud800\"}", "hex escape"),
        // Python's text files split lines at a lone CR too.
        (
            b"{\"method\":\"ping\"}\r{\"method\":\"tools/call\"}\n",
            "trailing characters",
        ),
    ];
    for (line, why) in cases {
        match scan(line) {
            Err(NotJson(got)) => assert!(
                got.contains(why),
                "{got}: {}",
                String::from_utf8_lossy(line)
            ),
            other => panic!("{}: {other:?}", String::from_utf8_lossy(line)),
        }
    }
    // A form feed is no JSON whitespace.
    assert!(scan(b"\x0c").is_err());
}

#[test]
fn line_endings_and_whitespace_around_a_message_do_not_matter() {
    let Ok(Some(scanned)) = scan(b" \t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}  \r\n")
    else {
        panic!("JSON with whitespace around it");
    };
    assert_eq!(
        scanned.messages,
        vec![Message::Other {
            request_id: Some(id(json!(1)))
        }]
    );
    assert!(!scanned.has_tool_calls());
}

#[test]
fn answers_are_json_rpc_responses_for_the_same_id() {
    assert_eq!(
        denial(&id(json!("c-9")), "the policy says no (rule deny.x)"),
        json!({
            "jsonrpc": "2.0",
            "id": "c-9",
            "result": {
                "content": [{"type": "text", "text": "agent-monitor denied this tool call: the policy says no (rule deny.x)"}],
                "isError": true,
                "resultType": "complete",
            },
        })
    );
    assert_eq!(
        error_response(&id(json!(3)), INVALID_PARAMS, "bad"),
        json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32602, "message": "bad"}})
    );
    assert_eq!(
        parse_error(&NotJson("expected value at line 1 column 2".into())),
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": PARSE_ERROR,
            "message": "Parse error: expected value at line 1 column 2 (agent-monitor relays only messages it can read)"}})
    );
    assert_eq!(PARSE_ERROR, -32700);
}
