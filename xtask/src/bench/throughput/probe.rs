//! One probe: `agent-monitor run … -- rate R SECS THREADS`, with the
//! monitor's CPU and RSS read from `/proc` and `wait4`, and the evidence it
//! wrote counted.

use std::{
    fs,
    io::Read as _,
    os::raw::{c_int, c_long},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::Probe;

/// One run of the monitor over `rate_bin` asked for `rate` events per
/// second from `threads` threads.
pub(super) fn probe(
    monitor: &Path,
    rate_bin: &Path,
    work: &Path,
    n: usize,
    rate: u64,
    threads: u32,
    seconds: f64,
) -> Result<Probe> {
    let evidence = work.join(format!("evidence-{n}"));
    let key = work.join("key").join("capture.key");
    let mut child = Command::new(monitor)
        .args([
            "run",
            "--standalone",
            "--quiet-alerts",
            "--linger",
            "0",
            "--evidence",
        ])
        .arg(&evidence)
        .arg("--capture-key")
        .arg(&key)
        .arg("--")
        .arg(rate_bin)
        .arg(rate.to_string())
        .arg(seconds.to_string())
        .arg(threads.to_string())
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", monitor.display()))?;
    let pid = child.id();
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().expect("piped")));
    let stderr = read_all(Box::new(child.stderr.take().expect("piped")));

    let ticks = clock_ticks();
    let started = Instant::now();
    let mut at_workload: Option<u64> = None;
    let mut hwm_kib = 0;
    let final_ticks = loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
            .context("reading the monitor's /proc stat")?;
        if stat.state == 'Z' {
            break stat.cpu_ticks();
        }
        if let Some(kib) = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| parse_vm_hwm(&s))
        {
            hwm_kib = hwm_kib.max(kib);
        }
        if at_workload.is_none() && has_children(pid) {
            at_workload = Some(stat.cpu_ticks());
        }
        if started.elapsed() > Duration::from_secs_f64(seconds + 120.0) {
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(if at_workload.is_none() {
            5
        } else {
            100
        }));
    };
    let (status, maxrss_kib) = reap(pid)?;
    drop(child);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if status != 0 {
        bail!("the monitor exited with status {status}:\n{stderr}");
    }
    let at_workload = at_workload.context("the workload never started")?;
    let (sent, secs) = parse_sent(&stdout)
        .with_context(|| format!("no `sent=N secs=S` from rate in {stdout:?}"))?;
    let summary = parse_summary(&stderr)
        .with_context(|| format!("no summary line from the monitor in:\n{stderr}"))?;
    let (evidence_bytes, journal_bytes) = evidence_size(&evidence)?;
    let _ = fs::remove_dir_all(&evidence);
    Ok(Probe {
        requested: rate,
        threads,
        sent,
        secs,
        events: summary.events,
        opens: summary.opens,
        lost: summary.lost,
        cpu_secs: final_ticks.saturating_sub(at_workload) as f64 / ticks,
        startup_cpu_secs: at_workload as f64 / ticks,
        peak_rss_kib: maxrss_kib.max(hwm_kib),
        evidence_bytes,
        journal_bytes,
        other: None,
    })
}

/// The fields of `/proc/PID/stat` used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    /// Clock ticks in user and kernel mode, all threads, children excluded.
    pub utime: u64,
    pub stime: u64,
}

impl Stat {
    pub fn cpu_ticks(&self) -> u64 {
        self.utime + self.stime
    }
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses, so fields are counted from the
/// last `)`: state is field 3, utime 14, stime 15.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

/// `VmHWM` of `/proc/PID/status`, KiB; none for a process without memory
/// (a zombie).
pub fn parse_vm_hwm(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `sent=N secs=S …` printed by `rate`.
pub fn parse_sent(stdout: &str) -> Option<(u64, f64)> {
    let line = stdout.lines().rev().find(|l| l.starts_with("sent="))?;
    let value = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_string)
    };
    Some((value("sent=")?.parse().ok()?, value("secs=")?.parse().ok()?))
}

/// The counts of the run's summary line:
/// `agent-monitor: agent "rate": 3 processes, N events (file.open M, …), L lost`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub events: u64,
    pub opens: u64,
    pub lost: u64,
}

pub fn parse_summary(stderr: &str) -> Option<Summary> {
    let line = stderr
        .lines()
        .find(|l| l.contains(" events (") && l.contains(" lost"))?;
    let last_number = |before: &str| -> Option<u64> { before.rsplit(' ').next()?.parse().ok() };
    let (head, kinds) = line.split_once(" events (")?;
    let events = last_number(head)?;
    let (kinds, tail) = kinds.rsplit_once("), ")?;
    let lost = last_number(tail.split(" lost").next()?)?;
    let opens = kinds
        .split(", ")
        .find_map(|k| k.strip_prefix("file.open "))
        .map_or(Some(0), |n| n.parse().ok())?;
    Some(Summary {
        events,
        opens,
        lost,
    })
}

/// Whether any thread of `pid` has a child: the run has started its command.
fn has_children(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        fs::read_to_string(task.path().join("children")).is_ok_and(|c| !c.trim().is_empty())
    })
}

/// Bytes of evidence under `dir`, and bytes left in its journal, the
/// journal's reserve excepted.
fn evidence_size(dir: &Path) -> Result<(u64, u64)> {
    fn walk(dir: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(&entry.path(), files)?;
            } else {
                files.push((entry.path(), meta.len()));
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let journal = dir.join("journal");
    let (mut evidence, mut left) = (0, 0);
    for (path, len) in files {
        if path == journal.join(".reserve") {
            continue;
        } else if path.starts_with(&journal) {
            left += len;
        } else {
            evidence += len;
        }
    }
    Ok((evidence, left))
}

#[repr(C)]
struct Timeval {
    sec: c_long,
    usec: c_long,
}

/// `struct rusage` of 64-bit Linux: two timevals, then 14 longs.
#[repr(C)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: c_long,
    _rest: [c_long; 13],
}

unsafe extern "C" {
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, rusage: *mut Rusage) -> c_int;
    fn sysconf(name: c_int) -> c_long;
}

/// Reaps `pid`: its exit status (128 + N for signal N) and `ru_maxrss`
/// (KiB).
fn reap(pid: u32) -> Result<(i32, u64)> {
    let mut status: c_int = 0;
    let mut usage = Rusage {
        utime: Timeval { sec: 0, usec: 0 },
        stime: Timeval { sec: 0, usec: 0 },
        maxrss: 0,
        _rest: [0; 13],
    };
    loop {
        // SAFETY: both pointers are to live locals of the declared types.
        let r = unsafe { wait4(pid as c_int, &mut status, 0, &mut usage) };
        if r == pid as c_int {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for the monitor");
        }
    }
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    };
    Ok((code, usage.maxrss.max(0) as u64))
}

/// Clock ticks per second of `/proc`'s times.
fn clock_ticks() -> f64 {
    const SC_CLK_TCK: c_int = 2;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { sysconf(SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_count_from_the_last_parenthesis() {
        let text = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    123 45 6 7 20 0 3 0 100 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                state: 'S',
                utime: 123,
                stime: 45
            })
        );
        let zombie = "7 (agent-monitor) Z 1 7 7 0 -1 4 0 0 0 0 9 1 0 0 20 0 1 0 5 0 0";
        let stat = parse_stat(zombie).unwrap();
        assert_eq!((stat.state, stat.cpu_ticks()), ('Z', 10));
        assert_eq!(parse_stat("7 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_stat_parses() {
        let stat = parse_stat(&fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
        assert!(matches!(stat.state, 'R' | 'S'), "{stat:?}");
        assert!(parse_vm_hwm(&fs::read_to_string("/proc/self/status").unwrap()).unwrap() > 0);
    }

    #[test]
    fn vm_hwm_in_kib() {
        let status =
            "Name:\tagent-monitor\nVmPeak:\t  400000 kB\nVmHWM:\t   38012 kB\nVmRSS:\t 30000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(38012));
        // A zombie has no memory lines.
        assert_eq!(parse_vm_hwm("Name:\tx\nState:\tZ (zombie)\n"), None);
    }

    #[test]
    fn sent_line() {
        assert_eq!(
            parse_sent("noise\nsent=1000000 secs=2.000123 threads=1\n"),
            Some((1_000_000, 2.000123))
        );
        assert_eq!(parse_sent("sent=10\n"), None);
        assert_eq!(parse_sent(""), None);
    }

    #[test]
    fn summary_counts() {
        let stderr = "agent-monitor: agent \"rate\": 1 processes, 1000012 events \
                      (file.open 1000005, process.exec 1, process.exit 1), 0 lost\n\
                      agent-monitor: 0 declared, 7 baseline, 1000005 undeclared, 0 unverifiable; 0 tool calls (0 denied)\n";
        assert_eq!(
            parse_summary(stderr),
            Some(Summary {
                events: 1_000_012,
                opens: 1_000_005,
                lost: 0
            })
        );
        let lossy = "agent-monitor: agent \"a (b), c\": 1 processes, 90 events (file.open 80), \
                     12 lost (cpu0 10, cpu1 2)\n";
        assert_eq!(
            parse_summary(lossy),
            Some(Summary {
                events: 90,
                opens: 80,
                lost: 12
            })
        );
        let none = "agent-monitor: agent \"rate\": 0 processes, 0 events (none), 0 lost\n";
        assert_eq!(parse_summary(none), Some(Summary::default()));
        assert_eq!(parse_summary("agent-monitor: not root\n"), None);
    }
}
