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

use crate::{cargo, root, sh};

const SKIP_PRIVILEGED: &str = "AGENT_MONITOR_SKIP_PRIVILEGED";

pub fn run() -> Result<()> {
    let privileged = privileged_tier()?;
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
