//! The processing stage: decoded records and declarations in, process
//! table updated, every event judged by the correlator, events, declared
//! records and alerts out to the sink, counts kept for the summary.

mod agents;
pub mod control;
mod declarations;
mod discovered;
mod held;
mod status;
mod unseen;

use std::{collections::BTreeMap, fs, io, sync::Arc};

use agent_monitor_common::maps::Counter;
use tokio::sync::{mpsc, watch};

pub use agents::Agents;
pub use held::MAX_HELD;
pub use status::{AgentStatus, StatusSnapshot};

use crate::{
    actions::ActionKind,
    alerts::Alerter,
    api::ApiMessage,
    capture::Capture,
    correlate::{CorrelationStats, Correlator, Judgement},
    decode::DecodeError,
    dns_cache::DnsCache,
    event::{Detail, Event, Record},
    identity::{self, ExeHasher, WorkloadIdentity},
    policy::Policy,
    process_table::{ExecContext, ProcessInfo, ProcessTable},
    sink::{Attribution, Sink},
    time::WallClock,
};

/// What the run loop needs to know of the tree to decide when it is done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeState {
    /// The process the run launched has been seen to exit.
    pub root_exited: bool,
    /// Tracked processes still alive.
    pub live: usize,
}

/// Counts for the end-of-run summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events_by_kind: BTreeMap<&'static str, u64>,
    /// Events the kernel could not send, by CPU.
    pub lost_events: BTreeMap<u32, u64>,
    /// Children left untracked because the tracked-process map was full.
    pub untracked_children: u64,
    /// Records that did not decode, by reason.
    pub invalid: BTreeMap<String, u64>,
    pub sink_errors: u64,
    /// Verdicts and declarations, from the correlator.
    pub correlation: CorrelationStats,
    /// Alerts recorded, by kind (after de-duplication and rate limits).
    pub alerts_by_kind: BTreeMap<String, u64>,
    /// Alerts held back as duplicates or over the rate limit.
    pub alerts_suppressed: u64,
    /// Events held back as undeclared that a call declared after the fact
    /// covered (see `held`).
    pub late_covered: u64,
    /// Held events released before their grace period was over, the
    /// queue being full.
    pub held_overflowed: u64,
}

impl Stats {
    pub fn events(&self) -> u64 {
        self.events_by_kind.values().sum()
    }

    pub fn lost(&self) -> u64 {
        self.lost_events.values().sum()
    }
}

/// How often sinks are flushed when no input arrives.
const FLUSH_TICK: std::time::Duration = std::time::Duration::from_millis(100);
/// Ticks between two status snapshots for the daemon's metrics.
const STATUS_TICKS: u64 = 10;

pub struct Processor<S: Sink> {
    table: ProcessTable,
    sink: S,
    correlator: Correlator,
    /// De-duplicates alerts and notifies; none: every alert is recorded.
    alerter: Option<Alerter>,
    /// Turns event times into wall-clock times for alerts.
    clock: WallClock,
    root_pid: Option<u32>,
    state: TreeState,
    stats: Stats,
    dns: DnsCache,
    /// Reads a process's working directory; replaceable in tests.
    cwd_of: fn(u32) -> Option<String>,
    /// Learns a process's workload identity at exec; replaceable in tests.
    identity_of: fn(&mut ExeHasher, u32, Option<&str>) -> WorkloadIdentity,
    hasher: ExeHasher,
    /// The capture policy for argv; none: kept as the kernel sent it.
    capture: Option<Capture>,
    /// The daemon's agent discovery; none under `run`.
    discovery: Option<crate::discovery::Discovery>,
    /// The evidence directory, for `status`.
    evidence_dir: Option<std::path::PathBuf>,
    /// The syscall probes' attachment, for `status`.
    syscall_hook: Option<std::sync::Arc<crate::kernel::syscall_hook::SyscallHook>>,
    rate: status::Rate,
    /// Undeclared events waiting for late declarations; none: judged
    /// events are written at once.
    held: Option<held::Held>,
}

/// Writes a judged event: a free function, so that the process can stay
/// borrowed from the table while the sink is written.
fn write_event<S: Sink>(
    sink: &mut S,
    correlator: &Correlator,
    event: &Event,
    process: &ProcessInfo,
    judgement: &Judgement,
) -> io::Result<()> {
    let agent = correlator.agents().name(event.agent_slot);
    let who = Attribution {
        agent,
        session_id: judgement.session_id.as_deref(),
        tool_call_id: judgement.tool_call_id.as_deref(),
        verdict: Some(judgement.verdict.name()),
        rule: judgement.rule.as_deref(),
    };
    let mut result = sink.event(event, process, &who);
    if matches!(event.detail, Detail::Exit(_)) {
        result = result.and(sink.process(process, agent));
    }
    result
}

/// The working directory of a live process, from /proc.
pub fn proc_cwd(pid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/cwd"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

impl<S: Sink> Processor<S> {
    /// A stage judging by the embedded default policy.
    pub fn new(sink: S, agents: Agents) -> Processor<S> {
        Processor::judged_by(
            sink,
            Correlator::new(Arc::new(Policy::default_policy()), agents),
        )
    }

    /// A stage judging events with `correlator` (its policy, its agents
    /// and sessions).
    pub fn judged_by(sink: S, correlator: Correlator) -> Processor<S> {
        Processor {
            table: ProcessTable::new(),
            sink,
            correlator,
            alerter: None,
            clock: WallClock::with_offset(0),
            root_pid: None,
            state: TreeState::default(),
            stats: Stats::default(),
            dns: DnsCache::system(),
            cwd_of: proc_cwd,
            identity_of: identity::observe,
            hasher: ExeHasher::new(),
            capture: None,
            discovery: None,
            evidence_dir: None,
            syscall_hook: None,
            rate: status::Rate::default(),
            held: None,
        }
    }

    pub fn with_identity_lookup(
        mut self,
        identity_of: fn(&mut ExeHasher, u32, Option<&str>) -> WorkloadIdentity,
    ) -> Processor<S> {
        self.identity_of = identity_of;
        self
    }

    pub fn with_alerter(mut self, alerter: Alerter) -> Processor<S> {
        self.alerter = Some(alerter);
        self
    }

    /// The clock that turns event times into wall-clock times.
    pub fn with_clock(mut self, clock: WallClock) -> Processor<S> {
        self.clock = clock;
        self
    }

    pub fn correlator_mut(&mut self) -> &mut Correlator {
        &mut self.correlator
    }

    /// Applies the capture policy to every argv before anything sees it.
    pub fn with_capture(mut self, capture: Capture) -> Processor<S> {
        self.capture = Some(capture);
        self
    }

    pub fn with_cwd_lookup(mut self, cwd_of: fn(u32) -> Option<String>) -> Processor<S> {
        self.cwd_of = cwd_of;
        self
    }

    /// The process the run launched, known before any of its events.
    pub fn set_root(&mut self, root: ProcessInfo) {
        self.root_pid = Some(root.key.pid);
        self.table.register(root);
        self.state.live = self.table.live_count();
    }

    pub fn handle(&mut self, record: Record) {
        let result = match record {
            Record::Event(mut event) => {
                if !self.admit(&mut event) {
                    return;
                }
                self.enrich(&mut event);
                let result = self.event(&event);
                self.lifecycle(&event);
                result
            }
            Record::Invalid(err) => {
                self.invalid(&err);
                Ok(())
            }
            Record::Loss(loss) => {
                match loss.counter {
                    Counter::RingbufFull => {
                        *self.stats.lost_events.entry(loss.cpu).or_default() += loss.count;
                        let wall = self.clock.wall_ns(loss.until_ns) as i64;
                        let alert = self.correlator.lost(
                            loss.count,
                            loss.cpu,
                            loss.since_ns,
                            loss.until_ns,
                            wall,
                        );
                        self.raise(alert);
                    }
                    Counter::TrackFull => self.stats.untracked_children += loss.count,
                }
                self.sink.loss(&loss)
            }
        };
        if let Err(err) = result {
            self.sink_error(&err);
        }
    }

    fn event(&mut self, event: &Event) -> io::Result<()> {
        *self
            .stats
            .events_by_kind
            .entry(event.kind_name())
            .or_default() += 1;
        let exec = match event.detail {
            Detail::Exec(_) => ExecContext {
                cwd: (self.cwd_of)(event.pid),
            },
            _ => ExecContext::default(),
        };
        if matches!(event.detail, Detail::Exit(_)) && Some(event.pid) == self.root_pid {
            self.state.root_exited = true;
        }
        let key = self.table.observe(event, &exec).key;
        if matches!(event.detail, Detail::Exec(_)) {
            let exe = self.table.get(event.pid).and_then(|p| p.exe.clone());
            let identity = (self.identity_of)(&mut self.hasher, event.pid, exe.as_deref());
            self.table.set_identity(event.pid, identity);
        }
        let process = self
            .table
            .by_key(key)
            .expect("the table holds the process it just observed");
        let wall_ns = self.clock.wall_ns(event.ts_ns) as i64;
        let judgement = self.correlator.judge(event, process, &self.table, wall_ns);
        self.state.live = self.table.live_count();
        if self.holds(event, &judgement) {
            let process = process.clone();
            self.hold(event.clone(), process, wall_ns, judgement);
            return Ok(());
        }
        let result = write_event(&mut self.sink, &self.correlator, event, process, &judgement);
        self.raise_judged(judgement);
        result
    }

    /// Raises a judged event's alerts.
    fn raise_judged(&mut self, judgement: Judgement) {
        for alert in judgement.alerts {
            self.raise(alert);
        }
        for _ in 0..judgement.repeated_alerts {
            self.repeated("undeclared");
        }
    }

    /// Adds what the stream taught earlier: the DNS name of an address.
    fn enrich(&mut self, event: &mut Event) {
        if let (Detail::Exec(exec), Some(capture)) = (&mut event.detail, &self.capture) {
            // Under `none` the arguments are not kept at all.
            exec.argv = capture.apply_all(&exec.argv).unwrap_or_default();
            return;
        }
        let Detail::Action(action) = &mut event.detail else {
            return;
        };
        let fields = &mut action.fields;
        match action.kind {
            ActionKind::DnsAnswer => {
                if let (Some(name), Some(answers)) = (&fields.name, &fields.answers) {
                    let from = (
                        fields.addr.as_deref().unwrap_or(""),
                        fields.port.unwrap_or(0),
                    );
                    self.dns.learn_from(event.agent_slot, name, answers, from);
                }
            }
            ActionKind::NetConnect | ActionKind::NetSend | ActionKind::NetAccept => {
                if let Some(addr) = &fields.addr {
                    fields.dns_name = self.dns.name(event.agent_slot, addr).map(String::from);
                }
            }
            _ => {}
        }
    }

    fn invalid(&mut self, err: &DecodeError) {
        *self.stats.invalid.entry(err.reason()).or_default() += 1;
    }

    fn sink_error(&mut self, err: &io::Error) {
        // Report the first failure; count the rest so the summary shows the
        // size of the problem without flooding stderr.
        if self.stats.sink_errors == 0 {
            eprintln!("agent-monitor: writing events failed: {err}");
        }
        self.stats.sink_errors += 1;
    }

    pub fn state(&self) -> TreeState {
        self.state
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn table(&self) -> &ProcessTable {
        &self.table
    }

    /// Consumes batches until the channel closes, publishing the tree state
    /// after each one, then flushes and returns the stage.
    pub async fn run(
        self,
        input: mpsc::Receiver<Vec<Record>>,
        state: watch::Sender<TreeState>,
    ) -> Processor<S> {
        self.serve(input, None, state).await
    }

    /// [`Processor::run`], answering declarations from `api` as well.
    pub async fn serve(
        self,
        input: mpsc::Receiver<Vec<Record>>,
        api: Option<mpsc::Receiver<ApiMessage>>,
        state: watch::Sender<TreeState>,
    ) -> Processor<S> {
        self.serve_controlled(input, api, None, state).await
    }

    /// [`Processor::serve`], taking the daemon's reloads from `control`
    /// and publishing its status there about once a second.
    pub async fn serve_controlled(
        mut self,
        mut input: mpsc::Receiver<Vec<Record>>,
        mut api: Option<mpsc::Receiver<ApiMessage>>,
        mut control: Option<control::Controls>,
        state: watch::Sender<TreeState>,
    ) -> Processor<S> {
        // Sinks flush on a tick too, not only after input: a journal must
        // reach disk within its interval even when the events stop.
        let mut tick = tokio::time::interval(FLUSH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                batch = input.recv() => {
                    let Some(batch) = batch else { break };
                    for record in batch {
                        self.handle(record);
                    }
                    state.send_replace(self.state);
                }
                message = recv(&mut api) => match message {
                    Some(message) => self.declaration(message),
                    None => api = None,
                },
                command = control::recv(&mut control) => match command {
                    Some(command) => self.control(command),
                    None => control = None,
                },
                _ = tick.tick() => {
                    self.tick();
                    ticks += 1;
                    if ticks.is_multiple_of(STATUS_TICKS) && let Some(control) = &control {
                        control.status.send_replace(self.status());
                    }
                }
            }
            if let Err(err) = self.sink.flush() {
                self.sink_error(&err);
            }
        }
        if let Err(err) = self.sink.flush() {
            self.sink_error(&err);
        }
        self
    }

    pub fn into_parts(self) -> (ProcessTable, Stats, S) {
        (self.table, self.stats, self.sink)
    }

    /// Ends the stage: the processes still running get their final record
    /// (with no exit), then the parts are handed back.
    pub fn finish(mut self) -> (ProcessTable, Stats, S) {
        self.close_declarations();
        let mut live: Vec<&ProcessInfo> = self.table.live().collect();
        live.sort_by_key(|p| p.key);
        let mut failed = 0;
        for process in live {
            if self
                .sink
                .process(process, self.correlator.agents().name(process.agent_slot))
                .is_err()
            {
                failed += 1;
            }
        }
        self.stats.sink_errors += failed;
        self.into_parts()
    }
}

/// Waits for the reader to stop and the processing stage to drain what it
/// read; the stage is handed back to be finished.
pub async fn join_stages<S: Sink>(
    reader: tokio::task::JoinHandle<crate::Result<()>>,
    processor: tokio::task::JoinHandle<Processor<S>>,
) -> crate::Result<Processor<S>> {
    use crate::error::Error;
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(err),
        Err(join) => return Err(Error::io("event reader", io::Error::other(join))),
    }
    processor
        .await
        .map_err(|join| Error::io("event processing", io::Error::other(join)))
}

/// The next declaration, or never when there is no socket.
async fn recv(api: &mut Option<mpsc::Receiver<ApiMessage>>) -> Option<ApiMessage> {
    match api {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "../pipeline_tests/mod.rs"]
mod tests;
