//! End-to-end: on a real multi-process workload, the monitor sees exactly
//! the file and socket syscalls that `strace -f` sees.
//!
//! One run gives both views: `agent-monitor run -- strace -f -o FILE git …`.
//! The traced processes have the same pids for both tracers; strace's own
//! syscalls (its pid) are left out of the monitor's side.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use serde_json::Value;
use support::{monitor, pid_of};

/// The syscalls compared: every file and socket-setup syscall the monitor
/// hooks that strace 6.1 knows. Datagram sends and DNS receives are left
/// out: the monitor reports those only for datagram sockets and port 53.
const SYSCALLS: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "mkdir",
    "mkdirat",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "ftruncate",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
];

const WORKLOAD: &str = r#"
set -e
export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1
mkdir -p src/nested
for i in 1 2 3; do echo "file $i" > src/nested/f$i.txt; done
ln -s nested/f1.txt src/link
/usr/bin/git init -q .
/usr/bin/git add .
/usr/bin/git -c user.name=t -c user.email=t@example.invalid commit -q -m first
echo more >> src/nested/f2.txt
/usr/bin/git rm -q --cached src/nested/f3.txt
/usr/bin/git -c user.name=t -c user.email=t@example.invalid commit -q -am second
"#;

/// (pid, syscall, first string argument, result) → how many times.
type Calls = BTreeMap<(u64, String, String, String), usize>;

#[test]
fn a_git_workload_matches_strace() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let script = format!("cd {} && {WORKLOAD}", work.display());
    compare_with_strace(&work, &["/bin/sh", "-c", &script], 100);
}

#[test]
fn a_python_network_workload_matches_strace() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let agent = format!(
        "{}/../tests/agents/net_actions.py",
        env!("CARGO_MANIFEST_DIR")
    );
    compare_with_strace(&work, &[&support::real_python(), &agent], 5);
}

/// Runs `command` under strace under the monitor, and asserts that both saw
/// the same calls, at least `min_calls` of them.
fn compare_with_strace(work: &std::path::Path, command: &[&str], min_calls: usize) {
    let trace = work.join("strace.out");
    let filter = format!("trace={}", SYSCALLS.join(","));
    let mut argv = vec![
        "/usr/bin/strace",
        "-f",
        "-qq",
        "-s",
        "4096",
        "-e",
        &filter,
        "-e",
        "signal=none",
        "-o",
        trace.to_str().unwrap(),
    ];
    argv.extend_from_slice(command);
    let run = monitor(&[], &argv);
    assert_eq!(run.status, 0, "{}", run.dump());

    let strace_pid = pid_of(run.exec_of(&argv));
    let ours = monitor_calls(&run.events, strace_pid);
    let theirs = strace_calls(&std::fs::read_to_string(&trace).unwrap());
    let total: usize = theirs.values().sum();
    assert!(total >= min_calls, "the workload makes many calls: {total}");

    let missing: Vec<_> = theirs
        .iter()
        .filter(|(k, n)| ours.get(*k) != Some(n))
        .collect();
    let extra: Vec<_> = ours
        .iter()
        .filter(|(k, n)| theirs.get(*k) != Some(n))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "strace saw, the monitor did not ({}):\n{:#?}\nthe monitor saw, strace did not ({}):\n{:#?}",
        missing.len(),
        &missing[..missing.len().min(40)],
        extra.len(),
        &extra[..extra.len().min(40)],
    );
}

fn monitor_calls(events: &[Value], skip_pid: u64) -> Calls {
    let mut calls = Calls::new();
    for event in events {
        let Some(syscall) = event["syscall"].as_str() else {
            continue;
        };
        if !SYSCALLS.contains(&syscall) || pid_of(event) == skip_pid {
            continue;
        }
        let result = event["result"].as_i64().unwrap();
        let result = match event["error"].as_str() {
            Some(errno) => errno.to_string(),
            None => result.to_string(),
        };
        // What strace shows as the first quoted argument: the path, or the
        // address inside a sockaddr.
        let arg = event["raw_path"]
            .as_str()
            .or(event["unix_path"].as_str())
            .or(event["addr"].as_str())
            .unwrap_or_default()
            .to_string();
        *calls
            .entry((pid_of(event), syscall.to_string(), arg, result))
            .or_default() += 1;
    }
    calls
}

/// Parses `strace -f -o` output, joining `<unfinished ...>` lines with their
/// `<... resumed>` halves.
fn strace_calls(text: &str) -> Calls {
    let mut calls = Calls::new();
    let mut pending: BTreeMap<u64, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.trim_start().split_once(' ') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        if rest.starts_with("+++") || rest.starts_with("---") {
            continue;
        }
        let whole = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_string());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let tail = tail.split_once(" resumed>").map_or("", |(_, t)| t);
            format!("{}{}", pending.remove(&pid).unwrap_or_default(), tail)
        } else {
            rest.to_string()
        };
        let Some((name, args)) = whole.split_once('(') else {
            continue;
        };
        // strace pads the result into a column: `mkdir("a", 0777)    = 0`.
        let Some((_, ret)) = whole.rsplit_once(" = ") else {
            continue;
        };
        let mut ret = ret.split_whitespace();
        let result = match ret.next() {
            Some("-1") => ret.next().unwrap_or("?").to_string(),
            Some(value) => value.to_string(),
            None => continue,
        };
        *calls
            .entry((pid, name.to_string(), first_string(args), result))
            .or_default() += 1;
    }
    calls
}

/// The first double-quoted string argument, unescaped (strace escapes `"`
/// and `\`; the workload's paths have nothing else to escape).
fn first_string(args: &str) -> String {
    let Some(start) = args.find('"') else {
        return String::new();
    };
    let mut out = String::new();
    let mut chars = args[start + 1..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    out
}
