//! End-to-end: Claude Code's hooks declare its tool calls. A fake Claude
//! Code (tests/fixtures/claude-code/fake_claude.py) runs under
//! `agent-monitor run`, runs `agent-monitor hook claude-code` through a
//! shell around each tool call with the recorded payloads, and performs
//! the tools from its own process, as Claude Code does. The evidence must
//! bind those actions to the hooked calls. Run as root (`cargo xtask
//! test`).

#[path = "support/mod.rs"]
mod support;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde_json::{Value, json};
use support::{BIN, agent_report, duckdb_in, monitor_command, real_python};

/// Claude Code's session id in every fixture.
const SESSION: &str = "2f1c6a0e-7b3d-4c59-9a8e-5d4b3c2a1f0e";
/// The `tool_use_id`s of the fixtures' calls.
const READ: &str = "toolu_01Rd7QhVw3Kp9sXbN4mYt2Lc";
const BASH: &str = "toolu_01Bs4HxTn8Wq2eRzV6kPa9Jd";
const FAILING: &str = "toolu_01Fx2MbQs7Yt5wLcR3nHe8Gv";
const WRITE: &str = "toolu_01Wr9KcLp3Zx7vTnB2qMf5Hs";
const MCP: &str = "toolu_01Mc5PwRt2Hv9nXsK7dQz4Ba";
const DENIED: &str = "toolu_01Dn6TsWq4Xm8pRkC3vLb7Ny";
/// The project directory the fixtures were written for.
const FIXTURE_PROJECT: &str = "/home/ana/project";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/claude-code")
}

/// A recorded payload, with `project` for the fixtures' project directory.
fn payload(name: &str, project: &Path) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_str(&text.replace(FIXTURE_PROJECT, project.to_str().unwrap())).unwrap()
}

/// The default policy, with the baseline docs/claude-code.md asks for and
/// a deny rule for one of the fixtures' calls.
fn policy(dir: &Path) -> PathBuf {
    let default = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/default.toml"),
    )
    .unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!(
            r#"{default}
[baseline.claude_code_hooks]
exec = ["/bin/sh", "/usr/bin/sh", "/bin/dash", "/usr/bin/dash", "/bin/bash", "/usr/bin/bash"]

[[deny]]
name = "forbidden-file"
tool = "Write"
reason = "writes the forbidden file"
args.file_path = "*/forbidden.txt"
"#
        ),
    )
    .unwrap();
    path
}

struct Work {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// Where the fake Claude Code runs from: its code, nothing else.
    agent: PathBuf,
    /// The project it works on.
    project: PathBuf,
    evidence: PathBuf,
}

fn work() -> Work {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let agent = root.join("agent");
    let project = root.join("project");
    for d in [&agent, &project] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::copy(
        fixtures().join("fake_claude.py"),
        agent.join("fake_claude.py"),
    )
    .unwrap();
    for (file, text) in [
        ("notes.txt", "the notes\n"),
        ("other.txt", "other notes\n"),
        ("outside.txt", "read with no call\n"),
    ] {
        std::fs::write(project.join(file), text).unwrap();
    }
    Work {
        evidence: root.join("evidence"),
        _dir: dir,
        root,
        agent,
        project,
    }
}

/// Runs the fake Claude Code under `agent-monitor run` with `steps` (on
/// its stdin: payloads may be longer than an argument may be), and returns
/// its report.
fn run_claude(work: &Work, steps: Value) -> Value {
    let policy = policy(&work.root);
    let hook = format!("{BIN} hook claude-code");
    let mut child = monitor_command()
        .arg("run")
        .arg("--evidence")
        .arg(&work.evidence)
        .arg("--policy")
        .arg(&policy)
        .arg("--")
        .arg(real_python())
        .arg("fake_claude.py")
        .arg(&hook)
        .arg("-")
        .current_dir(&work.agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent-monitor runs");
    let steps = steps.to_string();
    let mut stdin = child.stdin.take().unwrap();
    // Written from a thread: the fake reads it all only once it runs, and
    // the run's output must be drained meanwhile.
    let writer = std::thread::spawn(move || stdin.write_all(steps.as_bytes()));
    let out = child.wait_with_output().expect("agent-monitor runs");
    writer.join().unwrap().expect("the steps are written");
    agent_report(&out).0
}

fn query(work: &Work, sql: &str) -> Vec<Value> {
    duckdb_in(&work.evidence, &[], sql)
}

#[test]
fn claude_code_hooks_declare_bind_and_block_tool_calls() {
    let work = work();
    let p = |name: &str| payload(name, &work.project);
    let outside = work.project.join("outside.txt");
    // A Bash call that fails: its PreToolUse is the failure's payload as
    // Claude Code sent it before the tool ran.
    let failure = p("post_tool_use_failure_bash.json");
    let mut pre_failing = failure.clone();
    pre_failing["hook_event_name"] = json!("PreToolUse");
    for field in ["error", "is_interrupt"] {
        pre_failing.as_object_mut().unwrap().remove(field);
    }
    let report = run_claude(
        &work,
        json!([
            {"hook": p("user_prompt_submit.json")},
            {"tool": [p("pre_tool_use_read.json"), p("post_tool_use_read.json")]},
            {"tool": [p("pre_tool_use_bash.json"), p("post_tool_use_bash.json")]},
            {"tool": [pre_failing, failure]},
            {"tool": [p("pre_tool_use_write.json"), p("post_tool_use_write.json")]},
            {"tool": [p("pre_tool_use_mcp.json"), p("post_tool_use_mcp.json")]},
            {"tool": [p("pre_tool_use_write_denied.json"), null]},
            {"outside": outside},
            {"tool": [
                p("pre_tool_use_bash_without_tool_use_id.json"),
                p("post_tool_use_bash_without_tool_use_id.json"),
            ]},
            {"hook": p("session_end.json")},
        ]),
    );

    // Every hook went through silently but the denied one, which blocked
    // with its reason on stderr, and its tool did not run.
    for hook in report["hooks"].as_array().unwrap() {
        if hook["tool_use_id"] == DENIED {
            assert_eq!(hook["status"], 2, "{hook}");
            let stderr = hook["stderr"].as_str().unwrap();
            assert!(
                stderr.contains("deny.forbidden-file")
                    && stderr.contains("writes the forbidden file"),
                "{stderr}"
            );
        } else {
            assert_eq!(
                (&hook["status"], &hook["stderr"]),
                (&json!(0), &json!("")),
                "{hook}"
            );
        }
    }
    assert_eq!(report["hooks"].as_array().unwrap().len(), 15, "{report}");
    assert!(!report["ran"].as_array().unwrap().contains(&json!(DENIED)));
    assert!(!work.project.join("forbidden.txt").exists());

    // One row per call, in Claude Code's session, declared by the hook.
    let calls = query(
        &work,
        "select call_id, tool, source, tool_use_id, session_id, status, decision, rule \
         from read_parquet('tool_calls/**/*.parquet') order by started",
    );
    let expected = [
        (READ, "Read", "ok", "allow", "tools.read_file"),
        (BASH, "Bash", "ok", "allow", "tools.bash"),
        (FAILING, "Bash", "error", "allow", "tools.bash"),
        (WRITE, "Write", "ok", "allow", "tools.write_file"),
        (MCP, "mcp__fs__read_file", "ok", "allow", "tools.read_file"),
        (DENIED, "Write", "error", "deny", "deny.forbidden-file"),
    ];
    assert_eq!(calls.len(), expected.len() + 1, "{calls:#?}");
    for (row, (id, tool, status, decision, rule)) in calls.iter().zip(expected) {
        assert_eq!(
            row,
            &json!([id, tool, "hook", id, SESSION, status, decision, rule])
        );
    }
    // Without a tool_use_id, the call id is derived, and Pre and Post pair.
    let derived = calls.last().unwrap();
    assert!(
        derived[0].as_str().unwrap().starts_with("hook-"),
        "{derived}"
    );
    assert_eq!(
        derived.as_array().unwrap()[1..],
        json!(["Bash", "hook", null, SESSION, "ok", "allow", "tools.bash"])
            .as_array()
            .unwrap()[..]
    );

    // What Claude Code's process did for each call is declared, under it.
    let notes = work.project.join("notes.txt");
    let reads = query(
        &work,
        &format!(
            "select tool_call_id, verdict, session_id, exe like '%/cat' \
             from read_parquet('events/**/*.parquet') where kind = 'file.open' and path = '{}' order by seq",
            notes.display()
        ),
    );
    assert_eq!(
        reads,
        [
            json!([READ, "declared", SESSION, false]),
            json!([BASH, "declared", SESSION, true]),
            json!([MCP, "declared", SESSION, false]),
        ]
    );
    let summary = work.project.join("summary.md");
    let writes = query(
        &work,
        &format!(
            "select distinct tool_call_id, verdict from read_parquet('events/**/*.parquet') where path = '{}'",
            summary.display()
        ),
    );
    assert_eq!(writes, [json!([WRITE, "declared"])]);
    // Each Bash command's `cat`, a child of Claude Code's, is its call's.
    let cat = query(
        &work,
        "select tool_call_id, verdict from read_parquet('events/**/*.parquet') \
         where kind = 'process.exec' and filename like '%/cat' order by seq",
    );
    assert_eq!(
        cat,
        [json!([BASH, "declared"]), json!([FAILING, "declared"])]
    );
    // The denied Write was never attempted.
    let forbidden = query(
        &work,
        "select count(*) from read_parquet('events/**/*.parquet') where path like '%/forbidden.txt'",
    );
    assert_eq!(forbidden, [json!([0])]);

    // The one thing done outside every hooked call is undeclared, and
    // nothing else is: the hooks' own processes are the monitor's, the
    // shell Claude Code runs them through is the baseline's.
    let undeclared = query(
        &work,
        "select kind, path, tool_call_id from read_parquet('events/**/*.parquet') where verdict = 'undeclared'",
    );
    assert_eq!(
        undeclared,
        [json!(["file.open", outside.to_str().unwrap(), null])]
    );

    // The prompt, in Claude Code's session, which SessionEnd ended; it
    // hangs under the run's session.
    let prompts = query(
        &work,
        "select role, text, session_id from read_parquet('messages/**/*.parquet')",
    );
    assert_eq!(
        prompts,
        [json!([
            "prompt",
            "Summarise notes.txt into summary.md",
            SESSION
        ])]
    );
    let sessions = query(
        &work,
        &format!(
            "select c.parent_session_id = r.session_id, c.ended < r.ended \
             from read_parquet('sessions/**/*.parquet') c, read_parquet('sessions/**/*.parquet') r \
             where c.session_id = '{SESSION}' and r.source = 'run'"
        ),
    );
    assert_eq!(sessions, [json!([true, true])]);
}

#[test]
fn parallel_calls_bound_to_one_process_are_told_apart_by_their_envelopes() {
    let work = work();
    let p = |name: &str| payload(name, &work.project);
    // A second Read, of another file, made at the same time as the first.
    let other = work.project.join("other.txt");
    let mut pre_other = p("pre_tool_use_read.json");
    pre_other["tool_use_id"] = json!("toolu_01Ot3VzKq8Rm5sWyP2nLc6Xd");
    pre_other["tool_input"]["file_path"] = json!(other);
    let mut post_other = p("post_tool_use_read.json");
    post_other["tool_use_id"] = pre_other["tool_use_id"].clone();
    post_other["tool_input"] = pre_other["tool_input"].clone();
    post_other["tool_response"]["file"]["filePath"] = json!(other);
    let report = run_claude(
        &work,
        json!([{"parallel": [
            [p("pre_tool_use_read.json"), p("post_tool_use_read.json")],
            [pre_other, post_other],
        ]}]),
    );
    for hook in report["hooks"].as_array().unwrap() {
        assert_eq!(
            (&hook["status"], &hook["stderr"]),
            (&json!(0), &json!("")),
            "{hook}"
        );
    }

    // Both calls were open while Claude Code read both files; each read is
    // the call that named its file.
    let reads = query(
        &work,
        &format!(
            "select regexp_extract(path, '[a-z]+\\.txt$'), tool_call_id, verdict \
             from read_parquet('events/**/*.parquet') where kind = 'file.open' and path like '{}/%' order by seq",
            work.project.display()
        ),
    );
    assert_eq!(
        reads,
        [
            json!(["notes.txt", READ, "declared"]),
            json!(["other.txt", "toolu_01Ot3VzKq8Rm5sWyP2nLc6Xd", "declared"]),
        ]
    );
    let overlap = query(
        &work,
        "select count(*) from read_parquet('tool_calls/**/*.parquet') x \
         join read_parquet('tool_calls/**/*.parquet') y \
         on x.call_id < y.call_id and x.started < y.ended and y.started < x.ended \
         where x.status = 'ok' and y.status = 'ok'",
    );
    assert_eq!(overlap, [json!([1])]);
}

#[test]
fn a_response_too_large_for_a_line_still_ends_its_call() {
    let work = work();
    let p = |name: &str| payload(name, &work.project);
    // A Read whose response is 100,000 short strings: more than a request
    // line holds, with no string long enough to be worth cutting.
    let mut post = p("post_tool_use_read.json");
    let lines: Vec<String> = (0..100_000).map(|i| format!("line {i}")).collect();
    post["tool_response"]["file"]["lines"] = json!(lines);
    let report = run_claude(
        &work,
        json!([
            {"tool": [p("pre_tool_use_read.json"), post]},
            {"hook": p("session_end.json")},
        ]),
    );
    for hook in report["hooks"].as_array().unwrap() {
        assert_eq!(
            (&hook["status"], &hook["stderr"]),
            (&json!(0), &json!("")),
            "{hook}"
        );
    }
    // Its PostToolUse ended it, with what was cut in place of the result:
    // not left open, binding Claude Code's process, until SessionEnd.
    let calls = query(
        &work,
        "select call_id, status, json_extract(result, '$.cut')::boolean, \
         json_extract(result, '$.bytes')::bigint > 1048576 \
         from read_parquet('tool_calls/**/*.parquet')",
    );
    assert_eq!(calls, [json!([READ, "ok", true, true])]);
}

/// Runs the hook outside any monitor with `stdin`, and returns its exit
/// status and stderr.
fn hook_alone(extra: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = monitor_command()
        .args([
            "hook",
            "claude-code",
            "--socket",
            "/nonexistent/agent-monitor.sock",
        ])
        .args(extra)
        .env_remove("AGENT_MONITOR_SOCKET")
        .env_remove("AGENT_MONITOR_SESSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty(), "the hook prints nothing on stdout");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_monitor_the_hook_fails_open_unless_told_to_fail_closed() {
    let pre = std::fs::read(fixtures().join("pre_tool_use_bash.json")).unwrap();
    let (status, stderr) = hook_alone(&[], &pre);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "agent-monitor: tool call not recorded (connecting to /nonexistent/agent-monitor.sock:"
        ),
        "{stderr}"
    );
    let (status, stderr) = hook_alone(&["--fail-closed"], &pre);
    assert_eq!(status, 2, "a blocked call: {stderr}");
    assert!(stderr.contains("blocked by --fail-closed"), "{stderr}");
    // What cannot be blocked is a non-blocking error.
    let post = std::fs::read(fixtures().join("post_tool_use_bash.json")).unwrap();
    assert_eq!(hook_alone(&["--fail-closed"], &post).0, 1);
    // An event with nothing to declare does not need the monitor.
    let start = std::fs::read(fixtures().join("session_start.json")).unwrap();
    assert_eq!(hook_alone(&["--fail-closed"], &start), (0, String::new()));
}

#[test]
fn bad_input_is_a_non_blocking_error() {
    for (input, message) in [
        (&b"{\"hook_event_name\": "[..], "the hook input is not JSON"),
        (b"[]", "the hook input is not a JSON object"),
        (
            br#"{"hook_event_name":"PreToolUse","session_id":"s","tool_name":"Bash"}"#,
            "the hook input has no `tool_input`",
        ),
    ] {
        let (status, stderr) = hook_alone(&["--fail-closed"], input);
        assert_eq!(status, 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("agent-monitor hook claude-code: {message}")),
            "{stderr}"
        );
    }
}
