//! What a replay found: verdict counts, the events whose verdict or rule
//! changed, the alerts the replayed policy raises, and the decisions that
//! flip.

use std::{
    collections::{BTreeMap, HashSet},
    path::PathBuf,
};

use super::{calls::Call, engine::Judged, events::EventRow, store::Store, tables::AlertKey};
use crate::{evidence::declared::AlertRow, policy::Policy};

/// Most changes and alerts a report keeps; the rest are counted.
pub const MAX_KEPT: usize = 10_000;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    pub dir: PathBuf,
    pub policy_name: String,
    pub policy_sha256: String,
    /// The hashes of the policies that made the recorded decisions, with
    /// how many each made (`""`: decisions that recorded none).
    pub recorded_policies: BTreeMap<String, u64>,
    pub events: u64,
    /// Events by old verdict → new verdict, in verdict order.
    pub transitions: Vec<Transition>,
    /// Events whose verdict or rule changed, in time order (at most
    /// [`MAX_KEPT`]; `changes_total` counts them all).
    pub changes: Vec<Change>,
    pub changes_total: u64,
    /// The alerts the replayed policy raises (at most [`MAX_KEPT`]).
    pub alerts: Vec<Alert>,
    pub alerts_total: u64,
    /// Of `alerts_total`, those the store has no alert for (same event,
    /// same kind).
    pub alerts_new: u64,
    /// Recorded tool calls (each once).
    pub calls: u64,
    /// Calls decided the other way now.
    pub flips: Vec<Flip>,
    /// Calls that could not be decided again: judged with an empty
    /// envelope.
    pub unreadable_calls: Vec<UnreadableCall>,
    /// Events not judged again, by reason (`unverifiable`, `unknown kind`).
    pub kept: BTreeMap<String, u64>,
    /// Tables the store lacks, read as empty.
    pub missing_tables: Vec<String>,
    /// Journal segments not yet published: their rows are not replayed.
    pub unpublished_segments: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Transition {
    /// `none` for events stored without a verdict.
    pub old: String,
    pub new: String,
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub seq: u64,
    /// Wall-clock ns.
    pub ts: i64,
    pub session_id: Option<String>,
    /// The recorded call, or the call that covers it now.
    pub tool_call_id: Option<String>,
    pub kind: String,
    /// The event's effects as the policy sees them (`file.read /etc/x`).
    pub effect: String,
    pub old_verdict: Option<String>,
    pub old_rule: Option<String>,
    pub new_verdict: String,
    pub new_rule: Option<String>,
}

/// An alert as the live correlator would have raised it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Alert {
    /// `undeclared`, `sensitive`, `tampering`, `denied_attempted`.
    pub kind: String,
    pub severity: String,
    /// The sensitive rule (or the deny rule) involved.
    pub rule: Option<String>,
    pub message: String,
    pub seq: u64,
    pub ts: i64,
    pub session_id: Option<String>,
    pub tool_call_id: Option<String>,
    /// The store has an alert of this kind for this event.
    pub recorded: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Flip {
    pub session_id: String,
    pub call_id: String,
    pub tool: String,
    pub old: String,
    pub old_rule: Option<String>,
    pub new: String,
    pub new_rule: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnreadableCall {
    pub session_id: String,
    pub call_id: String,
    pub tool: String,
    pub why: String,
}

impl Alert {
    /// A live alert on the event `row`, as the report shows it.
    fn of(alert: &AlertRow, row: &EventRow) -> Alert {
        Alert {
            kind: alert.kind.clone(),
            severity: alert.severity.clone(),
            rule: alert.rule.clone(),
            message: alert.message.clone(),
            seq: alert.event_seq.unwrap_or(row.seq),
            ts: alert.ts,
            session_id: alert.session_id.clone(),
            tool_call_id: alert.tool_call_id.clone(),
            recorded: false,
        }
    }
}

impl ReplayReport {
    /// Whether the replayed policy raises any alert on this evidence.
    pub fn would_alert(&self) -> bool {
        self.alerts_total > 0
    }

    /// Events whose verdict is now `undeclared`.
    pub fn undeclared(&self) -> u64 {
        self.transitions
            .iter()
            .filter(|t| t.new == "undeclared")
            .map(|t| t.events)
            .sum()
    }
}

/// Builds a report as the events stream past.
pub(crate) struct Builder {
    report: ReplayReport,
    transitions: BTreeMap<(u8, String, u8, String), u64>,
    recorded_alerts: HashSet<AlertKey>,
}

impl Builder {
    pub fn new(
        store: &Store,
        policy: &Policy,
        recorded_policies: BTreeMap<String, u64>,
        recorded_alerts: HashSet<AlertKey>,
    ) -> Builder {
        let report = ReplayReport {
            dir: store.dir.clone(),
            policy_name: policy.name().to_string(),
            policy_sha256: policy.sha256().to_string(),
            recorded_policies,
            missing_tables: store.missing.iter().map(|t| t.to_string()).collect(),
            unpublished_segments: store.unpublished_segments,
            ..ReplayReport::default()
        };
        Builder {
            report,
            transitions: BTreeMap::new(),
            recorded_alerts,
        }
    }

    pub fn add(&mut self, row: &EventRow, judged: &Judged) {
        let r = &mut self.report;
        r.events += 1;
        let old = row.verdict.clone().unwrap_or_else(|| "none".into());
        let (j, effects) = match judged {
            Judged::Kept(why) => {
                *r.kept.entry(why.to_string()).or_insert(0) += 1;
                *self
                    .transitions
                    .entry((rank(&old), old.clone(), rank(&old), old))
                    .or_insert(0) += 1;
                return;
            }
            Judged::New { judgement, effects } => (judgement, effects),
        };
        let new = j.verdict.name().to_string();
        *self
            .transitions
            .entry((rank(&old), old, rank(&new), new.clone()))
            .or_insert(0) += 1;
        if row.verdict.as_deref() != Some(new.as_str()) || row.rule.as_deref() != j.rule.as_deref()
        {
            r.changes_total += 1;
            if r.changes.len() < MAX_KEPT {
                let effect: Vec<String> = effects.iter().map(|e| e.to_string()).collect();
                r.changes.push(Change {
                    seq: row.seq,
                    ts: row.ts,
                    session_id: row.session_id.clone(),
                    tool_call_id: j.tool_call_id.as_deref().map(String::from),
                    kind: row.kind.clone(),
                    effect: if effect.is_empty() {
                        row.kind.clone()
                    } else {
                        effect.join(", ")
                    },
                    old_verdict: row.verdict.clone(),
                    old_rule: row.rule.clone(),
                    new_verdict: new,
                    new_rule: j.rule.as_deref().map(String::from),
                });
            }
        }
        for alert in &j.alerts {
            r.alerts_total += 1;
            let alert = Alert::of(alert, row);
            let key = (alert.session_id.clone(), alert.seq, alert.kind.clone());
            let recorded = self.recorded_alerts.contains(&key);
            if !recorded {
                r.alerts_new += 1;
            }
            if r.alerts.len() < MAX_KEPT {
                r.alerts.push(Alert { recorded, ..alert });
            }
        }
    }

    pub fn finish(mut self, calls: &[Call]) -> ReplayReport {
        let r = &mut self.report;
        r.transitions = self
            .transitions
            .into_iter()
            .map(|((_, old, _, new), events)| Transition { old, new, events })
            .collect();
        r.changes.sort_by_key(|c| (c.ts, c.seq));
        r.alerts.sort_by_key(|a| (a.ts, a.seq));
        for call in calls {
            r.calls += 1;
            if let Some(why) = &call.unreadable {
                r.unreadable_calls.push(UnreadableCall {
                    session_id: call.row.session_id.clone(),
                    call_id: call.row.call_id.clone(),
                    tool: call.row.tool.clone(),
                    why: why.clone(),
                });
                continue;
            }
            let Some(decided) = &call.decided else {
                continue;
            };
            let new = if decided.allow { "allow" } else { "deny" };
            if let Some(old) = call.row.decision.as_deref()
                && old != new
            {
                r.flips.push(Flip {
                    session_id: call.row.session_id.clone(),
                    call_id: call.row.call_id.clone(),
                    tool: call.row.tool.clone(),
                    old: old.to_string(),
                    old_rule: call.row.rule.clone(),
                    new: new.to_string(),
                    new_rule: decided.rule.clone().unwrap_or_default(),
                    reason: decided.reason.clone(),
                });
            }
        }
        self.report
    }
}

/// Verdicts in the order docs/evidence.md gives them, worst last.
fn rank(verdict: &str) -> u8 {
    match verdict {
        "none" => 0,
        "baseline" => 1,
        "declared" => 2,
        "unverifiable" => 3,
        "undeclared" => 4,
        _ => 5,
    }
}
