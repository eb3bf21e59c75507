//! End-to-end: the evidence store survives `kill -9` and a full disk.
//! Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agent_monitor::evidence::{journal, schema};
use arrow_array::{Array, StringArray, UInt64Array};
use support::{duckdb, monitor, monitor_command, real_python, verify};

fn burst_script() -> String {
    format!("{}/../tests/agents/burst.py", env!("CARGO_MANIFEST_DIR"))
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `seq` of every `burst` event row in the store's journal.
fn journaled_seqs(store: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for segment in journal::segments(store).unwrap() {
        let Some(stream) =
            journal::stream_table(&segment, "events", schema::EVENTS.clone()).unwrap()
        else {
            continue;
        };
        for batch in stream {
            let seq = batch.column_by_name("seq").unwrap();
            let seq = seq.as_any().downcast_ref::<UInt64Array>().unwrap();
            let agent = batch.column_by_name("agent").unwrap();
            let agent = agent.as_any().downcast_ref::<StringArray>().unwrap();
            for row in 0..batch.num_rows() {
                if agent.value(row) == "burst" {
                    seqs.push(seq.value(row));
                }
            }
        }
    }
    seqs
}

fn parquet_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            parquet_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            found.push(path);
        }
    }
}

/// DuckDB reads every visible Parquet file of the store, one by one.
fn every_file_reads(store: &Path) {
    let mut files = Vec::new();
    parquet_files(store, &mut files);
    for file in files {
        duckdb(&format!(
            "select count(*) from read_parquet('{}')",
            file.display()
        ));
    }
}

fn kill(pid: u32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[test]
fn kill_9_during_a_burst_loses_nothing_that_was_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("evidence");
    let marker = dir.path().join("burst.pid");
    let mut monitor = monitor_command()
        .args(["run", "--agent", "burst", "--evidence"])
        .arg(&store)
        // Killed, it cannot remove its socket's directory: keep that in
        // the test's own.
        .arg("--socket-dir")
        .arg(dir.path())
        .args(["--", &real_python(), &burst_script(), "100000"])
        .arg(&marker)
        .arg("30")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the burst to start", Duration::from_secs(30), || {
        marker.exists()
    });
    let agent: u32 = fs::read_to_string(&marker).unwrap().parse().unwrap();
    // Mid-burst: the journal holds synced batches, the burst goes on. The
    // first batch may hold only the interpreter's start-up, so wait for
    // the burst's own events rather than for a time.
    wait_for("1,000 journaled events", Duration::from_secs(25), || {
        journaled_seqs(&store).len() > 1_000
    });
    kill(monitor.id());
    let status = monitor.wait().unwrap();
    kill(agent);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );

    // Whatever is visible is whole, and nothing half-written is visible.
    every_file_reads(&store);
    let journaled = journaled_seqs(&store);
    assert!(
        journaled.len() > 1_000,
        "the kill came mid-burst, after {} journaled events",
        journaled.len()
    );

    // Restarting the monitor recovers the journal before recording.
    let restart = monitor_in(&store);
    assert_eq!(restart.status, 0, "{}", restart.stderr);
    assert!(
        restart.stderr.contains("recovered"),
        "the restart says what it recovered: {}",
        restart.stderr
    );
    assert!(journal::segments(&store).unwrap().is_empty());
    every_file_reads(&store);

    let s = store.display();
    let rows = duckdb(&format!(
        "select count(*), count(distinct seq) from read_parquet('{s}/events/**/*.parquet', hive_partitioning=true) where agent = 'burst'"
    ));
    assert_eq!(
        rows,
        vec![serde_json::json!([journaled.len(), journaled.len()])],
        "every journaled event exactly once"
    );
    let seqs: BTreeSet<u64> = duckdb(&format!(
        "select seq from read_parquet('{s}/events/**/*.parquet') where agent = 'burst'"
    ))
    .iter()
    .map(|r| r[0].as_u64().unwrap())
    .collect();
    assert_eq!(seqs, journaled.into_iter().collect::<BTreeSet<_>>());
    let (code, out) = verify(&store);
    assert_eq!(code, 0, "{out}");
}

fn monitor_in(store: &Path) -> support::Run {
    monitor(
        &["--agent", "after", "--evidence", store.to_str().unwrap()],
        &["/bin/true"],
    )
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> SmallDisk {
        fs::create_dir_all(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root");
        SmallDisk { path }
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_full_disk_keeps_the_journal_records_a_gap_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path().join("small"), "2m");
    let store = disk.path.join("evidence");
    let marker = dir.path().join("burst.pid");
    let events = dir.path().join("events.jsonl");
    let mut monitor = monitor_command()
        .args(["run", "--agent", "burst", "--events"])
        .arg(&events)
        .arg("--evidence")
        .arg(&store)
        .args(["--", &real_python(), &burst_script(), "300000"])
        .arg(&marker)
        .arg("2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stderr_pipe = monitor.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr_pipe).lines() {
            let line = line.unwrap();
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // The moment the disk is full, what was journaled is still there.
    let failing = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the monitor reports the full disk");
        if line.contains("evidence storage failing") {
            break line;
        }
    };
    assert!(failing.contains("No space left on device"), "{failing}");
    let kept = journal::segments(&store).unwrap();
    assert!(!kept.is_empty(), "the journal is kept");
    let journaled: usize = kept
        .iter()
        .filter_map(|s| journal::stream_table(s, "events", schema::EVENTS.clone()).unwrap())
        .flatten()
        .map(|b| b.num_rows())
        .sum();
    assert!(journaled > 0, "journaled rows are kept when the disk fills");

    // The monitor does not crash: the agent's own status comes back.
    let status = monitor.wait().unwrap();
    let stderr = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    every_file_reads(&store);

    // With space again, recovery publishes everything that was journaled.
    disk.grow("512m");
    let recover = monitor_command()
        .arg("recover")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        recover.status.success(),
        "{}",
        String::from_utf8_lossy(&recover.stderr)
    );
    assert!(journal::segments(&store).unwrap().is_empty());

    // Every event is either in Parquet or counted in a storage gap.
    let seen = fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"seq\""))
        .count() as u64;
    let s = store.display();
    let stored = duckdb(&format!(
        "select count(*) from read_parquet('{s}/events/**/*.parquet')"
    ))[0][0]
        .as_u64()
        .unwrap();
    let gap = duckdb(&format!(
        "select coalesce(sum(count), 0)::BIGINT, count(*) from read_parquet('{s}/gaps/**/*.parquet') \
         where cause = 'storage' and lost = 'events'"
    ));
    let lost = gap[0][0].as_u64().unwrap();
    assert!(lost > 0, "the loss is recorded as a gap: {gap:?}\n{stderr}");
    assert_eq!(
        stored + lost,
        seen,
        "{stored} stored + {lost} counted lost, {seen} seen:\n{stderr}"
    );
    let (code, out) = verify(&store);
    assert_eq!(code, 0, "{out}");
}
