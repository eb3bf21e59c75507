//! What the proxy reads in a copy of each JSON-RPC message, without I/O:
//! the `tools/call` requests to declare, the responses that end them, and
//! the cancellations that give up on them. The relayed bytes are never
//! built from what is parsed here.

use serde_json::{Map, Value, json};

use crate::declare::Status;

/// A JSON-RPC request id (a string or a number), compared by its JSON text
/// so that it can key a map.
#[derive(Clone, Debug)]
pub struct RequestId {
    value: Value,
    key: String,
}

impl RequestId {
    /// The id of a message, when it is one JSON-RPC allows for a request:
    /// a string or a number (MCP forbids `null`).
    pub fn from_value(value: &Value) -> Option<RequestId> {
        match value {
            Value::String(_) | Value::Number(_) => Some(RequestId {
                key: value.to_string(),
                value: value.clone(),
            }),
            _ => None,
        }
    }

    /// The id as it came, for `mcp_request_id` and for answers.
    pub fn value(&self) -> &Value {
        &self.value
    }
}

impl PartialEq for RequestId {
    fn eq(&self, other: &RequestId) -> bool {
        self.key == other.key
    }
}

impl Eq for RequestId {}

impl std::hash::Hash for RequestId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key)
    }
}

/// A well-formed `tools/call` request.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub id: RequestId,
    pub name: String,
    /// `params.arguments`, `{}` when absent or `null`.
    pub arguments: Map<String, Value>,
}

/// One message of a line (or of an HTTP body), as far as the proxy cares.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// A `tools/call` to declare before it reaches the server.
    ToolCall(ToolCall),
    /// A `tools/call` that no server could run as sent: its id, when it has
    /// a usable one, and what is wrong with it.
    BadToolCall {
        id: Option<RequestId>,
        problem: String,
    },
    /// `notifications/cancelled` for a request id.
    Cancelled { request_id: RequestId },
    /// A response: `status` is `error` for a JSON-RPC error or a result with
    /// `isError: true`; `result` is the `result`, or the `error`.
    Response {
        id: RequestId,
        status: Status,
        result: Value,
    },
    /// Anything else: another request (with its id), a notification, or a
    /// value that is no JSON-RPC message.
    Other { request_id: Option<RequestId> },
}

/// The messages of one line or body that is JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// The line was a JSON array: a batch.
    pub batch: bool,
    pub messages: Vec<Message>,
}

impl Scan {
    /// Whether anything in it is a `tools/call`, well-formed or not.
    pub fn has_tool_calls(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m, Message::ToolCall(_) | Message::BadToolCall { .. }))
    }
}

/// Bytes that are not JSON, with serde_json's account of why: invalid
/// syntax, but also what other parsers take and serde_json does not
/// (`NaN`, `Infinity`, a number out of `f64`'s range, nesting deeper than
/// 128, a lone surrogate, invalid UTF-8, two values on one line split by a
/// lone `\r`). The server may read a message in it that the proxy cannot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotJson(pub String);

/// Reads one line or body: `Ok(None)` when it is only whitespace, or JSON
/// that is neither an object nor an array (no JSON-RPC message, and no
/// server acts on it); `Err` when it is not JSON.
pub fn scan(bytes: &[u8]) -> Result<Option<Scan>, NotJson> {
    // JSON's own whitespace: anything else is for the parser to judge.
    if bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(bytes) {
        Err(err) => Err(NotJson(err.to_string())),
        Ok(Value::Array(items)) => Ok(Some(Scan {
            batch: true,
            messages: items.into_iter().map(classify).collect(),
        })),
        Ok(object @ Value::Object(_)) => Ok(Some(Scan {
            batch: false,
            messages: vec![classify(object)],
        })),
        Ok(_) => Ok(None),
    }
}

/// The messages in a server's line or body, when it has any: what is not
/// JSON there answers nothing.
pub fn responses(bytes: &[u8]) -> Option<Scan> {
    scan(bytes).ok().flatten()
}

/// What one element of a line is.
pub fn classify(value: Value) -> Message {
    let Value::Object(mut object) = value else {
        return Message::Other { request_id: None };
    };
    let id = object.get("id").filter(|v| !v.is_null());
    match object.get("method").and_then(Value::as_str) {
        Some("tools/call") => tool_call(&mut object),
        Some("notifications/cancelled") if id.is_none() => {
            match object
                .get("params")
                .and_then(|p| p.get("requestId"))
                .and_then(RequestId::from_value)
            {
                Some(request_id) => Message::Cancelled { request_id },
                None => Message::Other { request_id: None },
            }
        }
        Some(_) => Message::Other {
            request_id: id.and_then(RequestId::from_value),
        },
        None => response(&mut object),
    }
}

fn tool_call(object: &mut Map<String, Value>) -> Message {
    let raw_id = object.get("id").filter(|v| !v.is_null());
    let id = raw_id.and_then(RequestId::from_value);
    let bad = |id: Option<RequestId>, problem: &str| Message::BadToolCall {
        id,
        problem: problem.to_string(),
    };
    let Some(id) = id else {
        return bad(
            None,
            if raw_id.is_some() {
                "its id is neither a string nor a number"
            } else {
                "it has no id: a tools/call must be a request"
            },
        );
    };
    let Some(Value::Object(params)) = object.get_mut("params") else {
        return bad(Some(id), "its params are not an object");
    };
    let name = match params.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return bad(Some(id), "params.name is not a non-empty string"),
    };
    let arguments = match params.get_mut("arguments").map(Value::take) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return bad(Some(id), "params.arguments is not an object"),
    };
    Message::ToolCall(ToolCall {
        id,
        name,
        arguments,
    })
}

fn response(object: &mut Map<String, Value>) -> Message {
    let Some(id) = object.get("id").and_then(RequestId::from_value) else {
        return Message::Other { request_id: None };
    };
    if let Some(error) = object.get_mut("error").filter(|e| !e.is_null()) {
        return Message::Response {
            id,
            status: Status::Error,
            result: error.take(),
        };
    }
    match object.get_mut("result") {
        Some(result) => {
            let status = if result.get("isError") == Some(&Value::Bool(true)) {
                Status::Error
            } else {
                Status::Ok
            };
            Message::Response {
                id,
                status,
                result: result.take(),
            }
        }
        None => Message::Other { request_id: None },
    }
}

/// The answer the proxy gives in the server's place to a call it did not
/// relay: a tool result with `isError`, which MCP clients show the model as
/// the tool's failure, rather than a protocol error that some abort on.
/// `resultType` is required from protocol version 2026-07-28 on, and an
/// extra field that earlier versions' results allow.
pub fn denial(id: &RequestId, reason: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.value(),
        "result": {
            "content": [{"type": "text", "text": format!("agent-monitor denied this tool call: {reason}")}],
            "isError": true,
            "resultType": "complete",
        },
    })
}

/// JSON-RPC's "Invalid params" (-32602), for a `tools/call` no server could
/// run as sent.
pub const INVALID_PARAMS: i64 = -32602;

/// The server-error code the proxy answers with for a request it did not
/// relay because another request in its batch was refused.
pub const NOT_RELAYED: i64 = -32000;

/// JSON-RPC's "Parse error" (-32700), for a message that is not JSON.
pub const PARSE_ERROR: i64 = -32700;

/// The answer to a message that is not JSON. Its id stays `null`, as
/// JSON-RPC says when the id cannot be read: digging one out of bytes the
/// proxy cannot parse would be a guess.
pub fn parse_error(not_json: &NotJson) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": PARSE_ERROR,
            "message": format!("Parse error: {} (agent-monitor relays only messages it can read)", not_json.0),
        },
    })
}

/// A JSON-RPC error response.
pub fn error_response(id: &RequestId, code: i64, message: &str) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id.value(),
        "error": {"code": code, "message": message},
    })
}
