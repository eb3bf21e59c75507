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

/// Records every write; `adopt` answers `adopts`, or NotFound when the
/// process is `gone`.
#[derive(Clone)]
struct FakeKernel {
    calls: Arc<Mutex<Vec<Call>>>,
    adopts: bool,
    gone: bool,
}

impl Default for FakeKernel {
    fn default() -> FakeKernel {
        FakeKernel {
            calls: Arc::default(),
            adopts: true,
            gone: false,
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
        if self.gone {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
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

    fn is_process(&self, _: u32, _: u64) -> bool {
        !self.gone
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

// The tests, by theme.
mod adoption;
mod settling;
mod trees;
