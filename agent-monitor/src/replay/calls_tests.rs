use super::*;
use crate::policy::Policy;

fn row(id: &str, started: i64, ended: Option<i64>) -> CallRow {
    CallRow {
        session_id: "s".into(),
        call_id: id.into(),
        tool: "read_file".into(),
        args: Some(r#"{"path":"/x"}"#.into()),
        effects: None,
        started,
        ended,
        decision: Some("allow".into()),
        rule: None,
    }
}

fn calls(rows: Vec<CallRow>) -> Calls {
    let policy = Policy::default_policy();
    Calls::new(
        rows.into_iter()
            .map(|r| Call::decide(&policy, None, r))
            .collect(),
    )
}

fn ids(calls: &Calls, list: Vec<usize>) -> Vec<&str> {
    list.into_iter()
        .map(|i| calls.all[i].row.call_id.as_str())
        .collect()
}

#[test]
fn candidates_are_the_bound_call_then_the_open_ones_innermost_first() {
    let calls = calls(vec![
        row("outer", 0, Some(100)),
        row("inner", 10, Some(20)),
        row("later", 30, Some(40)),
        row("open", 5, None),
        row("after", 200, Some(300)),
    ]);
    let at = |ts| ids(&calls, calls.candidates(None, Some("s"), ts));
    assert_eq!(at(15), ["inner", "open", "outer"]);
    assert_eq!(at(20), ["open", "outer"]);
    assert_eq!(at(150), ["open"]);
    assert_eq!(at(250), ["after", "open"]);
    assert!(at(-1).is_empty());
    let bound = calls.find(Some("s"), Some("later"));
    assert_eq!(
        ids(&calls, calls.candidates(bound, Some("s"), 15)),
        ["later", "inner", "open", "outer"]
    );
    assert!(calls.candidates(None, Some("other"), 15).is_empty());
}

#[test]
fn a_call_that_cannot_be_read_covers_nothing() {
    let mut hashed = row("h", 0, Some(1));
    hashed.args = Some("sha256:0123".into());
    let mut dropped = row("d", 0, Some(1));
    dropped.args = None;
    let mut bad_effects = row("e", 0, Some(1));
    bad_effects.effects = Some("{\"file.raed\": []}".into());
    let calls = calls(vec![hashed, dropped, bad_effects, row("ok", 0, Some(1))]);
    for call in &calls.all[..3] {
        assert_eq!(call.rule, UNREADABLE_RULE);
        assert!(call.envelope.is_empty());
        assert!(call.allow);
    }
    assert!(
        calls.all[0]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("not JSON")
    );
    assert!(
        calls.all[1]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("not recorded")
    );
    assert!(
        calls.all[2]
            .unreadable
            .as_deref()
            .unwrap()
            .contains("effects")
    );
    assert!(calls.all[3].unreadable.is_none());
    assert_eq!(calls.all[3].rule, "tools.read_file");
}
