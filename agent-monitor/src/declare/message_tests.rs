//! Accepted lines: every message type, minimal and full, and the rules
//! shared by all fields.

use serde_json::{Map, Value, json};

use super::*;

fn ok(line: &str) -> Envelope {
    decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line} was refused: {e}"))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn session_start_minimal_and_full() {
    let e = ok(r#"{"type":"session.start"}"#);
    assert_eq!(
        e,
        Envelope::bare(Request::SessionStart(SessionStart::default()))
    );
    let e = ok(
        r#"{"type":"session.start","session_id":"s-1","task":"tidy /tmp","user":"ana","parent_session_id":"s-0","id":7,"agent":"coder"}"#,
    );
    assert_eq!(e.id, Some(json!(7)));
    assert_eq!(e.agent.as_deref(), Some("coder"));
    let expected = SessionStart {
        session_id: Some("s-1".into()),
        task: Some("tidy /tmp".into()),
        user: Some("ana".into()),
        parent_session_id: Some("s-0".into()),
    };
    assert_eq!(e.request, Request::SessionStart(expected));
}

#[test]
fn prompt() {
    let e = ok(r#"{"type":"prompt","text":""}"#);
    assert_eq!(
        e.request,
        Request::Prompt {
            text: "".into(),
            at: None
        }
    );
    let e = ok(r#"{"id":"p1","type":"prompt","text":"list the files ☃"}"#);
    assert_eq!(e.id, Some(json!("p1")));
    let text = "list the files ☃".to_owned();
    assert_eq!(e.request, Request::Prompt { text, at: None });
}

#[test]
fn model_output_minimal_and_full() {
    let e = ok(r#"{"type":"model.output","text":"done"}"#);
    let expected = ModelOutput {
        text: "done".into(),
        tool_calls: vec![],
        at: None,
    };
    assert_eq!(e.request, Request::ModelOutput(expected));
    let e = ok(
        r#"{"type":"model.output","text":"reading","tool_calls":["c0",{"call_id":"c1","tool":"read_file","args":{"path":"/srv/a"}},{"call_id":"c2"}]}"#,
    );
    let Request::ModelOutput(output) = e.request else {
        panic!("{e:?}")
    };
    let calls = output.tool_calls;
    assert_eq!(calls.len(), 3);
    assert_eq!((calls[0].call_id.as_str(), &calls[0].tool), ("c0", &None));
    assert_eq!(calls[1].tool.as_deref(), Some("read_file"));
    assert_eq!(calls[1].args, Some(object(json!({"path": "/srv/a"}))));
    assert_eq!((calls[2].call_id.as_str(), &calls[2].args), ("c2", &None));
}

#[test]
fn tool_start_minimal_and_full() {
    let e = ok(r#"{"type":"tool.start","call_id":"c1","tool":"ls","args":{}}"#);
    let expected = ToolStart {
        call_id: "c1".into(),
        tool: "ls".into(),
        args: Map::new(),
        ..ToolStart::default()
    };
    assert_eq!(e.request, Request::ToolStart(expected));
    let e = ok(
        r#"{"type":"tool.start","call_id":"c2","tool":"fetch","args":{"n":[1,{"x":null}]},
        "effects":{"file.read":["/srv/data/**"],"file.write":["/tmp/out.txt"],"file.create":[],
        "file.delete":["/tmp/*.bak"],"exec":["/usr/bin/ls"],"net.connect":["127.0.0.1:8080","example.com:443"],
        "net.bind":["0.0.0.0:9000"],"dns":["example.com"]}}"#,
    );
    let Request::ToolStart(start) = e.request else {
        panic!("{e:?}")
    };
    assert_eq!(start.args, object(json!({"n": [1, {"x": null}]})));
    let effects = start.effects.expect("effects");
    assert_eq!(effects.len(), 8, "every kind is recognised");
    assert_eq!(effects[&EffectKind::FileRead], ["/srv/data/**"]);
    assert!(effects[&EffectKind::FileCreate].is_empty());
    let connect = &effects[&EffectKind::NetConnect];
    assert_eq!(connect, &["127.0.0.1:8080", "example.com:443"]);
    assert_eq!(effects[&EffectKind::Dns], ["example.com"]);
}

#[test]
fn tool_end_minimal_and_full() {
    let e = ok(r#"{"type":"tool.end","call_id":"c1","status":"ok"}"#);
    let expected = ToolEnd {
        call_id: "c1".into(),
        status: Status::Ok,
        result: None,
        at: None,
    };
    assert_eq!(e.request, Request::ToolEnd(expected));
    let e = ok(r#"{"type":"tool.end","call_id":"c1","status":"error","result":{"stderr":"no"}}"#);
    let expected = ToolEnd {
        call_id: "c1".into(),
        status: Status::Error,
        result: Some(json!({"stderr": "no"})),
        at: None,
    };
    assert_eq!(e.request, Request::ToolEnd(expected));
}

#[test]
fn session_end() {
    let e = ok(r#"{"type":"session.end","id":1.5}"#);
    assert_eq!(e.request, Request::SessionEnd);
    assert_eq!(e.id, Some(json!(1.5)));
}

#[test]
fn unknown_fields_and_nulls_are_ignored() {
    let e =
        ok(r#"{"type":"prompt","text":"hi","future":{"a":1},"call_id":5,"agent":null,"id":null}"#);
    assert_eq!(
        e,
        Envelope::bare(Request::Prompt {
            text: "hi".into(),
            at: None
        })
    );
    let e = ok(r#"{"type":"tool.start","call_id":"c","tool":"t","args":{},"effects":null}"#);
    let Request::ToolStart(start) = e.request else {
        panic!("{e:?}")
    };
    assert_eq!(start.effects, None);
}

#[test]
fn serialised_requests_decode_to_themselves() {
    let mut effects = Effects::new();
    effects.insert(EffectKind::NetBind, vec!["127.0.0.1:0".into()]);
    let requests = [
        Request::SessionStart(SessionStart {
            session_id: Some("s".into()),
            ..SessionStart::default()
        }),
        Request::Prompt {
            text: "p".into(),
            at: Some(1_700_000_000_000_000_000),
        },
        Request::ModelOutput(ModelOutput {
            text: "m".into(),
            tool_calls: vec![PlannedCall {
                call_id: "c".into(),
                tool: Some("t".into()),
                args: None,
            }],
            at: None,
        }),
        Request::ToolStart(ToolStart {
            call_id: "c".into(),
            tool: "t".into(),
            args: object(json!({"a": 1})),
            effects: Some(effects),
            pid: Some(4242),
            source: Source::Mcp,
            links: Links {
                tool_use_id: Some("toolu_01".into()),
                mcp_request_id: Some("7".into()),
                otel_span_id: Some("00f067aa0ba902b7".into()),
            },
            detached: true,
            at: Some(1_700_000_000_000_000_001),
        }),
        Request::ToolEnd(ToolEnd {
            call_id: "c".into(),
            status: Status::Error,
            result: Some(json!("boom")),
            at: Some(1_700_000_000_000_000_002),
        }),
        Request::SessionEnd,
    ];
    for request in requests {
        let envelope = Envelope {
            id: Some(json!("r")),
            agent: Some("a".into()),
            request,
        };
        let line = serde_json::to_vec(&envelope).expect("serialise");
        let text = String::from_utf8_lossy(&line);
        assert!(
            text.contains(&format!(r#""type":"{}""#, envelope.request.type_name())),
            "{text}"
        );
        assert_eq!(decode(&line), Ok(envelope), "{text}");
    }
}

#[test]
fn tool_start_adapter_fields() {
    let e = ok(
        r#"{"type":"tool.start","call_id":"c1","tool":"read_file","args":{},"pid":4242,"source":"mcp",
        "tool_use_id":"toolu_01","mcp_request_id":7,"otel_span_id":"00f067aa0ba902b7","detached":true,"at":1700000000000000000}"#,
    );
    let Request::ToolStart(start) = e.request else {
        panic!("{e:?}")
    };
    assert_eq!(start.pid, Some(4242));
    assert_eq!(start.source, Source::Mcp);
    assert_eq!(start.links.tool_use_id.as_deref(), Some("toolu_01"));
    assert_eq!(start.links.mcp_request_id.as_deref(), Some("7"));
    assert_eq!(
        start.links.otel_span_id.as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert!(start.detached);
    assert_eq!(start.at, Some(1_700_000_000_000_000_000));
    // A string id keeps its quotes apart from a number's: "7" is not 7.
    let e = ok(r#"{"type":"tool.start","call_id":"c1","tool":"t","args":{},"mcp_request_id":"7"}"#);
    let Request::ToolStart(start) = e.request else {
        panic!("{e:?}")
    };
    assert_eq!(start.links.mcp_request_id.as_deref(), Some("7"));
    assert_eq!(start.source, Source::Api, "the default source");
}

#[test]
fn adapter_fields_are_checked() {
    let refused = |line: &str| decode(line.as_bytes()).expect_err(line).to_string();
    let base = r#""type":"tool.start","call_id":"c1","tool":"t","args":{}"#;
    for (extra, expected) in [
        (r#""source":"cli""#, "source"),
        (r#""pid":0"#, "pid"),
        (r#""pid":"1""#, "pid"),
        (r#""detached":"yes""#, "detached"),
        (r#""at":-1"#, "at"),
        (r#""at":1.5"#, "at"),
        (r#""mcp_request_id":[1]"#, "mcp_request_id"),
        (r#""tool_use_id":"""#, "tool_use_id"),
    ] {
        let message = refused(&format!("{{{base},{extra}}}"));
        assert!(message.contains(expected), "{extra}: {message}");
    }
}
