//! `agent-monitor daemon`, `config` and `status`: the host monitor, its
//! configuration, and a look at it while it runs.

use std::{path::PathBuf, process::ExitCode};

use agent_monitor::{
    api::client::Client,
    config::{self, Config},
    daemon,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub struct DaemonArgs {
    /// The config file (TOML over the embedded defaults, see
    /// `agent-monitor config default`) [default: /etc/agent-monitor/config.toml
    /// if it exists, else the defaults].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Print the embedded defaults, with a comment on every key.
    Default,
    /// Check a config file (and the policy it names) as the daemon would
    /// load it; exits 0 only when it is valid.
    Check {
        #[arg(value_name = "FILE", default_value = config::DEFAULT_PATH)]
        file: PathBuf,
    },
}

#[derive(Args)]
pub struct StatusArgs {
    /// The daemon's socket [default: the config's, /run/agent-monitor/api.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the status as JSON.
    #[arg(long)]
    json: bool,
}

pub fn daemon_command(args: DaemonArgs) -> ExitCode {
    init_logs();
    let (path, config) = match load(args.config) {
        Ok(loaded) => loaded,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("starting the runtime: {err}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(daemon::run(path, config)) {
        Ok(report) => {
            let s = &report.status;
            tracing::info!(
                events = s.events,
                lost = s.events_lost,
                reloads = report.reloads,
                failed_reloads = report.failed_reloads,
                chain_head = s
                    .evidence
                    .as_ref()
                    .and_then(|e| e.chain_head.as_deref())
                    .unwrap_or("-"),
                "agent-monitor daemon stopped"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::from(err.exit_status().clamp(0, 255) as u8)
        }
    }
}

/// The config named, or the default file when there is one, or the
/// embedded defaults.
fn load(path: Option<PathBuf>) -> anyhow::Result<(Option<PathBuf>, Config)> {
    let path = path.or_else(|| {
        let default = PathBuf::from(config::DEFAULT_PATH);
        default.exists().then_some(default)
    });
    match path {
        Some(path) => {
            let config = Config::load(&path)?;
            Ok((Some(path), config))
        }
        None => {
            tracing::info!("no config file: using the embedded defaults");
            Ok((None, Config::defaults()))
        }
    }
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENT_MONITOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

pub fn config_command(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Default => {
            print!("{}", config::DEFAULT);
            ExitCode::SUCCESS
        }
        ConfigCommand::Check { file } => {
            let checked = Config::load(&file)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    daemon::setup::policy(&config, Some(&file))?;
                    daemon::setup::alerter(&config)?;
                    if let Some(group) = &config.api.group {
                        group.resolve()?;
                    }
                    Ok(config)
                });
            match checked {
                Ok(config) => {
                    println!(
                        "{}: valid ({} discovery rules, {} identity mappings)",
                        file.display(),
                        config.rules.agent_rules().count(),
                        config.rules.identity_count()
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("agent-monitor: {err}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

pub fn status_command(args: StatusArgs) -> ExitCode {
    let socket = args.socket.unwrap_or_else(|| {
        Config::load(std::path::Path::new(config::DEFAULT_PATH))
            .unwrap_or_else(|_| Config::defaults())
            .api
            .socket
    });
    let status =
        Client::connect(Some(&socket)).and_then(|mut c| c.request(&json!({"type": "status"})));
    match status {
        Ok(reply) => {
            let status = &reply["status"];
            let text = if args.json {
                format!("{status:#}\n")
            } else {
                render(status)
            };
            // A closed pipe (`status | head`) is the reader's choice.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agent-monitor: status: {err} (is the daemon running?)");
            ExitCode::from(2)
        }
    }
}

/// The status for a terminal.
fn render(s: &Value) -> String {
    let mut out = String::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    out += &format!(
        "daemon pid {}, up {} s\nevents: {} ({:.0}/s), lost {}, untracked children {}\n",
        n(&s["pid"]),
        n(&s["uptime_seconds"]),
        n(&s["events"]),
        s["events_per_second"].as_f64().unwrap_or(0.0),
        n(&s["events_lost"]),
        n(&s["untracked_children"]),
    );
    let verdicts = &s["verdicts"];
    out += &format!(
        "verdicts: {} declared, {} baseline, {} undeclared, {} unverifiable\n",
        n(&verdicts["declared"]),
        n(&verdicts["baseline"]),
        n(&verdicts["undeclared"]),
        n(&verdicts["unverifiable"]),
    );
    let agents = s["agents"].as_array().cloned().unwrap_or_default();
    out += &format!(
        "agents: {} ({} live processes)\n",
        agents.len(),
        n(&s["processes_live"])
    );
    for agent in &agents {
        out += &format!(
            "  {:<20} pid {:<8} {:>4} processes  {:<9} session {}\n",
            agent["agent"].as_str().unwrap_or("?"),
            n(&agent["root_pid"]),
            n(&agent["processes"]),
            agent["source"].as_str().unwrap_or("?"),
            agent["session_id"].as_str().unwrap_or("?"),
        );
    }
    if let Some(alerts) = s["alerts"].as_object().filter(|a| !a.is_empty()) {
        let list: Vec<String> = alerts
            .iter()
            .map(|(k, v)| format!("{k} {}", n(v)))
            .collect();
        out += &format!("alerts: {}\n", list.join(", "));
    }
    match s["evidence"].as_object() {
        Some(e) => {
            out += &format!(
                "evidence: {}, {} files, chain head {}\n",
                e.get("dir").and_then(Value::as_str).unwrap_or("?"),
                e.get("files").map(n).unwrap_or(0),
                e.get("chain_head")
                    .and_then(Value::as_str)
                    .unwrap_or("(empty)"),
            );
            if let Some(error) = e.get("error").and_then(Value::as_str) {
                out += &format!("evidence error: {error}\n");
            }
        }
        None => out += "evidence: none\n",
    }
    if let Some(probes) = s["syscall_probes"].as_object() {
        let gated = match probes.get("gated").map(n).unwrap_or(0) {
            0 => String::new(),
            1 => ", the exec gate holds 1 file".to_string(),
            files => format!(", the exec gate holds {files} files"),
        };
        out += &format!(
            "syscall probes: {}{gated} (since start: attached {}, detached {})\n",
            probes.get("state").and_then(Value::as_str).unwrap_or("?"),
            probes.get("attaches").map(n).unwrap_or(0),
            probes.get("detaches").map(n).unwrap_or(0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_says_whether_the_syscall_probes_are_attached() {
        let status = json!({
            "pid": 812,
            "syscall_probes": {"state": "detached", "attaches": 2, "detaches": 2},
        });
        assert!(
            render(&status)
                .contains("syscall probes: detached (since start: attached 2, detached 2)\n"),
            "{}",
            render(&status)
        );
        let gated = json!({
            "syscall_probes": {"state": "detached", "attaches": 1, "detaches": 1, "gated": 2},
        });
        assert!(
            render(&gated).contains(
                "syscall probes: detached, the exec gate holds 2 files (since start: attached 1, detached 1)\n"
            ),
            "{}",
            render(&gated)
        );
        // A daemon that reports none (an older one) gets no line.
        assert!(!render(&json!({"pid": 812})).contains("syscall probes"));
    }
}
