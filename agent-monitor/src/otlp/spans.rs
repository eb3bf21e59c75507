//! Spans as the receiver reads them, whichever their encoding, and what
//! the OpenTelemetry GenAI semantic conventions make of them: declarations
//! of the protocol of [`crate::declare`].
//!
//! - an `execute_tool` span is a tool call: `tool.start` at the span's
//!   start and `tool.end` at its end, both stamped with `at`, since the
//!   span arrives after the call has run. Its `call_id` is `otel-` and the
//!   span id, never the model's id of the call (that is its `tool_use_id`):
//!   a hook or the SDK may declare the same call in the same session under
//!   the model's id, and the two declarations are to be joined, not refused
//!   as one id used twice;
//! - a `chat`, `text_completion` or `generate_content` span is the model's
//!   answer (`model.output`, at the span's end), after the prompt that
//!   asked for it: the input's last message, at the span's start, when
//!   that message is the user's (in a tool loop the input is sent again
//!   each round, ending with the tools' results, and its prompt was
//!   declared in the first round);
//! - any other span declares nothing.
//!
//! The declarations are built as the protocol's types, serialised to their
//! wire form and read back by the protocol's own decoder, so that a span is
//! held to exactly the checks a socket client is (identifier lengths,
//! `args` an object, line size).

use serde_json::{Map, Value, json};

use crate::declare::{
    self, Envelope, Links, MAX_LINE, ModelOutput, PlannedCall, ProtocolError, Request,
    SessionStart, Source, Status, ToolEnd, ToolStart,
};

/// The prefix of the `call_id` of every call this receiver declares.
pub const CALL_ID_PREFIX: &str = "otel-";

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

/// What one span declares.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// `gen_ai.conversation.id`: the session the declarations belong to;
    /// none, the agent's current session.
    pub conversation: Option<String>,
    /// The user's message the span's input ends with, declared before
    /// `requests` unless it was declared already (the receiver remembers).
    pub prompt: Option<Prompt>,
    /// The other requests, in the order they are to be sent.
    pub requests: Vec<Request>,
}

/// A prompt, and where it stands in the span's input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    /// Unix ns: the span's start.
    pub at: i64,
    /// The message's index in the input. The same text at the same place
    /// is the same message sent again (a retry, a second model asked the
    /// same); the same text further on is the user saying it again.
    pub position: usize,
}

impl Prompt {
    pub fn request(&self) -> Request {
        Request::Prompt {
            text: self.text.clone(),
            at: Some(self.at),
        }
    }
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
    #[error("span {span_id}: a start or end time after the year 2262")]
    TimeOutOfRange { span_id: String },
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
    let (prompt, requests) = match operation {
        Some("execute_tool") => (None, tool_requests(span, times(span)?)?),
        Some("chat" | "text_completion" | "generate_content") => chat_requests(span, times(span)?),
        _ => return Ok(None),
    };
    if prompt.is_none() && requests.is_empty() {
        return Ok(None);
    }
    Ok(Some(Mapped {
        conversation: string_attr(&span.attributes, "gen_ai.conversation.id"),
        prompt,
        requests,
    }))
}

/// A request as a socket client's line: serialised, and read back by the
/// protocol's decoder, which checks it as it checks every line.
pub fn envelope(request: Request) -> Result<Envelope, ProtocolError> {
    let line = serde_json::to_vec(&Envelope::bare(request))
        .expect("a request's fields are JSON and serialise");
    if line.len() > MAX_LINE {
        return Err(ProtocolError::Oversize { limit: MAX_LINE });
    }
    declare::decode(&line)
}

/// The `session.start` that enters the conversation's session.
pub fn session_start(conversation: &str) -> Request {
    Request::SessionStart(SessionStart {
        session_id: Some(conversation.to_string()),
        ..SessionStart::default()
    })
}

/// What [`map`] found, as envelopes: the prompt first when `with_prompt`,
/// then the other requests. The first refused fails the span.
pub fn envelopes(
    span_id: &str,
    mapped: &Mapped,
    with_prompt: bool,
) -> Result<Vec<Envelope>, SpanError> {
    let prompt = mapped
        .prompt
        .iter()
        .filter(|_| with_prompt)
        .map(Prompt::request);
    prompt
        .chain(mapped.requests.iter().cloned())
        .map(|request| {
            envelope(request).map_err(|error| SpanError::Refused {
                span_id: span_id.to_string(),
                error,
            })
        })
        .collect()
}

/// The span's start and end, as the protocol's `at`; checked first, so
/// that a malformed span is refused whatever it would declare.
fn times(span: &Span) -> Result<(i64, i64), SpanError> {
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
    match (i64::try_from(span.start_ns), i64::try_from(span.end_ns)) {
        (Ok(start), Ok(end)) => Ok((start, end)),
        _ => Err(SpanError::TimeOutOfRange {
            span_id: span.span_id.clone(),
        }),
    }
}

fn tool_requests(span: &Span, (start_ns, end_ns): (i64, i64)) -> Result<Vec<Request>, SpanError> {
    let attributes = &span.attributes;
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
    let call_id = format!("{CALL_ID_PREFIX}{}", span.span_id);
    let start = ToolStart {
        call_id: call_id.clone(),
        tool,
        args: attributes
            .get("gen_ai.tool.call.arguments")
            .map(arguments)
            .unwrap_or_default(),
        source: Source::Otel,
        links: Links {
            tool_use_id: string_attr(attributes, "gen_ai.tool.call.id"),
            otel_span_id: Some(span.span_id.clone()),
            ..Links::default()
        },
        at: Some(start_ns),
        ..ToolStart::default()
    };
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
    let end = ToolEnd {
        call_id,
        status: if failed { Status::Error } else { Status::Ok },
        result,
        at: Some(end_ns),
    };
    Ok(vec![Request::ToolStart(start), Request::ToolEnd(end)])
}

fn chat_requests(span: &Span, (start_ns, end_ns): (i64, i64)) -> (Option<Prompt>, Vec<Request>) {
    let prompt = match span.attributes.get("gen_ai.input.messages") {
        Some(messages) => last_user_message(&structured(messages)),
        None => event_prompt(&span.events),
    }
    .map(|(position, text)| Prompt {
        text,
        at: start_ns,
        position,
    });
    let output = match span.attributes.get("gen_ai.output.messages") {
        Some(messages) => output_of_messages(&structured(messages)),
        None => event_output(&span.events),
    };
    let mut requests = Vec::new();
    if !output.texts.is_empty() || !output.calls.is_empty() {
        requests.push(Request::ModelOutput(ModelOutput {
            text: output.texts.join("\n"),
            tool_calls: output.calls,
            at: Some(end_ns),
        }));
    }
    (prompt, requests)
}

/// What the model answered: its text parts and the calls it asked for.
#[derive(Default)]
struct Output {
    texts: Vec<String>,
    calls: Vec<PlannedCall>,
}

/// The input's last message, with its index, when it has role `user`: its
/// text parts joined.
fn last_user_message(messages: &Value) -> Option<(usize, String)> {
    let messages = messages.as_array()?;
    let (position, last) = messages.iter().enumerate().next_back()?;
    if last.get("role").and_then(Value::as_str) != Some("user") {
        return None;
    }
    message_text(last).map(|text| (position, text))
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

/// A `model.output` tool call: the model's id of it (an `execute_tool`
/// span's `gen_ai.tool.call.id`, its call's `tool_use_id`); none without
/// one (its `execute_tool` span still declares the call).
fn planned_call(
    id: Option<&Value>,
    name: Option<&Value>,
    args: Option<&Value>,
) -> Option<PlannedCall> {
    let id = id.and_then(Value::as_str).filter(|id| !id.is_empty())?;
    Some(PlannedCall {
        call_id: id.to_string(),
        tool: name.and_then(Value::as_str).map(str::to_string),
        args: args.filter(|a| !a.is_null()).map(arguments),
    })
}

/// The older form's input messages: one event each.
const INPUT_EVENTS: [&str; 4] = [
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
];

/// The older form: the last input message event, when it is a
/// `gen_ai.user.message`, and its place among the input events.
fn event_prompt(events: &[SpanEvent]) -> Option<(usize, String)> {
    let (position, last) = events
        .iter()
        .filter(|e| INPUT_EVENTS.contains(&e.name.as_str()))
        .enumerate()
        .last()?;
    if last.name != "gen_ai.user.message" {
        return None;
    }
    message_text(&event_body(last)).map(|text| (position, text))
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
