//! Actions judged against the calls open when they happened.

use super::*;

#[test]
fn a_declared_read_is_declared_and_a_later_one_is_not() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/data/notes.txt"}}),
        10,
    );
    assert!(
        matches!(&start.reply, Reply::Decision { decision: declare::Decision::Allow, rule: Some(r), .. } if r == "tools.read_file"),
        "{:?}",
        start.reply
    );
    let slot = slot_of(&start);
    assert_eq!(start.slots[0].pid, AGENT_PID);
    assert!(
        matches!(&start.records[0], Declared::Decision(d) if d.decision == "allow" && d.policy_sha256.as_deref() == Some(c.policy().sha256()))
    );

    let read = judge(
        &mut c,
        &open(AGENT_PID, slot, 11, "/data/notes.txt", Access::Read),
    );
    assert_eq!(read.verdict, Verdict::Declared);
    assert_eq!(read.tool_call_id.as_deref(), Some("c1"));
    assert_eq!(read.rule.as_deref(), Some("tools.read_file"));
    assert_eq!(read.session_id.as_deref(), Some(SESSION));
    assert!(read.alerts.is_empty());

    let end = send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"c1","status":"ok"}),
        12,
    );
    assert_eq!(
        end.slots,
        [SlotUpdate {
            pid: AGENT_PID,
            slot: 0
        }]
    );
    let again = judge(
        &mut c,
        &open(AGENT_PID, 0, 13, "/data/notes.txt", Access::Read),
    );
    assert_eq!(again.verdict, Verdict::Undeclared);
    assert_eq!(again.tool_call_id, None);
    assert_eq!(again.alerts.len(), 1);
    assert_eq!(again.alerts[0].kind, "undeclared");
    assert!(
        again.alerts[0].message.contains("/data/notes.txt"),
        "{}",
        again.alerts[0].message
    );
}

#[test]
fn the_runtime_is_baseline_and_forks_are_lifecycle() {
    let mut c = correlator();
    let lib = judge(
        &mut c,
        &open(AGENT_PID, 0, 1, "/usr/lib/python3.11/os.py", Access::Read),
    );
    assert_eq!(
        (lib.verdict, lib.rule.as_deref()),
        (Verdict::Baseline, Some("baseline.python"))
    );
    let fork = actor(AGENT_PID, AGENT_PID as u64, 1).fork(101, 5);
    let fork = judge(&mut c, &fork);
    assert_eq!(
        (fork.verdict, fork.rule.as_deref()),
        (Verdict::Baseline, Some("process.lifecycle"))
    );
}

#[test]
fn an_event_before_tool_start_is_not_covered_even_when_read_late() {
    let mut c = correlator();
    send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/data/x"}}),
        50,
    );
    // Happened at 40 ms, read from the ring after the declaration.
    let early = judge(&mut c, &open(AGENT_PID, 0, 40, "/data/x", Access::Read));
    assert_eq!(early.verdict, Verdict::Undeclared);
}

#[test]
fn children_inherit_the_call_and_keep_it_after_the_end() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"sh","tool":"bash","args":{"command":"ls /srv/data"}}),
        10,
    );
    let slot = slot_of(&start);
    let mut exec = actor(200, 200, AGENT_PID)
        .at(11_000_000)
        .exec("/bin/ls", &["ls", "/srv/data"]);
    exec.tool_call = slot;
    let verdict = judge(&mut c, &exec);
    assert_eq!(
        (verdict.verdict, verdict.tool_call_id.as_deref()),
        (Verdict::Declared, Some("sh"))
    );
    let list = judge(&mut c, &open(200, slot, 12, "/srv/data", Access::Read));
    assert_eq!(list.verdict, Verdict::Declared);
    send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"sh","status":"ok"}),
        13,
    );
    // A process the call started, still running after tool.end.
    let late = judge(&mut c, &open(200, slot, 14, "/tmp/out", Access::Write));
    assert_eq!(
        (late.verdict, late.tool_call_id.as_deref()),
        (Verdict::Declared, Some("sh"))
    );
    // Outside the envelope: undeclared, and the call it ran under is named.
    let stray = judge(
        &mut c,
        &open(200, slot, 15, "/home/dev/.bashrc", Access::Write),
    );
    assert_eq!(
        (stray.verdict, stray.tool_call_id.as_deref()),
        (Verdict::Undeclared, Some("sh"))
    );
}

#[test]
fn overlapping_calls_of_one_process_are_told_apart_by_their_envelopes() {
    let mut c = correlator();
    let a = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"a","tool":"read_file","args":{"path":"/data/a"}}),
        10,
    );
    let b = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"b","tool":"read_file","args":{"path":"/data/b"}}),
        11,
    );
    // The process's slot names the latest call; both are candidates.
    let slot_b = slot_of(&b);
    let read_a = judge(
        &mut c,
        &open(AGENT_PID, slot_b, 12, "/data/a", Access::Read),
    );
    assert_eq!(read_a.tool_call_id.as_deref(), Some("a"));
    let read_b = judge(
        &mut c,
        &open(AGENT_PID, slot_b, 12, "/data/b", Access::Read),
    );
    assert_eq!(read_b.tool_call_id.as_deref(), Some("b"));
    // Ending b falls back to a.
    let end = send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"b","status":"ok"}),
        13,
    );
    assert_eq!(
        end.slots.iter().map(|u| u.slot).collect::<Vec<_>>(),
        [slot_of(&a)]
    );
}

#[test]
fn two_agents_sessions_keep_their_own_calls() {
    let mut c = correlator();
    c.connect(
        2,
        Peer {
            pid: 300,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    let s2 = send(
        &mut c,
        2,
        json!({"type":"session.start","session_id":"second","task":"t"}),
        5,
    );
    assert!(matches!(&s2.reply, Reply::Accepted { session_id: Some(id), .. } if id == "second"));
    let a = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"x","tool":"read_file","args":{"path":"/data/shared"}}),
        10,
    );
    let b = send(
        &mut c,
        2,
        json!({"type":"tool.start","call_id":"x","tool":"read_file","args":{"path":"/data/shared"}}),
        10,
    );
    let first = judge(
        &mut c,
        &open(AGENT_PID, slot_of(&a), 11, "/data/shared", Access::Read),
    );
    let mut second_event = open(300, slot_of(&b), 11, "/data/shared", Access::Read);
    second_event.start_ns = 300;
    let second = judge(&mut c, &second_event);
    assert_eq!(first.session_id.as_deref(), Some(SESSION));
    assert_eq!(second.session_id.as_deref(), Some("second"));
    assert_eq!(first.verdict, Verdict::Declared);
    assert_eq!(second.verdict, Verdict::Declared);
    // Outside any call, the second process's events are its session's.
    let idle = judge(&mut c, &open(300, 0, 20, "/usr/lib/x.so", Access::Read));
    assert_eq!(idle.session_id.as_deref(), Some("second"));
}

#[test]
fn a_denied_call_that_runs_anyway_alerts_once() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"rm","tool":"bash","args":{"command":"rm -rf /"}}),
        10,
    );
    assert!(matches!(
        &start.reply,
        Reply::Decision {
            decision: declare::Decision::Deny,
            ..
        }
    ));
    let slot = slot_of(&start);
    let first = judge(&mut c, &open(AGENT_PID, slot, 11, "/etc/x", Access::Write));
    assert_eq!(first.verdict, Verdict::Undeclared);
    let kinds: Vec<&str> = first.alerts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["undeclared", "denied_attempted"]);
    let second = judge(&mut c, &open(AGENT_PID, slot, 12, "/etc/y", Access::Write));
    assert_eq!(second.alerts.len(), 1, "the denied call alerts once");
    // Loading a library under a denied call is still the runtime's doing.
    let lib = judge(
        &mut c,
        &open(AGENT_PID, slot, 13, "/usr/lib/libc.so.6", Access::Read),
    );
    assert_eq!(lib.verdict, Verdict::Baseline);
}

#[test]
fn sensitive_files_alert_even_when_declared() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"k","tool":"read_file","args":{"path":"/root/.ssh/id_ed25519"}}),
        10,
    );
    let read = judge(
        &mut c,
        &open(
            AGENT_PID,
            slot_of(&start),
            11,
            "/root/.ssh/id_ed25519",
            Access::Read,
        ),
    );
    assert_eq!(read.verdict, Verdict::Declared);
    assert_eq!(read.alerts.len(), 1);
    assert_eq!(
        (
            read.alerts[0].kind.as_str(),
            read.alerts[0].severity.as_str()
        ),
        ("sensitive", "high")
    );
    assert_eq!(read.alerts[0].rule.as_deref(), Some("sensitive.ssh"));
}

#[test]
fn lost_events_make_undeclared_actions_unverifiable() {
    let mut c = correlator();
    let alert = c.lost(5, 0, 1_000_000, 3_000_000, 0);
    assert_eq!(alert.kind, "event_loss");
    let inside = judge(&mut c, &open(AGENT_PID, 0, 2, "/opt/secret", Access::Read));
    assert_eq!(inside.verdict, Verdict::Unverifiable);
    assert!(inside.alerts.is_empty());
    let after = judge(&mut c, &open(AGENT_PID, 0, 4, "/opt/secret", Access::Read));
    assert_eq!(after.verdict, Verdict::Undeclared);
    assert_eq!(c.stats().unverifiable, 1);
}

#[test]
fn a_repeated_undeclared_action_alerts_once_a_second() {
    let mut c = correlator();
    let first = judge(&mut c, &open(AGENT_PID, 0, 10, "/opt/x", Access::Read));
    assert_eq!((first.alerts.len(), first.repeated_alerts), (1, 0));
    let again = judge(&mut c, &open(AGENT_PID, 0, 500, "/opt/x", Access::Read));
    assert_eq!(again.verdict, Verdict::Undeclared, "the verdict stays");
    assert_eq!((again.alerts.len(), again.repeated_alerts), (0, 1));
    let other = judge(&mut c, &open(AGENT_PID, 0, 600, "/opt/y", Access::Read));
    assert_eq!(other.alerts.len(), 1, "another file is another alert");
    let later = judge(&mut c, &open(AGENT_PID, 0, 1_200, "/opt/x", Access::Read));
    assert_eq!(later.alerts.len(), 1, "a second on, it is raised again");
}

#[test]
fn a_write_after_a_read_of_one_file_is_its_own_alert() {
    let mut c = correlator();
    let read = judge(
        &mut c,
        &open(AGENT_PID, 0, 10, "/srv/app/config", Access::Read),
    );
    assert_eq!(read.alerts.len(), 1);
    let both = judge(
        &mut c,
        &open(AGENT_PID, 0, 20, "/srv/app/config", Access::ReadWrite),
    );
    assert_eq!(both.alerts.len(), 1, "not a repeat of the read");
    assert!(
        both.alerts[0]
            .message
            .starts_with("undeclared file.read+file.write /srv/app/config by pid"),
        "{}",
        both.alerts[0].message
    );
}

#[test]
fn a_child_forked_after_the_end_does_not_keep_the_call() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"sh","tool":"bash","args":{"command":"ls"}}),
        10,
    );
    let slot = slot_of(&start);
    send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"sh","status":"ok"}),
        20,
    );
    // Forked at 25 ms, after the end, yet tagged with the slot (the reset
    // raced the fork): the slot is not believed.
    let mut late = open(400, slot, 26, "/tmp/x", Access::Write);
    late.start_ns = 25_000_000;
    late.ppid = AGENT_PID;
    let process = crate::process_table::ProcessInfo {
        parent: Some(ProcessKey {
            pid: AGENT_PID,
            start_ns: AGENT_PID as u64,
        }),
        ..process_info(400, 25_000_000)
    };
    let mut table = ProcessTable::new();
    table.register(process.clone());
    let verdict = c.judge(&late, &process, &table, 26_000_000);
    assert_eq!(verdict.tool_call_id, None);
    // One forked during the call keeps it after the end.
    let mut early = open(401, slot, 26, "/tmp/x", Access::Write);
    early.start_ns = 15_000_000;
    early.ppid = AGENT_PID;
    let process = process_info(401, 15_000_000);
    let verdict = c.judge(&early, &process, &table, 26_000_000);
    assert_eq!(verdict.tool_call_id.as_deref(), Some("sh"));
}

#[test]
fn a_process_under_a_call_declares_only_within_it_and_falls_back_to_it() {
    let mut c = correlator();
    let outer = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"sh","tool":"bash","args":{"command":"python3 /tmp/sub.py"}}),
        1,
    );
    let outer_slot = slot_of(&outer);
    // pid 500 was started by the call (it carries its slot) and declares.
    c.connect(
        5,
        Peer {
            pid: 500,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    let decode = |v: serde_json::Value| declare::decode(v.to_string().as_bytes()).unwrap();
    let wide = c.declare_under(
        5,
        decode(json!({"type":"tool.start","call_id":"x","tool":"helper","args":{},"effects":{"file.read":["/**"],"net.connect":["*:*"]}})),
        at(2),
        outer_slot,
    );
    assert!(
        matches!(&wide.reply, Reply::Decision { decision: declare::Decision::Deny, rule: Some(r), .. } if r == crate::correlate::NESTED_RULE),
        "{:?}",
        wide.reply
    );
    let narrow = c.declare_under(
        5,
        decode(json!({"type":"tool.start","call_id":"y","tool":"read_file","args":{"path":"/tmp/in.txt"}})),
        at(3),
        outer_slot,
    );
    assert!(
        matches!(
            &narrow.reply,
            Reply::Decision {
                decision: declare::Decision::Allow,
                ..
            }
        ),
        "{:?}",
        narrow.reply
    );
    // With a call of its own open, its slot names that call: the call it
    // runs under still rules.
    let own = slot_of(&narrow);
    let again = c.declare_under(
        5,
        decode(json!({"type":"tool.start","call_id":"z","tool":"helper","args":{},"effects":{"net.connect":["*:*"]}})),
        at(3),
        own,
    );
    assert!(
        matches!(
            &again.reply,
            Reply::Decision {
                decision: declare::Decision::Deny,
                ..
            }
        ),
        "{:?}",
        again.reply
    );
    send(
        &mut c,
        5,
        json!({"type":"tool.end","call_id":"z","status":"error"}),
        4,
    );
    // When its own calls end, it falls back to the call it runs under.
    send(
        &mut c,
        5,
        json!({"type":"tool.end","call_id":"x","status":"error"}),
        4,
    );
    let end = send(
        &mut c,
        5,
        json!({"type":"tool.end","call_id":"y","status":"ok"}),
        4,
    );
    let fallbacks: Vec<u64> = end.slots.iter().map(|u| u.slot).collect();
    assert!(fallbacks.contains(&outer_slot), "{fallbacks:?}");
}

#[test]
fn nothing_may_be_declared_from_inside_a_denied_call() {
    let mut c = correlator();
    let denied = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"rm","tool":"bash","args":{"command":"rm -rf /"}}),
        1,
    );
    let slot = slot_of(&denied);
    c.connect(
        6,
        Peer {
            pid: 600,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    let request = declare::decode(
        json!({"type":"tool.start","call_id":"n","tool":"bash","args":{"command":"ls"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let nested = c.declare_under(6, request, at(2), slot);
    assert!(
        matches!(&nested.reply, Reply::Decision { decision: declare::Decision::Deny, reason, .. } if reason.contains("was denied")),
        "{:?}",
        nested.reply
    );
}
