//! `agent-monitor run`: the flags, and the run's exit status.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use agent_monitor::{
    alerts::{AlertConfig, WebhookConfig},
    capture::Policy,
    config::{self, Config},
    daemon::client_run,
    evidence::{signing::LinkSigner, store::StoreOptions},
    kernel::LoadOptions,
    run::{RunOptions, run},
    summary,
};
use clap::Args;

/// Where the capture key lives unless `--capture-key` says otherwise: with
/// the monitor's state, not with the evidence it protects.
const DEFAULT_CAPTURE_KEY: &str = "/var/lib/agent-monitor/capture.key";

/// `run --fail-on-undeclared`'s status when an action was undeclared: far
/// from the statuses commands and shells usually use.
const UNDECLARED_EXIT: u8 = 86;

#[derive(Args)]
pub struct RunArgs {
    /// Name of the agent in the evidence [default: CMD's file name].
    #[arg(long)]
    agent: Option<String>,
    /// Write one JSON object per event to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Write the evidence store (Parquet files in a hash chain) to DIR.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Sign every link of the evidence chain with this Ed25519 private key
    /// (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE", requires = "evidence")]
    signing_key: Option<PathBuf>,
    /// What to keep of argv and other text: full, redact (secrets replaced
    /// by keyed tags), hash (a keyed commitment) or none.
    #[arg(long, value_name = "POLICY", default_value = "redact")]
    capture: Policy,
    /// The key of the capture tags (64 hex digits, mode 0600), created if
    /// missing. Keep it apart from the evidence.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CAPTURE_KEY)]
    capture_key: PathBuf,
    /// After CMD exits, keep recording its descendants for at most this
    /// many seconds (0: stop at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    linger: f64,
    /// Judge tool calls and actions by this policy (TOML, see
    /// docs/policy.md) [default: the embedded policy].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Exit with status 86 when any action was undeclared or unverifiable,
    /// whatever CMD's own status (for CI pipelines that run agents).
    #[arg(long)]
    fail_on_undeclared: bool,
    /// Append every alert as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// POST every alert as JSON to URL (retried with backoff).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// A header for the webhook requests, `Name: value` (repeatable).
    #[arg(long, value_name = "HEADER", requires = "webhook")]
    webhook_header: Vec<String>,
    /// Do not print alerts on stderr.
    #[arg(long)]
    quiet_alerts: bool,
    /// Where the run's private declaration socket is created
    /// [default: the temporary directory].
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// Receive the command's OpenTelemetry spans (OTLP/HTTP) on this
    /// loopback address (port 0: any free port), and declare its GenAI
    /// tool calls from them (docs/otel.md).
    #[arg(long, value_name = "ADDR")]
    otlp: Option<std::net::SocketAddr>,
    /// Size of the kernel event ring in MiB (a power of two).
    #[arg(long, value_name = "MIB")]
    ring_mib: Option<u32>,
    /// Print what each kernel program cost (runs and average run time)
    /// in the summary.
    #[arg(long)]
    probe_stats: bool,
    /// Load this run's own probes even when a daemon is running (by
    /// default, `run` hands the command to the daemon; see docs/daemon.md).
    #[arg(long)]
    standalone: bool,
    /// The daemon's socket [default: the one in
    /// /etc/agent-monitor/config.toml, else /run/agent-monitor/api.sock].
    #[arg(long, value_name = "PATH")]
    daemon_socket: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

pub fn run_command(args: RunArgs) -> ExitCode {
    if let Some(code) = run_under_daemon(&args) {
        return code;
    }
    let fail_on_undeclared = args.fail_on_undeclared;
    let options = match run_options(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("agent-monitor: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("agent-monitor: starting the runtime: {err}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(run(options)) {
        Ok(report) => {
            eprintln!("{}", summary::render(&report));
            let correlation = &report.stats.correlation;
            if fail_on_undeclared && correlation.undeclared + correlation.unverifiable > 0 {
                eprintln!(
                    "agent-monitor: failing the run: {} undeclared and {} unverifiable actions (--fail-on-undeclared)",
                    correlation.undeclared, correlation.unverifiable
                );
                return ExitCode::from(UNDECLARED_EXIT);
            }
            ExitCode::from(report.status.shell_status().clamp(0, 255) as u8)
        }
        Err(err) => {
            eprintln!("agent-monitor: {err}");
            ExitCode::from(err.exit_status().clamp(0, 255) as u8)
        }
    }
}

/// Hands the command to a running daemon, unless `--standalone` or an
/// option the daemon's run cannot honour asks for this run's own probes.
/// None: run standalone.
fn run_under_daemon(args: &RunArgs) -> Option<ExitCode> {
    if args.standalone {
        return None;
    }
    let socket = args.daemon_socket.clone().unwrap_or_else(|| {
        Config::load(std::path::Path::new(config::DEFAULT_PATH))
            .unwrap_or_else(|_| Config::defaults())
            .api
            .socket
    });
    if !client_run::daemon_listening(&socket) {
        return None;
    }
    let own_outputs = [
        ("--events", args.events.is_some()),
        ("--evidence", args.evidence.is_some()),
        ("--policy", args.policy.is_some()),
        ("--fail-on-undeclared", args.fail_on_undeclared),
        ("--alerts", args.alerts.is_some()),
        ("--webhook", args.webhook.is_some()),
        ("--socket-dir", args.socket_dir.is_some()),
        ("--otlp", args.otlp.is_some()),
        ("--ring-mib", args.ring_mib.is_some()),
        ("--probe-stats", args.probe_stats),
    ];
    if let Some((flag, _)) = own_outputs.iter().find(|(_, given)| *given) {
        eprintln!(
            "agent-monitor: a daemon is running at {}, but {flag} needs this run's own probes: running standalone",
            socket.display()
        );
        return None;
    }
    let agent = agent_name(args);
    match client_run::run(&socket, &agent, &args.command) {
        Ok(run) => {
            eprintln!(
                "agent-monitor: the daemon recorded {agent} as session {}; status {}",
                run.session_id,
                run.status.shell_status()
            );
            Some(ExitCode::from(run.status.shell_status().clamp(0, 255) as u8))
        }
        Err(err) => {
            eprintln!("agent-monitor: {err} (or pass --standalone)");
            Some(ExitCode::from(125))
        }
    }
}

/// `--agent`, or the command's file name.
fn agent_name(args: &RunArgs) -> String {
    args.agent.clone().unwrap_or_else(|| {
        std::path::Path::new(&args.command[0])
            .file_name()
            .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
    })
}

fn run_options(args: RunArgs) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(
        args.linger.is_finite() && args.linger >= 0.0,
        "--linger must be a number of seconds, 0 or more"
    );
    let ring_bytes = args
        .ring_mib
        .map(|mib| {
            anyhow::ensure!(
                mib.is_power_of_two() && mib <= 1024,
                "--ring-mib must be a power of two up to 1024, not {mib}"
            );
            Ok(mib << 20)
        })
        .transpose()?;
    if let Some(addr) = args.otlp {
        agent_monitor::otlp::check_listen(addr).map_err(|why| anyhow::anyhow!("--otlp: {why}"))?;
    }
    let agent = agent_name(&args);
    let signer = args
        .signing_key
        .as_deref()
        .map(LinkSigner::load)
        .transpose()?;
    Ok(RunOptions {
        agent,
        events: args.events,
        evidence: args.evidence,
        store: StoreOptions {
            signer,
            ..StoreOptions::default()
        },
        capture: args.capture,
        capture_key: args.capture_key,
        protect: args
            .signing_key
            .iter()
            .chain(&args.policy)
            .chain(&args.alerts)
            .cloned()
            .collect(),
        policy: args.policy,
        alerts: AlertConfig {
            stderr: !args.quiet_alerts,
            jsonl: args.alerts,
            webhook: args
                .webhook
                .map(|url| -> anyhow::Result<WebhookConfig> {
                    let mut webhook = WebhookConfig::new(url);
                    for header in &args.webhook_header {
                        let (name, value) = header.split_once(':').ok_or_else(|| {
                            anyhow::anyhow!(
                                "--webhook-header must be `Name: value`, not {header:?}"
                            )
                        })?;
                        webhook
                            .headers
                            .push((name.trim().to_string(), value.trim().to_string()));
                    }
                    Ok(webhook)
                })
                .transpose()?,
            ..AlertConfig::default()
        },
        socket_parent: args.socket_dir.unwrap_or_else(std::env::temp_dir),
        otlp: args.otlp,
        command: args.command,
        linger: Duration::from_secs_f64(args.linger),
        load: LoadOptions {
            ring_bytes,
            probe_stats: args.probe_stats,
        },
    })
}
