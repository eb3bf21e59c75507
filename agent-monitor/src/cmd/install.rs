//! `agent-monitor install` and `uninstall`: the daemon as a systemd service.
//! What is written where is decided by `agent_monitor::install`; this runs
//! it, and systemctl.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use agent_monitor::install::{self, InstallOptions, UninstallOptions};
use anyhow::{Context as _, bail};
use clap::Args;

#[derive(Args)]
pub struct InstallArgs {
    /// Install into DIR as if it were the root of the system: for packaging
    /// and tests. Needs no root and starts nothing.
    #[arg(long, value_name = "DIR", default_value = "/")]
    prefix: PathBuf,
    /// Check FILE and install it as /etc/agent-monitor/config.toml (the one
    /// there is saved as config.toml.old) [default: keep the installed
    /// config, or install the defaults if there is none].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write the files, but neither enable nor start the service.
    #[arg(long)]
    no_start: bool,
}

#[derive(Args)]
pub struct UninstallArgs {
    /// Uninstall from DIR as if it were the root of the system.
    #[arg(long, value_name = "DIR", default_value = "/")]
    prefix: PathBuf,
    /// Also remove /etc/agent-monitor/config.toml. The evidence and the
    /// keys are kept all the same.
    #[arg(long)]
    purge_config: bool,
}

pub fn install_command(args: InstallArgs) -> ExitCode {
    report("install", install(args))
}

pub fn uninstall_command(args: UninstallArgs) -> ExitCode {
    report("uninstall", uninstall(args))
}

fn report(what: &str, result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("agent-monitor: {what}: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The prefix made absolute, and whether it is this host's root; off the
/// host's root, anyone may install.
fn prefix_and_host(prefix: &Path, what: &str) -> anyhow::Result<(PathBuf, bool)> {
    let prefix = std::path::absolute(prefix)
        .with_context(|| format!("resolving --prefix {}", prefix.display()))?;
    let host = install::is_host(&prefix);
    if host && !install::running_as_root() {
        bail!(
            "{what} changes /usr/local/bin, /etc and /var/lib, so it runs as root: `sudo agent-monitor {what}` (or --prefix DIR to {what} under DIR)"
        );
    }
    Ok((prefix, host))
}

fn install(args: InstallArgs) -> anyhow::Result<()> {
    let (prefix, host) = prefix_and_host(&args.prefix, "install")?;
    let binary = std::env::current_exe().context("finding the running binary")?;
    let plan = install::plan(&InstallOptions {
        prefix,
        binary,
        config: args.config,
    })?;
    println!("config: {}", plan.origin);
    let done = install::apply(&plan)?;
    for d in &done {
        println!("  {d}");
    }
    for warning in done.iter().filter_map(install::Done::warning) {
        println!("warning: {warning}");
    }
    let api = &plan.config.api;
    println!(
        "socket {} (mode {:04o}, group {}); evidence {}; capture key {}",
        api.socket.display(),
        api.mode,
        plan.gid
            .map_or("0, api.group unset".to_string(), |gid| gid.to_string()),
        plan.config.evidence.dir.display(),
        plan.config.capture.key.display(),
    );

    let commands = install::start_commands(&done);
    if !host {
        println!(
            "installed under {}; on that system run:",
            plan.prefix.display()
        );
        print_commands(&commands);
    } else if args.no_start || !systemd_runs() {
        let why = if args.no_start {
            "--no-start"
        } else {
            "systemd is not running here"
        };
        println!("not started ({why}); to start it at boot and now:");
        print_commands(&commands);
    } else {
        for command in &commands {
            run(command)?;
        }
        check_started()?;
    }
    println!(
        "`systemctl reload agent-monitor` reloads {} (SIGHUP); `journalctl -u agent-monitor` shows its log",
        agent_monitor::config::DEFAULT_PATH
    );
    Ok(())
}

fn uninstall(args: UninstallArgs) -> anyhow::Result<()> {
    let (prefix, host) = prefix_and_host(&args.prefix, "uninstall")?;
    let systemctl = host && systemd_runs();
    if systemctl && Path::new(install::UNIT_PATH).exists() {
        // Stopped before its binary goes; a failure here is not one to
        // leave the files for.
        if let Err(err) = run(&install::STOP_COMMAND) {
            eprintln!("agent-monitor: uninstall: {err:#}; removing the files all the same");
        }
    }
    let done = install::uninstall(&UninstallOptions {
        prefix,
        purge_config: args.purge_config,
    })?;
    for path in &done.removed {
        println!("  removed   {}", path.display());
    }
    for path in &done.absent {
        println!("  absent    {}", path.display());
    }
    if systemctl {
        run(&install::RELOAD_COMMAND)?;
    } else if host {
        println!(
            "systemd is not running here; where it is, run: {} and {}",
            install::STOP_COMMAND.join(" "),
            install::RELOAD_COMMAND.join(" ")
        );
    }
    if let Some(note) = &done.note {
        println!("note: {note}");
    }
    println!("kept (remove them yourself once they are no longer needed):");
    for (path, what) in &done.kept {
        let there = if path.exists() { "" } else { " (not there)" };
        println!("  {}: {what}{there}", path.display());
    }
    Ok(())
}

/// systemd is this system's init (`sd_booted`), and systemctl is on PATH.
fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
        && std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("systemctl").is_file())
        })
}

fn print_commands(commands: &[Vec<&str>]) {
    for command in commands {
        println!("  {}", command.join(" "));
    }
}

/// Runs a command, echoing it, and fails when it fails.
fn run(command: &[&str]) -> anyhow::Result<()> {
    println!("+ {}", command.join(" "));
    let status = Command::new(command[0])
        .args(&command[1..])
        .status()
        .with_context(|| format!("starting {}", command[0]))?;
    if !status.success() {
        bail!("`{}` failed ({status})", command.join(" "));
    }
    Ok(())
}

/// A daemon that fails at start still starts as far as `Type=simple` goes:
/// look once it has had a moment to load its programs.
fn check_started() -> anyhow::Result<()> {
    std::thread::sleep(std::time::Duration::from_secs(2));
    let active = Command::new("systemctl")
        .args(["is-active", "--quiet", install::UNIT_NAME])
        .status()
        .is_ok_and(|status| status.success());
    if !active {
        bail!(
            "{} is not running; `journalctl -u agent-monitor` says why",
            install::UNIT_NAME
        );
    }
    println!("{} is running", install::UNIT_NAME);
    Ok(())
}
