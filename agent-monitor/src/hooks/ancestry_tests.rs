use std::{path::Path, process::Command};

use super::{agent_process, agent_process_in};

/// A /proc with one `stat` file per (pid, name, parent).
fn fake_proc(processes: &[(u32, &str, u32)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (pid, comm, ppid) in processes {
        let d = dir.path().join(pid.to_string());
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 0\n"),
        )
        .unwrap();
    }
    dir
}

#[test]
fn the_walk_goes_up_past_shells_to_the_agent() {
    let proc = fake_proc(&[
        (1, "systemd", 0),
        (100, "claude", 1),
        (200, "sh", 100),
        (300, "bash", 200),
        (400, "zsh", 1),
        (500, "python3", 400),
    ]);
    let root = proc.path();
    assert_eq!(agent_process_in(root, 300).unwrap(), 100);
    assert_eq!(agent_process_in(root, 200).unwrap(), 100);
    // A parent that is no shell is the agent itself.
    assert_eq!(agent_process_in(root, 100).unwrap(), 100);
    assert_eq!(agent_process_in(root, 500).unwrap(), 500);
    // An orphaned shell has no agent above it: the shell is taken.
    assert_eq!(agent_process_in(root, 400).unwrap(), 400);
}

#[test]
fn a_process_that_is_gone_is_an_error() {
    let proc = fake_proc(&[(200, "sh", 100)]);
    let err = agent_process_in(proc.path(), 200).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = agent_process_in(Path::new("/nonexistent-proc"), 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[test]
fn a_real_shell_leads_back_to_this_process() {
    // `; true` keeps the shell from exec'ing `sleep` in its place.
    let mut shell = Command::new("/bin/sh")
        .args(["-c", "sleep 30; true"])
        .spawn()
        .unwrap();
    let found = agent_process(shell.id());
    shell.kill().unwrap();
    shell.wait().unwrap();
    assert_eq!(found.unwrap(), std::process::id());
}
