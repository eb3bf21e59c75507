//! `cargo xtask bench`: overhead of the monitor on a syscall-heavy loop, as
//! ratios against runs without it, interleaved (A B C A B C …) so that the
//! machine's drift hits every setup alike. Writes BENCHMARKS.md.
//!
//! Setups, each running `openloop N` (N × open+close of /dev/null):
//! - baseline: no monitor loaded;
//! - untracked: the monitor loaded and tracking another process, so every
//!   syscall of the loop passes the probes' filters and is dropped there;
//! - tracked: the loop runs under `agent-monitor run`, one event per open,
//!   processed but not written (`tracked`), and written as JSONL to
//!   /dev/null (`tracked+jsonl`).

use std::{
    fmt::Write as _,
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{build_release, cargo, release_binary, root, sh};

pub struct Options {
    pub quick: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Baseline,
    Untracked,
    Tracked,
    TrackedJsonl,
}

impl Setup {
    const ALL: [Setup; 4] = [
        Setup::Baseline,
        Setup::Untracked,
        Setup::Tracked,
        Setup::TrackedJsonl,
    ];

    fn name(self) -> &'static str {
        match self {
            Setup::Baseline => "baseline (no monitor)",
            Setup::Untracked => "(a) monitor loaded, loop untracked",
            Setup::Tracked => "(b) loop tracked, events processed",
            Setup::TrackedJsonl => "(b) loop tracked, events written as JSONL",
        }
    }
}

pub fn run(options: &Options) -> Result<()> {
    let (iterations, rounds) = if options.quick {
        (200_000, 3)
    } else {
        (1_000_000, 5)
    };
    build_release()?;
    sh(cargo().args([
        "build",
        "--release",
        "--package",
        "xtask",
        "--bin",
        "openloop",
    ]))?;
    let openloop = root().join("target/release/openloop");

    // Warm the page cache and the CPU frequency before measuring.
    loop_ns(&openloop, iterations / 4, None)?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); Setup::ALL.len()];
    for round in 0..rounds {
        for (i, setup) in Setup::ALL.into_iter().enumerate() {
            let ns = measure(setup, &openloop, iterations)?;
            let per_iteration = ns as f64 / iterations as f64;
            eprintln!(
                "bench: round {} {}: {per_iteration:.1} ns per iteration",
                round + 1,
                setup.name()
            );
            samples[i].push(per_iteration);
        }
    }
    let report = report(&samples, iterations, rounds)?;
    fs::write(root().join("BENCHMARKS.md"), &report)?;
    print!("{report}");
    Ok(())
}

fn measure(setup: Setup, openloop: &PathBuf, iterations: u64) -> Result<u64> {
    let n = iterations.to_string();
    match setup {
        Setup::Baseline => loop_ns(openloop, iterations, None),
        Setup::Untracked => {
            let monitor = Background::start()?;
            let ns = loop_ns(openloop, iterations, None);
            monitor.stop()?;
            ns
        }
        Setup::Tracked | Setup::TrackedJsonl => {
            let mut command = Command::new(release_binary());
            command.args(["run", "--linger", "0"]);
            if setup == Setup::TrackedJsonl {
                command.args(["--events", "/dev/null"]);
            }
            command.arg("--").arg(openloop).arg(&n);
            let out = command.stderr(Stdio::piped()).output()?;
            if !out.status.success() {
                bail!("{}", String::from_utf8_lossy(&out.stderr));
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains(" 0 lost") {
                eprintln!("bench: events were lost: {}", stderr.trim());
            }
            parse_ns(&out.stdout)
        }
    }
    .with_context(|| format!("measuring {}", setup.name()))
}

fn loop_ns(openloop: &PathBuf, iterations: u64, _: Option<()>) -> Result<u64> {
    let out = Command::new(openloop)
        .arg(iterations.to_string())
        .output()?;
    parse_ns(&out.stdout)
}

fn parse_ns(stdout: &[u8]) -> Result<u64> {
    String::from_utf8_lossy(stdout)
        .trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .context("openloop printed no duration")
}

/// A monitor tracking a `sleep`, so its probes are loaded while the loop
/// runs outside any tracked tree.
struct Background(Child);

impl Background {
    fn start() -> Result<Background> {
        let child = Command::new(release_binary())
            .args(["run", "--linger", "0", "--", "sleep", "600"])
            .stderr(Stdio::null())
            .spawn()?;
        // Loaded once it has launched its command.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while fs::read_to_string(&children)
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            if Instant::now() > deadline {
                bail!("the background monitor did not start");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Background(child))
    }

    fn stop(mut self) -> Result<()> {
        // SIGTERM is passed on to the sleep; the monitor then exits.
        Command::new("kill").arg(self.0.id().to_string()).status()?;
        self.0.wait()?;
        Ok(())
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn report(samples: &[Vec<f64>], iterations: u64, rounds: usize) -> Result<String> {
    let base = median(&samples[0]);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let cpu = fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Measured by `cargo xtask bench` on {} CPUs ({cpu}), kernel {}, commit {commit}. \
         Workload: `openloop`, {iterations} iterations of open+close of /dev/null \
         (one hooked syscall, openat, and one unhooked, close, per iteration). \
         {rounds} rounds, setups interleaved; median and spread (min–max) per setup.\n",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    )?;
    writeln!(
        out,
        "| setup | ns per iteration (median) | spread | ratio to baseline | added ns per iteration |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- |")?;
    for (setup, values) in Setup::ALL.into_iter().zip(samples) {
        let m = median(values);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        writeln!(
            out,
            "| {} | {m:.1} | {min:.1}–{max:.1} | {:.3}× | {:+.1} |",
            setup.name(),
            m / base,
            m - base
        )?;
    }
    let untracked = median(&samples[1]) - base;
    let tracked = median(&samples[2]) - base;
    let jsonl = median(&samples[3]) - base;
    writeln!(out, "\n## Against the targets\n")?;
    writeln!(out, "| figure | target | measured |")?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(
        out,
        "| added per hooked syscall, untracked process | ≤ 50 ns | {untracked:.1} ns (the whole iteration's addition, close included) |"
    )?;
    writeln!(
        out,
        "| added per emitted event, tracked process | ≤ 300 ns | {tracked:.1} ns ({jsonl:.1} ns with JSONL output) |"
    )?;
    writeln!(
        out,
        "\nThe tracked figures are what the traced process pays: the probe runs in its syscall path. \
         Decoding and writing happen in the monitor on the other core; `0 lost` was checked on every tracked run \
         (the bench prints a warning otherwise).\n"
    )?;
    Ok(out)
}
