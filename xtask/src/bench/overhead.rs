//! The overhead matrix: each workload with no monitor, (a) with the daemon
//! running and the workload untracked, idle and watching, and (b) tracked
//! by `agent-monitor run` into the evidence store; then, in rounds of
//! their own, the same workloads under each peer (strace, auditd,
//! bpftrace) beside (b).
//!
//! Setups are interleaved within a round (A B C A B C …) so that the
//! machine's drift hits each alike, and every figure is a median over the
//! rounds with its spread. Timings are the workload's own (`ns=`), so no
//! monitor's or peer's start-up is ever counted.

use std::{
    ffi::OsString,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use super::{
    daemon::Daemon,
    peers::{self, Peer, PeerStatus},
    stats::Spread,
    workloads::{self, Measured, Workload},
};

/// The setups of the main matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    None,
    /// The daemon with nothing it could track: its syscall probes are
    /// detached.
    Idle,
    /// The daemon with an `exe` rule for a program the workload never
    /// runs: the exec gate holds that program's execs, and the syscall
    /// probes stay detached until one happens.
    Watching,
    /// The daemon with a `comm` rule, which the exec gate cannot hold: its
    /// syscall probes are attached all along, as they are while any agent
    /// runs.
    WatchingAttached,
    Tracked,
}

impl Setup {
    pub const ALL: [Setup; 5] = [
        Setup::None,
        Setup::Idle,
        Setup::Watching,
        Setup::WatchingAttached,
        Setup::Tracked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Setup::None => "no monitor",
            Setup::Idle => "(a) daemon idle, workload untracked",
            Setup::Watching => "(a) daemon watching by `exe`, workload untracked",
            Setup::WatchingAttached => {
                "(a) daemon watching by `comm` (probes attached), workload untracked"
            }
            Setup::Tracked => "(b) tracked by `run`, into the evidence store",
        }
    }

    /// Its column in a row's samples.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One workload's samples: per setup, nanoseconds per unit.
pub struct Row {
    pub workload: &'static Workload,
    pub count: u64,
    pub samples: Vec<Vec<f64>>,
    /// Events agent-monitor recorded and lost per tracked run.
    pub recorded: Vec<(u64, u64)>,
}

/// The peer comparison of one workload: no monitor, (b), and each peer
/// that works here, at a count small enough for the slowest peer.
pub struct PeerRow {
    pub workload: &'static Workload,
    pub count: u64,
    /// Column names, in order: "no monitor", "agent-monitor (b)", peers.
    pub columns: Vec<&'static str>,
    pub samples: Vec<Vec<f64>>,
    /// Events captured per unit, per column (0 for no monitor).
    pub events: Vec<Vec<f64>>,
    /// Events lost per column, summed over the rounds.
    pub lost: Vec<u64>,
    /// Bytes of output per event captured, per column: the evidence store
    /// for agent-monitor, the log or trace file for a peer.
    pub bytes_per_event: Vec<Vec<f64>>,
}

/// Where everything runs: binaries and a scratch directory.
pub struct Bench {
    pub monitor: PathBuf,
    pub workload: PathBuf,
    pub work_dir: PathBuf,
}

impl Bench {
    fn argv(&self, workload: &Workload, count: u64) -> Vec<OsString> {
        workload.argv(&self.workload, &self.work_dir, count)
    }

    fn plain(&self, workload: &Workload, count: u64) -> Result<Measured> {
        workload.run(&self.workload, &self.work_dir, count)
    }

    /// The workload under `agent-monitor run`, into a fresh evidence store:
    /// its timing, and the events the run recorded and lost.
    fn tracked(&self, workload: &Workload, count: u64) -> Result<Tracked> {
        let evidence = self.work_dir.join("tracked-evidence");
        let _ = fs::remove_dir_all(&evidence);
        let out = Command::new(&self.monitor)
            .args(["run", "--standalone", "--linger", "0", "--quiet-alerts"])
            .arg("--evidence")
            .arg(&evidence)
            .arg("--capture-key")
            .arg(self.work_dir.join("capture.key"))
            .arg("--")
            .args(self.argv(workload, count))
            .current_dir(&self.work_dir)
            .stdin(Stdio::null())
            .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("agent-monitor run failed: {stderr}");
        }
        let (events, lost) = summary_counts(&stderr)
            .with_context(|| format!("no summary in the run's output: {stderr}"))?;
        let bytes = dir_bytes(&evidence);
        let _ = fs::remove_dir_all(&evidence);
        Ok(Tracked {
            measured: workloads::parse_measured(&out.stdout)?,
            events,
            lost,
            bytes,
        })
    }
}

/// A tracked run: its timing, what it recorded and lost, and the bytes of
/// evidence it wrote.
struct Tracked {
    measured: Measured,
    events: u64,
    lost: u64,
    bytes: u64,
}

/// The evidence store's disk-full reserve (`journal/.reserve`): space held
/// back, the same 256 KiB whatever was recorded, not output.
const RESERVE_FILE: &str = ".reserve";

/// Bytes of the files under `dir`, the store's reserve left out.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) if e.file_name() == RESERVE_FILE => 0,
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// `N events` and `M lost` from `run`'s summary line.
pub fn summary_counts(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .find(|l| l.contains(" events (") || l.ends_with(" events"))?;
    let number_before = |word: &str| -> Option<u64> {
        let at = line.find(word)?;
        line[..at].split_whitespace().last()?.parse().ok()
    };
    Some((
        number_before(" events")?,
        number_before(" lost").unwrap_or(0),
    ))
}

/// The main matrix: `rounds` rounds, each running every workload in every
/// setup, interleaved.
pub fn matrix(bench: &Bench, quick: bool, rounds: usize) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = workloads::ALL
        .iter()
        .map(|w| Row {
            workload: w,
            count: w.count(quick),
            samples: vec![Vec::new(); Setup::ALL.len()],
            recorded: Vec::new(),
        })
        .collect();
    for round in 0..rounds {
        for row in &mut rows {
            for (i, setup) in Setup::ALL.into_iter().enumerate() {
                let per_unit = match setup {
                    Setup::None => bench.plain(row.workload, row.count)?.per_unit_ns(),
                    Setup::Idle | Setup::Watching | Setup::WatchingAttached => {
                        let daemon = Daemon::start(&bench.monitor, &bench.work_dir, setup)?;
                        let measured = bench.plain(row.workload, row.count);
                        daemon.stop()?;
                        measured?.per_unit_ns()
                    }
                    Setup::Tracked => {
                        let tracked = bench.tracked(row.workload, row.count)?;
                        // A tracked run that recorded less than its loop
                        // makes was not measuring what it claims.
                        let expected =
                            row.workload.monitor_events_per_unit.unwrap_or(0) * row.count;
                        if tracked.events + tracked.lost < expected {
                            bail!(
                                "the tracked {} run recorded {} events, fewer than the {expected} its loop makes",
                                row.workload.name,
                                tracked.events
                            );
                        }
                        row.recorded.push((tracked.events, tracked.lost));
                        tracked.measured.per_unit_ns()
                    }
                };
                eprintln!(
                    "bench: round {} {} {}: {per_unit:.1} ns per unit",
                    round + 1,
                    row.workload.name,
                    setup.name()
                );
                row.samples[i].push(per_unit);
            }
        }
    }
    Ok(rows)
}

/// Units per run in the peer comparison: the slowest peer takes about
/// 0.2 ms per traced syscall, so the storms are cut to keep a round short.
fn peer_count(workload: &Workload, quick: bool) -> u64 {
    let count = workload.count(quick);
    if quick {
        return count;
    }
    match workload.name {
        "open" | "stat" => count / 10,
        "connect" => count / 4,
        "forkexec" => count / 5,
        _ => count,
    }
}

/// The peer comparison: `rounds` rounds of no monitor, (b), and each peer
/// that works, interleaved, every workload.
pub fn peer_matrix(
    bench: &Bench,
    peers: &[PeerStatus],
    quick: bool,
    rounds: usize,
) -> Result<Vec<PeerRow>> {
    let working: Vec<Peer> = peers.iter().filter(|p| p.works()).map(|p| p.peer).collect();
    let mut columns = vec!["no monitor", "agent-monitor (b)"];
    columns.extend(working.iter().map(|p| p.name()));
    let mut rows: Vec<PeerRow> = workloads::ALL
        .iter()
        .map(|w| PeerRow {
            workload: w,
            count: peer_count(w, quick),
            columns: columns.clone(),
            samples: vec![Vec::new(); columns.len()],
            events: vec![Vec::new(); columns.len()],
            lost: vec![0; columns.len()],
            bytes_per_event: vec![Vec::new(); columns.len()],
        })
        .collect();
    let out_dir = bench.work_dir.join("peers");
    fs::create_dir_all(&out_dir)?;
    for round in 0..rounds {
        for row in &mut rows {
            let units = row.count as f64;
            let plain = bench.plain(row.workload, row.count)?;
            row.samples[0].push(plain.per_unit_ns());
            row.events[0].push(0.0);
            let tracked = bench.tracked(row.workload, row.count)?;
            eprintln!(
                "bench: {} tracked: {} events, {} lost, {} evidence bytes",
                row.workload.name, tracked.events, tracked.lost, tracked.bytes
            );
            row.samples[1].push(tracked.measured.per_unit_ns());
            row.events[1].push(tracked.events as f64 / units);
            row.lost[1] += tracked.lost;
            row.bytes_per_event[1].push(tracked.bytes as f64 / tracked.events.max(1) as f64);
            for (i, peer) in working.iter().enumerate() {
                let argv = bench.argv(row.workload, row.count);
                let sample = peers::run_under(*peer, row.workload, &argv, &out_dir)
                    .with_context(|| format!("{} under {}", row.workload.name, peer.name()))?;
                row.samples[2 + i].push(sample.measured.per_unit_ns());
                row.events[2 + i].push(sample.events as f64 / units);
                row.lost[2 + i] += sample.lost.unwrap_or(0);
                row.bytes_per_event[2 + i]
                    .push(sample.output_bytes as f64 / sample.events.max(1) as f64);
                eprintln!(
                    "bench: {} under {}: {:.1} ns per unit, {} events, {:.1} s with the peer's start and stop",
                    row.workload.name,
                    peer.name(),
                    sample.measured.per_unit_ns(),
                    sample.events,
                    sample.wall.as_secs_f64()
                );
                if let Some(note) = sample.note {
                    eprintln!("bench: {} under {}: {note}", row.workload.name, peer.name());
                }
            }
            eprintln!(
                "bench: peers round {} {}: {}",
                round + 1,
                row.workload.name,
                row.columns
                    .iter()
                    .zip(&row.samples)
                    .map(|(c, s)| format!("{c} {:.1}", s.last().copied().unwrap_or(f64::NAN)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let _ = fs::remove_dir_all(&out_dir);
    Ok(rows)
}

/// The matrix as Markdown, with the targets.
pub fn markdown(rows: &[Row], peer_rows: &[PeerRow], peers: &[PeerStatus]) -> Result<String> {
    let mut out = String::new();
    writeln!(out, "## Overhead on five workloads\n")?;
    writeln!(
        out,
        "Nanoseconds per unit, median of the rounds (spread min–max), and the ratio of \
         medians to no monitor. (a) is `agent-monitor daemon`, the workload untracked: idle, with \
         no rule and no agent, its syscall probes are detached (docs/daemon.md); watching by `exe`, \
         with a rule for a program the workload never runs, the exec gate holds that program's \
         execs and the probes stay detached; watching by `comm`, a rule the gate cannot hold, \
         they are attached all along, as they are while any agent runs, and every syscall on the \
         host passes their filter and stops there; (b) is \
         `agent-monitor run` tracking the workload and writing the evidence store (Parquet, journal, chain) on the other core.\n"
    )?;
    writeln!(
        out,
        "| workload | units | setup | ns per unit | spread | ratio |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- |")?;
    for row in rows {
        let base = Spread::of(&row.samples[0]).median;
        for (i, setup) in Setup::ALL.into_iter().enumerate() {
            let s = Spread::of(&row.samples[i]);
            writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.1}–{:.1} | {:.3}× |",
                row.workload.name,
                row.count,
                setup.name(),
                s.median,
                s.min,
                s.max,
                s.median / base
            )?;
        }
    }
    let lost: u64 = rows.iter().flat_map(|r| &r.recorded).map(|(_, l)| l).sum();
    writeln!(
        out,
        "\nEvents the tracked runs lost: {lost}. Workloads: {}.\n",
        workloads::ALL
            .iter()
            .map(|w| format!(
                "`{}`, {} (unit: {}; agent-monitor records {})",
                w.name, w.description, w.unit, w.monitor_events
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )?;

    writeln!(out, "## Side by side with strace, auditd and bpftrace\n")?;
    for status in peers {
        match &status.problem {
            None => writeln!(
                out,
                "- {} {}: {}",
                status.peer.name(),
                status.version.as_deref().unwrap_or(""),
                status.peer.setup()
            )?,
            Some(problem) => {
                writeln!(out, "- {}: **not measured**, {problem}", status.peer.name())?
            }
        }
    }
    writeln!(
        out,
        "\nRatio to no monitor (median ns per unit), events captured per unit, and bytes of \
         output per event (agent-monitor: every file of the evidence store, Parquet, chain log and \
         journal, but its fixed 256 KiB disk-full reserve). The peers \
         trace every syscall of the loop; agent-monitor records the actions its event contract \
         names (docs/events.md), each attributed to its agent, session and tool call, with \
         resolved absolute paths and a verdict. Counts are cut for the slowest peer; each \
         column ran the same count in the same rounds.\n"
    )?;
    if let Some(first) = peer_rows.first() {
        writeln!(out, "| workload | units | {} |", first.columns.join(" | "))?;
        writeln!(out, "| --- | --- |{}", " --- |".repeat(first.columns.len()))?;
    }
    for row in peer_rows {
        let base = Spread::of(&row.samples[0]).median;
        let cells: Vec<String> = (0..row.columns.len())
            .map(|i| {
                let s = Spread::of(&row.samples[i]);
                if i == 0 {
                    return format!("{:.1} ns", s.median);
                }
                let events = Spread::of(&row.events[i]).median;
                let lost = if row.lost[i] > 0 {
                    format!(", {} lost", row.lost[i])
                } else {
                    String::new()
                };
                // Under one event per hundred units, the fixed files of a
                // run would make bytes per event meaningless.
                let bytes = if events >= 0.01 {
                    format!(", {:.0} B/ev", Spread::of(&row.bytes_per_event[i]).median)
                } else {
                    String::new()
                };
                format!("{:.2}× ({events:.2} ev{bytes}{lost})", s.median / base)
            })
            .collect();
        writeln!(
            out,
            "| {} | {} | {} |",
            row.workload.name,
            row.count,
            cells.join(" | ")
        )?;
    }

    writeln!(out, "\n## Against the targets\n")?;
    writeln!(out, "| figure | target | measured |")?;
    writeln!(out, "| --- | --- | --- |")?;
    let ratio = |row: &Row, setup: Setup| {
        Spread::of(&row.samples[setup.index()]).median / Spread::of(&row.samples[0]).median
    };
    let tracked = |row: &Row| ratio(row, Setup::Tracked);
    for setup in [Setup::Idle, Setup::Watching, Setup::WatchingAttached] {
        let untracked: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {:.3}×", r.workload.name, ratio(r, setup)))
            .collect();
        let worst = rows.iter().map(|r| ratio(r, setup)).fold(0.0, f64::max);
        writeln!(
            out,
            "| {}, ratio to no monitor | ≤ 1.02× on every workload | {} ({}) |",
            setup.name(),
            untracked.join(", "),
            verdict(worst <= 1.02)
        )?;
    }
    let build = rows.iter().find(|r| r.workload.name == "build");
    let storms: Vec<&Row> = rows.iter().filter(|r| r.workload.name != "build").collect();
    let worst_storm = storms.iter().map(|r| tracked(r)).fold(0.0, f64::max);
    writeln!(
        out,
        "| (b) tracked, ratio to no monitor | ≤ 1.15× on the build, ≤ 1.5× on the storms | build {} ; storms {} ({}) |",
        build.map_or("-".into(), |b| format!("{:.3}×", tracked(b))),
        storms
            .iter()
            .map(|r| format!("{} {:.3}×", r.workload.name, tracked(r)))
            .collect::<Vec<_>>()
            .join(", "),
        verdict(build.is_none_or(|b| tracked(b) <= 1.15) && worst_storm <= 1.5)
    )?;
    let mut beaten = Vec::new();
    let mut all_beaten = true;
    for row in peer_rows {
        let ours = Spread::of(&row.samples[1]).median;
        for i in 2..row.columns.len() {
            let theirs = Spread::of(&row.samples[i]).median;
            if ours >= theirs {
                all_beaten = false;
                beaten.push(format!(
                    "{} slower than {}",
                    row.workload.name, row.columns[i]
                ));
            }
        }
    }
    writeln!(
        out,
        "| (b) against (c) | lower overhead than every peer on every workload | {} ({}) |",
        if beaten.is_empty() {
            "faster than every working peer on every workload".to_string()
        } else {
            beaten.join("; ")
        },
        verdict(all_beaten && peers.iter().all(PeerStatus::works))
    )?;
    // Issue 4's figure: the store's bytes per event on a real build.
    if let Some(build) = peer_rows.iter().find(|r| r.workload.name == "build")
        && !build.bytes_per_event[1].is_empty()
    {
        let bytes = Spread::of(&build.bytes_per_event[1]).median;
        writeln!(
            out,
            "| evidence on disk, a real build | ≤ 24 bytes per event | {bytes:.1} bytes per event ({}) |",
            verdict(bytes <= 24.0)
        )?;
    }
    Ok(out)
}

pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_summary_gives_events_and_losses() {
        let stderr = "agent-monitor: agent \"workload\": 3 processes, 20041 events (file.open 20010, process.exec 1), 12 lost\n";
        assert_eq!(summary_counts(stderr), Some((20041, 12)));
        let none_lost = "agent-monitor: agent \"w\": 1 processes, 7 events (file.open 7), 0 lost\n";
        assert_eq!(summary_counts(none_lost), Some((7, 0)));
        assert_eq!(summary_counts("nothing"), None);
    }

    #[test]
    fn peer_counts_are_cut_for_the_storms_only() {
        assert_eq!(
            peer_count(&workloads::OPEN, false),
            workloads::OPEN.full / 10
        );
        assert_eq!(peer_count(&workloads::BUILD, false), workloads::BUILD.full);
        assert_eq!(peer_count(&workloads::OPEN, true), workloads::OPEN.quick);
    }
}
