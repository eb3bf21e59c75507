//! Decoding what the OpenTelemetry Python SDK's exporter sends: the
//! fixtures in testdata/ are its encoder's output (testdata/generate.py).

use serde_json::json;

use super::*;

const PROTOBUF: &[u8] = include_bytes!("testdata/export.pb");
const JSON: &[u8] = include_bytes!("testdata/export.json");

fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[test]
fn the_sdk_s_protobuf_export_decodes() {
    let spans = decode(Encoding::Protobuf, PROTOBUF).unwrap();
    assert_eq!(spans.len(), 6);
    let chat = by_name(&spans, "chat gpt-4o");
    assert_eq!(chat.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(chat.span_id, "1000000000000002");
    assert_eq!(chat.start_ns, 1_750_000_000_001_000_000);
    assert_eq!(chat.end_ns, 1_750_000_000_002_000_000);
    assert_eq!(chat.attributes["gen_ai.operation.name"], "chat");
    assert_eq!(chat.attributes["gen_ai.usage.input_tokens"], 42);
    assert_eq!(chat.attributes["gen_ai.request.temperature"], 0.5);
    assert_eq!(
        chat.attributes["gen_ai.response.finish_reasons"],
        json!(["tool_call"])
    );
    assert_eq!(chat.status, StatusCode::Unset);

    let failed = by_name(&spans, "execute_tool fetch");
    assert_eq!(failed.status, StatusCode::Error);
    assert_eq!(failed.status_message, "timed out after 10 s");

    let older = by_name(&spans, "chat claude");
    let names: Vec<&str> = older.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["gen_ai.user.message", "gen_ai.choice"]);
    assert_eq!(older.events[1].time_ns, 1_750_000_000_010_000_000);
    assert_eq!(
        older.events[0].attributes["gen_ai.event.content"],
        r#"{"content": "List /tmp."}"#
    );
}

#[test]
fn the_json_export_decodes_to_the_same_spans() {
    assert_eq!(
        decode(Encoding::Json, JSON).unwrap(),
        decode(Encoding::Protobuf, PROTOBUF).unwrap()
    );
}

#[test]
fn json_takes_numbers_for_strings_enum_names_nulls_and_proto_names() {
    let body = json!({"resource_spans": [{"scopeSpans": [{"spans": [{
        "traceId": "0AF7651916CD43DD8448EB211C80319C",
        "span_id": "00F067AA0BA902B7",
        "name": null,
        "startTimeUnixNano": 5,
        "end_time_unix_nano": "6",
        "attributes": [
            {"key": "i", "value": {"intValue": 7}},
            {"key": "s", "value": {"intValue": "-8"}},
            {"key": "d", "value": {"doubleValue": "Infinity"}},
            {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": false}, {}]}}},
            {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}},
            {"key": "b", "value": {"bytesValue": "AQID"}},
            {"key": "none"}
        ],
        "status": {"code": "STATUS_CODE_ERROR"},
        "unknownField": {"ignored": true}
    }]}]}]});
    let spans = decode(Encoding::Json, body.to_string().as_bytes()).unwrap();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(span.span_id, "00f067aa0ba902b7");
    assert_eq!((span.start_ns, span.end_ns), (5, 6));
    assert_eq!(span.status, StatusCode::Error);
    assert_eq!(
        serde_json::Value::Object(span.attributes.clone()),
        json!({"i": 7, "s": -8, "d": "Infinity", "a": [false, null], "kv": {"k": "v"}, "b": "AQID", "none": null})
    );
}

#[test]
fn an_empty_export_has_no_spans() {
    assert_eq!(decode(Encoding::Json, b"{}").unwrap(), vec![]);
    assert_eq!(decode(Encoding::Protobuf, b"").unwrap(), vec![]);
}

#[test]
fn bad_bodies_say_what_is_wrong() {
    let err = |encoding, body: &[u8]| decode(encoding, body).unwrap_err().to_string();

    let truncated = err(Encoding::Protobuf, &PROTOBUF[..PROTOBUF.len() - 7]);
    assert!(
        truncated.starts_with("not a protobuf ExportTraceServiceRequest: failed to decode"),
        "{truncated}"
    );
    let json_as_protobuf = err(Encoding::Protobuf, JSON);
    assert!(
        json_as_protobuf.contains("not a protobuf"),
        "{json_as_protobuf}"
    );

    let not_json = err(Encoding::Json, b"{\"resourceSpans\": [");
    assert!(
        not_json.starts_with("not an OTLP/JSON ExportTraceServiceRequest: EOF"),
        "{not_json}"
    );
    let wrong_type = err(Encoding::Json, br#"{"resourceSpans": {"scopeSpans": []}}"#);
    assert!(wrong_type.contains("expected a sequence"), "{wrong_type}");
    let base64_id = err(
        Encoding::Json,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"APBnqgupArc="}]}]}]}"#,
    );
    assert!(
        base64_id.contains("ids are hex in OTLP/JSON, not \"APBnqgupArc=\""),
        "{base64_id}"
    );
    let negative_time = err(
        Encoding::Json,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"-1"}]}]}]}"#,
    );
    assert!(
        negative_time.contains("\"-1\" is not an unsigned 64-bit integer"),
        "{negative_time}"
    );
    let bad_int = err(
        Encoding::Json,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"k","value":{"intValue":1.5}}]}]}]}]}"#,
    );
    assert!(
        bad_int.contains("intValue: expected a 64-bit integer"),
        "{bad_int}"
    );
    let bad_status = err(
        Encoding::Json,
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"status":{"code":"FAILED"}}]}]}]}"#,
    );
    assert!(
        bad_status.contains("status code \"FAILED\""),
        "{bad_status}"
    );
}

#[test]
fn content_types_name_an_encoding() {
    assert_eq!(
        Encoding::from_content_type("application/x-protobuf"),
        Some(Encoding::Protobuf)
    );
    assert_eq!(
        Encoding::from_content_type("Application/JSON; charset=utf-8"),
        Some(Encoding::Json)
    );
    assert_eq!(Encoding::from_content_type("text/plain"), None);
    assert_eq!(Encoding::from_content_type(""), None);
}

#[test]
fn the_receiver_listens_on_loopback_only() {
    assert_eq!(
        parse_listen("127.0.0.1:4318").unwrap(),
        Some("127.0.0.1:4318".parse().unwrap())
    );
    assert_eq!(
        parse_listen(" [::1]:4318 ").unwrap(),
        Some("[::1]:4318".parse().unwrap())
    );
    assert!(
        parse_listen("127.0.0.1:0")
            .unwrap_err()
            .contains("name a port")
    );
    assert_eq!(parse_listen("").unwrap(), None);
    assert_eq!(
        parse_listen("0.0.0.0:4318").unwrap_err(),
        "0.0.0.0:4318 is not a loopback address; the OTLP receiver listens on loopback only (127.0.0.1 or [::1])"
    );
    assert!(
        parse_listen("localhost:4318")
            .unwrap_err()
            .contains("is not an address such as")
    );
}

#[test]
fn grace_periods_have_a_unit() {
    assert_eq!(parse_grace("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_grace("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_grace("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_grace("0s").unwrap(), Duration::ZERO);
    assert!(parse_grace("30").unwrap_err().contains("units: ms, s, m"));
    assert!(parse_grace("s").unwrap_err().contains("not a duration"));
    assert!(parse_grace("2h").unwrap_err().contains("units"));
    assert!(
        parse_grace("61m")
            .unwrap_err()
            .contains("more than an hour")
    );
}

#[test]
fn connecting_to_the_receiver_is_baseline() {
    use crate::policy::{Effect, Verdict};
    let mut policy = Policy::default_policy();
    let connect = |addr: &str| Effect::new(EffectKind::NetConnect, addr);
    assert_eq!(
        policy.classify(&connect("127.0.0.1:4318"), &[]),
        Verdict::Undeclared
    );
    baseline(&mut policy, "127.0.0.1:4318".parse().unwrap()).unwrap();
    baseline(&mut policy, "[::1]:4319".parse().unwrap()).unwrap();
    for addr in ["127.0.0.1:4318", "[::1]:4319"] {
        match policy.classify(&connect(addr), &[]) {
            Verdict::Baseline { rule } => assert_eq!(rule.name, "monitor.otlp"),
            other => panic!("{addr}: {other:?}"),
        }
    }
    assert_eq!(
        policy.classify(&connect("127.0.0.1:4319"), &[]),
        Verdict::Undeclared
    );
}

#[test]
fn the_daemon_config_has_the_receiver_off_by_default() {
    use crate::config::Config;
    let defaults = Config::defaults();
    assert_eq!(defaults.otel.listen, None);
    assert_eq!(defaults.otel.grace, DEFAULT_GRACE);
    let on = Config::parse(
        "[otel]\nlisten = \"127.0.0.1:4318\"\ngrace = \"45s\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(on.otel.listen, Some("127.0.0.1:4318".parse().unwrap()));
    assert_eq!(on.otel.grace, Duration::from_secs(45));
    let wide = Config::parse("[otel]\nlisten = \"0.0.0.0:4318\"\n", "t").unwrap_err();
    assert!(
        wide.to_string()
            .starts_with("t: otel.listen: 0.0.0.0:4318 is not a loopback address"),
        "{wide}"
    );
    let unknown = Config::parse("[otel]\nport = 4318\n", "t").unwrap_err();
    assert!(
        unknown.to_string().contains("unknown field `port`"),
        "{unknown}"
    );
}
