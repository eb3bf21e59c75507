//! Accepting connections and serving their lines, one task each.

use std::{
    io,
    sync::atomic::{AtomicBool, Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot, watch},
};

use super::{Answer, ApiMessage};
use crate::{
    admission::Admission,
    correlate::{Now, Peer, SlotUpdate, Target},
    declare::{LineSplitter, Reply, Request, decode_with_id},
    kernel::tracker::Slots,
    time::WallClock,
};

/// What the server needs of the kernel: who a pid is, and setting its
/// tool-call slot. A trait so that the server is tested without BPF.
pub trait Kernel: Clone + Send + Sync + 'static {
    /// The agent slot and start time of a tracked process; none for any
    /// other.
    fn agent_of(&self, pid: u32) -> Option<(u32, u64)>;
    /// The process's tool-call slot now (0: none, or not tracked).
    fn tool_call_of(&self, pid: u32) -> u64;
    /// Sets the slot of `pid`, if it is still the process that started at
    /// `start_ns` (0: unknown, any).
    fn set_tool_call(&self, pid: u32, slot: u64, start_ns: u64) -> io::Result<()>;

    /// Sets the slot an answer asks for. `peer` is the declaring process's
    /// pid and start, when known: its own slot is set only while the pid is
    /// still that process. The socket server and the OTLP receiver share
    /// this, and its report-once.
    fn apply_slot(&self, update: SlotUpdate, peer: Option<(u32, u64)>) {
        let start = match peer {
            Some((pid, start)) if pid == update.pid => start,
            _ => 0,
        };
        // A process that has exited is no longer in the map: nothing to set.
        if let Err(err) = self.set_tool_call(update.pid, update.slot, start)
            && err.kind() != io::ErrorKind::NotFound
            && !SLOT_FAILURE_REPORTED.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "agent-monitor: setting the tool-call slot of pid {} failed: {err}; \
                 its children's actions are judged without it",
                update.pid
            );
        }
    }
}

impl Kernel for Slots {
    fn agent_of(&self, pid: u32) -> Option<(u32, u64)> {
        // A pending process is not an agent's until the daemon says so.
        self.lookup(pid)
            .filter(|p| p.agent != 0 && p.agent & agent_monitor_common::maps::AGENT_PENDING == 0)
            .map(|p| (p.agent, p.start_ns))
    }

    fn set_tool_call(&self, pid: u32, slot: u64, start_ns: u64) -> io::Result<()> {
        Slots::set_tool_call(self, pid, slot, start_ns)
    }

    fn tool_call_of(&self, pid: u32) -> u64 {
        self.lookup(pid).map_or(0, |p| p.tool_call)
    }
}

/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 64 << 10;

/// Connections served at once. Each holds a file descriptor the monitor
/// also needs for its evidence; past the limit a new connection gets one
/// error line and is closed, and the refusal is reported once.
pub const MAX_CONNECTIONS: usize = 256;

/// Accepts connections until `stop` turns true, serving each on its own
/// task. Requests go to the processing stage through `to_stage`.
pub async fn serve<K: Kernel>(
    listener: UnixListener,
    kernel: K,
    to_stage: mpsc::Sender<ApiMessage>,
    clock: WallClock,
    mut stop: watch::Receiver<bool>,
) {
    let mut next_conn = 0u64;
    let mut admission = Admission::new("declaration socket", MAX_CONNECTIONS);
    let refusal = |limit: usize| {
        Reply::not_permitted(None, &format!("{limit} connections are open already")).to_line()
    };
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let accepted = accepted.map(|(stream, _)| stream);
        let Some((stream, slot)) = admission.admit(accepted, refusal).await else {
            continue;
        };
        next_conn += 1;
        let connection = Connection {
            conn: next_conn,
            peer: std::sync::OnceLock::new(),
            kernel: kernel.clone(),
            to_stage: to_stage.clone(),
            clock,
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop(slot);
        });
    }
}

struct Connection<K> {
    conn: u64,
    /// The peer's pid and start, once known.
    peer: std::sync::OnceLock<(u32, u64)>,
    kernel: K,
    to_stage: mpsc::Sender<ApiMessage>,
    clock: WallClock,
}

/// A slot that could not be set is reported once per run: the call is
/// still recorded, but its children cannot be bound to it.
static SLOT_FAILURE_REPORTED: AtomicBool = AtomicBool::new(false);

impl<K: Kernel> Connection<K> {
    fn now(&self) -> Now {
        let boot_ns = WallClock::boot_now_ns();
        Now {
            boot_ns,
            wall_ns: self.clock.wall_ns(boot_ns) as i64,
        }
    }

    async fn serve(self, mut stream: UnixStream) {
        let peer = match stream.peer_cred() {
            Ok(cred) => {
                let pid = cred.pid().unwrap_or(0) as u32;
                let tracked = self.kernel.agent_of(pid);
                Peer {
                    pid,
                    start_ns: tracked.map_or(0, |(_, start)| start),
                    uid: cred.uid(),
                    agent_slot: tracked.map(|(agent, _)| agent),
                }
            }
            Err(err) => {
                eprintln!("agent-monitor: reading a declaration peer's credentials failed: {err}");
                return;
            }
        };
        let pid = peer.pid;
        let _ = self.peer.set((peer.pid, peer.start_ns));
        let connect = ApiMessage::Connect {
            conn: self.conn,
            peer,
        };
        if self.to_stage.send(connect).await.is_err() {
            return;
        }
        let mut lines = LineSplitter::default();
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            lines.feed(&chunk[..n]);
            while let Some(line) = lines.next_line() {
                if !self.handle(&mut stream, pid, line).await {
                    return self.disconnect().await;
                }
            }
        }
        if let Some(line) = lines.finish() {
            self.handle(&mut stream, pid, line).await;
        }
        self.disconnect().await;
    }

    /// Answers one line; false when the connection or the stage is gone.
    async fn handle(
        &self,
        stream: &mut UnixStream,
        pid: u32,
        line: Result<Vec<u8>, crate::declare::Oversize>,
    ) -> bool {
        let now = self.now();
        let decoded = line
            .map_err(|oversize| crate::declare::Rejected {
                id: None,
                error: oversize.into(),
            })
            .and_then(|line| decode_with_id(&line));
        let reply = match decoded {
            Ok(envelope) => {
                let (answer, answered) = oneshot::channel();
                let target = match &envelope.request {
                    Request::ToolStart(start) => start
                        .pid
                        .filter(|p| *p != pid)
                        .map(|p| target(&self.kernel, p)),
                    _ => None,
                };
                let request = ApiMessage::Request {
                    conn: self.conn,
                    envelope,
                    now,
                    slot: self.kernel.tool_call_of(pid),
                    target,
                    answer,
                };
                if self.to_stage.send(request).await.is_err() {
                    return false;
                }
                let Ok(Answer { reply, slots }) = answered.await else {
                    return false;
                };
                for update in slots {
                    self.apply(update);
                }
                reply
            }
            Err(rejected) => {
                let refused = ApiMessage::Refused { conn: self.conn };
                if self.to_stage.send(refused).await.is_err() {
                    return false;
                }
                Reply::protocol_error(rejected.id, &rejected.error)
            }
        };
        stream.write_all(&reply.to_line()).await.is_ok()
    }

    fn apply(&self, update: SlotUpdate) {
        self.kernel.apply_slot(update, self.peer.get().copied());
    }

    async fn disconnect(&self) {
        let (answer, answered) = oneshot::channel();
        let message = ApiMessage::Disconnect {
            conn: self.conn,
            now: self.now(),
            answer,
        };
        if self.to_stage.send(message).await.is_ok()
            && let Ok(updates) = answered.await
        {
            for update in updates {
                self.apply(update);
            }
        }
    }
}

/// A process a declaration names, as the kernel's map holds it now.
pub fn target<K: Kernel>(kernel: &K, pid: u32) -> Target {
    Target {
        pid,
        agent_slot: kernel.agent_of(pid).map(|(agent, _)| agent),
        slot: kernel.tool_call_of(pid),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
