//! End-to-end: `run --evidence` writes Parquet that the real DuckDB reads
//! with Hive partitioning, holding the same events as the JSONL output, in
//! a chain that `verify` checks. Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;

use support::{duckdb, duckdb_in, monitor, verify};

#[test]
fn duckdb_reads_what_jsonl_says_and_verify_names_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("evidence");
    let s = store.to_str().unwrap();
    let run = monitor(
        &["--evidence", s],
        &[
            "/bin/sh",
            "-c",
            "cat /etc/hostname >/dev/null; cat /nonexistent 2>/dev/null; exit 0",
        ],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);

    // The same events by kind, from Parquet through DuckDB and from JSONL.
    let glob = format!("{s}/events/**/*.parquet");
    let rows = duckdb(&format!(
        "select kind, count(*) from read_parquet('{glob}', hive_partitioning=true) group by kind order by kind"
    ));
    let from_parquet: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
        .collect();
    let mut from_jsonl: BTreeMap<String, u64> = BTreeMap::new();
    for event in &run.events {
        *from_jsonl
            .entry(event["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(from_parquet, from_jsonl);

    // Columns keep their meaning, and the Hive partition columns exist.
    let hostname = duckdb(&format!(
        "select access, result >= 0, date is not null, hour is not null \
         from read_parquet('{glob}', hive_partitioning=true) where kind = 'file.open' and path = '/etc/hostname'"
    ));
    assert_eq!(
        hostname,
        vec![serde_json::json!(["read", true, true, true])]
    );
    let missing = duckdb(&format!(
        "select error from read_parquet('{glob}') where kind = 'file.open' and path = '/nonexistent'"
    ));
    assert!(missing.iter().any(|r| r[0] == "ENOENT"), "{missing:?}");

    let (code, out) = verify(&store);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("intact: 8 files"),
        "events, processes, the session, and an empty file for each other table: {out}"
    );

    // One row per process, the shell with its argv and exit status, and
    // its children linked to it by key.
    let processes = duckdb(&format!(
        "select count(*), count(*) filter (where exit is not null) \
         from read_parquet('{s}/processes/**/*.parquet', hive_partitioning=true)"
    ));
    let seen = run.of_kind("process.exec").count() as u64;
    assert_eq!(
        processes,
        vec![serde_json::json!([seen, seen])],
        "every process exited"
    );
    let shell = duckdb(&format!(
        "select argv[1], exit_code, signal, \
           (select count(*) from read_parquet('{s}/processes/**/*.parquet') c where c.parent_key = p.process_key) \
         from read_parquet('{s}/processes/**/*.parquet') p where exe = '/bin/sh' or exe = '/usr/bin/sh'"
    ));
    assert_eq!(
        shell,
        vec![serde_json::json!(["/bin/sh", 0, null, 2])],
        "the shell and its two children"
    );

    // Flip one byte of the events file: verify names it and fails.
    let file = std::fs::read_to_string(store.join("chain.log")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    let name = entry["file"].as_str().unwrap();
    let path = store.join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let (code, out) = verify(&store);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("altered: {name}")), "{out}");
}

fn query(name: &str) -> String {
    let path = format!("{}/../queries/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_shipped_queries_return_the_expected_rows() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let store = work.join("evidence");
    let agent = format!(
        "{}/../tests/agents/net_actions.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let script = format!(
        "cd {w} && echo x > out.txt && mv out.txt done.txt && {py} {agent} >/dev/null",
        w = work.display(),
        py = support::real_python()
    );
    let run = monitor(
        &["--agent", "q", "--evidence", store.to_str().unwrap()],
        &["/bin/sh", "-c", &script],
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
    let w = work.to_str().unwrap();

    let written = duckdb_in(&store, &[], &query("files_written.sql"));
    let mine: Vec<(String, String, u64, serde_json::Value)> = written
        .iter()
        .filter(|r| r[1].as_str().is_some_and(|p| p.starts_with(w)))
        .map(|r| {
            (
                r[1].as_str().unwrap().to_string(),
                r[2].as_str().unwrap().to_string(),
                r[3].as_u64().unwrap(),
                r[6].clone(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        vec![
            (
                format!("{w}/done.txt"),
                "file.rename".into(),
                1,
                serde_json::Value::Null
            ),
            (
                format!("{w}/out.txt"),
                "file.open".into(),
                1,
                serde_json::json!(true)
            ),
        ]
    );

    let destinations = duckdb_in(&store, &[], &query("network_destinations.sql"));
    let find = |destination: &str, kind: &str| {
        destinations
            .iter()
            .find(|r| r[1] == destination && r[5] == kind)
            .unwrap_or_else(|| panic!("no {kind} to {destination} in {destinations:#?}"))
            .clone()
    };
    let connect = find("agent-monitor.test", "net.connect");
    assert_eq!(connect[2], "127.0.0.77");
    assert_eq!(connect[4], "tcp");
    assert_eq!(connect[7], 0, "no failed connects");
    let query_row = find("127.0.0.1", "dns.query");
    assert_eq!(
        (&query_row[3], &query_row[4]),
        (&serde_json::json!(53), &serde_json::json!("udp"))
    );

    assert_eq!(
        duckdb_in(&store, &[], &query("gaps.sql")),
        Vec::<serde_json::Value>::new()
    );

    let timeline = duckdb_in(
        &store,
        &["SET VARIABLE agent = 'q'"],
        &query("agent_timeline.sql"),
    );
    assert!(timeline.len() > 10, "{timeline:#?}");
    assert_eq!(
        timeline[0][2], "process.exec",
        "the shell's exec comes first"
    );
    assert!(
        timeline.iter().any(|r| r[2] == "net.connect"
            && r[3] == "agent-monitor.test:".to_string() + &connect[3].to_string()),
        "{timeline:#?}"
    );

    // The run is one session: its timeline holds every action of the run,
    // in order, and nothing declared (no declarations were made).
    let session = run.sessions[0]["session_id"].as_str().unwrap();
    let session_timeline = duckdb_in(
        &store,
        &[&format!("SET VARIABLE session = '{session}'")],
        &query("session_timeline.sql"),
    );
    // Its actions, and the alerts they raised; nothing was declared.
    let alerts = run
        .declared
        .iter()
        .filter(|r| r["kind"] == "alert" && r["session_id"] == session)
        .count();
    assert_eq!(session_timeline.len(), run.events.len() + alerts);
    assert!(
        session_timeline
            .iter()
            .all(|r| r[1] == "action" || r[1] == "alert")
    );
    let kinds: Vec<&str> = session_timeline
        .iter()
        .filter(|r| r[1] == "action")
        .map(|r| r[2].as_str().unwrap())
        .collect();
    let run_kinds: Vec<&str> = run
        .events
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "process.exec");
    let mut sorted = kinds.clone();
    let mut run_sorted = run_kinds.clone();
    sorted.sort_unstable();
    run_sorted.sort_unstable();
    assert_eq!(sorted, run_sorted);

    // Without declarations there is no tool call, and what the shell did
    // beyond the runtime's baseline is undeclared: the file it wrote and
    // renamed among it, with no prompt before it.
    assert_eq!(
        duckdb_in(
            &store,
            &["SET VARIABLE tool_call = 'none'"],
            &query("tool_call_actions.sql")
        ),
        Vec::<serde_json::Value>::new()
    );
    let undeclared = duckdb_in(&store, &[], &query("undeclared_actions.sql"));
    let what: Vec<&str> = undeclared.iter().filter_map(|r| r[7].as_str()).collect();
    assert!(
        what.contains(&format!("{w}/out.txt").as_str())
            && what.contains(&format!("{w}/done.txt").as_str()),
        "{undeclared:#?}"
    );
    let in_jsonl = run
        .events
        .iter()
        .filter(|e| e["verdict"] == "undeclared")
        .count();
    assert_eq!(undeclared.len(), in_jsonl);
    let walked = duckdb_in(&store, &[], &query("undeclared_with_prompt.sql"));
    assert_eq!(walked.len(), in_jsonl);
    assert!(
        walked.iter().all(|r| r[5].is_null()),
        "no prompt was declared"
    );

    // Every shipped query is exercised above.
    let mut shipped: Vec<String> =
        std::fs::read_dir(format!("{}/../queries", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    shipped.sort();
    assert_eq!(
        shipped,
        [
            "agent_timeline.sql",
            "files_written.sql",
            "gaps.sql",
            "network_destinations.sql",
            "session_timeline.sql",
            "tool_call_actions.sql",
            "undeclared_actions.sql",
            "undeclared_with_prompt.sql"
        ]
    );
}
