use serde_json::json;

use super::*;

fn line(reply: &Reply) -> String {
    let bytes = reply.to_line();
    let text = String::from_utf8(bytes).expect("UTF-8");
    let body = text.strip_suffix('\n').expect("ends in a newline");
    assert!(!body.contains('\n'), "one line: {text}");
    body.to_owned()
}

#[test]
fn accepted() {
    assert_eq!(line(&Reply::accepted(None)), r#"{"ok":true}"#);
    assert_eq!(
        line(&Reply::accepted(Some(json!(4)))),
        r#"{"ok":true,"id":4}"#
    );
    let started = Reply::session_started(Some(json!("a")), "s-1");
    assert_eq!(line(&started), r#"{"ok":true,"id":"a","session_id":"s-1"}"#);
    let created = Reply::session_created(None, "s-2");
    assert_eq!(
        line(&created),
        r#"{"ok":true,"session_id":"s-2","created":true}"#
    );
}

#[test]
fn decisions() {
    let allow = Reply::decision(
        None,
        Decision::Allow,
        "within the envelope",
        Some("read-data".into()),
    );
    assert_eq!(
        line(&allow),
        r#"{"ok":true,"decision":"allow","reason":"within the envelope","rule":"read-data"}"#
    );
    let deny = Reply::decision(Some(json!(2)), Decision::Deny, "default deny", None);
    assert_eq!(
        line(&deny),
        r#"{"ok":true,"id":2,"decision":"deny","reason":"default deny","rule":null}"#
    );
}

#[test]
fn protocol_errors_carry_code_message_and_id() {
    let rejected = decode_with_id(br#"{"id":"x","type":"what"}"#).expect_err("refused");
    assert_eq!(
        line(&Reply::from(rejected)),
        r#"{"ok":false,"id":"x","error":{"code":"unknown_type","message":"unknown message type `what`; expected session.start, prompt, model.output, tool.start, tool.end, session.end, agent.register or status"}}"#
    );
    let too_large = ProtocolError::from(Oversize {
        len_seen: 9,
        limit: 8,
    });
    assert_eq!(
        line(&Reply::protocol_error(None, &too_large)),
        r#"{"ok":false,"error":{"code":"too_large","message":"request longer than 8 bytes"}}"#
    );
}

#[test]
fn server_errors() {
    let cases = [
        (
            Reply::unknown_call_id(Some(json!(1)), "c9"),
            r#"{"ok":false,"id":1,"error":{"code":"unknown_call_id","message":"unknown call_id `c9`: no open tool.start of this session declared it"}}"#,
        ),
        (
            Reply::duplicate_call_id(None, "c1"),
            r#"{"ok":false,"error":{"code":"duplicate_call_id","message":"call_id `c1` is already used in this session"}}"#,
        ),
        (
            Reply::agent_not_permitted(None),
            r#"{"ok":false,"error":{"code":"not_permitted","message":"not permitted: only root may name an agent"}}"#,
        ),
        (
            Reply::not_permitted(None, "this process belongs to no monitored agent"),
            r#"{"ok":false,"error":{"code":"not_permitted","message":"not permitted: this process belongs to no monitored agent"}}"#,
        ),
        (
            Reply::no_session(None),
            r#"{"ok":false,"error":{"code":"no_session","message":"no session is open on this connection; send session.start first"}}"#,
        ),
    ];
    for (reply, expected) in cases {
        assert!(!reply.is_ok());
        assert_eq!(line(&reply), expected);
    }
}

#[test]
fn peer_text_in_messages_is_escaped_and_cut() {
    let call_id = format!("a\"b\n{}", "z".repeat(300));
    let reply = Reply::unknown_call_id(None, &call_id);
    let text = line(&reply);
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let message = parsed["error"]["message"].as_str().expect("message");
    assert!(
        message.starts_with("unknown call_id `a\"b\nzz"),
        "{message}"
    );
    assert!(message.len() < 200, "{message}");
}

#[test]
fn error_codes_are_distinct() {
    let mut all: Vec<&str> = ProtocolError::CODES.into_iter().chain(code::ALL).collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "{all:?}");
}
