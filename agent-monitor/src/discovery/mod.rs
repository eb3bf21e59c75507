//! How the daemon finds its agents: by rules at exec, by adopting
//! processes that were running before it, and by registration.
//!
//! The kernel starts tracking a process at exec when one of a rule's exact
//! keys matches (`probes/process.rs`), marked as pending. This module holds
//! what the processing stage needs to settle it: the rules, the kernel map
//! to write back to, the pending processes it dropped, and each agent's
//! live processes, so that its session ends with its tree.

pub mod proc_scan;

use std::{
    collections::{HashMap, VecDeque},
    io,
    sync::Arc,
};

use crate::{
    config::{Candidate, Rules},
    kernel::tracker::Slots,
};

/// What discovery writes to the kernel's tracked-process map. A trait so
/// that the processing stage is tested without BPF.
pub trait Membership: Send {
    /// Tracks a running process as `agent`'s; false if already tracked,
    /// NotFound if it has exited.
    fn adopt(&self, pid: u32, agent: u32) -> io::Result<bool>;
    /// Stops tracking a process.
    fn forget(&self, pid: u32) -> io::Result<()>;
    /// Gives a tracked process (and its future children) another agent.
    fn set_agent(&self, pid: u32, agent: u32) -> io::Result<()>;
    /// Whether `pid` is still the process that started at `start_ns` (0:
    /// unknown, taken as yes).
    fn is_process(&self, pid: u32, start_ns: u64) -> bool {
        proc_scan::started_at(pid, start_ns)
    }
}

impl Membership for Slots {
    fn adopt(&self, pid: u32, agent: u32) -> io::Result<bool> {
        Slots::adopt(self, pid, agent)
    }

    fn forget(&self, pid: u32) -> io::Result<()> {
        Slots::forget(self, pid)
    }

    fn set_agent(&self, pid: u32, agent: u32) -> io::Result<()> {
        Slots::set_agent(self, pid, agent)
    }
}

/// Pending processes remembered as dropped: their events still in the
/// ring are dropped too, and so are the children they forked meanwhile.
const DISMISSED_MAX: usize = 65_536;

/// How an agent's process tree became one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A rule matched at exec.
    Rule,
    /// A rule matched a process running when the daemon started.
    Adopted,
    /// It registered through the API.
    Registered,
    /// An agent's process exec'd another agent's program.
    Delegated,
}

impl Source {
    /// The session row's `source`.
    pub fn name(self) -> &'static str {
        match self {
            Source::Rule => "rule",
            Source::Adopted => "adopted",
            Source::Registered => "register",
            Source::Delegated => "delegated",
        }
    }
}

/// How adopting one process went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adoption {
    Adopted,
    /// It keeps the agent it has.
    AlreadyTracked,
    /// It exited before it could be tracked.
    Exited,
    /// The kernel refused (counted in `kernel_errors`).
    Failed,
}

/// One discovered agent: a process tree with its own slot and session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub agent: String,
    pub root_pid: u32,
    pub session_id: String,
    pub source: Source,
    /// Its processes still running.
    pub live: u64,
}

pub struct Discovery {
    rules: Arc<Rules>,
    kernel: Box<dyn Membership>,
    /// Dismissed pids, with the start of the process dismissed.
    dismissed: HashMap<u32, u64>,
    dismissed_order: VecDeque<u32>,
    instances: HashMap<u32, Instance>,
    /// Counts for `status` and the metrics.
    pub stats: DiscoveryStats,
}

/// Discovery's counts, as `status` and the metrics show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DiscoveryStats {
    /// Agent rules in force; filled in by [`Discovery::status`].
    pub rules: usize,
    /// Agents found, by how.
    pub by_rule: u64,
    pub adopted: u64,
    pub registered: u64,
    pub delegated: u64,
    /// Processes the kernel tracked at exec that the whole rule refused.
    pub dismissed: u64,
    /// Kernel map writes that failed.
    pub kernel_errors: u64,
}

impl Discovery {
    pub fn new(rules: Arc<Rules>, kernel: Box<dyn Membership>) -> Discovery {
        Discovery {
            rules,
            kernel,
            dismissed: HashMap::new(),
            dismissed_order: VecDeque::new(),
            instances: HashMap::new(),
            stats: DiscoveryStats::default(),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The counts, with the rules in force.
    pub fn status(&self) -> DiscoveryStats {
        DiscoveryStats {
            rules: self.rules.agent_rules().count(),
            ..self.stats.clone()
        }
    }

    /// New rules from a reload; agents already found keep their slot.
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        self.rules = rules;
    }

    pub fn kernel(&self) -> &dyn Membership {
        self.kernel.as_ref()
    }

    /// Tracks a running process as `agent`'s in the kernel. A process that
    /// exited meanwhile is no failure; any other error is counted.
    pub fn adopt(&mut self, pid: u32, agent: u32) -> Adoption {
        match self.kernel.adopt(pid, agent) {
            Ok(true) => Adoption::Adopted,
            Ok(false) => Adoption::AlreadyTracked,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Adoption::Exited,
            Err(e) => {
                self.kernel_result::<()>("adopting a process", Err(e));
                Adoption::Failed
            }
        }
    }

    /// Counts a failed kernel write, reporting the first.
    pub fn kernel_result<T>(&mut self, what: &str, result: io::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) => {
                if self.stats.kernel_errors == 0 {
                    tracing::warn!("discovery: {what} failed: {err}");
                }
                self.stats.kernel_errors += 1;
                None
            }
        }
    }

    /// [`Discovery::kernel_result`], where a process that has exited
    /// meanwhile (its entry gone) is no failure: its events in the ring
    /// are still attributed from the table.
    pub fn kernel_result_unless_gone(&mut self, what: &str, result: io::Result<()>) {
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => {
                self.kernel_result(what, other);
            }
        }
    }

    /// Drops a pending process, started at `start_ns` (0: unknown): the
    /// kernel forgets it, and whatever of it is still in the ring is
    /// dropped when read.
    pub fn dismiss(&mut self, pid: u32, start_ns: u64) {
        let result = self.kernel.forget(pid);
        self.kernel_result("forgetting a process", result);
        if self.dismissed.insert(pid, start_ns).is_none() {
            self.dismissed_order.push_back(pid);
            if self.dismissed_order.len() > DISMISSED_MAX
                && let Some(old) = self.dismissed_order.pop_front()
            {
                self.dismissed.remove(&old);
            }
        }
    }

    /// Whether `pid` is still the process that started at `start_ns`.
    pub fn is_process(&self, pid: u32, start_ns: u64) -> bool {
        self.kernel.is_process(pid, start_ns)
    }

    pub fn is_dismissed(&self, pid: u32) -> bool {
        self.dismissed.contains_key(&pid)
    }

    /// A dismissed pid was reused by a process a rule does match, or the
    /// dismissed process itself exec'd a rule's program. True unless it is
    /// known to be the first case: the kernel may have forgotten the very
    /// process, which must then be tracked again. A start of 0 is unknown.
    pub fn undismiss(&mut self, pid: u32, start_ns: u64) -> bool {
        self.dismissed
            .remove(&pid)
            .is_some_and(|dismissed| dismissed == 0 || start_ns == 0 || dismissed == start_ns)
    }

    pub fn add_instance(&mut self, slot: u32, instance: Instance) {
        match instance.source {
            Source::Rule => self.stats.by_rule += 1,
            Source::Adopted => self.stats.adopted += 1,
            Source::Registered => self.stats.registered += 1,
            Source::Delegated => self.stats.delegated += 1,
        }
        self.instances.insert(slot, instance);
    }

    pub fn instances(&self) -> impl Iterator<Item = (u32, &Instance)> {
        self.instances.iter().map(|(slot, i)| (*slot, i))
    }

    pub fn instance(&self, slot: u32) -> Option<&Instance> {
        self.instances.get(&slot)
    }

    /// A process of `slot` started.
    pub fn born(&mut self, slot: u32) {
        if let Some(instance) = self.instances.get_mut(&slot) {
            instance.live += 1;
        }
    }

    /// A process of `slot` exited (or left it for another agent). True
    /// when it was the agent's last: its session ends. The instance is
    /// forgotten then.
    pub fn died(&mut self, slot: u32) -> bool {
        let Some(instance) = self.instances.get_mut(&slot) else {
            return false;
        };
        instance.live = instance.live.saturating_sub(1);
        if instance.live == 0 {
            self.instances.remove(&slot);
            return true;
        }
        false
    }
}

/// The task name the kernel gives at exec: the file name's last
/// component, cut to 15 bytes.
pub fn comm_of(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename).as_bytes();
    String::from_utf8_lossy(&base[..base.len().min(15)]).into_owned()
}

/// A process as the rules see it.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub exe: Option<String>,
    pub comm: String,
    pub argv: Vec<String>,
    pub uid: u32,
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
}

impl Facts {
    pub fn candidate(&self) -> Candidate<'_> {
        Candidate {
            exe: self.exe.as_deref(),
            comm: &self.comm,
            argv: &self.argv,
            uid: self.uid,
            cgroup: self.cgroup.as_deref(),
            container_id: self.container_id.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoKernel;

    impl Membership for NoKernel {
        fn adopt(&self, _: u32, _: u32) -> io::Result<bool> {
            Ok(true)
        }
        fn forget(&self, _: u32) -> io::Result<()> {
            Ok(())
        }
        fn set_agent(&self, _: u32, _: u32) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn undismiss_says_when_the_very_process_dismissed_may_be_back() {
        let mut d = Discovery::new(Arc::new(Rules::default()), Box::new(NoKernel));
        d.dismiss(7, 100);
        assert!(!d.undismiss(7, 200), "another process with that pid");
        d.dismiss(7, 100);
        assert!(d.undismiss(7, 100), "the same process");
        d.dismiss(7, 0);
        assert!(d.undismiss(7, 200), "unknown: maybe the same");
        d.dismiss(7, 100);
        assert!(d.undismiss(7, 0), "unknown: maybe the same");
        assert!(!d.undismiss(8, 1), "never dismissed");
        assert!(!d.is_dismissed(7));
    }

    #[test]
    fn comm_is_the_base_name_cut_to_fifteen_bytes() {
        assert_eq!(comm_of("/usr/bin/python3"), "python3");
        assert_eq!(comm_of("a-very-long-program-name"), "a-very-long-pro");
        assert_eq!(comm_of("sh"), "sh");
    }
}
