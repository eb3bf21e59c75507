//! Decoding one request line into an [`Envelope`].
//!
//! The line is parsed to a `serde_json::Value` first and then read field by
//! field, rather than deserialised straight into the types: that way an
//! unknown `type` is told apart from a bad field, and every error names the
//! field at fault (`tool_calls[2].call_id`). serde_json's recursion limit
//! bounds the nesting a peer can send.
//!
//! Rules shared by every field: unknown fields are ignored (newer clients
//! may send more), and `null` counts as absent.

use serde_json::{Map, Value};

use super::{
    error::{ProtocolError, quote},
    message::{
        EffectKind, Effects, Envelope, Links, MAX_IDENT, MAX_PATTERN_LEN, MAX_PATTERNS,
        ModelOutput, PlannedCall, Register, Request, SessionStart, Source, Status, ToolEnd,
        ToolStart,
    },
};

/// A refused line, with the request id when one could be read, so that even
/// the error reply can be matched to its request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Rejected {
    pub id: Option<Value>,
    pub error: ProtocolError,
}

/// Decodes one line (without its line ending).
pub fn decode(line: &[u8]) -> Result<Envelope, ProtocolError> {
    decode_with_id(line).map_err(|rejected| rejected.error)
}

/// [`decode`], keeping the request id of a refused line for its reply.
pub fn decode_with_id(line: &[u8]) -> Result<Envelope, Rejected> {
    let without_id = |error| Rejected { id: None, error };
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        without_id(ProtocolError::NotJson {
            detail: e.to_string(),
        })
    })?;
    let Value::Object(object) = value else {
        return Err(without_id(ProtocolError::NotAnObject));
    };
    let mut fields = Fields::new(object, "");
    let id = request_id(&mut fields).map_err(without_id)?;
    envelope(fields, id.clone()).map_err(|error| Rejected { id, error })
}

fn request_id(fields: &mut Fields) -> Result<Option<Value>, ProtocolError> {
    match fields.take("id") {
        None => Ok(None),
        Some(Value::String(s)) if s.len() > MAX_IDENT => Err(ProtocolError::bad(
            "id",
            format!("longer than {MAX_IDENT} bytes"),
        )),
        Some(id @ (Value::String(_) | Value::Number(_))) => Ok(Some(id)),
        Some(_) => Err(ProtocolError::bad("id", "must be a string or a number")),
    }
}

fn envelope(mut fields: Fields, id: Option<Value>) -> Result<Envelope, ProtocolError> {
    let kind = match fields.take("type") {
        None => return Err(ProtocolError::missing("type")),
        Some(Value::String(kind)) => kind,
        Some(_) => return Err(ProtocolError::bad("type", "must be a string")),
    };
    // Checked before any other field: for an unknown type, every other
    // complaint would be beside the point.
    if !Request::TYPES.contains(&kind.as_str()) {
        return Err(ProtocolError::unknown_type(&kind));
    }
    let agent = fields.optional_ident("agent")?;
    let request = match kind.as_str() {
        "session.start" => Request::SessionStart(SessionStart {
            session_id: fields.optional_ident("session_id")?,
            task: fields.optional_string("task")?,
            user: fields.optional_string("user")?,
            parent_session_id: fields.optional_ident("parent_session_id")?,
        }),
        "prompt" => Request::Prompt {
            text: fields.string("text")?,
            at: fields.optional_time("at")?,
        },
        "model.output" => Request::ModelOutput(ModelOutput {
            text: fields.string("text")?,
            tool_calls: planned_calls(&mut fields)?,
            at: fields.optional_time("at")?,
        }),
        "tool.start" => Request::ToolStart(ToolStart {
            call_id: fields.ident("call_id")?,
            tool: fields.ident("tool")?,
            args: fields.object("args")?,
            effects: effects(&mut fields)?,
            pid: fields.optional_pid("pid")?,
            source: source(&mut fields)?,
            links: Links {
                tool_use_id: fields.optional_ident("tool_use_id")?,
                mcp_request_id: mcp_request_id(&mut fields)?,
                otel_span_id: fields.optional_ident("otel_span_id")?,
            },
            detached: fields.optional_bool("detached")?.unwrap_or(false),
            at: fields.optional_time("at")?,
        }),
        "tool.end" => Request::ToolEnd(ToolEnd {
            call_id: fields.ident("call_id")?,
            status: status(&mut fields)?,
            result: fields.take("result"),
            at: fields.optional_time("at")?,
        }),
        "session.end" => Request::SessionEnd,
        "agent.register" => Request::Register(Register {
            name: fields.ident("name")?,
            pid: fields.optional_pid("pid")?,
            task: fields.optional_string("task")?,
        }),
        "status" => Request::DaemonStatus,
        other => return Err(ProtocolError::unknown_type(other)),
    };
    Ok(Envelope { id, agent, request })
}

fn status(fields: &mut Fields) -> Result<Status, ProtocolError> {
    match fields.take("status") {
        None => Err(fields.missing("status")),
        Some(Value::String(s)) if s == "ok" => Ok(Status::Ok),
        Some(Value::String(s)) if s == "error" => Ok(Status::Error),
        Some(_) => Err(fields.bad("status", "must be \"ok\" or \"error\"")),
    }
}

fn source(fields: &mut Fields) -> Result<Source, ProtocolError> {
    match fields.take("source") {
        None => Ok(Source::default()),
        Some(Value::String(s)) => Source::from_name(&s).ok_or_else(|| {
            let names = Source::ALL.map(|s| format!("\"{}\"", s.name())).join(", ");
            fields.bad("source", &format!("must be one of {names}"))
        }),
        Some(_) => Err(fields.bad("source", "must be a string")),
    }
}

/// A JSON-RPC id, a string or a number, kept as text: a number's digits,
/// a string as it is. `7` and `"7"` read the same; a client that uses both
/// in one session is told apart by the calls' other fields.
fn mcp_request_id(fields: &mut Fields) -> Result<Option<String>, ProtocolError> {
    match fields.take("mcp_request_id") {
        None => Ok(None),
        Some(Value::String(s)) => check_ident("mcp_request_id", s).map(Some),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(fields.bad("mcp_request_id", "must be a string or a number")),
    }
}

fn planned_calls(fields: &mut Fields) -> Result<Vec<PlannedCall>, ProtocolError> {
    let Some(value) = fields.take("tool_calls") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = value else {
        return Err(fields.bad("tool_calls", "must be an array"));
    };
    let mut calls = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("tool_calls[{i}]");
        let call = match item {
            Value::String(call_id) => PlannedCall {
                call_id: check_ident(&path, call_id)?,
                tool: None,
                args: None,
            },
            Value::Object(object) => {
                let mut call = Fields::new(object, &path);
                PlannedCall {
                    call_id: call.ident("call_id")?,
                    tool: call.optional_ident("tool")?,
                    args: call.optional_object("args")?,
                }
            }
            _ => return Err(ProtocolError::bad(path, "must be a call_id or an object")),
        };
        calls.push(call);
    }
    Ok(calls)
}

fn effects(fields: &mut Fields) -> Result<Option<Effects>, ProtocolError> {
    let Some(object) = fields.optional_object("effects")? else {
        return Ok(None);
    };
    let mut effects = Effects::new();
    let mut total = 0usize;
    for (name, patterns) in object {
        let field = format!("effects.{}", quote(&name));
        let Some(kind) = EffectKind::from_name(&name) else {
            return Err(ProtocolError::bad(
                "effects",
                format!(
                    "unknown effect kind `{}`; expected one of {}",
                    quote(&name),
                    EffectKind::ALL.map(EffectKind::name).join(", ")
                ),
            ));
        };
        let Value::Array(patterns) = patterns else {
            return Err(ProtocolError::bad(field, "must be an array of patterns"));
        };
        total += patterns.len();
        if total > MAX_PATTERNS {
            return Err(ProtocolError::bad(
                "effects",
                format!("more than {MAX_PATTERNS} patterns"),
            ));
        }
        let mut kept = Vec::with_capacity(patterns.len());
        for (i, pattern) in patterns.into_iter().enumerate() {
            let at = format!("{field}[{i}]");
            match pattern {
                Value::String(p) if p.is_empty() => return Err(ProtocolError::bad(at, "is empty")),
                Value::String(p) if p.len() > MAX_PATTERN_LEN => {
                    let detail = format!("longer than {MAX_PATTERN_LEN} bytes");
                    return Err(ProtocolError::bad(at, detail));
                }
                Value::String(p) => kept.push(p),
                _ => return Err(ProtocolError::bad(at, "must be a string")),
            }
        }
        effects.insert(kind, kept);
    }
    Ok(Some(effects))
}

fn check_ident(field: &str, value: String) -> Result<String, ProtocolError> {
    if value.is_empty() {
        Err(ProtocolError::bad(field, "is empty"))
    } else if value.len() > MAX_IDENT {
        Err(ProtocolError::bad(
            field,
            format!("longer than {MAX_IDENT} bytes"),
        ))
    } else {
        Ok(value)
    }
}

/// The fields of one JSON object, taken out one by one. `prefix` places a
/// nested object in error messages (`tool_calls[0]`).
struct Fields {
    object: Map<String, Value>,
    prefix: String,
}

impl Fields {
    fn new(object: Map<String, Value>, prefix: &str) -> Fields {
        Fields {
            object,
            prefix: prefix.to_owned(),
        }
    }

    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    fn missing(&self, name: &str) -> ProtocolError {
        ProtocolError::missing(self.path(name))
    }

    fn bad(&self, name: &str, detail: &str) -> ProtocolError {
        ProtocolError::bad(self.path(name), detail)
    }

    /// The field's value; `None` when absent or `null`.
    fn take(&mut self, name: &str) -> Option<Value> {
        self.object.remove(name).filter(|value| !value.is_null())
    }

    fn optional_string(&mut self, name: &str) -> Result<Option<String>, ProtocolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.bad(name, "must be a string")),
        }
    }

    fn string(&mut self, name: &str) -> Result<String, ProtocolError> {
        self.optional_string(name)?
            .ok_or_else(|| self.missing(name))
    }

    /// A non-empty string of at most [`MAX_IDENT`] bytes.
    fn optional_ident(&mut self, name: &str) -> Result<Option<String>, ProtocolError> {
        let path = self.path(name);
        self.optional_string(name)?
            .map(|s| check_ident(&path, s))
            .transpose()
    }

    fn ident(&mut self, name: &str) -> Result<String, ProtocolError> {
        self.optional_ident(name)?.ok_or_else(|| self.missing(name))
    }

    fn optional_object(&mut self, name: &str) -> Result<Option<Map<String, Value>>, ProtocolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(_) => Err(self.bad(name, "must be a JSON object")),
        }
    }

    fn optional_bool(&mut self, name: &str) -> Result<Option<bool>, ProtocolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.bad(name, "must be true or false")),
        }
    }

    fn optional_pid(&mut self, name: &str) -> Result<Option<u32>, ProtocolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| self.bad(name, "must be a process id")),
            Some(_) => Err(self.bad(name, "must be a number")),
        }
    }

    /// A time as Unix nanoseconds: a non-negative integer.
    fn optional_time(&mut self, name: &str) -> Result<Option<i64>, ProtocolError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
                self.bad(
                    name,
                    "must be Unix time in nanoseconds, a non-negative integer",
                )
            }),
            Some(_) => Err(self.bad(name, "must be a number (Unix time in nanoseconds)")),
        }
    }

    fn object(&mut self, name: &str) -> Result<Map<String, Value>, ProtocolError> {
        self.optional_object(name)?
            .ok_or_else(|| self.missing(name))
    }
}
