//! Submitting one TCP connection's spans to the processing stage, as the
//! socket server submits a connection's lines: `Connect` with the peer,
//! one `Request` per declaration (each answer awaited, in order), and
//! `Disconnect` when the connection closes.
//!
//! A TCP connection is one declaring connection of the stage per
//! conversation its spans name: each starts in the agent's current
//! session, and a conversation's enters that session once. Their ids have
//! the top bit set, so that they never meet the socket server's. Which
//! conversations are over, and their sessions ended, is
//! [`super::conversations`]'s to say; [`end_quiet`] ends them.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    conversations::{Conversations, Ending, PromptKey},
    spans::{self, Mapped, Span},
};
use crate::{
    api::{Answer, ApiMessage, Kernel},
    correlate::{Now, Peer},
    declare::{Envelope, Reply, Request},
    time::WallClock,
};

/// Conversations one TCP connection keeps a declaring connection for; the
/// one used least recently is let go past it (its calls are all ended, so
/// nothing is lost: its session is entered again when a span names it).
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
    pub(super) conversations: Mutex<Conversations>,
}

/// The processing stage has stopped: the monitor is shutting down.
pub(super) struct StageGone;

impl<K: Kernel> Shared<K> {
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

    fn conversations(&self) -> MutexGuard<'_, Conversations> {
        self.conversations
            .lock()
            .expect("the conversations are never poisoned")
    }

    /// A new declaring connection of the stage's, for `peer`.
    async fn connect(&self, peer: &Peer) -> Result<u64, StageGone> {
        let conn = self.new_conn();
        let connect = ApiMessage::Connect {
            conn,
            peer: peer.clone(),
        };
        self.to_stage.send(connect).await.map_err(|_| StageGone)?;
        Ok(conn)
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
            now: self.now(),
            slot: self.kernel.tool_call_of(peer.pid),
            // A call declared after the fact names no process to bind.
            target: None,
            answer,
        };
        self.to_stage.send(request).await.map_err(|_| StageGone)?;
        let Answer { reply, slots } = answered.await.map_err(|_| StageGone)?;
        // Calls declared with `at` bind none, so slots are rare here.
        for update in slots {
            self.kernel
                .apply_slot(update, Some((peer.pid, peer.start_ns)));
        }
        Ok(reply)
    }

    async fn disconnect(&self, peer: &Peer, conn: u64) -> Result<(), StageGone> {
        let (answer, answered) = oneshot::channel();
        let message = ApiMessage::Disconnect {
            conn,
            now: self.now(),
            answer,
        };
        self.to_stage.send(message).await.map_err(|_| StageGone)?;
        for update in answered.await.map_err(|_| StageGone)? {
            self.kernel
                .apply_slot(update, Some((peer.pid, peer.start_ns)));
        }
        Ok(())
    }
}

/// Ends the sessions of the conversations that are over: held by no TCP
/// connection and quiet ([`Conversations::due`]). Each is ended on a
/// declaring connection of its own, as the process that last named it:
/// `session.start` to enter it, `session.end`.
pub(super) async fn end_quiet<K: Kernel>(shared: &Shared<K>) -> Result<(), StageGone> {
    let due = shared.conversations().due(Instant::now());
    for (key, peer) in due {
        let conn = shared.connect(&peer).await?;
        // Refused when the session ended otherwise (by the SDK's
        // `session.end`, or with its agent): nothing left to end.
        let join = spans::envelope(spans::session_start(&key.1));
        if let Ok(join) = join
            && let Reply::Accepted { .. } = shared.request(&peer, conn, join).await?
            && let Ok(end) = spans::envelope(Request::SessionEnd)
        {
            shared.request(&peer, conn, end).await?;
        }
        shared.disconnect(&peer, conn).await?;
        shared.conversations().ended(&key);
    }
    Ok(())
}

/// One TCP connection's declarations.
pub(super) struct Declarer<K> {
    /// Who sent the spans, or why that is not known.
    sender: Result<Peer, String>,
    /// The stage's connection of each conversation (none: spans without
    /// one), least recently used first.
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
        self.let_go_of_quiet().await?;
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
        let prompt_key: PromptKey = (peer.agent_slot, mapped.conversation.clone());
        // A prompt sent again (the input of every round of a tool loop
        // that still ends with it, a retry) is declared once.
        let with_prompt = mapped
            .prompt
            .as_ref()
            .is_some_and(|p| !self.shared.conversations().is_last_prompt(&prompt_key, p));
        let envelopes = match spans::envelopes(&span.span_id, mapped, with_prompt) {
            Ok(envelopes) => envelopes,
            Err(err) => return Ok(Err(err.to_string())),
        };
        let conn = match self.conn_for(&peer, mapped.conversation.as_deref()).await? {
            Ok(conn) => conn,
            Err(why) => return Ok(Err(format!("span {}: {why}", span.span_id))),
        };
        for (i, envelope) in envelopes.into_iter().enumerate() {
            if let Reply::Error { message, .. } = self.shared.request(&peer, conn, envelope).await?
            {
                return Ok(Err(format!("span {}: {message}", span.span_id)));
            }
            if i == 0
                && with_prompt
                && let Some(prompt) = &mapped.prompt
            {
                self.shared
                    .conversations()
                    .prompt_declared(prompt_key.clone(), prompt);
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
        let key = conversation.map(|c| (peer.agent_slot, c.to_string()));
        if let Some(at) = self
            .conns
            .iter()
            .position(|(c, _)| c.as_deref() == conversation)
        {
            let held = self.conns.remove(at).expect("a position found");
            let conn = held.1;
            self.conns.push_back(held);
            if let Some(key) = &key {
                self.shared.conversations().named(key, peer, Instant::now());
            }
            return Ok(Ok(conn));
        }
        let join = match conversation.map(|c| spans::envelope(spans::session_start(c))) {
            None => None,
            Some(Ok(envelope)) => Some(envelope),
            Some(Err(err)) => return Ok(Err(format!("gen_ai.conversation.id: {err}"))),
        };
        if let Some(key) = &key {
            let held = self.shared.conversations().hold(key, peer, Instant::now());
            if held == Err(Ending) {
                let quiet = self.shared.conversations().quiet();
                return Ok(Err(format!(
                    "conversation `{}` is over: no span named it for {} s, and its session is being ended",
                    key.1,
                    quiet.as_secs()
                )));
            }
        }
        if self.conns.len() >= MAX_CONVERSATIONS
            && let Some((least_used, conn)) = self.conns.pop_front()
        {
            self.let_go(peer, least_used, conn).await?;
        }
        let conn = self.shared.connect(peer).await?;
        let mut created = false;
        if let Some(join) = join {
            match self.shared.request(peer, conn, join).await? {
                Reply::Error { message, .. } => {
                    self.let_go(peer, conversation.map(str::to_string), conn)
                        .await?;
                    return Ok(Err(message));
                }
                Reply::Accepted { created: true, .. } => created = true,
                _ => {}
            }
        }
        if let Some(key) = &key {
            let mut conversations = self.shared.conversations();
            // Only a session the receiver opened is the receiver's to end:
            // one the hook, the SDK or `run` opened under the same id ends
            // with them.
            if created {
                conversations.opened(key);
            }
            conversations.named(key, peer, Instant::now());
        }
        self.conns
            .push_back((conversation.map(str::to_string), conn));
        Ok(Ok(conn))
    }

    /// Closes the stage's connection of `conversation`; the conversation
    /// is held by one connection less.
    async fn let_go(
        &self,
        peer: &Peer,
        conversation: Option<String>,
        conn: u64,
    ) -> Result<(), StageGone> {
        let gone = self.shared.disconnect(peer, conn).await;
        if let Some(conversation) = conversation {
            self.shared
                .conversations()
                .release(&(peer.agent_slot, conversation));
        }
        gone
    }

    /// Lets go of the conversations no span has named for the quiet
    /// period, so that their sessions can be ended.
    async fn let_go_of_quiet(&mut self) -> Result<(), StageGone> {
        let Ok(peer) = self.sender.clone() else {
            return Ok(());
        };
        let now = Instant::now();
        let quiet: Vec<usize> = {
            let conversations = self.shared.conversations();
            self.conns
                .iter()
                .enumerate()
                .filter_map(|(at, (c, _))| {
                    let key = (peer.agent_slot, c.clone()?);
                    conversations.is_quiet(&key, now).then_some(at)
                })
                .collect()
        };
        for at in quiet.into_iter().rev() {
            let (conversation, conn) = self.conns.remove(at).expect("a position found");
            self.let_go(&peer, conversation, conn).await?;
        }
        Ok(())
    }

    /// The TCP connection closed: every conversation is let go of.
    pub(super) async fn disconnect_all(&mut self) {
        let Ok(peer) = self.sender.clone() else {
            return;
        };
        while let Some((conversation, conn)) = self.conns.pop_front() {
            if self.let_go(&peer, conversation, conn).await.is_err() {
                return;
            }
        }
    }
}
