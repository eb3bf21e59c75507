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

/// What a span declares, in wire form: its prompt first, then the rest.
fn wire(mapped: &Mapped) -> Vec<Value> {
    mapped
        .prompt
        .iter()
        .map(Prompt::request)
        .chain(mapped.requests.iter().cloned())
        .map(|request| serde_json::to_value(request).unwrap())
        .collect()
}

fn chat_span(input: Value) -> Span {
    let mut span = named("chat gpt-4o");
    span.attributes
        .insert("gen_ai.input.messages".into(), input.to_string().into());
    span
}

#[test]
fn an_execute_tool_span_is_a_call_declared_after_the_fact() {
    let mapped = map(&named("execute_tool read_file")).unwrap().unwrap();
    assert_eq!(mapped.conversation.as_deref(), Some("conv-1"));
    // The span id names the call; the model's id is its tool_use_id, by
    // which a hook's or the SDK's declaration of it joins it.
    assert_eq!(
        wire(&mapped),
        vec![
            json!({
                "type": "tool.start", "call_id": "otel-1000000000000003", "tool": "read_file",
                "args": {"path": "/srv/notes.txt"}, "source": "otel",
                "tool_use_id": "call_1", "otel_span_id": "1000000000000003",
                "at": T0 + 3 * MS,
            }),
            json!({
                "type": "tool.end", "call_id": "otel-1000000000000003", "status": "ok",
                "result": "the notes", "at": T0 + 4 * MS,
            }),
        ]
    );
    // The protocol's decoder reads them as a socket client's lines.
    let envelopes = envelopes("1000000000000003", &mapped, true).unwrap();
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
    // No gen_ai.tool.call.id: no model id to link; arguments that are no
    // JSON object are wrapped.
    assert_eq!(
        wire(&mapped),
        vec![
            json!({
                "type": "tool.start", "call_id": "otel-1000000000000004", "tool": "fetch",
                "args": {"arguments": "http://169.254.169.254/"}, "source": "otel",
                "otel_span_id": "1000000000000004", "at": T0 + 5 * MS,
            }),
            json!({
                "type": "tool.end", "call_id": "otel-1000000000000004", "status": "error",
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
    let requests = wire(&mapped);
    assert_eq!(requests[0]["args"], json!({"pattern": "x"}));
    assert_eq!(
        requests[1],
        json!({"type": "tool.end", "call_id": "otel-00f067aa0ba902b7", "status": "error",
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
    let requests = wire(&mapped);
    assert_eq!(requests[0]["args"], json!({"arguments": [1, 2]}));
    assert_eq!(requests[1]["result"], json!({"hits": 3}));
    let no_args = map(&tool_span(json!({"gen_ai.tool.name": "now"})))
        .unwrap()
        .unwrap();
    assert_eq!(wire(&no_args)[0]["args"], json!({}));
}

#[test]
fn a_chat_span_is_the_prompt_and_the_model_s_answer() {
    let mapped = map(&named("chat gpt-4o")).unwrap().unwrap();
    assert_eq!(mapped.conversation.as_deref(), Some("conv-1"));
    assert_eq!(
        wire(&mapped),
        vec![
            json!({"type": "prompt", "text": "What is in notes.txt?", "at": T0 + MS}),
            json!({
                "type": "model.output", "text": "I will read it.", "at": T0 + 2 * MS,
                "tool_calls": [{"call_id": "call_1", "tool": "read_file", "args": {"path": "/srv/notes.txt"}}],
            }),
        ]
    );
    let envelopes = envelopes("1000000000000002", &mapped, true).unwrap();
    assert!(matches!(
        &envelopes[0].request,
        Request::Prompt { at: Some(at), .. } if *at == (T0 + MS) as i64
    ));
    let Request::ModelOutput(output) = &envelopes[1].request else {
        panic!("{envelopes:?}")
    };
    // The model's id of the call it asks for: the execute_tool span's
    // tool_use_id.
    assert_eq!(output.tool_calls[0].call_id, "call_1");
    // Without the prompt (declared already), the answer alone.
    let answer_only = super::envelopes("1000000000000002", &mapped, false).unwrap();
    assert_eq!(answer_only.len(), 1);
    assert!(matches!(answer_only[0].request, Request::ModelOutput(_)));
}

#[test]
fn the_older_event_form_of_a_chat_span() {
    let mapped = map(&named("chat claude")).unwrap().unwrap();
    assert_eq!(
        wire(&mapped),
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
        wire(&map(&span).unwrap().unwrap()),
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
        wire(&map(&span).unwrap().unwrap()),
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
    let err = envelopes("00f067aa0ba902b7", &mapped, true)
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
    let err = envelopes("00f067aa0ba902b7", &mapped, true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("longer than 1048576 bytes"), "{err}");
    assert!(envelope(session_start(&"c".repeat(257))).is_err());
    assert!(matches!(
        envelope(session_start("conv-1")).unwrap().request,
        Request::SessionStart(ref s) if s.session_id.as_deref() == Some("conv-1")
    ));
    let mut far = tool_span(json!({"gen_ai.tool.name": "ls"}));
    far.end_ns = u64::MAX;
    assert_eq!(
        map(&far).unwrap_err().to_string(),
        "span 00f067aa0ba902b7: a start or end time after the year 2262"
    );
}

#[test]
fn a_prompt_is_declared_only_when_the_input_ends_with_the_user_s_message() {
    let system = json!({"role": "system", "parts": [{"type": "text", "content": "Be brief."}]});
    let user = json!({"role": "user", "parts": [{"type": "text", "content": "List /srv."}]});
    let asked = json!({"role": "assistant", "parts": [
        {"type": "tool_call", "id": "c1", "name": "ls", "arguments": {"path": "/srv"}}
    ]});
    let answered = json!({"role": "tool", "parts": [
        {"type": "tool_call_response", "id": "c1", "response": "a b"}
    ]});
    // The first round: the prompt, at its place in the input.
    let first = map(&chat_span(json!([system, user]))).unwrap().unwrap();
    assert_eq!(
        first.prompt,
        Some(Prompt {
            text: "List /srv.".into(),
            at: (T0 + MS) as i64,
            position: 1
        })
    );
    // The next round sends it all again, ending with the tool's result:
    // no prompt, only the answer.
    let second = map(&chat_span(json!([system, user, asked, answered])))
        .unwrap()
        .unwrap();
    assert_eq!(second.prompt, None);
    assert_eq!(wire(&second)[0]["type"], "model.output");
    // The user's next message is a prompt again, further on.
    let again = json!({"role": "user", "content": "And /tmp?"});
    let third = map(&chat_span(json!([system, user, asked, answered, again])))
        .unwrap()
        .unwrap();
    assert_eq!(
        third.prompt.map(|p| (p.text, p.position)),
        Some(("And /tmp?".to_string(), 4))
    );
    // A user message without text (an image, tool results in the user's
    // turn as some APIs send them) is no prompt.
    let image = json!({"role": "user", "parts": [{"type": "blob", "content": "…"}]});
    let fourth = map(&chat_span(json!([system, image]))).unwrap().unwrap();
    assert_eq!(fourth.prompt, None);
}

#[test]
fn in_the_event_form_too_only_a_user_message_last_is_a_prompt() {
    let event = |name: &str, content: &str| SpanEvent {
        name: name.into(),
        time_ns: 1,
        attributes: json!({"content": content}).as_object().unwrap().clone(),
    };
    let mut span = named("chat claude");
    span.events = vec![
        event("gen_ai.system.message", "Be brief."),
        event("gen_ai.user.message", "List /tmp."),
        event("gen_ai.assistant.message", "Listing it."),
        event("gen_ai.tool.message", "a b"),
        SpanEvent {
            name: "gen_ai.choice".into(),
            time_ns: 2,
            attributes: json!({"message": "{\"content\": \"done\"}"})
                .as_object()
                .unwrap()
                .clone(),
        },
    ];
    assert_eq!(map(&span).unwrap().unwrap().prompt, None);
    span.events
        .insert(4, event("gen_ai.user.message", "Thanks."));
    assert_eq!(
        map(&span)
            .unwrap()
            .unwrap()
            .prompt
            .map(|p| (p.text, p.position)),
        Some(("Thanks.".to_string(), 4))
    );
}
