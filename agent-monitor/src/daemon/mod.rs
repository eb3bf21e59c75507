//! `agent-monitor daemon`: the host monitor. It loads the probes once,
//! finds agents by rules, adoption and registration, serves the socket at
//! the config's path, writes one evidence store, and runs until SIGTERM.
//!
//! SIGHUP reloads the config and the policy together: both load, or
//! neither changes and a `config_invalid` alert says why. SIGTERM (and
//! SIGINT) stops reading, flushes, and closes the chain.

pub mod client_run;
pub mod metrics;
pub mod setup;
pub mod socket;

use std::{io, path::PathBuf, sync::Arc};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::{mpsc, watch},
};

use crate::{
    capture::{Capture, CaptureKey, Policy as CapturePolicy},
    config::Config,
    correlate::Correlator,
    discovery::Discovery,
    error::{Error, Result},
    evidence::store::{EvidenceStore, StoreOptions},
    kernel::{LoadOptions, Monitor, rules::RuleMaps},
    pipeline::{
        Agents, Processor, StatusSnapshot,
        control::{Command, Controls, Reloaded},
    },
    time::WallClock,
};

/// Batches of records (up to 1,024 each) queued between the reader and
/// the processing stage. Few on purpose: a decoded event takes about three
/// times the bytes of its ring record, so a burst is better absorbed by
/// the kernel ring, which is allocated anyway, while the reader waits.
const QUEUE: usize = 4;

/// What the daemon did, for its last log lines.
#[derive(Debug)]
pub struct DaemonReport {
    pub status: StatusSnapshot,
    /// The chain's last link once the store is closed.
    pub chain_head: Option<String>,
    pub reloads: u64,
    pub failed_reloads: u64,
}

/// Runs the daemon with `config`, read from `config_path` (none: the
/// embedded defaults), until SIGTERM or SIGINT.
pub async fn run(config_path: Option<PathBuf>, config: Config) -> Result<DaemonReport> {
    let io_error = |context: &str, message: String| Error::io(context, io::Error::other(message));
    let mut policy = setup::policy(&config, config_path.as_deref())
        .map_err(|m| io_error("loading the policy", m))?;
    if let Some(addr) = config.otel.listen {
        crate::otlp::baseline(&mut policy, addr)
            .map_err(|e| io_error("extending the baseline", e.to_string()))?;
    }
    let alerter = setup::alerter(&config).map_err(|m| io_error("configuring alerts", m))?;
    let gid = config
        .api
        .group
        .as_ref()
        .map(|g| g.resolve())
        .transpose()
        .map_err(|m| io_error("api.group", m))?;

    let monitor = Monitor::load(&LoadOptions {
        ring_bytes: Some(config.kernel.ring_mib << 20),
        probe_stats: false,
    })?;
    let Monitor {
        ebpf,
        reader,
        tracker,
        mut rules,
        unattached,
        stats: _,
        syscall_hook,
    } = monitor;
    for probe in &unattached {
        tracing::warn!(program = probe.program, reason = %probe.reason, "optional probe not attached");
    }
    apply_rules(&mut rules, &config)?;

    let key = match config.capture.policy {
        CapturePolicy::Redact | CapturePolicy::Hash => {
            CaptureKey::load_or_create(&config.capture.key)?
        }
        CapturePolicy::Full | CapturePolicy::None => CaptureKey::from_bytes([0; 32]),
    };
    let capture = Capture::new(config.capture.policy, key);
    let clock = WallClock::sample();
    create_private_dir(&config.evidence.dir)?;
    let signer = config
        .evidence
        .signing_key
        .as_deref()
        .map(crate::evidence::signing::LinkSigner::load)
        .transpose()
        .map_err(|e| io_error("loading the signing key", e.to_string()))?;
    let store = EvidenceStore::open(
        &config.evidence.dir,
        clock,
        StoreOptions {
            rotate_every: std::time::Duration::from_secs(config.evidence.rotate_seconds),
            max_rows: config.evidence.rotate_rows,
            signer,
            ..StoreOptions::default()
        },
    )
    .map_err(|e| {
        io_error(
            &format!(
                "opening the evidence store {}",
                config.evidence.dir.display()
            ),
            e.to_string(),
        )
    })?;
    let (socket, listener) = socket::HostSocket::bind(&config.api.socket, config.api.mode, gid)
        .map_err(|e| Error::io(format!("binding {}", config.api.socket.display()), e))?;
    let otlp = match config.otel.listen {
        Some(addr) => {
            let listener = crate::otlp::bind(addr)
                .await
                .map_err(|e| Error::io(format!("listening for OTLP on {addr}"), e))?;
            tracing::info!(listen = %addr, "OTLP receiver listening");
            Some(listener)
        }
        None => None,
    };

    let slots = tracker
        .slots()
        .map_err(|e| Error::io("sharing the tracked-process map", e))?;
    let correlator =
        Correlator::new(Arc::new(policy), Agents::default()).with_capture(capture.clone());
    let rules_in_force = Arc::new(config.rules.clone());
    let mut processor = Processor::judged_by(store, correlator)
        .with_alerter(alerter)
        .with_clock(clock)
        .with_capture(capture)
        .with_evidence_dir(Some(config.evidence.dir.clone()))
        .with_syscall_hook(syscall_hook.clone())
        .with_discovery(Discovery::new(rules_in_force, Box::new(slots.clone())));
    if otlp.is_some() {
        // Spans arrive after their calls' actions were judged.
        processor = processor.with_late_declarations(config.otel.grace);
    }

    let (records_tx, records_rx) = mpsc::channel(QUEUE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut hangup = signal(SignalKind::hangup()).map_err(|e| Error::io("handling SIGHUP", e))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| Error::io("handling SIGTERM", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("handling SIGINT", e))?;
    let reader = tokio::spawn(reader.run(records_tx, stop_rx));
    // After the probes are attached: a process that starts from now on is
    // caught at exec, and one running already is found by the scan.
    let adopted = processor.adopt_running();
    tracing::info!(
        adopted,
        rules = config.rules.agent_rules().count(),
        socket = %socket.path().display(),
        evidence = %config.evidence.dir.display(),
        "agent-monitor daemon started"
    );

    let (api_tx, api_rx) = mpsc::channel(QUEUE);
    let servers = crate::api::Servers::spawn(listener, otlp, slots, api_tx, clock, &stop_tx);
    let (commands_tx, commands_rx) = mpsc::channel(4);
    let (status_tx, status_rx) = watch::channel(processor.status());
    let metrics = match config.metrics.listen {
        Some(addr) => Some(tokio::spawn(
            metrics::serve(addr, status_rx, stop_tx.subscribe())
                .await
                .map_err(|e| Error::io(format!("serving metrics on {addr}"), e))?,
        )),
        None => None,
    };
    let (state_tx, _state_rx) = watch::channel(processor.state());
    let processor = tokio::spawn(processor.serve_controlled(
        records_rx,
        Some(api_rx),
        Some(Controls {
            commands: commands_rx,
            status: status_tx,
        }),
        state_tx,
    ));

    let mut config = config;
    let (mut reloads, mut failed_reloads) = (0, 0);
    let mut idle_check = tokio::time::interval(IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = idle_check.tick() => {
                if let Err(err) = syscall_hook.release_if_idle() {
                    tracing::warn!("cannot tell whether any process is tracked; the syscall probes stay attached: {err}");
                }
            }
            _ = hangup.recv() => {
                match reload(config_path.as_deref(), &config, &mut rules) {
                    Ok((new, reloaded)) => {
                        reloads += 1;
                        let _ = commands_tx.send(Command::Reload(Box::new(reloaded))).await;
                        tracing::info!(config = ?config_path, "reloaded the config and the policy");
                        config = new;
                    }
                    Err(why) => {
                        failed_reloads += 1;
                        tracing::error!("reload refused, the previous config stays in force: {why}");
                        let _ = commands_tx.send(Command::ReloadFailed(why)).await;
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping: flushing the evidence and closing the chain");
    let _ = stop_tx.send(true);
    if let Some(counts) = servers.stopped().await {
        tracing::info!(
            spans = counts.spans,
            declared = counts.declared,
            ignored = counts.ignored,
            refused = counts.refused,
            first_refusal = counts.first_refusal.as_deref().unwrap_or(""),
            "OTLP receiver stopped"
        );
    }
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    drop(commands_tx);
    let processor = crate::pipeline::join_stages(reader, processor).await?;
    let status = processor.status();
    drop(ebpf);
    // The exec gate goes first (any exec it holds is let go), then the
    // link: holds still live in the stage's parts, but the link must not.
    drop(rules);
    syscall_hook.close();
    let (_table, _stats, mut store) = processor.finish();
    crate::sink::Sink::close(&mut store).map_err(|e| Error::io("closing the evidence store", e))?;
    drop(socket);
    let chain_head = crate::evidence::chain::read_log(
        &config.evidence.dir.join(crate::evidence::chain::CHAIN_LOG),
    )
    .ok()
    .and_then(|entries| entries.last().map(|e| e.link.clone()));
    Ok(DaemonReport {
        chain_head,
        status,
        reloads,
        failed_reloads,
    })
}

/// How often the daemon looks for the moment nothing is tracked, to detach
/// the syscall probes (`kernel/syscall_hook.rs`).
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Loads the config file again with its policy; on success the kernel's
/// rule keys are already the new ones.
fn reload(
    path: Option<&std::path::Path>,
    old: &Config,
    rules: &mut RuleMaps,
) -> std::result::Result<(Config, Reloaded), String> {
    let new = match path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::defaults(),
    };
    let mut policy = setup::policy(&new, path)?;
    // The receiver keeps its address until a restart.
    if let Some(addr) = old.otel.listen {
        crate::otlp::baseline(&mut policy, addr).map_err(|e| e.to_string())?;
    }
    let alerter = setup::alerter(&new)?;
    let frozen = setup::needs_restart(old, &new);
    if !frozen.is_empty() {
        tracing::warn!(
            "reload: changes to [{}] take effect at the next restart",
            frozen.join("], [")
        );
    }
    rules
        .apply(&new.rules.kernel_keys())
        .map_err(|e| e.to_string())?;
    let reloaded = Reloaded {
        policy: Arc::new(policy),
        rules: Arc::new(new.rules.clone()),
        alerter,
    };
    // Keys that need a restart keep their old values until then.
    let mut kept = new;
    kept.evidence = old.evidence.clone();
    kept.api = old.api.clone();
    kept.capture = old.capture.clone();
    kept.kernel = old.kernel.clone();
    kept.metrics = old.metrics.clone();
    kept.otel = old.otel.clone();
    Ok((kept, reloaded))
}

fn apply_rules(rules: &mut RuleMaps, config: &Config) -> Result<()> {
    rules.apply(&config.rules.kernel_keys()).map_err(|e| {
        Error::io(
            "loading the discovery rules into the kernel",
            io::Error::other(e),
        )
    })
}

/// The evidence directory, created 0700 if missing.
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))
}
