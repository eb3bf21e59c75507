//! `cargo xtask test`: every test tier, in order of cost.
//!
//! 1. Formatting and clippy, so the tree stays clean.
//! 2. Unprivileged unit tests of every crate, and of the Python SDK.
//! 3. Privileged end-to-end tests against the real probes, as root, one
//!    test thread (they share kernel state).
//!
//! The privileged tier never skips silently: without root or kernel BTF it
//! fails and says why, unless AGENT_MONITOR_SKIP_PRIVILEGED=1 asks for the
//! unprivileged tiers alone.

use std::{path::Path, process::Command};

use anyhow::{Result, bail};

use crate::{cargo, disk, root, sh};

const SKIP_PRIVILEGED: &str = "AGENT_MONITOR_SKIP_PRIVILEGED";

/// What a fresh clone's test build leaves in target/, with room to spare
/// (measured on a fresh clone on 2026-11-27: 3.3 GiB in target/, and
/// 0.3 GiB of registry and tools in CARGO_HOME).
const BUILD_GIB: u64 = 4;
const WHAT: &str = "building every test from a fresh clone";

pub fn run() -> Result<()> {
    let privileged = privileged_tier()?;
    if let Some(shortage) = disk::shortage(BUILD_GIB, WHAT) {
        eprintln!("test: warning: {shortage}");
    }
    every_tier(privileged).map_err(|error| match disk::shortage(BUILD_GIB, WHAT) {
        Some(shortage) => error.context(shortage),
        None => error,
    })
}

fn every_tier(privileged: bool) -> Result<()> {
    sh(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sh(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        "agent-monitor/privileged-tests",
        "--",
        "-D",
        "warnings",
    ]))?;
    sh(cargo().args(["test", "--workspace"]))?;
    // The Python SDK's own tests: stdlib only, against a fake monitor.
    sh(Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "sdk/python"])
        .current_dir(root()))?;
    if privileged {
        sh(cargo().args([
            "test",
            "--package",
            "agent-monitor",
            "--features",
            "privileged-tests",
            "--test",
            "*",
            "--",
            "--test-threads=1",
        ]))?;
    }
    Ok(())
}

/// Whether the privileged tier can run; an error when it cannot and the
/// caller did not opt out.
fn privileged_tier() -> Result<bool> {
    let missing = missing_for_bpf();
    let opted_out = std::env::var(SKIP_PRIVILEGED).is_ok_and(|v| v == "1");
    match (missing, opted_out) {
        (None, _) => Ok(true),
        (Some(why), true) => {
            eprintln!(
                "test: NOT running the privileged end-to-end tests ({SKIP_PRIVILEGED}=1): {why}"
            );
            Ok(false)
        }
        (Some(why), false) => bail!(
            "the privileged end-to-end tests cannot run: {why}. Run `cargo xtask test` as root on a kernel with BTF, or set {SKIP_PRIVILEGED}=1 to run only the unprivileged tests"
        ),
    }
}

fn missing_for_bpf() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { geteuid() } != 0 {
        return Some("they need root (CAP_BPF and CAP_PERFMON)".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("the kernel has no BTF at /sys/kernel/btf/vmlinux".into());
    }
    None
}

unsafe extern "C" {
    fn geteuid() -> u32;
}
