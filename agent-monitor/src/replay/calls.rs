//! Recorded tool calls, decided again under the replayed policy, and the
//! candidate calls of an event.

use std::collections::HashMap;

use serde_json::Value;

use super::tables::CallRow;
use crate::policy::{Context, Effects, Envelope, Policy};

/// A recorded call and what the replayed policy makes of it.
#[derive(Debug)]
pub(crate) struct Call {
    pub row: CallRow,
    pub allow: bool,
    /// The deciding rule; `args unreadable` when the call could not be
    /// decided again.
    pub rule: String,
    pub reason: String,
    pub envelope: Envelope,
    /// Why the call could not be decided again: its arguments (or
    /// declared effects) are not the JSON the agent sent, because the
    /// capture policy hashed, redacted or dropped them. Its events are
    /// judged against an empty envelope.
    pub unreadable: Option<String>,
}

/// What the rule of an undecidable call says.
pub(crate) const UNREADABLE_RULE: &str = "args unreadable";

impl Call {
    pub fn decide(policy: &Policy, cwd: Option<&str>, row: CallRow) -> Call {
        let args = row
            .args
            .as_deref()
            .map(serde_json::from_str::<Value>)
            .and_then(Result::ok)
            .filter(Value::is_object);
        let effects = match row.effects.as_deref() {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Effects>(text).map(Some),
        };
        let unreadable = match (&args, &effects) {
            (None, _) if row.args.is_none() => Some("args not recorded".to_string()),
            (None, _) => Some("args are not JSON (hashed or redacted)".to_string()),
            (_, Err(e)) => Some(format!("declared effects unreadable: {e}")),
            _ => None,
        };
        if let (Some(args), Ok(effects), None) = (&args, &effects, &unreadable) {
            let decision =
                policy.decide_start_in(&Context { cwd }, &row.tool, args, effects.as_ref());
            return Call {
                allow: decision.allow,
                rule: decision.rule,
                reason: decision.reason,
                envelope: decision.envelope,
                unreadable: None,
                row,
            };
        }
        Call {
            // Undecidable: keep the recorded decision, cover nothing.
            allow: row.decision.as_deref() != Some("deny"),
            rule: UNREADABLE_RULE.to_string(),
            reason: unreadable.clone().unwrap_or_default(),
            envelope: Envelope::default(),
            unreadable,
            row,
        }
    }

    /// The rule that denied it, for messages.
    pub fn deny_rule(&self) -> &str {
        match &self.unreadable {
            Some(_) => self.row.rule.as_deref().unwrap_or("the policy"),
            None => &self.rule,
        }
    }

    fn open_at(&self, ts: i64) -> bool {
        self.row.started <= ts && self.row.ended.is_none_or(|end| ts < end)
    }
}

/// Every recorded call, by id and by session.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub all: Vec<Call>,
    by_id: HashMap<(String, String), usize>,
    by_session: HashMap<String, Timeline>,
}

/// A session's calls in start order, and how far each prefix reaches:
/// `reach[i]` is the latest end among the first `i + 1` calls (`i64::MAX`
/// while one is open), so a backward scan for the calls open at a time
/// stops as soon as no earlier call can still be open.
#[derive(Debug, Default)]
struct Timeline {
    calls: Vec<usize>,
    reach: Vec<i64>,
}

impl Calls {
    pub fn new(all: Vec<Call>) -> Calls {
        let mut by_id = HashMap::new();
        for (i, call) in all.iter().enumerate() {
            // A call written twice (open at a stop, then ended) keeps its
            // last row.
            by_id.insert((call.row.session_id.clone(), call.row.call_id.clone()), i);
        }
        let mut lists: HashMap<String, Vec<usize>> = HashMap::new();
        for i in by_id.values() {
            lists
                .entry(all[*i].row.session_id.clone())
                .or_default()
                .push(*i);
        }
        let by_session = lists
            .into_iter()
            .map(|(session, mut calls)| {
                calls.sort_by_key(|i| (all[*i].row.started, *i));
                let mut reach = Vec::with_capacity(calls.len());
                let mut latest = i64::MIN;
                for i in &calls {
                    latest = latest.max(all[*i].row.ended.unwrap_or(i64::MAX));
                    reach.push(latest);
                }
                (session, Timeline { calls, reach })
            })
            .collect();
        Calls {
            all,
            by_id,
            by_session,
        }
    }

    /// The index of the call `call_id` of `session_id`.
    pub fn find(&self, session_id: Option<&str>, call_id: Option<&str>) -> Option<usize> {
        let key = (session_id?.to_string(), call_id?.to_string());
        self.by_id.get(&key).copied()
    }

    /// The calls that may cover an event, best first: the call the event
    /// was bound to, then the session's other calls open at `ts`,
    /// innermost (latest started) first.
    pub fn candidates(
        &self,
        primary: Option<usize>,
        session_id: Option<&str>,
        ts: i64,
    ) -> Vec<usize> {
        let mut out: Vec<usize> = primary.into_iter().collect();
        let Some(timeline) = session_id.and_then(|s| self.by_session.get(s)) else {
            return out;
        };
        let started = timeline
            .calls
            .partition_point(|i| self.all[*i].row.started <= ts);
        for at in (0..started).rev() {
            if timeline.reach[at] <= ts {
                break;
            }
            let i = timeline.calls[at];
            if Some(i) != primary && self.all[i].open_at(ts) {
                out.push(i);
            }
        }
        out
    }

    /// Each call once (the last row of a call written twice).
    pub fn distinct(&self) -> impl Iterator<Item = &Call> {
        let mut indices: Vec<usize> = self.by_id.values().copied().collect();
        indices.sort_unstable();
        indices.into_iter().map(|i| &self.all[i])
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
