//! Unit tests of the processing stage, by theme:
//! - `processor`: records handled one at a time, what reaches the sink, what
//!   is counted, the tree state;
//! - `stage`: the async stage, batches in and state published.

mod discovered;
mod held;
mod processor;
mod stage;

use super::*;

use std::{cell::RefCell, time::Duration};

use agent_monitor_common::UnknownEventKind;

use crate::{
    decode::decode,
    event::{ExitStatus, LossReport},
    process_table::ProcessKey,
    test_support::{self, argv_block, bytes_of, process_info},
};

// ---------------------------------------------------------------------------
// Records built by `test_support` as the kernel sends them, then decoded
// into the `Record`s the reader hands to the processor.
// ---------------------------------------------------------------------------

/// An actor whose records are numbered as the reader numbers them: record
/// `seq` is its CPU's record `seq`, stamped `seq` µs after boot.
#[derive(Clone, Copy)]
struct Actor(test_support::Actor);

fn actor(pid: u32, start_ns: u64, ppid: u32) -> Actor {
    Actor(test_support::actor(pid, start_ns, ppid))
}

impl Actor {
    fn agent(self, agent: u32) -> Actor {
        Actor(self.0.agent(agent))
    }

    fn key(self) -> ProcessKey {
        self.0.key()
    }

    /// The actor as its record `seq` shows it.
    fn numbered(self, seq: u64) -> test_support::Actor {
        self.0.on_cpu(0, seq).at(1_000 * seq)
    }

    fn exec(self, seq: u64, filename: &str, args: &[&str]) -> Record {
        let bytes = self
            .numbered(seq)
            .exec_record(filename.as_bytes(), &argv_block(args), 0);
        record(&bytes, seq)
    }

    fn fork(self, seq: u64, child_pid: u32, child_start_ns: u64) -> Record {
        let bytes = self.numbered(seq).fork_record(child_pid, child_start_ns);
        record(&bytes, seq)
    }

    fn exit(self, seq: u64, status: u32) -> Record {
        record(&self.numbered(seq).exit_record(status), seq)
    }
}

/// What the ring-buffer reader makes of a record.
fn record(bytes: &[u8], seq: u64) -> Record {
    match decode(bytes, seq) {
        Ok(event) => Record::Event(event),
        Err(err) => Record::Invalid(err),
    }
}

fn loss(counter: Counter, cpu: u32, count: u64) -> Record {
    Record::Loss(LossReport {
        counter,
        cpu,
        count,
        since_ns: 1,
        until_ns: 2,
    })
}

// ---------------------------------------------------------------------------
// A sink that keeps what it is given, and fails when told to.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    seq: u64,
    kind: &'static str,
    process: ProcessInfo,
    agent: String,
}

#[derive(Default)]
struct Capture {
    events: Vec<Seen>,
    /// Final process records: (process key, exit known, agent).
    processes: Vec<(ProcessKey, bool, String)>,
    losses: Vec<LossReport>,
    flushes: usize,
    fail_events: bool,
    fail_losses: bool,
    fail_flush: bool,
}

impl Capture {
    fn failing() -> Capture {
        Capture {
            fail_events: true,
            fail_losses: true,
            fail_flush: true,
            ..Capture::default()
        }
    }

    fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|e| e.seq).collect()
    }
}

impl Sink for Capture {
    fn event(&mut self, event: &Event, process: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        if self.fail_events {
            return Err(io::Error::other("event sink broken"));
        }
        self.events.push(Seen {
            seq: event.seq,
            kind: event.kind().name(),
            process: process.clone(),
            agent: who.agent.to_string(),
        });
        Ok(())
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> io::Result<()> {
        self.processes
            .push((process.key, process.exit.is_some(), agent.to_string()));
        Ok(())
    }

    fn loss(&mut self, loss: &LossReport) -> io::Result<()> {
        if self.fail_losses {
            return Err(io::Error::other("loss sink broken"));
        }
        self.losses.push(*loss);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        if self.fail_flush {
            return Err(io::Error::other("flush broken"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The cwd lookup, without /proc.
// ---------------------------------------------------------------------------

thread_local! {
    static CWD_LOOKUPS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Knows the cwd of pid 100 only, and logs every lookup on this thread.
fn fake_cwd(pid: u32) -> Option<String> {
    CWD_LOOKUPS.with(|log| log.borrow_mut().push(pid));
    (pid == 100).then(|| "/home/u/project".to_string())
}

fn cwd_lookups() -> Vec<u32> {
    CWD_LOOKUPS.with(|log| log.borrow().clone())
}

fn agents() -> Agents {
    let mut agents = Agents::default();
    assert_eq!(agents.add("claude-code"), 1);
    assert_eq!(agents.add("codex"), 2);
    agents
}

/// A workload identity made from the pid and exe, so tests see which
/// lookup a process's identity came from.
fn fake_identity(
    _: &mut crate::identity::ExeHasher,
    pid: u32,
    exe: Option<&str>,
) -> crate::identity::WorkloadIdentity {
    crate::identity::WorkloadIdentity {
        cgroup: Some(format!("/agents/{pid}")),
        container_id: None,
        exe_sha256: exe.map(|e| format!("sha-of-{e}")),
    }
}

fn processor(sink: Capture) -> Processor<Capture> {
    Processor::new(sink, agents())
        .with_cwd_lookup(fake_cwd)
        .with_identity_lookup(fake_identity)
}

/// The command `run` launches, before its start time is known.
fn root_info(pid: u32) -> ProcessInfo {
    ProcessInfo {
        argv: vec!["agent".to_string()],
        cwd: Some("/home/u/project".to_string()),
        ..process_info(pid, 0)
    }
}

fn state(root_exited: bool, live: usize) -> TreeState {
    TreeState { root_exited, live }
}
