//! Spans as the receiver reads them, whichever their encoding, and what
//! the OpenTelemetry GenAI semantic conventions make of them: declarations
//! of the protocol of [`crate::declare`].
//!
//! - an `execute_tool` span is a tool call: `tool.start` at the span's
//!   start and `tool.end` at its end, both stamped with `at`, since the
//!   span arrives after the call has run;
//! - a `chat`, `text_completion` or `generate_content` span is the model's
//!   answer (`model.output`, at the span's end), after the prompt that
//!   asked for it (the last user message, at the span's start);
//! - any other span declares nothing.
//!
//! The declarations are built in their wire form and read back by the
//! protocol's own decoder, so that a span is held to exactly the checks a
//! socket client is (identifier lengths, `args` an object, line size).

use serde_json::{Map, Value, json};

use crate::declare::{self, Envelope, MAX_LINE, ProtocolError};

/// The `source` of every call this receiver declares.
pub const SOURCE: &str = "otel";

/// A span, with the fields the mapping reads. Attribute values are JSON:
/// OTLP's `AnyValue` strings, booleans, integers and doubles as such,
/// arrays and key-value lists as arrays and objects, bytes as base64.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Span {
    /// Lowercase hex, as OTLP/JSON writes it.
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    /// Unix ns.
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Map<String, Value>,
    pub events: Vec<SpanEvent>,
    pub status: StatusCode,
    pub status_message: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub time_ns: u64,
    pub attributes: Map<String, Value>,
}

/// OTLP's `Status.code`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    /// From the wire's number; a code OTLP may add later counts as unset.
    pub fn from_code(code: i64) -> StatusCode {
        match code {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }
}

/// What one span declares, in its wire form.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// `gen_ai.conversation.id`: the session the declarations belong to;
    /// none, the agent's current session.
    pub conversation: Option<String>,
    /// Request objects, in the order they are to be sent.
    pub requests: Vec<Value>,
}

/// Why a span that looked like a GenAI operation declares nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error(
        "span {span_id}: an execute_tool span needs gen_ai.tool.name or a name `execute_tool TOOL`"
    )]
    NoToolName { span_id: String },
    #[error("span {span_id}: the span id must be 16 hex digits")]
    BadSpanId { span_id: String },
    #[error("span {span_id}: no start or end time")]
    NoTime { span_id: String },
    #[error("span {span_id}: {error}")]
    Refused {
        span_id: String,
        error: ProtocolError,
    },
}

/// The declarations of `span`; none when it is no GenAI operation the
/// monitor reads, or a chat span without captured content.
pub fn map(span: &Span) -> Result<Option<Mapped>, SpanError> {
    let operation = span
        .attributes
        .get("gen_ai.operation.name")
        .and_then(Value::as_str);
    let requests = match operation {
        Some("execute_tool") => {
            check_span(span)?;
            tool_requests(span)?
        }
        Some("chat" | "text_completion" | "generate_content") => {
            check_span(span)?;
            chat_requests(span)
        }
        _ => return Ok(None),
    };
    if requests.is_empty() {
        return Ok(None);
    }
    Ok(Some(Mapped {
        conversation: string_attr(&span.attributes, "gen_ai.conversation.id"),
        requests,
    }))
}

/// A request in wire form, read as a socket client's line would be.
pub fn envelope(request: &Value) -> Result<Envelope, ProtocolError> {
    let line = serde_json::to_vec(request).expect("a JSON value always serialises");
    if line.len() > MAX_LINE {
        return Err(ProtocolError::Oversize { limit: MAX_LINE });
    }
    declare::decode(&line)
}

/// The `session.start` that enters the conversation's session.
pub fn session_start(conversation: &str) -> Value {
    json!({"type": "session.start", "session_id": conversation})
}

/// [`map`]'s requests as envelopes; the first refused fails the span.
pub fn envelopes(span_id: &str, mapped: &Mapped) -> Result<Vec<Envelope>, SpanError> {
    mapped
        .requests
        .iter()
        .map(|request| {
            envelope(request).map_err(|error| SpanError::Refused {
                span_id: span_id.to_string(),
                error,
            })
        })
        .collect()
}

fn check_span(span: &Span) -> Result<(), SpanError> {
    if span.span_id.len() != 16 || !span.span_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SpanError::BadSpanId {
            span_id: span.span_id.clone(),
        });
    }
    if span.start_ns == 0 || span.end_ns == 0 {
        return Err(SpanError::NoTime {
            span_id: span.span_id.clone(),
        });
    }
    Ok(())
}

fn tool_requests(span: &Span) -> Result<Vec<Value>, SpanError> {
    let attributes = &span.attributes;
    let tool_use_id = string_attr(attributes, "gen_ai.tool.call.id");
    let tool = string_attr(attributes, "gen_ai.tool.name")
        .or_else(|| {
            span.name
                .strip_prefix("execute_tool ")
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_string)
        })
        .ok_or_else(|| SpanError::NoToolName {
            span_id: span.span_id.clone(),
        })?;
    let call_id = tool_use_id.clone().unwrap_or_else(|| span.span_id.clone());
    let args = attributes
        .get("gen_ai.tool.call.arguments")
        .map(arguments)
        .unwrap_or_default();
    let mut start = json!({
        "type": "tool.start",
        "call_id": call_id,
        "tool": tool,
        "args": args,
        "source": SOURCE,
        "otel_span_id": span.span_id,
        "at": span.start_ns,
    });
    if let Some(id) = tool_use_id {
        start["tool_use_id"] = Value::String(id);
    }
    let error_type = attributes.get("error.type").filter(|v| !v.is_null());
    let failed = span.status == StatusCode::Error || error_type.is_some();
    let result = match attributes.get("gen_ai.tool.call.result") {
        Some(result) => Some(structured(result)),
        // A failed call says why, when the span does.
        None if failed => {
            let why = Some(span.status_message.as_str())
                .filter(|m| !m.is_empty())
                .map(|m| Value::String(m.to_string()))
                .or_else(|| error_type.cloned());
            why.map(|why| json!({"error": why}))
        }
        None => None,
    };
    let mut end = json!({
        "type": "tool.end",
        "call_id": call_id,
        "status": if failed { "error" } else { "ok" },
        "at": span.end_ns,
    });
    if let Some(result) = result {
        end["result"] = result;
    }
    Ok(vec![start, end])
}

fn chat_requests(span: &Span) -> Vec<Value> {
    let mut requests = Vec::new();
    let prompt = match span.attributes.get("gen_ai.input.messages") {
        Some(messages) => last_user_text(&structured(messages)),
        None => event_prompt(&span.events),
    };
    if let Some(text) = prompt {
        requests.push(json!({"type": "prompt", "text": text, "at": span.start_ns}));
    }
    let output = match span.attributes.get("gen_ai.output.messages") {
        Some(messages) => output_of_messages(&structured(messages)),
        None => event_output(&span.events),
    };
    if !output.texts.is_empty() || !output.calls.is_empty() {
        let mut request = json!({
            "type": "model.output",
            "text": output.texts.join("\n"),
            "at": span.end_ns,
        });
        if !output.calls.is_empty() {
            request["tool_calls"] = Value::Array(output.calls);
        }
        requests.push(request);
    }
    requests
}

/// What the model answered: its text parts and the calls it asked for.
#[derive(Default)]
struct Output {
    texts: Vec<String>,
    calls: Vec<Value>,
}

/// The last message with role `user`, its text parts joined.
fn last_user_text(messages: &Value) -> Option<String> {
    messages
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(message_text)
}

/// A message's text: its `text` parts (the conventions' form), or a plain
/// `content` string (the form of many SDKs and of the older events).
fn message_text(message: &Value) -> Option<String> {
    if let Some(parts) = message.get("parts").and_then(Value::as_array) {
        let texts: Vec<&str> = parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("content").and_then(Value::as_str))
            .collect();
        return (!texts.is_empty()).then(|| texts.join("\n"));
    }
    message
        .get("content")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn output_of_messages(messages: &Value) -> Output {
    let mut output = Output::default();
    for message in messages.as_array().into_iter().flatten() {
        if let Some(text) = message_text(message) {
            output.texts.push(text);
        }
        let parts = message.get("parts").and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            if part.get("type").and_then(Value::as_str) == Some("tool_call") {
                output.calls.extend(planned_call(
                    part.get("id"),
                    part.get("name"),
                    part.get("arguments"),
                ));
            }
        }
    }
    output
}

/// A `model.output` tool call; none without an id, which is what names
/// the call when it is declared (its `execute_tool` span still is).
fn planned_call(id: Option<&Value>, name: Option<&Value>, args: Option<&Value>) -> Option<Value> {
    let id = id.and_then(Value::as_str).filter(|id| !id.is_empty())?;
    let mut call = json!({"call_id": id});
    if let Some(name) = name.and_then(Value::as_str) {
        call["tool"] = Value::String(name.to_string());
    }
    if let Some(args) = args.filter(|a| !a.is_null()) {
        call["args"] = Value::Object(arguments(args));
    }
    Some(call)
}

/// The older form: the last `gen_ai.user.message` event's content.
fn event_prompt(events: &[SpanEvent]) -> Option<String> {
    events
        .iter()
        .rev()
        .filter(|e| e.name == "gen_ai.user.message")
        .find_map(|e| message_text(&event_body(e)))
}

/// The older form: every `gen_ai.choice` event's message.
fn event_output(events: &[SpanEvent]) -> Output {
    let mut output = Output::default();
    for event in events.iter().filter(|e| e.name == "gen_ai.choice") {
        let body = event_body(event);
        let Some(message) = body.get("message").map(structured) else {
            continue;
        };
        if let Some(text) = message_text(&message) {
            output.texts.push(text);
        }
        let calls = message.get("tool_calls").map(structured);
        for call in calls.iter().filter_map(Value::as_array).flatten() {
            let function = call.get("function");
            output.calls.extend(planned_call(
                call.get("id"),
                function.and_then(|f| f.get("name")),
                function.and_then(|f| f.get("arguments")),
            ));
        }
    }
    output
}

/// An event's body: the JSON of `gen_ai.event.content` where the
/// instrumentation put it there, else the event's attributes.
fn event_body(event: &SpanEvent) -> Value {
    match event.attributes.get("gen_ai.event.content") {
        Some(content) => match structured(content) {
            Value::String(text) => json!({"content": text}),
            body => body,
        },
        None => Value::Object(event.attributes.clone()),
    }
}

/// Tool arguments as the protocol's `args` object: an object as is, a
/// string holding a JSON object parsed, anything else under `arguments`.
fn arguments(value: &Value) -> Map<String, Value> {
    match structured(value) {
        Value::Object(object) => object,
        other => {
            let mut wrapped = Map::new();
            wrapped.insert("arguments".into(), other);
            wrapped
        }
    }
}

/// A string attribute holding JSON (the SDKs record structured values so)
/// read as that JSON when it is an object or an array; any other value as
/// it is.
fn structured(value: &Value) -> Value {
    if let Value::String(text) = value
        && let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str(text)
    {
        return parsed;
    }
    value.clone()
}

fn string_attr(attributes: &Map<String, Value>, key: &str) -> Option<String> {
    attributes
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
#[path = "spans_tests.rs"]
mod tests;
