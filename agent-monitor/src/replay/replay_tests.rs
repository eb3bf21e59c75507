use super::{
    fixture::{Fixture, Row, call, event, session, session_of},
    *,
};
use crate::{
    evidence::declared::DecisionRow,
    policy::{DEFAULT_POLICY, Policy},
};

fn judged(row: Row, verdict: &str, rule: Option<&str>) -> Row {
    let row = row.set("verdict", verdict);
    match rule {
        Some(rule) => row.set("rule", rule),
        None => row,
    }
}

fn read(seq: u64, ts: i64, path: &str) -> Row {
    event(seq, ts, "file.open")
        .set("path", path)
        .set("access", "read")
}

/// The store of the tests: what the default policy made of a short
/// session, verdicts as it recorded them.
fn store() -> Fixture {
    let default = Policy::default_policy();
    let mut store = Fixture::new();
    store.empty_tables();
    session(&mut store);
    store.tool_calls(&[
        call(
            "c1",
            "read_file",
            r#"{"file_path":"/work/proj/a.txt"}"#,
            1000,
            2000,
        ),
        call("c3", "bash", r#"{"command":"ls -la"}"#, 3000, 4000),
        call("c4", "read_file", "sha256:deadbeef", 5000, 6000),
    ]);
    let decision = |id: &str| DecisionRow {
        ts: 0,
        session_id: "s1".into(),
        call_id: id.into(),
        decision: "allow".into(),
        policy_sha256: Some(default.sha256().into()),
        ..DecisionRow::default()
    };
    store.decisions(&[decision("c1"), decision("c3"), decision("c4")]);
    let alert = |seq: u64| {
        Row::default()
            .set("ts", 0i64)
            .set("alert_id", format!("a{seq}"))
            .set("kind", "undeclared")
            .set("severity", "medium")
            .set("session_id", "s1")
            .set("event_seq", seq)
            .set("message", "m")
    };
    store.rows("alerts", &[alert(3), alert(4), alert(5)]);
    store.events(&[
        judged(
            event(0, 100, "process.exec").set("exe", "/usr/bin/python3"),
            "baseline",
            Some("session.command"),
        ),
        judged(
            read(1, 200, "/usr/lib/python3.12/os.py"),
            "baseline",
            Some("baseline.python"),
        ),
        judged(
            read(2, 1500, "/work/proj/a.txt").set("tool_call_id", "c1"),
            "declared",
            Some("tools.read_file"),
        ),
        judged(
            read(3, 1600, "/root/.ssh/id_rsa").set("tool_call_id", "c1"),
            "undeclared",
            None,
        ),
        judged(
            event(4, 300, "net.connect")
                .set("addr", "93.184.216.34")
                .set("port", 443u16)
                .set("dns_name", "example.com"),
            "undeclared",
            None,
        ),
    ]);
    // A second file, as a store rotated once.
    store.events(&[
        judged(event(5, 400, "priv.setuid"), "undeclared", None),
        judged(
            event(6, 500, "process.fork").set("child_pid", 101u32),
            "baseline",
            Some("process.lifecycle"),
        ),
        judged(read(7, 600, "/etc/passwd"), "unverifiable", None),
        judged(
            event(8, 3500, "process.exec")
                .set("pid", 101u32)
                .set("process_key", "101@2")
                .set("exe", "/usr/bin/ls")
                .set("tool_call_id", "c3"),
            "declared",
            Some("tools.bash"),
        ),
        judged(
            read(9, 5500, "/work/proj/b.txt").set("tool_call_id", "c4"),
            "declared",
            Some("tools.read_file"),
        ),
    ]);
    store
}

const STRICT: &str = r#"
version = 1
name = "strict"

[baseline.python]
file.read = ["/usr/lib/python3*/**"]

[baseline.web]
net.connect = ["example.com:443"]

[sensitive.ssh]
severity = "critical"
file = ["~/.ssh/**"]

[[deny]]
name = "no-ls"
tool = "bash"
args.command = ["ls*"]

[tools.read_file]
extend = "deny"

[tools.bash]
exec = ["/**"]
"#;

fn change(report: &ReplayReport, seq: u64) -> Option<&Change> {
    report.changes.iter().find(|c| c.seq == seq)
}

#[test]
fn the_recording_policy_changes_only_what_it_cannot_redo() {
    let store = store();
    let policy = Policy::default_policy();
    let report = replay(store.path(), &policy).unwrap();
    assert_eq!(report.events, 10);
    assert_eq!(report.calls, 3);
    // c4's args were hashed: its read is no longer covered.
    let seqs: Vec<u64> = report.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [9], "{report:#?}");
    let c = change(&report, 9).unwrap();
    assert_eq!(c.old_verdict.as_deref(), Some("declared"));
    assert_eq!(c.new_verdict, "undeclared");
    assert_eq!(c.effect, "file.read /work/proj/b.txt");
    assert_eq!(report.unreadable_calls.len(), 1);
    assert_eq!(report.unreadable_calls[0].call_id, "c4");
    assert!(report.flips.is_empty());
    assert_eq!(report.kept.get("unverifiable"), Some(&1));
    assert_eq!(
        report.recorded_policies.get(policy.sha256()),
        Some(&3),
        "{:?}",
        report.recorded_policies
    );

    // Alerts as live: the ssh read is undeclared at high severity, with
    // its sensitive rule; three were raised at the time.
    let ssh = report.alerts.iter().find(|a| a.seq == 3).unwrap();
    assert_eq!(
        (ssh.kind.as_str(), ssh.severity.as_str()),
        ("undeclared", "high")
    );
    assert_eq!(ssh.rule.as_deref(), Some("sensitive.ssh"));
    assert!(ssh.recorded);
    let seqs: Vec<u64> = report.alerts.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, [4, 5, 3, 9]);
    assert_eq!((report.alerts_total, report.alerts_new), (4, 1));
    assert!(report.would_alert());
}

#[test]
fn a_stricter_policy_shows_new_undeclared_alerts_and_flips() {
    let store = store();
    let policy = Policy::from_toml(STRICT).unwrap();
    let report = replay(store.path(), &policy).unwrap();

    // read_file has no envelope any more.
    let c = change(&report, 2).unwrap();
    assert_eq!(
        (c.new_verdict.as_str(), c.new_rule.as_deref()),
        ("undeclared", None)
    );
    // The connection is in a baseline now, by its looked-up name.
    let c = change(&report, 4).unwrap();
    assert_eq!(
        (c.new_verdict.as_str(), c.new_rule.as_deref()),
        ("baseline", Some("baseline.web"))
    );
    // `ls` is denied: the call covers nothing, and it ran anyway.
    let c = change(&report, 8).unwrap();
    assert_eq!(c.new_verdict, "undeclared");
    assert_eq!(c.tool_call_id.as_deref(), Some("c3"));
    assert_eq!(report.flips.len(), 1);
    let flip = &report.flips[0];
    assert_eq!(
        (flip.call_id.as_str(), flip.old.as_str(), flip.new.as_str()),
        ("c3", "allow", "deny")
    );
    assert_eq!(flip.new_rule, "deny.no-ls");
    let ran = report
        .alerts
        .iter()
        .find(|a| a.kind == "denied_attempted")
        .unwrap();
    assert_eq!((ran.seq, ran.rule.as_deref()), (8, Some("deny.no-ls")));
    // The ssh key is critical under this policy.
    let ssh = report.alerts.iter().find(|a| a.seq == 3).unwrap();
    assert_eq!(ssh.severity, "critical");
    // The session's command and the lifecycle stay baseline.
    assert!(change(&report, 0).is_none() && change(&report, 6).is_none());
    assert!(
        report
            .transitions
            .iter()
            .any(|t| t.old == "declared" && t.new == "undeclared" && t.events == 3),
        "{:?}",
        report.transitions
    );
    assert!(
        report
            .recorded_policies
            .keys()
            .all(|k| k != policy.sha256())
    );

    let text = render(&report);
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("replay of "), "{first}");
    assert!(first.contains("under policy `strict`"), "{first}");
    assert!(first.contains("4 verdicts changed"), "{first}");
    assert!(first.contains("1 of 3 decisions flip"), "{first}");
    assert!(text.contains("declared     → undeclared"), "{text}");
    assert!(
        text.contains("session s1 call c3 (bash): allow (tools.bash) → deny by deny.no-ls"),
        "{text}"
    );
    assert!(
        text.contains("args unreadable: session s1 call c4 (read_file)"),
        "{text}"
    );
    assert!(text.contains("[critical] undeclared"), "{text}");
    assert!(text.contains("[new]"), "{text}");
    assert!(
        text.contains("file.read /work/proj/a.txt: declared (tools.read_file) → undeclared"),
        "{text}"
    );
    assert!(
        text.contains("1 events kept as recorded (unverifiable)"),
        "{text}"
    );
}

#[test]
fn a_looser_policy_moves_events_into_the_baseline() {
    let store = store();
    let text = format!("{DEFAULT_POLICY}\n[baseline.web]\nnet.connect = [\"example.com:443\"]\n");
    let policy = Policy::from_toml(&text).unwrap();
    let report = replay(store.path(), &policy).unwrap();
    let seqs: Vec<u64> = report.changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [4, 9]);
    assert!(report.alerts.iter().all(|a| a.seq != 4));
    assert!(report.flips.is_empty());
}

#[test]
fn actions_in_a_kernel_loss_window_are_unverifiable_not_undeclared() {
    let mut store = Fixture::new();
    let gap = |cause: &str, since: i64, until: i64| {
        Row::default()
            .set("lost", "events")
            .set("cause", cause)
            .set("count", 3u64)
            .set("since", since)
            .set("until", until)
    };
    store.rows(
        "gaps",
        &[gap("ring_buffer_full", 50, 150), gap("storage", 250, 350)],
    );
    store.events(&[
        read(0, 100, "/srv/x"),
        read(1, 300, "/srv/y"),
        event(2, 120, "kernel.bpf"),
    ]);
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    let verdict = |seq| change(&report, seq).unwrap().new_verdict.as_str();
    assert_eq!(verdict(0), "unverifiable");
    assert_eq!(verdict(1), "undeclared");
    assert_eq!(verdict(2), "unverifiable");
    // Loading BPF may blind the monitor: tampering, lost or not.
    let kinds: Vec<(u64, &str)> = report
        .alerts
        .iter()
        .map(|a| (a.seq, a.kind.as_str()))
        .collect();
    assert_eq!(kinds, [(2, "tampering"), (1, "undeclared")]);
}

fn fork(seq: u64, ts: i64, child: u32, key: &str) -> Row {
    let fork = event(seq, ts, "process.fork")
        .set("child_pid", child)
        .set("child_process_key", key);
    judged(fork, "baseline", Some("process.lifecycle"))
}

/// A store of session `s1` with `calls`, and `events` as recorded.
fn store_of(calls: &[crate::evidence::declared::ToolCallRow], events: &[Row]) -> Fixture {
    let mut store = Fixture::new();
    store.empty_tables();
    session(&mut store);
    store.tool_calls(calls);
    store.events(events);
    store
}

fn verdicts(report: &ReplayReport) -> Vec<(u64, &str, Option<&str>)> {
    report
        .changes
        .iter()
        .map(|c| (c.seq, c.new_verdict.as_str(), c.tool_call_id.as_deref()))
        .collect()
}

#[test]
fn a_call_covers_what_the_live_correlator_binds_to_it_and_no_more() {
    let mut c1 = call("c1", "read_file", r#"{"path":"/data/a"}"#, 1000, 2000);
    c1.declared_by = Some("100@1".into());
    let store = store_of(
        &[c1],
        &[
            // The declarer itself, bound to the call.
            judged(
                read(0, 1500, "/data/a").set("tool_call_id", "c1"),
                "declared",
                Some("tools.read_file"),
            ),
            // A child it forked during the call inherits it.
            fork(1, 1200, 101, "101@3"),
            judged(
                read(2, 1600, "/data/a")
                    .set("pid", 101u32)
                    .set("ppid", 100u32)
                    .set("process_key", "101@3")
                    .set("tool_call_id", "c1"),
                "declared",
                Some("tools.read_file"),
            ),
            // Another process of the session, at the same time, bound to
            // nothing: the call is not its declaration.
            judged(
                read(3, 1600, "/data/a")
                    .set("pid", 500u32)
                    .set("process_key", "500@9"),
                "declared",
                Some("tools.read_file"),
            ),
        ],
    );
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    assert_eq!(verdicts(&report), [(3, "undeclared", None)], "{report:#?}");
}

#[test]
fn a_call_declared_from_outside_the_tree_covers_the_agents_events_while_open() {
    let mut c9 = call("c9", "read_file", r#"{"path":"/data/ext"}"#, 1000, 2000);
    c9.declared_by = Some("pid 999".into());
    let store = store_of(
        &[c9],
        &[
            judged(read(0, 1500, "/data/ext"), "undeclared", None),
            judged(read(1, 2500, "/data/ext"), "undeclared", None),
        ],
    );
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    assert_eq!(verdicts(&report), [(0, "declared", Some("c9"))]);
    assert!(report.flips.is_empty() && report.unreadable_calls.is_empty());
}

#[test]
fn a_denied_call_whose_args_were_hashed_keeps_its_deny() {
    let mut c5 = call("c5", "bash", "sha256:0123", 1000, 2000);
    c5.decision = Some("deny".into());
    c5.rule = Some("deny.no-rm".into());
    let store = store_of(
        &[c5],
        &[judged(
            event(0, 1500, "file.open")
                .set("path", "/etc/x")
                .set("access", "write")
                .set("tool_call_id", "c5"),
            "undeclared",
            None,
        )],
    );
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    let kinds: Vec<(&str, Option<&str>)> = report
        .alerts
        .iter()
        .map(|a| (a.kind.as_str(), a.rule.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("undeclared", None),
            ("denied_attempted", Some("deny.no-rm"))
        ]
    );
    assert_eq!(report.unreadable_calls.len(), 1);
    assert!(report.flips.is_empty());
}

#[test]
fn a_session_an_agent_declared_claims_its_tree_from_its_start() {
    let mut store = Fixture::new();
    store.empty_tables();
    session(&mut store);
    session_of(&mut store, "s2", "api", 50, "300@5", "/work/other");
    let in_other = |seq: u64, ts: i64, pid: u32, key: &str| {
        judged(
            read(seq, ts, &format!("/work/other/m{seq}.py"))
                .set("pid", pid)
                .set("ppid", 300u32)
                .set("process_key", key)
                .set("session_id", "s2"),
            "baseline",
            Some("baseline.python"),
        )
    };
    store.events(&[
        // Before `session.start`: the run's session, whose directory is
        // another.
        in_other(0, 40, 300, "300@5")
            .set("ppid", 1u32)
            .set("session_id", "s1"),
        in_other(1, 60, 300, "300@5").set("ppid", 1u32),
        fork(2, 70, 301, "301@6")
            .set("pid", 300u32)
            .set("process_key", "300@5"),
        in_other(3, 80, 301, "301@6"),
        // The agent's own process is still in the run's session.
        in_other(4, 90, 100, "100@1")
            .set("ppid", 1u32)
            .set("session_id", "s1"),
    ]);
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    assert_eq!(
        verdicts(&report),
        [(0, "undeclared", None), (4, "undeclared", None)]
    );
    let sessions: Vec<(u64, Option<&str>)> = report
        .alerts
        .iter()
        .map(|a| (a.seq, a.session_id.as_deref()))
        .collect();
    assert_eq!(sessions, [(0, Some("s1")), (4, Some("s1"))]);
}

#[test]
fn sessions_the_table_lacks_are_taken_from_the_events() {
    let mut store = Fixture::new();
    store.events(&[
        read(0, 100, "/srv/x").set("session_id", "lost"),
        read(1, 200, "/srv/y").set("session_id", "lost"),
    ]);
    let report = replay(store.path(), &Policy::default_policy()).unwrap();
    let sessions: Vec<Option<&str>> = report
        .alerts
        .iter()
        .map(|a| a.session_id.as_deref())
        .collect();
    assert_eq!(sessions, [Some("lost"), Some("lost")]);
}
