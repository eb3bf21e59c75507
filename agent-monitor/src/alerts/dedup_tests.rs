use std::time::{Duration, Instant};

use super::*;

fn row(message: &str) -> AlertRow {
    AlertRow {
        kind: "undeclared".into(),
        severity: "high".into(),
        agent: Some("claude".into()),
        session_id: Some("s1".into()),
        rule: Some("r1".into()),
        message: message.into(),
        ..AlertRow::default()
    }
}

#[test]
fn key_covers_kind_agent_session_rule_and_message_only() {
    let base = row("read /etc/shadow");
    let same = AlertRow {
        ts: 99,
        alert_id: "other".into(),
        severity: "critical".into(),
        tool_call_id: Some("call-2".into()),
        event_seq: Some(7),
        process_key: Some("p".into()),
        ..base.clone()
    };
    assert_eq!(
        key(&base),
        key(&same),
        "fields outside the key must not matter"
    );

    let variants = [
        AlertRow {
            kind: "sensitive".into(),
            ..base.clone()
        },
        AlertRow {
            agent: Some("codex".into()),
            ..base.clone()
        },
        AlertRow {
            agent: None,
            ..base.clone()
        },
        AlertRow {
            session_id: Some("s2".into()),
            ..base.clone()
        },
        AlertRow {
            rule: None,
            ..base.clone()
        },
        AlertRow {
            message: "read /etc/passwd".into(),
            ..base.clone()
        },
    ];
    for variant in &variants {
        assert_ne!(key(&base), key(variant), "{variant:?}");
    }
}

#[test]
fn key_fields_do_not_run_into_each_other() {
    let a = AlertRow {
        rule: Some("ab".into()),
        message: "c".into(),
        ..row("")
    };
    let b = AlertRow {
        rule: Some("a".into()),
        message: "bc".into(),
        ..row("")
    };
    assert_ne!(key(&a), key(&b));
    let none = AlertRow {
        rule: None,
        ..row("m")
    };
    let empty = AlertRow {
        rule: Some(String::new()),
        ..row("m")
    };
    assert_ne!(key(&none), key(&empty));
}

#[test]
fn a_key_is_a_repeat_within_the_window_only() {
    let t0 = Instant::now();
    let mut table = DedupTable::new(Duration::from_secs(60), 16);
    let k = key(&row("m"));
    assert_eq!(table.check(&k, t0), None);
    table.insert(k, t0);
    assert_eq!(table.check(&k, t0 + Duration::from_secs(1)), Some(1));
    assert_eq!(table.check(&k, t0 + Duration::from_secs(59)), Some(2));
    assert_eq!(
        table.check(&k, t0 + Duration::from_secs(60)),
        None,
        "the window is half-open"
    );
    assert!(table.is_empty(), "the expired key is pruned");
}

#[test]
fn expired_keys_are_pruned_oldest_first() {
    let t0 = Instant::now();
    let mut table = DedupTable::new(Duration::from_secs(10), 16);
    for (i, message) in ["a", "b", "c"].iter().enumerate() {
        table.insert(key(&row(message)), t0 + Duration::from_secs(i as u64));
    }
    table.prune(t0 + Duration::from_secs(11));
    assert_eq!(table.len(), 1);
    assert_eq!(
        table.check(&key(&row("c")), t0 + Duration::from_secs(11)),
        Some(1)
    );
    assert_eq!(table.evicted(), 0, "expiry is not eviction");
}

#[test]
fn a_full_table_evicts_its_oldest_key() {
    let t0 = Instant::now();
    let mut table = DedupTable::new(Duration::from_secs(60), 3);
    for (i, message) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        table.insert(key(&row(message)), t0 + Duration::from_millis(i as u64));
    }
    assert_eq!(table.len(), 3);
    assert_eq!(table.evicted(), 2);
    let now = t0 + Duration::from_secs(1);
    assert_eq!(table.check(&key(&row("a")), now), None);
    assert_eq!(table.check(&key(&row("b")), now), None);
    for kept in ["c", "d", "e"] {
        assert_eq!(table.check(&key(&row(kept)), now), Some(1), "{kept}");
    }
}

#[test]
fn inserting_a_known_key_changes_nothing() {
    let t0 = Instant::now();
    let mut table = DedupTable::new(Duration::from_secs(60), 2);
    let k = key(&row("a"));
    table.insert(k, t0);
    table.insert(k, t0 + Duration::from_secs(1));
    assert_eq!(table.len(), 1);
    // Still dated from the first insert.
    assert_eq!(table.check(&k, t0 + Duration::from_secs(60)), None);
}
