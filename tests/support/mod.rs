//! Running the real `agent-monitor` binary against real processes.
//!
//! These tests need root (or CAP_BPF + CAP_PERFMON) and kernel BTF. They
//! never skip: without them they fail and say why.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-monitor");

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Fails, saying why, when the monitor could not run for want of root or
/// kernel BTF: the privileged tests never pass by skipping.
pub fn assert_privileged(stderr: &str) {
    assert!(
        !stderr.contains("needs root") && !stderr.contains("BTF is missing"),
        "the privileged tests need root and kernel BTF; run them with `cargo xtask test` as root:\n{stderr}"
    );
}

/// What a test agent reported as JSON on stdout, and the run's stderr,
/// once the run that started it exited 0.
pub fn agent_report(out: &Output) -> (Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_privileged(&stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the agent's report ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (report, stderr)
}

/// `agent-monitor` as a test runs it. `cargo test` puts its own library
/// directories in `LD_LIBRARY_PATH`, and a workload that inherits them
/// looks for every shared library in each of them, once per CPU level
/// glibc knows (`glibc-hwcaps`): five times the opens of a plain run, and
/// how many depends on the host's CPU. The monitor needs none of them.
pub fn monitor_command() -> Command {
    let mut command = Command::new(BIN);
    command.env_remove("LD_LIBRARY_PATH");
    command
}

/// Runs `agent-monitor run EXTRA -- CMD` in `cwd` with `env`, and returns
/// its exit status, stdout and stderr.
pub fn run_in(
    cwd: &Path,
    env: &[(&str, &str)],
    extra: &[&str],
    cmd: &[&str],
) -> (i32, String, String) {
    let out = monitor_command()
        .arg("run")
        .args(extra)
        .arg("--")
        .args(cmd)
        .current_dir(cwd)
        .envs(env.iter().copied())
        .output()
        .expect("agent-monitor runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_privileged(&stderr);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

/// An HTTP server outside every agent tree, answering each request with a
/// short body; its port.
pub fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n",
            );
        }
    });
    port
}

/// One finished `agent-monitor run`.
pub struct Run {
    /// Pid of the `agent-monitor` process, the parent of the command.
    pub monitor_pid: u32,
    pub status: i32,
    /// Every JSONL line but the session's: events and loss reports.
    pub events: Vec<Value>,
    /// The `session` lines (one per run, and one per declared session).
    pub sessions: Vec<Value>,
    /// The other declared records: `message`, `tool_call`, `decision` and
    /// `alert` lines.
    pub declared: Vec<Value>,
    pub stderr: String,
}

impl Run {
    pub fn of_kind<'a>(&'a self, kind: &str) -> impl Iterator<Item = &'a Value> + 'a {
        let kind = kind.to_string();
        self.events
            .iter()
            .filter(move |e| e["kind"] == kind.as_str())
    }

    /// Exec events whose argv equals `argv`.
    pub fn execs_of(&self, argv: &[&str]) -> Vec<&Value> {
        self.of_kind("process.exec")
            .filter(|e| argv_of(e) == argv)
            .collect()
    }

    /// The single exec event with this argv; panics if there is not exactly one.
    pub fn exec_of(&self, argv: &[&str]) -> &Value {
        let found = self.execs_of(argv);
        assert_eq!(
            found.len(),
            1,
            "expected one exec of {argv:?}, found {}; events:\n{}",
            found.len(),
            self.dump()
        );
        found[0]
    }

    /// The exit event of a pid.
    pub fn exit_of(&self, pid: u64) -> &Value {
        let found: Vec<&Value> = self
            .of_kind("process.exit")
            .filter(|e| e["pid"] == pid)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one exit of pid {pid}:\n{}",
            self.dump()
        );
        found[0]
    }

    /// The pid of the process that forked `child`.
    pub fn forker_of(&self, child: u64) -> u64 {
        let found: Vec<&Value> = self
            .of_kind("process.fork")
            .filter(|e| e["child_pid"] == child)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one fork of pid {child}:\n{}",
            self.dump()
        );
        found[0]["pid"].as_u64().expect("pid is a number")
    }

    pub fn dump(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&event.to_string());
            out.push('\n');
        }
        out.push_str(&self.stderr);
        out
    }
}

pub fn argv_of(event: &Value) -> Vec<&str> {
    event["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn pid_of(event: &Value) -> u64 {
    event["pid"].as_u64().expect("pid is a number")
}

/// Runs `agent-monitor run [extra…] --events FILE -- cmd…` and collects what
/// it wrote.
pub fn monitor(extra: &[&str], cmd: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = dir.path().join("events.jsonl");
    let child = monitor_command()
        .arg("run")
        .args(extra)
        .arg("--events")
        .arg(&events)
        .arg("--")
        .args(cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent-monitor starts");
    let pid = child.id();
    finish(
        pid,
        child.wait_with_output().expect("agent-monitor runs"),
        &events,
    )
}

pub fn finish(monitor_pid: u32, output: Output, events: &Path) -> Run {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let status = output.status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(events).unwrap_or_default();
    let (records, events): (Vec<Value>, Vec<Value>) = text
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("line is not JSON ({e}): {line}"))
        })
        .partition(|v| {
            ["session", "message", "tool_call", "decision", "alert"]
                .contains(&v["kind"].as_str().unwrap_or(""))
        });
    let (sessions, declared) = records.into_iter().partition(|v| v["kind"] == "session");
    let run = Run {
        monitor_pid,
        status,
        events,
        sessions,
        declared,
        stderr,
    };
    assert_privileged(&run.stderr);
    run
}

/// The number after `N lost` in the summary line.
pub fn lost_in_summary(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" events (") && l.contains(" lost"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let before = line.split(" lost").next().expect("split yields one part");
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lost count in {line:?}"))
}

/// The interpreter behind `python3`, resolving version-manager shims.
pub fn real_python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a DuckDB query through the `duckdb` Python package (installed by
/// `cargo xtask setup`) and returns its rows as JSON.
pub fn duckdb(sql: &str) -> Vec<serde_json::Value> {
    duckdb_in(Path::new("."), &[], sql)
}

/// Runs `setup` statements then `sql` in `dir`, as a user would from the
/// evidence directory.
pub fn duckdb_in(dir: &Path, setup: &[&str], sql: &str) -> Vec<serde_json::Value> {
    let setup: String = setup
        .iter()
        .map(|s| format!("duckdb.sql({s:?})\n"))
        .collect();
    let script = format!(
        "import duckdb, json\n{setup}rows = duckdb.sql({sql:?}).fetchall()\nprint(json.dumps([list(r) for r in rows], default=str))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .current_dir(dir)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "duckdb failed (is the duckdb package installed? `cargo xtask setup` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON rows")
}

/// `agent-monitor verify DIR`: its exit status and what it printed.
pub fn verify(dir: &Path) -> (i32, String) {
    let out = Command::new(BIN).arg("verify").arg(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}
