//! Spans to declarations, on the Python SDK's own export (testdata/) and
//! on spans made here for the cases it does not show.

use serde_json::{Value, json};

use super::*;
use crate::declare::{Request, Source, Status};

fn fixture() -> Vec<Span> {
    super::super::decode(
        super::super::Encoding::Protobuf,
        include_bytes!("testdata/export.pb"),
    )
    .unwrap()
}

fn named(name: &str) -> Span {
    fixture()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}"))
}

fn tool_span(attributes: Value) -> Span {
    let Value::Object(mut attributes) = attributes else {
        panic!("attributes are an object")
    };
    attributes.insert("gen_ai.operation.name".into(), "execute_tool".into());
    Span {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "00f067aa0ba902b7".into(),
        name: "execute_tool".into(),
        start_ns: 100,
        end_ns: 200,
        attributes,
        ..Span::default()
    }
}

const T0: u64 = 1_750_000_000_000_000_000;
const MS: u64 = 1_000_000;

#[test]
fn an_execute_tool_span_is_a_call_declared_after_the_fact() {
    let mapped = map(&named("execute_tool read_file")).unwrap().unwrap();
    assert_eq!(mapped.conversation.as_deref(), Some("conv-1"));
    assert_eq!(
        mapped.requests,
        vec![
            json!({
                "type": "tool.start", "call_id": "call_1", "tool": "read_file",
                "args": {"path": "/srv/notes.txt"}, "source": "otel",
                "tool_use_id": "call_1", "otel_span_id": "1000000000000003",
                "at": T0 + 3 * MS,
            }),
            json!({
                "type": "tool.end", "call_id": "call_1", "status": "ok",
                "result": "the notes", "at": T0 + 4 * MS,
            }),
        ]
    );
    // The protocol's decoder reads them as a socket client's lines.
    let envelopes = envelopes("1000000000000003", &mapped).unwrap();
    let Request::ToolStart(start) = &envelopes[0].request else {
        panic!("{envelopes:?}")
    };
    assert_eq!(start.source, Source::Otel);
    assert_eq!(start.at, Some((T0 + 3 * MS) as i64));
    assert_eq!(start.links.tool_use_id.as_deref(), Some("call_1"));
    assert_eq!(
        start.links.otel_span_id.as_deref(),
        Some("1000000000000003")
    );
    assert_eq!(start.pid, None);
    let Request::ToolEnd(end) = &envelopes[1].request else {
        panic!("{envelopes:?}")
    };
    assert_eq!(
        (end.status, end.at),
        (Status::Ok, Some((T0 + 4 * MS) as i64))
    );
}

#[test]
fn a_failed_tool_span_ends_in_error_and_names_its_tool_by_the_span_name() {
    let mapped = map(&named("execute_tool fetch")).unwrap().unwrap();
    assert_eq!(mapped.conversation, None);
    // No gen_ai.tool.call.id: the span id names the call, and there is no
    // model id to link; arguments that are no JSON object are wrapped.
    assert_eq!(
        mapped.requests,
        vec![
            json!({
                "type": "tool.start", "call_id": "1000000000000004", "tool": "fetch",
                "args": {"arguments": "http://169.254.169.254/"}, "source": "otel",
                "otel_span_id": "1000000000000004", "at": T0 + 5 * MS,
            }),
            json!({
                "type": "tool.end", "call_id": "1000000000000004", "status": "error",
                "result": {"error": "timed out after 10 s"}, "at": T0 + 6 * MS,
            }),
        ]
    );
}

#[test]
fn error_type_alone_fails_a_call() {
    let mapped = map(&tool_span(json!({
        "gen_ai.tool.name": "grep",
        "gen_ai.tool.call.arguments": {"pattern": "x"},
        "error.type": "FileNotFoundError",
    })))
    .unwrap()
    .unwrap();
    assert_eq!(mapped.requests[0]["args"], json!({"pattern": "x"}));
    assert_eq!(
        mapped.requests[1],
        json!({"type": "tool.end", "call_id": "00f067aa0ba902b7", "status": "error",
               "result": {"error": "FileNotFoundError"}, "at": 200})
    );
}

#[test]
fn tool_results_and_arguments_keep_their_json() {
    let mapped = map(&tool_span(json!({
        "gen_ai.tool.name": "search",
        "gen_ai.tool.call.arguments": "[1, 2]",
        "gen_ai.tool.call.result": "{\"hits\": 3}",
    })))
    .unwrap()
    .unwrap();
    assert_eq!(mapped.requests[0]["args"], json!({"arguments": [1, 2]}));
    assert_eq!(mapped.requests[1]["result"], json!({"hits": 3}));
    let no_args = map(&tool_span(json!({"gen_ai.tool.name": "now"})))
        .unwrap()
        .unwrap();
    assert_eq!(no_args.requests[0]["args"], json!({}));
}

#[test]
fn a_chat_span_is_the_prompt_and_the_model_s_answer() {
    let mapped = map(&named("chat gpt-4o")).unwrap().unwrap();
    assert_eq!(mapped.conversation.as_deref(), Some("conv-1"));
    assert_eq!(
        mapped.requests,
        vec![
            json!({"type": "prompt", "text": "What is in notes.txt?", "at": T0 + MS}),
            json!({
                "type": "model.output", "text": "I will read it.", "at": T0 + 2 * MS,
                "tool_calls": [{"call_id": "call_1", "tool": "read_file", "args": {"path": "/srv/notes.txt"}}],
            }),
        ]
    );
    let envelopes = envelopes("1000000000000002", &mapped).unwrap();
    assert!(matches!(
        &envelopes[0].request,
        Request::Prompt { at: Some(at), .. } if *at == (T0 + MS) as i64
    ));
    let Request::ModelOutput(output) = &envelopes[1].request else {
        panic!("{envelopes:?}")
    };
    assert_eq!(output.tool_calls[0].call_id, "call_1");
}

#[test]
fn the_older_event_form_of_a_chat_span() {
    let mapped = map(&named("chat claude")).unwrap().unwrap();
    assert_eq!(
        mapped.requests,
        vec![
            json!({"type": "prompt", "text": "List /tmp.", "at": T0 + 9 * MS}),
            json!({
                "type": "model.output", "text": "Listing it.", "at": T0 + 10 * MS,
                "tool_calls": [{"call_id": "toolu_9", "tool": "list_dir", "args": {"path": "/tmp"}}],
            }),
        ]
    );
}

#[test]
fn event_attributes_stand_for_a_missing_body() {
    let span = Span {
        span_id: "00f067aa0ba902b7".into(),
        start_ns: 1,
        end_ns: 2,
        attributes: json!({"gen_ai.operation.name": "text_completion"})
            .as_object()
            .unwrap()
            .clone(),
        events: vec![
            SpanEvent {
                name: "gen_ai.user.message".into(),
                time_ns: 1,
                attributes: json!({"content": "first"}).as_object().unwrap().clone(),
            },
            SpanEvent {
                name: "gen_ai.user.message".into(),
                time_ns: 1,
                attributes: json!({"content": "second"}).as_object().unwrap().clone(),
            },
            SpanEvent {
                name: "gen_ai.choice".into(),
                time_ns: 2,
                attributes: json!({"message": "{\"content\": \"done\"}"})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
        ],
        ..Span::default()
    };
    assert_eq!(
        map(&span).unwrap().unwrap().requests,
        vec![
            json!({"type": "prompt", "text": "second", "at": 1}),
            json!({"type": "model.output", "text": "done", "at": 2}),
        ]
    );
}

#[test]
fn tool_calls_only_answer_with_empty_text_and_unnamed_calls_are_left_out() {
    let mut span = named("chat gpt-4o");
    span.attributes.remove("gen_ai.input.messages");
    span.attributes.insert(
        "gen_ai.output.messages".into(),
        json!([{"role": "assistant", "finish_reason": "tool_call", "parts": [
            {"type": "tool_call", "id": "c1", "name": "ls", "arguments": "{\"path\": \"/\"}"},
            {"type": "tool_call", "name": "anonymous", "arguments": {}},
        ]}])
        .to_string()
        .into(),
    );
    assert_eq!(
        map(&span).unwrap().unwrap().requests,
        vec![json!({
            "type": "model.output", "text": "", "at": T0 + 2 * MS,
            "tool_calls": [{"call_id": "c1", "tool": "ls", "args": {"path": "/"}}],
        })]
    );
}

#[test]
fn spans_that_declare_nothing_are_none() {
    // No GenAI attributes.
    assert_eq!(map(&named("GET /v1/models")).unwrap(), None);
    // A GenAI operation the monitor does not map.
    let mut agent = tool_span(json!({}));
    agent
        .attributes
        .insert("gen_ai.operation.name".into(), "invoke_agent".into());
    assert_eq!(map(&agent).unwrap(), None);
    // A chat span whose content was not captured (the instrumentations'
    // default).
    let mut chat = named("chat gpt-4o");
    chat.attributes.remove("gen_ai.input.messages");
    chat.attributes.remove("gen_ai.output.messages");
    assert_eq!(map(&chat).unwrap(), None);
}

#[test]
fn malformed_genai_spans_are_errors_that_name_the_span() {
    let nameless = tool_span(json!({}));
    assert_eq!(
        map(&nameless).unwrap_err().to_string(),
        "span 00f067aa0ba902b7: an execute_tool span needs gen_ai.tool.name or a name `execute_tool TOOL`"
    );
    let mut short_id = tool_span(json!({"gen_ai.tool.name": "ls"}));
    short_id.span_id = "abcd".into();
    assert_eq!(
        map(&short_id).unwrap_err().to_string(),
        "span abcd: the span id must be 16 hex digits"
    );
    let mut timeless = tool_span(json!({"gen_ai.tool.name": "ls"}));
    timeless.end_ns = 0;
    assert_eq!(
        map(&timeless).unwrap_err(),
        SpanError::NoTime {
            span_id: "00f067aa0ba902b7".into()
        }
    );
}

#[test]
fn declarations_are_held_to_the_protocol_s_checks() {
    let long_name = "t".repeat(300);
    let mapped = map(&tool_span(json!({"gen_ai.tool.name": long_name})))
        .unwrap()
        .unwrap();
    let err = envelopes("00f067aa0ba902b7", &mapped)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "span 00f067aa0ba902b7: field `tool`: longer than 256 bytes"
    );
    let huge = "x".repeat(MAX_LINE);
    let mapped = map(&tool_span(
        json!({"gen_ai.tool.name": "ls", "gen_ai.tool.call.arguments": {"a": huge}}),
    ))
    .unwrap()
    .unwrap();
    let err = envelopes("00f067aa0ba902b7", &mapped)
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than 1048576 bytes"), "{err}");
    assert!(envelope(&session_start(&"c".repeat(257))).is_err());
    assert!(matches!(
        envelope(&session_start("conv-1")).unwrap().request,
        Request::SessionStart(ref s) if s.session_id.as_deref() == Some("conv-1")
    ));
}
