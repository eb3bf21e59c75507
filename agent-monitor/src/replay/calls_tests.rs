use super::*;

fn row(id: &str, started: i64) -> CallRow {
    CallRow {
        session_id: "s".into(),
        call_id: id.into(),
        tool: "read_file".into(),
        args: Some(r#"{"path":"/x"}"#.into()),
        effects: None,
        started,
        ended: Some(started + 1),
        status: "ok".into(),
        decision: Some("allow".into()),
        rule: None,
        declared_by: None,
    }
}

fn args(request: &Request) -> &Map<String, Value> {
    match request {
        Request::ToolStart(start) => &start.args,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_call_that_cannot_be_read_asks_for_nothing() {
    let mut hashed = row("h", 0);
    hashed.args = Some("sha256:0123".into());
    let mut dropped = row("d", 0);
    dropped.args = None;
    let mut bad_effects = row("e", 0);
    bad_effects.effects = Some("{\"file.raed\": []}".into());
    let calls: Vec<Call> = [hashed, dropped, bad_effects, row("ok", 0)]
        .into_iter()
        .map(Call::new)
        .collect();
    let why: Vec<&str> = calls[..3]
        .iter()
        .map(|c| c.unreadable.as_deref().unwrap())
        .collect();
    assert!(why[0].contains("not JSON"), "{why:?}");
    assert!(why[1].contains("not recorded"), "{why:?}");
    assert!(why[2].contains("effects"), "{why:?}");
    for call in &calls[..3] {
        assert!(args(&call.start()).is_empty());
        assert!(call.recorded_allow());
    }
    assert!(calls[3].unreadable.is_none());
    assert_eq!(args(&calls[3].start())["path"], "/x");
}

#[test]
fn the_declarer_is_the_recorded_process_or_the_sessions_root() {
    let mut tracked = row("t", 0);
    tracked.declared_by = Some("42@1234".into());
    assert_eq!(
        Call::new(tracked).declarer(Some(7)),
        Declarer::Tracked {
            pid: 42,
            key: Some("42@1234".into())
        }
    );
    let mut outside = row("o", 0);
    outside.declared_by = Some("pid 99".into());
    let outside = Call::new(outside).declarer(Some(7));
    assert_eq!(outside, Declarer::Outside { pid: 99 });
    assert_eq!(outside.id(), "pid 99");
    assert_eq!(
        Call::new(row("r", 0)).declarer(Some(7)),
        Declarer::Tracked { pid: 7, key: None }
    );
    assert_eq!(
        Call::new(row("n", 0)).declarer(None),
        Declarer::Outside { pid: 0 }
    );
}

#[test]
fn each_call_once_by_start_with_its_last_row() {
    let mut ended = row("a", 5);
    ended.status = "error".into();
    let calls = distinct(vec![row("a", 5), row("b", 1), ended]);
    let ids: Vec<&str> = calls.iter().map(|c| c.row.call_id.as_str()).collect();
    assert_eq!(ids, ["b", "a"]);
    assert!(matches!(
        calls[1].end(),
        Request::ToolEnd(ToolEnd {
            status: Status::Error,
            ..
        })
    ));
}

#[test]
fn the_answer_is_the_decision_or_a_refusal() {
    let mut call = Call::new(row("a", 0));
    let deny = Reply::decision(
        None,
        crate::declare::Decision::Deny,
        "no",
        Some("deny.x".into()),
    );
    assert!(call.answer(deny));
    assert_eq!(
        call.decided,
        Some(Decided {
            allow: false,
            rule: Some("deny.x".into()),
            reason: "no".into()
        })
    );
    assert!(!call.answer(Reply::no_session(None)));
    assert!(
        call.unreadable
            .as_deref()
            .unwrap()
            .starts_with("could not be declared again"),
        "{:?}",
        call.unreadable
    );
}
