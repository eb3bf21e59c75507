//! Judging one event: its session, its tool call, its verdict, its alerts.
//!
//! Every event is judged, so the common path (an effect a call declared)
//! allocates as little as it can: ids and rule names are shared
//! `Arc<str>`s, cloned by count from the calls, sessions and caches that
//! hold them.

use std::sync::{Arc, LazyLock};

use super::{
    Correlator, Now,
    calls::EventRef,
    effects::{self, EffectRef, Found, List},
    fixed::{EffectHash, Fixed},
};
use crate::{
    actions::ActionKind,
    event::{Detail, Event},
    evidence::declared::AlertRow,
    policy::{Effect, EffectKind, Severity},
    process_table::{ProcessInfo, ProcessTable},
};

/// The four verdicts of docs/evidence.md, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Baseline,
    Declared,
    Unverifiable,
    Undeclared,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Baseline => "baseline",
            Verdict::Declared => "declared",
            Verdict::Unverifiable => "unverifiable",
            Verdict::Undeclared => "undeclared",
        }
    }
}

/// What correlation concluded about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    pub session_id: Option<Arc<str>>,
    /// The call that covers it, or for an undeclared action the call it
    /// happened under.
    pub tool_call_id: Option<Arc<str>>,
    pub verdict: Verdict,
    /// The rule behind the verdict (`tools.read_file`, `baseline.loader`,
    /// `declared`, …).
    pub rule: Option<Arc<str>>,
    pub alerts: Vec<AlertRow>,
    /// Alerts not built at all: the same process did the same undeclared
    /// thing less than a second ago, so the alerter would hold this one
    /// back as a repeat anyway. The caller counts them as such.
    pub repeated_alerts: u32,
    /// Which of the event's effects (positions in the list
    /// [`effects::of`](super::effects::of) gives) no call and no baseline
    /// covered: none unless the verdict is `undeclared` or `unverifiable`
    /// (and then none for an action no effect kind names). Positions, not
    /// copies: most undeclared events are repeats that nothing reads them
    /// for.
    undeclared: u8,
    /// The call `tool_call_id` names, by slot.
    slot: Option<u64>,
}

impl Judgement {
    /// The event's effects that no call and no baseline covered, in the
    /// event's order, picked from `effects`: the event's effects as
    /// [`effects::of`](super::effects::of) lists them.
    pub fn undeclared<'e, E>(&self, effects: &'e [E]) -> Vec<&'e E> {
        effects
            .iter()
            .enumerate()
            .filter(|(position, _)| *position < 8 && self.undeclared & (1 << position) != 0)
            .map(|(_, effect)| effect)
            .collect()
    }
}

/// One effect's fate.
enum Cover {
    Declared { slot: u64, rule: Arc<str> },
    Baseline { rule: Arc<str> },
    Undeclared,
}

/// The rule name for the exec of the session's own command.
static SESSION_COMMAND: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("session.command"));
/// How long an undeclared alert of one process about one effect stands
/// for its repeats; well inside the alerter's de-duplication window.
const REPEAT_NS: i64 = 1_000_000_000;
/// Processes × effects remembered for that; past it, memory starts over.
const RECENT_ALERTS: usize = 16_384;

/// The rule name for forks and exits.
static LIFECYCLE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("process.lifecycle"));

impl Correlator {
    /// Judges `event` of `process` (as the table holds it after the
    /// event). `wall_ns` is the event's wall-clock time, for alerts.
    pub fn judge(
        &mut self,
        event: &Event,
        process: &ProcessInfo,
        table: &ProcessTable,
        wall_ns: i64,
    ) -> Judgement {
        let now = Now {
            boot_ns: event.ts_ns,
            wall_ns,
        };
        let call = self.calls.believed(&event_ref(event, process));
        let primary = call.map(|c| c.slot);
        let (session_id, tool_call_id) = match call {
            Some(call) => (Some(call.session_id.clone()), Some(call.call_id.clone())),
            None => (self.session_of(event, table), None),
        };
        let mut judgement = Judgement {
            session_id,
            tool_call_id,
            verdict: Verdict::Baseline,
            rule: None,
            alerts: Vec::new(),
            repeated_alerts: 0,
            undeclared: 0,
            slot: primary,
        };
        match effects::found(event, process) {
            Found::Lifecycle => {
                judgement.rule = Some(LIFECYCLE.clone());
                self.stats.baseline += 1;
            }
            Found::Uncoverable => {
                self.uncoverable(event, primary, &mut judgement, now);
            }
            Found::Some(list) if self.machinery(process, &list) => {
                judgement.rule = Some(super::machinery::MONITOR_CLI.clone());
                self.stats.baseline += 1;
            }
            Found::Some(list) => self.covered(event, process, primary, list, &mut judgement, now),
        }
        if let Some(call) = judgement.slot.and_then(|s| self.calls.get_mut(s))
            && !call.summarised
        {
            call.summary.count(judgement.verdict == Verdict::Undeclared);
        }
        judgement
    }

    /// The session of an event no call claims.
    fn session_of(&self, event: &Event, table: &ProcessTable) -> Option<Arc<str>> {
        self.sessions
            .of_process(table, event.pid)
            .or_else(|| self.agents.session_shared(event.agent_slot))
            .cloned()
    }

    fn call_id(&self, slot: u64) -> Arc<str> {
        self.calls
            .get(slot)
            .map_or_else(|| Arc::from(""), |c| c.call_id.clone())
    }

    /// An action no effect kind names: always undeclared, and tampering
    /// when it can blind the monitor.
    fn uncoverable(
        &mut self,
        event: &Event,
        primary: Option<u64>,
        judgement: &mut Judgement,
        now: Now,
    ) {
        let Detail::Action(action) = &event.detail else {
            return;
        };
        let what = describe(event);
        let targets_monitor = action.fields.target_pid == Some(i64::from(self.monitor_pid));
        let tampering = match action.kind {
            ActionKind::KernelBpf | ActionKind::KernelModuleLoad => true,
            ActionKind::ProcSignal | ActionKind::ProcPtrace => targets_monitor,
            _ => false,
        };
        judgement.verdict = self.undeclared_or_unverifiable(event.ts_ns);
        if let Some(slot) = primary
            && let Some(call) = self.calls.get_mut(slot)
            && !call.summarised
        {
            call.summary.record(what.clone(), true);
        }
        if judgement.verdict == Verdict::Undeclared
            && let Some(slot) = primary
            && self.calls.get(slot).is_some_and(|c| !c.allowed)
        {
            self.denied_ran(event, slot, judgement, now);
        }
        if tampering {
            let message = format!("{what}: may tamper with the monitor");
            judgement.alerts.push(self.event_alert(
                event,
                judgement,
                now,
                "tampering",
                Severity::Critical,
                None,
                message,
            ));
        } else if judgement.verdict == Verdict::Undeclared {
            let message = format!("undeclared {what}");
            judgement.alerts.push(self.event_alert(
                event,
                judgement,
                now,
                "undeclared",
                Severity::Medium,
                None,
                message,
            ));
        }
    }

    fn undeclared_or_unverifiable(&mut self, ts_ns: u64) -> Verdict {
        if self.lost_between(ts_ns, ts_ns) {
            self.stats.unverifiable += 1;
            Verdict::Unverifiable
        } else {
            self.stats.undeclared += 1;
            Verdict::Undeclared
        }
    }

    fn covered(
        &mut self,
        event: &Event,
        process: &ProcessInfo,
        primary: Option<u64>,
        list: List,
        judgement: &mut Judgement,
        now: Now,
    ) {
        // The correlator's buffer, taken for the loop and put back after.
        let mut candidates = std::mem::take(&mut self.candidates);
        self.calls
            .candidates(&event_ref(event, process), &mut candidates);
        let root_exec = matches!(event.detail, Detail::Exec(_))
            && process.parent.is_none()
            && judgement
                .session_id
                .as_deref()
                .and_then(|s| self.sessions.by_id.get(s))
                .is_some_and(|s| s.row.pid == Some(event.pid));

        let mut declared: Option<(u64, Arc<str>)> = None;
        let mut baseline: Option<Arc<str>> = None;
        let mut sensitive: Option<(Effect, Arc<str>, Severity)> = None;
        let mut first_undeclared = None;
        for (position, effect) in list.iter().enumerate() {
            let hash = self.effect_hasher.hash(effect);
            let cover = self.cover(
                hash,
                effect,
                &candidates,
                judgement.session_id.as_deref(),
                root_exec,
            );
            if let Some((rule, severity)) = cover.1 {
                let worse = sensitive.as_ref().is_none_or(|(_, _, s)| severity > *s);
                if worse {
                    sensitive = Some((effect.to_effect(), rule, severity));
                }
            }
            let cover = cover.0;
            match cover {
                Cover::Declared { slot, rule } => {
                    self.record(slot, hash, effect, false);
                    declared.get_or_insert((slot, rule));
                }
                Cover::Baseline { rule } => {
                    baseline.get_or_insert(rule);
                }
                Cover::Undeclared => {
                    if let Some(slot) = primary {
                        self.record(slot, hash, effect, true);
                    }
                    // Every undeclared effect counts in the repeat key, so
                    // a write after a read of one file is not its repeat.
                    let key = first_undeclared.get_or_insert(EffectHash(0));
                    key.0 = key.0.rotate_left(17) ^ hash.0;
                    judgement.undeclared |= 1 << position;
                }
            }
        }
        self.candidates = candidates;
        let denied_ran = judgement.undeclared != 0
            && primary.is_some_and(|s| self.calls.get(s).is_some_and(|c| !c.allowed));

        if let Some(first_hash) = first_undeclared {
            judgement.verdict = self.undeclared_or_unverifiable(event.ts_ns);
            if judgement.verdict == Verdict::Undeclared && self.repeat_alert(event, first_hash, now)
            {
                judgement.repeated_alerts += 1;
            } else if judgement.verdict == Verdict::Undeclared {
                let message = format!(
                    "undeclared {} by {}",
                    describe_effects(&judgement.undeclared(&list.to_effects())),
                    actor(event)
                );
                let (severity, rule) = match &sensitive {
                    Some((_, rule, s)) => ((*s).max(Severity::Medium), Some(rule.to_string())),
                    None => (Severity::Medium, None),
                };
                judgement.alerts.push(self.event_alert(
                    event,
                    judgement,
                    now,
                    "undeclared",
                    severity,
                    rule,
                    message,
                ));
            }
        } else if let Some((slot, rule)) = declared {
            judgement.verdict = Verdict::Declared;
            judgement.tool_call_id = Some(self.call_id(slot));
            judgement.slot = Some(slot);
            judgement.rule = Some(rule);
            self.stats.declared += 1;
        } else {
            judgement.verdict = Verdict::Baseline;
            judgement.rule = baseline;
            self.stats.baseline += 1;
        }

        // Sensitive resources alert even when covered; undeclared ones
        // already said so in their alert.
        if let Some((effect, rule, severity)) = sensitive
            && judgement.verdict != Verdict::Undeclared
        {
            let monitor = &*rule == "sensitive.monitor";
            let kind = if monitor { "tampering" } else { "sensitive" };
            let message = format!(
                "{} {effect} by {} ({})",
                if monitor {
                    "touched the monitor's files:"
                } else {
                    "sensitive"
                },
                actor(event),
                judgement.verdict.name()
            );
            judgement.alerts.push(self.event_alert(
                event,
                judgement,
                now,
                kind,
                severity,
                Some(rule.to_string()),
                message,
            ));
        }

        // As for uncoverable actions: only an action judged undeclared (not
        // one made unverifiable by a loss) shows that the call ran.
        if denied_ran
            && judgement.verdict == Verdict::Undeclared
            && let Some(slot) = primary
        {
            self.denied_ran(event, slot, judgement, now);
        }
    }

    /// Which call, baseline or none covers one effect, and the sensitive
    /// rule it touches whatever the calls (cached per session).
    fn cover(
        &mut self,
        hash: EffectHash,
        effect: &EffectRef,
        candidates: &[u64],
        session_id: Option<&str>,
        root_exec: bool,
    ) -> (Cover, Option<(Arc<str>, Severity)>) {
        let Fixed {
            baseline,
            sensitive,
        } = match session_id.and_then(|s| self.sessions.by_id.get_mut(s)) {
            Some(session) => session
                .fixed
                .get(hash, effect, &self.policy, &session.baseline),
            None => self
                .fixed
                .get(hash, effect, &self.policy, self.policy.baseline()),
        };
        if let Some(cover) = self.call_cover(hash, effect, candidates) {
            return (cover, sensitive);
        }
        let cover = if root_exec && effect.kind == EffectKind::Exec {
            Cover::Baseline {
                rule: SESSION_COMMAND.clone(),
            }
        } else {
            match baseline {
                Some(rule) => Cover::Baseline { rule },
                None => Cover::Undeclared,
            }
        };
        (cover, sensitive)
    }

    /// The open call that covers an effect, if any. A call that named the
    /// resource beats one whose envelope merely includes it (`read_file
    /// /srv/a` over a shell's `/srv/**`); among equals, the candidates'
    /// order decides.
    fn call_cover(
        &mut self,
        hash: EffectHash,
        effect: &EffectRef,
        candidates: &[u64],
    ) -> Option<Cover> {
        let mut broad: Option<Cover> = None;
        for slot in candidates {
            let Some(call) = self.calls.get_mut(*slot) else {
                continue;
            };
            if !call.allowed {
                continue;
            }
            match call.covers.get(hash, effect, &call.envelope) {
                Some((rule, true)) => {
                    return Some(Cover::Declared { slot: *slot, rule });
                }
                Some((rule, false)) => {
                    broad.get_or_insert(Cover::Declared { slot: *slot, rule });
                }
                None => {}
            }
        }
        broad
    }

    /// Whether this process raised the same undeclared alert less than
    /// [`REPEAT_NS`] ago: a build that opens one header a thousand times
    /// then costs one alert, not a thousand formatted and discarded.
    fn repeat_alert(&mut self, event: &Event, effect: EffectHash, now: Now) -> bool {
        let key = self.effect_hasher.hash_key(&(
            event.pid,
            event.start_ns,
            effect.0,
            event.comm.as_str(),
        ));
        let recent = self
            .recent_alerts
            .get(&key)
            .is_some_and(|last| now.wall_ns.saturating_sub(*last) < REPEAT_NS);
        if !recent {
            if self.recent_alerts.len() >= RECENT_ALERTS {
                self.recent_alerts.clear();
            }
            self.recent_alerts.insert(key, now.wall_ns);
        }
        recent
    }

    /// Counts an effect in a call's summary; the first time, notes every
    /// named pattern it fulfils (`/tmp/**` and a named `/tmp/x` both).
    fn record(&mut self, slot: u64, hash: EffectHash, effect: &EffectRef, undeclared: bool) {
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        if call.summarised || !call.summary.observe(hash, effect, undeclared) || undeclared {
            return;
        }
        let effect = effect.to_effect();
        let matched: Vec<String> = call
            .envelope
            .matching(&effect)
            .filter(|r| r.named)
            .map(|r| format!("{} {}", r.kind, r.pattern))
            .collect();
        for pattern in matched {
            call.summary.matched(pattern);
        }
    }

    /// A denied call's process did something beyond the baseline: the
    /// agent ran the call anyway. Alerted once per call.
    fn denied_ran(&mut self, event: &Event, slot: u64, judgement: &mut Judgement, now: Now) {
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        if call.row.ran_despite_deny {
            return;
        }
        call.row.ran_despite_deny = true;
        let message = format!(
            "tool call `{}` ({}) was denied by {} and ran anyway",
            call.row.call_id,
            call.row.tool,
            call.deny_rule.as_deref().unwrap_or("the policy")
        );
        let rule = call.deny_rule.clone();
        let alert = self.event_alert(
            event,
            judgement,
            now,
            "denied_attempted",
            Severity::High,
            rule,
            message,
        );
        judgement.alerts.push(alert);
    }

    #[allow(clippy::too_many_arguments)]
    fn event_alert(
        &self,
        event: &Event,
        judgement: &Judgement,
        now: Now,
        kind: &str,
        severity: Severity,
        rule: Option<String>,
        message: String,
    ) -> AlertRow {
        AlertRow {
            agent: Some(self.agents.name(event.agent_slot).to_string()),
            session_id: judgement.session_id.as_deref().map(String::from),
            tool_call_id: judgement.tool_call_id.as_deref().map(String::from),
            event_seq: Some(event.seq),
            process_key: Some(format!("{}@{}", event.pid, event.start_ns)),
            rule,
            ..self.alert(now, kind, severity.name(), message)
        }
    }

    /// An `event_loss` alert for a loss report; the verdicts of events in
    /// its window become `unverifiable`.
    pub fn lost(
        &mut self,
        count: u64,
        cpu: u32,
        since_ns: u64,
        until_ns: u64,
        wall_ns: i64,
    ) -> AlertRow {
        self.loss(since_ns, until_ns);
        let now = Now {
            boot_ns: until_ns,
            wall_ns,
        };
        self.alert(
            now,
            "event_loss",
            "high",
            format!("the kernel lost {count} events on CPU {cpu}: actions in that window are unverifiable"),
        )
    }
}

/// Undeclared effects in words, every one named: `file.read /x` or, for
/// one resource, `file.read+file.write /x`.
fn describe_effects(effects: &[&Effect]) -> String {
    let Some(first) = effects.first() else {
        return String::new();
    };
    let same = |e: &&Effect| e.resource == first.resource && e.name == first.name;
    if effects.iter().all(same) {
        let kinds: Vec<&str> = effects.iter().map(|e| e.kind.name()).collect();
        let name = first.name.as_ref().map(|n| format!(" ({n})"));
        format!(
            "{} {}{}",
            kinds.join("+"),
            first.resource,
            name.unwrap_or_default()
        )
    } else {
        let each: Vec<String> = effects.iter().map(|e| e.to_string()).collect();
        each.join("; ")
    }
}

/// What choosing an event's calls needs of it.
fn event_ref(event: &Event, process: &ProcessInfo) -> EventRef {
    EventRef {
        slot: event.tool_call,
        pid: event.pid,
        agent_slot: event.agent_slot,
        ts_ns: event.ts_ns,
        process_start_ns: process.key.start_ns,
        ppid: event.ppid,
    }
}

/// `pid 42 (python3)`.
fn actor(event: &Event) -> String {
    format!("pid {} ({})", event.pid, event.comm)
}

/// An uncoverable action in words: `priv.setuid by pid 42 (sudo)`.
fn describe(event: &Event) -> String {
    // A file action is uncoverable when its path goes through a magic
    // link: name the path, or two such opens would read as one alert.
    let path = match &event.detail {
        Detail::Action(action) => action
            .fields
            .path
            .as_deref()
            .or(action.fields.raw_path.as_deref()),
        _ => None,
    };
    match path {
        Some(path) => format!("{} {path} by {}", event.kind_name(), actor(event)),
        None => format!("{} by {}", event.kind_name(), actor(event)),
    }
}
