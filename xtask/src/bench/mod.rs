//! `cargo xtask bench`: overhead of the monitor on a syscall-heavy loop, as
//! ratios against runs without it, interleaved (A B C D A B C D …) so that
//! the machine's drift hits every setup alike. Writes BENCHMARKS.md.
//!
//! Setups, each running `openloop N` (N × open+close of /dev/null):
//! - baseline: no monitor loaded;
//! - untracked: the monitor loaded and tracking another process, so every
//!   syscall of the loop passes the probes' filters and stops there;
//! - tracked: the loop runs under `agent-monitor run`, one event per open,
//!   processed but not written, or written as JSONL to /dev/null.
//!
//! Besides wall clock, every monitor runs with `--probe-stats`, so the
//! kernel's own timing of the `sys_exit` program is reported too.

use std::{
    fmt::Write as _,
    fs,
    path::Path,
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

/// One measured run: the loop's time per iteration, and the monitor's own
/// account of its `sys_exit` program (runs, average ns) when one ran.
struct Sample {
    per_iteration: f64,
    probe: Option<(u64, f64)>,
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
    loop_ns(&openloop, iterations / 4)?;
    let mut samples: Vec<Vec<Sample>> = Setup::ALL.iter().map(|_| Vec::new()).collect();
    // Wall clock first, without the kernel's statistics (they time every
    // program run, which costs the loop too); then the statistics alone.
    for round in 0..rounds * 2 {
        let stats = round >= rounds;
        for (i, setup) in Setup::ALL.into_iter().enumerate() {
            if stats && setup == Setup::Baseline {
                continue;
            }
            let sample = measure(setup, &openloop, iterations, stats)
                .with_context(|| format!("measuring {}", setup.name()))?;
            eprintln!(
                "bench: round {} {}: {:.1} ns per iteration, sys_exit {:?}",
                round + 1,
                setup.name(),
                sample.per_iteration,
                sample.probe
            );
            samples[i].push(sample);
        }
    }
    let mut report = report(&samples, iterations, rounds)?;
    report.push_str(&pipeline_report(options.quick)?);
    fs::write(root().join("BENCHMARKS.md"), &report)?;
    print!("{report}");
    Ok(())
}

/// One run of `setup`. With `stats` only the kernel's timing of the
/// programs is kept: the statistics slow the loop down.
fn measure(setup: Setup, openloop: &Path, iterations: u64, stats: bool) -> Result<Sample> {
    let per_iteration = |ns: u64| {
        if stats {
            f64::NAN
        } else {
            ns as f64 / iterations as f64
        }
    };
    match setup {
        Setup::Baseline => Ok(Sample {
            per_iteration: per_iteration(loop_ns(openloop, iterations)?),
            probe: None,
        }),
        Setup::Untracked => {
            let monitor = Background::start(stats)?;
            let ns = loop_ns(openloop, iterations)?;
            let summary = monitor.stop()?;
            Ok(Sample {
                per_iteration: per_iteration(ns),
                probe: sys_exit_cost(&summary),
            })
        }
        Setup::Tracked | Setup::TrackedJsonl => {
            let mut command = Command::new(release_binary());
            command.args(["run", "--linger", "0"]);
            if stats {
                command.arg("--probe-stats");
            }
            if setup == Setup::TrackedJsonl {
                command.args(["--events", "/dev/null"]);
            }
            command.arg("--").arg(openloop).arg(iterations.to_string());
            let out = command.stderr(Stdio::piped()).output()?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                bail!("{stderr}");
            }
            if !stderr.contains(" 0 lost") {
                eprintln!("bench: events were lost: {}", stderr.trim());
            }
            Ok(Sample {
                per_iteration: per_iteration(parse_ns(&out.stdout)?),
                probe: sys_exit_cost(&stderr),
            })
        }
    }
}

/// `sys_exit N runs, X ns each` from a `--probe-stats` summary.
fn sys_exit_cost(summary: &str) -> Option<(u64, f64)> {
    let rest = summary.split("sys_exit ").nth(1)?;
    let mut words = rest.split_whitespace();
    let runs = words.next()?.parse().ok()?;
    let _runs_word = words.next()?;
    let ns = words.next()?.parse().ok()?;
    Some((runs, ns))
}

fn loop_ns(openloop: &Path, iterations: u64) -> Result<u64> {
    let out = Command::new(openloop)
        .arg(iterations.to_string())
        .output()?;
    parse_ns(&out.stdout)
}

fn parse_ns(stdout: &[u8]) -> Result<u64> {
    String::from_utf8_lossy(stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("openloop printed no duration")
}

/// A monitor tracking a `sleep`, so its probes are loaded while the loop
/// runs outside any tracked tree.
struct Background(Child);

impl Background {
    fn start(stats: bool) -> Result<Background> {
        let mut command = Command::new(release_binary());
        command.args(["run", "--linger", "0"]);
        if stats {
            command.arg("--probe-stats");
        }
        let child = command
            .args(["--", "sleep", "600"])
            .stderr(Stdio::piped())
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

    /// Stops the monitor and returns its summary.
    fn stop(self) -> Result<String> {
        // SIGTERM is passed on to the sleep; the monitor then exits.
        Command::new("kill").arg(self.0.id().to_string()).status()?;
        let out = self.0.wait_with_output()?;
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut sorted: Vec<f64> = values.collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
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
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Ok(format!(
        "{} CPUs ({cpu}), kernel {}, commit {commit}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        kernel.trim()
    ))
}

/// The userspace pipeline's throughput, from the criterion bench
/// `agent-monitor/benches/evidence.rs`: decoding alone (the baseline) and
/// decoding through the processing stage into zstd Parquet, in one run.
fn pipeline_report(quick: bool) -> Result<String> {
    let mut command = cargo();
    command.args([
        "bench",
        "--package",
        "agent-monitor",
        "--bench",
        "evidence",
        "--",
        "--noplot",
    ]);
    if quick {
        command.args(["--warm-up-time", "1", "--measurement-time", "3"]);
    }
    let out = command.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("cargo bench failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| -> Result<f64> {
        let block = text
            .split(&format!("pipeline/{name}"))
            .nth(1)
            .with_context(|| format!("no pipeline/{name} in the bench output"))?;
        let line = block
            .lines()
            .find(|l| l.contains("thrpt:"))
            .context("no throughput line")?;
        // thrpt:  [low UNIT mid UNIT high UNIT]
        let words: Vec<&str> = line
            .split(['[', ']'])
            .nth(1)
            .context("no [..]")?
            .split_whitespace()
            .collect();
        let value: f64 = words.get(2).context("no median")?.parse()?;
        let scale = match words.get(3).copied() {
            Some("Melem/s") => 1e6,
            Some("Kelem/s") => 1e3,
            _ => 1.0,
        };
        Ok(value * scale)
    };
    let decode = rate("decode ")?;
    let process = rate("decode+process ")?;
    let declared = rate("decode+process(declared)")?;
    let arrow = rate("decode+process+arrow")?;
    let full = rate("decode+process+parquet")?;
    let mut out = String::new();
    writeln!(out, "## Userspace pipeline (criterion)\n")?;
    writeln!(
        out,
        "`cargo bench --bench evidence`: 100,000 recorded build-like file opens, one core. \
         The processing stage judges every event: in the plain stream no call covers \
         the opens, so each is undeclared and raises an alert (held back by the \
         alerter after the first of each); in the declared stream a `bash` call covers \
         them, the common case of an agent at work.\n"
    )?;
    writeln!(out, "| stage | events/s | ratio to decoding alone |")?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(out, "| decode (baseline) | {decode:.0} | 1.00 |")?;
    let stages = [
        (
            "decode, process (no output), every open undeclared",
            process,
        ),
        (
            "decode, process (no output), inside a declared call",
            declared,
        ),
        ("decode, process, Arrow builders", arrow),
        (
            "decode, process, Arrow, journal (LZ4 Arrow IPC), zstd Parquet, chain",
            full,
        ),
    ];
    for (stage, rate) in stages {
        writeln!(out, "| {stage} | {rate:.0} | {:.2} |", rate / decode)?;
    }
    writeln!(
        out,
        "\nTarget: at least 1,000,000 events/s through the whole pipeline."
    )?;
    Ok(out)
}

fn report(samples: &[Vec<Sample>], iterations: u64, rounds: usize) -> Result<String> {
    let wall = |i: usize| {
        median(
            samples[i]
                .iter()
                .map(|s| s.per_iteration)
                .filter(|v| !v.is_nan()),
        )
    };
    let probe = |i: usize| median(samples[i].iter().filter_map(|s| s.probe).map(|(_, ns)| ns));
    // All of sys_exit's time during a tracked run, per open: the opens'
    // records plus the closes' filtering.
    let probe_per_event = |i: usize| {
        median(
            samples[i]
                .iter()
                .filter_map(|s| s.probe)
                .map(|(runs, ns)| runs as f64 * ns / iterations as f64),
        )
    };
    let base = wall(0);
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Measured by `cargo xtask bench` on {}. Workload: `openloop`, {iterations} iterations \
         of open+close of /dev/null (one hooked syscall, openat, and one unhooked, close, per \
         iteration). {rounds} rounds, setups interleaved; median and spread (min–max). The \
         wall-clock runs have the kernel's statistics off; the program timings come from \
         {rounds} more rounds with them on.\n",
        machine()?
    )?;
    writeln!(out, "## Wall clock\n")?;
    writeln!(
        out,
        "| setup | ns per iteration | spread | ratio to baseline | added per iteration |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- |")?;
    for (i, setup) in Setup::ALL.into_iter().enumerate() {
        let values = samples[i]
            .iter()
            .map(|s| s.per_iteration)
            .filter(|v| !v.is_nan());
        let min = values.clone().fold(f64::INFINITY, f64::min);
        let max = values.fold(0.0, f64::max);
        writeln!(
            out,
            "| {} | {:.1} | {min:.1}–{max:.1} | {:.3}× | {:+.1} ns |",
            setup.name(),
            wall(i),
            wall(i) / base,
            wall(i) - base
        )?;
    }
    writeln!(out, "\n## In the kernel (`run --probe-stats`)\n")?;
    writeln!(
        out,
        "| setup | sys_exit, ns per run | sys_exit time per loop iteration |"
    )?;
    writeln!(out, "| --- | --- | --- |")?;
    for (i, setup) in Setup::ALL.into_iter().enumerate().skip(1) {
        writeln!(
            out,
            "| {} | {:.1} | {:.1} ns |",
            setup.name(),
            probe(i),
            probe_per_event(i)
        )?;
    }
    writeln!(out, "\n## Against the targets\n")?;
    writeln!(out, "| figure | target | measured |")?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(
        out,
        "| added per hooked syscall, untracked process | ≤ 50 ns | program: {:.1} ns per syscall, averaged over the open and the close; wall clock: {:+.1} ns per iteration ({:.3}×) |",
        probe(1),
        wall(1) - base,
        wall(1) / base
    )?;
    writeln!(
        out,
        "| added per emitted event, tracked process | ≤ 300 ns | program: {:.1} ns per event; wall clock: {:+.1} ns per event ({:+.1} ns with JSONL output) |",
        probe_per_event(2),
        wall(2) - base,
        wall(3) - base
    )?;
    writeln!(
        out,
        "\nThe program figures are the kernel's own timing of `sys_exit` and the programs it \
         tail-calls (BPF_ENABLE_STATS), the steadiest measure on a noisy machine; they include \
         the statistics' own clock reads, about 58 ns per run here (measured once with an empty \
         program). The wall-clock \
         additions also hold what no program can avoid: once a syscall tracepoint is attached, \
         every syscall on the host takes the kernel's traced slow path and enters the program. \
         In the tracked runs, decoding and writing happen in the monitor on the other core; the \
         bench warns if any tracked run lost events. docs/performance.md breaks these figures \
         down.\n"
    )?;
    Ok(out)
}
