//! End-to-end: the process probes against real process trees. Run as root with one test thread (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, Stdio};

use support::{argv_of, lost_in_summary, monitor, pid_of};

/// Forks, execs, double-forks a daemonised child that outlives the script,
/// and exits 3.
const TREE_SCRIPT: &str = r#"
/bin/true first
( setsid /bin/sh -c 'sleep 1; exec /bin/echo daemon-done' >/dev/null 2>&1 & )
/bin/ls / >/dev/null
exit 3
"#;

#[test]
fn whole_tree_with_argv_parents_and_exit_codes() {
    let run = monitor(&["--agent", "tree"], &["/bin/sh", "-c", TREE_SCRIPT]);
    assert_eq!(
        run.status,
        3,
        "run exits with the command's status:\n{}",
        run.dump()
    );

    let root = run.exec_of(&["/bin/sh", "-c", TREE_SCRIPT]);
    let root_pid = pid_of(root);
    assert_eq!(root["filename"], "/bin/sh");
    assert_eq!(root["agent"], "tree");
    assert_eq!(
        root["ppid"], run.monitor_pid,
        "the monitor launched the script"
    );
    assert_eq!(run.exit_of(root_pid)["exit_code"], 3);

    for argv in [&["/bin/true", "first"][..], &["/bin/ls", "/"][..]] {
        let exec = run.exec_of(argv);
        let pid = pid_of(exec);
        assert_eq!(
            run.forker_of(pid),
            root_pid,
            "{argv:?} is a child of the script"
        );
        assert_eq!(exec["ppid"], root_pid);
        assert_eq!(exec["filename"], argv[0]);
        assert_eq!(exec["exe"], argv[0]);
        assert_eq!(exec["argv_truncated"], false);
        let exit = run.exit_of(pid);
        assert_eq!(exit["exit_code"], 0);
        assert_eq!(exit["signal"], serde_json::Value::Null);
    }

    // The daemon: script → subshell → setsid → sh -c → sleep, and sh execs
    // echo after the script has exited. `run` lingers for it.
    let setsid = run.exec_of(&[
        "setsid",
        "/bin/sh",
        "-c",
        "sleep 1; exec /bin/echo daemon-done",
    ]);
    let daemon_pid = pid_of(setsid);
    let subshell = run.forker_of(daemon_pid);
    assert_eq!(
        run.forker_of(subshell),
        root_pid,
        "the subshell is the script's child"
    );
    let sh = run.exec_of(&["/bin/sh", "-c", "sleep 1; exec /bin/echo daemon-done"]);
    assert_eq!(
        pid_of(sh),
        daemon_pid,
        "setsid execs sh in the same process"
    );
    let sleep = run.exec_of(&["sleep", "1"]);
    assert_eq!(run.forker_of(pid_of(sleep)), daemon_pid);
    let echo = run.exec_of(&["/bin/echo", "daemon-done"]);
    assert_eq!(pid_of(echo), daemon_pid);
    assert_ne!(
        echo["ppid"], subshell,
        "the daemon was reparented when the subshell exited"
    );
    // Syscall events take the parent from the same cache as exec events:
    // echo's own opens (its libraries) name the new parent too.
    let echo_opens: Vec<_> = run
        .of_kind("file.open")
        .filter(|e| pid_of(e) == daemon_pid && e["ts"].as_str() > echo["ts"].as_str())
        .collect();
    assert!(
        !echo_opens.is_empty(),
        "echo opened nothing:\n{}",
        run.dump()
    );
    for open in echo_opens {
        assert_eq!(open["ppid"], echo["ppid"], "{open}");
    }
    assert_eq!(run.exit_of(daemon_pid)["exit_code"], 0);
    assert!(
        run.exit_of(daemon_pid)["ts"].as_str() > run.exit_of(root_pid)["ts"].as_str(),
        "the daemon outlived the script"
    );

    // Every event belongs to the tree, and every seq appears once, in order.
    let seqs: Vec<u64> = run
        .events
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(lost_in_summary(&run.stderr), 0, "{}", run.stderr);

    // One session for the run, and every event is attributed to it.
    assert_eq!(run.sessions.len(), 1, "{:?}", run.sessions);
    let session = &run.sessions[0];
    assert_eq!(session["source"], "run");
    assert_eq!(session["pid"].as_u64(), Some(root_pid));
    let id = session["session_id"].as_str().unwrap();
    assert!(run.events.iter().all(|e| e["session_id"] == id));
}

#[test]
fn a_burst_of_one_thousand_children_loses_nothing() {
    let script = "i=0; while [ $i -lt 1000 ]; do /bin/true burst; i=$((i+1)); done";
    let run = monitor(&[], &["/bin/sh", "-c", script]);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let execs = run.execs_of(&["/bin/true", "burst"]);
    assert_eq!(execs.len(), 1000, "{}", run.stderr);
    let mut pids: Vec<u64> = execs.iter().map(|e| pid_of(e)).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 1000, "every child is its own process");
    // One pass over the events: looking each pid up would be quadratic.
    let exits: std::collections::HashMap<u64, &serde_json::Value> = run
        .of_kind("process.exit")
        .map(|e| (pid_of(e), &e["exit_code"]))
        .collect();
    for pid in &pids {
        assert_eq!(
            exits.get(pid).copied(),
            Some(&serde_json::json!(0)),
            "exit of {pid}"
        );
    }
    assert_eq!(lost_in_summary(&run.stderr), 0, "{}", run.stderr);
    assert!(run.of_kind("monitor.loss").next().is_none());
}

#[test]
fn a_busy_unrelated_process_is_not_recorded() {
    let marker = format!("unrelated-{}", std::process::id());
    let busy_script = format!("while :; do /bin/echo {marker} >/dev/null; done");
    let mut busy = Command::new("/bin/sh")
        .args(["-c", &busy_script])
        .stdout(Stdio::null())
        .spawn()
        .expect("busy loop starts");
    let run = monitor(
        &[],
        &[
            "/bin/sh",
            "-c",
            "for i in 1 2 3 4 5; do /bin/sleep 0.05; done",
        ],
    );
    busy.kill().expect("busy loop stops");
    busy.wait().expect("busy loop reaped");

    assert_eq!(run.status, 0, "{}", run.stderr);
    assert_eq!(run.execs_of(&["/bin/sleep", "0.05"]).len(), 5);
    let busy_pid = u64::from(busy.id());
    for event in &run.events {
        assert_ne!(event["pid"], busy_pid, "busy loop recorded: {event}");
        assert_ne!(event["ppid"], busy_pid, "busy loop child recorded: {event}");
        assert!(
            !argv_of(event).contains(&marker.as_str()),
            "busy loop child recorded: {event}"
        );
    }
}

#[test]
fn argv_is_complete_up_to_the_bound_and_flagged_beyond_it() {
    // 32 arguments of 256 bytes: the documented minimum, complete.
    let long: Vec<String> = (0..32).map(|i| format!("{i:0>256}")).collect();
    let mut argv = vec!["/bin/echo".to_string()];
    argv.extend(long.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let run = monitor(&[], &argv);
    assert_eq!(run.status, 0, "{}", run.stderr);
    let exec = run.exec_of(&argv);
    assert_eq!(exec["argv_truncated"], false);

    // 100 arguments of 256 bytes: more than the 16 KiB copied.
    let many: Vec<String> = (0..100).map(|i| format!("{i:x>256}")).collect();
    let mut argv = vec!["/bin/echo".to_string()];
    argv.extend(many.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let run = monitor(&[], &argv);
    let exec = run
        .of_kind("process.exec")
        .find(|e| e["argv_truncated"] == true)
        .unwrap_or_else(|| panic!("no truncated exec:\n{}", run.dump()));
    let seen = argv_of(exec);
    // 16,384 bytes hold "/bin/echo\0" and 63 whole arguments of 257 bytes.
    assert_eq!(
        seen.len(),
        65,
        "63 whole arguments and a cut one after the program"
    );
    assert_eq!(&seen[..64], &argv[..64]);
    assert!(argv[64].starts_with(seen[64]) && seen[64].len() < 256);
}

#[test]
fn a_multithreaded_process_exits_once_and_its_threads_are_not_forks() {
    let script = "import sys, threading\n\
        ts = [threading.Thread(target=lambda: None) for _ in range(4)]\n\
        [t.start() for t in ts]\n\
        [t.join() for t in ts]\n\
        sys.exit(5)";
    let python = support::real_python();
    let run = monitor(&[], &[&python, "-c", script]);
    assert_eq!(run.status, 5, "{}", run.stderr);
    let root = run.exec_of(&[&python, "-c", script]);
    assert_eq!(run.exit_of(pid_of(root))["exit_code"], 5);
    assert_eq!(
        run.of_kind("process.fork")
            .filter(|e| e["pid"] == pid_of(root))
            .count(),
        0,
        "threads are not processes:\n{}",
        run.dump()
    );
}
