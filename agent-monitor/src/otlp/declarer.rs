//! Submitting one TCP connection's spans to the processing stage, as the
//! socket server submits a connection's lines: `Connect` with the peer,
//! one `Request` per declaration (each answer awaited, in order), and
//! `Disconnect` when the connection closes.
//!
//! A TCP connection is one declaring connection of the stage per
//! conversation its spans name: each starts in the agent's current
//! session, and a conversation's enters that session once. Their ids have
//! the top bit set, so that they never meet the socket server's.

use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use tokio::sync::{mpsc, oneshot};

use super::spans::{self, Mapped, Span};
use crate::{
    api::{Answer, ApiMessage, Kernel},
    correlate::{Now, Peer, SlotUpdate},
    declare::{Envelope, Reply},
    time::WallClock,
};

/// Conversations one TCP connection keeps a declaring connection for; the
/// oldest is let go past it (its calls are all ended, so nothing is lost:
/// its session is entered again when a span names it).
const MAX_CONVERSATIONS: usize = 64;

/// What the receiver took, over its life.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub spans: u64,
    /// Spans that became declarations.
    pub declared: u64,
    /// Spans that are no GenAI operation the monitor reads.
    pub ignored: u64,
    /// GenAI spans not taken: from a process of no agent, malformed, or
    /// refused by the processing stage.
    pub refused: u64,
    /// Why the first refused span was.
    pub first_refusal: Option<String>,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.spans += other.spans;
        self.declared += other.declared;
        self.ignored += other.ignored;
        self.refused += other.refused;
        if self.first_refusal.is_none() {
            self.first_refusal = other.first_refusal;
        }
    }
}

/// What every connection of the receiver shares.
pub(super) struct Shared<K> {
    pub(super) kernel: K,
    pub(super) to_stage: mpsc::Sender<ApiMessage>,
    pub(super) clock: WallClock,
    pub(super) counts: Mutex<Counts>,
    pub(super) next_conn: AtomicU64,
}

impl<K> Shared<K> {
    /// A declaring connection id of the stage's: the top bit set.
    fn new_conn(&self) -> u64 {
        crate::correlate::RECEIVER_CONN | (self.next_conn.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn now(&self) -> Now {
        let boot_ns = WallClock::boot_now_ns();
        Now {
            boot_ns,
            wall_ns: self.clock.wall_ns(boot_ns) as i64,
        }
    }
}

/// The processing stage has stopped: the monitor is shutting down.
pub(super) struct StageGone;

/// One TCP connection's declarations.
pub(super) struct Declarer<K> {
    /// Who sent the spans, or why that is not known.
    sender: Result<Peer, String>,
    /// The stage's connection of each conversation (none: spans without
    /// one), oldest first.
    conns: VecDeque<(Option<String>, u64)>,
    shared: Arc<Shared<K>>,
}

/// What became of the spans of one request.
#[derive(Default)]
pub(super) struct Export {
    pub(super) counts: Counts,
    pub(super) reasons: Vec<String>,
}

impl<K: Kernel> Declarer<K> {
    pub(super) fn new(sender: Result<Peer, String>, shared: Arc<Shared<K>>) -> Declarer<K> {
        Declarer {
            sender,
            conns: VecDeque::new(),
            shared,
        }
    }

    pub(super) async fn export(&mut self, mut spans: Vec<Span>) -> Result<Export, StageGone> {
        // Declared in the order they happened, whatever order they ended
        // (and were batched) in.
        spans.sort_by_key(|s| (s.start_ns, s.end_ns));
        let mut export = Export::default();
        for span in &spans {
            export.counts.spans += 1;
            let outcome = match spans::map(span) {
                Ok(None) => {
                    export.counts.ignored += 1;
                    continue;
                }
                Ok(Some(mapped)) => self.declare(span, &mapped).await?,
                Err(err) => Err(err.to_string()),
            };
            match outcome {
                Ok(()) => export.counts.declared += 1,
                Err(why) => {
                    export.counts.refused += 1;
                    export
                        .counts
                        .first_refusal
                        .get_or_insert_with(|| why.clone());
                    if !export.reasons.contains(&why) {
                        export.reasons.push(why);
                    }
                }
            }
        }
        self.shared
            .counts
            .lock()
            .expect("counts are never poisoned")
            .add(export.counts.clone());
        Ok(export)
    }

    /// Submits one span's declarations, in order; the first refused ends
    /// the span's.
    async fn declare(
        &mut self,
        span: &Span,
        mapped: &Mapped,
    ) -> Result<Result<(), String>, StageGone> {
        let peer = match &self.sender {
            Ok(peer) => peer.clone(),
            Err(why) => return Ok(Err(why.clone())),
        };
        let envelopes = match spans::envelopes(&span.span_id, mapped) {
            Ok(envelopes) => envelopes,
            Err(err) => return Ok(Err(err.to_string())),
        };
        let conn = match self.conn_for(&peer, mapped.conversation.as_deref()).await? {
            Ok(conn) => conn,
            Err(why) => return Ok(Err(format!("span {}: {why}", span.span_id))),
        };
        for envelope in envelopes {
            if let Reply::Error { message, .. } = self.request(&peer, conn, envelope).await? {
                return Ok(Err(format!("span {}: {message}", span.span_id)));
            }
        }
        Ok(Ok(()))
    }

    /// The stage's connection for `conversation`, made (and the
    /// conversation's session entered) if there is none yet.
    async fn conn_for(
        &mut self,
        peer: &Peer,
        conversation: Option<&str>,
    ) -> Result<Result<u64, String>, StageGone> {
        if let Some((_, conn)) = self
            .conns
            .iter()
            .find(|(c, _)| c.as_deref() == conversation)
        {
            return Ok(Ok(*conn));
        }
        let join = match conversation.map(|c| spans::envelope(&spans::session_start(c))) {
            None => None,
            Some(Ok(envelope)) => Some(envelope),
            Some(Err(err)) => return Ok(Err(format!("gen_ai.conversation.id: {err}"))),
        };
        if self.conns.len() >= MAX_CONVERSATIONS
            && let Some((_, oldest)) = self.conns.pop_front()
        {
            self.disconnect(oldest).await?;
        }
        let conn = self.shared.new_conn();
        let connect = ApiMessage::Connect {
            conn,
            peer: peer.clone(),
        };
        self.shared
            .to_stage
            .send(connect)
            .await
            .map_err(|_| StageGone)?;
        if let Some(join) = join
            && let Reply::Error { message, .. } = self.request(peer, conn, join).await?
        {
            self.disconnect(conn).await?;
            return Ok(Err(message));
        }
        self.conns
            .push_back((conversation.map(str::to_string), conn));
        Ok(Ok(conn))
    }

    async fn request(
        &self,
        peer: &Peer,
        conn: u64,
        envelope: Envelope,
    ) -> Result<Reply, StageGone> {
        let (answer, answered) = oneshot::channel();
        let request = ApiMessage::Request {
            conn,
            envelope,
            now: self.shared.now(),
            slot: self.shared.kernel.tool_call_of(peer.pid),
            // A call declared after the fact names no process to bind.
            target: None,
            answer,
        };
        self.shared
            .to_stage
            .send(request)
            .await
            .map_err(|_| StageGone)?;
        let Answer { reply, slots } = answered.await.map_err(|_| StageGone)?;
        self.apply(slots);
        Ok(reply)
    }

    async fn disconnect(&self, conn: u64) -> Result<(), StageGone> {
        let (answer, answered) = oneshot::channel();
        let message = ApiMessage::Disconnect {
            conn,
            now: self.shared.now(),
            answer,
        };
        self.shared
            .to_stage
            .send(message)
            .await
            .map_err(|_| StageGone)?;
        self.apply(answered.await.map_err(|_| StageGone)?);
        Ok(())
    }

    pub(super) async fn disconnect_all(&mut self) {
        while let Some((_, conn)) = self.conns.pop_front() {
            if self.disconnect(conn).await.is_err() {
                return;
            }
        }
    }

    /// Slots the stage asks for. Calls declared with `at` bind none, so
    /// these are rare; they are set as the socket server sets them.
    fn apply(&self, updates: Vec<SlotUpdate>) {
        static FAILURE_REPORTED: AtomicBool = AtomicBool::new(false);
        let Ok(peer) = &self.sender else { return };
        for update in updates {
            let start = if update.pid == peer.pid {
                peer.start_ns
            } else {
                0
            };
            if let Err(err) = self
                .shared
                .kernel
                .set_tool_call(update.pid, update.slot, start)
                && err.kind() != io::ErrorKind::NotFound
                && !FAILURE_REPORTED.swap(true, Ordering::Relaxed)
            {
                eprintln!(
                    "agent-monitor: setting the tool-call slot of pid {} failed: {err}",
                    update.pid
                );
            }
        }
    }
}
