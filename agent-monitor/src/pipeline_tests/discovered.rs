//! The daemon's discovery in the processing stage: pending processes
//! settled by the whole rule or dismissed, children of settled parents,
//! sessions ended with their tree, delegation, identity mappings, adoption
//! and registration. The kernel's map is a fake that records every write.

use std::{
    process::{Child, Command},
    sync::{Arc, Mutex},
};

use agent_monitor_common::maps::AGENT_PENDING;

use super::*;
use crate::{
    config::{Config, Rules},
    correlate::Peer,
    declare::{Register, Reply},
    discovery::{Discovery, Membership},
    evidence::declared::{Declared, SessionRow},
};

// ---------------------------------------------------------------------------
// Pids no process can have (above the kernel's PID_MAX_LIMIT of 2^22), so
// that the cgroup the rules read from /proc is none, whatever runs here.
// ---------------------------------------------------------------------------

const ROOT: u32 = 5_000_100;
const CHILD: u32 = 5_000_101;
const GRANDCHILD: u32 = 5_000_102;
const OTHER: u32 = 5_000_200;

/// Two agents: one narrowed by its arguments, one by its task name alone.
const RULES: &str = r#"
[[agents]]
name = "agent"
comm = "agent"
argv = "* --task*"

[[agents]]
name = "helper"
comm = "helper"
"#;

fn rules(text: &str) -> Arc<Rules> {
    Arc::new(
        Config::parse(text, "the test's rules")
            .expect("the test's rules are valid")
            .rules,
    )
}

// ---------------------------------------------------------------------------
// The kernel's tracked-process map, faked.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Adopt(u32, u32),
    Forget(u32),
    SetAgent(u32, u32),
}

/// Records every write; `adopt` answers `adopts`.
#[derive(Clone)]
struct FakeKernel {
    calls: Arc<Mutex<Vec<Call>>>,
    adopts: bool,
}

impl Default for FakeKernel {
    fn default() -> FakeKernel {
        FakeKernel {
            calls: Arc::default(),
            adopts: true,
        }
    }
}

impl FakeKernel {
    fn refusing_adoption() -> FakeKernel {
        FakeKernel {
            adopts: false,
            ..FakeKernel::default()
        }
    }

    fn log(&self, call: Call) {
        self.calls.lock().expect("the call log").push(call);
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("the call log").clone()
    }

    fn forgotten(&self) -> Vec<u32> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Forget(pid) => Some(pid),
                _ => None,
            })
            .collect()
    }
}

impl Membership for FakeKernel {
    fn adopt(&self, pid: u32, agent: u32) -> io::Result<bool> {
        self.log(Call::Adopt(pid, agent));
        Ok(self.adopts)
    }

    fn forget(&self, pid: u32) -> io::Result<()> {
        self.log(Call::Forget(pid));
        Ok(())
    }

    fn set_agent(&self, pid: u32, agent: u32) -> io::Result<()> {
        self.log(Call::SetAgent(pid, agent));
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// A sink that keeps events with their attribution, and declared rows.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    seq: u64,
    kind: &'static str,
    pid: u32,
    /// The slot the event was applied with.
    slot: u32,
    agent: String,
    session_id: Option<String>,
}

#[derive(Default)]
struct Recorder {
    events: Vec<Got>,
    declared: Vec<Declared>,
}

impl Recorder {
    fn sessions(&self) -> Vec<SessionRow> {
        self.declared
            .iter()
            .filter_map(|d| match d {
                Declared::Session(row) => Some(row.clone()),
                _ => None,
            })
            .collect()
    }

    fn agents(&self) -> Vec<(u64, &str)> {
        self.events
            .iter()
            .map(|e| (e.seq, e.agent.as_str()))
            .collect()
    }
}

impl Sink for Recorder {
    fn event(&mut self, event: &Event, _: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        self.events.push(Got {
            seq: event.seq,
            kind: event.kind().name(),
            pid: event.pid,
            slot: event.agent_slot,
            agent: who.agent.to_string(),
            session_id: who.session_id.map(String::from),
        });
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn declared(&mut self, record: &Declared) -> io::Result<()> {
        self.declared.push(record.clone());
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Processors and actors.
// ---------------------------------------------------------------------------

fn project_cwd(_: u32) -> Option<String> {
    Some("/home/u/project".to_string())
}

/// A stage with no agents configured, discovering by `rules`.
fn discovering(rules_text: &str, kernel: &FakeKernel) -> Processor<Recorder> {
    Processor::new(Recorder::default(), Agents::default())
        .with_cwd_lookup(project_cwd)
        .with_identity_lookup(fake_identity)
        .with_discovery(Discovery::new(rules(rules_text), Box::new(kernel.clone())))
}

/// A process the kernel began tracking at its exec because a rule key
/// matched: pending, with no start time in its entry.
fn pending(pid: u32, ppid: u32) -> Actor {
    actor(pid, 0, ppid).agent(AGENT_PENDING)
}

/// A child forked while its parent was pending: the kernel copied the
/// parent's pending entry, with the child's own start.
fn pending_child(pid: u32, start_ns: u64, ppid: u32) -> Actor {
    actor(pid, start_ns, ppid).agent(AGENT_PENDING)
}

fn with_uid(actor: Actor, uid: u32) -> Actor {
    Actor(actor.0.uid(uid))
}

/// Settles `ROOT` as agent "agent" (record 1); its slot.
fn start_agent(p: &mut Processor<Recorder>) -> u32 {
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--task", "fix it"]));
    let got = p.sink.events.last().expect("the agent's exec is kept");
    assert_eq!((got.seq, got.agent.as_str()), (1, "agent"));
    got.slot
}

fn agent_status(p: &Processor<Recorder>, agent: &str) -> Option<AgentStatus> {
    p.status().agents.into_iter().find(|a| a.agent == agent)
}

// ---------------------------------------------------------------------------
// Settling pending processes.
// ---------------------------------------------------------------------------

#[test]
fn a_pending_exec_matching_the_whole_rule_becomes_a_new_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--task", "fix it"]));

    let events = &p.sink.events;
    assert_eq!(events.len(), 1, "the exec reaches the sink");
    let got = &events[0];
    assert_eq!(
        (got.kind, got.pid, got.agent.as_str()),
        ("process.exec", ROOT, "agent")
    );
    let slot = got.slot;
    assert_ne!(slot, 0);
    assert_eq!(slot & AGENT_PENDING, 0, "the event is re-attributed");
    assert_eq!(kernel.calls(), vec![Call::SetAgent(ROOT, slot)]);
    assert_eq!(p.table().get(ROOT).map(|r| r.agent_slot), Some(slot));

    let status = p.status();
    let session_id = got.session_id.clone().expect("the exec is in a session");
    assert_eq!(
        status.agents,
        vec![AgentStatus {
            agent: "agent".to_string(),
            root_pid: ROOT,
            session_id,
            source: "rule",
            processes: 1,
        }]
    );
    assert_eq!(status.sessions_open, 1);
    assert_eq!(status.discovery.rules, 2);
    assert_eq!(status.discovery.by_rule, 1);
    assert_eq!(status.discovery.dismissed, 0);
    assert_eq!(status.discovery.kernel_errors, 0);
    assert!(
        p.sink.sessions().is_empty(),
        "the session row waits for its end"
    );
}

#[test]
fn each_pending_agent_gets_its_own_slot_and_session() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--task", "a"]));
    p.handle(pending(OTHER, 1).exec(2, "/usr/bin/agent", &["agent", "--task", "b"]));
    let [a, b] = [&p.sink.events[0], &p.sink.events[1]];
    assert_eq!((a.agent.as_str(), b.agent.as_str()), ("agent", "agent"));
    assert_ne!(a.slot, b.slot);
    assert_ne!(a.session_id, b.session_id);
    assert_eq!(
        kernel.calls(),
        vec![Call::SetAgent(ROOT, a.slot), Call::SetAgent(OTHER, b.slot)]
    );
    let roots: Vec<u32> = p.status().agents.iter().map(|a| a.root_pid).collect();
    assert_eq!(roots, vec![ROOT, OTHER]);
    assert_eq!(p.status().discovery.by_rule, 2);
}

#[test]
fn a_pending_exec_the_argv_glob_refuses_is_dismissed_with_its_children() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let root = pending(ROOT, 1);
    let child = pending_child(CHILD, 20, ROOT);
    for record in [
        // comm "agent" is a rule key, but "agent --help" is not "* --task*".
        root.exec(1, "/usr/bin/agent", &["agent", "--help"]),
        root.fork(2, CHILD, 20),
        child.fork(3, GRANDCHILD, 30),
        child.exit(4, 0),
        pending_child(GRANDCHILD, 30, CHILD).exit(5, 0),
        root.exit(6, 0),
    ] {
        p.handle(record);
    }
    assert_eq!(p.sink.events, vec![], "nothing of the tree is kept");
    assert_eq!(
        kernel.calls(),
        vec![
            Call::Forget(ROOT),
            Call::Forget(CHILD),
            Call::Forget(GRANDCHILD)
        ],
        "the kernel forgets the process and the children it forked meanwhile"
    );
    assert_eq!(p.stats().events(), 0);
    assert_eq!(p.table().seen_count(), 0);
    let status = p.status();
    assert_eq!(status.agents, vec![]);
    assert_eq!(status.discovery.dismissed, 1);
    assert_eq!(status.discovery.by_rule, 0);
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(ROOT)
        && d.is_dismissed(CHILD)
        && d.is_dismissed(GRANDCHILD)));
}

#[test]
fn every_condition_of_the_rule_is_checked_not_only_the_kernel_key() {
    let text = r#"
[[agents]]
name = "agent"
comm = "agent"
uid = 4242
"#;
    let kernel = FakeKernel::default();
    let mut p = discovering(text, &kernel);
    // The comm key matched in the kernel; the uid does not.
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent"]));
    // Both hold.
    p.handle(with_uid(pending(OTHER, 1), 4242).exec(2, "/usr/bin/agent", &["agent"]));
    // The uid holds, the comm does not.
    p.handle(with_uid(pending(CHILD, 1), 4242).exec(3, "/usr/bin/agen", &["agen"]));
    assert_eq!(p.sink.agents(), vec![(2, "agent")]);
    assert_eq!(kernel.forgotten(), vec![ROOT, CHILD]);
    assert_eq!(p.status().discovery.dismissed, 2);
    assert_eq!(p.status().discovery.by_rule, 1);
}

#[test]
fn a_cgroup_condition_is_checked_against_the_processs_own_cgroup() {
    let text = r#"
[[agents]]
name = "agent"
comm = "agent"
cgroup = "/*"
"#;
    let me = std::process::id();
    let cgroup = crate::identity::read_cgroup(me).expect("this test runs in a cgroup");
    let kernel = FakeKernel::default();
    let mut p = discovering(text, &kernel);
    // No such process: no cgroup, and the rule needs one.
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent"]));
    // This process: its cgroup is read from /proc.
    p.handle(pending(me, 1).exec(2, "/usr/bin/agent", &["agent"]));
    assert_eq!(p.sink.agents(), vec![(2, "agent")]);
    assert_eq!(kernel.forgotten(), vec![ROOT]);
    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].pid, Some(me));
    assert_eq!(rows[0].cgroup.as_deref(), Some(cgroup.as_str()));
}

#[test]
fn a_dismissed_pid_reused_by_a_matching_exec_becomes_an_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--version"]));
    p.handle(pending(ROOT, 1).exit(2, 0));
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(ROOT)));
    // A new process with the same pid, which the rule does match.
    p.handle(pending(ROOT, 1).exec(3, "/usr/bin/agent", &["agent", "--task", "x"]));
    p.handle(pending(ROOT, 1).fork(4, CHILD, 40));
    assert_eq!(p.sink.agents(), vec![(3, "agent"), (4, "agent")]);
    assert!(p.discovery().is_some_and(|d| !d.is_dismissed(ROOT)));
    assert_eq!(p.status().discovery.dismissed, 1);
    assert_eq!(
        agent_status(&p, "agent").map(|a| (a.root_pid, a.processes)),
        Some((ROOT, 2))
    );
}

#[test]
fn a_pending_process_whose_exec_was_lost_is_dropped() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    // Its exec never arrived: the rules cannot judge it.
    p.handle(pending(ROOT, 1).fork(1, CHILD, 20));
    assert_eq!(kernel.forgotten(), vec![ROOT]);
    p.handle(pending(ROOT, 1).exit(2, 0));
    // The child it forked is dropped at its own first event.
    p.handle(pending_child(CHILD, 20, ROOT).exit(3, 0));
    assert_eq!(p.sink.events, vec![]);
    assert_eq!(kernel.forgotten(), vec![ROOT, CHILD]);
    assert_eq!(p.status().agents, vec![]);
    assert_eq!(p.table().seen_count(), 0);
}

// ---------------------------------------------------------------------------
// Children forked before their parent was settled.
// ---------------------------------------------------------------------------

#[test]
fn a_child_forked_before_its_parent_was_settled_gets_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    // The parent's own events still pending (the kernel had not been told
    // yet), then its child's, whose entry was copied from the parent's.
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.fork(3, GRANDCHILD, 30));
    p.handle(pending_child(GRANDCHILD, 30, CHILD).exit(4, 0));

    let events = &p.sink.events;
    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent"), (4, "agent")]
    );
    assert!(events.iter().all(|e| e.slot == slot), "{events:?}");
    let session = &events[0].session_id;
    assert!(events.iter().all(|e| &e.session_id == session));
    assert_eq!(
        kernel.calls(),
        vec![
            Call::SetAgent(ROOT, slot),
            Call::SetAgent(ROOT, slot),
            Call::SetAgent(CHILD, slot),
            Call::SetAgent(GRANDCHILD, slot),
        ]
    );
    assert_eq!(p.table().get(CHILD).map(|c| c.agent_slot), Some(slot));
    assert_eq!(p.status().discovery.dismissed, 0);
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(2),
        "root and child live; the grandchild exited"
    );
}

#[test]
fn a_pending_childs_exec_of_an_ordinary_program_keeps_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    // The agent forked, and the child exec'd `ls`, before the agent's
    // kernel entry was settled: the child's entry is still pending.
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/bin/ls", &["ls", "-l"]));
    p.handle(child.exit(4, 0));

    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent"), (4, "agent")],
        "the agent's child and what it ran are the agent's"
    );
    assert_eq!(kernel.forgotten(), Vec::<u32>::new());
    assert!(kernel.calls().contains(&Call::SetAgent(CHILD, slot)));
    assert_eq!(p.status().discovery.dismissed, 0);
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(1),
        "the child's exit is counted"
    );
}

#[test]
fn a_pending_childs_exec_of_another_agents_program_is_delegated() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/usr/bin/helper", &["helper"]));

    let exec = p.sink.events.last().expect("the exec").clone();
    assert_eq!((exec.seq, exec.agent.as_str()), (3, "helper"));
    let second = exec.slot;
    assert_ne!(second, first);
    assert_eq!(second & AGENT_PENDING, 0);
    assert_eq!(kernel.forgotten(), Vec::<u32>::new());
    assert_eq!(
        kernel.calls().last(),
        Some(&Call::SetAgent(CHILD, second)),
        "the kernel ends with the child in the helper: {:?}",
        kernel.calls()
    );
    let helper = agent_status(&p, "helper").expect("the helper");
    assert_eq!((helper.root_pid, helper.source), (CHILD, "delegated"));
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));

    p.handle(actor(CHILD, 20, ROOT).agent(second).exit(4, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].agent, "helper");
    assert_eq!(rows[0].parent_session_id, Some(first_session));
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));
}

#[test]
fn a_pending_child_reusing_a_dismissed_pid_keeps_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    // An earlier process with the child's pid was dismissed.
    p.handle(pending(CHILD, 1).exec(1, "/usr/bin/agent", &["agent", "--help"]));
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(CHILD)));

    p.handle(pending(ROOT, 1).exec(2, "/usr/bin/agent", &["agent", "--task", "x"]));
    let slot = p.sink.events[0].slot;
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(3, CHILD, 20));
    p.handle(child.fork(4, GRANDCHILD, 30));
    p.handle(child.exit(5, 0));

    assert_eq!(
        p.sink.agents(),
        vec![(2, "agent"), (3, "agent"), (4, "agent"), (5, "agent")]
    );
    assert!(kernel.calls().contains(&Call::SetAgent(CHILD, slot)));
    assert_eq!(kernel.forgotten(), vec![CHILD], "only the old process");
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(2),
        "root and grandchild live"
    );
}

// ---------------------------------------------------------------------------
// Sessions end with the tree.
// ---------------------------------------------------------------------------

#[test]
fn an_agents_session_ends_when_its_last_process_exits() {
    // The root first, then the child; and the other way round.
    for root_first in [true, false] {
        let kernel = FakeKernel::default();
        let mut p = discovering(RULES, &kernel);
        let slot = start_agent(&mut p);
        let session_id = agent_status(&p, "agent").expect("the agent").session_id;
        let root = actor(ROOT, 0, 1).agent(slot);
        let child = actor(CHILD, 20, ROOT).agent(slot);
        p.handle(root.fork(2, CHILD, 20));
        assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(2));

        let (first, second) = if root_first {
            (root.exit(3, 0), child.exit(4, 0))
        } else {
            (child.exit(3, 0), root.exit(4, 0))
        };
        p.handle(first);
        assert_eq!(p.sink.sessions(), vec![], "one process still runs");
        assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));

        p.handle(second);
        let rows = p.sink.sessions();
        assert_eq!(rows.len(), 1, "root first: {root_first}");
        let row = &rows[0];
        assert_eq!(row.session_id, session_id);
        assert_eq!(row.agent, "agent");
        assert_eq!(row.source, "rule");
        assert_eq!(row.parent_session_id, None);
        assert_eq!(row.pid, Some(ROOT));
        assert_eq!(row.uid, Some(1000));
        assert_eq!(row.task.as_deref(), Some("agent --task fix it"));
        assert_eq!(row.started, 1_000, "the exec's time");
        assert_eq!(row.ended, Some(4_000), "the last exit's time");
        assert_eq!(row.exe_sha256.as_deref(), Some("sha-of-/usr/bin/agent"));
        assert_eq!(row.spiffe_id, None);
        let status = p.status();
        assert_eq!(status.agents, vec![]);
        assert_eq!(status.sessions_open, 0);
        assert_eq!(status.discovery.by_rule, 1);

        // The row is written once, not again at the end.
        let (_, _, sink) = p.finish();
        assert_eq!(sink.sessions(), rows);
    }
}

#[test]
fn a_session_still_running_at_the_end_is_written_by_finish() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    start_agent(&mut p);
    let session_id = agent_status(&p, "agent").expect("the agent").session_id;
    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, session_id);
    assert_eq!(rows[0].source, "rule");
    assert!(rows[0].ended.is_some());
}

// ---------------------------------------------------------------------------
// Delegation: an agent's process runs another agent's program.
// ---------------------------------------------------------------------------

#[test]
fn a_process_running_another_agents_program_is_delegated_to_it() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    let root = actor(ROOT, 0, 1).agent(first);
    p.handle(root.fork(2, CHILD, 20));
    p.handle(
        actor(CHILD, 20, ROOT)
            .agent(first)
            .exec(3, "/usr/bin/helper", &["helper", "run"]),
    );

    let exec = p.sink.events.last().expect("the exec").clone();
    assert_eq!(exec.agent, "helper");
    let second = exec.slot;
    assert_ne!(second, first);
    assert_eq!(
        kernel.calls(),
        vec![Call::SetAgent(ROOT, first), Call::SetAgent(CHILD, second)]
    );
    assert_eq!(p.table().get(CHILD).map(|c| c.agent_slot), Some(second));
    let helper = agent_status(&p, "helper").expect("the helper");
    assert_eq!(
        (helper.root_pid, helper.source, helper.processes),
        (CHILD, "delegated", 1)
    );
    assert_eq!(exec.session_id.as_deref(), Some(helper.session_id.as_str()));
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(1),
        "the child left the first agent"
    );
    assert_eq!(p.status().discovery.delegated, 1);

    // What the child does next is the helper's, and so are its children.
    let child = actor(CHILD, 20, ROOT).agent(second);
    p.handle(child.fork(4, GRANDCHILD, 30));
    p.handle(actor(GRANDCHILD, 30, CHILD).agent(second).exit(5, 0));
    assert_eq!(
        p.sink.agents(),
        vec![
            (1, "agent"),
            (2, "agent"),
            (3, "helper"),
            (4, "helper"),
            (5, "helper")
        ]
    );
    assert_eq!(p.table().exited()[0].agent_slot, second);
    assert_eq!(agent_status(&p, "helper").map(|a| a.processes), Some(1));

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 2);
    let first_row = rows.iter().find(|r| r.agent == "agent").expect("agent row");
    let second_row = rows
        .iter()
        .find(|r| r.agent == "helper")
        .expect("helper row");
    assert_eq!(first_row.session_id, first_session);
    assert_eq!(first_row.source, "rule");
    assert_eq!(second_row.session_id, helper.session_id);
    assert_eq!(second_row.source, "delegated");
    assert_eq!(second_row.parent_session_id, Some(first_session));
    assert_eq!(second_row.pid, Some(CHILD));
    assert_eq!(second_row.task.as_deref(), Some("helper run"));
}

#[test]
fn a_delegating_last_process_ends_the_first_agents_session() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    // The root itself runs the helper: the first agent has nothing left.
    p.handle(
        actor(ROOT, 0, 1)
            .agent(first)
            .exec(2, "/usr/bin/helper", &["helper"]),
    );
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, first_session);
    assert_eq!(rows[0].ended, Some(2_000));
    let status = p.status();
    assert_eq!(status.agents.len(), 1);
    assert_eq!(
        (status.agents[0].agent.as_str(), status.agents[0].source),
        ("helper", "delegated")
    );

    let second = p.sink.events[1].slot;
    p.handle(actor(ROOT, 0, 1).agent(second).exit(3, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].agent, "helper");
    assert_eq!(rows[1].parent_session_id, Some(first_session));
    assert_eq!(rows[1].ended, Some(3_000));
    assert_eq!(p.status().agents, vec![]);
}

#[test]
fn running_the_same_agents_program_again_is_not_delegation() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    p.handle(
        actor(ROOT, 0, 1)
            .agent(slot)
            .exec(2, "/usr/bin/agent", &["agent", "--task", "y"]),
    );
    p.handle(actor(ROOT, 0, 1).agent(slot).exec(3, "/bin/sh", &["sh"]));
    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent")]
    );
    assert!(p.sink.events.iter().all(|e| e.slot == slot));
    assert_eq!(kernel.calls(), vec![Call::SetAgent(ROOT, slot)]);
    assert_eq!(p.status().discovery.delegated, 0);
    assert_eq!(p.status().agents.len(), 1);
}

#[test]
fn a_delegated_process_exiting_before_the_kernel_learned_its_new_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let root = actor(ROOT, 0, 1).agent(first);
    p.handle(root.fork(2, CHILD, 20));
    // The child runs the helper, and exits before `set_agent` reached the
    // kernel: its exit still carries the first agent's slot.
    let stale = actor(CHILD, 20, ROOT).agent(first);
    p.handle(stale.exec(3, "/usr/bin/helper", &["helper"]));
    p.handle(stale.exit(4, 0));

    assert_eq!(
        p.sink.agents().last(),
        Some(&(4, "helper")),
        "the exit is the helper's"
    );
    let rows = p.sink.sessions();
    let ended: Vec<&str> = rows.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(
        ended,
        vec!["helper"],
        "the helper's tree is gone; the agent's root still runs"
    );
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));
    assert_eq!(agent_status(&p, "helper"), None);
}

// ---------------------------------------------------------------------------
// Workload identity.
// ---------------------------------------------------------------------------

#[test]
fn an_identity_mapping_gives_the_agents_session_its_spiffe_id() {
    let text = format!(
        r#"{RULES}
[[identity]]
spiffe_id = "spiffe://example.org/agent"
agent = "agent"
"#
    );
    let kernel = FakeKernel::default();
    let mut p = discovering(&text, &kernel);
    let slot = start_agent(&mut p);
    // Another agent, which no mapping names.
    p.handle(pending(OTHER, 1).exec(2, "/usr/bin/helper", &["helper"]));
    p.handle(actor(ROOT, 0, 1).agent(slot).exit(3, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].agent, "agent");
    assert_eq!(
        rows[0].spiffe_id.as_deref(),
        Some("spiffe://example.org/agent")
    );

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    let helper = rows
        .iter()
        .find(|r| r.agent == "helper")
        .expect("helper row");
    assert_eq!(helper.spiffe_id, None);
}

// ---------------------------------------------------------------------------
// Without discovery (`run`).
// ---------------------------------------------------------------------------

#[test]
fn without_discovery_pending_events_pass_through_unjudged() {
    let mut p = Processor::new(Recorder::default(), Agents::default())
        .with_cwd_lookup(project_cwd)
        .with_identity_lookup(fake_identity);
    let root = pending(ROOT, 1);
    p.handle(root.exec(1, "/usr/bin/agent", &["agent", "--help"]));
    p.handle(root.fork(2, CHILD, 20));
    p.handle(pending_child(CHILD, 20, ROOT).exit(3, 0));

    // `run` never sees a pending process (its kernel has no rules); if it
    // did, the events would be kept as they came, under no agent.
    assert_eq!(
        p.sink.agents(),
        vec![(1, "unknown"), (2, "unknown"), (3, "unknown")]
    );
    assert!(p.sink.events.iter().all(|e| e.slot == AGENT_PENDING));
    assert_eq!(
        p.table().get(ROOT).map(|r| r.agent_slot),
        Some(AGENT_PENDING)
    );
    let status = p.status();
    assert_eq!(status.agents, vec![]);
    assert_eq!(
        status.discovery,
        crate::discovery::DiscoveryStats::default()
    );
    assert!(p.discovery().is_none());
    assert_eq!(p.adopt_running(), 0);
    let (_, _, sink) = p.finish();
    assert_eq!(sink.sessions(), vec![]);
}

// ---------------------------------------------------------------------------
// Adoption and registration of running processes (real /proc).
// ---------------------------------------------------------------------------

/// A `sleep` this test starts, with an argument no other process has;
/// killed when dropped.
struct Sleeper {
    child: Child,
    arg: String,
}

impl Sleeper {
    fn start(tag: u32) -> Sleeper {
        let arg = format!("86400.{}{tag:03}", std::process::id());
        let child = Command::new("sleep")
            .arg(&arg)
            .spawn()
            .expect("sleep starts");
        Sleeper { child, arg }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A rule matching this sleep and no other process.
    fn rule(&self, name: &str) -> String {
        format!(
            "[[agents]]\nname = \"{name}\"\ncomm = \"sleep\"\nargv = \"sleep {}\"\n",
            self.arg
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn running_processes_a_rule_matches_are_adopted() {
    let sleeper = Sleeper::start(1);
    let pid = sleeper.pid();
    let kernel = FakeKernel::default();
    let mut p = discovering(&sleeper.rule("sleeper"), &kernel);
    assert_eq!(p.adopt_running(), 1);

    let calls = kernel.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let Call::Adopt(adopted, slot) = calls[0] else {
        panic!("not an adoption: {calls:?}");
    };
    assert_eq!(adopted, pid);
    let status = p.status();
    assert_eq!(status.agents.len(), 1);
    let agent = &status.agents[0];
    assert_eq!(
        (
            agent.agent.as_str(),
            agent.root_pid,
            agent.source,
            agent.processes
        ),
        ("sleeper", pid, "adopted", 1)
    );
    assert_eq!(status.discovery.adopted, 1);
    let process = p
        .table()
        .get(pid)
        .expect("the adopted process is in the table");
    assert_eq!(process.agent_slot, slot);
    assert_eq!(process.argv, vec!["sleep".to_string(), sleeper.arg.clone()]);

    // Its exit ends the session.
    p.handle(actor(pid, 0, std::process::id()).agent(slot).exit(1, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source, "adopted");
    assert_eq!(rows[0].agent, "sleeper");
    assert_eq!(rows[0].pid, Some(pid));
    assert_eq!(rows[0].session_id, agent.session_id);
    assert_eq!(p.status().agents, vec![]);
}

#[test]
fn a_process_the_kernel_already_tracks_is_not_adopted() {
    let sleeper = Sleeper::start(2);
    let kernel = FakeKernel::refusing_adoption();
    let mut p = discovering(&sleeper.rule("sleeper"), &kernel);
    assert_eq!(p.adopt_running(), 0);
    assert!(
        matches!(kernel.calls()[..], [Call::Adopt(pid, _)] if pid == sleeper.pid()),
        "{:?}",
        kernel.calls()
    );
    assert_eq!(p.status().agents, vec![]);
    assert_eq!(p.status().discovery.adopted, 0);
    assert!(p.table().get(sleeper.pid()).is_none());
}

#[test]
fn with_no_rules_nothing_is_adopted() {
    let kernel = FakeKernel::default();
    let mut p = discovering("", &kernel);
    assert_eq!(p.adopt_running(), 0);
    assert_eq!(kernel.calls(), vec![]);
}

#[test]
fn a_registered_descendant_becomes_an_agent() {
    let sleeper = Sleeper::start(3);
    let pid = sleeper.pid();
    let me = std::process::id();
    let uid = unsafe { libc::getuid() };
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.correlator_mut().connect(
        7,
        Peer {
            pid: me,
            start_ns: 0,
            uid,
            agent_slot: None,
        },
    );
    let register = Register {
        name: "registered".to_string(),
        pid: Some(pid),
        task: Some("review the diff".to_string()),
    };
    let reply = p.register(7, register, None);
    let Reply::Accepted {
        session_id: Some(session_id),
        ..
    } = &reply
    else {
        panic!("registration refused: {reply:?}");
    };
    let session_id = session_id.clone();
    let status = p.status();
    assert_eq!(
        status.agents,
        vec![AgentStatus {
            agent: "registered".to_string(),
            root_pid: pid,
            session_id: session_id.clone(),
            source: "register",
            processes: 1,
        }]
    );
    assert_eq!(status.discovery.registered, 1);
    assert!(matches!(kernel.calls()[..], [Call::Adopt(adopted, _)] if adopted == pid));

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, session_id);
    assert_eq!(rows[0].source, "register");
    assert_eq!(rows[0].task.as_deref(), Some("review the diff"));
}

#[test]
fn registration_is_the_daemons_only() {
    let mut p = Processor::new(Recorder::default(), Agents::default());
    let register = Register {
        name: "registered".to_string(),
        pid: None,
        task: None,
    };
    let reply = p.register(7, register, None);
    assert!(
        matches!(&reply, Reply::Error { message, .. } if message.contains("daemon")),
        "{reply:?}"
    );
}
