//! Declarations: who may make them, and what each one records.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{
    Correlator, Now, Outcome, SlotUpdate,
    calls::{Call, Summary},
    sessions::{self, SessionSpec},
};
use crate::{
    declare::{self, Envelope, ModelOutput, Reply, Request, SessionStart, ToolEnd, ToolStart},
    evidence::declared::{DecisionRow, Declared, MessageRow, SessionRow, ToolCallRow},
    policy::{Context, Effects},
};

impl Outcome {
    fn reply(reply: Reply) -> Outcome {
        Outcome {
            reply,
            slots: Vec::new(),
            records: Vec::new(),
            alerts: Vec::new(),
        }
    }
}

/// Total bytes of the patterns one call may declare: each is compiled into
/// a glob, and a peer must not be able to stall the stage compiling
/// megabytes of them (1,024 patterns of 4 KiB took seconds).
pub const MAX_DECLARED_BYTES: usize = 64 << 10;

/// The rule of a call refused because it would reach beyond the call its
/// declarer runs under.
pub const NESTED_RULE: &str = "nested.outside_parent";

/// Declaring processes whose inherited call is remembered; past it the
/// memory starts over (a process then falls back to no call).
const INHERITED_LIMIT: usize = 65_536;

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
            Request::Prompt { text } => self.message(conn, "prompt", &text, Vec::new(), id, now),
            Request::ModelOutput(ModelOutput { text, tool_calls }) => {
                let ids = tool_calls.into_iter().map(|c| c.call_id).collect();
                self.message(conn, "model_output", &text, ids, id, now)
            }
            Request::ToolStart(start) => {
                self.tool_start(conn, agent_slot, start, id, now, peer_slot)
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
        Outcome::reply(Reply::session_started(id, session_id))
    }

    /// The connection's current session, if it is still known.
    fn current(&self, conn: u64) -> Option<String> {
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

    fn message(
        &mut self,
        conn: u64,
        role: &str,
        text: &str,
        tool_call_ids: Vec<String>,
        id: Option<Value>,
        now: Now,
    ) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let row = MessageRow {
            session_id,
            ts: now.wall_ns,
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

    fn tool_start(
        &mut self,
        conn: u64,
        agent_slot: u32,
        start: ToolStart,
        id: Option<Value>,
        now: Now,
        peer_slot: u64,
    ) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let session = &self.sessions.by_id[&session_id];
        if session.used_calls.contains(&start.call_id) {
            return Outcome::reply(Reply::duplicate_call_id(id, &start.call_id));
        }
        if session.open_calls.len() >= sessions::MAX_OPEN_CALLS
            || session.used_calls.len() >= sessions::MAX_CALLS
        {
            let why = format!(
                "the session has {} calls open or has started {}; end some, or open a new session",
                sessions::MAX_OPEN_CALLS,
                sessions::MAX_CALLS
            );
            return Outcome::reply(Reply::not_permitted(id, &why));
        }
        let declared_bytes: usize = start
            .effects
            .iter()
            .flat_map(|e| e.values())
            .flatten()
            .map(String::len)
            .sum();
        if declared_bytes > MAX_DECLARED_BYTES {
            let error = crate::declare::ProtocolError::bad(
                "effects",
                format!(
                    "its patterns total {declared_bytes} bytes, more than {MAX_DECLARED_BYTES}"
                ),
            );
            return Outcome::reply(Reply::protocol_error(id, &error));
        }
        let peer = self.connections[&conn].peer.clone();
        let external = peer.agent_slot.is_none();
        let cwd = session.cwd.clone();
        let args = Value::Object(start.args);
        let declared: Option<Effects> = start.effects.map(|e| e.into_iter().collect());
        let mut decision = self.policy.decide_start_in(
            &Context {
                cwd: cwd.as_deref(),
            },
            &start.tool,
            &args,
            declared.as_ref(),
        );
        // Declared from inside another process's call: confined to it.
        // The process's slot names that call, or, once it has calls of its
        // own open, one of those: then the call it inherited still rules.
        let parent_slot = match self.calls.get(peer_slot) {
            _ if external => None,
            Some(p) if p.declarer != peer.pid && !p.external => Some(peer_slot),
            Some(_) => self.inherited.get(&peer.pid).copied(),
            None => None,
        };
        if let Some(parent) = parent_slot.and_then(|s| self.calls.get(s)) {
            if self.inherited.len() >= INHERITED_LIMIT {
                self.inherited.clear();
            }
            self.inherited.insert(peer.pid, parent.slot);
            let outside = if parent.allowed {
                decision
                    .envelope
                    .first_outside(&parent.envelope)
                    .map(|r| format!("whose envelope does not cover {} {}", r.kind, r.pattern))
            } else {
                Some("which was denied".to_string())
            };
            if let Some(why) = outside.filter(|_| decision.allow) {
                decision.reason = format!(
                    "declared from inside call `{}` ({}), {why}",
                    parent.row.call_id, parent.row.tool
                );
                decision.allow = false;
                decision.rule = NESTED_RULE.to_string();
            }
        }
        let slot = self.calls.allocate();
        let concurrent: Vec<u64> = if external {
            Vec::new()
        } else {
            self.calls.open_of(peer.pid).map(|c| c.slot).collect()
        };
        let row = ToolCallRow {
            session_id: session_id.clone(),
            call_id: start.call_id.clone(),
            tool: start.tool.clone(),
            args: capture(&self.capture, &args.to_string()),
            effects: declared
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok()),
            started: now.wall_ns,
            status: "open".into(),
            decision: Some(decision.name().into()),
            rule: Some(decision.rule.clone()),
            reason: Some(decision_reason(&decision)),
            declared_by: Some(match peer.start_ns {
                0 => format!("pid {}", peer.pid),
                start => format!("{}@{start}", peer.pid),
            }),
            source: "api".into(),
            ..ToolCallRow::default()
        };
        let decision_row = DecisionRow {
            ts: now.wall_ns,
            session_id: session_id.clone(),
            call_id: start.call_id.clone(),
            decision: decision.name().into(),
            rule: Some(decision.rule.clone()),
            reason: Some(decision_reason(&decision)),
            policy_sha256: Some(decision.policy_sha256.clone()),
        };
        let reply = Reply::decision(
            id,
            if decision.allow {
                declare::Decision::Allow
            } else {
                declare::Decision::Deny
            },
            decision.reason.clone(),
            Some(decision.rule.clone()),
        );
        self.stats.tool_calls += 1;
        if !decision.allow {
            self.stats.denied += 1;
        }
        self.calls.insert(Call {
            slot,
            session_id: self.sessions.by_id[&session_id].id.clone(),
            call_id: Arc::from(start.call_id.as_str()),
            declarer: peer.pid,
            conn,
            agent_slot,
            external,
            started_ns: now.boot_ns,
            ended_ns: None,
            allowed: decision.allow,
            deny_rule: (!decision.allow).then(|| decision.rule.clone()),
            envelope: decision.envelope,
            concurrent,
            row,
            summary: Summary::default(),
            covers: Default::default(),
            summarised: false,
        });
        if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
            session.used_calls.insert(start.call_id.clone());
            session.open_calls.insert(start.call_id, slot);
        }
        Outcome {
            reply,
            slots: if external {
                Vec::new()
            } else {
                vec![SlotUpdate {
                    pid: peer.pid,
                    slot,
                }]
            },
            records: vec![Declared::Decision(decision_row)],
            alerts: Vec::new(),
        }
    }

    fn tool_end(&mut self, conn: u64, end: ToolEnd, id: Option<Value>, now: Now) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let slot = self
            .sessions
            .by_id
            .get_mut(&session_id)
            .and_then(|s| s.open_calls.remove(&end.call_id));
        let Some(slot) = slot else {
            return Outcome::reply(Reply::unknown_call_id(id, &end.call_id));
        };
        let result = end
            .result
            .map(|r| r.to_string())
            .and_then(|r| capture(&self.capture, &r));
        let update = self.end_call(slot, end.status.name(), result, now);
        let mut outcome = Outcome::reply(Reply::accepted(id));
        outcome.slots.extend(update);
        outcome
    }

    /// Ends a call; returns the slot its declarer falls back to: its
    /// latest call still open, or none.
    pub(super) fn end_call(
        &mut self,
        slot: u64,
        status: &str,
        result: Option<String>,
        now: Now,
    ) -> Option<SlotUpdate> {
        let call = self.calls.get_mut(slot)?;
        call.ended_ns = Some(now.boot_ns);
        call.row.ended = Some(now.wall_ns);
        call.row.status = status.to_string();
        call.row.result = result;
        let (declarer, external) = (call.declarer, call.external);
        if external {
            return None;
        }
        // Its latest call still open; else the call it runs under, if it
        // declared from inside one; else none.
        let fallback = self
            .calls
            .open_of(declarer)
            .last()
            .map(|c| c.slot)
            .or_else(|| self.inherited.get(&declarer).copied())
            .unwrap_or(0);
        Some(SlotUpdate {
            pid: declarer,
            slot: fallback,
        })
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

    /// Ends every call of a session still open, with `status`; returns
    /// each declarer's slot as it must be once they have all ended.
    pub(super) fn end_open_calls(
        &mut self,
        session_id: &str,
        status: &str,
        now: Now,
    ) -> Vec<SlotUpdate> {
        let open: Vec<u64> = match self.sessions.by_id.get_mut(session_id) {
            Some(s) => s.open_calls.drain().map(|(_, slot)| slot).collect(),
            None => return Vec::new(),
        };
        let mut last: HashMap<u32, SlotUpdate> = HashMap::new();
        for slot in open {
            if let Some(update) = self.end_call(slot, status, None, now) {
                last.insert(update.pid, update);
            }
        }
        // Recomputed now that all have ended: an earlier update may name
        // a call that ended after it.
        let mut updates: Vec<SlotUpdate> = last
            .into_keys()
            .map(|pid| SlotUpdate {
                pid,
                slot: self
                    .calls
                    .open_of(pid)
                    .last()
                    .map(|c| c.slot)
                    .or_else(|| self.inherited.get(&pid).copied())
                    .unwrap_or(0),
            })
            .collect();
        updates.sort_by_key(|u| u.pid);
        updates
    }

    /// A connection closed: the calls it left open end as `disconnected`.
    pub fn disconnect(&mut self, conn: u64, now: Now) -> Vec<SlotUpdate> {
        self.connections.remove(&conn);
        let mut open: Vec<(String, u64)> = Vec::new();
        for session in self.sessions.by_id.values() {
            for slot in session.open_calls.values() {
                if self.calls.get(*slot).is_some_and(|c| c.conn == conn) {
                    open.push((session.row.session_id.clone(), *slot));
                }
            }
        }
        let mut updates = Vec::new();
        for (session_id, slot) in open {
            if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
                session.open_calls.retain(|_, s| *s != slot);
            }
            updates.extend(self.end_call(slot, "disconnected", None, now));
        }
        updates
    }
}

fn with_id(reply: Reply, id: Option<Value>) -> Reply {
    match reply {
        Reply::Error { code, message, .. } => Reply::Error { id, code, message },
        other => other,
    }
}

fn capture(capture: &Option<crate::capture::Capture>, text: &str) -> Option<String> {
    match capture {
        Some(c) => c.apply(text).map(|t| t.into_owned()),
        None => Some(text.to_string()),
    }
}

/// The decision's reason with the notes that qualify it.
fn decision_reason(decision: &crate::policy::Decision) -> String {
    if decision.notes.is_empty() {
        decision.reason.clone()
    } else {
        format!("{} ({})", decision.reason, decision.notes.join("; "))
    }
}
