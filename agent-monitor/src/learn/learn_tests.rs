use super::*;
use crate::{
    policy::{DEFAULT_POLICY, EffectKind, Policy},
    replay::fixture::{Fixture, Row, call, event, session},
};

fn read(seq: u64, path: &str) -> Row {
    event(seq, 100 + seq as i64, "file.open")
        .set("path", path)
        .set("access", "read")
}

/// A clean run: the agent's runtime reading its data, config and
/// libraries, talking to a service, and one tool call that strays.
fn store() -> Fixture {
    let mut store = Fixture::new();
    store.empty_tables();
    session(&mut store);
    store.tool_calls(&[call(
        "c1",
        "read_file",
        r#"{"file_path":"/work/proj/a.txt"}"#,
        10_000,
        20_000,
    )]);
    let mut rows = vec![event(0, 1, "process.exec").set("exe", "/usr/bin/python3")];
    // Nine entries of one directory: collapsed.
    for i in 0..9 {
        rows.push(read(
            rows.len() as u64,
            &format!("/opt/agent/data/f{i}.dat"),
        ));
    }
    // Seven of another: exact.
    for i in 0..7 {
        rows.push(read(
            rows.len() as u64,
            &format!("/opt/agent/conf/c{i}.toml"),
        ));
    }
    // Eight next to a sensitive file: never collapsed.
    for i in 0..8 {
        rows.push(read(rows.len() as u64, &format!("/srv/app/m{i}.json")));
    }
    let more = [
        read(0, "/srv/app/.env"),
        read(0, "/opt/agent/other.txt"),
        read(0, "/opt/agent/other.txt"),
        read(0, "/opt/agent/we[ird]*.txt"),
        read(0, "/work/proj/config.yaml"),
        read(0, "/usr/lib/python3.12/os.py"),
        read(0, "/root/.ssh/id_rsa"),
        event(0, 0, "file.open")
            .set("path", "/work/proj/out.log")
            .set("access", "write")
            .set("created", true),
        event(0, 0, "net.connect")
            .set("addr", "93.184.216.34")
            .set("port", 443u16)
            .set("dns_name", "example.com"),
        event(0, 0, "net.connect")
            .set("addr", "10.0.0.5")
            .set("port", 8080u16),
        event(0, 0, "net.connect").set("unix_path", "/run/agent/helper.sock"),
        event(0, 0, "dns.query").set("name", "example.com"),
        event(0, 0, "process.exec")
            .set("pid", 101u32)
            .set("process_key", "101@2")
            .set("exe", "/usr/bin/git"),
        event(0, 0, "priv.setuid"),
        event(0, 0, "file.open")
            .set("raw_path", "relative.txt")
            .set("access", "read"),
    ];
    for row in more {
        let seq = rows.len() as u64;
        rows.push(row.set("seq", seq).set("ts", 100 + seq as i64));
    }
    // Inside the call: the tool's business.
    let seq = rows.len() as u64;
    rows.push(
        read(seq, "/srv/elsewhere.txt")
            .set("ts", 15_000i64)
            .set("tool_call_id", "c1"),
    );
    store.events(&rows);
    store
}

fn patterns(p: &Proposal, kind: EffectKind) -> Vec<&str> {
    p.patterns
        .iter()
        .filter(|x| x.kind == kind)
        .map(|x| x.pattern.as_str())
        .collect()
}

#[test]
fn a_clean_run_becomes_a_conservative_baseline() {
    let store = store();
    let policy = Policy::default_policy();
    let p = propose(store.path(), &policy, "agent").unwrap();

    let mut reads = patterns(&p, EffectKind::FileRead);
    reads.sort_unstable();
    let mut expected: Vec<String> = [
        "/opt/agent/data/*",
        "/opt/agent/other.txt",
        "/opt/agent/we[[]ird[]][*].txt",
        "{cwd}/config.yaml",
    ]
    .map(String::from)
    .into();
    expected.extend((0..7).map(|i| format!("/opt/agent/conf/c{i}.toml")));
    expected.extend((0..8).map(|i| format!("/srv/app/m{i}.json")));
    expected.sort_unstable();
    assert_eq!(reads, expected);
    assert_eq!(patterns(&p, EffectKind::FileWrite), ["{cwd}/out.log"]);
    assert_eq!(patterns(&p, EffectKind::FileCreate), ["{cwd}/out.log"]);
    assert_eq!(patterns(&p, EffectKind::Exec), ["/usr/bin/git"]);
    let mut connects = patterns(&p, EffectKind::NetConnect);
    connects.sort_unstable();
    assert_eq!(
        connects,
        ["/run/agent/helper.sock", "10.0.0.5:8080", "example.com:443"]
    );
    assert_eq!(patterns(&p, EffectKind::Dns), ["example.com"]);

    let data = p
        .patterns
        .iter()
        .find(|x| x.pattern == "/opt/agent/data/*")
        .unwrap();
    assert_eq!(data.seen, 9);
    assert!(
        data.why.contains("9 entries of /opt/agent/data"),
        "{}",
        data.why
    );
    let other = p
        .patterns
        .iter()
        .find(|x| x.pattern == "/opt/agent/other.txt")
        .unwrap();
    assert_eq!(other.seen, 2);

    // Sensitive and uncoverable: left out, with why.
    let left: Vec<&str> = p.left_out.iter().map(|l| l.effect.as_str()).collect();
    assert!(left.contains(&"file.read /srv/app/.env"), "{left:?}");
    assert!(left.contains(&"file.read /root/.ssh/id_rsa"), "{left:?}");
    assert!(left.contains(&"priv.setuid"), "{left:?}");
    assert!(left.contains(&"file.read relative.txt"), "{left:?}");
    let m0 = p
        .patterns
        .iter()
        .find(|x| x.pattern == "/srv/app/m0.json")
        .unwrap();
    assert!(m0.why.contains("a sensitive file in it"), "{}", m0.why);
    let ssh = p
        .left_out
        .iter()
        .find(|l| l.effect.contains(".ssh"))
        .unwrap();
    assert_eq!(ssh.why, "sensitive (sensitive.ssh, high)");

    // The tool's stray read is a note, not a baseline entry.
    assert_eq!(p.tool_notes.len(), 1);
    assert_eq!(p.tool_notes[0].tool, "read_file");
    assert_eq!(p.tool_notes[0].effect, "file.read /srv/elsewhere.txt");
    assert!(!reads.contains(&"/srv/elsewhere.txt"));
    assert_eq!(p.sessions, 1);
}

#[test]
fn the_proposal_merged_into_the_policy_leaves_only_what_it_warned_about() {
    let store = store();
    let policy = Policy::default_policy();
    let p = propose(store.path(), &policy, "agent").unwrap();
    let text = p.to_toml();
    assert!(text.contains("[baseline.agent]\n"), "{text}");
    assert!(
        text.contains("\"/opt/agent/data/*\", # seen 9 times; 9 entries"),
        "{text}"
    );
    assert!(
        text.contains("\"/opt/agent/other.txt\", # seen 2 times\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\"{cwd}/config.yaml\", # seen 1 time; under the session's working directory"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "#   file.read /root/.ssh/id_rsa: sensitive (sensitive.ssh, high), seen 1 time"
        ),
        "{text}"
    );
    assert!(
        text.contains("tool `read_file` touched file.read /srv/elsewhere.txt outside its envelope"),
        "{text}"
    );

    let merged = Policy::from_toml(&format!("{DEFAULT_POLICY}\n{text}")).unwrap();
    let again = propose(store.path(), &merged, "more").unwrap();
    assert!(again.patterns.is_empty(), "{:#?}", again.patterns);
    assert_eq!(again.left_out, p.left_out);
    assert_eq!(again.tool_notes, p.tool_notes);
    assert!(again.to_toml().contains("# Nothing to add"));

    // Also in a minimal policy file, as the header says.
    let minimal = format!("version = 1\nname = \"x\"\n{text}");
    Policy::from_toml(&minimal).unwrap();

    // And the replay agrees: nothing outside the call is undeclared but
    // the ssh key, the .env file, the setuid and the relative path.
    let report = crate::replay::replay(store.path(), &merged).unwrap();
    let undeclared: Vec<&str> = report
        .alerts
        .iter()
        .filter(|a| a.kind == "undeclared" && a.tool_call_id.is_none())
        .map(|a| a.message.as_str())
        .collect();
    assert_eq!(undeclared.len(), 4, "{undeclared:#?}");
}

#[test]
fn names_are_checked() {
    let store = store();
    let policy = Policy::default_policy();
    let err = propose(store.path(), &policy, "python").unwrap_err();
    assert!(matches!(err, LearnError::NameTaken { .. }), "{err}");
    let err = propose(store.path(), &policy, "my agent").unwrap_err();
    assert!(matches!(err, LearnError::BadName { .. }), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = propose(empty.path(), &policy, "agent").unwrap_err();
    assert!(
        err.to_string().contains("is not an evidence store"),
        "{err}"
    );
}

#[test]
fn a_run_the_baseline_already_covers_proposes_nothing() {
    let mut store = Fixture::new();
    store.empty_tables();
    session(&mut store);
    store.events(&[
        event(0, 1, "process.exec").set("exe", "/usr/bin/python3"),
        read(1, "/usr/lib/python3.12/os.py"),
        read(2, "/work/proj/main.py"),
    ]);
    let p = propose(store.path(), &Policy::default_policy(), "agent").unwrap();
    assert!(p.patterns.is_empty() && p.left_out.is_empty() && p.tool_notes.is_empty());
    let text = p.to_toml();
    assert!(
        text.starts_with("# Baseline proposed by `agent-monitor learn`"),
        "{text}"
    );
    let merged = Policy::from_toml(&format!("{DEFAULT_POLICY}\n{text}")).unwrap();
    assert_eq!(merged.name(), "default");
    assert!(
        p.summary()
            .starts_with("learned 0 patterns for `baseline.agent`"),
        "{}",
        p.summary()
    );
}
