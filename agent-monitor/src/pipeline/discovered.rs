//! The processing stage's side of discovery (daemon only): settling the
//! processes the kernel tracked by a rule key, delegation from one agent
//! to another, adoption of running processes, registration, and ending an
//! agent's session when its last process exits.

use agent_monitor_common::maps::AGENT_PENDING;

use super::Processor;
use crate::{
    correlate::{Now, SessionSpec},
    declare::{Register, Reply},
    discovery::{Adoption, Discovery, Facts, Instance, Source, comm_of, proc_scan},
    event::{Detail, Event},
    evidence::{declared::SessionRow, store::host_name},
    identity,
    process_table::{ProcessInfo, ProcessKey},
    sink::Sink,
    time::WallClock,
};

/// How many times adoption looks again for children forked while it was
/// adopting their parents.
const ADOPT_PASSES: usize = 3;

/// An agent about to start: who, from which process, and how.
struct NewAgent<'a> {
    /// Allocated already (adoption needs it before the session opens).
    slot: Option<u32>,
    name: &'a str,
    root_pid: u32,
    facts: &'a Facts,
    source: Source,
    parent_session_id: Option<String>,
    started_wall_ns: i64,
    cwd: Option<String>,
    task: Option<String>,
}

impl<S: Sink> Processor<S> {
    /// Discovers agents by `discovery`'s rules, and answers registrations.
    pub fn with_discovery(mut self, discovery: Discovery) -> Processor<S> {
        self.discovery = Some(discovery);
        self
    }

    pub fn discovery(&self) -> Option<&Discovery> {
        self.discovery.as_ref()
    }

    pub fn discovery_mut(&mut self) -> Option<&mut Discovery> {
        self.discovery.as_mut()
    }

    /// Before an event is applied: gives a process the kernel tracked as
    /// pending its agent, or drops it. False: the event is dropped.
    pub(super) fn admit(&mut self, event: &mut Event) -> bool {
        let Some(discovery) = self.discovery.as_mut() else {
            return true;
        };
        let exec = matches!(event.detail, Detail::Exec(_));
        // The table is the authority on a known process's agent: the
        // kernel's entry can lag behind it, for a child forked before its
        // parent was settled, a root's events sent before the kernel
        // learned its agent, or a process that moved to another agent
        // (delegation) with events still in the ring. Those are re-attributed,
        // and the kernel's entry is corrected.
        if let Some(process) = self.table.get(event.pid)
            && (process.key.start_ns == 0 || process.key.start_ns == event.start_ns)
            && process.agent_slot & AGENT_PENDING == 0
        {
            if process.agent_slot != event.agent_slot {
                let pending = event.agent_slot & AGENT_PENDING != 0;
                event.agent_slot = process.agent_slot;
                if pending {
                    let result = discovery.kernel().set_agent(event.pid, event.agent_slot);
                    discovery.kernel_result_unless_gone("setting a process's agent", result);
                }
            }
            if exec {
                self.delegate(event);
            }
            return true;
        }
        if event.agent_slot & AGENT_PENDING == 0 {
            return true;
        }
        if discovery.is_dismissed(event.pid) && !exec {
            // Children it forked before it was dropped go with it.
            if let Detail::Fork {
                child_pid,
                child_start_ns,
            } = event.detail
            {
                discovery.dismiss(child_pid, child_start_ns);
            }
            return false;
        }
        let Detail::Exec(detail) = &event.detail else {
            // Pending, but its exec was not seen (lost): it cannot be
            // judged by the rules, so it is not kept.
            discovery.dismiss(event.pid, event.start_ns);
            return false;
        };
        let forgotten = discovery.undismiss(event.pid, event.start_ns);
        let facts = exec_facts(event.pid, &detail.filename, &detail.argv, event.uid);
        let Some(name) = discovery
            .rules()
            .agent_for(&facts.candidate())
            .map(|r| r.name.clone())
        else {
            discovery.stats.dismissed += 1;
            discovery.dismiss(event.pid, event.start_ns);
            return false;
        };
        let slot = self.start_agent(NewAgent {
            slot: None,
            name: &name,
            root_pid: event.pid,
            facts: &facts,
            source: Source::Rule,
            parent_session_id: None,
            started_wall_ns: self.clock.wall_ns(event.ts_ns) as i64,
            cwd: (self.cwd_of)(event.pid),
            task: None,
        });
        event.agent_slot = slot;
        if forgotten {
            self.track_again(event);
        } else {
            self.set_kernel_agent(event.pid, slot);
        }
        self.cover_start(event);
        true
    }

    /// A tracked process exec'd the program of another agent's rule: it
    /// and its future children become that agent, in a session linked to
    /// the one it came from.
    fn delegate(&mut self, event: &mut Event) {
        let Detail::Exec(detail) = &event.detail else {
            return;
        };
        let Some(discovery) = self.discovery.as_ref() else {
            return;
        };
        let facts = exec_facts(event.pid, &detail.filename, &detail.argv, event.uid);
        let current = self.correlator.agents().name(event.agent_slot);
        let Some(name) = discovery
            .rules()
            .agent_for(&facts.candidate())
            .filter(|r| r.name != current)
            .map(|r| r.name.clone())
        else {
            return;
        };
        let from = event.agent_slot;
        let parent_session_id = self.correlator.agents().session(from).map(String::from);
        let slot = self.start_agent(NewAgent {
            slot: None,
            name: &name,
            root_pid: event.pid,
            facts: &facts,
            source: Source::Delegated,
            parent_session_id,
            started_wall_ns: self.clock.wall_ns(event.ts_ns) as i64,
            cwd: (self.cwd_of)(event.pid),
            task: None,
        });
        self.set_kernel_agent(event.pid, slot);
        self.table.set_agent(event.pid, slot);
        event.agent_slot = slot;
        self.process_gone(from, event.ts_ns);
    }

    /// After an event is applied: counts the agent's processes, and ends
    /// its session when the last has exited.
    pub(super) fn lifecycle(&mut self, event: &Event) {
        let Some(discovery) = self.discovery.as_mut() else {
            return;
        };
        match event.detail {
            Detail::Fork { .. } => discovery.born(event.agent_slot),
            Detail::Exit(_) => self.process_gone(event.agent_slot, event.ts_ns),
            _ => {}
        }
    }

    fn process_gone(&mut self, slot: u32, boot_ns: u64) {
        let Some(discovery) = self.discovery.as_mut() else {
            return;
        };
        if !discovery.died(slot) {
            return;
        }
        let now = Now {
            boot_ns,
            wall_ns: self.clock.wall_ns(boot_ns) as i64,
        };
        // The tree is gone: no process is left to carry a slot.
        let _ = self.correlator.end_agent_sessions(slot, now);
        for row in self.correlator.ended_sessions(&self.table) {
            self.record(&row);
        }
    }

    /// Makes the processes that match a rule and were running before the
    /// daemon started agents, each with its descendants. A matching
    /// process under another matching one belongs to the outer one's tree.
    /// Returns how many agents were adopted.
    pub fn adopt_running(&mut self) -> usize {
        let Some(discovery) = self.discovery.as_ref() else {
            return 0;
        };
        if discovery.rules().is_empty() {
            return 0;
        }
        let me = std::process::id();
        let mut matches: Vec<(u32, String, Facts)> = Vec::new();
        for (pid, _) in proc_scan::parents() {
            if pid == me {
                continue;
            }
            let Some(running) = proc_scan::read(pid) else {
                continue;
            };
            if let Some((name, facts)) = rule_for_running(discovery.rules(), running) {
                matches.push((pid, name, facts));
            }
        }
        let pids: Vec<u32> = matches.iter().map(|(pid, ..)| *pid).collect();
        let mut adopted = 0;
        for (pid, name, facts) in &matches {
            let inner = pids
                .iter()
                .any(|other| other != pid && proc_scan::descends_from(*pid, *other));
            if !inner
                && self
                    .adopt_tree(*pid, name, facts, Source::Adopted, None)
                    .is_ok()
            {
                adopted += 1;
            }
        }
        adopted
    }

    /// Answers `agent.register`: the peer (or a descendant of it) and its
    /// descendants become a new agent.
    pub(super) fn register(
        &mut self,
        conn: u64,
        register: Register,
        id: Option<serde_json::Value>,
    ) -> Reply {
        if self.discovery.is_none() {
            return Reply::daemon_only(id, "agent.register");
        }
        let Some(peer) = self.correlator.peer(conn).cloned() else {
            return Reply::not_permitted(id, "the connection is not registered");
        };
        let pid = register.pid.unwrap_or(peer.pid);
        if pid == peer.pid && peer.agent_slot.is_some() {
            let agent = self.correlator.agents().name(peer.agent_slot.unwrap_or(0));
            return Reply::not_registered(
                id,
                format!("pid {pid} already belongs to agent {agent}"),
            );
        }
        if pid != peer.pid && peer.uid != 0 && !proc_scan::descends_from(pid, peer.pid) {
            return Reply::not_permitted(
                id,
                &format!("pid {pid} is neither the caller nor one of its descendants"),
            );
        }
        let Some(facts) = proc_scan::read(pid).map(|p| adoption_facts(p, None)) else {
            return Reply::not_registered(id, format!("no process has pid {pid}"));
        };
        let task = register.task.as_deref().map(|t| self.capture_text(t));
        match self.adopt_tree(pid, &register.name, &facts, Source::Registered, task) {
            Ok((slot, session_id)) => {
                if pid == peer.pid {
                    self.correlator.rebind(conn, slot);
                }
                Reply::session_created(id, session_id)
            }
            Err(why) => Reply::not_registered(id, why),
        }
    }

    /// Tracks `root` and its descendants as a new agent; its slot and
    /// session.
    fn adopt_tree(
        &mut self,
        root: u32,
        name: &str,
        facts: &Facts,
        source: Source,
        task: Option<String>,
    ) -> Result<(u32, String), String> {
        let discovery = self.discovery.as_mut().ok_or("no discovery")?;
        let slot = self.correlator.add_agent(name);
        match discovery.adopt(root, slot) {
            Adoption::Adopted => {}
            Adoption::AlreadyTracked => {
                // Nothing was written, so nothing names the slot: an agent
                // that registers its own tracked children again and again
                // must not grow the daemon. After the other refusals the
                // kernel may have recorded the slot (an exit racing the
                // write), and a slot is never given to two agents.
                self.correlator.retract_agent(slot);
                return Err(format!("pid {root} is already monitored"));
            }
            Adoption::Exited => {
                return Err(format!("pid {root} exited before it could be tracked"));
            }
            Adoption::Failed => return Err(format!("the kernel refused to track pid {root}")),
        }
        let boot_ns = WallClock::boot_now_ns();
        self.start_agent(NewAgent {
            slot: Some(slot),
            name,
            root_pid: root,
            facts,
            source,
            parent_session_id: None,
            started_wall_ns: self.clock.wall_ns(boot_ns) as i64,
            cwd: (self.cwd_of)(root),
            task,
        });
        self.adopt_process(root, slot, None);
        let mut adopted = vec![root];
        // A child forked after its parent was adopted is tracked by the
        // kernel at fork; one forked between the scan and its parent's
        // adoption is found by looking again.
        for _ in 0..ADOPT_PASSES {
            let parents = proc_scan::parents();
            let fresh: Vec<(u32, u32)> = proc_scan::tree(root, &parents)
                .into_iter()
                .filter(|pid| !adopted.contains(pid))
                .filter_map(|pid| parents.iter().find(|(p, _)| *p == pid).copied())
                .collect();
            if fresh.is_empty() {
                break;
            }
            for (pid, ppid) in fresh {
                adopted.push(pid);
                let discovery = self.discovery.as_mut().ok_or("no discovery")?;
                if discovery.adopt(pid, slot) == Adoption::Adopted {
                    discovery.born(slot);
                    self.adopt_process(pid, slot, Some(ppid));
                }
            }
        }
        let session_id = self
            .correlator
            .agents()
            .session(slot)
            .map(String::from)
            .unwrap_or_default();
        Ok((slot, session_id))
    }

    /// Puts an adopted process in the table, as /proc shows it.
    fn adopt_process(&mut self, pid: u32, slot: u32, ppid: Option<u32>) {
        let Some(facts) = proc_scan::read(pid) else {
            return;
        };
        let parent = ppid.and_then(|p| self.table.get(p)).map(|p| p.key);
        let identity = (self.identity_of)(&mut self.hasher, pid, facts.exe.as_deref());
        let argv = match &self.capture {
            Some(capture) => capture.apply_all(&facts.argv).unwrap_or_default(),
            None => facts.argv.clone(),
        };
        self.table.register(ProcessInfo {
            key: ProcessKey { pid, start_ns: 0 },
            parent,
            ppid: facts.ppid,
            agent_slot: slot,
            exe: facts.exe,
            argv,
            cwd: facts.cwd,
            uid: facts.uid,
            identity,
            exit: None,
            exit_ns: None,
        });
        self.state.live = self.table.live_count();
    }

    /// A new agent's slot, session and instance.
    fn start_agent(&mut self, new: NewAgent) -> u32 {
        let slot = new
            .slot
            .unwrap_or_else(|| self.correlator.add_agent(new.name));
        let session_id =
            crate::random::uuid_v4().unwrap_or_else(|_| format!("{}-{slot}", new.name));
        let task = new.task.or_else(|| {
            let argv = self.capture_all(&new.facts.argv);
            (!argv.is_empty()).then(|| argv.join(" "))
        });
        let spiffe_id = self
            .discovery
            .as_ref()
            .and_then(|d| d.rules().spiffe_id_for(new.name, &new.facts.candidate()))
            .map(String::from);
        let row = SessionRow {
            session_id: session_id.clone(),
            parent_session_id: new.parent_session_id,
            agent: new.name.to_string(),
            task,
            user: user_name(new.facts.uid),
            source: new.source.name().to_string(),
            host: host_name(),
            started: new.started_wall_ns,
            pid: Some(new.root_pid),
            uid: Some(new.facts.uid),
            cgroup: new.facts.cgroup.clone(),
            container_id: new.facts.container_id.clone(),
            spiffe_id,
            ..SessionRow::default()
        };
        self.correlator.open_session(SessionSpec {
            row,
            agent_slot: slot,
            cwd: new.cwd,
        });
        if let Some(discovery) = self.discovery.as_mut() {
            discovery.add_instance(
                slot,
                Instance {
                    agent: new.name.to_string(),
                    root_pid: new.root_pid,
                    session_id,
                    source: new.source,
                    live: 1,
                },
            );
        }
        slot
    }

    pub(super) fn set_kernel_agent(&mut self, pid: u32, slot: u32) {
        if let Some(discovery) = self.discovery.as_mut() {
            let result = discovery.kernel().set_agent(pid, slot);
            discovery.kernel_result_unless_gone("setting a process's agent", result);
        }
    }

    fn capture_all(&self, texts: &[String]) -> Vec<String> {
        match &self.capture {
            Some(capture) => capture.apply_all(texts).unwrap_or_default(),
            None => texts.to_vec(),
        }
    }

    fn capture_text(&self, text: &str) -> String {
        self.capture_all(&[text.to_string()])
            .pop()
            .unwrap_or_default()
    }
}

/// The rules' view of a process at its exec.
fn exec_facts(pid: u32, filename: &str, argv: &[String], uid: u32) -> Facts {
    let cgroup = identity::read_cgroup(pid);
    Facts {
        exe: Some(filename.to_string()),
        comm: comm_of(filename),
        argv: argv.to_vec(),
        uid,
        container_id: cgroup.as_deref().and_then(identity::container_id),
        cgroup,
    }
}

/// The first rule a running process matches, with the facts it matched
/// on. /proc knows the executable's resolved path, not the path execve
/// received; an absolute `argv[0]` is most likely that, so both are tried.
fn rule_for_running(
    rules: &crate::config::Rules,
    running: proc_scan::ProcFacts,
) -> Option<(String, Facts)> {
    let argv0 = running.argv.first().filter(|a| a.starts_with('/')).cloned();
    let resolved = adoption_facts(running, None);
    let mut tries = vec![];
    if let Some(argv0) = argv0 {
        tries.push(Facts {
            exe: Some(argv0),
            ..resolved.clone()
        });
    }
    tries.push(resolved);
    tries.into_iter().find_map(|facts| {
        let name = rules.agent_for(&facts.candidate())?.name.clone();
        Some((name, facts))
    })
}

/// The rules' view of a running process; `exe` is its resolved path
/// unless `exe` says otherwise.
fn adoption_facts(facts: proc_scan::ProcFacts, exe: Option<String>) -> Facts {
    let container_id = facts.cgroup.as_deref().and_then(identity::container_id);
    Facts {
        exe: exe.or(facts.exe),
        comm: facts.comm,
        argv: facts.argv,
        uid: facts.uid,
        cgroup: facts.cgroup,
        container_id,
    }
}

/// The user's name, from the password database.
fn user_name(uid: u32) -> Option<String> {
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is live and sized as passed; the result points
    // into `pwd` and `buf`, read before they go.
    let ret = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if ret != 0 || found.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string
    // in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
    Some(name.to_string_lossy().into_owned())
}
