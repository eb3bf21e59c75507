//! The small tables a replay needs whole: tool calls, sessions, processes,
//! recorded decisions and alerts, and the windows in which the kernel
//! lost events; and of the large one, `events`, only who acted in which
//! session.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow_array::{Array, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array};

use super::{
    error::ReplayError,
    store::{Store, text, value},
};
use crate::evidence::declared::SessionRow;

/// One row of `tool_calls`, as much as a replay needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallRow {
    pub session_id: String,
    pub call_id: String,
    pub tool: String,
    /// JSON text, or whatever the capture policy left of it.
    pub args: Option<String>,
    /// The declared effects envelope, JSON.
    pub effects: Option<String>,
    /// Wall-clock ns.
    pub started: i64,
    pub ended: Option<i64>,
    /// `ok`, `error`, `unfinished`, `disconnected`.
    pub status: String,
    /// `allow` or `deny`, as recorded.
    pub decision: Option<String>,
    pub rule: Option<String>,
    /// The declaring process: `pid@start_ns` when the kernel tracked it,
    /// `pid N` when it declared from outside the agent's tree.
    pub declared_by: Option<String>,
}

pub(crate) fn calls(store: &Store) -> Result<Vec<CallRow>, ReplayError> {
    let mut out = Vec::new();
    store.for_each_batch("tool_calls", |b| {
        let session_id = b.required::<StringArray>("session_id")?;
        let call_id = b.required::<StringArray>("call_id")?;
        let tool = b.required::<StringArray>("tool")?;
        let args = b.optional::<StringArray>("args")?;
        let effects = b.optional::<StringArray>("effects")?;
        let started = b.required::<TimestampNanosecondArray>("started")?;
        let ended = b.optional::<TimestampNanosecondArray>("ended")?;
        let status = b.optional::<StringArray>("status")?;
        let decision = b.optional::<StringArray>("decision")?;
        let rule = b.optional::<StringArray>("rule")?;
        let declared_by = b.optional::<StringArray>("declared_by")?;
        for row in 0..b.rows() {
            out.push(CallRow {
                session_id: session_id.value(row).to_string(),
                call_id: call_id.value(row).to_string(),
                tool: tool.value(row).to_string(),
                args: text(args, row),
                effects: text(effects, row),
                started: started.value(row),
                ended: value(ended, row),
                status: text(status, row).unwrap_or_default(),
                decision: text(decision, row),
                rule: text(rule, row),
                declared_by: text(declared_by, row),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// Every session, once, in the order first written. A session written
/// twice (an `ended` update) keeps what either row knew of its root.
pub(crate) fn sessions(store: &Store) -> Result<Vec<SessionRow>, ReplayError> {
    let mut out: Vec<SessionRow> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    store.for_each_batch("sessions", |b| {
        let id = b.required::<StringArray>("session_id")?;
        let agent = b.required::<StringArray>("agent")?;
        let source = b.optional::<StringArray>("source")?;
        let started = b.optional::<TimestampNanosecondArray>("started")?;
        let root = b.optional::<StringArray>("root_process_key")?;
        let pid = b.optional::<UInt32Array>("pid")?;
        for row in 0..b.rows() {
            let session = SessionRow {
                session_id: id.value(row).to_string(),
                agent: agent.value(row).to_string(),
                source: text(source, row).unwrap_or_default(),
                started: value(started, row).unwrap_or(0),
                root_process_key: text(root, row),
                pid: value(pid, row),
                ..SessionRow::default()
            };
            match index.get(&session.session_id) {
                Some(i) => {
                    let known = &mut out[*i];
                    known.root_process_key =
                        known.root_process_key.take().or(session.root_process_key);
                    known.pid = known.pid.or(session.pid);
                }
                None => {
                    index.insert(session.session_id.clone(), out.len());
                    out.push(session);
                }
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// What `processes` says of one process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcessRow {
    pub agent: String,
    pub cwd: Option<String>,
    pub uid: u32,
    /// Wall-clock ns.
    pub start: i64,
}

/// Every process of `processes`, by its key (`pid@start_ns`).
pub(crate) fn processes(store: &Store) -> Result<HashMap<String, ProcessRow>, ReplayError> {
    let mut out = HashMap::new();
    store.for_each_batch("processes", |b| {
        let key = b.required::<StringArray>("process_key")?;
        let agent = b.optional::<StringArray>("agent")?;
        let cwd = b.optional::<StringArray>("cwd")?;
        let uid = b.optional::<UInt32Array>("uid")?;
        let start = b.optional::<TimestampNanosecondArray>("start")?;
        for row in 0..b.rows() {
            let process = ProcessRow {
                agent: text(agent, row).unwrap_or_default(),
                cwd: text(cwd, row),
                uid: value(uid, row).unwrap_or(0),
                start: value(start, row).unwrap_or(0),
            };
            out.insert(key.value(row).to_string(), process);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Who acted in the events: the agents, and the agent of each session,
/// in the order they first appear. Read from two columns only.
#[derive(Debug, Default)]
pub(crate) struct Actors {
    pub agents: Vec<String>,
    pub sessions: Vec<(String, String)>,
}

pub(crate) fn actors(store: &Store) -> Result<Actors, ReplayError> {
    let mut out = Actors::default();
    let mut agents = HashSet::new();
    let mut sessions = HashSet::new();
    store.for_each_batch_of("events", &["agent", "session_id"], |b| {
        let agent = b.optional::<StringArray>("agent")?;
        let session = b.optional::<StringArray>("session_id")?;
        for row in 0..b.rows() {
            let name = agent.map_or("", |a| a.value(row));
            if !agents.contains(name) {
                agents.insert(name.to_string());
                out.agents.push(name.to_string());
            }
            if let Some(id) = session.filter(|s| s.is_valid(row)).map(|s| s.value(row))
                && !sessions.contains(id)
            {
                sessions.insert(id.to_string());
                out.sessions.push((id.to_string(), name.to_string()));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// How many recorded decisions each policy hash made (`""` for rows
/// without one).
pub(crate) fn policy_hashes(store: &Store) -> Result<BTreeMap<String, u64>, ReplayError> {
    let mut out = BTreeMap::new();
    store.for_each_batch("decisions", |b| {
        let sha = b.optional::<StringArray>("policy_sha256")?;
        for row in 0..b.rows() {
            *out.entry(text(sha, row).unwrap_or_default()).or_insert(0) += 1;
        }
        Ok(())
    })?;
    Ok(out)
}

/// The alerts raised at the time, by (session, event seq, kind).
pub(crate) type AlertKey = (Option<String>, u64, String);

pub(crate) fn recorded_alerts(store: &Store) -> Result<HashSet<AlertKey>, ReplayError> {
    let mut out = HashSet::new();
    store.for_each_batch("alerts", |b| {
        let kind = b.required::<StringArray>("kind")?;
        let session = b.optional::<StringArray>("session_id")?;
        let seq = b.optional::<UInt64Array>("event_seq")?;
        for row in 0..b.rows() {
            if let Some(seq) = value(seq, row) {
                out.insert((text(session, row), seq, kind.value(row).to_string()));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// Windows (wall-clock ns, inclusive) in which the kernel's ring buffer
/// was full: an action there that nothing covers is `unverifiable`, as
/// live. Losses of the store itself (`cause = 'storage'`) lost rows, not
/// the kernel's view, and do not count.
pub(crate) fn loss_windows(store: &Store) -> Result<Vec<(i64, i64)>, ReplayError> {
    let mut out = Vec::new();
    store.for_each_batch("gaps", |b| {
        let lost = b.required::<StringArray>("lost")?;
        let cause = b.required::<StringArray>("cause")?;
        let since = b.required::<TimestampNanosecondArray>("since")?;
        let until = b.required::<TimestampNanosecondArray>("until")?;
        for row in 0..b.rows() {
            if lost.value(row) == "events" && cause.value(row) == "ring_buffer_full" {
                out.push((since.value(row), until.value(row)));
            }
        }
        Ok(())
    })?;
    Ok(out)
}
