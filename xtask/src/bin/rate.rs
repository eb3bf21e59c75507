//! Benchmark workload: `rate EVENTS_PER_SEC SECONDS [THREADS]` issues one
//! recorded syscall per event at a steady rate, then prints
//! `sent=N secs=S threads=T`: the events it issued and the seconds it took,
//! from which the rate it actually reached follows (it may fall short of the
//! one asked for).
//!
//! Each event is an `openat` of a path that does not exist: the monitor
//! records failed opens (`file.open` with `error` `ENOENT`), and there is no
//! descriptor to close, so one syscall is one event and nothing else. The
//! paths cycle through `PATHS` names, as a build cycles through a source
//! tree: the same path every time would compress to almost nothing and make
//! the evidence look smaller than it is. The paths are built once, as C
//! strings, and opened with `open(2)` directly: what the bench measures is
//! the monitor, so the generator spends as little as it can per event.
//!
//! Pacing: each thread compares the events it has issued with those due by
//! now on the monotonic clock, issues the difference in batches of at most
//! `BATCH`, and sleeps until the next one is due when it is ahead. A thread
//! that falls behind (preempted, or too slow for the rate) catches up at
//! full speed, so the average over the run is the rate asked for whenever
//! the machine can reach it. THREADS (default 1) splits the rate evenly.

use std::{
    ffi::CString,
    thread,
    time::{Duration, Instant},
};

/// Absolute, and missing from its first component, so the kernel's lookup
/// fails at once.
const MISSING: &str = "/nonexistent-agent-monitor-rate";
/// Distinct paths opened in turn.
const PATHS: usize = 1024;
/// Most events issued between two looks at the clock.
const BATCH: u64 = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut number = |what: &str| -> Option<f64> {
        let arg = args.next()?;
        match arg.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Some(v),
            _ => {
                eprintln!("rate: {what} must be a positive number, not {arg:?}");
                std::process::exit(2)
            }
        }
    };
    let usage = "usage: rate EVENTS_PER_SEC SECONDS [THREADS]";
    let rate = number("EVENTS_PER_SEC").expect(usage);
    let secs = number("SECONDS").expect(usage);
    let threads = number("THREADS").map_or(1, |t| t as u64).max(1);

    let duration = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| thread::spawn(move || pace(rate / threads as f64, start, duration)))
        .collect();
    let sent: u64 = workers
        .into_iter()
        .map(|w| w.join().expect("a pacing thread panicked"))
        .sum();
    let elapsed = start.elapsed().as_secs_f64();
    println!("sent={sent} secs={elapsed:.6} threads={threads}");
}

/// Issues `rate` events per second from `start` until `duration` has
/// passed; returns how many it issued.
fn pace(rate: f64, start: Instant, duration: Duration) -> u64 {
    let paths: Vec<CString> = (0..PATHS)
        .map(|i| {
            CString::new(format!("{MISSING}/src/module{:02}/file{i:04}.rs", i % 37))
                .expect("no NUL in the path")
        })
        .collect();
    let mut sent: u64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return sent;
        }
        let due = (elapsed.as_secs_f64() * rate) as u64;
        if sent < due {
            let batch = (due - sent).min(BATCH);
            for i in sent..sent + batch {
                open_missing(&paths[i as usize % PATHS]);
            }
            sent += batch;
        } else {
            let next = Duration::from_secs_f64((sent + 1) as f64 / rate).min(duration);
            thread::sleep(next.saturating_sub(elapsed));
        }
    }
}

/// Opens `path`, which should not exist: the failure is the event. Should it
/// exist after all, the descriptor is closed again.
fn open_missing(path: &CString) {
    // SAFETY: a NUL-terminated path that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: the descriptor was just opened here and is not used again.
        unsafe { libc::close(fd) };
    }
}
