//! End-to-end: `agent-monitor run` as a command: exit statuses, signals,
//! errors, loss reporting and the tracefs mount. Run as root with one test
//! thread (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{lost_in_summary, monitor, pid_of};

#[test]
fn killed_command_gives_128_plus_signal() {
    let run = monitor(&[], &["/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(run.status, 137, "{}", run.stderr);
    let root = run.exec_of(&["/bin/sh", "-c", "kill -9 $$"]);
    let exit = run.exit_of(pid_of(root));
    assert_eq!(exit["signal"], 9);
    assert_eq!(exit["exit_code"], serde_json::Value::Null);
}

#[test]
fn sigterm_is_forwarded_and_the_run_finishes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 7' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let child = Command::new(support::BIN)
        .args(["run", "--events"])
        .arg(&events)
        .args(["--", "/bin/sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: plain kill of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    let run = support::finish(pid, output, &events);
    assert_eq!(
        run.status,
        7,
        "the command's trap decides the status:\n{}",
        run.dump()
    );
    let root = run.exec_of(&["/bin/sh", "-c", &script]);
    assert_eq!(run.exit_of(pid_of(root))["exit_code"], 7);
    assert!(
        run.stderr.contains("agent-monitor: agent"),
        "summary printed:\n{}",
        run.stderr
    );
}

#[test]
fn a_missing_command_exits_127_with_one_line() {
    let run = monitor(&[], &["/nonexistent/agent"]);
    assert_eq!(run.status, 127);
    assert_eq!(
        run.stderr.trim(),
        "agent-monitor: /nonexistent/agent: command not found"
    );
}

#[test]
fn without_privileges_the_error_says_what_is_missing() {
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(support::BIN)
        .args(["run", "--", "/bin/true"])
        .output()
        .expect("setpriv (util-linux) runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("needs root, or the capabilities CAP_BPF and CAP_PERFMON"),
        "{stderr}"
    );
}

#[test]
fn events_lost_while_the_reader_is_stopped_are_counted_and_reported() {
    // The command stops the monitor (its parent), execs 1,000 children with
    // 4 KiB of arguments each into a 1 MiB ring, and lets it go on.
    let script = r#"
        pad=$(head -c 4000 /dev/zero | tr '\0' x)
        kill -STOP $PPID
        i=0; while [ $i -lt 1000 ]; do /bin/true lossy "$pad"; i=$((i+1)); done
        kill -CONT $PPID
    "#;
    let run = monitor(&["--ring-mib", "1"], &["/bin/sh", "-c", script]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let lost = lost_in_summary(&run.stderr);
    assert!(
        lost > 0,
        "a 1 MiB ring cannot hold 4 MB of execs:\n{}",
        run.stderr
    );
    let reported: u64 = run
        .of_kind("monitor.loss")
        .filter(|e| e["lost"] == "events")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, lost, "every lost event is in the output as well");
    let seen = run
        .of_kind("process.exec")
        .filter(|e| support::argv_of(e).get(1) == Some(&"lossy"))
        .count() as u64;
    assert!(seen < 1000, "some execs were lost");
    // Each /bin/true costs a fork, an exec and an exit: all lost ones are
    // among them, so at least the missing execs were counted.
    assert!(
        lost >= 1000 - seen,
        "lost {lost}, missing execs {}",
        1000 - seen
    );
}

#[test]
fn tracefs_is_mounted_when_missing() {
    let tracefs = std::path::Path::new("/sys/kernel/tracing/events");
    if tracefs.exists() {
        let status = Command::new("umount")
            .arg("/sys/kernel/tracing")
            .status()
            .unwrap();
        assert!(status.success(), "umount /sys/kernel/tracing");
    }
    assert!(!tracefs.exists());
    let run = monitor(&[], &["/bin/true"]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(tracefs.exists(), "the monitor mounted tracefs");
}

#[test]
fn descendants_outliving_the_linger_are_named_in_the_summary() {
    let run = monitor(
        &["--linger", "1"],
        &["/bin/sh", "-c", "(setsid /bin/sleep 3 &); exit 0"],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    let sleep = run.exec_of(&["/bin/sleep", "3"]);
    let pid = pid_of(sleep);
    assert!(
        run.stderr.contains(&format!(
            "1 descendant still running, no longer recorded: {pid} (/bin/sleep)"
        )),
        "{}",
        run.stderr
    );
    assert!(run.of_kind("process.exit").all(|e| pid_of(e) != pid));
    // SAFETY: plain kill of the leftover sleep.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

#[test]
fn probe_stats_report_what_each_program_cost() {
    let run = monitor(
        &["--probe-stats"],
        &["/bin/sh", "-c", "cat /etc/hostname >/dev/null"],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("agent-monitor: probe costs: "))
        .unwrap_or_else(|| panic!("no probe costs in:\n{}", run.stderr));
    // The programs run for every process on the host, so the counts are at
    // least what this command did: two execs (the shell's own and cat's).
    let runs = |program: &str| -> u64 {
        let at = line
            .find(&format!("{program} "))
            .unwrap_or_else(|| panic!("no {program} in {line}"));
        line[at + program.len() + 1..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no run count for {program} in {line}"))
    };
    assert!(runs("sched_process_exec") >= 2, "{line}");
    assert!(runs("sys_exit") > 0, "{line}");
    assert!(line.contains(" ns each"), "{line}");
}
