use super::*;
use crate::{
    correlate::effects::Effects,
    policy::{Effect, EffectKind},
};

fn row(kind: &str, fields: ActionFields) -> EventRow {
    EventRow {
        kind: kind.into(),
        fields,
        ..EventRow::default()
    }
}

fn effects(row: &EventRow) -> Vec<String> {
    match row.effects() {
        RowEffects::Known(Effects::Some(list)) => list.iter().map(Effect::to_string).collect(),
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
}

#[test]
fn execs_lifecycle_and_unknown_kinds() {
    let exec = EventRow {
        kind: "process.exec".into(),
        exe: None,
        filename: Some("/bin/sh".into()),
        ..EventRow::default()
    };
    assert_eq!(
        exec.effects(),
        RowEffects::Known(Effects::Some(vec![Effect::new(
            EffectKind::Exec,
            "/bin/sh"
        )]))
    );
    let fork = row("process.fork", ActionFields::default());
    assert_eq!(fork.effects(), RowEffects::Known(Effects::Lifecycle));
    let setuid = row("priv.setuid", ActionFields::default());
    assert_eq!(setuid.effects(), RowEffects::Known(Effects::Uncoverable));
    let future = row("gpu.launch", ActionFields::default());
    assert_eq!(future.effects(), RowEffects::UnknownKind);
    assert_eq!(access("sideways"), None);
}
