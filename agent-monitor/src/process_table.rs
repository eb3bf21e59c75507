//! The processes of every tracked tree, keyed so that a reused pid is never
//! mistaken for the process that held it before.

use std::{collections::HashMap, fmt};

use crate::{
    event::{Detail, Event, ExitStatus},
    identity::WorkloadIdentity,
};

/// Identifies a process for its whole life and after: the pid with the
/// process's start time (`CLOCK_BOOTTIME` ns). A pid can be reused; the
/// pair cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    pub pid: u32,
    pub start_ns: u64,
}

impl fmt::Display for ProcessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.pid, self.start_ns)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub key: ProcessKey,
    pub parent: Option<ProcessKey>,
    pub ppid: u32,
    pub agent_slot: u32,
    /// Absolute path of the executable, once known.
    pub exe: Option<String>,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub uid: u32,
    /// Cgroup, container and executable hash, learned at exec and
    /// inherited at fork.
    pub identity: WorkloadIdentity,
    pub exit: Option<ExitStatus>,
    /// `CLOCK_BOOTTIME` ns of the exit.
    pub exit_ns: Option<u64>,
}

/// Live processes by pid, and the ones that have exited, in exit order.
#[derive(Debug, Default)]
pub struct ProcessTable {
    /// Looked up two or three times per event: aHash rather than SipHash.
    live: HashMap<u32, ProcessInfo, ahash::RandomState>,
    exited: Vec<ProcessInfo>,
}

/// Facts the table needs that are not in the event itself, supplied by the
/// stage that feeds it (and so replaceable in tests).
#[derive(Clone, Debug, Default)]
pub struct ExecContext {
    /// The working directory of the process at exec, when it could be read.
    pub cwd: Option<String>,
}

impl ProcessTable {
    pub fn new() -> ProcessTable {
        ProcessTable::default()
    }

    /// The live process with this pid.
    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.live.get(&pid)
    }

    /// The process with this key, live or exited (the latest to exit is
    /// found first).
    pub fn by_key(&self, key: ProcessKey) -> Option<&ProcessInfo> {
        match self.live.get(&key.pid) {
            Some(p) if p.key == key => Some(p),
            _ => self.exited.iter().rev().find(|p| p.key == key),
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &ProcessInfo> {
        self.live.values()
    }

    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    pub fn exited(&self) -> &[ProcessInfo] {
        &self.exited
    }

    /// Every process seen, live or exited.
    pub fn seen_count(&self) -> usize {
        self.live.len() + self.exited.len()
    }

    /// Registers a process known before any of its events arrive, such as
    /// the command `run` launches.
    pub fn register(&mut self, info: ProcessInfo) {
        self.replace_live(info);
    }

    /// Applies an event and returns the acting process as it stands after it.
    pub fn observe(&mut self, event: &Event, exec: &ExecContext) -> &ProcessInfo {
        let key = ProcessKey {
            pid: event.pid,
            start_ns: event.start_ns,
        };
        self.ensure(event, key);
        match &event.detail {
            Detail::Fork {
                child_pid,
                child_start_ns,
            } => {
                let parent = &self.live[&event.pid];
                let child = ProcessInfo {
                    key: ProcessKey {
                        pid: *child_pid,
                        start_ns: *child_start_ns,
                    },
                    parent: Some(key),
                    ppid: event.pid,
                    ..parent.clone()
                };
                self.replace_live(child);
            }
            Detail::Exec(exec_detail) => {
                let info = self.live.get_mut(&event.pid).expect("ensured above");
                if exec.cwd.is_some() {
                    info.cwd = exec.cwd.clone();
                }
                info.exe = absolute(&exec_detail.filename, info.cwd.as_deref());
                info.argv = exec_detail.argv.clone();
                info.uid = event.uid;
            }
            Detail::Action(_) => {}
            Detail::Exit(status) => {
                let mut info = self.live.remove(&event.pid).expect("ensured above");
                info.exit = Some(*status);
                info.exit_ns = Some(event.ts_ns);
                self.exited.push(info);
                return self.exited.last().expect("just pushed");
            }
        }
        &self.live[&event.pid]
    }

    /// Makes sure the acting process is in the table under its own key. An
    /// entry under the same pid with another start is a process whose exit
    /// was lost; it is retired, not confused with this one.
    fn ensure(&mut self, event: &Event, key: ProcessKey) {
        match self.live.get_mut(&event.pid) {
            Some(info) if info.key == key => {
                info.ppid = event.ppid;
            }
            // The start time was not known when the process was registered
            // (the command `run` launched), so learn it now.
            Some(info) if info.key.start_ns == 0 => {
                info.key = key;
                info.ppid = event.ppid;
            }
            _ => {
                let parent = self.live.get(&event.ppid).map(|p| {
                    let inherited = (p.exe.clone(), p.argv.clone(), p.cwd.clone());
                    (p.key, inherited, p.identity.clone())
                });
                let (parent_key, (exe, argv, cwd), identity) = match parent {
                    Some((k, inherited, identity)) => (Some(k), inherited, identity),
                    None => (None, (None, Vec::new(), None), WorkloadIdentity::default()),
                };
                self.replace_live(ProcessInfo {
                    key,
                    parent: parent_key,
                    ppid: event.ppid,
                    agent_slot: event.agent_slot,
                    exe,
                    argv,
                    cwd,
                    uid: event.uid,
                    identity,
                    exit: None,
                    exit_ns: None,
                });
            }
        }
    }

    /// Records what exec taught about a live process's workload. A process
    /// gone before it could be looked at keeps the cgroup and container it
    /// inherited at fork (exec does not change them); its executable hash
    /// is the new image's or none, never the parent's.
    pub fn set_identity(&mut self, pid: u32, identity: WorkloadIdentity) {
        if let Some(info) = self.live.get_mut(&pid) {
            let inherited = std::mem::take(&mut info.identity);
            info.identity = WorkloadIdentity {
                cgroup: identity.cgroup.or(inherited.cgroup),
                container_id: identity.container_id.or(inherited.container_id),
                exe_sha256: identity.exe_sha256,
            };
        }
    }

    /// Moves a live process to another agent (it exec'd that agent's
    /// program); its children from now on inherit it.
    pub fn set_agent(&mut self, pid: u32, agent_slot: u32) {
        if let Some(info) = self.live.get_mut(&pid) {
            info.agent_slot = agent_slot;
        }
    }

    fn replace_live(&mut self, info: ProcessInfo) {
        if let Some(old) = self.live.insert(info.key.pid, info) {
            self.exited.push(old);
        }
    }
}

/// `filename` made absolute against `cwd` when it is relative; `None` when
/// that cannot be done (no filename, or a relative one with no known cwd),
/// since `exe` is always absolute or null.
fn absolute(filename: &str, cwd: Option<&str>) -> Option<String> {
    if filename.is_empty() {
        return None;
    }
    crate::actions::paths::absolute(filename, cwd)
}

#[cfg(test)]
#[path = "process_table_tests/mod.rs"]
mod tests;
