//! Tool calls: declared, bound to a process, linked across the adapters
//! that declare the same call, and ended.

use std::{collections::HashMap, sync::Arc};

use serde_json::Value;

use super::{
    Correlator, Now, Outcome, SlotUpdate, Target,
    calls::{Call, Part, Summary},
    declarations::{capture, decision_reason},
    links, sessions,
};
use crate::{
    declare::{self, ProtocolError, Reply, ToolEnd, ToolStart},
    evidence::declared::{DecisionRow, Declared, ToolCallRow},
    policy::{Context, Effects},
};

/// Total bytes of the patterns one call may declare: each is compiled into
/// a glob, and a peer must not be able to stall the stage compiling
/// megabytes of them (1,024 patterns of 4 KiB took seconds).
pub const MAX_DECLARED_BYTES: usize = 64 << 10;

/// The rule of a call refused because it would reach beyond the call its
/// declarer runs under.
pub const NESTED_RULE: &str = "nested.outside_parent";

/// How far in the future an `at` may be, for clocks a little apart.
const AT_SLACK_NS: i64 = 1_000_000_000;

/// A process a call binds: the declaring peer, or the one its `pid` named.
#[derive(Clone, Copy, Debug)]
struct Bound {
    pid: u32,
    /// Its kernel tool-call slot when the request was read.
    slot: u64,
}

impl Correlator {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tool_start(
        &mut self,
        conn: u64,
        agent_slot: u32,
        start: ToolStart,
        id: Option<Value>,
        now: Now,
        peer_slot: u64,
        target: Option<Target>,
    ) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let started = match start.at.map(|at| past(at, now, "at")).transpose() {
            Ok(at) => at.unwrap_or(now),
            Err(error) => return Outcome::reply(Reply::protocol_error(id, &error)),
        };
        if start.source == declare::Source::Otel && conn & super::RECEIVER_CONN == 0 {
            let error = ProtocolError::bad(
                "source",
                "`otel` is the OTLP receiver's: send spans to it rather than declaring them",
            );
            return Outcome::reply(Reply::protocol_error(id, &error));
        }
        let bound = match self.bound(conn, agent_slot, &start, peer_slot, target) {
            Ok(bound) => bound,
            Err(why) => return Outcome::reply(Reply::not_bound(id, why)),
        };
        let args_hash = links::args_hash(&start.args);
        if let Some(slot) = self.linkable(agent_slot, &start, args_hash, started.boot_ns)
            && !self.confined_out_of(slot, bound)
        {
            return self.join(slot, &session_id, conn, start, bound, id);
        }
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
            let error = ProtocolError::bad(
                "effects",
                format!(
                    "its patterns total {declared_bytes} bytes, more than {MAX_DECLARED_BYTES}"
                ),
            );
            return Outcome::reply(Reply::protocol_error(id, &error));
        }
        let peer = self.connections[&conn].peer.clone();
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
        // Bound to a process that runs inside another process's call:
        // confined to it.
        if let Some(b) = bound
            && let Some(enclosing) = self.enclosing(b.pid, b.slot)
        {
            self.remember_enclosing(b.pid, enclosing);
            if let Some(why) = self
                .reaches_out(enclosing, &decision.envelope)
                .filter(|_| decision.allow)
            {
                decision.reason = why;
                decision.allow = false;
                decision.rule = NESTED_RULE.to_string();
            }
        }
        let slot = self.calls.allocate();
        let concurrent: Vec<u64> = match bound {
            Some(b) => self.calls.open_of(b.pid).map(|c| c.slot).collect(),
            None => Vec::new(),
        };
        let row = ToolCallRow {
            session_id: session_id.clone(),
            call_id: start.call_id.clone(),
            tool: start.tool.clone(),
            args: capture(&self.capture, &args.to_string()),
            effects: declared
                .as_ref()
                .and_then(|d| serde_json::to_string(d).ok()),
            started: started.wall_ns,
            status: "open".into(),
            decision: Some(decision.name().into()),
            rule: Some(decision.rule.clone()),
            reason: Some(decision_reason(&decision)),
            declared_by: Some(match peer.start_ns {
                0 => format!("pid {}", peer.pid),
                start => format!("{}@{start}", peer.pid),
            }),
            source: start.source.name().into(),
            tool_use_id: start.links.tool_use_id,
            mcp_request_id: start.links.mcp_request_id,
            otel_span_id: start.links.otel_span_id,
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
        let retro = start.at.is_some();
        self.calls.insert(Call {
            slot,
            session_id: self.sessions.by_id[&session_id].id.clone(),
            call_id: Arc::from(start.call_id.as_str()),
            declarer: bound.map_or(peer.pid, |b| b.pid),
            agent_slot,
            external: bound.is_none(),
            retro,
            started_ns: started.boot_ns,
            // A call declared after the fact covers nothing until its end
            // is declared too: an open window would claim every later event.
            ended_ns: retro.then_some(started.boot_ns),
            settled_ns: None,
            parts: vec![Part {
                session_id: session_id.clone(),
                call_id: start.call_id.clone(),
                conn,
                pid: bound.map(|b| b.pid),
                source: start.source,
                detached: start.detached,
                open: true,
            }],
            args_hash,
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
            slots: bound
                .map(|b| SlotUpdate { pid: b.pid, slot })
                .into_iter()
                .collect(),
            records: vec![Declared::Decision(decision_row)],
            alerts: Vec::new(),
            rejudge: None,
        }
    }

    /// The process a new call binds, or why it may not bind the one named.
    fn bound(
        &self,
        conn: u64,
        agent_slot: u32,
        start: &ToolStart,
        peer_slot: u64,
        target: Option<Target>,
    ) -> Result<Option<Bound>, String> {
        let peer = &self.connections[&conn].peer;
        match start.pid {
            Some(_) if start.at.is_some() => Err(
                "a call declared after the fact (`at`) binds no process: leave out `pid`".into(),
            ),
            None if start.at.is_some() => Ok(None),
            None => Ok(peer.agent_slot.map(|_| Bound {
                pid: peer.pid,
                slot: peer_slot,
            })),
            Some(pid) if pid == peer.pid && peer.agent_slot.is_some() => Ok(Some(Bound {
                pid,
                slot: peer_slot,
            })),
            Some(pid) => match target {
                Some(t) if t.pid == pid && t.agent_slot == Some(agent_slot) => {
                    Ok(Some(Bound { pid, slot: t.slot }))
                }
                _ => Err(format!(
                    "pid {pid} is not a live process of agent `{}`",
                    self.agents.name(agent_slot)
                )),
            },
        }
    }

    /// The call a declaration is another adapter's view of, if any
    /// (docs/protocol.md, "Linked declarations").
    fn linkable(
        &self,
        agent_slot: u32,
        start: &ToolStart,
        args_hash: u64,
        started_ns: u64,
    ) -> Option<u64> {
        let candidates = || {
            self.calls.live().filter(move |c| {
                c.agent_slot == agent_slot && c.parts.iter().all(|p| p.source != start.source)
            })
        };
        if let Some(tool_use_id) = &start.links.tool_use_id
            && let Some(call) =
                candidates().find(|c| c.row.tool_use_id.as_ref() == Some(tool_use_id))
        {
            return Some(call.slot);
        }
        candidates()
            .filter(|c| {
                c.args_hash == args_hash
                    && links::same_tool(&c.row.tool, &start.tool)
                    && links::in_window(c, started_ns, start.at.is_some())
            })
            .map(|c| c.slot)
            .last()
    }

    /// Whether joining the call in `slot` would take `bound` out of the
    /// call it runs inside: then the declaration is decided on its own,
    /// and the nesting rule refuses it.
    fn confined_out_of(&self, slot: u64, bound: Option<Bound>) -> bool {
        let (Some(b), Some(call)) = (bound, self.calls.get(slot)) else {
            return false;
        };
        self.enclosing(b.pid, b.slot)
            .filter(|enclosing| *enclosing != slot)
            .is_some_and(|enclosing| {
                !call.allowed || self.reaches_out(enclosing, &call.envelope).is_some()
            })
    }

    /// Joins a declaration to the call in `slot`: its ids fill the call's,
    /// its process is bound too, and it gets the call's decision.
    fn join(
        &mut self,
        slot: u64,
        session_id: &str,
        conn: u64,
        start: ToolStart,
        bound: Option<Bound>,
        id: Option<Value>,
    ) -> Outcome {
        let session = &self.sessions.by_id[session_id];
        if session.used_calls.contains(&start.call_id) {
            return Outcome::reply(Reply::duplicate_call_id(id, &start.call_id));
        }
        let Some(call) = self.calls.get_mut(slot) else {
            return Outcome::reply(Reply::unknown_call_id(id, &start.call_id));
        };
        let row = &mut call.row;
        let ids = start.links;
        row.tool_use_id = row.tool_use_id.take().or(ids.tool_use_id);
        row.mcp_request_id = row.mcp_request_id.take().or(ids.mcp_request_id);
        row.otel_span_id = row.otel_span_id.take().or(ids.otel_span_id);
        call.parts.push(Part {
            session_id: session_id.to_string(),
            call_id: start.call_id.clone(),
            conn,
            pid: bound.map(|b| b.pid),
            source: start.source,
            detached: start.detached,
            open: true,
        });
        let decision = if call.allowed {
            declare::Decision::Allow
        } else {
            declare::Decision::Deny
        };
        let reply = Reply::decision(
            id,
            decision,
            row.reason.clone().unwrap_or_default(),
            row.rule.clone(),
        )
        .linked(call.call_id.to_string());
        let live = call.ended_ns.is_none();
        let also = bound.filter(|b| b.pid != call.declarer);
        if let Some(b) = also {
            self.calls.bind_also(slot, b.pid);
        }
        if let Some(session) = self.sessions.by_id.get_mut(session_id) {
            session.used_calls.insert(start.call_id.clone());
            session.open_calls.insert(start.call_id, slot);
        }
        let mut outcome = Outcome::reply(reply);
        if live && let Some(b) = bound {
            outcome.slots.push(SlotUpdate { pid: b.pid, slot });
        }
        outcome
    }

    pub(super) fn tool_end(
        &mut self,
        conn: u64,
        end: ToolEnd,
        id: Option<Value>,
        now: Now,
    ) -> Outcome {
        let Some(session_id) = self.current(conn) else {
            return Outcome::reply(Reply::no_session(id));
        };
        let ended = match end.at.map(|at| past(at, now, "at")).transpose() {
            Ok(at) => at.unwrap_or(now),
            Err(error) => return Outcome::reply(Reply::protocol_error(id, &error)),
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
        let mut outcome = Outcome::reply(Reply::accepted(id));
        outcome.slots = self.close_part(
            slot,
            &session_id,
            &end.call_id,
            end.status.name(),
            result,
            ended,
            now,
        );
        // A call declared after the fact now has its window: events held
        // back as undeclared may fall in it.
        outcome.rejudge = self
            .calls
            .get(slot)
            .filter(|c| c.retro && c.settled_ns.is_some())
            .map(|c| super::LateWindow {
                agent_slot: c.agent_slot,
                from_ns: c.started_ns,
                to_ns: c.ended_ns.unwrap_or(c.started_ns),
            });
        outcome
    }

    /// Ends one declaration of a call, and the call with its last one.
    /// Returns the slot the declaration's process falls back to: its
    /// latest call still open, else the call it runs under, else none.
    #[allow(clippy::too_many_arguments)]
    fn close_part(
        &mut self,
        slot: u64,
        session_id: &str,
        call_id: &str,
        status: &str,
        result: Option<String>,
        ended: Now,
        now: Now,
    ) -> Vec<SlotUpdate> {
        let Some(call) = self.calls.get_mut(slot) else {
            return Vec::new();
        };
        let Some(part) = call
            .parts
            .iter_mut()
            .find(|p| p.open && p.session_id == session_id && p.call_id == call_id)
        else {
            return Vec::new();
        };
        part.open = false;
        let pid = part.pid;
        if status_rank(status) > status_rank(&call.row.status) {
            call.row.status = status.to_string();
        }
        if call.row.result.is_none() {
            call.row.result = result;
        }
        if call.parts.iter().all(|p| !p.open) && call.settled_ns.is_none() {
            let end = if call.retro {
                ended.boot_ns.max(call.started_ns)
            } else {
                call.ended_ns.unwrap_or(ended.boot_ns)
            };
            call.ended_ns = Some(end);
            call.row.ended = Some(ended.wall_ns.max(call.row.started));
            call.settled_ns = Some(end.max(now.boot_ns));
        }
        match pid {
            Some(pid) => vec![SlotUpdate {
                pid,
                slot: self.fallback(pid),
            }],
            None => Vec::new(),
        }
    }

    /// The slot `pid` falls back to once a call of its ends.
    fn fallback(&self, pid: u32) -> u64 {
        self.calls
            .open_of(pid)
            .last()
            .map(|c| c.slot)
            .or_else(|| self.inherited.get(&pid).copied())
            .unwrap_or(0)
    }

    /// Ends every declaration of a call still open, with `status`.
    pub(super) fn end_call(&mut self, slot: u64, status: &str, now: Now) -> Vec<SlotUpdate> {
        let open: Vec<(String, String)> = match self.calls.get(slot) {
            Some(call) => call
                .parts
                .iter()
                .filter(|p| p.open)
                .map(|p| (p.session_id.clone(), p.call_id.clone()))
                .collect(),
            None => return Vec::new(),
        };
        let mut updates = Vec::new();
        for (session_id, call_id) in open {
            if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
                session.open_calls.remove(&call_id);
            }
            updates.extend(self.close_part(slot, &session_id, &call_id, status, None, now, now));
        }
        updates
    }

    /// Ends the declarations made in a session that are still open, with
    /// `status`; returns each process's slot as it must be once they have
    /// all ended.
    pub(super) fn end_open_calls(
        &mut self,
        session_id: &str,
        status: &str,
        now: Now,
    ) -> Vec<SlotUpdate> {
        let open: Vec<(String, u64)> = match self.sessions.by_id.get_mut(session_id) {
            Some(s) => s.open_calls.drain().collect(),
            None => return Vec::new(),
        };
        let mut pids: Vec<u32> = Vec::new();
        for (call_id, slot) in open {
            for update in self.close_part(slot, session_id, &call_id, status, None, now, now) {
                pids.push(update.pid);
            }
        }
        // Recomputed now that all have ended: an earlier update may name
        // a call that ended after it.
        pids.sort_unstable();
        pids.dedup();
        pids.into_iter()
            .map(|pid| SlotUpdate {
                pid,
                slot: self.fallback(pid),
            })
            .collect()
    }

    /// A connection closed: the declarations it made that are still open,
    /// and not detached, end as `disconnected`.
    pub fn disconnect(&mut self, conn: u64, now: Now) -> Vec<SlotUpdate> {
        self.connections.remove(&conn);
        let mut open: Vec<(String, String, u64)> = Vec::new();
        for session in self.sessions.by_id.values() {
            for (call_id, slot) in &session.open_calls {
                let ours = self.calls.get(*slot).is_some_and(|c| {
                    c.parts.iter().any(|p| {
                        p.open
                            && p.conn == conn
                            && !p.detached
                            && p.call_id == *call_id
                            && p.session_id == session.row.session_id
                    })
                });
                if ours {
                    open.push((session.row.session_id.clone(), call_id.clone(), *slot));
                }
            }
        }
        let mut updates: HashMap<u32, SlotUpdate> = HashMap::new();
        for (session_id, call_id, slot) in open {
            if let Some(session) = self.sessions.by_id.get_mut(&session_id) {
                session.open_calls.remove(&call_id);
            }
            for update in
                self.close_part(slot, &session_id, &call_id, "disconnected", None, now, now)
            {
                updates.insert(update.pid, update);
            }
        }
        let mut updates: Vec<SlotUpdate> = updates
            .into_keys()
            .map(|pid| SlotUpdate {
                pid,
                slot: self.fallback(pid),
            })
            .collect();
        updates.sort_by_key(|u| u.pid);
        updates
    }
}

/// A declared time in the past as the two clocks, or why it is refused.
fn past(at: i64, now: Now, field: &str) -> Result<Now, ProtocolError> {
    if at > now.wall_ns.saturating_add(AT_SLACK_NS) {
        return Err(ProtocolError::bad(field, "is in the future"));
    }
    let ago = u64::try_from(now.wall_ns.saturating_sub(at)).unwrap_or(0);
    Ok(Now {
        boot_ns: now.boot_ns.saturating_sub(ago),
        wall_ns: at,
    })
}

/// Which of two declarations' statuses the call keeps: a definite answer
/// over a connection lost, and an error over success (one adapter saw it
/// fail).
fn status_rank(status: &str) -> u8 {
    match status {
        "error" => 4,
        "ok" => 3,
        "disconnected" => 2,
        "unfinished" => 1,
        _ => 0,
    }
}
