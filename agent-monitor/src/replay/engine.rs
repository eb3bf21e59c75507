//! The live [`Correlator`] driven by stored evidence: its sessions opened
//! from the `sessions` table, every recorded tool call declared again
//! from a stand-in connection of the process that declared it, losses
//! reported, and every event rebuilt and judged, each in its time order.
//!
//! One clock for everything: the wall-clock times of the tables stand in
//! for the kernel's boot clock, process starts included (from `processes`,
//! or, for a process it lacks, the time it was first seen).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use super::{
    calls::{self, Call, Declarer},
    error::ReplayError,
    events::{self, Bound, EventRow, wall},
    store::Store,
    tables::{self, ProcessRow},
};
use crate::{
    correlate::{Correlator, Judgement, Now, Peer, SessionSpec, Verdict, effects},
    declare::{Envelope, Request, SessionStart},
    evidence::declared::SessionRow,
    pipeline::Agents,
    policy::{Effect, EffectKind, Policy},
    process_table::{ExecContext, ProcessTable},
};

/// The monitor's pid as the replay knows it: none. No process can have
/// this one, so signals and ptrace stay undeclared rather than tampering
/// (0 would not do: `kill(0, …)` signals the caller's own group).
const NO_MONITOR: u32 = u32::MAX;

/// An event's fate in the replay.
#[derive(Clone, Debug)]
pub(crate) enum Judged {
    /// Not judged again, and why: losses do not change with the policy
    /// (`unverifiable`), and a kind this build does not know has no
    /// effects to judge.
    Kept(&'static str),
    New {
        judgement: Judgement,
        /// The event's effects as the policy sees them; empty for
        /// lifecycle events and actions no effect kind names.
        effects: Vec<Effect>,
    },
}

/// What the replay knows beside the verdicts: the calls, each session's
/// working directory, the policy.
pub(crate) struct Known<'p> {
    pub policy: &'p Policy,
    /// Each recorded call once, by start.
    pub calls: Vec<Call>,
    by_id: HashMap<(String, String), usize>,
    cwds: HashMap<String, String>,
}

impl Known<'_> {
    pub fn call(&self, session_id: Option<&str>, call_id: Option<&str>) -> Option<&Call> {
        let key = (session_id?.to_string(), call_id?.to_string());
        self.by_id.get(&key).map(|i| &self.calls[*i])
    }

    /// The working directory of a session's root process.
    pub fn cwd(&self, session_id: Option<&str>) -> Option<&str> {
        self.cwds.get(session_id?).map(String::as_str)
    }
}

/// A declaration or a loss, at its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    /// A session an agent declared opens (by index of `pending`).
    Session(usize),
    Loss(u64, u64),
    /// Ends before starts at the same time: a call is not open at its end.
    End(usize),
    Start(usize),
}

pub(crate) struct Engine<'p> {
    store: Store,
    pub known: Known<'p>,
    live: Live,
}

/// The correlator and what feeds it.
struct Live {
    correlator: Correlator,
    table: ProcessTable,
    /// Declarations and losses in time order, and how many are done.
    steps: Vec<(i64, Step)>,
    done: usize,
    /// Sessions agents declared, until they open.
    pending: Vec<Option<SessionSpec>>,
    pending_by_id: HashMap<String, usize>,
    /// Each session's agent slot and root pid.
    sessions: HashMap<String, (u32, Option<u32>)>,
    processes: HashMap<String, ProcessRow>,
    /// Process starts on the wall clock, by key.
    starts: HashMap<String, u64>,
    /// Stand-in connections, by declarer and session, with the agent an
    /// outsider names.
    conns: HashMap<(String, String), (u64, Option<String>)>,
    /// The slot each call was given: session → call → slot.
    slots: HashMap<String, HashMap<String, u64>>,
}

impl<'p> Engine<'p> {
    pub fn load(store: Store, policy: &'p Policy) -> Result<Engine<'p>, ReplayError> {
        let stored = tables::sessions(&store)?;
        let processes = tables::processes(&store)?;
        let actors = tables::actors(&store)?;
        let calls = calls::distinct(tables::calls(&store)?);

        let mut agents = Agents::default();
        let names = (stored.iter().map(|s| s.agent.as_str()))
            .chain(processes.values().map(|p| p.agent.as_str()))
            .chain(actors.agents.iter().map(String::as_str));
        for name in names {
            if agents.slot_of(name).is_none() {
                agents.add(name);
            }
        }
        // What the monitor added to the baseline live and no policy file
        // holds: each run's connect to its own declaration socket.
        let mut judged_by = policy.clone();
        for session in stored.iter().filter(|s| s.source == "run") {
            judged_by.extend_baseline(
                "monitor.api",
                EffectKind::NetConnect,
                &crate::api::socket_pattern(&session.session_id),
            )?;
        }
        let correlator = Correlator::new(Arc::new(judged_by), agents).with_monitor_pid(NO_MONITOR);

        let by_id = calls
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.row.session_id.clone(), c.row.call_id.clone()), i))
            .collect();
        let mut known = Known {
            policy,
            calls,
            by_id,
            cwds: HashMap::new(),
        };

        // The sessions the events or calls name and the table lacks (a
        // monitor killed before it wrote them), with the agent they seem
        // to be of.
        let first_agent = correlator.agents().name(1).to_string();
        let mut named: HashSet<&str> = stored.iter().map(|s| s.session_id.as_str()).collect();
        let mut orphans: Vec<(String, String)> = Vec::new();
        let of_calls = known.calls.iter().map(|c| {
            let agent = match c.declarer(None) {
                Declarer::Tracked { key: Some(key), .. } => processes.get(&key),
                _ => None,
            };
            let agent = agent.map_or_else(|| first_agent.clone(), |p| p.agent.clone());
            (c.row.session_id.as_str(), agent)
        });
        let of_events = actors.sessions.iter().map(|(s, a)| (s.as_str(), a.clone()));
        for (id, agent) in of_events.chain(of_calls) {
            if named.insert(id) {
                orphans.push((id.to_string(), agent));
            }
        }

        let starts = processes
            .iter()
            .map(|(key, p)| (key.clone(), wall(p.start)))
            .collect();
        let mut live = Live {
            correlator,
            table: ProcessTable::new(),
            steps: Vec::new(),
            done: 0,
            pending: Vec::new(),
            pending_by_id: HashMap::new(),
            sessions: HashMap::new(),
            processes,
            starts,
            conns: HashMap::new(),
            slots: HashMap::new(),
        };
        live.sessions(stored, orphans, &mut known);
        for (since, until) in tables::loss_windows(&store)? {
            live.steps
                .push((since, Step::Loss(wall(since), wall(until))));
        }
        for (i, call) in known.calls.iter().enumerate() {
            live.steps.push((call.row.started, Step::Start(i)));
            if let Some(ended) = call.row.ended {
                live.steps.push((ended, Step::End(i)));
            }
        }
        live.steps.sort();
        Ok(Engine { store, known, live })
    }

    /// Judges every event, in file order, and shows each to `visit`.
    pub fn run(
        &mut self,
        mut visit: impl FnMut(&Known, &EventRow, &Judged),
    ) -> Result<(), ReplayError> {
        let Engine { store, known, live } = self;
        events::for_each(store, |row| {
            let judged = live.judge(known, &row);
            visit(known, &row, &judged);
            Ok(())
        })
    }
}

impl Live {
    /// Opens the stored sessions: a `run` session as the monitor opened
    /// it, the default of its agent; one an agent declared at the time it
    /// started. Of the sessions the table lacks (no root, no directory),
    /// the first of an agent without a `run` session is its default.
    fn sessions(
        &mut self,
        stored: Vec<SessionRow>,
        orphans: Vec<(String, String)>,
        known: &mut Known,
    ) {
        let mut defaults: Vec<u32> = Vec::new();
        for row in stored {
            let slot = self.correlator.agents().slot_of(&row.agent).unwrap_or(0);
            self.sessions
                .insert(row.session_id.clone(), (slot, row.pid));
            let cwd = row
                .root_process_key
                .as_ref()
                .and_then(|k| self.processes.get(k))
                .and_then(|p| p.cwd.clone());
            if let Some(cwd) = &cwd {
                known.cwds.insert(row.session_id.clone(), cwd.clone());
            }
            let started = row.started;
            let spec = SessionSpec {
                agent_slot: slot,
                cwd,
                row,
            };
            if spec.row.source == "run" {
                defaults.push(slot);
                self.correlator.open_session(spec);
            } else {
                let i = self.pending.len();
                self.pending_by_id.insert(spec.row.session_id.clone(), i);
                self.steps.push((started, Step::Session(i)));
                self.pending.push(Some(spec));
            }
        }
        for (id, agent) in orphans {
            let slot = self.correlator.agents().slot_of(&agent).unwrap_or(0);
            self.sessions.insert(id.clone(), (slot, None));
            let spec = SessionSpec {
                row: SessionRow {
                    session_id: id,
                    agent,
                    ..SessionRow::default()
                },
                agent_slot: slot,
                cwd: None,
            };
            if defaults.contains(&slot) {
                self.correlator.restore_session(spec);
            } else {
                defaults.push(slot);
                self.correlator.open_session(spec);
            }
        }
    }

    fn judge(&mut self, known: &mut Known, row: &EventRow) -> Judged {
        self.advance(&mut known.calls, row.ts);
        let bound = Bound {
            start_ns: self.start_of(&row.process_key, row.ts),
            child_start_ns: match &row.child_process_key {
                Some(key) => self.start_of(key, row.ts),
                None => wall(row.ts),
            },
            agent_slot: self.correlator.agents().slot_of(&row.agent).unwrap_or(0),
            tool_call: self.slot_of(row.session_id.as_deref(), row.tool_call_id.as_deref()),
        };
        let Some(event) = row.event(bound) else {
            return Judged::Kept("unknown kind");
        };
        // The process table as live: an exec's working directory is the
        // one stored with it.
        let exec = ExecContext {
            cwd: row.cwd.clone(),
        };
        let key = self.table.observe(&event, &exec).key;
        if row.verdict.as_deref() == Some(Verdict::Unverifiable.name()) {
            return Judged::Kept("unverifiable");
        }
        let process = self
            .table
            .by_key(key)
            .expect("the table holds the process it just observed");
        let effects = match effects::of(&event, process) {
            effects::Effects::Some(list) => list,
            _ => Vec::new(),
        };
        let judgement = self.correlator.judge(&event, process, &self.table, row.ts);
        Judged::New { judgement, effects }
    }

    /// Applies the declarations and losses up to `ts`.
    fn advance(&mut self, calls: &mut [Call], ts: i64) {
        while let Some((at, step)) = self.steps.get(self.done).copied()
            && at <= ts
        {
            self.done += 1;
            let now = Now {
                boot_ns: wall(at),
                wall_ns: at,
            };
            match step {
                Step::Session(i) => self.open(i),
                Step::Loss(since, until) => self.correlator.loss(since, until),
                Step::Start(i) => self.start(&mut calls[i], now),
                Step::End(i) => self.end(&calls[i], now),
            }
        }
    }

    fn open(&mut self, pending: usize) {
        if let Some(spec) = self.pending.get_mut(pending).and_then(Option::take) {
            self.correlator.restore_session(spec);
        }
    }

    /// Declares a call again, from a stand-in connection of its declarer
    /// that joined its session. An unreadable call keeps its recorded
    /// decision and covers nothing.
    fn start(&mut self, call: &mut Call, now: Now) {
        let session_id = call.row.session_id.clone();
        if let Some(&pending) = self.pending_by_id.get(&session_id) {
            self.open(pending);
        }
        let (agent_slot, root) = self.sessions.get(&session_id).copied().unwrap_or((0, None));
        let declarer = call.declarer(root);
        let agent = match declarer {
            Declarer::Outside { .. } => Some(self.correlator.agents().name(agent_slot).to_string()),
            Declarer::Tracked { .. } => None,
        };
        let Some(conn) = self.connection(call, &declarer, agent_slot, agent.clone(), now) else {
            return;
        };
        let request = call.start();
        let reply = self
            .correlator
            .declare(conn, envelope(agent, request), now)
            .reply;
        if !call.answer(reply) {
            return;
        }
        let Some(slot) = self
            .correlator
            .open_call_slot(&session_id, &call.row.call_id)
        else {
            return;
        };
        if call.unreadable.is_some() {
            let rule = call.row.rule.clone();
            self.correlator
                .keep_recorded_decision(slot, call.recorded_allow(), rule);
        }
        self.slots
            .entry(session_id)
            .or_default()
            .insert(call.row.call_id.clone(), slot);
    }

    fn end(&mut self, call: &Call, now: Now) {
        if self.slot_of(Some(&call.row.session_id), Some(&call.row.call_id)) == 0 {
            return;
        }
        let root = self.sessions.get(&call.row.session_id).and_then(|s| s.1);
        let key = (call.declarer(root).id(), call.row.session_id.clone());
        if let Some((conn, agent)) = self.conns.get(&key) {
            let request = envelope(agent.clone(), call.end());
            self.correlator.declare(*conn, request, now);
        }
    }

    /// The declarer's connection in the call's session, made and joined
    /// to it on first use; none when the correlator refused the join.
    fn connection(
        &mut self,
        call: &mut Call,
        declarer: &Declarer,
        agent_slot: u32,
        agent: Option<String>,
        now: Now,
    ) -> Option<u64> {
        let session_id = call.row.session_id.clone();
        let key = (declarer.id(), session_id.clone());
        if let Some((conn, _)) = self.conns.get(&key) {
            return Some(*conn);
        }
        let conn = self.conns.len() as u64 + 1;
        let peer = match declarer {
            Declarer::Tracked { pid, key } => {
                let start_ns = key.as_ref().map_or(0, |k| self.start_of(k, now.wall_ns));
                let process = key.as_ref().and_then(|k| self.processes.get(k));
                Peer {
                    pid: *pid,
                    start_ns,
                    uid: process.map_or(0, |p| p.uid),
                    agent_slot: Some(agent_slot),
                }
            }
            Declarer::Outside { pid } => Peer {
                pid: *pid,
                start_ns: 0,
                uid: 0,
                agent_slot: None,
            },
        };
        self.correlator.connect(conn, peer);
        let join = Request::SessionStart(SessionStart {
            session_id: Some(session_id),
            ..SessionStart::default()
        });
        let reply = self
            .correlator
            .declare(conn, envelope(agent.clone(), join), now)
            .reply;
        if !reply.is_ok() {
            call.refused(&reply);
            return None;
        }
        self.conns.insert(key, (conn, agent));
        Some(conn)
    }

    /// When a process started, on the wall clock: from `processes`, or the
    /// time it was first seen.
    fn start_of(&mut self, key: &str, seen: i64) -> u64 {
        if let Some(start) = self.starts.get(key) {
            return *start;
        }
        self.starts.insert(key.to_string(), wall(seen));
        wall(seen)
    }

    fn slot_of(&self, session_id: Option<&str>, call_id: Option<&str>) -> u64 {
        session_id
            .and_then(|s| self.slots.get(s))
            .and_then(|calls| calls.get(call_id?))
            .copied()
            .unwrap_or(0)
    }
}

fn envelope(agent: Option<String>, request: Request) -> Envelope {
    Envelope {
        id: None,
        agent,
        request,
    }
}
