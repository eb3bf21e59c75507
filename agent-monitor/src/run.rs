//! `agent-monitor run`: launch a command as an agent, tracked from its first
//! instruction, and record its whole process tree until it is done.

use std::{
    ffi::OsString,
    fs::File,
    io::{self, BufWriter, Write},
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    time::Duration,
};

use tokio::{
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use crate::{
    alerts::{AlertConfig, Alerter},
    api::PrivateSocket,
    capture::{Capture, CaptureKey, Policy},
    correlate::{Correlator, SessionSpec},
    error::{Error, Result},
    event::ExitStatus,
    evidence::{
        declared::SessionRow,
        store::{EvidenceStore, StoreOptions, host_name},
    },
    kernel::{LoadOptions, Monitor, programs::Unattached, tracker::Tracker},
    pipeline::{Agents, Processor, Stats},
    policy::Policy as PolicyFile,
    process_table::{ProcessInfo, ProcessKey},
    sink::{Discard, Sink, Tee, jsonl::JsonlSink},
    time::WallClock,
};

/// Batches of records (up to 1,024 each) queued between the reader and
/// the processing stage. Few on purpose: a decoded event takes about three
/// times the bytes of its ring record, so a burst is better absorbed by
/// the kernel ring, which is allocated anyway, while the reader waits.
const QUEUE: usize = 4;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub agent: String,
    /// Where to write JSONL; `-` is stdout.
    pub events: Option<PathBuf>,
    /// The evidence directory (Parquet files and their hash chain).
    pub evidence: Option<PathBuf>,
    /// How the evidence store is written (signing key, rotation).
    pub store: StoreOptions,
    /// What is kept of argv and other text.
    pub capture: Policy,
    /// The key of the capture tags, created if missing.
    pub capture_key: PathBuf,
    /// The policy declarations and events are judged by; none: the
    /// embedded default.
    pub policy: Option<PathBuf>,
    /// Where alerts go, and how they are held back.
    pub alerts: AlertConfig,
    /// Where the run's private declaration socket is made.
    pub socket_parent: PathBuf,
    /// The loopback address of an OpenTelemetry (OTLP/HTTP) receiver for
    /// the command's spans (port 0: any free port); none: no receiver.
    pub otlp: Option<std::net::SocketAddr>,
    /// More of the monitor's own files (keys, the policy, the alert file):
    /// an agent touching them raises a tampering alert, as for the
    /// evidence and the capture key.
    pub protect: Vec<PathBuf>,
    pub command: Vec<OsString>,
    /// How long to keep recording descendants that outlive the command.
    pub linger: Duration,
    pub load: LoadOptions,
}

/// A descendant still running when `run` stopped recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Survivor {
    pub pid: u32,
    pub exe: Option<String>,
}

#[derive(Debug)]
pub struct RunReport {
    pub agent: String,
    /// The session the run's events belong to (`AGENT_MONITOR_SESSION`).
    pub session_id: String,
    pub status: ExitStatus,
    pub stats: Stats,
    pub processes: usize,
    /// Tracked processes still running when recording stopped.
    pub survivors: Vec<Survivor>,
    pub unattached: Vec<Unattached>,
    /// With `--probe-stats`: what each kernel program cost.
    pub probe_costs: Vec<crate::kernel::ProbeCost>,
}

pub async fn run(options: RunOptions) -> Result<RunReport> {
    let Some(program) = options.command.first() else {
        return Err(Error::io("run", io::Error::other("no command given")));
    };
    // The user's own mistakes first (a bad policy, a bad webhook URL):
    // they are cheaper to report than a kernel load is to undo.
    let policy = load_policy(&options)?;
    // Absolute, and checked now: the socket is made after the kernel load,
    // and the policy protects its directory by an absolute path.
    let socket_parent = std::path::absolute(&options.socket_parent)
        .ok()
        .filter(|dir| dir.is_dir())
        .ok_or_else(|| {
            Error::io(
                format!(
                    "the socket directory {} is not a directory",
                    options.socket_parent.display()
                ),
                io::Error::from(io::ErrorKind::NotFound),
            )
        })?;
    let alerter = Alerter::from_config(options.alerts.clone())
        .map_err(|e| Error::io("setting up the alert sinks", io::Error::other(e)))?;
    let monitor = Monitor::load(&options.load)?;
    // After the privilege checks, which say best what is missing. Only the
    // tagging policies need the key: `full` and `none` never create one.
    let key = match options.capture {
        Policy::Redact | Policy::Hash => CaptureKey::load_or_create(&options.capture_key)?,
        Policy::Full | Policy::None => CaptureKey::from_bytes([0; 32]),
    };
    let capture = Capture::new(options.capture, key);
    // One clock for the outputs and the session, so their times agree.
    let clock = WallClock::sample();
    let sink = open_sink(
        options.events.as_ref(),
        options.evidence.as_ref(),
        &options.store,
        clock,
    )?;
    let Monitor {
        ebpf,
        reader,
        tracker,
        unattached,
        stats,
        rules: _,
        syscall_hook,
    } = monitor;

    let mut agents = Agents::default();
    let slot = agents.add(options.agent.clone());
    let session_id = crate::random::uuid_v4().map_err(|e| Error::io("making a session id", e))?;
    let started = clock.wall_ns(WallClock::boot_now_ns()) as i64;

    let (socket, listener) = PrivateSocket::bind(&socket_parent, &session_id).map_err(|e| {
        Error::io(
            format!(
                "creating the declaration socket in {}",
                socket_parent.display()
            ),
            e,
        )
    })?;
    let mut policy = policy;
    if let Some(dir) = socket.path().parent() {
        policy
            .protect(&dir.to_string_lossy())
            .map_err(|e| Error::io("protecting the socket", io::Error::other(e)))?;
    }
    policy
        .baseline_monitor(socket.path())
        .map_err(|e| Error::io("extending the baseline", io::Error::other(e)))?;
    let otlp = match options.otlp {
        Some(addr) => {
            let listener = crate::otlp::bind(addr)
                .await
                .map_err(|e| Error::io(format!("listening for OTLP on {addr}"), e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| Error::io("reading the OTLP address", e))?;
            crate::otlp::baseline(&mut policy, addr)
                .map_err(|e| Error::io("extending the baseline", io::Error::other(e)))?;
            eprintln!("agent-monitor: OTLP receiver on http://{addr}");
            Some((listener, addr))
        }
        None => None,
    };

    let (records_tx, records_rx) = mpsc::channel(QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let reader = tokio::spawn(reader.run(records_tx, stop_rx));

    // Installed before the command starts: a signal that arrives while it
    // starts must be forwarded, not kill the monitor and orphan the command.
    let signals = Signals::install()?;
    let slots = tracker
        .slots()
        .map_err(|e| Error::io("sharing the tracked-process map", e))?;
    let (api_tx, api_rx) = mpsc::channel(QUEUE);
    let otlp_addr = otlp.as_ref().map(|(_, addr)| *addr);
    let late_declarations = otlp.is_some();
    let servers = crate::api::Servers::spawn(
        listener,
        otlp.map(|(listener, _)| listener),
        slots,
        api_tx,
        clock,
        &stop_tx,
    );
    // The command tracks itself before it execs; nothing here ever
    // detaches the probes, but the hold says so where it matters.
    let _probes = tracker
        .hold_syscall_probes()
        .map_err(|e| Error::io("attaching the syscall probes", e))?;
    let mut child = spawn(
        program,
        &options.command[1..],
        &session_id,
        socket.path(),
        otlp_addr,
        tracker.self_registration(slot),
    )?;
    let root_pid = child
        .id()
        .expect("a child that has not been waited for has a pid");

    let argv: Vec<String> = options
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv = capture.apply_all(&argv).unwrap_or_default();
    let cwd = std::env::current_dir()
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut correlator =
        Correlator::new(std::sync::Arc::new(policy), agents).with_capture(capture.clone());
    correlator.open_session(SessionSpec {
        row: session_row(&options, &capture, &session_id, started, root_pid),
        agent_slot: slot,
        cwd: cwd.clone(),
    });
    let mut processor = Processor::judged_by(sink, correlator)
        .with_alerter(alerter)
        .with_clock(clock)
        .with_capture(capture.clone());
    if late_declarations {
        // Spans arrive after their calls' actions were judged.
        processor = processor.with_late_declarations(crate::otlp::DEFAULT_GRACE);
        processor.declares_late(slot);
    }
    processor.set_root(ProcessInfo {
        key: ProcessKey {
            pid: root_pid,
            start_ns: 0,
        },
        parent: None,
        ppid: std::process::id(),
        agent_slot: slot,
        exe: None,
        argv,
        cwd,
        // SAFETY: getuid has no preconditions.
        uid: unsafe { libc::getuid() },
        // Read now, while the child is sure to exist: its children inherit
        // it even when they are gone before they can be looked at.
        identity: {
            let cgroup = crate::identity::read_cgroup(root_pid);
            crate::identity::WorkloadIdentity {
                container_id: cgroup.as_deref().and_then(crate::identity::container_id),
                cgroup,
                exe_sha256: None,
            }
        },
        exit: None,
        exit_ns: None,
    });
    let (state_tx, _state_rx) = watch::channel(processor.state());
    let processor = tokio::spawn(processor.serve(records_rx, Some(api_rx), state_tx));

    let status = wait_forwarding_signals(&mut child, root_pid, signals).await?;
    let survivors = wait_for_tree(&tracker, options.linger).await;

    let _ = stop_tx.send(true);
    if let Some(counts) = servers.stopped().await {
        report_otlp(&counts);
    }
    drop(socket);
    let processor = crate::pipeline::join_stages(reader, processor).await?;
    let probe_costs = if stats.is_some() {
        crate::kernel::probe_costs(&ebpf)
    } else {
        Vec::new()
    };
    // Detach the programs only after the last record has been read; the
    // hold taken for the command keeps no link past that.
    drop(ebpf);
    syscall_hook.close();
    drop(stats);

    let (table, mut stats, mut sink) = processor.finish();
    if let Err(err) = sink.close() {
        eprintln!("agent-monitor: closing the outputs failed: {err}");
        stats.sink_errors += 1;
    }
    let survivors = survivors
        .into_iter()
        .map(|pid| Survivor {
            pid,
            exe: table.get(pid).and_then(|p| p.exe.clone()),
        })
        .collect();
    Ok(RunReport {
        agent: options.agent,
        session_id,
        status,
        processes: table.seen_count(),
        stats,
        survivors,
        unattached,
        probe_costs,
    })
}

type BoxedSink = Box<dyn Sink + Send>;

impl Sink for BoxedSink {
    fn event(
        &mut self,
        event: &crate::event::Event,
        process: &ProcessInfo,
        who: &crate::sink::Attribution,
    ) -> io::Result<()> {
        (**self).event(event, process, who)
    }

    fn loss(&mut self, loss: &crate::event::LossReport) -> io::Result<()> {
        (**self).loss(loss)
    }

    fn process(&mut self, process: &ProcessInfo, agent: &str) -> io::Result<()> {
        (**self).process(process, agent)
    }

    fn declared(&mut self, record: &crate::evidence::declared::Declared) -> io::Result<()> {
        (**self).declared(record)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }

    fn close(&mut self) -> io::Result<()> {
        (**self).close()
    }
}

/// The outputs asked for: JSONL, the evidence store, both, or none.
fn open_sink(
    events: Option<&PathBuf>,
    evidence: Option<&PathBuf>,
    store: &StoreOptions,
    clock: WallClock,
) -> Result<BoxedSink> {
    let mut sinks: Vec<BoxedSink> = Vec::new();
    if let Some(path) = events {
        let out: Box<dyn Write + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(
                File::create(path)
                    .map_err(|e| Error::io(format!("creating {}", path.display()), e))?,
            )
        };
        sinks.push(Box::new(JsonlSink::new(
            BufWriter::with_capacity(1 << 16, out),
            clock,
        )));
    }
    if let Some(dir) = evidence {
        let store = EvidenceStore::open(dir, clock, store.clone()).map_err(|e| {
            Error::io(
                format!("opening the evidence store {}", dir.display()),
                io::Error::other(e),
            )
        })?;
        sinks.push(Box::new(store));
    }
    Ok(match sinks.len() {
        0 => Box::new(Discard),
        1 => sinks.pop().expect("one sink"),
        _ => Box::new(Tee(sinks)),
    })
}

/// The run's session as it opens: the command as its task, the root
/// process. Its identity and end are filled in when it is written.
fn session_row(
    options: &RunOptions,
    capture: &Capture,
    session_id: &str,
    started: i64,
    root_pid: u32,
) -> SessionRow {
    let command: Vec<String> = options
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    SessionRow {
        session_id: session_id.to_string(),
        agent: options.agent.clone(),
        task: capture.apply_all(&command).map(|t| t.join(" ")),
        user: std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .ok(),
        source: "run".into(),
        host: host_name(),
        started,
        pid: Some(root_pid),
        ..SessionRow::default()
    }
}

/// The policy file, or the embedded default, with the monitor's own files
/// made sensitive: the evidence and the keys.
fn load_policy(options: &RunOptions) -> Result<PolicyFile> {
    let mut policy = match &options.policy {
        Some(path) => PolicyFile::load(path).map_err(|e| {
            Error::io(
                format!("loading the policy {}", path.display()),
                io::Error::other(e),
            )
        })?,
        None => PolicyFile::default_policy(),
    };
    let mut protected: Vec<PathBuf> = vec![options.capture_key.clone()];
    protected.extend(options.evidence.iter().cloned());
    protected.extend(options.protect.iter().cloned());
    for path in protected.into_iter().filter(|p| !p.as_os_str().is_empty()) {
        let absolute = std::path::absolute(&path).unwrap_or(path);
        policy
            .protect(&absolute.to_string_lossy())
            .map_err(|e| Error::io("protecting the monitor's files", io::Error::other(e)))?;
    }
    Ok(policy)
}

/// Starts the command. Between fork and exec the child puts itself in the
/// tracked-process map, so its exec is the first thing recorded.
fn spawn(
    program: &OsString,
    args: &[OsString],
    session_id: &str,
    socket: &std::path::Path,
    otlp: Option<std::net::SocketAddr>,
    registration: crate::kernel::tracker::SelfRegistration,
) -> Result<Child> {
    let mut command = Command::new(program);
    command
        .args(args)
        .env("AGENT_MONITOR_SESSION", session_id)
        .env("AGENT_MONITOR_SOCKET", socket)
        .kill_on_drop(false);
    // The OpenTelemetry SDKs' own variables, unless the user set them.
    if let Some(addr) = otlp {
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}")),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
        ] {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
    }
    // SAFETY: the hook only makes one raw syscall (async-signal-safe).
    unsafe {
        command.pre_exec(move || registration.track_current_process());
    }
    let name = program.to_string_lossy().into_owned();
    command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::CommandNotFound { command: name },
        io::ErrorKind::PermissionDenied => Error::CommandNotExecutable { command: name },
        _ => Error::io(format!("starting {name}"), e),
    })
}

/// One line on what the OTLP receiver took, when it took anything.
fn report_otlp(counts: &crate::otlp::Counts) {
    if counts.spans == 0 {
        return;
    }
    let mut line = format!(
        "agent-monitor: OTLP: {} spans, {} declared, {} not GenAI operations, {} refused",
        counts.spans, counts.declared, counts.ignored, counts.refused
    );
    if let Some(first) = &counts.first_refusal {
        line.push_str(&format!(" (first: {first})"));
    }
    eprintln!("{line}");
}

/// SIGINT and SIGTERM, caught instead of ending the monitor.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())
                .map_err(|e| Error::io("handling SIGINT", e))?,
            terminate: signal(SignalKind::terminate())
                .map_err(|e| Error::io("handling SIGTERM", e))?,
        })
    }
}

/// Waits for the command, passing SIGINT and SIGTERM on to it. The monitor
/// itself does not stop on them: it stops when the command has exited, so
/// that what the command did while shutting down is recorded too.
async fn wait_forwarding_signals(
    child: &mut Child,
    pid: u32,
    signals: Signals,
) -> Result<ExitStatus> {
    let Signals {
        mut interrupt,
        mut terminate,
    } = signals;
    loop {
        let forwarded = tokio::select! {
            status = child.wait() => {
                let status = status.map_err(|e| Error::io("waiting for the command", e))?;
                return Ok(match (status.code(), status.signal()) {
                    (Some(code), _) => ExitStatus::Exited(code),
                    (None, Some(signal)) => ExitStatus::Killed { signal, core_dumped: status.core_dumped() },
                    (None, None) => ExitStatus::Exited(0),
                });
            }
            _ = interrupt.recv() => libc::SIGINT,
            _ = terminate.recv() => libc::SIGTERM,
        };
        // SAFETY: kill has no memory preconditions; the child has not been
        // reaped yet, so the pid is still ours.
        unsafe { libc::kill(pid as libc::pid_t, forwarded) };
    }
}

/// How often the tracked-process map is checked while lingering.
const LINGER_POLL: Duration = Duration::from_millis(50);

/// After the command has exited: waits until every process of its tree has
/// exited too, for at most `linger`, and returns those still running. The
/// kernel's tracked-process map is the authority here: it drops a process
/// at exit even when the exit event itself was lost.
async fn wait_for_tree(tracker: &Tracker, linger: Duration) -> Vec<u32> {
    let deadline = tokio::time::Instant::now() + linger;
    loop {
        let mut alive = tracker.tracked_pids();
        if alive.is_empty() || tokio::time::Instant::now() >= deadline {
            alive.sort_unstable();
            return alive;
        }
        tokio::time::sleep(LINGER_POLL).await;
    }
}
