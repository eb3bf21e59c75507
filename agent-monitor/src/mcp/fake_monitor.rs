//! A fake monitor on a real Unix socket, for the proxy's unit tests: it
//! answers `tool.start` as a policy would and records every request.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixListener,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};

use super::{
    declarer::{Declarer, DeclarerOptions},
    gate::{Gate, GateOptions},
};

/// How long the monitor takes to decide about tool `slow`.
pub(super) const SLOW: std::time::Duration = std::time::Duration::from_millis(200);

/// A monitor that allows every tool but `forbidden`, refuses `refused`,
/// takes [`SLOW`] to decide about `slow`, will not bind pid 4242, and
/// records every request. It hangs up after
/// `hang_up_after` requests on a connection, when set.
pub(super) struct FakeMonitor {
    _dir: tempfile::TempDir,
    pub(super) socket: PathBuf,
    pub(super) requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeMonitor {
    pub(super) fn start(hang_up_after: Option<usize>) -> FakeMonitor {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let reader = BufReader::new(stream.try_clone().unwrap());
                for (n, line) in reader.lines().enumerate() {
                    let Ok(line) = line else { break };
                    if hang_up_after == Some(n) {
                        break;
                    }
                    let request: Value = serde_json::from_str(&line).unwrap();
                    if request["tool"] == "slow" {
                        std::thread::sleep(SLOW);
                    }
                    let reply = answer(&request);
                    seen.lock().unwrap().push(request);
                    let _ = stream.write_all(format!("{reply}\n").as_bytes());
                }
            }
        });
        FakeMonitor {
            _dir: dir,
            socket,
            requests,
        }
    }

    pub(super) fn gate(&self, options: GateOptions) -> Gate {
        let declarer = Declarer::connect(DeclarerOptions {
            socket: Some(self.socket.clone()),
            agent: None,
        })
        .expect("the fake monitor answers");
        Gate::new(Arc::new(declarer), options)
    }

    /// The requests of `type`, once the gate's declarer has finished.
    pub(super) fn sent(&self, gate: &Gate, kind: &str) -> Vec<Value> {
        gate.declarer().finish();
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["type"] == kind)
            .cloned()
            .collect()
    }
}

fn answer(request: &Value) -> Value {
    match (request["type"].as_str(), request["tool"].as_str()) {
        (Some("tool.start"), _) if request["pid"] == 4242 => json!({
            "ok": false,
            "error": {"code": "not_bound", "message": "pid 4242 is not a live process of agent `a`"},
        }),
        (Some("tool.start"), Some("forbidden")) => json!({
            "ok": true, "decision": "deny", "reason": "no, never", "rule": "deny.forbidden",
        }),
        (Some("tool.start"), Some("refused")) => json!({
            "ok": false, "error": {"code": "bad_field", "message": "field `args`: too odd"},
        }),
        (Some("tool.start"), _) => {
            json!({"ok": true, "decision": "allow", "reason": "fine", "rule": "infer"})
        }
        _ => json!({"ok": true}),
    }
}
