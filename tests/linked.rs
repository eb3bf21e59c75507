//! End-to-end: one tool call that three adapters see, Claude Code's hook,
//! the MCP proxy in front of the server that runs it, and an
//! OpenTelemetry span around it, is one call and one row, and what the MCP
//! server does for it is bound to it. Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{BIN, agent_report, duckdb_in, monitor_command, real_python, repo};

const TOOL_USE_ID: &str = "toolu_01LinkedCall";

/// The default policy, with the shell Claude Code runs its hooks through
/// and the MCP server's start as the runtime's (docs/claude-code.md,
/// docs/mcp.md).
fn policy(dir: &Path) -> PathBuf {
    let default =
        std::fs::read_to_string(repo().join("agent-monitor/src/policy/default.toml")).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "{default}\n[baseline.claude_code_hooks]\nexec = [\"/bin/sh\", \"/usr/bin/sh\", \"/bin/dash\", \"/usr/bin/dash\"]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_hook_an_mcp_proxy_and_a_span_declare_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let data = work.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("notes.txt"), "linked notes\n").unwrap();
    let store = work.join("evidence");
    let out = monitor_command()
        .args(["run", "--otlp", "127.0.0.1:0", "--evidence"])
        .arg(&store)
        .arg("--policy")
        .arg(policy(&work))
        .arg("--")
        .arg(real_python())
        .arg(repo().join("tests/agents/linked_agent.py"))
        .arg(BIN)
        .arg(&data)
        .arg(repo().join("tests/mcp/server.py"))
        .current_dir(&work)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .output()
        .expect("agent-monitor runs");
    let (report, stderr) = agent_report(&out);
    assert_eq!(report["pre"]["status"], 0, "{report}");
    assert_eq!(report["post"]["status"], 0, "{report}");
    assert_eq!(report["flushed"], true, "{report}");
    assert_eq!(
        report["result"],
        json!({"is_error": false, "text": "linked notes\n"})
    );

    // One row, with every adapter's id for the call.
    let calls = duckdb_in(
        &store,
        &[],
        "select call_id, tool, source, tool_use_id, mcp_request_id is not null, otel_span_id, status, decision \
         from read_parquet('tool_calls/**/*.parquet')",
    );
    assert_eq!(
        calls,
        vec![json!([
            TOOL_USE_ID,
            "mcp__fs__read_file",
            "hook",
            TOOL_USE_ID,
            true,
            report["span_id"],
            "ok",
            "allow"
        ])],
        "{stderr}"
    );

    // The MCP server read the file, for that call.
    let notes = data.join("notes.txt");
    let reads = duckdb_in(
        &store,
        &[],
        &format!(
            "select e.verdict, e.tool_call_id, p.argv[-1] \
             from read_parquet('events/**/*.parquet') e \
             join read_parquet('processes/**/*.parquet') p using (process_key) \
             where e.kind = 'file.open' and e.path = '{}'",
            notes.display()
        ),
    );
    assert_eq!(
        reads,
        vec![json!([
            "declared",
            TOOL_USE_ID,
            repo().join("tests/mcp/server.py").display().to_string()
        ])],
        "{stderr}"
    );
}
