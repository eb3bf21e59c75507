//! Undeclared events held for calls declared after the fact.

use serde_json::json;
use tokio::sync::oneshot;

use super::*;
use crate::{
    actions::{Access, ActionFields, ActionKind},
    api::ApiMessage,
    correlate::{Now, Peer, SessionSpec},
    evidence::declared::SessionRow,
    test_support::{action, s},
};

/// A sink keeping each event's verdict and call.
#[derive(Default)]
struct Verdicts(Vec<(u64, String, Option<String>)>);

impl Sink for Verdicts {
    fn event(&mut self, event: &Event, _: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        let verdict = who.verdict.unwrap_or_default().to_string();
        self.0
            .push((event.seq, verdict, who.tool_call_id.map(String::from)));
        Ok(())
    }

    fn process(&mut self, _: &ProcessInfo, _: &str) -> io::Result<()> {
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const MS: u64 = 1_000_000;

fn read(seq: u64, ms: u64, path: &str) -> Record {
    let mut event = test_support::actor(100, 100, 1).at(ms * MS).exit(0);
    event.seq = seq;
    event.detail = Detail::Action(Box::new(action(
        ActionKind::FileOpen,
        "openat",
        3,
        ActionFields {
            path: s(path),
            access: Some(Access::Read),
            ..Default::default()
        },
    )));
    Record::Event(event)
}

fn declare(p: &mut Processor<Verdicts>, line: serde_json::Value) -> crate::declare::Reply {
    let (answer, answered) = oneshot::channel();
    let envelope = crate::declare::decode(line.to_string().as_bytes()).expect("valid");
    p.declaration(ApiMessage::Request {
        conn: crate::correlate::RECEIVER_CONN | 1,
        envelope,
        now: Now {
            boot_ns: 1_000 * MS,
            wall_ns: (1_000 * MS) as i64,
        },
        slot: 0,
        target: None,
        answer,
    });
    answered.blocking_recv().expect("answered").reply
}

fn late_processor() -> Processor<Verdicts> {
    let mut p = Processor::new(Verdicts::default(), agents())
        .with_cwd_lookup(fake_cwd)
        .with_identity_lookup(fake_identity)
        .with_late_declarations(Duration::from_secs(30));
    p.declares_late(1);
    p.correlator_mut().open_session(SessionSpec {
        row: SessionRow {
            session_id: "s".into(),
            agent: "claude-code".into(),
            source: "run".into(),
            pid: Some(100),
            ..SessionRow::default()
        },
        agent_slot: 1,
        cwd: Some("/home/u/project".into()),
    });
    p.declaration(ApiMessage::Connect {
        conn: crate::correlate::RECEIVER_CONN | 1,
        peer: Peer {
            pid: 100,
            start_ns: 100,
            uid: 1000,
            agent_slot: Some(1),
        },
    });
    p
}

#[test]
fn a_span_declared_after_its_tool_ran_covers_what_it_did() {
    let mut p = late_processor();
    p.handle(read(1, 50, "/data/report.txt"));
    p.handle(read(2, 80, "/data/report.txt"));
    assert!(p.sink.0.is_empty(), "undeclared events wait");

    let start = declare(
        &mut p,
        json!({"type":"tool.start","call_id":"call_1","tool":"read_file","args":{"path":"/data/report.txt"},
               "source":"otel","at":40 * MS}),
    );
    assert!(start.is_ok(), "{start:?}");
    assert!(
        p.sink.0.is_empty(),
        "no window before the span's end is known"
    );
    declare(
        &mut p,
        json!({"type":"tool.end","call_id":"call_1","status":"ok","at":60 * MS}),
    );
    assert_eq!(
        p.sink.0,
        [(1, "declared".to_string(), Some("call_1".to_string()))]
    );
    assert_eq!(p.stats().late_covered, 1);

    // The read after the span is written as judged once its time is up.
    p.release_held(true);
    assert_eq!(p.sink.0.len(), 2);
    assert_eq!(p.sink.0[1], (2, "undeclared".to_string(), None));
}

#[test]
fn without_a_grace_period_nothing_waits() {
    let mut p = late_processor().with_late_declarations(Duration::ZERO);
    p.handle(read(1, 50, "/data/report.txt"));
    assert_eq!(p.sink.0, [(1, "undeclared".to_string(), None)]);
}
