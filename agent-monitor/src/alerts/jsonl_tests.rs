use serde_json::{Value, json};

use super::*;

/// 2026-11-26T22:05:26.123456789Z in Unix-epoch nanoseconds.
const TS: i64 = 1_795_730_726_123_456_789;

fn row(id: &str) -> AlertRow {
    AlertRow {
        ts: TS,
        alert_id: id.into(),
        kind: "sensitive".into(),
        severity: "critical".into(),
        agent: Some("claude".into()),
        session_id: Some("s1".into()),
        tool_call_id: None,
        event_seq: Some(42),
        process_key: Some("4242@123".into()),
        rule: Some("sensitive.ssh".into()),
        message: "read ~/.ssh/id_ed25519\n\"quoted\"".into(),
    }
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn one_object_per_line_with_rfc3339_time() {
    let mut sink = JsonlAlerts::new(Vec::new());
    sink.send(&row("a1")).unwrap();
    sink.send(&row("a2")).unwrap();
    sink.flush().unwrap();
    let parsed = lines(&sink.into_inner());
    assert_eq!(parsed.len(), 2);
    assert_eq!(
        parsed[0],
        json!({
            "ts": "2026-11-26T22:05:26.123456789Z",
            "alert_id": "a1",
            "kind": "sensitive",
            "severity": "critical",
            "agent": "claude",
            "session_id": "s1",
            "tool_call_id": null,
            "event_seq": 42,
            "process_key": "4242@123",
            "rule": "sensitive.ssh",
            "message": "read ~/.ssh/id_ed25519\n\"quoted\"",
        })
    );
    assert_eq!(parsed[1]["alert_id"], "a2");
}

#[test]
fn create_appends_to_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    for id in ["first-run", "second-run"] {
        let mut sink = JsonlAlerts::create(&path).unwrap();
        assert_eq!(sink.name(), format!("jsonl {}", path.display()));
        sink.send(&row(id)).unwrap();
        sink.flush().unwrap();
    }
    let parsed = lines(&std::fs::read(&path).unwrap());
    let ids: Vec<&Value> = parsed.iter().map(|v| &v["alert_id"]).collect();
    assert_eq!(ids, ["first-run", "second-run"]);
}
