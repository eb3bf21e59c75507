//! Correlation without the kernel: declarations and events in, verdicts,
//! rows and alerts out.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::{
    actions::{Access, ActionFields, ActionKind},
    declare::{self, Reply},
    event::{Detail, Event},
    evidence::declared::{Declared, SessionRow, ToolCallRow},
    process_table::{ProcessKey, ProcessTable},
    test_support::{action, actor, process_info, s},
};

pub(super) const AGENT_PID: u32 = 100;
const SESSION: &str = "run-session";

pub(super) fn correlator() -> Correlator {
    let mut agents = Agents::default();
    agents.add("coder");
    let mut c = Correlator::new(Arc::new(Policy::default_policy()), agents).with_monitor_pid(1);
    c.open_session(SessionSpec {
        row: SessionRow {
            session_id: SESSION.into(),
            agent: "coder".into(),
            source: "run".into(),
            pid: Some(AGENT_PID),
            ..SessionRow::default()
        },
        agent_slot: 1,
        cwd: Some("/home/dev/agent".into()),
    });
    c.connect(
        1,
        Peer {
            pid: AGENT_PID,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    c
}

fn at(ms: u64) -> Now {
    Now {
        boot_ns: ms * 1_000_000,
        wall_ns: (ms * 1_000_000) as i64,
    }
}

fn send(c: &mut Correlator, conn: u64, line: serde_json::Value, ms: u64) -> Outcome {
    let envelope = declare::decode(line.to_string().as_bytes()).expect("a valid request");
    c.declare(conn, envelope, at(ms))
}

pub(super) fn open(pid: u32, slot: u64, ms: u64, path: &str, access: Access) -> Event {
    let mut event = actor(pid, pid as u64, 1).at(ms * 1_000_000).exit(0);
    event.tool_call = slot;
    event.detail = Detail::Action(Box::new(action(
        ActionKind::FileOpen,
        "openat",
        3,
        ActionFields {
            path: s(path),
            access: Some(access),
            ..Default::default()
        },
    )));
    event
}

pub(super) fn judge(c: &mut Correlator, event: &Event) -> Judgement {
    let mut table = ProcessTable::new();
    let mut process = process_info(event.pid, event.start_ns);
    if event.pid != AGENT_PID {
        process.parent = Some(ProcessKey {
            pid: AGENT_PID,
            start_ns: AGENT_PID as u64,
        });
    }
    table.register(process.clone());
    let wall = event.ts_ns as i64;
    c.judge(event, &process, &table, wall)
}

fn slot_of(outcome: &Outcome) -> u64 {
    outcome.slots.first().expect("a slot update").slot
}

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
fn outsiders_are_refused_and_alerted_and_root_may_name_the_agent() {
    let mut c = correlator();
    c.connect(
        7,
        Peer {
            pid: 999,
            start_ns: 0,
            uid: 1000,
            agent_slot: None,
        },
    );
    let refused = send(&mut c, 7, json!({"type":"prompt","text":"hi","id":4}), 1);
    assert!(
        matches!(&refused.reply, Reply::Error { code, id: Some(id), .. } if *code == declare::code::NOT_PERMITTED && *id == json!(4))
    );
    assert_eq!(refused.alerts.len(), 1);
    assert_eq!(refused.alerts[0].kind, "spoofed_declaration");
    assert!(refused.records.is_empty());

    let named = send(
        &mut c,
        7,
        json!({"type":"prompt","text":"hi","agent":"coder"}),
        1,
    );
    assert!(
        matches!(&named.reply, Reply::Error { .. }),
        "only root may name an agent"
    );

    c.connect(
        8,
        Peer {
            pid: 998,
            start_ns: 0,
            uid: 0,
            agent_slot: None,
        },
    );
    let root = send(
        &mut c,
        8,
        json!({"type":"session.start","agent":"coder"}),
        1,
    );
    assert!(root.reply.is_ok(), "{:?}", root.reply);
    let unknown = send(
        &mut c,
        8,
        json!({"type":"session.start","agent":"nobody"}),
        1,
    );
    assert!(!unknown.reply.is_ok());
    assert_eq!(c.stats().refused, 3);
}

#[test]
fn bad_requests_change_nothing() {
    let mut c = correlator();
    send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/data/a"}}),
        10,
    );
    let unknown = send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"nope","status":"ok"}),
        11,
    );
    assert!(
        matches!(unknown.reply, Reply::Error { code, .. } if code == declare::code::UNKNOWN_CALL_ID)
    );
    let dup = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{}}),
        11,
    );
    assert!(
        matches!(dup.reply, Reply::Error { code, .. } if code == declare::code::DUPLICATE_CALL_ID)
    );
    // c1 is still open and still covers its file.
    let read = judge(&mut c, &open(AGENT_PID, 1, 12, "/data/a", Access::Read));
    assert_eq!(read.verdict, Verdict::Declared);
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

fn tool_call_rows(records: &[Declared]) -> Vec<&ToolCallRow> {
    records
        .iter()
        .filter_map(|r| match r {
            Declared::ToolCall(row) => Some(row),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_is_summarised_once_its_late_events_are_in() {
    let mut c = correlator();
    let start = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"summarise","args":{"path":"/data/a"},"effects":{"file.read":["/data/a","/data/b"]}}),
        10,
    );
    let slot = slot_of(&start);
    send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"c1","status":"ok","result":{"n":1}}),
        20,
    );
    assert!(
        c.tick(21_000_000).is_empty(),
        "too early: late events may still come"
    );
    judge(&mut c, &open(AGENT_PID, slot, 15, "/data/a", Access::Read));
    let rows = c.tick(20_000_000 + SUMMARY_DELAY_NS);
    let rows = tool_call_rows(&rows);
    assert_eq!(rows.len(), 1);
    let row = rows[0];
    assert_eq!(
        (row.status.as_str(), row.result.as_deref()),
        ("ok", Some(r#"{"n":1}"#))
    );
    assert_eq!(row.events, 1);
    assert_eq!(row.effects_seen, ["file.read /data/a"]);
    assert_eq!(row.declared_unseen, ["file.read /data/b"]);
    assert!(row.undeclared_effects.is_empty());
    assert!(!row.events_lost);
    assert!(c.tick(u64::MAX).is_empty(), "written once");
}

#[test]
fn closing_ends_open_calls_and_writes_the_sessions() {
    let mut c = correlator();
    send(
        &mut c,
        1,
        json!({"type":"session.start","session_id":SESSION,"task":"summarise","user":"ana"}),
        1,
    );
    send(&mut c, 1, json!({"type":"prompt","text":"go"}), 2);
    send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/a"}}),
        3,
    );
    let rows = c.close(at(9), &ProcessTable::new());
    let calls = tool_call_rows(&rows);
    assert_eq!(calls[0].status, "unfinished");
    let sessions: Vec<&SessionRow> = rows
        .iter()
        .filter_map(|r| match r {
            Declared::Session(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].task.as_deref(), Some("summarise"));
    assert_eq!(sessions[0].user.as_deref(), Some("ana"));
    assert_eq!(sessions[0].ended, Some(at(9).wall_ns));
}

#[test]
fn messages_link_the_calls_the_model_asked_for() {
    let mut c = correlator();
    let out = send(
        &mut c,
        1,
        json!({"type":"model.output","text":"reading","tool_calls":[{"call_id":"c1","tool":"read_file"},"c2"]}),
        1,
    );
    match &out.records[..] {
        [Declared::Message(m)] => {
            assert_eq!(m.role, "model_output");
            assert_eq!(m.tool_call_ids, ["c1", "c2"]);
            assert_eq!(m.session_id, SESSION);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn disconnecting_ends_the_connections_calls() {
    let mut c = correlator();
    send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/a"}}),
        3,
    );
    let updates = c.disconnect(1, at(4));
    assert_eq!(
        updates,
        [SlotUpdate {
            pid: AGENT_PID,
            slot: 0
        }]
    );
    let rows = c.tick(u64::MAX);
    assert_eq!(tool_call_rows(&rows)[0].status, "disconnected");
}

#[test]
fn an_ended_session_is_written_at_once_and_only_once() {
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
    send(
        &mut c,
        2,
        json!({"type":"session.start","session_id":"sub","task":"t"}),
        1,
    );
    assert!(
        c.ended_sessions(&ProcessTable::new()).is_empty(),
        "still open"
    );
    send(&mut c, 2, json!({"type":"session.end"}), 5);
    let rows = c.ended_sessions(&ProcessTable::new());
    assert!(
        matches!(&rows[..], [Declared::Session(s)] if s.session_id == "sub" && s.ended == Some(at(5).wall_ns)),
        "{rows:?}"
    );
    assert!(c.ended_sessions(&ProcessTable::new()).is_empty());
    // At the end only the run's session is left to write.
    let closing = c.close(at(9), &ProcessTable::new());
    let ids: Vec<&str> = closing
        .iter()
        .filter_map(|r| match r {
            Declared::Session(s) => Some(s.session_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, [SESSION]);
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
fn call_ids_are_never_reused_and_an_ended_session_takes_nothing_more() {
    let mut c = correlator();
    send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"read_file","args":{"path":"/a"}}),
        1,
    );
    send(
        &mut c,
        1,
        json!({"type":"tool.end","call_id":"c1","status":"ok"}),
        2,
    );
    let again = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c1","tool":"bash","args":{"command":"rm -rf /"}}),
        3,
    );
    assert!(
        matches!(again.reply, Reply::Error { code, .. } if code == declare::code::DUPLICATE_CALL_ID)
    );
    send(&mut c, 1, json!({"type":"session.end"}), 4);
    let after = send(&mut c, 1, json!({"type":"prompt","text":"more"}), 5);
    assert!(matches!(after.reply, Reply::Error { code, .. } if code == declare::code::NO_SESSION));
    let rejoin = send(
        &mut c,
        1,
        json!({"type":"session.start","session_id":SESSION}),
        6,
    );
    assert!(
        matches!(rejoin.reply, Reply::Error { code, .. } if code == declare::code::NOT_PERMITTED)
    );
}

#[test]
fn a_peer_cannot_make_the_monitor_compile_megabytes_of_patterns() {
    let mut c = correlator();
    let patterns: Vec<String> = (0..40)
        .map(|i| format!("/data/{i}/{}", "x".repeat(2000)))
        .collect();
    let huge = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"big","tool":"custom","args":{},"effects":{"file.read":patterns}}),
        1,
    );
    assert!(
        matches!(&huge.reply, Reply::Error { code, message, .. } if *code == "bad_field" && message.contains("bytes")),
        "{:?}",
        huge.reply
    );
    assert!(huge.slots.is_empty() && huge.records.is_empty());
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

#[test]
fn a_process_reusing_a_session_owners_pid_is_not_in_its_session() {
    let mut c = correlator();
    c.connect(
        2,
        Peer {
            pid: 300,
            start_ns: 300,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    send(
        &mut c,
        2,
        json!({"type":"session.start","session_id":"owned"}),
        1,
    );
    let mut table = ProcessTable::new();
    table.register(process_info(300, 300));
    let owner = open(300, 0, 2, "/usr/lib/x.so", Access::Read);
    let verdict = c.judge(&owner, &process_info(300, 300), &table, 2);
    assert_eq!(verdict.session_id.as_deref(), Some("owned"));
    // pid 300 again, another process (started later).
    let mut table = ProcessTable::new();
    table.register(process_info(300, 9_000));
    let mut other = open(300, 0, 10, "/usr/lib/x.so", Access::Read);
    other.start_ns = 9_000;
    let verdict = c.judge(&other, &process_info(300, 9_000), &table, 10);
    assert_eq!(
        verdict.session_id.as_deref(),
        Some(SESSION),
        "the run's session, not `owned`"
    );
}
