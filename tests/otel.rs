//! End-to-end: an agent instrumented with the OpenTelemetry GenAI
//! conventions, and nothing of the monitor's, exports its spans to the
//! OTLP receiver of `agent-monitor run --otlp`; its tool calls are
//! declared after the fact and its actions judged by them. Run as root
//! (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::{
    net::TcpListener,
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use support::{agent_report, duckdb_in, http_server, monitor_command, real_python, repo, verify};

/// The receiver's port, from the line `run` prints when it listens.
fn receiver_port(stderr: &str) -> u16 {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("agent-monitor: OTLP receiver on http://"))
        .unwrap_or_else(|| panic!("no receiver line in:\n{stderr}"));
    line.rsplit(':').next().unwrap().parse().unwrap()
}

/// WORK/data/notes.txt, WORK/secret.txt and the agent in WORK/agent.
fn workspace(work: &Path) -> (PathBuf, PathBuf) {
    let data = work.join("data");
    let agent = work.join("agent");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&agent).unwrap();
    std::fs::write(data.join("notes.txt"), "the notes\n").unwrap();
    std::fs::write(work.join("secret.txt"), "s3cr3t\n").unwrap();
    std::fs::copy(
        repo().join("tests/agents/otel_agent.py"),
        agent.join("otel_agent.py"),
    )
    .unwrap();
    (data, agent)
}

#[test]
fn genai_spans_declare_the_calls_whose_actions_they_describe() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let (data, agent) = workspace(&work);
    let port = http_server();
    let store = work.join("evidence");

    let out = monitor_command()
        .args(["run", "--otlp", "127.0.0.1:0", "--evidence"])
        .arg(&store)
        .arg("--")
        .args([&real_python(), "otel_agent.py", data.to_str().unwrap()])
        .arg(port.to_string())
        .current_dir(&agent)
        // The run tells the agent where to export, unless these are set.
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .output()
        .expect("agent-monitor runs");
    let (report, stderr) = agent_report(&out);
    assert_eq!(report["flushed"], true, "{report}");
    assert_eq!(
        report["json_export"],
        json!({"status": 200, "body": "{}"}),
        "the JSON export is taken whole"
    );
    assert!(
        stderr.contains(
            "agent-monitor: OTLP: 6 spans, 5 declared, 1 not GenAI operations, 0 refused"
        ),
        "{stderr}"
    );
    let spans = &report["spans"];
    // A span's call is named by the span: `otel-` and its id.
    let call = |name: &str| format!("otel-{}", spans[name].as_str().unwrap());

    // One row per execute_tool span, with the ids that name it elsewhere,
    // in the conversation's session.
    let calls = duckdb_in(
        &store,
        &[],
        "select call_id, tool, otel_span_id, tool_use_id \
         from read_parquet('tool_calls/**/*.parquet') order by tool_use_id",
    );
    assert_eq!(
        calls,
        vec![
            json!([call("fetch"), "fetch", spans["fetch"], "call_fetch"]),
            json!([call("list"), "list_dir", spans["list"], "call_json"]),
            json!([call("read"), "read_file", spans["read"], "call_read"]),
        ]
    );
    let common = duckdb_in(
        &store,
        &[],
        "select distinct source, status, decision, session_id from read_parquet('tool_calls/**/*.parquet')",
    );
    assert_eq!(common, vec![json!(["otel", "ok", "allow", "conv-otel-1"])]);

    // The chat spans: the prompt once, though the tool loop's second
    // round sent it again; the answer naming the calls it asked for (by
    // the model's ids, the calls' tool_use_id), and the final answer.
    let messages = duckdb_in(
        &store,
        &[],
        "select role, text, tool_call_ids, session_id from read_parquet('messages/**/*.parquet') order by ts",
    );
    assert_eq!(
        messages,
        vec![
            json!([
                "prompt",
                "Read the notes and fetch the page.",
                [],
                "conv-otel-1"
            ]),
            json!([
                "model_output",
                "I will read the notes, then fetch the page.",
                ["call_read", "call_fetch"],
                "conv-otel-1"
            ]),
            json!([
                "model_output",
                "The notes say: the notes.",
                [],
                "conv-otel-1"
            ]),
        ]
    );

    // What the tools did is declared by their spans, though the spans came
    // after it; what the agent did outside them is not.
    let judged = |kind: &str, filter: &str| {
        duckdb_in(
            &store,
            &[],
            &format!(
                "select distinct verdict, tool_call_id, rule from read_parquet('events/**/*.parquet') \
                 where kind = '{kind}' and {filter}"
            ),
        )
    };
    let notes = data.join("notes.txt");
    assert_eq!(
        judged("file.open", &format!("path = '{}'", notes.display())),
        vec![json!(["declared", call("read"), "tools.read_file"])]
    );
    assert_eq!(
        judged("net.connect", &format!("port = {port}")),
        vec![json!(["declared", call("fetch"), "tools.fetch"])]
    );
    assert_eq!(
        judged("file.open", &format!("path = '{}'", data.display())),
        vec![json!(["declared", call("list"), "tools.list_directory"])]
    );
    assert_eq!(
        judged(
            "file.open",
            &format!("path = '{}'", work.join("secret.txt").display())
        ),
        vec![json!(["undeclared", null, null])]
    );
    // Exporting to the receiver is the monitor's interface, not an action.
    let receiver = receiver_port(&stderr);
    assert_eq!(
        judged("net.connect", &format!("port = {receiver}")),
        vec![json!(["baseline", null, "monitor.otlp"])]
    );

    let (code, out) = verify(&store);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_span_of_a_call_the_agent_declared_itself_joins_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let (data, agent) = workspace(&work);
    let store = work.join("evidence");
    // The agent declares the conversation's session and the read_file call
    // under the model's id; its span, in that session, carries the same id.
    let out = monitor_command()
        .args(["run", "--otlp", "127.0.0.1:0", "--evidence"])
        .arg(&store)
        .arg("--")
        .args([&real_python(), "otel_agent.py", data.to_str().unwrap()])
        .arg(http_server().to_string())
        .arg("declare")
        .current_dir(&agent)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .output()
        .expect("agent-monitor runs");
    let (report, stderr) = agent_report(&out);
    let replies = report["replies"].as_array().unwrap();
    assert!(replies.iter().all(|r| r["ok"] == true), "{replies:?}");
    // No span refused: the span's tool.start joined the declared call.
    assert!(
        stderr.contains(
            "agent-monitor: OTLP: 6 spans, 5 declared, 1 not GenAI operations, 0 refused"
        ),
        "{stderr}"
    );
    let read = format!("otel-{}", report["spans"]["read"].as_str().unwrap());
    let calls = duckdb_in(
        &store,
        &[],
        "select call_id, source, tool_use_id, otel_span_id, session_id \
         from read_parquet('tool_calls/**/*.parquet') where tool_use_id = 'call_read'",
    );
    assert_eq!(
        calls,
        vec![json!([
            "call_read",
            "api",
            "call_read",
            report["spans"]["read"],
            "conv-otel-1"
        ])],
        "one row, the first declaration's id, the span's id joined to it ({read})"
    );
}

#[test]
fn a_non_loopback_receiver_is_refused_before_anything_runs() {
    let out = monitor_command()
        .args(["run", "--otlp", "0.0.0.0:4318", "--", "/bin/true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--otlp: 0.0.0.0:4318 is not a loopback address"),
        "{stderr}"
    );
}

/// A daemon on a config of its own in `dir`, with the receiver on.
fn start_daemon(dir: &Path, otlp_port: u16) -> std::process::Child {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[evidence]\ndir = \"{0}/evidence\"\n[api]\nsocket = \"{0}/run/api.sock\"\n\
             [capture]\nkey = \"{0}/capture.key\"\n\
             [otel]\nlisten = \"127.0.0.1:{otlp_port}\"\ngrace = \"20s\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let mut daemon = monitor_command()
        .args(["daemon", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(dir.join("run/api.sock")).is_err() {
        let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
        assert!(
            daemon.try_wait().unwrap().is_none() && Instant::now() < deadline,
            "the daemon did not listen:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

#[test]
fn the_daemon_s_receiver_declares_the_calls_of_the_agents_it_monitors() {
    let dir = tempfile::Builder::new()
        .prefix("am-otel-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let work = dir.path().canonicalize().unwrap();
    let (data, agent) = workspace(&work);
    let otlp_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = start_daemon(&work, otlp_port);
    // `run` hands the agent to the daemon, which tells it nothing of the
    // receiver: the agent's own configuration does. Its first span goes
    // out before its work: from then on its undeclared actions wait for
    // spans.
    let out = monitor_command()
        .args(["run", "--agent", "otel-agent", "--daemon-socket"])
        .arg(work.join("run/api.sock"))
        .arg("--")
        .args([&real_python(), "otel_agent.py", data.to_str().unwrap()])
        .arg(http_server().to_string())
        .arg("early")
        .current_dir(&agent)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .output()
        .unwrap();
    // SAFETY: kill has no memory preconditions; the daemon is our child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let stopped = daemon.wait().unwrap();
    let log = std::fs::read_to_string(work.join("daemon.log")).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stopped.success(), "{log}");
    assert!(
        log.contains("OTLP receiver stopped spans=7 declared=6 ignored=1 refused=0"),
        "{log}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let call = |name: &str| format!("otel-{}", report["spans"][name].as_str().unwrap());
    let store = work.join("evidence");
    let calls = duckdb_in(
        &store,
        &[],
        "select call_id, tool_use_id, t.source, s.agent from read_parquet('tool_calls/**/*.parquet') t \
         join read_parquet('sessions/**/*.parquet') s using (session_id) order by tool_use_id",
    );
    assert_eq!(
        calls,
        vec![
            json!([call("fetch"), "call_fetch", "otel", "otel-agent"]),
            json!([call("list"), "call_json", "otel", "otel-agent"]),
            json!([call("now"), "call_now", "otel", "otel-agent"]),
            json!([call("read"), "call_read", "otel", "otel-agent"]),
        ]
    );
    let reads = duckdb_in(
        &store,
        &[],
        &format!(
            "select path, verdict, tool_call_id from read_parquet('events/**/*.parquet') \
             where kind = 'file.open' and path in ('{}', '{}') order by path",
            data.join("notes.txt").display(),
            work.join("secret.txt").display()
        ),
    );
    assert_eq!(
        reads,
        vec![
            json!([data.join("notes.txt"), "declared", call("read")]),
            json!([work.join("secret.txt"), "undeclared", null]),
        ]
    );
}
