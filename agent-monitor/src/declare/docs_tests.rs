//! docs/protocol.md and docs/protocol.schema.json against the code: the
//! examples decode as they say, the error replies are exactly the code's,
//! and the schema names every message type and effect kind.

use serde_json::Value;

use super::*;

const PROTOCOL_MD: &str = include_str!("../../../docs/protocol.md");
const SCHEMA_JSON: &str = include_str!("../../../docs/protocol.schema.json");

/// The `→ request` / `← reply` pairs of the document's examples.
fn examples() -> Vec<(&'static str, &'static str)> {
    let mut pairs = Vec::new();
    let mut lines = PROTOCOL_MD.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(request) = line.strip_prefix("→ ") {
            let reply = lines
                .next()
                .and_then(|next| next.strip_prefix("← "))
                .unwrap_or_else(|| panic!("request without a reply line: {request}"));
            pairs.push((request, reply));
        }
    }
    pairs
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn every_message_type_has_an_example() {
    let pairs = examples();
    assert!(pairs.len() >= 12, "{} examples", pairs.len());
    for kind in Request::TYPES {
        let found = pairs.iter().any(|(request, reply)| {
            let reply = json(reply);
            let decoded = decode(request.as_bytes());
            reply["ok"] == true && decoded.is_ok_and(|e| e.request.type_name() == kind)
        });
        assert!(found, "no accepted example of {kind}");
    }
}

#[test]
fn examples_decode_as_their_replies_say() {
    for (request, reply_text) in examples() {
        let reply = json(reply_text);
        let code = reply["error"]["code"].as_str();
        match decode_with_id(request.as_bytes()) {
            Ok(envelope) => {
                // Accepted, or refused by the server for a reason the
                // decoder cannot see.
                if let Some(code) = code {
                    assert!(code::ALL.contains(&code), "{request} → {code}");
                }
                if let Some(id) = &envelope.id {
                    assert_eq!(&reply["id"], id, "{request}");
                }
                if matches!(envelope.request, Request::ToolStart(_)) && reply["ok"] == true {
                    for field in ["decision", "reason", "rule"] {
                        assert!(reply.get(field).is_some(), "{reply_text} lacks {field}");
                    }
                }
            }
            Err(rejected) => {
                let ours = Reply::from(rejected).to_line();
                let ours = String::from_utf8(ours).expect("UTF-8");
                assert_eq!(ours.trim_end(), reply_text, "for {request}");
            }
        }
    }
}

#[test]
fn server_error_examples_match_their_constructors() {
    let documented: Vec<&str> = examples().into_iter().map(|(_, reply)| reply).collect();
    let ours = [
        Reply::unknown_call_id(None, "c9"),
        Reply::agent_not_permitted(None),
    ];
    for reply in ours {
        let line = String::from_utf8(reply.to_line()).expect("UTF-8");
        assert!(
            documented.contains(&line.trim_end()),
            "{line} is not documented"
        );
    }
}

#[test]
fn every_code_and_kind_is_documented() {
    let codes = ProtocolError::CODES.into_iter().chain(code::ALL);
    for code in codes {
        assert!(
            PROTOCOL_MD.contains(&format!("| `{code}` |")),
            "code {code}"
        );
    }
    for kind in EffectKind::ALL {
        assert!(
            PROTOCOL_MD.contains(&format!("| `{kind}` |")),
            "kind {kind}"
        );
    }
}

#[test]
fn schema_names_every_type_and_kind() {
    let schema = json(SCHEMA_JSON);
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let branches = schema["oneOf"].as_array().expect("oneOf");
    assert_eq!(branches.len(), Request::TYPES.len());
    for kind in Request::TYPES {
        let reference = format!("#/$defs/{kind}");
        assert!(
            branches.iter().any(|b| b["$ref"] == reference.as_str()),
            "{kind} is not a branch"
        );
        let def = &schema["$defs"][kind];
        assert_eq!(def["properties"]["type"]["const"], kind, "{kind}");
    }
    let kinds = schema["$defs"]["effects"]["propertyNames"]["enum"]
        .as_array()
        .expect("effect kinds");
    let kinds: Vec<&str> = kinds.iter().filter_map(Value::as_str).collect();
    assert_eq!(kinds, EffectKind::ALL.map(EffectKind::name));
}

#[test]
fn schema_required_fields_match_the_decoder() {
    let schema = json(SCHEMA_JSON);
    let required = |kind: &str| -> Vec<String> {
        let list = schema["$defs"][kind]["required"]
            .as_array()
            .expect("required");
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .filter(|f| f != "type")
            .collect()
    };
    // Each required field, left out of an otherwise full request, is
    // reported missing; nothing else is required.
    let full = [
        ("session.start", r#"{"type":"session.start"}"#),
        ("prompt", r#"{"type":"prompt","text":"t"}"#),
        ("model.output", r#"{"type":"model.output","text":"t"}"#),
        (
            "tool.start",
            r#"{"type":"tool.start","call_id":"c","tool":"t","args":{}}"#,
        ),
        (
            "tool.end",
            r#"{"type":"tool.end","call_id":"c","status":"ok"}"#,
        ),
        ("session.end", r#"{"type":"session.end"}"#),
    ];
    for (kind, line) in full {
        let mut fields = match json(line) {
            Value::Object(map) => map,
            other => panic!("{other}"),
        };
        fields.remove("type");
        let mut names: Vec<String> = fields.keys().cloned().collect();
        names.sort();
        let mut expected = required(kind);
        expected.sort();
        assert_eq!(names, expected, "{kind}");
        for field in names {
            let mut without = json(line);
            without.as_object_mut().expect("object").remove(&field);
            let error = decode(without.to_string().as_bytes()).expect_err("refused");
            assert_eq!(error, ProtocolError::missing(field.as_str()), "{kind}");
        }
    }
}
