//! Judging one stored event as the live correlator would have under the
//! replayed policy, with the binding to a call already known: the
//! recorded call first, then the session's calls open at the event's time
//! (innermost first); a call that named the resource wins over a broader
//! one; denied calls cover nothing; then the session's baseline; then
//! undeclared. Sensitive resources alert even when covered.

use super::{
    engine::{Fixed, Judge},
    events::{EventRow, RowEffects},
    report::Alert,
};
use crate::{
    correlate::{Verdict, effects::Effects},
    policy::{Effect, EffectKind, Severity},
};

/// The rule name for the exec of the session's own command.
pub(crate) const SESSION_COMMAND: &str = "session.command";
/// The rule name for forks and exits.
pub(crate) const LIFECYCLE: &str = "process.lifecycle";

/// An event's fate in the replay.
#[derive(Clone, Debug)]
pub(crate) enum Judged {
    /// Not judged again, and why: losses do not change with the policy
    /// (`unverifiable`), and a kind this build does not know has no
    /// effects to judge.
    Kept(&'static str),
    New(Judgement),
}

#[derive(Clone, Debug)]
pub(crate) struct Judgement {
    pub verdict: Verdict,
    pub rule: Option<String>,
    /// The covering call, or for anything else the recorded one.
    pub tool_call_id: Option<String>,
    /// Each effect and what covered it; empty for lifecycle events and
    /// actions no effect kind names.
    pub covers: Vec<(Effect, Cover)>,
    pub alerts: Vec<Alert>,
}

/// One effect's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cover {
    /// By the call at this index of [`super::calls::Calls::all`].
    Declared {
        call: usize,
        rule: String,
    },
    Baseline {
        rule: String,
    },
    Undeclared,
}

impl Judge<'_> {
    pub fn judge(&mut self, row: &EventRow) -> Judged {
        if row.verdict.as_deref() == Some(Verdict::Unverifiable.name()) {
            return Judged::Kept("unverifiable");
        }
        let effects = match row.effects() {
            RowEffects::Known(effects) => effects,
            RowEffects::UnknownKind => return Judged::Kept("unknown kind"),
        };
        let primary = self
            .calls
            .find(row.session_id.as_deref(), row.tool_call_id.as_deref());
        let mut j = Judgement {
            verdict: Verdict::Baseline,
            rule: None,
            tool_call_id: row.tool_call_id.clone(),
            covers: Vec::new(),
            alerts: Vec::new(),
        };
        match effects {
            Effects::Lifecycle => j.rule = Some(LIFECYCLE.into()),
            Effects::Uncoverable => self.uncoverable(row, primary, &mut j),
            Effects::Some(list) => self.covered(row, primary, list, &mut j),
        }
        Judged::New(j)
    }

    fn undeclared_or_unverifiable(&self, ts: i64) -> Verdict {
        if self.lost_at(ts) {
            Verdict::Unverifiable
        } else {
            Verdict::Undeclared
        }
    }

    /// An action no effect kind names: always undeclared. Loading a
    /// kernel module or a BPF program may blind the monitor: tampering.
    /// (Signals and ptrace aimed at the monitor are tampering live; the
    /// replay does not know the monitor's pid, so they stay undeclared.)
    fn uncoverable(&mut self, row: &EventRow, primary: Option<usize>, j: &mut Judgement) {
        j.verdict = self.undeclared_or_unverifiable(row.ts);
        if j.verdict == Verdict::Undeclared {
            self.denied_ran(row, primary, j);
        }
        let what = format!("{} by {}", row.kind, row.actor());
        if matches!(row.kind.as_str(), "kernel.bpf" | "kernel.module_load") {
            let message = format!("{what}: may tamper with the monitor");
            j.alerts.push(alert(
                row,
                j,
                "tampering",
                Severity::Critical,
                None,
                message,
            ));
        } else if j.verdict == Verdict::Undeclared {
            let message = format!("undeclared {what}");
            j.alerts
                .push(alert(row, j, "undeclared", Severity::Medium, None, message));
        }
    }

    fn covered(
        &mut self,
        row: &EventRow,
        primary: Option<usize>,
        list: Vec<Effect>,
        j: &mut Judgement,
    ) {
        let session_id = row.session_id.as_deref();
        let candidates = self.calls.candidates(primary, session_id, row.ts);
        self.ensure_session(session_id);
        let root_exec = row.kind == "process.exec"
            && self.session(session_id).root.as_deref() == Some(&row.process_key);

        let mut worst: Option<Effect> = None;
        let mut declared: Option<(usize, String)> = None;
        let mut baseline: Option<String> = None;
        let mut sensitive: Option<(Effect, String, Severity)> = None;
        for effect in list {
            let fixed = self.fixed(session_id, &effect);
            let cover = self.cover(&effect, &candidates, &fixed, root_exec);
            if let Some((rule, severity)) = fixed.sensitive
                && sensitive.as_ref().is_none_or(|(_, _, s)| severity > *s)
            {
                sensitive = Some((effect.clone(), rule, severity));
            }
            match &cover {
                Cover::Declared { call, rule } => {
                    declared.get_or_insert((*call, rule.clone()));
                }
                Cover::Baseline { rule } => {
                    baseline.get_or_insert(rule.clone());
                }
                Cover::Undeclared => {
                    worst.get_or_insert(effect.clone());
                }
            }
            j.covers.push((effect, cover));
        }

        if let Some(effect) = &worst {
            j.verdict = self.undeclared_or_unverifiable(row.ts);
            if j.verdict == Verdict::Undeclared {
                let (severity, rule) = match &sensitive {
                    Some((_, rule, s)) => ((*s).max(Severity::Medium), Some(rule.clone())),
                    None => (Severity::Medium, None),
                };
                let message = format!("undeclared {effect} by {}", row.actor());
                j.alerts
                    .push(alert(row, j, "undeclared", severity, rule, message));
            }
        } else if let Some((call, rule)) = declared {
            j.verdict = Verdict::Declared;
            j.tool_call_id = Some(self.calls.all[call].row.call_id.clone());
            j.rule = Some(rule);
        } else {
            j.verdict = Verdict::Baseline;
            j.rule = baseline;
        }

        if let Some((effect, rule, severity)) = sensitive
            && j.verdict != Verdict::Undeclared
        {
            let monitor = rule == "sensitive.monitor";
            let message = format!(
                "{} {effect} by {} ({})",
                if monitor {
                    "touched the monitor's files:"
                } else {
                    "sensitive"
                },
                row.actor(),
                j.verdict.name()
            );
            let kind = if monitor { "tampering" } else { "sensitive" };
            j.alerts
                .push(alert(row, j, kind, severity, Some(rule), message));
        }

        if worst.is_some() {
            self.denied_ran(row, primary, j);
        }
    }

    /// A denied call's process did something beyond the baseline: the
    /// agent ran it anyway. Once per call, as live.
    fn denied_ran(&mut self, row: &EventRow, primary: Option<usize>, j: &mut Judgement) {
        let Some(p) = primary.filter(|p| !self.calls.all[*p].allow) else {
            return;
        };
        if !self.denied_alerted.insert(p) {
            return;
        }
        let call = &self.calls.all[p];
        let message = format!(
            "tool call `{}` ({}) was denied by {} and ran anyway",
            call.row.call_id,
            call.row.tool,
            call.deny_rule()
        );
        let rule = Some(call.deny_rule().to_string());
        j.alerts.push(alert(
            row,
            j,
            "denied_attempted",
            Severity::High,
            rule,
            message,
        ));
    }

    /// Which call, baseline or none covers one effect.
    fn cover(
        &self,
        effect: &Effect,
        candidates: &[usize],
        fixed: &Fixed,
        root_exec: bool,
    ) -> Cover {
        let mut broad: Option<Cover> = None;
        for i in candidates {
            let call = &self.calls.all[*i];
            if !call.allow {
                continue;
            }
            let mut matching = call.envelope.matching(effect).peekable();
            let Some(first) = matching.peek().map(|r| r.name.clone()) else {
                continue;
            };
            if let Some(named) = matching.find(|r| r.named) {
                return Cover::Declared {
                    call: *i,
                    rule: named.name.clone(),
                };
            }
            broad.get_or_insert(Cover::Declared {
                call: *i,
                rule: first,
            });
        }
        if let Some(cover) = broad {
            return cover;
        }
        if root_exec && effect.kind == EffectKind::Exec {
            return Cover::Baseline {
                rule: SESSION_COMMAND.into(),
            };
        }
        match &fixed.baseline {
            Some(rule) => Cover::Baseline { rule: rule.clone() },
            None => Cover::Undeclared,
        }
    }
}

fn alert(
    row: &EventRow,
    j: &Judgement,
    kind: &str,
    severity: Severity,
    rule: Option<String>,
    message: String,
) -> Alert {
    Alert {
        kind: kind.to_string(),
        severity: severity.name().to_string(),
        rule,
        message,
        seq: row.seq,
        ts: row.ts,
        session_id: row.session_id.clone(),
        tool_call_id: j.tool_call_id.clone(),
        recorded: false,
    }
}
