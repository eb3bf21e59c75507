//! The small tables a replay needs whole: tool calls, sessions and their
//! root processes' working directories, recorded decisions and alerts,
//! and the windows in which the kernel lost events.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow_array::{StringArray, TimestampNanosecondArray, UInt64Array};

use super::{
    error::ReplayError,
    store::{Store, text, value},
};

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
    /// `allow` or `deny`, as recorded.
    pub decision: Option<String>,
    pub rule: Option<String>,
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
        let decision = b.optional::<StringArray>("decision")?;
        let rule = b.optional::<StringArray>("rule")?;
        for row in 0..b.rows() {
            out.push(CallRow {
                session_id: session_id.value(row).to_string(),
                call_id: call_id.value(row).to_string(),
                tool: tool.value(row).to_string(),
                args: text(args, row),
                effects: text(effects, row),
                started: started.value(row),
                ended: value(ended, row),
                decision: text(decision, row),
                rule: text(rule, row),
            });
        }
        Ok(())
    })?;
    Ok(out)
}

/// Each session's root process key (None when the row has none).
pub(crate) fn session_roots(store: &Store) -> Result<HashMap<String, Option<String>>, ReplayError> {
    let mut out = HashMap::new();
    store.for_each_batch("sessions", |b| {
        let id = b.required::<StringArray>("session_id")?;
        let root = b.optional::<StringArray>("root_process_key")?;
        for row in 0..b.rows() {
            // A session written twice (an `ended` update) keeps a root
            // from either row.
            let root = text(root, row);
            let slot = out.entry(id.value(row).to_string()).or_insert(None);
            if root.is_some() {
                *slot = root;
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// The working directory of each process in `keys`, from `processes`.
pub(crate) fn cwds(
    store: &Store,
    keys: &HashSet<String>,
) -> Result<HashMap<String, String>, ReplayError> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    store.for_each_batch("processes", |b| {
        let key = b.required::<StringArray>("process_key")?;
        let cwd = b.optional::<StringArray>("cwd")?;
        for row in 0..b.rows() {
            if keys.contains(key.value(row))
                && let Some(cwd) = text(cwd, row)
            {
                out.insert(key.value(row).to_string(), cwd);
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
