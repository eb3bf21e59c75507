//! Correlation: what agents declared, matched against what the kernel saw.
//!
//! The [`Correlator`] is the processing stage's memory of declarations. It
//! takes two inputs, in whatever order they arrive:
//!
//! - declarations from the socket ([`Correlator::declare`]): sessions,
//!   prompts, model outputs, tool calls, each answered with a [`Reply`],
//!   and for a tool call the kernel slot to set on the declaring process;
//! - observed events ([`Correlator::judge`]): each gets its session, the
//!   tool call it belongs to, a verdict (`declared`, `baseline`,
//!   `undeclared`, `unverifiable`) and the rule behind it, and raises the
//!   alerts it deserves.
//!
//! Events reach the stage later than the declarations made at the same
//! moment (the ring buffer is drained in batches), so nothing here depends
//! on arrival order: calls keep their start and end times, and events are
//! judged by their own. A call's summary is written once its late events
//! have had time to arrive ([`SUMMARY_DELAY_NS`]).
//!
//! It is pure: no I/O, no clock. Times come in with each input.

mod agents;
mod calls;
mod declarations;
pub mod effects;
mod fixed;
mod judge;
mod links;
mod machinery;
mod nesting;
mod rejudge;
mod restore;
mod sessions;
mod summary;
mod tools;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tools_tests;

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
};

pub use calls::{RETAINED_CALLS, SUMMARY_LIMIT};
pub use judge::{Judgement, Verdict};
pub use machinery::MonitorExe;
pub use rejudge::LateWindow;
pub use sessions::SessionSpec;
pub use tools::{MAX_DECLARED_BYTES, NESTED_RULE};

use crate::{
    capture::Capture,
    declare::Reply,
    evidence::declared::{AlertRow, Declared},
    pipeline::Agents,
    policy::Policy,
};

/// How long after `tool.end` a call's summary waits for the events that
/// happened before it but had not yet been read from the ring.
pub const SUMMARY_DELAY_NS: u64 = 2_000_000_000;

/// Connection ids with this bit set are the OTLP receiver's, which alone
/// declares for OpenTelemetry spans (`source` `otel`); the socket's are
/// numbered from 1 without it.
pub const RECEIVER_CONN: u64 = 1 << 63;

/// Loss windows remembered for `unverifiable` verdicts.
const LOSS_WINDOWS: usize = 1024;

/// The two clocks every input is stamped with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Now {
    /// `CLOCK_BOOTTIME` ns, the clock of kernel events.
    pub boot_ns: u64,
    /// Wall-clock ns since the Unix epoch, for the evidence.
    pub wall_ns: i64,
}

/// What of a new agent's process was not seen, and until when
/// (`CLOCK_BOOTTIME` ns): see [`Correlator::unseen_start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unseen {
    /// Its syscalls, until the syscall probes were attached.
    AttachedAt(u64),
    /// Its syscalls: the probes could not be attached (found then).
    NotAttached(u64),
    /// Everything, until it was tracked again after it had been dropped
    /// with its parent.
    TrackedAgainAt(u64),
}

impl Unseen {
    /// When it stopped, or was found, being unseen.
    pub fn until(self) -> u64 {
        match self {
            Unseen::AttachedAt(ns) | Unseen::NotAttached(ns) | Unseen::TrackedAgainAt(ns) => ns,
        }
    }
}

/// Who is on the other end of a connection, from `SO_PEERCRED` and the
/// kernel's tracked-process map; nothing the client says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub pid: u32,
    /// The process's start (`CLOCK_BOOTTIME` ns) as the kernel map holds
    /// it, 0 when unknown: with the pid, its process key.
    pub start_ns: u64,
    pub uid: u32,
    /// The agent whose tree the peer is in; none for an outsider.
    pub agent_slot: Option<u32>,
}

/// The process a `tool.start`'s `pid` names, as the kernel's tracked map
/// holds it when the request is read; the correlator checks that it is a
/// process of the agent the call is declared for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Target {
    pub pid: u32,
    /// The agent whose tree it is in; none for a process of no agent.
    pub agent_slot: Option<u32>,
    /// Its tool-call slot now: a call bound to a process that runs inside
    /// another process's call is confined to it.
    pub slot: u64,
}

/// Set the kernel's tool-call slot of `pid`: its threads' events and the
/// children it forks from now on carry `slot` (0: no call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotUpdate {
    pub pid: u32,
    pub slot: u64,
}

/// The answer to one declaration, and what it changed.
#[derive(Debug)]
pub struct Outcome {
    pub reply: Reply,
    /// Slots to set, in order, before the reply is written.
    pub slots: Vec<SlotUpdate>,
    /// Rows for the evidence store, in order.
    pub records: Vec<Declared>,
    pub alerts: Vec<AlertRow>,
    /// A call declared after the fact was completed: events held back as
    /// undeclared in its window may now be covered, and are judged again.
    pub rejudge: Option<LateWindow>,
}

/// Counts for the end-of-run summary and `--fail-on-undeclared`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorrelationStats {
    pub declared: u64,
    pub baseline: u64,
    pub undeclared: u64,
    pub unverifiable: u64,
    pub tool_calls: u64,
    pub denied: u64,
    /// Declarations refused (bad input or not permitted).
    pub refused: u64,
    /// Summarised calls forgotten past [`RETAINED_CALLS`].
    pub calls_evicted: u64,
}

pub struct Correlator {
    policy: Arc<Policy>,
    capture: Option<Capture>,
    agents: Agents,
    sessions: sessions::Sessions,
    calls: calls::CallBook,
    /// Baseline and sensitivity answers for events of no session.
    fixed: fixed::FixedCache,
    /// Hashes each effect once for all the caches it meets.
    effect_hasher: fixed::EffectHasher,
    /// The call each declaring process runs under, when it declared from
    /// inside another process's call: its slot once its own calls end.
    inherited: HashMap<u32, u64>,
    /// When each (process, effect) last raised an undeclared alert.
    recent_alerts: fixed::ByHash<i64>,
    /// Scratch for an event's candidate calls, kept to save an
    /// allocation per event.
    candidates: Vec<u64>,
    connections: HashMap<u64, Connection>,
    /// Windows (`CLOCK_BOOTTIME` ns) in which the kernel lost events.
    losses: VecDeque<(u64, u64)>,
    /// The monitor's own pid: signals and ptrace aimed at it are tampering.
    monitor_pid: u32,
    /// How long after a call settles its row waits for late events and
    /// late declarations ([`SUMMARY_DELAY_NS`], more with a grace period).
    summary_delay_ns: u64,
    /// The monitor's own executable: some reads of processes that run it
    /// (a hook, a proxy) are its own machinery.
    monitor_exe: Option<machinery::MonitorExe>,
    host: String,
    stats: CorrelationStats,
    /// Random per correlator, so alert ids from different runs differ.
    alert_prefix: String,
    alerts_made: std::cell::Cell<u64>,
}

/// A connection's state: its peer and its current session.
#[derive(Debug)]
struct Connection {
    peer: Peer,
    session: Option<String>,
}

impl Correlator {
    pub fn new(policy: Arc<Policy>, agents: Agents) -> Correlator {
        Correlator {
            policy,
            capture: None,
            agents,
            sessions: sessions::Sessions::default(),
            calls: calls::CallBook::default(),
            fixed: fixed::FixedCache::default(),
            effect_hasher: fixed::EffectHasher::default(),
            recent_alerts: fixed::ByHash::default(),
            inherited: HashMap::new(),
            candidates: Vec::new(),
            connections: HashMap::new(),
            losses: VecDeque::new(),
            monitor_pid: std::process::id(),
            monitor_exe: machinery::MonitorExe::current(),
            summary_delay_ns: SUMMARY_DELAY_NS,
            host: crate::evidence::store::host_name(),
            stats: CorrelationStats::default(),
            alert_prefix: alert_prefix(),
            alerts_made: std::cell::Cell::new(0),
        }
    }

    /// The capture policy for declared texts (prompts, outputs, tool
    /// arguments and results); none keeps them as sent.
    pub fn with_capture(mut self, capture: Capture) -> Correlator {
        self.capture = Some(capture);
        self
    }

    /// Calls' rows wait `grace` longer: a span declaring a call after the
    /// fact may arrive that late, and joins the call only while its row is
    /// not written.
    pub fn delay_summaries(&mut self, grace: std::time::Duration) {
        let grace = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
        self.summary_delay_ns = SUMMARY_DELAY_NS.saturating_add(grace);
    }

    pub fn with_monitor_pid(mut self, pid: u32) -> Correlator {
        self.monitor_pid = pid;
        self
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn stats(&self) -> CorrelationStats {
        CorrelationStats {
            calls_evicted: self.calls.evicted,
            ..self.stats.clone()
        }
    }

    /// A new connection from `peer`. Its current session starts as its
    /// agent's default one (the run's session), so it may declare at once.
    pub fn connect(&mut self, conn: u64, peer: Peer) {
        let session = peer
            .agent_slot
            .and_then(|slot| self.agents.session(slot))
            .map(String::from);
        self.connections.insert(conn, Connection { peer, session });
    }

    /// Records that the kernel lost events between two counter readings.
    pub fn loss(&mut self, since_ns: u64, until_ns: u64) {
        if self.losses.len() == LOSS_WINDOWS {
            self.losses.pop_front();
        }
        self.losses.push_back((since_ns, until_ns));
    }

    /// An `event_loss` alert for a new agent's process, part of whose
    /// life from its exec (`exec`) on was not seen, as `unseen` says.
    /// Nothing was recorded in that time, so no verdict changes, and other
    /// agents' actions meanwhile stay judged.
    pub fn unseen_start(
        &self,
        exec: &crate::event::Event,
        unseen: Unseen,
        wall_ns: i64,
    ) -> AlertRow {
        let who = format!("pid {} ({})", exec.pid, exec.comm);
        let micros = unseen.until().saturating_sub(exec.ts_ns) / 1000;
        let message = match unseen {
            Unseen::AttachedAt(_) => format!(
                "the syscall probes were attached {micros} µs after {who} exec'd: its file, \
                 network and privilege syscalls before then were not seen"
            ),
            Unseen::NotAttached(_) => format!(
                "the syscall probes could not be attached for {who}: its file, network and \
                 privilege syscalls are not seen"
            ),
            Unseen::TrackedAgainAt(_) => format!(
                "{who} was untracked for up to {micros} µs after its exec, dropped with a parent \
                 no rule matched: what it did and forked then was not seen"
            ),
        };
        let now = Now {
            boot_ns: unseen.until(),
            wall_ns,
        };
        AlertRow {
            agent: Some(self.agents.name(exec.agent_slot).to_string()),
            session_id: self.agents.session(exec.agent_slot).map(String::from),
            event_seq: Some(exec.seq),
            process_key: Some(format!("{}@{}", exec.pid, exec.start_ns)),
            ..self.alert(now, "event_loss", "high", message)
        }
    }

    fn lost_between(&self, from_ns: u64, to_ns: u64) -> bool {
        self.losses
            .iter()
            .any(|(since, until)| *since <= to_ns && from_ns <= *until)
    }

    fn capture_name(&self) -> &'static str {
        self.capture.as_ref().map_or("full", |c| c.policy().name())
    }

    fn alert(&self, now: Now, kind: &str, severity: &str, message: String) -> AlertRow {
        let n = self.alerts_made.get() + 1;
        self.alerts_made.set(n);
        AlertRow {
            ts: now.wall_ns,
            // The run's random prefix and a count: unique without a
            // getrandom call per alert, which an alert storm would pay.
            alert_id: format!("{}-{n}", self.alert_prefix),
            kind: kind.to_string(),
            severity: severity.to_string(),
            message,
            ..AlertRow::default()
        }
    }
}

/// 64 random bits in hex; the wall clock's nanoseconds if the kernel's
/// random source fails.
fn alert_prefix() -> String {
    let mut bytes = [0u8; 8];
    match crate::random::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => format!("{:x}", crate::time::WallClock::boot_now_ns()),
    }
}
