//! Calls bound to another process, linked across adapters, and declared
//! after the fact.

use serde_json::json;

use super::tests::{AGENT_PID, correlator, judge, open};
use super::*;
use crate::{
    actions::Access,
    declare::{self, Reply},
    evidence::declared::Declared,
};

const HOOK_PID: u32 = 300;
const PROXY_PID: u32 = 400;
const SERVER_PID: u32 = 401;

fn ms(n: u64) -> Now {
    Now {
        boot_ns: n * 1_000_000,
        wall_ns: (n * 1_000_000) as i64,
    }
}

fn connect(c: &mut Correlator, conn: u64, pid: u32) {
    c.connect(
        conn,
        Peer {
            pid,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
}

/// A process of the agent (slot 1), with no call.
fn of_agent(pid: u32) -> Option<Target> {
    Some(Target {
        pid,
        agent_slot: Some(1),
        slot: 0,
    })
}

fn send(
    c: &mut Correlator,
    conn: u64,
    line: serde_json::Value,
    n: u64,
    target: Option<Target>,
) -> Outcome {
    let envelope = declare::decode(line.to_string().as_bytes()).expect("a valid request");
    c.declare_for(conn, envelope, ms(n), 0, target)
}

fn decision(outcome: &Outcome) -> (&str, Option<&str>) {
    match &outcome.reply {
        Reply::Decision {
            decision, linked, ..
        } => (decision.name(), linked.as_deref()),
        other => panic!("not a decision: {other:?}"),
    }
}

fn rows(c: &mut Correlator, n: u64) -> Vec<crate::evidence::declared::ToolCallRow> {
    c.tick(ms(n).boot_ns)
        .into_iter()
        .filter_map(|d| match d {
            Declared::ToolCall(row) => Some(row),
            _ => None,
        })
        .collect()
}

#[test]
fn a_call_binds_the_process_its_pid_names() {
    let mut c = correlator();
    connect(&mut c, 3, PROXY_PID);
    let start = send(
        &mut c,
        3,
        json!({"type":"tool.start","call_id":"m1","tool":"read_file","args":{"path":"/data/a.txt"},"pid":SERVER_PID,"source":"mcp","mcp_request_id":1}),
        10,
        of_agent(SERVER_PID),
    );
    assert_eq!(decision(&start).0, "allow");
    assert_eq!(start.slots.len(), 1);
    assert_eq!(start.slots[0].pid, SERVER_PID, "the server, not the proxy");
    let read = judge(
        &mut c,
        &open(
            SERVER_PID,
            start.slots[0].slot,
            11,
            "/data/a.txt",
            Access::Read,
        ),
    );
    assert_eq!(read.verdict, Verdict::Declared);
    assert_eq!(read.tool_call_id.as_deref(), Some("m1"));
    let end = send(
        &mut c,
        3,
        json!({"type":"tool.end","call_id":"m1","status":"ok"}),
        12,
        None,
    );
    assert_eq!(
        end.slots,
        [SlotUpdate {
            pid: SERVER_PID,
            slot: 0
        }]
    );
    let row = &rows(&mut c, 3000)[0];
    assert_eq!(
        (row.source.as_str(), row.mcp_request_id.as_deref()),
        ("mcp", Some("1"))
    );
    assert_eq!(row.declared_by.as_deref(), Some("pid 400"));
}

#[test]
fn a_pid_outside_the_agent_is_refused() {
    let mut c = correlator();
    connect(&mut c, 3, PROXY_PID);
    let line = json!({"type":"tool.start","call_id":"m1","tool":"read_file","args":{},"pid":999});
    for target in [
        None,
        Some(Target {
            pid: 999,
            agent_slot: None,
            slot: 0,
        }),
        Some(Target {
            pid: 999,
            agent_slot: Some(2),
            slot: 0,
        }),
    ] {
        let refused = send(&mut c, 3, line.clone(), 10, target);
        assert!(
            matches!(&refused.reply, Reply::Error { code, message, .. } if *code == declare::code::NOT_BOUND && message.contains("pid 999")),
            "{:?}",
            refused.reply
        );
        assert!(refused.slots.is_empty());
    }
}

/// Claude Code's hook declares `mcp__fs__read_file` for Claude's process
/// and exits; the proxy in front of the `fs` server declares `read_file`
/// with the same arguments: one call, one row, bound to both processes.
#[test]
fn a_hook_and_an_mcp_proxy_declare_one_call() {
    let mut c = correlator();
    connect(&mut c, 2, HOOK_PID);
    connect(&mut c, 3, PROXY_PID);
    let args = json!({"path": "/data/a.txt"});
    let hook = send(
        &mut c,
        2,
        json!({"type":"tool.start","call_id":"toolu_1","tool":"mcp__fs__read_file","args":args,
               "pid":AGENT_PID,"source":"hook","tool_use_id":"toolu_1","detached":true}),
        10,
        of_agent(AGENT_PID),
    );
    assert_eq!(decision(&hook), ("allow", None));
    assert_eq!(hook.slots[0].pid, AGENT_PID);
    let slot = hook.slots[0].slot;
    // The hook process is gone: its call is not.
    assert!(c.disconnect(2, ms(11)).is_empty());

    let proxy = send(
        &mut c,
        3,
        json!({"type":"tool.start","call_id":"mcp-1","tool":"read_file","args":args,
               "pid":SERVER_PID,"source":"mcp","mcp_request_id":1}),
        12,
        of_agent(SERVER_PID),
    );
    assert_eq!(decision(&proxy), ("allow", Some("toolu_1")));
    assert_eq!(
        proxy.slots,
        [SlotUpdate {
            pid: SERVER_PID,
            slot
        }]
    );
    assert!(proxy.records.is_empty(), "no second decision row");
    let read = judge(
        &mut c,
        &open(SERVER_PID, slot, 13, "/data/a.txt", Access::Read),
    );
    assert_eq!(read.tool_call_id.as_deref(), Some("toolu_1"));
    assert_eq!(read.verdict, Verdict::Declared);

    // The server answered: its slot falls back, the call stays open for
    // Claude until PostToolUse.
    let end = send(
        &mut c,
        3,
        json!({"type":"tool.end","call_id":"mcp-1","status":"ok","result":{"content":[]}}),
        14,
        None,
    );
    assert_eq!(
        end.slots,
        [SlotUpdate {
            pid: SERVER_PID,
            slot: 0
        }]
    );
    assert!(rows(&mut c, 5000).is_empty(), "still open");

    connect(&mut c, 4, HOOK_PID + 1);
    let post = send(
        &mut c,
        4,
        json!({"type":"tool.end","call_id":"toolu_1","status":"ok"}),
        20,
        None,
    );
    assert!(post.reply.is_ok(), "{:?}", post.reply);
    assert_eq!(
        post.slots,
        [SlotUpdate {
            pid: AGENT_PID,
            slot: 0
        }]
    );
    let rows = rows(&mut c, 3000 + 20);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.call_id, "toolu_1");
    assert_eq!(row.source, "hook");
    assert_eq!(row.tool_use_id.as_deref(), Some("toolu_1"));
    assert_eq!(row.mcp_request_id.as_deref(), Some("1"));
    assert_eq!(row.status, "ok");
    assert_eq!(row.result.as_deref(), Some(r#"{"content":[]}"#));
    assert_eq!(row.events, 1);
}

#[test]
fn a_denied_call_is_denied_for_every_adapter() {
    let mut c = correlator();
    connect(&mut c, 2, HOOK_PID);
    connect(&mut c, 3, PROXY_PID);
    let args = json!({"url": "http://169.254.169.254/latest/meta-data/"});
    let hook = send(
        &mut c,
        2,
        json!({"type":"tool.start","call_id":"toolu_9","tool":"mcp__web__fetch","args":args,
               "source":"hook","tool_use_id":"toolu_9"}),
        10,
        None,
    );
    assert_eq!(decision(&hook).0, "deny");
    let proxy = send(
        &mut c,
        3,
        json!({"type":"tool.start","call_id":"mcp-9","tool":"fetch","args":args,"source":"mcp"}),
        11,
        None,
    );
    assert_eq!(decision(&proxy), ("deny", Some("toolu_9")));
}

#[test]
fn different_arguments_or_the_same_source_do_not_link() {
    let mut c = correlator();
    connect(&mut c, 3, PROXY_PID);
    let first = send(
        &mut c,
        3,
        json!({"type":"tool.start","call_id":"a","tool":"read_file","args":{"path":"/data/a.txt"},"source":"mcp"}),
        10,
        None,
    );
    assert_eq!(decision(&first).1, None);
    for (line, why) in [
        (
            json!({"type":"tool.start","call_id":"b","tool":"read_file","args":{"path":"/data/a.txt"},"source":"mcp"}),
            "same source",
        ),
        (
            json!({"type":"tool.start","call_id":"c","tool":"read_file","args":{"path":"/data/b.txt"},"source":"hook"}),
            "other arguments",
        ),
        (
            json!({"type":"tool.start","call_id":"d","tool":"write_file","args":{"path":"/data/a.txt"},"source":"hook"}),
            "other tool",
        ),
    ] {
        let other = send(&mut c, 3, line, 11, None);
        assert_eq!(decision(&other).1, None, "{why}");
    }
}

/// An OpenTelemetry span arrives after its tool ran: the event was judged
/// undeclared before; judged again, the call declared after the fact
/// covers it.
#[test]
fn a_call_declared_after_the_fact_covers_what_it_did() {
    let mut c = correlator();
    let read = open(AGENT_PID, 0, 50, "/data/report.txt", Access::Read);
    let before = judge(&mut c, &read);
    assert_eq!(before.verdict, Verdict::Undeclared);
    let counts = c.stats();
    let receiver = RECEIVER_CONN | 1;
    c.connect(
        receiver,
        Peer {
            pid: AGENT_PID,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );

    let start = send(
        &mut c,
        receiver,
        json!({"type":"tool.start","call_id":"call_7","tool":"read_file","args":{"path":"/data/report.txt"},
               "source":"otel","tool_use_id":"call_7","otel_span_id":"00f067aa0ba902b7","at":40_000_000}),
        200,
        None,
    );
    assert_eq!(decision(&start).0, "allow");
    assert!(start.slots.is_empty(), "a span binds no process");
    assert_eq!(start.rejudge, None, "its end is not known yet");
    let end = send(
        &mut c,
        receiver,
        json!({"type":"tool.end","call_id":"call_7","status":"ok","at":60_000_000}),
        201,
        None,
    );
    assert_eq!(
        end.rejudge,
        Some(LateWindow {
            agent_slot: 1,
            from_ns: 40_000_000,
            to_ns: 60_000_000
        })
    );

    let mut table = crate::process_table::ProcessTable::new();
    let process = crate::test_support::process_info(AGENT_PID, AGENT_PID as u64);
    table.register(process.clone());
    let after = c
        .rejudge(&read, &process, &table, 50_000_000, &before)
        .expect("covered now");
    assert_eq!(after.verdict, Verdict::Declared);
    assert_eq!(after.tool_call_id.as_deref(), Some("call_7"));
    let stats = c.stats();
    assert_eq!(stats.undeclared, counts.undeclared - 1);
    assert_eq!(stats.declared, counts.declared + 1);

    // Outside its window, nothing changes.
    let later = open(AGENT_PID, 0, 70, "/data/report.txt", Access::Read);
    let undeclared = judge(&mut c, &later);
    assert_eq!(undeclared.verdict, Verdict::Undeclared);
    assert!(
        c.rejudge(&later, &process, &table, 70_000_000, &undeclared)
            .is_none()
    );

    let rows = rows(&mut c, 201 + 3000);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].started, rows[0].ended),
        (40_000_000, Some(60_000_000))
    );
    assert_eq!(rows[0].otel_span_id.as_deref(), Some("00f067aa0ba902b7"));
}

#[test]
fn times_in_the_future_and_bound_spans_are_refused() {
    let mut c = correlator();
    let future = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"x","tool":"t","args":{},"at":5_000_000_000_i64}),
        10,
        None,
    );
    assert!(
        matches!(&future.reply, Reply::Error { message, .. } if message.contains("future")),
        "{:?}",
        future.reply
    );
    let bound = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"y","tool":"t","args":{},"at":1_000_000,"pid":AGENT_PID}),
        10,
        None,
    );
    assert!(!bound.reply.is_ok());
}

#[test]
fn reads_by_the_monitors_own_binary_are_its_machinery() {
    let mut c = correlator().with_monitor_exe(Some(MonitorExe::known(
        "/usr/local/bin/agent-monitor",
        "sha-of-the-monitor",
    )));
    let mut table = crate::process_table::ProcessTable::new();
    let mut hook = crate::test_support::process_info(HOOK_PID, 1);
    hook.exe = Some("/usr/bin/agent-monitor".into());
    hook.identity.exe_sha256 = Some("sha-of-the-monitor".into());
    table.register(hook.clone());
    let read = open(HOOK_PID, 0, 10, "/proc/100/stat", Access::Read);
    let judged = c.judge(&read, &hook, &table, 10);
    assert_eq!(judged.verdict, Verdict::Baseline);
    assert_eq!(judged.rule.as_deref(), Some("monitor.cli"));
    // Only the reads the machinery needs.
    let other_read = open(HOOK_PID, 0, 11, "/data/notes.txt", Access::Read);
    assert_eq!(
        c.judge(&other_read, &hook, &table, 11).verdict,
        Verdict::Undeclared
    );
    // A binary named like the monitor, but not it (a path the agent swapped).
    let mut impostor = hook.clone();
    impostor.identity.exe_sha256 = Some("sha-of-something-else".into());
    assert_eq!(
        c.judge(&read, &impostor, &table, 12).verdict,
        Verdict::Undeclared
    );
}

/// A script running inside a narrow `bash` call declares a broad call for
/// Claude's process (allowed: Claude's slot names a call of its own), then
/// declares it again from another adapter, binding itself, to join it and
/// leave the call it runs in. The join is refused; declared on its own,
/// the nesting rule denies it.
#[test]
fn joining_a_call_does_not_take_a_process_out_of_the_call_it_runs_in() {
    let mut c = correlator();
    let bash = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"c2","tool":"read_file","args":{"path":"/data/a.txt"}}),
        10,
        None,
    );
    let c2 = bash.slots[0].slot;
    const SCRIPT: u32 = 500;
    c.connect(
        5,
        Peer {
            pid: SCRIPT,
            start_ns: 0,
            uid: 1000,
            agent_slot: Some(1),
        },
    );
    let args = json!({"path": "/home/dev/.ssh/id_rsa"});
    let envelope = |line: serde_json::Value| declare::decode(line.to_string().as_bytes()).unwrap();
    let broad = c.declare_for(
        5,
        envelope(json!({"type":"tool.start","call_id":"c3","tool":"read_file","args":args,"pid":AGENT_PID,"source":"hook"})),
        ms(11),
        c2,
        Some(Target {
            pid: AGENT_PID,
            agent_slot: Some(1),
            slot: c2,
        }),
    );
    assert_eq!(decision(&broad).0, "allow");
    let escape = c.declare_for(
        5,
        envelope(json!({"type":"tool.start","call_id":"m3","tool":"read_file","args":args,"source":"mcp"})),
        ms(12),
        c2,
        None,
    );
    assert_eq!(decision(&escape), ("deny", None), "{:?}", escape.reply);
    assert!(
        matches!(&escape.reply, Reply::Decision { rule: Some(r), .. } if r == NESTED_RULE),
        "{:?}",
        escape.reply
    );
}

#[test]
fn only_the_receiver_declares_for_opentelemetry() {
    let mut c = correlator();
    let claimed = send(
        &mut c,
        1,
        json!({"type":"tool.start","call_id":"x","tool":"t","args":{},"source":"otel"}),
        10,
        None,
    );
    assert!(
        matches!(&claimed.reply, Reply::Error { message, .. } if message.contains("source")),
        "{:?}",
        claimed.reply
    );
}
