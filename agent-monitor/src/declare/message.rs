//! What an agent declares: one [`Envelope`] per request line.
//!
//! The types serialise to the wire form (clients and tests use that), but
//! they are decoded only by [`super::decode`], which checks every field and
//! names the one at fault; a derived `Deserialize` would accept less clearly.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

/// Longest identifier (`call_id`, `tool`, `session_id`, `agent`, a string
/// `id`), in bytes. Identifiers land in every evidence row that refers to
/// them, so they are kept short.
pub const MAX_IDENT: usize = 256;

/// Most patterns in one `effects` envelope, all kinds together.
pub const MAX_PATTERNS: usize = 1024;

/// Longest effect pattern, in bytes (`PATH_MAX`).
pub const MAX_PATTERN_LEN: usize = 4096;

/// One request line: the message and what surrounds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Envelope {
    /// Chosen by the client and echoed in the reply: a string or a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The agent declared for. Only root may name one; the server checks
    /// that, since only it knows the peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(flatten)]
    pub request: Request,
}

impl Envelope {
    /// A request with neither `id` nor `agent`.
    pub fn bare(request: Request) -> Envelope {
        Envelope {
            id: None,
            agent: None,
            request,
        }
    }
}

/// The messages. The names are the protocol's and do not change.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Request {
    #[serde(rename = "session.start")]
    SessionStart(SessionStart),
    #[serde(rename = "prompt")]
    Prompt {
        text: String,
        /// When it was given, if earlier than the declaration (Unix ns).
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<i64>,
    },
    #[serde(rename = "model.output")]
    ModelOutput(ModelOutput),
    #[serde(rename = "tool.start")]
    ToolStart(ToolStart),
    #[serde(rename = "tool.end")]
    ToolEnd(ToolEnd),
    #[serde(rename = "session.end")]
    SessionEnd,
    /// Daemon only: makes the peer (or a descendant of it) and its
    /// descendants a new agent.
    #[serde(rename = "agent.register")]
    Register(Register),
    /// Daemon only: the daemon's state, as `agent-monitor status` shows it.
    #[serde(rename = "status")]
    DaemonStatus,
}

impl Request {
    /// Every message type, as it is spelt on the wire.
    pub const TYPES: [&'static str; 8] = [
        "session.start",
        "prompt",
        "model.output",
        "tool.start",
        "tool.end",
        "session.end",
        "agent.register",
        "status",
    ];

    pub fn type_name(&self) -> &'static str {
        match self {
            Request::SessionStart(_) => "session.start",
            Request::Prompt { .. } => "prompt",
            Request::ModelOutput(_) => "model.output",
            Request::ToolStart(_) => "tool.start",
            Request::ToolEnd(_) => "tool.end",
            Request::SessionEnd => "session.end",
            Request::Register(_) => "agent.register",
            Request::DaemonStatus => "status",
        }
    }
}

/// `agent.register`: who becomes an agent, under which name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Register {
    /// The agent's name in the evidence.
    pub name: String,
    /// The process to register: the peer itself when absent, else one of
    /// its descendants (root may name any process).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// A task description for the session row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionStart {
    /// The agent's own id for the session; the server picks one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session that delegated this one (multi-agent work).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_session_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelOutput {
    pub text: String,
    /// The tool calls the model asked for, in its order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<PlannedCall>,
    /// When the model answered, if earlier than the declaration (Unix ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// A tool call as the model asked for it; the call itself is declared
/// later with `tool.start` under the same `call_id`. On the wire either an
/// object or, as a shorthand, just the `call_id` string.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlannedCall {
    pub call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Map<String, Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ToolStart {
    pub call_id: String,
    pub tool: String,
    pub args: Map<String, Value>,
    /// What the call says it will do; the policy matches it and the
    /// kernel's actions against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects: Option<Effects>,
    /// The process the call binds to, when not the declaring peer: the
    /// MCP server a proxy started, the agent a hook runs for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Which adapter declared it.
    #[serde(skip_serializing_if = "Source::is_api")]
    pub source: Source,
    /// The same call's ids elsewhere, by which adapters' declarations of
    /// one call are joined.
    #[serde(flatten)]
    pub links: Links,
    /// The call outlives its connection: a hook process declares it and
    /// exits, and another ends it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub detached: bool,
    /// When it started, for a call declared after the fact (Unix ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

/// A call's ids outside the monitor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Links {
    /// The model's id of the call: Anthropic's `tool_use` id, OpenAI's
    /// tool-call id, OpenTelemetry's `gen_ai.tool.call.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// The JSON-RPC id of the MCP `tools/call`, as text: a number's
    /// digits, a string as it is (so `7` and `"7"` read the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_request_id: Option<String>,
    /// The OpenTelemetry `execute_tool` span's id, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel_span_id: Option<String>,
}

/// Who declared a call: an agent through the API or an SDK, or one of the
/// adapters that declare for agents that know nothing of the monitor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Api,
    Mcp,
    Hook,
    Otel,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Api, Source::Mcp, Source::Hook, Source::Otel];

    pub fn name(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Mcp => "mcp",
            Source::Hook => "hook",
            Source::Otel => "otel",
        }
    }

    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }

    fn is_api(&self) -> bool {
        *self == Source::Api
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolEnd {
    pub call_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// When it ended, for a call declared after the fact (Unix ns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// The effects envelope: for each kind, the patterns the call may touch.
/// The patterns are kept as written; matching them is the policy's job.
pub type Effects = BTreeMap<EffectKind, Vec<String>>;

/// The kinds of effect a call may declare: the policy's, so that a
/// declared envelope and the policy's speak of the same things.
pub use crate::policy::EffectKind;
