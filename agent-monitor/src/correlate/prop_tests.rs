//! Property tests: whatever peers declare and whatever the kernel reports,
//! in any order, the correlator does not panic, every event gets exactly
//! one verdict, and every call it was told of is written once.

use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::{
    actions::{Access, ActionFields, ActionKind},
    declare,
    event::Detail,
    evidence::declared::SessionRow,
    process_table::ProcessTable,
    test_support::{action, actor, process_info},
};

/// Compiled once: the cases differ in what happens, not in the policy.
static POLICY: std::sync::LazyLock<Arc<Policy>> =
    std::sync::LazyLock::new(|| Arc::new(Policy::default_policy()));

#[derive(Clone, Debug)]
enum Op {
    Connect {
        conn: u64,
        pid: u32,
        root: bool,
        tracked: bool,
    },
    Declare {
        conn: u64,
        request: serde_json::Value,
    },
    Event {
        pid: u32,
        slot: u64,
        path: String,
    },
    Loss {
        at: u64,
    },
    Tick,
    Disconnect {
        conn: u64,
    },
}

fn request() -> impl Strategy<Value = serde_json::Value> {
    let call = "c[0-3]";
    let tool = prop_oneof![
        Just("read_file"),
        Just("bash"),
        Just("fetch"),
        Just("custom")
    ];
    let path = "/(data|tmp|etc)/[a-c]";
    prop_oneof![
        ("s[0-2]", any::<bool>()).prop_map(|(id, named)| if named {
            json!({"type":"session.start","session_id":id})
        } else {
            json!({"type":"session.start"})
        }),
        Just(json!({"type":"prompt","text":"go"})),
        call.prop_map(|c| json!({"type":"model.output","text":"ok","tool_calls":[c]})),
        (call, tool.clone(), path).prop_map(|(c, t, p)| json!({
            "type":"tool.start","call_id":c,"tool":t,
            "args":{"path":p,"command":format!("cat {p}"),"url":"http://127.0.0.1:9/"}
        })),
        (call, tool, path).prop_map(|(c, t, p)| json!({
            "type":"tool.start","call_id":c,"tool":t,"args":{},"effects":{"file.read":[p]}
        })),
        (call, any::<bool>()).prop_map(|(c, ok)| json!({
            "type":"tool.end","call_id":c,"status":if ok {"ok"} else {"error"}
        })),
        Just(json!({"type":"session.end"})),
        Just(json!({"type":"prompt","text":"x","agent":"coder"})),
        Just(json!({"type":"prompt","text":"x","agent":"nobody"})),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u64..3, 100u32..104, any::<bool>(), any::<bool>())
            .prop_map(|(conn, pid, root, tracked)| Op::Connect { conn, pid, root, tracked }),
        4 => (0u64..3, request()).prop_map(|(conn, request)| Op::Declare { conn, request }),
        4 => (100u32..106, 0u64..6, "/(data|tmp|etc|root/.ssh)/[a-c]")
            .prop_map(|(pid, slot, path)| Op::Event { pid, slot, path }),
        1 => (0u64..50).prop_map(|at| Op::Loss { at }),
        1 => Just(Op::Tick),
        1 => (0u64..3).prop_map(|conn| Op::Disconnect { conn }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_interleaving_is_judged_once_per_event(ops in prop::collection::vec(op(), 0..60)) {
        let mut agents = Agents::default();
        agents.add("coder");
        let mut c = Correlator::new(POLICY.clone(), agents);
        c.open_session(SessionSpec {
            row: SessionRow { session_id: "run".into(), pid: Some(100), ..SessionRow::default() },
            agent_slot: 1,
            cwd: Some("/data".into()),
        });
        let table = ProcessTable::new();
        let mut judged = 0u64;
        for (step, op) in ops.into_iter().enumerate() {
            let now = Now { boot_ns: step as u64 * 1_000, wall_ns: step as i64 * 1_000 };
            match op {
                Op::Connect { conn, pid, root, tracked } => c.connect(conn, Peer {
                    pid,
                    start_ns: 0,
                    uid: if root { 0 } else { 1000 },
                    agent_slot: tracked.then_some(1),
                }),
                Op::Declare { conn, request } => {
                    let envelope = declare::decode(request.to_string().as_bytes()).unwrap();
                    let outcome = c.declare(conn, envelope, now);
                    prop_assert_eq!(outcome.reply.is_ok() || outcome.records.is_empty(), true);
                }
                Op::Event { pid, slot, path } => {
                    let mut event = actor(pid, pid as u64, 1).at(now.boot_ns).exit(0);
                    event.tool_call = slot;
                    event.detail = Detail::Action(Box::new(action(
                        ActionKind::FileOpen,
                        "openat",
                        3,
                        ActionFields { path: Some(path), access: Some(Access::Read), ..Default::default() },
                    )));
                    let process = process_info(pid, pid as u64);
                    c.judge(&event, &process, &table, now.wall_ns);
                    judged += 1;
                }
                Op::Loss { at } => { c.loss(at * 1_000, at * 1_000 + 500); }
                Op::Tick => { c.tick(now.boot_ns + SUMMARY_DELAY_NS); }
                Op::Disconnect { conn } => { c.disconnect(conn, now); }
            }
        }
        let stats = c.stats();
        prop_assert_eq!(
            stats.declared + stats.baseline + stats.undeclared + stats.unverifiable,
            judged
        );
        let end = Now { boot_ns: u64::MAX / 2, wall_ns: i64::MAX / 2 };
        c.close(end, &table);
        prop_assert!(c.close(end, &table).is_empty(), "everything is written once");
    }
}
