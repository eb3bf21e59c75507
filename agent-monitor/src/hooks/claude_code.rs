//! Claude Code's command hooks (docs/claude-code.md). Claude Code runs the
//! hook command with one JSON object on stdin, whose `hook_event_name`
//! says which event it is; the fields are those of Claude Code's hooks
//! reference (the fixtures in tests/fixtures/claude-code/ follow it).
//!
//! - [`parse`] turns that object into a [`HookInput`], with an error that
//!   names the field when it is not what the reference says.
//! - [`declare`] sends what the event declares to the monitor, and says
//!   whether the call may run ([`Outcome`]).
//!
//! Every event declares into a session whose id is Claude Code's own
//! `session_id`, joined (or opened) first on each connection: each hook
//! invocation is a process of its own.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    Monitor,
    fit::{fit_prompt, fit_tool_end},
};
use crate::{
    api::client::ClientError,
    declare::{Links, Request, SessionStart, Source, Status, ToolEnd, ToolStart},
};

/// One hook invocation's input.
#[derive(Debug, Clone, PartialEq)]
pub enum HookInput {
    /// A tool call Claude is about to make: declared, and blocked if the
    /// policy denies it.
    PreToolUse(ToolUse),
    /// A tool call that completed; `response` is its `tool_response`.
    PostToolUse { call: ToolUse, response: Value },
    /// A tool call that failed: its `error`, and whether the user
    /// interrupted it.
    PostToolUseFailure {
        call: ToolUse,
        error: Option<String>,
        is_interrupt: bool,
    },
    /// A prompt the user submitted.
    UserPromptSubmit { session_id: String, prompt: String },
    /// The session ended (`reason`: `clear`, `logout`, `prompt_input_exit`,
    /// `other`, …).
    SessionEnd {
        session_id: String,
        reason: Option<String>,
    },
    /// Any other event (`SessionStart`, `Stop`, `Notification`, …): nothing
    /// to declare.
    Other { event: String },
}

/// The tool-call fields of PreToolUse, PostToolUse and PostToolUseFailure.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUse {
    pub session_id: String,
    pub tool_name: String,
    pub tool_input: Map<String, Value>,
    /// The model's id for the call; absent from older Claude Code versions.
    pub tool_use_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the hook input is not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("the hook input is not a JSON object")]
    NotObject,
    #[error("the hook input has no `{0}`")]
    Missing(&'static str),
    #[error("`{field}` in the hook input is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
}

/// Parses the JSON object Claude Code writes on the hook's stdin. Fields
/// this adapter does not use (`transcript_path`, `cwd`, `permission_mode`,
/// …) are ignored, so newer Claude Code versions that add fields still
/// parse.
pub fn parse(input: &[u8]) -> Result<HookInput, PayloadError> {
    let value: Value = serde_json::from_slice(input).map_err(PayloadError::NotJson)?;
    let Value::Object(fields) = value else {
        return Err(PayloadError::NotObject);
    };
    let payload = Payload(&fields);
    let event = payload.string("hook_event_name")?;
    Ok(match event.as_str() {
        "PreToolUse" => HookInput::PreToolUse(payload.tool_use()?),
        "PostToolUse" => HookInput::PostToolUse {
            call: payload.tool_use()?,
            response: fields.get("tool_response").cloned().unwrap_or(Value::Null),
        },
        "PostToolUseFailure" => HookInput::PostToolUseFailure {
            call: payload.tool_use()?,
            error: payload.optional_string("error")?,
            is_interrupt: payload.optional_bool("is_interrupt")?.unwrap_or(false),
        },
        "UserPromptSubmit" => HookInput::UserPromptSubmit {
            session_id: payload.string("session_id")?,
            prompt: payload.text("prompt")?,
        },
        "SessionEnd" => HookInput::SessionEnd {
            session_id: payload.string("session_id")?,
            reason: payload.optional_string("reason")?,
        },
        _ => HookInput::Other { event },
    })
}

/// The payload's fields, read with errors that name them.
struct Payload<'a>(&'a Map<String, Value>);

impl Payload<'_> {
    fn tool_use(&self) -> Result<ToolUse, PayloadError> {
        let tool_input = match self.0.get("tool_input") {
            Some(Value::Object(input)) => input.clone(),
            None | Some(Value::Null) => return Err(PayloadError::Missing("tool_input")),
            Some(_) => {
                return Err(PayloadError::WrongType {
                    field: "tool_input",
                    expected: "an object",
                });
            }
        };
        Ok(ToolUse {
            session_id: self.string("session_id")?,
            tool_name: self.string("tool_name")?,
            tool_input,
            tool_use_id: self
                .optional_string("tool_use_id")?
                .filter(|id| !id.is_empty()),
        })
    }

    /// A required identifier: a non-empty string.
    fn string(&self, field: &'static str) -> Result<String, PayloadError> {
        match self.optional_string(field)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(PayloadError::WrongType {
                field,
                expected: "a non-empty string",
            }),
            None => Err(PayloadError::Missing(field)),
        }
    }

    /// A required string that may be empty (a prompt).
    fn text(&self, field: &'static str) -> Result<String, PayloadError> {
        self.optional_string(field)?
            .ok_or(PayloadError::Missing(field))
    }

    fn optional_string(&self, field: &'static str) -> Result<Option<String>, PayloadError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(PayloadError::WrongType {
                field,
                expected: "a string",
            }),
        }
    }

    fn optional_bool(&self, field: &'static str) -> Result<Option<bool>, PayloadError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(PayloadError::WrongType {
                field,
                expected: "a boolean",
            }),
        }
    }
}

impl HookInput {
    /// The event's name, as Claude Code spells it.
    pub fn event(&self) -> &str {
        match self {
            HookInput::PreToolUse(_) => "PreToolUse",
            HookInput::PostToolUse { .. } => "PostToolUse",
            HookInput::PostToolUseFailure { .. } => "PostToolUseFailure",
            HookInput::UserPromptSubmit { .. } => "UserPromptSubmit",
            HookInput::SessionEnd { .. } => "SessionEnd",
            HookInput::Other { event } => event,
        }
    }

    /// Whether Claude Code blocks what the event stands for when the hook
    /// exits 2: the tool call (PreToolUse) or the prompt
    /// (UserPromptSubmit). For the others, exit 2 blocks nothing.
    pub fn can_block(&self) -> bool {
        matches!(
            self,
            HookInput::PreToolUse(_) | HookInput::UserPromptSubmit { .. }
        )
    }
}

/// The id a tool call is declared under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallId {
    /// Claude Code's `tool_use_id`, the same in PreToolUse and PostToolUse.
    ToolUseId(String),
    /// Derived from what both hooks see when there is no `tool_use_id`
    /// (older Claude Code versions): see [`CallId::of`].
    Derived(String),
}

/// How many calls with the same derived id one session may hold: the
/// second identical call is `ID-2`, and so on up to `ID-32`.
pub const MAX_SAME_DERIVED: usize = 32;

impl CallId {
    /// `tool_use_id` when the payload has one. Otherwise `hook-` and the
    /// first 32 hex digits of SHA-256 over the session id, the tool's name
    /// and its input as canonical JSON (keys sorted), separated by NUL:
    /// what PreToolUse and PostToolUse both carry, so that they pair.
    pub fn of(call: &ToolUse) -> CallId {
        if let Some(id) = &call.tool_use_id {
            return CallId::ToolUseId(id.clone());
        }
        let mut input = String::new();
        canonical_json(&Value::Object(call.tool_input.clone()), &mut input);
        let mut hash = Sha256::new();
        for part in [&call.session_id, &call.tool_name, &input] {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        let hex: String = hash.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        CallId::Derived(format!("hook-{hex}"))
    }

    /// The ids to try, in order. An id is never reused in a session, so an
    /// identical call made again gets the next free one (`ID-2`, `ID-3`, …),
    /// and its PostToolUse ends the first of them still open.
    pub fn candidates(&self) -> Vec<String> {
        match self {
            CallId::ToolUseId(id) => vec![id.clone()],
            CallId::Derived(base) => (1..=MAX_SAME_DERIVED)
                .map(|n| match n {
                    1 => base.clone(),
                    n => format!("{base}-{n}"),
                })
                .collect(),
        }
    }
}

/// JSON with object keys sorted at every level, whatever order the map
/// keeps them in.
fn canonical_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// What the hook knows besides its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The process a PreToolUse call binds to: Claude Code's
    /// ([`super::ancestry::agent_process`]).
    pub pid: Option<u32>,
    /// `$AGENT_MONITOR_SESSION`: the session that started Claude Code.
    pub parent_session: Option<String>,
}

/// What became of the declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Declared; the call, or the prompt, goes ahead.
    Recorded,
    /// An event with nothing to declare.
    Ignored,
    /// The policy denied the tool call: Claude Code must not run it.
    Denied {
        rule: Option<String>,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Monitor(#[from] ClientError),
    #[error("the monitor's reply to tool.start has no decision: {0}")]
    NoDecision(Value),
}

/// Sends what `input` declares, on one connection, and says whether the
/// call may run.
pub fn declare(
    input: &HookInput,
    context: &Context,
    monitor: &mut dyn Monitor,
) -> Result<Outcome, HookError> {
    match input {
        HookInput::Other { .. } => Ok(Outcome::Ignored),
        HookInput::PreToolUse(call) => {
            join(monitor, &call.session_id, context)?;
            start_call(monitor, call, context.pid)
        }
        HookInput::PostToolUse { call, response } => {
            join(monitor, &call.session_id, context)?;
            end_call(monitor, call, post_status(response), response.clone())
        }
        HookInput::PostToolUseFailure {
            call,
            error,
            is_interrupt,
        } => {
            join(monitor, &call.session_id, context)?;
            let result = json!({"error": error, "is_interrupt": is_interrupt});
            end_call(monitor, call, Status::Error, result)
        }
        HookInput::UserPromptSubmit { session_id, prompt } => {
            join(monitor, session_id, context)?;
            monitor.request(&Request::Prompt {
                text: fit_prompt(prompt.clone()),
                at: None,
            })?;
            Ok(Outcome::Recorded)
        }
        HookInput::SessionEnd { session_id, .. } => {
            join(monitor, session_id, context)?;
            monitor.request(&Request::SessionEnd)?;
            Ok(Outcome::Recorded)
        }
    }
}

/// `session.start` for Claude's session: joins it when it exists, opens
/// it otherwise, linked to the session that started Claude Code.
pub fn session_start(session_id: &str, parent: Option<&str>) -> Request {
    Request::SessionStart(SessionStart {
        session_id: Some(session_id.to_string()),
        parent_session_id: parent
            .filter(|p| !p.is_empty() && *p != session_id)
            .map(str::to_string),
        ..SessionStart::default()
    })
}

fn join(monitor: &mut dyn Monitor, session_id: &str, context: &Context) -> Result<(), HookError> {
    monitor.request(&session_start(
        session_id,
        context.parent_session.as_deref(),
    ))?;
    Ok(())
}

/// The `tool.start` of a hooked call. It is `detached`: the hook process
/// exits at once, and PostToolUse ends the call from another process.
pub fn tool_start(call: &ToolUse, call_id: &str, pid: Option<u32>) -> Request {
    Request::ToolStart(ToolStart {
        call_id: call_id.to_string(),
        tool: call.tool_name.clone(),
        args: call.tool_input.clone(),
        pid,
        source: Source::Hook,
        links: Links {
            tool_use_id: call.tool_use_id.clone(),
            ..Links::default()
        },
        detached: true,
        ..ToolStart::default()
    })
}

fn start_call(
    monitor: &mut dyn Monitor,
    call: &ToolUse,
    pid: Option<u32>,
) -> Result<Outcome, HookError> {
    let id = CallId::of(call);
    let candidates = id.candidates();
    let mut last = None;
    for call_id in &candidates {
        match monitor.request(&tool_start(call, call_id, pid)) {
            Ok(reply) => return decided(monitor, call_id, reply),
            // A derived id already used: an identical call made before.
            Err(ClientError::Refused { code, message })
                if code == "duplicate_call_id" && matches!(id, CallId::Derived(_)) =>
            {
                last = Some(ClientError::Refused { code, message });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.expect("a derived id has candidates").into())
}

/// Reads the decision; a denied call is ended at once, since Claude Code
/// will not run it and no PostToolUse will come.
fn decided(monitor: &mut dyn Monitor, call_id: &str, reply: Value) -> Result<Outcome, HookError> {
    match reply["decision"].as_str() {
        Some("allow") => Ok(Outcome::Recorded),
        Some("deny") => {
            let reason = reply["reason"].as_str().unwrap_or_default().to_string();
            let rule = reply["rule"].as_str().map(str::to_string);
            // The denial stands whether or not this end is recorded: the
            // call then ends as `unfinished` with the session.
            let _ = monitor.request(&tool_end(
                call_id,
                Status::Error,
                json!({"denied": true, "reason": reason}),
            ));
            Ok(Outcome::Denied { rule, reason })
        }
        _ => Err(HookError::NoDecision(reply)),
    }
}

/// The `tool.end` of a hooked call, its result made to fit a request line.
pub fn tool_end(call_id: &str, status: Status, result: Value) -> Request {
    Request::ToolEnd(fitted_end(call_id, status, result))
}

fn fitted_end(call_id: &str, status: Status, result: Value) -> ToolEnd {
    let mut end = ToolEnd {
        call_id: call_id.to_string(),
        status,
        result: Some(result),
        at: None,
    };
    fit_tool_end(&mut end);
    end
}

fn end_call(
    monitor: &mut dyn Monitor,
    call: &ToolUse,
    status: Status,
    result: Value,
) -> Result<Outcome, HookError> {
    let id = CallId::of(call);
    let candidates = id.candidates();
    // Made to fit once, with room for the longest id tried.
    let longest = candidates
        .iter()
        .max_by_key(|c| c.len())
        .expect("every call id has candidates");
    let end = fitted_end(longest, status, result);
    let mut last = None;
    for call_id in candidates {
        let request = Request::ToolEnd(ToolEnd {
            call_id,
            ..end.clone()
        });
        match monitor.request(&request) {
            Ok(_) => return Ok(Outcome::Recorded),
            // This derived id's call has ended already: an identical call
            // made before. The open one is further on.
            Err(ClientError::Refused { code, message })
                if code == "unknown_call_id" && matches!(id, CallId::Derived(_)) =>
            {
                last = Some(ClientError::Refused { code, message });
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.expect("a derived id has candidates").into())
}

/// A PostToolUse call is `ok` unless its `tool_response` says otherwise:
/// `"isError": true` (an MCP tool's result), `"success": false` (the file
/// tools), or `"interrupted": true` (a Bash command cut off by its
/// timeout). Claude Code reports other failures with PostToolUseFailure.
pub fn post_status(response: &Value) -> Status {
    let failed = response["isError"] == true
        || response["success"] == false
        || response["interrupted"] == true;
    if failed { Status::Error } else { Status::Ok }
}

#[cfg(test)]
#[path = "claude_code_tests.rs"]
mod tests;
