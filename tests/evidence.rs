//! End-to-end: `run --evidence` writes Parquet that the real DuckDB reads
//! with Hive partitioning, holding the same events as the JSONL output, in
//! a chain that `verify` checks. Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::{collections::BTreeMap, path::Path, process::Command};

use support::{BIN, monitor};

/// Runs a DuckDB query through the `duckdb` Python package (installed by
/// `cargo xtask setup`) and returns its rows as JSON.
fn duckdb(sql: &str) -> Vec<serde_json::Value> {
    let script = format!(
        "import duckdb, json\nrows = duckdb.sql({sql:?}).fetchall()\nprint(json.dumps([list(r) for r in rows], default=str))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "duckdb failed (is the duckdb package installed? `cargo xtask setup` installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON rows")
}

fn verify(dir: &Path) -> (i32, String) {
    let out = Command::new(BIN).arg("verify").arg(dir).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

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
    assert!(out.starts_with("intact: 1 files"), "{out}");

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
