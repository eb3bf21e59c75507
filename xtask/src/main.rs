//! `cargo xtask …`: what cargo alone cannot do. Kept thin: each command is a
//! sequence of ordinary commands, printed as they run.

mod bench;
mod demo;
mod disk;
mod setup;
mod test;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

#[derive(Parser)]
#[command(about = "agent-monitor development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need, when it is missing.
    Setup,
    /// Set up, then build agent-monitor with its kernel programs (release).
    Build,
    /// Set up, build, and run every test: unit tests, then the privileged
    /// end-to-end tests as root with one test thread.
    Test,
    /// Set up, build, and run an example agent under the monitor.
    Demo,
    /// Set up, build, and measure the monitor's overhead; writes BENCHMARKS.md.
    Bench {
        /// Fewer iterations and rounds, for a first look (under 2 minutes).
        #[arg(long)]
        quick: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Task::Setup => setup::run(),
        Task::Build => {
            setup::run()?;
            build_release()
        }
        Task::Test => {
            setup::run()?;
            test::run()
        }
        Task::Demo => {
            setup::run()?;
            build_release()?;
            demo::run()
        }
        Task::Bench { quick } => {
            setup::run()?;
            bench::run(&bench::Options { quick })
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// The release binary `build_release` produces.
pub fn release_binary() -> PathBuf {
    root().join("target/release/agent-monitor")
}

pub fn build_release() -> Result<()> {
    sh(cargo().args(["build", "--release", "--package", "agent-monitor"]))
}

/// `cargo` from the toolchain running xtask, with the BPF toolchain on PATH.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(root())
        .env("PATH", setup::path_with_tools());
    command
}

/// Runs a command, echoing it, and fails when it fails.
pub fn sh(command: &mut Command) -> Result<()> {
    eprintln!("+ {}", show(command));
    let status = command
        .status()
        .with_context(|| format!("starting {}", show(command)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", show(command));
    }
    Ok(())
}

fn show(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
