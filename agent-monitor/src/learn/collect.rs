//! What a replay leaves undeclared, gathered for a proposal: effects
//! outside tool calls (the baseline's business), effects inside them (the
//! tool's), and what no baseline may or can hold.

use std::collections::{BTreeMap, BTreeSet};

use crate::{
    correlate::Verdict,
    policy::{Effect, EffectKind, Severity},
    replay::{EventRow, Judged, Known},
};

/// One undeclared effect outside tool calls, in one working directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub kind: EffectKind,
    pub resource: String,
    /// For net kinds, the name the agent looked up for the address.
    pub name: Option<String>,
    /// The working directory of the event's session.
    pub cwd: Option<String>,
}

impl Key {
    pub fn effect(&self) -> Effect {
        let effect = Effect::new(self.kind, self.resource.clone());
        match &self.name {
            Some(name) => effect.named(name.clone()),
            None => effect,
        }
    }
}

/// A sensitive effect left undeclared: never proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sensitive {
    pub rule: String,
    pub severity: Severity,
    pub seen: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Seen {
    pub events: u64,
    pub sessions: BTreeSet<String>,
    /// Undeclared effects outside tool calls, with how often.
    pub outside: BTreeMap<Key, u64>,
    /// Of those, the sensitive ones, by effect text.
    pub sensitive: BTreeMap<String, Sensitive>,
    /// Directories where a sensitive file was touched: never collapsed.
    pub sensitive_dirs: BTreeSet<String>,
    /// Undeclared actions no effect kind names, by kind.
    pub uncoverable: BTreeMap<String, u64>,
    /// Undeclared effects inside tool calls: tool → effect text → count.
    pub in_calls: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events not judged (`unverifiable`, or an unknown kind) or judged
    /// `unverifiable` now: left out.
    pub unjudged: u64,
}

impl Seen {
    pub fn add(&mut self, known: &Known, row: &EventRow, judged: &Judged) {
        self.events += 1;
        if let Some(s) = &row.session_id {
            self.sessions.insert(s.clone());
        }
        let (j, undeclared) = match judged {
            Judged::New { judgement, effects } if judgement.verdict != Verdict::Unverifiable => {
                (judgement, judgement.undeclared(effects))
            }
            _ => {
                self.unjudged += 1;
                return;
            }
        };
        if j.verdict != Verdict::Undeclared {
            return;
        }
        if let Some(call_id) = &row.tool_call_id {
            let tool = known
                .call(row.session_id.as_deref(), Some(call_id))
                .map_or_else(|| format!("(call {call_id})"), |c| c.row.tool.clone());
            let effects = self.in_calls.entry(tool).or_default();
            if undeclared.is_empty() {
                *effects.entry(row.kind.clone()).or_insert(0) += 1;
            }
            for effect in &undeclared {
                *effects.entry(effect.to_string()).or_insert(0) += 1;
            }
            return;
        }
        if undeclared.is_empty() {
            *self.uncoverable.entry(row.kind.clone()).or_insert(0) += 1;
            return;
        }
        let cwd = known.cwd(row.session_id.as_deref()).map(String::from);
        for effect in undeclared {
            if let Some((rule, severity)) = known.policy.sensitive(effect) {
                let entry = self
                    .sensitive
                    .entry(effect.to_string())
                    .or_insert_with(|| Sensitive {
                        rule: rule.name.clone(),
                        severity,
                        seen: 0,
                    });
                entry.seen += 1;
                if let Some((dir, _)) = effect.resource.rsplit_once('/') {
                    self.sensitive_dirs.insert(dir.to_string());
                }
                continue;
            }
            let key = Key {
                kind: effect.kind,
                resource: effect.resource.clone(),
                name: effect.name.clone(),
                cwd: cwd.clone(),
            };
            *self.outside.entry(key).or_insert(0) += 1;
        }
    }
}
