//! Replies: exactly one JSON line per request line, in request order.
//!
//! Every reply starts with `"ok"`, so a client can tell success from
//! failure without knowing the request, and carries the request's `id`
//! when it had one.

use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::Value;

use super::{error::ProtocolError, error::quote, parse::Rejected};

/// Error codes the server produces for well-formed requests it cannot
/// accept; the codes of malformed ones are [`ProtocolError::CODES`].
pub mod code {
    /// `tool.end` names a call_id that no open `tool.start` of the session
    /// declared.
    pub const UNKNOWN_CALL_ID: &str = "unknown_call_id";
    /// `tool.start` reuses a call_id the session has used already (open or
    /// ended): one (session, call_id) names one call in the evidence.
    pub const DUPLICATE_CALL_ID: &str = "duplicate_call_id";
    /// The peer may not declare this: it belongs to no monitored agent, or
    /// it named an `agent` without being root.
    pub const NOT_PERMITTED: &str = "not_permitted";
    /// A message that needs a session came before `session.start`.
    pub const NO_SESSION: &str = "no_session";
    /// `agent.register` or `status` sent to `agent-monitor run`, which has
    /// no daemon state to answer them with.
    pub const UNSUPPORTED: &str = "unsupported";
    /// `agent.register` names a process that is gone, or already belongs
    /// to an agent.
    pub const NOT_REGISTERED: &str = "not_registered";
    /// `tool.start` names a `pid` that is not a live process of the agent
    /// the call is declared for: the call cannot bind it.
    pub const NOT_BOUND: &str = "not_bound";

    pub const ALL: [&str; 7] = [
        UNKNOWN_CALL_ID,
        DUPLICATE_CALL_ID,
        NOT_PERMITTED,
        NO_SESSION,
        UNSUPPORTED,
        NOT_REGISTERED,
        NOT_BOUND,
    ];
}

/// The policy's answer to a `tool.start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// The declaration was recorded. `session_id` answers `session.start`.
    Accepted {
        id: Option<Value>,
        session_id: Option<String>,
        /// `session.start` opened the session (rather than joining one
        /// that was open): whoever opened it may end it.
        created: bool,
    },
    /// The answer to `tool.start`: recorded, and decided by the policy.
    Decision {
        id: Option<Value>,
        decision: Decision,
        reason: String,
        /// The rule that decided; `None` for the policy's default.
        rule: Option<String>,
        /// The call this declaration joined, when another adapter had
        /// declared it already: the decision is that call's.
        linked: Option<String>,
    },
    /// The answer to `status`: the daemon's state.
    Status { id: Option<Value>, status: Value },
    /// Refused: nothing of the request was recorded.
    Error {
        id: Option<Value>,
        code: &'static str,
        message: String,
    },
}

impl Reply {
    pub fn accepted(id: Option<Value>) -> Reply {
        Reply::Accepted {
            id,
            session_id: None,
            created: false,
        }
    }

    /// `session.start` joined a session that was open.
    pub fn session_started(id: Option<Value>, session_id: impl Into<String>) -> Reply {
        Reply::Accepted {
            id,
            session_id: Some(session_id.into()),
            created: false,
        }
    }

    /// `session.start` (or `agent.register`) opened a new session.
    pub fn session_created(id: Option<Value>, session_id: impl Into<String>) -> Reply {
        Reply::Accepted {
            id,
            session_id: Some(session_id.into()),
            created: true,
        }
    }

    pub fn decision(
        id: Option<Value>,
        decision: Decision,
        reason: impl Into<String>,
        rule: Option<String>,
    ) -> Reply {
        Reply::Decision {
            id,
            decision,
            reason: reason.into(),
            rule,
            linked: None,
        }
    }

    /// A decision, naming the call the declaration joined.
    pub fn linked(self, call_id: String) -> Reply {
        match self {
            Reply::Decision {
                id,
                decision,
                reason,
                rule,
                ..
            } => Reply::Decision {
                id,
                decision,
                reason,
                rule,
                linked: Some(call_id),
            },
            other => other,
        }
    }

    pub fn protocol_error(id: Option<Value>, error: &ProtocolError) -> Reply {
        Reply::error(id, error.code(), error.to_string())
    }

    pub fn unknown_call_id(id: Option<Value>, call_id: &str) -> Reply {
        let message = format!(
            "unknown call_id `{}`: no open tool.start of this session declared it",
            quote(call_id)
        );
        Reply::error(id, code::UNKNOWN_CALL_ID, message)
    }

    pub fn duplicate_call_id(id: Option<Value>, call_id: &str) -> Reply {
        let message = format!(
            "call_id `{}` is already used in this session",
            quote(call_id)
        );
        Reply::error(id, code::DUPLICATE_CALL_ID, message)
    }

    /// `why` completes "not permitted: …", e.g. "this process belongs to no
    /// monitored agent".
    pub fn not_permitted(id: Option<Value>, why: &str) -> Reply {
        Reply::error(id, code::NOT_PERMITTED, format!("not permitted: {why}"))
    }

    /// A non-root peer named an `agent`.
    pub fn agent_not_permitted(id: Option<Value>) -> Reply {
        Reply::not_permitted(id, "only root may name an agent")
    }

    pub fn not_bound(id: Option<Value>, why: String) -> Reply {
        Reply::error(id, code::NOT_BOUND, why)
    }

    pub fn not_registered(id: Option<Value>, why: String) -> Reply {
        Reply::error(id, code::NOT_REGISTERED, why)
    }

    /// A request only the daemon answers, sent to `agent-monitor run`.
    pub fn daemon_only(id: Option<Value>, kind: &str) -> Reply {
        Reply::error(
            id,
            code::UNSUPPORTED,
            format!("{kind} is answered by `agent-monitor daemon` only, not by `run`"),
        )
    }

    pub fn no_session(id: Option<Value>) -> Reply {
        let message = "no session is open on this connection; send session.start first";
        Reply::error(id, code::NO_SESSION, message.to_owned())
    }

    fn error(id: Option<Value>, code: &'static str, message: String) -> Reply {
        Reply::Error { id, code, message }
    }

    pub fn id(&self) -> Option<&Value> {
        match self {
            Reply::Accepted { id, .. }
            | Reply::Decision { id, .. }
            | Reply::Status { id, .. }
            | Reply::Error { id, .. } => id.as_ref(),
        }
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self, Reply::Error { .. })
    }

    /// The reply as one line, `\n` included.
    pub fn to_line(&self) -> Vec<u8> {
        // Only strings, enums and already-parsed JSON values go in, none of
        // which can fail to serialise.
        let mut line = serde_json::to_vec(self).expect("a reply always serialises");
        line.push(b'\n');
        line
    }
}

impl From<Rejected> for Reply {
    fn from(rejected: Rejected) -> Reply {
        Reply::protocol_error(rejected.id, &rejected.error)
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("ok", &self.is_ok())?;
        if let Some(id) = self.id() {
            map.serialize_entry("id", id)?;
        }
        match self {
            Reply::Accepted {
                session_id,
                created,
                ..
            } => {
                if let Some(session_id) = session_id {
                    map.serialize_entry("session_id", session_id)?;
                }
                if *created {
                    map.serialize_entry("created", &true)?;
                }
            }
            Reply::Decision {
                decision,
                reason,
                rule,
                linked,
                ..
            } => {
                map.serialize_entry("decision", decision)?;
                map.serialize_entry("reason", reason)?;
                map.serialize_entry("rule", rule)?;
                if let Some(linked) = linked {
                    map.serialize_entry("linked", linked)?;
                }
            }
            Reply::Status { status, .. } => map.serialize_entry("status", status)?,
            Reply::Error { code, message, .. } => {
                map.serialize_entry("error", &WireError { code, message })?;
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
struct WireError<'a> {
    code: &'a str,
    message: &'a str,
}
