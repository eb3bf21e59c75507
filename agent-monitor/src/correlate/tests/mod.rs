//! Correlation without the kernel: declarations and events in, verdicts,
//! rows and alerts out. The helpers are here; `calls` judges actions
//! against the calls open when they happened, `declarations` covers what a
//! peer may declare and the rows declarations write.

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

fn tool_call_rows(records: &[Declared]) -> Vec<&ToolCallRow> {
    records
        .iter()
        .filter_map(|r| match r {
            Declared::ToolCall(row) => Some(row),
            _ => None,
        })
        .collect()
}

mod calls;
mod declarations;
