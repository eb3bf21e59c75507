use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use agent_monitor::{
    kernel::LoadOptions,
    run::{RunOptions, run},
    summary,
};
use clap::{Parser, Subcommand};

/// Watches AI agents from the kernel and keeps the evidence of what they did.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD as an agent and record its whole process tree.
    Run {
        /// Name of the agent in the evidence [default: CMD's file name].
        #[arg(long)]
        agent: Option<String>,
        /// Write one JSON object per event to FILE (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        events: Option<PathBuf>,
        /// After CMD exits, keep recording its descendants for at most this
        /// many seconds (0: stop at once).
        #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
        linger: f64,
        /// Size of the kernel event ring in MiB (a power of two).
        #[arg(long, value_name = "MIB")]
        ring_mib: Option<u32>,
        /// Print what each kernel program cost (runs and average run time)
        /// in the summary.
        #[arg(long)]
        probe_stats: bool,
        /// The command and its arguments.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            agent,
            events,
            linger,
            ring_mib,
            probe_stats,
            command,
        } => run_command(agent, events, linger, ring_mib, probe_stats, command),
    }
}

fn run_command(
    agent: Option<String>,
    events: Option<PathBuf>,
    linger: f64,
    ring_mib: Option<u32>,
    probe_stats: bool,
    command: Vec<OsString>,
) -> ExitCode {
    let options = match run_options(agent, events, linger, ring_mib, command) {
        Ok(mut options) => {
            options.load.probe_stats = probe_stats;
            Ok(options)
        }
        Err(err) => Err(err),
    };
    let options = match options {
        Ok(options) => options,
        Err(err) => {
            eprintln!("agent-monitor: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("agent-monitor: starting the runtime: {err}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(run(options)) {
        Ok(report) => {
            eprintln!("{}", summary::render(&report));
            ExitCode::from(report.status.shell_status().clamp(0, 255) as u8)
        }
        Err(err) => {
            eprintln!("agent-monitor: {err}");
            ExitCode::from(err.exit_status().clamp(0, 255) as u8)
        }
    }
}

fn run_options(
    agent: Option<String>,
    events: Option<PathBuf>,
    linger: f64,
    ring_mib: Option<u32>,
    command: Vec<OsString>,
) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(
        linger.is_finite() && linger >= 0.0,
        "--linger must be a number of seconds, 0 or more"
    );
    let ring_bytes = ring_mib
        .map(|mib| {
            anyhow::ensure!(
                mib.is_power_of_two() && mib <= 1024,
                "--ring-mib must be a power of two up to 1024, not {mib}"
            );
            Ok(mib << 20)
        })
        .transpose()?;
    let agent = agent.unwrap_or_else(|| {
        std::path::Path::new(&command[0])
            .file_name()
            .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
    });
    Ok(RunOptions {
        agent,
        events,
        command,
        linger: Duration::from_secs_f64(linger),
        load: LoadOptions {
            ring_bytes,
            probe_stats: false,
        },
    })
}
