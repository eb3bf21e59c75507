//! Declarations: who may make them, and what each one records.

use serde_json::Value;

use super::{
    Correlator, Now, Outcome, Target,
    sessions::{self, SessionSpec},
};
use crate::{
    declare::{Envelope, ModelOutput, Reply, Request, SessionStart},
    evidence::declared::{Declared, MessageRow, SessionRow},
};

impl Outcome {
    pub(super) fn reply(reply: Reply) -> Outcome {
        Outcome {
            reply,
            slots: Vec::new(),
            records: Vec::new(),
            alerts: Vec::new(),
            rejudge: None,
        }
    }
}

impl Correlator {
    /// Opens a session the monitor itself started (the run's), so that
    /// events are attributed to it before any declaration arrives.
    pub fn open_session(&mut self, spec: SessionSpec) {
        let session = self.sessions.create(&self.policy, spec);
        self.agents
            .set_session(session.agent_slot, Some(session.id.clone()));
        self.sessions
            .by_id
            .insert(session.row.session_id.clone(), session);
    }

    /// A request the decoder refused: counted, nothing else changes.
    pub fn refused(&mut self) {
        self.stats.refused += 1;
    }

    /// Handles one decoded request from connection `conn`.
    pub fn declare(&mut self, conn: u64, envelope: Envelope, now: Now) -> Outcome {
        self.declare_under(conn, envelope, now, 0)
    }

    /// [`Correlator::declare_under`], with the process a `tool.start`'s
    /// `pid` names as the kernel sees it (`target`): a call may bind only
    /// a live process of the agent it is declared for.
    pub fn declare_for(
        &mut self,
        conn: u64,
        envelope: Envelope,
        now: Now,
        peer_slot: u64,
        target: Option<Target>,
    ) -> Outcome {
        self.declare_inner(conn, envelope, now, peer_slot, target)
    }

    /// [`Correlator::declare`], from a peer whose kernel tool-call slot is
    /// `peer_slot`: a process running under another process's call may
    /// declare calls only within that call's envelope, or code a call runs
    /// could declare itself whatever it likes.
    pub fn declare_under(
        &mut self,
        conn: u64,
        envelope: Envelope,
        now: Now,
        peer_slot: u64,
    ) -> Outcome {
        self.declare_inner(conn, envelope, now, peer_slot, None)
    }

    fn declare_inner(
        &mut self,
        conn: u64,
        envelope: Envelope,
        now: Now,
        peer_slot: u64,
        target: Option<Target>,
    ) -> Outcome {
        let Envelope { id, agent, request } = envelope;
        if matches!(request, Request::Register(_) | Request::DaemonStatus) {
            // The processing stage answers these when it can.
            self.stats.refused += 1;
            return Outcome::reply(Reply::daemon_only(id, request.type_name()));
        }
        let agent_slot = match self.authorize(conn, agent.as_deref(), &request, now) {
            Ok(slot) => slot,
            Err(outcome) => {
                self.stats.refused += 1;
                let mut outcome = *outcome;
                outcome.reply = with_id(outcome.reply, id);
                return outcome;
            }
        };
        // Root declaring from outside the tree starts in the named agent's
        // default session, as the agent's own processes do.
        if let Some(c) = self.connections.get_mut(&conn)
            && c.session.is_none()
            && c.peer.agent_slot.is_none()
            && !matches!(request, Request::SessionStart(_))
        {
            c.session = self.agents.session(agent_slot).map(String::from);
        }
        let outcome = match request {
            Request::SessionStart(start) => self.session_start(conn, agent_slot, start, id, now),
            Request::Prompt { text, at } => self.message(
                conn,
                "prompt",
                &text,
                Vec::new(),
                id,
                at.unwrap_or(now.wall_ns),
            ),
            Request::ModelOutput(ModelOutput {
                text,
                tool_calls,
                at,
            }) => {
                let ids = tool_calls.into_iter().map(|c| c.call_id).collect();
                self.message(
                    conn,
                    "model_output",
                    &text,
                    ids,
                    id,
                    at.unwrap_or(now.wall_ns),
                )
            }
            Request::ToolStart(start) => {
                self.tool_start(conn, agent_slot, start, id, now, peer_slot, target)
            }
            Request::ToolEnd(end) => self.tool_end(conn, end, id, now),
            Request::SessionEnd => self.session_end(conn, id, now),
            Request::Register(_) | Request::DaemonStatus => unreachable!("answered above"),
        };
        if !outcome.reply.is_ok() {
            self.stats.refused += 1;
        }
        outcome
    }

    /// The agent the request is for, or the refusal (with its alert).
    fn authorize(
        &mut self,
        conn: u64,
        named: Option<&str>,
        request: &Request,
        now: Now,
    ) -> Result<u32, Box<Outcome>> {
        let Some(peer) = self.connections.get(&conn).map(|c| c.peer.clone()) else {
            return Err(Box::new(Outcome::reply(Reply::not_permitted(
                None,
                "the connection is not registered",
            ))));
        };
        let refuse = |this: &Self, reply: Reply, why: &str| {
            let mut outcome = Box::new(Outcome::reply(reply));
            let mut alert = this.alert(
                now,
                "spoofed_declaration",
                "high",
                format!(
                    "refused {} from pid {} (uid {}): {why}",
                    request.type_name(),
                    peer.pid,
                    peer.uid
                ),
            );
            alert.agent = peer
                .agent_slot
                .map(|s| this.agents.name(s).to_string())
                .or_else(|| named.map(String::from));
            outcome.alerts.push(alert);
            outcome
        };
        match (named, peer.agent_slot) {
            (None, Some(slot)) => Ok(slot),
            (Some(name), Some(slot)) if name == self.agents.name(slot) => Ok(slot),
            (Some(name), _) if peer.uid == 0 => match self.agents.slot_of(name) {
                Some(slot) => Ok(slot),
                None => {
                    let why = format!("no monitored agent is named `{name}`");
                    Err(refuse(self, Reply::not_permitted(None, &why), &why))
                }
            },
            (Some(_), _) => Err(refuse(
                self,
                Reply::agent_not_permitted(None),
                "only root may name an agent",
            )),
            (None, None) => {
                let why = "this process belongs to no monitored agent";
                Err(refuse(self, Reply::not_permitted(None, why), why))
            }
        }
    }

    fn session_start(
        &mut self,
        conn: u64,
        agent_slot: u32,
        start: SessionStart,
        id: Option<Value>,
        now: Now,
    ) -> Outcome {
        let session_id = match start.session_id {
            Some(given) => given,
            None => match crate::random::uuid_v4() {
                Ok(fresh) => fresh,
                Err(err) => {
                    let message = format!("cannot make a session id: {err}");
                    return Outcome::reply(Reply::not_permitted(id, &message));
                }
            },
        };
        let peer_pid = self.connections[&conn].peer.pid;
        let open_sessions = self.sessions.open_of(agent_slot);
        let created = !self.sessions.by_id.contains_key(&session_id);
        match self.sessions.by_id.get_mut(&session_id) {
            Some(existing) if existing.agent_slot != agent_slot => {
                let why = format!("session `{session_id}` belongs to another agent");
                return Outcome::reply(Reply::not_permitted(id, &why));
            }
            Some(existing) if existing.row.ended.is_some() => {
                let why = format!("session `{session_id}` has ended");
                return Outcome::reply(Reply::not_permitted(id, &why));
            }
            Some(existing) => {
                // Joining a session (the run's): what the agent says of it
                // is better than what the monitor guessed (the command
                // line as the task, the login as the user).
                let row = &mut existing.row;
                if let Some(task) = start.task.as_deref() {
                    row.task = capture(&self.capture, task);
                }
                if start.user.is_some() {
                    row.user = start.user;
                }
                row.parent_session_id = row.parent_session_id.take().or(start.parent_session_id);
            }
            None if open_sessions >= sessions::MAX_OPEN_SESSIONS => {
                let why = format!(
                    "the agent has {} sessions open; end one first",
                    sessions::MAX_OPEN_SESSIONS
                );
                return Outcome::reply(Reply::not_permitted(id, &why));
            }
            None => {
                let external = self.connections[&conn].peer.agent_slot.is_none();
                let row = SessionRow {
                    session_id: session_id.clone(),
                    parent_session_id: start.parent_session_id,
                    agent: self.agents.name(agent_slot).to_string(),
                    task: start
                        .task
                        .as_deref()
                        .and_then(|t| capture(&self.capture, t)),
                    user: start.user,
                    source: "api".into(),
                    host: self.host.clone(),
                    started: now.wall_ns,
                    pid: (!external).then_some(peer_pid),
                    ..SessionRow::default()
                };
                let cwd = (!external)
                    .then(|| crate::pipeline::proc_cwd(peer_pid))
                    .flatten();
                let spec = SessionSpec {
                    row,
                    agent_slot,
                    cwd,
                };
                let session = self.sessions.create(&self.policy, spec);
                if !external {
                    let start = self.connections[&conn].peer.start_ns;
                    self.sessions
                        .by_pid
                        .insert(peer_pid, (start, session.id.clone()));
                }
                self.sessions.by_id.insert(session_id.clone(), session);
            }
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.session = Some(session_id.clone());
        }
        Outcome::reply(if created {
            Reply::session_created(id, session_id)
        } else {
            Reply::session_started(id, session_id)
        })
    }

    /// The connection's current session, if it is still known.
    pub(super) fn current(&self, conn: u64) -> Option<String> {
        self.connections
            .get(&conn)
            .and_then(|c| c.session.clone())
            .filter(|s| {
                // An ended session takes nothing more.
                self.sessions
                    .by_id
                    .get(s)
                    .is_some_and(|s| s.row.ended.is_none())
            })
    }

    /// A prompt or a model output, at `ts` (wall-clock ns).
    fn message(
        &mut self,
        conn: u64,
        role: &str,
        text: &str,
        tool_call_ids: Vec<String>,
        id: Option<Value>,
        ts: i64,
    ) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let row = MessageRow {
            session_id,
            ts,
            role: role.to_string(),
            text: capture(&self.capture, text),
            capture: self.capture_name().to_string(),
            redacted: self.redacted_kinds(text),
            tool_call_ids,
        };
        let mut outcome = Outcome::reply(Reply::accepted(id));
        outcome.records.push(Declared::Message(row));
        outcome
    }

    fn redacted_kinds(&self, text: &str) -> Vec<String> {
        match &self.capture {
            Some(c) if c.policy() == crate::capture::Policy::Redact => c
                .detected_kinds(text)
                .into_iter()
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn session_end(&mut self, conn: u64, id: Option<Value>, now: Now) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let mut outcome = Outcome::reply(Reply::accepted(id));
        outcome.slots = self.end_open_calls(&session_id, "unfinished", now);
        if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
            session.row.ended = Some(now.wall_ns);
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.session = None;
        }
        outcome
    }
}

fn with_id(reply: Reply, id: Option<Value>) -> Reply {
    match reply {
        Reply::Error { code, message, .. } => Reply::Error { id, code, message },
        other => other,
    }
}

pub(super) fn capture(capture: &Option<crate::capture::Capture>, text: &str) -> Option<String> {
    match capture {
        Some(c) => c.apply(text).map(|t| t.into_owned()),
        None => Some(text.to_string()),
    }
}

/// The decision's reason with the notes that qualify it.
pub(super) fn decision_reason(decision: &crate::policy::Decision) -> String {
    if decision.notes.is_empty() {
        decision.reason.clone()
    } else {
        format!("{} ({})", decision.reason, decision.notes.join("; "))
    }
}
