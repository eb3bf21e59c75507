//! Sessions: the unit of work an agent declares, with the baseline of its
//! working directory and the calls open in it.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use crate::{
    evidence::declared::SessionRow,
    policy::{Context, Envelope, Policy},
    process_table::ProcessTable,
};

/// A session opened by the monitor itself (the run's), before any
/// declaration.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    pub row: SessionRow,
    pub agent_slot: u32,
    /// The agent's working directory: `{cwd}` in the baseline.
    pub cwd: Option<String>,
}

#[derive(Debug)]
pub(super) struct Session {
    /// `row.session_id`, shared by the calls and judgements that name it.
    pub id: Arc<str>,
    pub row: SessionRow,
    pub agent_slot: u32,
    /// Shared by every session with the same working directory: a session
    /// costs the monitor little, however many an agent opens.
    pub baseline: Arc<Envelope>,
    /// The working directory tool-call templates resolve against.
    pub cwd: Option<String>,
    /// Open calls by call_id → slot.
    pub open_calls: HashMap<String, u64>,
    /// Every call id the session has used: one is never reused, so that
    /// (session, call id) names one call in the evidence.
    pub used_calls: HashSet<String>,
    /// The row has been written (`session.end`); it is not written again.
    pub written: bool,
    /// Baseline and sensitivity answers for this session's effects.
    pub fixed: super::fixed::FixedCache,
}

impl Session {
    pub fn new(baseline: Arc<Envelope>, spec: SessionSpec) -> Session {
        Session {
            id: Arc::from(spec.row.session_id.as_str()),
            row: spec.row,
            agent_slot: spec.agent_slot,
            baseline,
            cwd: spec.cwd,
            open_calls: HashMap::new(),
            used_calls: HashSet::new(),
            written: false,
            fixed: Default::default(),
        }
    }
}

/// Sessions by id, and which process trees a declared session claims.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    pub by_id: HashMap<String, Session>,
    /// A process that started a session of its own (not its agent's
    /// default): its tree's events belong to that session.
    /// By pid, with the process's start (0 when the kernel did not know it
    /// yet): a later process that reuses the pid is not the owner.
    pub by_pid: HashMap<u32, (u64, Arc<str>)>,
    /// Baselines by working directory.
    baselines: HashMap<Option<String>, Arc<Envelope>>,
}

/// Sessions an agent may have open through the socket at once, and calls
/// one session may have open and may ever start: bounds on what a peer can
/// make the monitor hold.
pub(super) const MAX_OPEN_SESSIONS: usize = 1024;
pub(super) const MAX_OPEN_CALLS: usize = 1024;
pub(super) const MAX_CALLS: usize = 65_536;

/// Most ancestors walked to find a process's session.
const MAX_DEPTH: usize = 64;

impl Sessions {
    /// A new session, its baseline shared with others of its directory.
    pub fn create(&mut self, policy: &Policy, spec: SessionSpec) -> Session {
        let baseline = self
            .baselines
            .entry(spec.cwd.clone())
            .or_insert_with(|| {
                Arc::new(policy.baseline_in(&Context {
                    cwd: spec.cwd.as_deref(),
                }))
            })
            .clone();
        Session::new(baseline, spec)
    }

    /// Recomputes every baseline under a new policy.
    pub fn rebase(&mut self, policy: &Policy) {
        self.baselines.clear();
        for session in self.by_id.values_mut() {
            let baseline = self
                .baselines
                .entry(session.cwd.clone())
                .or_insert_with(|| {
                    Arc::new(policy.baseline_in(&Context {
                        cwd: session.cwd.as_deref(),
                    }))
                })
                .clone();
            session.baseline = baseline;
            session.fixed = Default::default();
        }
    }

    /// Sessions of `agent` declared through the socket and not ended.
    pub fn open_of(&self, agent: u32) -> usize {
        self.by_id
            .values()
            .filter(|s| s.agent_slot == agent && s.row.ended.is_none() && s.row.source == "api")
            .count()
    }

    /// The session a process's events belong to when no tool call says:
    /// the nearest ancestor (itself included) that started one.
    pub fn of_process(&self, table: &ProcessTable, pid: u32) -> Option<&Arc<str>> {
        if self.by_pid.is_empty() {
            return None;
        }
        let mut key = table.get(pid)?.key;
        for _ in 0..MAX_DEPTH {
            if let Some((start, id)) = self.by_pid.get(&key.pid)
                && (*start == 0 || *start == key.start_ns)
            {
                return Some(id);
            }
            key = table.by_key(key)?.parent?;
        }
        None
    }
}

/// Fills a session's workload identity from its root process, once the
/// table knows it: key, uid, cgroup, container and exe hash.
pub(super) fn fill_identity(row: &mut SessionRow, table: &ProcessTable) {
    let Some(pid) = row.pid else { return };
    let process = table
        .get(pid)
        .or_else(|| table.exited().iter().rev().find(|p| p.key.pid == pid));
    let Some(process) = process else { return };
    row.root_process_key
        .get_or_insert_with(|| process.key.to_string());
    row.uid.get_or_insert(process.uid);
    if row.cgroup.is_none() {
        row.cgroup = process.identity.cgroup.clone();
    }
    if row.container_id.is_none() {
        row.container_id = process.identity.container_id.clone();
    }
    if row.exe_sha256.is_none() {
        row.exe_sha256 = process.identity.exe_sha256.clone();
    }
}
