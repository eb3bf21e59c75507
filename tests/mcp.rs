//! End-to-end: `agent-monitor mcp-proxy` between the official MCP Python
//! SDK's client and a server written with the same SDK, under
//! `agent-monitor run`. Every `tools/call` becomes a declared tool call
//! bound to the server, the server's actions are bound to it, a call the
//! policy denies never reaches the server, and the bytes each side sends
//! arrive unchanged. Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

/// The proxy as a relay: bytes unchanged both ways, and what it refuses to
/// relay. Beside the suite's MCP scripts.
#[path = "mcp/relay.rs"]
mod relay;

use std::{
    io::Write,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{Value, json};
use support::{
    BIN, assert_privileged, duckdb_in, http_server, monitor_command, real_python, repo, run_in,
    verify,
};

/// A work directory with the test's scripts in `agent/`, deployed as an
/// agent's code is (its baseline covers `{cwd}/**/*.py`).
struct Work {
    _dir: tempfile::TempDir,
    root: PathBuf,
    agent: PathBuf,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let agent = root.join("agent");
        std::fs::create_dir(&agent).unwrap();
        for script in ["server.py", "client.py", "http_agent.py", "echo_server.py"] {
            std::fs::copy(repo().join("tests/mcp").join(script), agent.join(script)).unwrap();
        }
        Work {
            _dir: dir,
            root,
            agent,
        }
    }

    /// The default policy, with a deny rule for writes to `forbidden*`.
    fn policy(&self) -> PathBuf {
        let default =
            std::fs::read_to_string(repo().join("agent-monitor/src/policy/default.toml")).unwrap();
        let policy = self.root.join("policy.toml");
        std::fs::write(
            &policy,
            format!(
                "{default}\n[[deny]]\nname = \"forbidden-file\"\nreason = \"writes a forbidden file\"\n\
                 tool = \"write_file\"\nargs.path = \"*/forbidden*\"\n"
            ),
        )
        .unwrap();
        policy
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The calls the plans below make, and what they expect: the tools act
/// on `root`, reach the HTTP server at `port`, raise, and try a write the
/// policy denies.
fn plan(root: &Path, port: u16) -> Value {
    json!([
        ["read_file", {"path": root.join("notes.txt")}],
        ["write_file", {"path": root.join("written.txt"), "content": "hello"}],
        ["fetch", {"url": format!("http://127.0.0.1:{port}/x")}],
        ["fail", {"message": "boom"}],
        ["write_file", {"path": root.join("forbidden.txt"), "content": "never"}],
    ])
}

/// Checks what the client got and what the evidence says of the plan's
/// calls.
fn check_declared(work: &Work, store: &Path, port: u16, results: &Value) {
    let root = &work.root;
    let got: Vec<(bool, &str)> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["is_error"].as_bool().unwrap(),
                r["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(got.len(), 5, "{results}");
    assert_eq!(got[0], (false, "the notes\n"));
    assert_eq!(got[1], (false, "wrote 5 bytes"));
    assert_eq!(got[2], (false, "HTTP/1.0 200 OK"));
    assert!(got[3].0, "a tool that raises is an error: {results}");
    assert!(got[4].0, "{results}");
    assert!(
        got[4].1.starts_with(
            "agent-monitor denied this tool call: writes a forbidden file (deny rule `forbidden-file`"
        ),
        "{results}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("written.txt")).unwrap(),
        "hello"
    );
    assert!(
        !root.join("forbidden.txt").exists(),
        "a denied call never reaches the server"
    );

    // One row per call, in order, each with its MCP id.
    let calls = duckdb_in(
        store,
        &[],
        "select tool, source, mcp_request_id is not null, args, status, decision, events > 0 \
         from read_parquet('tool_calls/**/*.parquet') order by started",
    );
    // (tool, args, status, decision, whether events are bound to it): the
    // raising tool has some too, as the server reads its sources to log
    // the traceback; the denied one never ran.
    let expected = [
        (
            "read_file",
            json!({"path": root.join("notes.txt")}),
            "ok",
            "allow",
            true,
        ),
        (
            "write_file",
            json!({"path": root.join("written.txt"), "content": "hello"}),
            "ok",
            "allow",
            true,
        ),
        (
            "fetch",
            json!({"url": format!("http://127.0.0.1:{port}/x")}),
            "ok",
            "allow",
            true,
        ),
        ("fail", json!({"message": "boom"}), "error", "allow", true),
        (
            "write_file",
            json!({"path": root.join("forbidden.txt"), "content": "never"}),
            "error",
            "deny",
            false,
        ),
    ];
    let expected: Vec<Value> = expected
        .into_iter()
        .map(|(tool, args, status, decision, ran)| {
            json!([tool, "mcp", true, args.to_string(), status, decision, ran])
        })
        .collect();
    assert_eq!(calls, expected, "tool_calls");
    let ids = duckdb_in(
        store,
        &[],
        "select count(distinct mcp_request_id), count(distinct call_id), \
                (select result from read_parquet('tool_calls/**/*.parquet') where decision = 'deny') \
         from read_parquet('tool_calls/**/*.parquet')",
    );
    assert_eq!(ids, vec![json!([5, 5, "{\"denied\":true}"])]);

    // The server's actions are bound to the call that made them, declared.
    let bound = |kind: &str, condition: &str| {
        duckdb_in(
            store,
            &[],
            &format!(
                "select distinct t.tool, e.verdict from read_parquet('events/**/*.parquet') e \
                 left join read_parquet('tool_calls/**/*.parquet') t \
                   on e.session_id = t.session_id and e.tool_call_id = t.call_id \
                 where e.kind = '{kind}' and {condition}"
            ),
        )
    };
    let notes = root.join("notes.txt");
    assert_eq!(
        bound("file.open", &format!("e.path = '{}'", notes.display())),
        vec![json!(["read_file", "declared"])]
    );
    let written = root.join("written.txt");
    assert_eq!(
        bound("file.open", &format!("e.path = '{}'", written.display())),
        vec![json!(["write_file", "declared"])]
    );
    assert_eq!(
        bound("net.connect", &format!("e.port = {port}")),
        vec![json!(["fetch", "declared"])]
    );
    let (code, out) = verify(store);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_sdk_client_drives_a_stdio_server_through_the_proxy_and_every_call_is_declared() {
    let work = Work::new();
    std::fs::write(work.root.join("notes.txt"), "the notes\n").unwrap();
    let port = http_server();
    let store = work.root.join("evidence");
    let policy = work.policy();
    let python = real_python();
    let plan = plan(&work.root, port).to_string();
    let (status, stdout, stderr) = run_in(
        &work.agent,
        &[],
        &[
            "--evidence",
            store.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[
            &python,
            "client.py",
            &plan,
            "stdio",
            BIN,
            "mcp-proxy",
            "--",
            &python,
            "server.py",
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    let results: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the client's results ({e}): {stdout}\n{stderr}"));
    check_declared(&work, &store, port, &results);
}

#[test]
fn the_sdk_client_drives_a_streamable_http_server_through_the_proxy_and_every_call_is_declared() {
    http_case("sse");
}

#[test]
fn responses_in_plain_json_bodies_end_the_calls_too() {
    http_case("json");
}

/// The HTTP plan, with the server answering POSTs as `sse` or `json`.
fn http_case(answers: &str) {
    let work = Work::new();
    std::fs::write(work.root.join("notes.txt"), "the notes\n").unwrap();
    let port = http_server();
    let store = work.root.join("evidence");
    let policy = work.policy();
    let plan = plan(&work.root, port).to_string();
    let (server_port, proxy_port) = (free_port(), free_port());
    let (status, stdout, stderr) = run_in(
        &work.agent,
        &[],
        &[
            "--evidence",
            store.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &[
            &real_python(),
            "http_agent.py",
            BIN,
            &plan,
            &server_port.to_string(),
            &proxy_port.to_string(),
            answers,
        ],
    );
    assert_eq!(status, 0, "{stderr}");
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the agent's report ({e}): {stdout}\n{stderr}"));
    assert_eq!(
        report["proxy_status"], 0,
        "the proxy stops cleanly on SIGTERM:\n{stderr}"
    );
    check_declared(&work, &store, port, &report["results"]);
}

#[test]
fn without_a_monitor_the_proxy_will_not_start_unless_told_to_relay_undeclared() {
    let call =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\n";
    let proxy = |extra: &[&str]| {
        let mut child = monitor_command()
            .arg("mcp-proxy")
            .args(["--socket", "/nonexistent/api.sock"])
            .args(extra)
            .args(["--", "/bin/sh", "-c", "cat; exit 3"])
            .env_remove("AGENT_MONITOR_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The proxy may have exited already: a broken pipe is its answer.
        let _ = stdin.write_all(call.as_bytes());
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (status, stdout, stderr) = proxy(&[]);
    assert_eq!(status, Some(2), "{stderr}");
    assert_eq!(stdout, "", "nothing is relayed");
    assert!(
        stderr.contains("cannot reach the monitor: connecting to /nonexistent/api.sock")
            && stderr.contains("--allow-unmonitored"),
        "{stderr}"
    );
    // Told to, it relays (the server here echoes) and exits with the
    // server's status.
    let (status, stdout, stderr) = proxy(&["--allow-unmonitored"]);
    assert_eq!(status, Some(3), "{stderr}");
    assert_eq!(stdout, call);
    assert!(stderr.contains("relaying without declaring"), "{stderr}");
}

/// A daemon with its own config, socket and evidence in `dir`.
struct Daemon {
    child: std::process::Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[evidence]\ndir = \"{0}/evidence\"\nrotate_seconds = 1\n\
                 [api]\nsocket = \"{0}/run/api.sock\"\n\
                 [capture]\nkey = \"{0}/capture.key\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let log = dir.join("daemon.log");
        let mut child = monitor_command()
            .args(["daemon", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let socket = dir.join("run/api.sock");
        for _ in 0..1200 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Daemon { child, socket, log };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the daemon never listened");
    }

    /// SIGTERM: the daemon writes what it holds and exits.
    fn stop(mut self) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "the daemon failed to stop:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

#[test]
fn a_proxy_outside_every_agent_registers_with_the_daemon_and_binds_calls_to_its_server() {
    let work = Work::new();
    // The daemon's directories outside /tmp, as its own tests keep them.
    let dir = tempfile::Builder::new()
        .prefix("am-mcp-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let daemon = Daemon::start(dir.path());
    std::fs::write(work.root.join("notes.txt"), "the notes\n").unwrap();
    let python = real_python();
    let plan = json!([["read_file", {"path": work.root.join("notes.txt")}], ["fail", {"message": "boom"}]]);
    // The client is no agent: the proxy it starts makes itself one.
    let out = Command::new(&python)
        .args(["client.py", &plan.to_string(), "stdio", BIN, "mcp-proxy"])
        .args(["--agent", "mcp-agent", "--socket"])
        .arg(&daemon.socket)
        .args(["--", &python, "server.py"])
        .current_dir(&work.agent)
        .env_remove("AGENT_MONITOR_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("agent-monitor mcp-proxy: registered as agent `mcp-agent`"),
        "{stderr}"
    );
    daemon.stop();

    let store = dir.path().join("evidence");
    let calls = duckdb_in(
        &store,
        &[],
        "select s.agent, s.source, t.tool, t.source, t.status from read_parquet('tool_calls/**/*.parquet', union_by_name=true) t \
         join read_parquet('sessions/**/*.parquet', union_by_name=true) s using (session_id) order by t.started",
    );
    assert_eq!(
        calls,
        vec![
            json!(["mcp-agent", "register", "read_file", "mcp", "ok"]),
            json!(["mcp-agent", "register", "fail", "mcp", "error"]),
        ]
    );
    let notes = work.root.join("notes.txt");
    let reads = duckdb_in(
        &store,
        &[],
        &format!(
            "select distinct e.agent, t.tool, e.verdict from read_parquet('events/**/*.parquet', union_by_name=true) e \
             join read_parquet('tool_calls/**/*.parquet', union_by_name=true) t \
               on e.session_id = t.session_id and e.tool_call_id = t.call_id \
             where e.kind = 'file.open' and e.path = '{}'",
            notes.display()
        ),
    );
    assert_eq!(reads, vec![json!(["mcp-agent", "read_file", "declared"])]);
}
