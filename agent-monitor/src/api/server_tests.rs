//! The server against a fake kernel and a real correlator, over a real
//! Unix socket.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use super::*;
use crate::{
    correlate::{Correlator, SessionSpec},
    event::{Event, LossReport},
    evidence::declared::{Declared, SessionRow},
    pipeline::{Agents, Processor, TreeState},
    policy::Policy,
    process_table::ProcessInfo,
    sink::{Attribution, Sink},
};

/// The kernel map as a table, and a log of what was set and when.
#[derive(Clone, Default)]
struct FakeKernel {
    agents: Arc<Mutex<HashMap<u32, u32>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Kernel for FakeKernel {
    fn agent_of(&self, pid: u32) -> Option<(u32, u64)> {
        self.agents.lock().unwrap().get(&pid).map(|a| (*a, 7))
    }

    fn tool_call_of(&self, _pid: u32) -> u64 {
        0
    }

    fn set_tool_call(&self, pid: u32, slot: u64, _start_ns: u64) -> io::Result<()> {
        self.log.lock().unwrap().push(format!("slot {pid} {slot}"));
        Ok(())
    }
}

/// A sink that keeps only the kinds of the alerts recorded.
struct AlertLog(Arc<Mutex<Vec<String>>>);

impl Sink for AlertLog {
    fn event(&mut self, _: &Event, _: &ProcessInfo, _: &Attribution) -> io::Result<()> {
        Ok(())
    }

    fn loss(&mut self, _: &LossReport) -> io::Result<()> {
        Ok(())
    }

    fn declared(&mut self, record: &Declared) -> io::Result<()> {
        if let Declared::Alert(alert) = record {
            self.0.lock().unwrap().push(format!("alert {}", alert.kind));
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The real processing stage, answering declarations on its own task;
/// its alerts go to `log`.
fn stage(log: Arc<Mutex<Vec<String>>>) -> mpsc::Sender<ApiMessage> {
    let (tx, rx) = mpsc::channel::<ApiMessage>(8);
    let mut agents = Agents::default();
    agents.add("coder");
    let mut correlator = Correlator::new(Arc::new(Policy::default_policy()), agents);
    correlator.open_session(SessionSpec {
        row: SessionRow {
            session_id: "run".into(),
            ..SessionRow::default()
        },
        agent_slot: 1,
        cwd: None,
    });
    let processor = Processor::judged_by(AlertLog(log), correlator);
    tokio::spawn(async move {
        // No kernel records in these tests: the input stays open, empty.
        let (_records, input) = mpsc::channel(1);
        let (state, _) = watch::channel(TreeState::default());
        processor.serve(input, Some(rx), state).await;
    });
    tx
}

struct Harness {
    kernel: FakeKernel,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

fn start(tracked: bool) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let kernel = FakeKernel::default();
    if tracked {
        kernel.agents.lock().unwrap().insert(std::process::id(), 1);
    }
    let (stop, stop_rx) = watch::channel(false);
    let to_stage = stage(kernel.log.clone());
    tokio::spawn(serve(
        listener,
        kernel.clone(),
        to_stage,
        WallClock::with_offset(0),
        stop_rx,
    ));
    Harness {
        kernel,
        path,
        _dir: dir,
        _stop: stop,
    }
}

async fn exchange(stream: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    stream.get_mut().write_all(line).await.unwrap();
    let mut reply = String::new();
    stream.read_line(&mut reply).await.unwrap();
    serde_json::from_str(&reply).unwrap()
}

#[tokio::test]
async fn a_tool_call_sets_the_slot_before_the_reply_and_clears_it_at_the_end() {
    let h = start(true);
    let mut s = BufReader::new(UnixStream::connect(&h.path).await.unwrap());
    let reply = exchange(
        &mut s,
        b"{\"type\":\"tool.start\",\"id\":1,\"call_id\":\"c1\",\"tool\":\"read_file\",\"args\":{\"path\":\"/a\"}}\n",
    )
    .await;
    assert_eq!(reply["decision"], "allow", "{reply}");
    assert_eq!(reply["id"], 1);
    let pid = std::process::id();
    // The reply was read after the slot was set: the log already has it.
    assert_eq!(*h.kernel.log.lock().unwrap(), [format!("slot {pid} 1")]);
    let end = exchange(
        &mut s,
        b"{\"type\":\"tool.end\",\"call_id\":\"c1\",\"status\":\"ok\"}\n",
    )
    .await;
    assert_eq!(end, json!({"ok": true}));
    assert_eq!(
        h.kernel.log.lock().unwrap().last().unwrap(),
        &format!("slot {pid} 0")
    );
}

#[tokio::test]
async fn bad_lines_get_their_error_and_the_connection_carries_on() {
    let h = start(true);
    let mut s = BufReader::new(UnixStream::connect(&h.path).await.unwrap());
    let bad = exchange(&mut s, b"{\"type\":\"prompt\",\"text\":\n").await;
    assert_eq!(bad["error"]["code"], "bad_json");
    let mut huge = vec![b'x'; crate::declare::MAX_LINE + 10];
    huge.push(b'\n');
    let too_large = exchange(&mut s, &huge).await;
    assert_eq!(too_large["error"]["code"], "too_large");
    let unknown = exchange(
        &mut s,
        b"{\"type\":\"tool.end\",\"call_id\":\"zz\",\"status\":\"ok\"}\n",
    )
    .await;
    assert_eq!(unknown["error"]["code"], "unknown_call_id");
    let fine = exchange(&mut s, b"{\"type\":\"prompt\",\"text\":\"hello\"}\n").await;
    assert_eq!(fine, json!({"ok": true}));
}

#[tokio::test]
async fn an_outsider_is_refused_and_alerted() {
    let h = start(false);
    let mut s = BufReader::new(UnixStream::connect(&h.path).await.unwrap());
    let reply = exchange(&mut s, b"{\"type\":\"session.start\"}\n").await;
    assert_eq!(reply["error"]["code"], "not_permitted", "{reply}");
    assert_eq!(*h.kernel.log.lock().unwrap(), ["alert spoofed_declaration"]);
}

#[tokio::test]
async fn a_connection_that_closes_ends_its_open_calls() {
    let h = start(true);
    let mut s = BufReader::new(UnixStream::connect(&h.path).await.unwrap());
    exchange(
        &mut s,
        b"{\"type\":\"tool.start\",\"call_id\":\"c1\",\"tool\":\"read_file\",\"args\":{}}\n",
    )
    .await;
    drop(s);
    let pid = std::process::id();
    for _ in 0..100 {
        if h.kernel.log.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        *h.kernel.log.lock().unwrap(),
        [format!("slot {pid} 1"), format!("slot {pid} 0")]
    );
}
