//! Throughput and footprint: the highest event rate the monitor records
//! end to end into the evidence store (`run --evidence`) with no event
//! lost, its drops and CPU use at twice that rate, and what it costs in
//! evidence bytes per event and in peak resident memory.
//!
//! Each probe runs
//! `agent-monitor run --standalone --quiet-alerts --linger 0 --evidence DIR
//! --capture-key KEY -- rate R SECS THREADS`, where `rate`
//! (`src/bin/rate.rs`) issues R failed `openat`s a second over 1,024 paths,
//! one `file.open` event each, and reports how many it issued in how long:
//! the achieved rate, which may fall short of R. The generator's thread pays
//! the kernel side of each event (the probe, the ring), so on a small
//! machine it is often the generator that cannot go faster: when one thread
//! falls short without a drop, two try again ([`one_then_two`]).
//! `--standalone` keeps a running daemon out of it; every event is
//! undeclared and judged, and the alerts it raises are held back after the
//! first of each path, as in an agent's busy build.
//!
//! How the monitor (the `run` process, not its child) is measured:
//! - CPU: `utime + stime` of `/proc/PID/stat`, which counts every thread of
//!   the process and none of its children (a reaped child's time goes to
//!   `cutime`/`cstime`, fields this ignores). The process is polled and not
//!   reaped until it shows state `Z`: a zombie's counters are final, so the
//!   last reading is exact to the clock tick. The reading taken when the
//!   workload appears (polled every 5 ms until then) splits the total into
//!   start-up (loading the programs) and the work the events caused: the
//!   latter, which includes draining the ring after the workload ends and
//!   the final flush, divided by the workload's own duration, is the CPU
//!   use reported.
//! - Peak RSS: `ru_maxrss` from `wait4` when the zombie is reaped. That is
//!   the kernel's high-water mark of the process's resident set over its
//!   whole life, exact, including the final flush that a poll could miss;
//!   it is the larger of the monitor's and its reaped children's, and the
//!   only child is `rate`, whose own peak (about 2 MiB) is far below. The
//!   `VmHWM` seen in `/proc/PID/status` while polling is kept as a floor.
//! - Evidence: the sizes of all files under DIR after the run (Parquet and
//!   `chain.log`), except `journal/.reserve`, space the store holds for a
//!   full disk. Anything else left in `journal/` is counted apart; it
//!   should be nothing after a clean exit.
//!
//! The parts: `search` chooses the rates and reads the results, `probe`
//! runs and measures one of them, `report` writes the section.

mod probe;
mod report;
mod search;

use std::{fs, path::Path};

use anyhow::{Context as _, Result};

pub use report::markdown;
pub use search::{Plan, one_then_two, run_plan};

/// Targets from the benchmarks issue, for the report (not asserted).
pub const TARGET_RATE: f64 = 500_000.0;
pub const TARGET_RSS_MIB: f64 = 64.0;

/// A probe whose generator reached less than this share of the requested
/// rate shows the generator's ceiling, not the monitor's.
const REACHED: f64 = 0.9;

/// One run of the monitor over the generator at one requested rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probe {
    /// Events per second asked of the generator, and its threads.
    pub requested: u64,
    pub threads: u32,
    /// Events the generator issued, and the seconds it took.
    pub sent: u64,
    pub secs: f64,
    /// Events in the run's summary: all kinds, and `file.open` alone.
    pub events: u64,
    pub opens: u64,
    /// Events the kernel could not deliver (the summary's `lost`).
    pub lost: u64,
    /// The monitor's CPU seconds from the workload's start to its own exit,
    /// and before that (loading the programs).
    pub cpu_secs: f64,
    pub startup_cpu_secs: f64,
    /// The monitor's peak resident set, KiB.
    pub peak_rss_kib: u64,
    /// Bytes of Parquet and chain log written.
    pub evidence_bytes: u64,
    /// Bytes left in `journal/` (besides its reserve); 0 after a clean exit.
    pub journal_bytes: u64,
    /// The attempt at the same rate with the other number of generator
    /// threads, when there was one and it was not kept ([`one_then_two`]).
    pub other: Option<Box<Probe>>,
}

impl Probe {
    /// The rate the generator reached, events per second.
    pub fn achieved(&self) -> f64 {
        if self.secs > 0.0 {
            self.sent as f64 / self.secs
        } else {
            0.0
        }
    }

    /// No event lost, and every event issued recorded.
    pub fn zero_drop(&self) -> bool {
        self.lost == 0 && self.opens >= self.sent
    }

    /// The generator reached (nearly) the rate asked of it.
    pub fn reached(&self) -> bool {
        self.achieved() >= REACHED * self.requested as f64
    }

    /// The rate this probe showed the monitor sustaining: the one asked
    /// for, or what the generator reached when it fell short.
    pub fn sustained_rate(&self) -> u64 {
        if self.reached() {
            self.requested
        } else {
            self.achieved().round() as u64
        }
    }

    /// Events lost or missing, and their share of those issued.
    pub fn dropped(&self) -> u64 {
        self.lost.max(self.sent.saturating_sub(self.opens))
    }

    pub fn drop_fraction(&self) -> f64 {
        let issued = self.sent.max(self.opens + self.lost);
        if issued == 0 {
            0.0
        } else {
            self.dropped() as f64 / issued as f64
        }
    }

    /// The monitor's CPU use while the events came, percent of one core.
    pub fn cpu_percent(&self) -> f64 {
        if self.secs > 0.0 {
            100.0 * self.cpu_secs / self.secs
        } else {
            0.0
        }
    }

    pub fn bytes_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.evidence_bytes as f64 / self.events as f64
        }
    }

    /// The monitor's CPU time per recorded event, microseconds; the rate
    /// one core of it would keep up with is the inverse.
    pub fn cpu_us_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            1e6 * self.cpu_secs / self.events as f64
        }
    }

    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// What ended the search for the highest zero-drop rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A higher rate lost events: the monitor's limit lies between.
    Drops,
    /// The generator could not reach the rate asked for, losing nothing:
    /// the monitor's limit was not reached (its CPU per event estimates it).
    Generator,
    /// The probes allowed ran out while every rate still passed.
    Budget,
}

/// All the figures, with every probe run.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    pub plan: Plan,
    /// In the order they ran.
    pub probes: Vec<Probe>,
    /// Index of the probe with the highest achieved rate and no drop.
    pub sustained: Option<usize>,
    pub limit: Limit,
    /// Index of the probe at twice the sustained rate.
    pub overload: Option<usize>,
}

impl Throughput {
    pub fn sustained(&self) -> Option<&Probe> {
        self.sustained.map(|i| &self.probes[i])
    }

    pub fn overload(&self) -> Option<&Probe> {
        self.overload.map(|i| &self.probes[i])
    }
}

/// Measures with the release monitor at `monitor` and the `rate` generator
/// at `rate_bin`, in a fresh directory under the temporary directory.
pub fn measure(monitor: &Path, rate_bin: &Path, quick: bool) -> Result<Throughput> {
    let work =
        std::env::temp_dir().join(format!("agent-monitor-throughput-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let plan = Plan::new(quick);
    let mut n = 0;
    let mut once = |rate: u64, threads: u32| -> Result<Probe> {
        n += 1;
        let probe = probe::probe(monitor, rate_bin, &work, n, rate, threads, plan.seconds)
            .with_context(|| format!("probing {rate} events/s"))?;
        eprintln!(
            "bench: throughput: asked {rate}/s of {threads} thread(s), reached {:.0}/s: \
             {} events, {} lost, monitor CPU {:.0}% of a core, peak RSS {:.1} MiB, \
             {:.1} evidence bytes/event",
            probe.achieved(),
            probe.events,
            probe.lost,
            probe.cpu_percent(),
            probe.peak_rss_mib(),
            probe.bytes_per_event(),
        );
        Ok(probe)
    };
    let result = run_plan(&plan, |rate| one_then_two(|threads| once(rate, threads)));
    let _ = fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use std::{path::PathBuf, time::Instant};

    use super::*;

    /// `cargo test -p xtask --bin xtask -- --ignored --nocapture
    /// throughput_on_this_machine` as root, after building the release
    /// monitor and `rate` (into `$CARGO_TARGET_DIR` or `target/`); set
    /// `THROUGHPUT_FULL=1` for the full search.
    #[test]
    #[ignore = "root, release binaries, and a minute or more"]
    fn throughput_on_this_machine() {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| crate::root().join("target"), PathBuf::from)
            .join("release");
        let quick = std::env::var_os("THROUGHPUT_FULL").is_none();
        let started = Instant::now();
        let t = measure(&target.join("agent-monitor"), &target.join("rate"), quick).unwrap();
        println!("{}", markdown(&t));
        println!("measured in {:.0} s", started.elapsed().as_secs_f64());
    }
}
