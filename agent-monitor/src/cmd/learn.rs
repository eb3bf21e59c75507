//! `agent-monitor replay` and `agent-monitor learn`: the policy tried on
//! evidence, and a baseline proposed from a clean run.

use std::{
    ffi::OsString,
    fs::OpenOptions,
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use agent_monitor::{
    alerts::AlertConfig,
    capture,
    evidence::store::StoreOptions,
    kernel::LoadOptions,
    learn::propose,
    policy::Policy,
    replay::{render, replay},
    run::{RunOptions, run},
    summary,
};
use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub struct ReplayArgs {
    /// The evidence directory.
    dir: PathBuf,
    /// The policy to judge by [default: the embedded policy].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when the policy would raise any alert.
    #[arg(long)]
    fail_on_alert: bool,
}

#[derive(Args)]
pub struct LearnArgs {
    /// Name of the agent [default: CMD's file name].
    #[arg(long)]
    agent: Option<String>,
    /// The policy the proposal completes [default: the embedded policy].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The proposed baseline group: `[baseline.NAME]`.
    #[arg(long, default_value = "learned")]
    name: String,
    /// Write the proposal to FILE (never overwritten) instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Keep the run's evidence in DIR instead of a temporary directory.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

/// The policy file, or the embedded one, with `evidence` protected as the
/// running monitor protects its own store.
fn policy(file: Option<&Path>, evidence: &Path) -> anyhow::Result<Policy> {
    let mut policy = match file {
        Some(path) => Policy::load(path)?,
        None => Policy::default_policy(),
    };
    let absolute = std::path::absolute(evidence)?;
    policy.protect(&absolute.to_string_lossy())?;
    Ok(policy)
}

/// Exit status 0: replayed; 1: `--fail-on-alert` and an alert would be
/// raised; 2: the policy or the store could not be read.
pub fn replay_command(args: ReplayArgs) -> ExitCode {
    let report = policy(args.policy.as_deref(), &args.dir)
        .and_then(|policy| Ok(replay(&args.dir, &policy)?));
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("agent-monitor: replay: {err:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(err) => {
                eprintln!("agent-monitor: replay: {err}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", render(&report));
    }
    if args.fail_on_alert && report.would_alert() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Exit status 0: a proposal was made; 2: it could not be (the message
/// says why); the monitor's own statuses (125, …) when the run failed.
pub fn learn_command(args: LearnArgs) -> ExitCode {
    match learn(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("agent-monitor: learn: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn learn(args: LearnArgs) -> anyhow::Result<ExitCode> {
    let (evidence, temporary) = match &args.evidence {
        Some(dir) => (dir.clone(), false),
        None => {
            let name = format!("agent-monitor-learn-{}", agent_monitor::random::uuid_v4()?);
            (std::env::temp_dir().join(name), true)
        }
    };
    let agent = args.agent.clone().unwrap_or_else(|| {
        Path::new(&args.command[0])
            .file_name()
            .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
    });
    let options = RunOptions {
        agent,
        events: None,
        evidence: Some(evidence.clone()),
        store: StoreOptions::default(),
        // The evidence is thrown away (or kept by request): text is kept
        // whole so that the proposal can name what it saw.
        capture: capture::Policy::Full,
        capture_key: PathBuf::new(),
        policy: args.policy.clone(),
        alerts: AlertConfig {
            stderr: false,
            ..AlertConfig::default()
        },
        socket_parent: std::env::temp_dir(),
        otlp: None,
        protect: Vec::new(),
        command: args.command.clone(),
        linger: Duration::from_secs(5),
        load: LoadOptions::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = match runtime.block_on(run(options)) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("agent-monitor: learn: {err}");
            return Ok(ExitCode::from(err.exit_status().clamp(0, 255) as u8));
        }
    };
    eprintln!("{}", summary::render(&report));
    if report.status.shell_status() != 0 {
        eprintln!(
            "agent-monitor: learn: the command exited with status {}: a failed run may not show all its runtime does",
            report.status.shell_status()
        );
    }
    let policy = policy(args.policy.as_deref(), &evidence)?;
    let mut proposal = propose(&evidence, &policy, &args.name)?;
    if temporary {
        let command: Vec<String> = args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        proposal.dir = PathBuf::from(format!("a run of `{}`", command.join(" ")));
        std::fs::remove_dir_all(&evidence)
            .with_context(|| format!("removing {}", evidence.display()))?;
    }
    let toml = proposal.to_toml();
    match &args.output {
        Some(path) => OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut file| file.write_all(toml.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{toml}"),
    }
    eprintln!("agent-monitor: {}", proposal.summary());
    Ok(ExitCode::SUCCESS)
}
