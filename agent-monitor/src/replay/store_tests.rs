//! Opening a store: what is not one, what is missing, what is broken.

use super::{
    fixture::{Fixture, Row, event},
    *,
};
use crate::policy::Policy;

fn judged(row: Row, verdict: &str, rule: &str) -> Row {
    row.set("verdict", verdict).set("rule", rule)
}

fn read(seq: u64, ts: i64, path: &str) -> Row {
    event(seq, ts, "file.open")
        .set("path", path)
        .set("access", "read")
}

#[test]
fn a_session_without_its_working_directory_still_replays() {
    // No processes table: `{cwd}` patterns yield nothing, and the store
    // says which table it lacked.
    let mut store = Fixture::new();
    store.events(&[judged(
        read(0, 1, "/usr/lib/python3.12/os.py"),
        "baseline",
        "baseline.python",
    )]);
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    assert_eq!(report.events, 1);
    assert_eq!(report.changes_total, 0);
    assert!(report.missing_tables.contains(&"tool_calls".to_string()));
    assert!(!report.missing_tables.contains(&"events".to_string()));
    assert!(!report.would_alert());
    let text = render(&report);
    assert!(
        text.contains("the store has no `tool_calls` table: read as empty"),
        "{text}"
    );
}

#[test]
fn what_is_not_a_store_is_named() {
    let empty = tempfile::tempdir().unwrap();
    let err = replay(empty.path(), &Policy::default_policy()).unwrap_err();
    assert!(matches!(err, ReplayError::NotAStore { .. }), "{err}");
    assert!(
        err.to_string().contains("is not an evidence store"),
        "{err}"
    );

    let missing = empty.path().join("nowhere");
    let err = replay(&missing, &Policy::default_policy()).unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");

    // chain.log but no events: the table is named.
    std::fs::write(empty.path().join("chain.log"), "").unwrap();
    let err = replay(empty.path(), &Policy::default_policy()).unwrap_err();
    assert!(err.to_string().contains("no `events` table"), "{err}");
}

#[test]
fn a_broken_file_is_named() {
    let mut store = Fixture::new();
    store.events(&[read(0, 1, "/etc/hosts")]);
    let bad = store
        .path()
        .join("events/date=2026-01-01/hour=00/zz-broken.parquet");
    std::fs::write(&bad, b"not parquet").unwrap();
    // Hidden files are unfinished: never read.
    let hidden = store
        .path()
        .join("events/date=2026-01-01/hour=00/.seg-1-events.parquet.tmp");
    std::fs::write(hidden, b"half").unwrap();
    let err = replay(store.path(), &Policy::default_policy()).unwrap_err();
    assert!(err.to_string().contains("zz-broken.parquet"), "{err}");
}
