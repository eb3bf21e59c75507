//! Recorded tool calls, to be declared again: who declared each, what it
//! asked for, and what the replayed policy answered.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::tables::CallRow;
use crate::{
    declare::{Reply, Request, Status, ToolEnd, ToolStart},
    policy::Effects,
};

/// A recorded call and what the replay made of it.
#[derive(Debug)]
pub(crate) struct Call {
    pub row: CallRow,
    /// The arguments and declared effects, when they are what the agent
    /// sent.
    request: Option<(Map<String, Value>, Option<Effects>)>,
    /// Why the call could not be decided again: its arguments (or
    /// declared effects) are not the JSON the agent sent, because the
    /// capture policy hashed, redacted or dropped them; or the correlator
    /// refused the declaration. It keeps its recorded decision and covers
    /// nothing.
    pub unreadable: Option<String>,
    /// The replayed policy's answer, once declared.
    pub decided: Option<Decided>,
}

/// The answer to a call's `tool.start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Decided {
    pub allow: bool,
    pub rule: Option<String>,
    pub reason: String,
}

/// Who declared a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Declarer {
    /// A process of the agent's tree, with its key when recorded.
    Tracked { pid: u32, key: Option<String> },
    /// A process outside the tree (root naming the agent).
    Outside { pid: u32 },
}

impl Declarer {
    /// What tells one declaring process from another.
    pub fn id(&self) -> String {
        match self {
            Declarer::Tracked { pid, key } => key.clone().unwrap_or_else(|| pid.to_string()),
            Declarer::Outside { pid } => format!("pid {pid}"),
        }
    }
}

impl Call {
    pub fn new(row: CallRow) -> Call {
        let args = row
            .args
            .as_deref()
            .map(serde_json::from_str::<Map<String, Value>>)
            .and_then(Result::ok);
        let effects = match row.effects.as_deref() {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Effects>(text).map(Some),
        };
        let (request, unreadable) = match (args, effects) {
            (Some(args), Ok(effects)) => (Some((args, effects)), None),
            (None, _) if row.args.is_none() => (None, Some("args not recorded".to_string())),
            (None, _) => (None, Some("args are not JSON (hashed or redacted)".into())),
            (_, Err(e)) => (None, Some(format!("declared effects unreadable: {e}"))),
        };
        Call {
            row,
            request,
            unreadable,
            decided: None,
        }
    }

    /// The declaring process, from `declared_by`: `pid@start_ns` for a
    /// tracked one, `pid N` for one outside the tree (the kernel knew no
    /// start for it). Unrecorded, the session's root process declared it,
    /// or, for a session of no process, someone outside.
    pub fn declarer(&self, session_pid: Option<u32>) -> Declarer {
        let text = self.row.declared_by.as_deref().unwrap_or_default();
        if let Some(pid) = text.strip_prefix("pid ").and_then(|p| p.parse().ok()) {
            return Declarer::Outside { pid };
        }
        if let Some(pid) = text.split_once('@').and_then(|(p, _)| p.parse().ok()) {
            return Declarer::Tracked {
                pid,
                key: Some(text.to_string()),
            };
        }
        match session_pid {
            Some(pid) => Declarer::Tracked { pid, key: None },
            None => Declarer::Outside { pid: 0 },
        }
    }

    /// The `tool.start` that declares the call again. An unreadable call
    /// asks for nothing: it keeps its recorded decision instead.
    pub fn start(&self) -> Request {
        let (args, effects) = self.request.clone().unwrap_or_default();
        Request::ToolStart(ToolStart {
            call_id: self.row.call_id.clone(),
            tool: self.row.tool.clone(),
            args,
            effects: effects.map(|e| e.0),
            ..ToolStart::default()
        })
    }

    pub fn end(&self) -> Request {
        Request::ToolEnd(ToolEnd {
            call_id: self.row.call_id.clone(),
            status: if self.row.status == "error" {
                Status::Error
            } else {
                Status::Ok
            },
            result: None,
            at: None,
        })
    }

    /// Whether it was allowed at the time.
    pub fn recorded_allow(&self) -> bool {
        self.row.decision.as_deref() != Some("deny")
    }

    /// Takes the correlator's answer to [`Call::start`]; false when it
    /// refused the declaration.
    pub fn answer(&mut self, reply: Reply) -> bool {
        match reply {
            Reply::Decision {
                decision,
                reason,
                rule,
                ..
            } => {
                self.decided = Some(Decided {
                    allow: decision == crate::declare::Decision::Allow,
                    rule,
                    reason,
                });
                true
            }
            other => {
                self.refused(&other);
                false
            }
        }
    }

    /// The correlator refused to declare the call again: it is judged as
    /// an unreadable one would be, without a call.
    pub fn refused(&mut self, reply: &Reply) {
        let why = match reply {
            Reply::Error { message, .. } => message.clone(),
            other => format!("{other:?}"),
        };
        self.unreadable = Some(format!("could not be declared again: {why}"));
    }
}

/// Each call once, by start: a call written twice (open at a stop, then
/// ended) keeps its last row.
pub(crate) fn distinct(rows: Vec<CallRow>) -> Vec<Call> {
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let mut out: Vec<CallRow> = Vec::new();
    for row in rows {
        let key = (row.session_id.clone(), row.call_id.clone());
        match index.get(&key) {
            Some(i) => out[*i] = row,
            None => {
                index.insert(key, out.len());
                out.push(row);
            }
        }
    }
    out.sort_by_key(|r| r.started);
    out.into_iter().map(Call::new).collect()
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
