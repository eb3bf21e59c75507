//! Refused lines: each error code, its exact message, and the field it
//! names.

use serde_json::json;

use super::*;

fn ok(line: &str) -> Envelope {
    decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line} was refused: {e}"))
}

fn bad(line: &str) -> ProtocolError {
    match decode(line.as_bytes()) {
        Ok(envelope) => panic!("{line} was accepted: {envelope:?}"),
        Err(error) => error,
    }
}

/// The code and message of the error for `line`.
fn refusal(line: &str) -> (&'static str, String) {
    let error = bad(line);
    (error.code(), error.to_string())
}

#[test]
fn every_error_code_with_its_message() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "{\"type\":",
            "bad_json",
            "not valid JSON: EOF while parsing a value at line 1 column 8",
        ),
        ("[1,2]", "not_object", "a request must be a JSON object"),
        (
            r#"{"type":"tool.begin"}"#,
            "unknown_type",
            "unknown message type `tool.begin`; expected session.start, prompt, model.output, tool.start, tool.end, session.end, agent.register or status",
        ),
        (
            r#"{"type":"prompt"}"#,
            "missing_field",
            "missing field `text`",
        ),
        (
            r#"{"type":"tool.start","call_id":"c","tool":"t","args":[]}"#,
            "bad_field",
            "field `args`: must be a JSON object",
        ),
        (
            "",
            "bad_json",
            "not valid JSON: EOF while parsing a value at line 1 column 0",
        ),
    ];
    for (line, code, message) in cases {
        assert_eq!(refusal(line), (code, message.to_owned()), "{line}");
    }
    let oversize = ProtocolError::from(Oversize {
        len_seen: 2_000_000,
        limit: MAX_LINE,
    });
    assert_eq!(oversize.code(), "too_large");
    assert_eq!(oversize.to_string(), "request longer than 1048576 bytes");
    assert_eq!(ProtocolError::CODES.len(), 6);
}

#[test]
fn field_errors_name_the_field() {
    let cases = [
        (r#"{}"#, "missing field `type`"),
        (r#"{"type":7}"#, "field `type`: must be a string"),
        (
            r#"{"type":"prompt","text":3}"#,
            "field `text`: must be a string",
        ),
        (r#"{"type":"prompt","text":null}"#, "missing field `text`"),
        (
            r#"{"type":"tool.start","tool":"t","args":{}}"#,
            "missing field `call_id`",
        ),
        (
            r#"{"type":"tool.start","call_id":"","tool":"t","args":{}}"#,
            "field `call_id`: is empty",
        ),
        (
            r#"{"type":"tool.start","call_id":"c","args":{}}"#,
            "missing field `tool`",
        ),
        (
            r#"{"type":"tool.start","call_id":"c","tool":"t"}"#,
            "missing field `args`",
        ),
        (
            r#"{"type":"tool.end","call_id":"c"}"#,
            "missing field `status`",
        ),
        (
            r#"{"type":"tool.end","call_id":"c","status":"OK"}"#,
            "field `status`: must be \"ok\" or \"error\"",
        ),
        (
            r#"{"type":"session.start","session_id":""}"#,
            "field `session_id`: is empty",
        ),
        (
            r#"{"type":"session.start","task":[]}"#,
            "field `task`: must be a string",
        ),
        (
            r#"{"type":"session.end","agent":""}"#,
            "field `agent`: is empty",
        ),
        (
            r#"{"type":"session.end","id":{}}"#,
            "field `id`: must be a string or a number",
        ),
        (
            r#"{"type":"model.output","text":"","tool_calls":{}}"#,
            "field `tool_calls`: must be an array",
        ),
        (
            r#"{"type":"model.output","text":"","tool_calls":[1]}"#,
            "field `tool_calls[0]`: must be a call_id or an object",
        ),
        (
            r#"{"type":"model.output","text":"","tool_calls":["a",""]}"#,
            "field `tool_calls[1]`: is empty",
        ),
        (
            r#"{"type":"model.output","text":"","tool_calls":[{"tool":"t"}]}"#,
            "missing field `tool_calls[0].call_id`",
        ),
        (
            r#"{"type":"model.output","text":"","tool_calls":[{"call_id":"c","args":1}]}"#,
            "field `tool_calls[0].args`: must be a JSON object",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(bad(line).to_string(), message, "{line}");
    }
}

#[test]
fn identifiers_are_limited_to_256_bytes() {
    let at_limit = "c".repeat(MAX_IDENT);
    let line = format!(r#"{{"type":"tool.end","call_id":"{at_limit}","status":"ok"}}"#);
    ok(&line);
    let line = format!(r#"{{"type":"tool.end","call_id":"{at_limit}c","status":"ok"}}"#);
    assert_eq!(
        bad(&line).to_string(),
        "field `call_id`: longer than 256 bytes"
    );
    let line = format!(r#"{{"type":"session.end","id":"{at_limit}i"}}"#);
    assert_eq!(bad(&line).to_string(), "field `id`: longer than 256 bytes");
}

fn start_with_effects(effects: &str) -> String {
    format!(r#"{{"type":"tool.start","call_id":"c","tool":"t","args":{{}},"effects":{effects}}}"#)
}

#[test]
fn effects_errors() {
    let cases = [
        ("[]", "field `effects`: must be a JSON object"),
        (
            r#"{"file.exec":["/x"]}"#,
            "field `effects`: unknown effect kind `file.exec`; expected one of file.read, file.write, file.create, file.delete, exec, net.connect, net.bind, dns",
        ),
        (
            r#"{"exec":"/bin/ls"}"#,
            "field `effects.exec`: must be an array of patterns",
        ),
        (
            r#"{"exec":["/bin/ls",""]}"#,
            "field `effects.exec[1]`: is empty",
        ),
        (r#"{"dns":[1]}"#, "field `effects.dns[0]`: must be a string"),
    ];
    for (effects, message) in cases {
        assert_eq!(
            bad(&start_with_effects(effects)).to_string(),
            message,
            "{effects}"
        );
    }
    let long = format!(r#"{{"exec":["{}"]}}"#, "p".repeat(MAX_PATTERN_LEN + 1));
    let expected = "field `effects.exec[0]`: longer than 4096 bytes";
    assert_eq!(bad(&start_with_effects(&long)).to_string(), expected);
}

#[test]
fn effects_hold_at_most_1024_patterns() {
    let patterns = |n: usize| serde_json::to_string(&vec!["/p"; n]).expect("json");
    let at_limit = format!(
        r#"{{"file.read":{},"file.write":{}}}"#,
        patterns(1000),
        patterns(24)
    );
    ok(&start_with_effects(&at_limit));
    let over = format!(
        r#"{{"file.read":{},"file.write":{}}}"#,
        patterns(1000),
        patterns(25)
    );
    let expected = "field `effects`: more than 1024 patterns";
    assert_eq!(bad(&start_with_effects(&over)).to_string(), expected);
}

#[test]
fn quoted_input_is_cut_short() {
    let given = "é".repeat(100);
    let error = bad(&format!(r#"{{"type":"{given}"}}"#));
    let ProtocolError::UnknownType { given: quoted } = &error else {
        panic!("{error:?}")
    };
    assert!(quoted.len() <= 64 + "…".len(), "{quoted}");
    assert!(
        quoted.ends_with('…') && quoted.starts_with("éé"),
        "{quoted}"
    );
}

#[test]
fn unknown_type_is_reported_before_other_fields() {
    let error = bad(r#"{"type":"nope","agent":"","id":1}"#);
    assert_eq!(error.code(), "unknown_type");
}

#[test]
fn refused_lines_keep_their_id() {
    let rejected = decode_with_id(br#"{"id":"q9","type":"prompt"}"#).expect_err("refused");
    assert_eq!(rejected.id, Some(json!("q9")));
    assert_eq!(rejected.error.code(), "missing_field");
    let rejected = decode_with_id(br#"{"id":{"x":1},"type":"prompt"}"#).expect_err("refused");
    assert_eq!(rejected.id, None, "an invalid id is not echoed");
    let rejected = decode_with_id(b"{\"id\":3,").expect_err("refused");
    assert_eq!(rejected.id, None);
}

#[test]
fn non_utf8_and_nesting_are_refused_cleanly() {
    assert_eq!(
        bad("{\"type\":\"prompt\",\"text\":\"\u{0}\"}").code(),
        "bad_json"
    );
    assert_eq!(
        decode(b"{\"type\":\"prompt\",\"text\":\"\xff\"}").map_err(|e| e.code()),
        Err("bad_json")
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(
        bad(&deep).code(),
        "bad_json",
        "recursion limit, not a stack overflow"
    );
}
