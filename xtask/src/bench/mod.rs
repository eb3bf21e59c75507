//! `cargo xtask bench`: what the monitor costs, measured on this machine,
//! as ratios against runs without it in the same session, setups
//! interleaved (A B C A B C …) so that the machine's drift hits each alike.
//! Writes BENCHMARKS.md; `--quick` is a first look in under two minutes
//! (after the builds), written to target/BENCHMARKS-quick.md instead.
//!
//! The sections, each a module:
//! - [`overhead`]: five workloads (`workloads`) with no monitor, with the
//!   daemon running and the workload untracked, and tracked; then side by
//!   side with strace, auditd and bpftrace (`peers`), which it installs;
//! - [`throughput`]: the highest event rate with no drops, end to end into
//!   Parquet, what twice that rate costs, and the footprint;
//! - [`kernel_cost`]: the cost per hooked syscall, by the kernel's own
//!   timing of the programs;
//! - [`pipeline`]: the userspace pipeline alone (criterion).

mod daemon;
mod kernel_cost;
mod overhead;
pub mod peers;
mod pipeline;
mod stats;
pub mod throughput;
pub mod workloads;

use std::{fmt::Write as _, fs, process::Command, thread, time::Instant};

use anyhow::Result;

use crate::{build_release, cargo, release_binary, root, sh};

pub struct Options {
    pub quick: bool,
}

pub fn run(options: &Options) -> Result<()> {
    let quick = options.quick;
    // `cargo xtask` runs under cargo, which points LD_LIBRARY_PATH at the
    // toolchain: every dynamically linked program a workload starts would
    // then try each of those directories for its libraries, a cost (and
    // events) no real host has.
    // SAFETY: no other thread runs yet.
    unsafe { std::env::remove_var("LD_LIBRARY_PATH") };
    build_release()?;
    for bin in ["openloop", "rate"] {
        sh(cargo().args(["build", "--release", "--package", "xtask", "--bin", bin]))?;
    }
    let workload_bin = workloads::binary()?;
    let missing = workloads::missing_packages(&workloads::ALL);
    if !missing.is_empty() {
        peers::apt_install(&missing)?;
    }
    let peer_status = peers::install();
    let started = Instant::now();
    let work_dir = root().join("target/bench-work");
    let _ = fs::remove_dir_all(&work_dir);
    fs::create_dir_all(&work_dir)?;
    for workload in workloads::ALL {
        workload.prepare(&work_dir)?;
    }
    let bench = overhead::Bench {
        monitor: release_binary(),
        workload: workload_bin,
        work_dir: work_dir.clone(),
    };
    // At least five runs of every setup, the peers' included: three
    // rounds of a one-second build left the side-by-side ratios within
    // the VM's noise of each other.
    let rounds = if quick { 1 } else { 5 };
    let rows = overhead::matrix(&bench, quick, rounds)?;
    let peer_rows = overhead::peer_matrix(&bench, &peer_status, quick, rounds)?;
    let rate_bin = root().join("target/release/rate");
    let throughput = throughput::measure(&release_binary(), &rate_bin, quick)?;

    let mut report = String::new();
    writeln!(report, "# Benchmarks\n")?;
    writeln!(
        report,
        "Measured by `cargo xtask bench{}` on {}. {} rounds of the main matrix and of \
         the peer comparison, setups interleaved; medians, with the spread (min–max).\n",
        if quick { " --quick" } else { "" },
        machine()?,
        rounds
    )?;
    report.push_str(&overhead::markdown(&rows, &peer_rows, &peer_status)?);
    report.push('\n');
    report.push_str(&throughput::markdown(&throughput));
    if quick {
        writeln!(
            report,
            "\n`--quick` leaves out the per-syscall kernel timing and the userspace pipeline \
             bench; `cargo xtask bench` has them."
        )?;
    } else {
        let openloop = root().join("target/release/openloop");
        report.push('\n');
        report.push_str(&kernel_cost::measure_all(&openloop, 1_000_000, 5)?);
        report.push_str(&pipeline::report(false)?);
    }
    let _ = fs::remove_dir_all(&work_dir);
    let target = if quick {
        root().join("target/BENCHMARKS-quick.md")
    } else {
        root().join("BENCHMARKS.md")
    };
    fs::write(&target, &report)?;
    print!("{report}");
    eprintln!(
        "bench: measured in {:.0} s (builds and installs excluded); written to {}",
        started.elapsed().as_secs_f64(),
        target.display()
    );
    Ok(())
}

fn machine() -> Result<String> {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpu = fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let memory = fs::read_to_string("/proc/meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(String::new(), |kb| format!(", {} GiB", kb >> 20));
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Ok(format!(
        "{} CPUs ({cpu}){memory}, kernel {}, commit {commit}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    ))
}
