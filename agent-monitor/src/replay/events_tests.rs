use super::*;
use crate::{
    correlate::effects::{self, Effects},
    policy::Effect,
    test_support::process_info,
};

fn row(kind: &str, fields: ActionFields) -> EventRow {
    EventRow {
        kind: kind.into(),
        pid: 42,
        ts: 1_000,
        fields,
        ..EventRow::default()
    }
}

/// The effects the live correlator finds in the rebuilt event.
fn effects(row: &EventRow) -> Vec<String> {
    let event = row.event(Bound::default()).expect("a known kind");
    match effects::of(&event, &process_info(row.pid, 0)) {
        Effects::Some(list) => list.iter().map(Effect::to_string).collect(),
        other => vec![format!("{other:?}")],
    }
}

#[test]
fn stored_columns_give_the_effects_the_live_correlator_saw() {
    let open = row(
        "file.open",
        ActionFields {
            path: Some("/w/x".into()),
            access: access("read_write"),
            created: Some(true),
            ..ActionFields::default()
        },
    );
    assert_eq!(
        effects(&open),
        ["file.read /w/x", "file.write /w/x", "file.create /w/x"]
    );
    let rename = row(
        "file.rename",
        ActionFields {
            path: Some("/w/a".into()),
            new_path: Some("/w/b".into()),
            ..ActionFields::default()
        },
    );
    assert_eq!(effects(&rename), ["file.delete /w/a", "file.create /w/b"]);
    let connect = row(
        "net.connect",
        ActionFields {
            addr: Some("::1".into()),
            port: Some(8080),
            dns_name: Some("localhost".into()),
            ..ActionFields::default()
        },
    );
    assert_eq!(effects(&connect), ["net.connect [::1]:8080 (localhost)"]);
    let dns = row(
        "dns.query",
        ActionFields {
            name: Some("example.com".into()),
            ..ActionFields::default()
        },
    );
    assert_eq!(effects(&dns), ["dns example.com"]);
    assert_eq!(
        effects(&row("priv.setuid", ActionFields::default())),
        ["Uncoverable"]
    );
}

#[test]
fn processes_are_rebuilt_on_the_wall_clock_and_unknown_kinds_are_not() {
    let bound = Bound {
        start_ns: 7,
        child_start_ns: 9,
        agent_slot: 2,
        tool_call: 3,
    };
    let exec = EventRow {
        kind: "process.exec".into(),
        exe: Some("/usr/bin/sh".into()),
        filename: Some("sh".into()),
        ..row("", ActionFields::default())
    };
    let event = exec.event(bound).unwrap();
    assert!(matches!(&event.detail, Detail::Exec(e) if e.filename == "/usr/bin/sh"));
    assert_eq!(
        (
            event.ts_ns,
            event.start_ns,
            event.agent_slot,
            event.tool_call
        ),
        (1_000, 7, 2, 3)
    );
    let fork = EventRow {
        child_pid: Some(43),
        ..row("process.fork", ActionFields::default())
    };
    assert_eq!(
        fork.event(bound).unwrap().detail,
        Detail::Fork {
            child_pid: 43,
            child_start_ns: 9
        }
    );
    let killed = EventRow {
        signal: Some(9),
        ..row("process.exit", ActionFields::default())
    };
    assert!(matches!(
        killed.event(bound).unwrap().detail,
        Detail::Exit(ExitStatus::Killed { signal: 9, .. })
    ));
    assert_eq!(
        row("gpu.launch", ActionFields::default()).event(bound),
        None
    );
    assert_eq!(wall(-5), 0);
    assert_eq!(access("sideways"), None);
}
