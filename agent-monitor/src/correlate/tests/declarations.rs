//! What a peer may declare, and the rows its declarations write.

use super::*;

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
