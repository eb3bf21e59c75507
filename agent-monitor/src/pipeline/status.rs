//! The daemon's state as `agent-monitor status` and the metrics show it:
//! one snapshot, made by the processing stage, which owns every figure.

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    sync::Arc,
    time::Instant,
};

use serde::Serialize;

use super::Processor;
use crate::{
    declare::Reply,
    evidence::chain,
    kernel::syscall_hook::{HookStatus, SyscallHook},
    sink::Sink,
};

/// How far back events per second are averaged.
const RATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatusSnapshot {
    pub pid: u32,
    pub uptime_seconds: u64,
    pub agents: Vec<AgentStatus>,
    pub sessions_open: usize,
    pub processes_live: usize,
    pub events: u64,
    pub events_per_second: f64,
    /// Events the kernel could not deliver (ring full).
    pub events_lost: u64,
    /// Children left untracked because the kernel's map was full.
    pub untracked_children: u64,
    pub verdicts: BTreeMap<&'static str, u64>,
    pub alerts: BTreeMap<String, u64>,
    pub alerts_suppressed: u64,
    pub discovery: crate::discovery::DiscoveryStats,
    /// Whether the syscall probes are attached: only while a process is
    /// tracked or a rule could track one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscall_probes: Option<HookStatus>,
    pub evidence: Option<EvidenceStatus>,
    pub sink_errors: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentStatus {
    pub agent: String,
    pub root_pid: u32,
    pub session_id: String,
    pub source: &'static str,
    pub processes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvidenceStatus {
    pub dir: PathBuf,
    /// Files in the chain.
    pub files: u64,
    /// The last link, hex; none for an empty chain.
    pub chain_head: Option<String>,
    /// Why the chain could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Event counts over the last few seconds, for a rate.
#[derive(Debug)]
pub(super) struct Rate {
    started: Instant,
    samples: VecDeque<(Instant, u64)>,
}

impl Default for Rate {
    fn default() -> Rate {
        Rate {
            started: Instant::now(),
            samples: VecDeque::new(),
        }
    }
}

impl Rate {
    pub fn sample(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW)
        {
            self.samples.pop_front();
        }
    }

    pub fn per_second(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / t1.duration_since(*t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

impl<S: Sink> Processor<S> {
    /// The syscall probes' attachment, for the status.
    pub fn with_syscall_hook(mut self, hook: Arc<SyscallHook>) -> Processor<S> {
        self.syscall_hook = Some(hook);
        self
    }

    /// Where the evidence goes, for the status's chain head.
    pub fn with_evidence_dir(mut self, dir: Option<PathBuf>) -> Processor<S> {
        self.evidence_dir = dir;
        self
    }

    pub fn status(&self) -> StatusSnapshot {
        let correlation = self.correlator.stats();
        let mut agents: Vec<AgentStatus> = self
            .discovery
            .iter()
            .flat_map(|d| d.instances())
            .map(|(_, i)| AgentStatus {
                agent: i.agent.clone(),
                root_pid: i.root_pid,
                session_id: i.session_id.clone(),
                source: i.source.name(),
                processes: i.live,
            })
            .collect();
        agents.sort_by(|a, b| (&a.agent, a.root_pid).cmp(&(&b.agent, b.root_pid)));
        let discovery = self
            .discovery
            .as_ref()
            .map(|d| d.status())
            .unwrap_or_default();
        StatusSnapshot {
            pid: std::process::id(),
            uptime_seconds: self.rate.started.elapsed().as_secs(),
            sessions_open: agents.len(),
            agents,
            processes_live: self.table.live_count(),
            events: self.stats.events(),
            events_per_second: self.rate.per_second(),
            events_lost: self.stats.lost(),
            untracked_children: self.stats.untracked_children,
            verdicts: BTreeMap::from([
                ("declared", correlation.declared),
                ("baseline", correlation.baseline),
                ("undeclared", correlation.undeclared),
                ("unverifiable", correlation.unverifiable),
            ]),
            alerts: self.stats.alerts_by_kind.clone(),
            alerts_suppressed: self.stats.alerts_suppressed,
            discovery,
            syscall_probes: self.syscall_hook.as_ref().map(|h| h.status()),
            evidence: self.evidence_dir.as_ref().map(|dir| evidence_status(dir)),
            sink_errors: self.stats.sink_errors,
        }
    }

    pub(super) fn status_reply(&self, id: Option<serde_json::Value>) -> Reply {
        let status = serde_json::to_value(self.status()).unwrap_or_default();
        Reply::Status { id, status }
    }

    pub(super) fn sample_rate(&mut self) {
        let total = self.stats.events();
        self.rate.sample(Instant::now(), total);
    }
}

/// The chain as its log says now.
fn evidence_status(dir: &std::path::Path) -> EvidenceStatus {
    match chain::read_log(&dir.join(chain::CHAIN_LOG)) {
        Ok(entries) => EvidenceStatus {
            dir: dir.to_path_buf(),
            files: entries.len() as u64,
            chain_head: entries.last().map(|e| e.link.clone()),
            error: None,
        },
        Err(err) => EvidenceStatus {
            dir: dir.to_path_buf(),
            error: Some(err.to_string()),
            ..EvidenceStatus::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_rate_is_over_the_window_only() {
        let mut rate = Rate::default();
        let t0 = Instant::now();
        assert_eq!(rate.per_second(), 0.0);
        rate.sample(t0, 0);
        rate.sample(t0 + Duration::from_secs(2), 1000);
        assert_eq!(rate.per_second(), 500.0);
        // Twenty idle seconds later, the burst has left the window.
        rate.sample(t0 + Duration::from_secs(20), 1000);
        rate.sample(t0 + Duration::from_secs(22), 1000);
        assert_eq!(rate.per_second(), 0.0);
    }
}
