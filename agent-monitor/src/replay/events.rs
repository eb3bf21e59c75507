//! Rows of `events`, read back and rebuilt as the events the live
//! correlator judged.

use arrow_array::{
    Array, BooleanArray, Int32Array, Int64Array, StringArray, TimestampNanosecondArray,
    UInt16Array, UInt32Array, UInt64Array,
};

use super::{
    error::ReplayError,
    store::{Batch, Store, text, value},
};
use crate::{
    actions::{Access, Action, ActionFields, ActionKind},
    event::{Detail, Event, Exec, ExitStatus},
};

/// One stored event, as much as judging it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EventRow {
    pub seq: u64,
    /// Wall-clock ns.
    pub ts: i64,
    pub kind: String,
    pub agent: String,
    pub pid: u32,
    pub ppid: u32,
    pub tid: u32,
    pub uid: u32,
    pub comm: String,
    /// `pid@start_ns`.
    pub process_key: String,
    pub exe: Option<String>,
    pub result: Option<i64>,
    pub filename: Option<String>,
    /// The working directory at exec.
    pub cwd: Option<String>,
    pub child_pid: Option<u32>,
    pub child_process_key: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i64>,
    pub session_id: Option<String>,
    pub tool_call_id: Option<String>,
    pub verdict: Option<String>,
    pub rule: Option<String>,
    pub fields: ActionFields,
}

/// What a stored row does not say and the replay supplies: the times of
/// the processes on the replay's clock, the agent's slot, the call's slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bound {
    pub start_ns: u64,
    pub child_start_ns: u64,
    pub agent_slot: u32,
    pub tool_call: u64,
}

impl EventRow {
    /// The event the kernel sent, rebuilt, with every time on the wall
    /// clock; none for a kind this build does not know (a newer store).
    /// An exec's filename is the executable the monitor resolved, when it
    /// did, so the process table resolves it to the same path.
    pub fn event(&self, bound: Bound) -> Option<Event> {
        let detail = match self.kind.as_str() {
            "process.exec" => Detail::Exec(Exec {
                filename: self
                    .exe
                    .clone()
                    .or_else(|| self.filename.clone())
                    .unwrap_or_default(),
                filename_truncated: false,
                argv: Vec::new(),
                argv_truncated: false,
                argv_unreadable: false,
            }),
            "process.fork" => Detail::Fork {
                child_pid: self.child_pid.unwrap_or(0),
                child_start_ns: bound.child_start_ns,
            },
            "process.exit" => Detail::Exit(match (self.exit_code, self.signal) {
                (None, Some(signal)) => ExitStatus::Killed {
                    signal: signal as i32,
                    core_dumped: false,
                },
                (code, _) => ExitStatus::Exited(code.unwrap_or(0)),
            }),
            kind => {
                let kind = *ActionKind::ALL.iter().find(|k| k.name() == kind)?;
                Detail::Action(Box::new(Action {
                    kind,
                    syscall: "",
                    result: self.result.unwrap_or(0),
                    fields: self.fields.clone(),
                }))
            }
        };
        Some(Event {
            seq: self.seq,
            cpu_seq: 0,
            ts_ns: wall(self.ts),
            cpu: 0,
            pid: self.pid,
            tid: self.tid,
            ppid: self.ppid,
            uid: self.uid,
            gid: 0,
            start_ns: bound.start_ns,
            agent_slot: bound.agent_slot,
            tool_call: bound.tool_call,
            comm: self.comm.as_str().into(),
            detail,
        })
    }
}

/// A stored wall-clock time as the correlator's clock: the replay judges
/// on the wall clock alone, and nothing precedes the epoch.
pub(crate) fn wall(ts: i64) -> u64 {
    ts.max(0) as u64
}

/// Calls `each` with every event of the store, file by file: the events
/// table is never held whole.
pub(crate) fn for_each(
    store: &Store,
    mut each: impl FnMut(EventRow) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    store.for_each_batch("events", |b| {
        let columns = Columns::of(b)?;
        for row in 0..b.rows() {
            each(columns.row(row))?;
        }
        Ok(())
    })
}

/// The columns of one batch, looked up once.
struct Columns<'a> {
    seq: &'a UInt64Array,
    ts: &'a TimestampNanosecondArray,
    kind: &'a StringArray,
    agent: Option<&'a StringArray>,
    pid: &'a UInt32Array,
    ppid: Option<&'a UInt32Array>,
    tid: Option<&'a UInt32Array>,
    uid: Option<&'a UInt32Array>,
    comm: &'a StringArray,
    process_key: &'a StringArray,
    exe: Option<&'a StringArray>,
    result: Option<&'a Int64Array>,
    filename: Option<&'a StringArray>,
    cwd: Option<&'a StringArray>,
    child_pid: Option<&'a UInt32Array>,
    child_process_key: Option<&'a StringArray>,
    exit_code: Option<&'a Int32Array>,
    signal: Option<&'a Int64Array>,
    session_id: Option<&'a StringArray>,
    tool_call_id: Option<&'a StringArray>,
    verdict: Option<&'a StringArray>,
    rule: Option<&'a StringArray>,
    path: Option<&'a StringArray>,
    raw_path: Option<&'a StringArray>,
    new_path: Option<&'a StringArray>,
    new_raw_path: Option<&'a StringArray>,
    access: Option<&'a StringArray>,
    created: Option<&'a BooleanArray>,
    truncated: Option<&'a BooleanArray>,
    path_incomplete: Option<&'a BooleanArray>,
    addr: Option<&'a StringArray>,
    port: Option<&'a UInt16Array>,
    unix_path: Option<&'a StringArray>,
    local_addr: Option<&'a StringArray>,
    local_port: Option<&'a UInt16Array>,
    dns_name: Option<&'a StringArray>,
    name: Option<&'a StringArray>,
    target_pid: Option<&'a Int64Array>,
}

impl<'a> Columns<'a> {
    fn of(b: &'a Batch<'a>) -> Result<Columns<'a>, ReplayError> {
        Ok(Columns {
            seq: b.required("seq")?,
            ts: b.required("ts")?,
            kind: b.required("kind")?,
            agent: b.optional("agent")?,
            pid: b.required("pid")?,
            ppid: b.optional("ppid")?,
            tid: b.optional("tid")?,
            uid: b.optional("uid")?,
            comm: b.required("comm")?,
            process_key: b.required("process_key")?,
            exe: b.optional("exe")?,
            result: b.optional("result")?,
            filename: b.optional("filename")?,
            cwd: b.optional("cwd")?,
            child_pid: b.optional("child_pid")?,
            child_process_key: b.optional("child_process_key")?,
            exit_code: b.optional("exit_code")?,
            signal: b.optional("signal")?,
            session_id: b.optional("session_id")?,
            tool_call_id: b.optional("tool_call_id")?,
            verdict: b.optional("verdict")?,
            rule: b.optional("rule")?,
            path: b.optional("path")?,
            raw_path: b.optional("raw_path")?,
            new_path: b.optional("new_path")?,
            new_raw_path: b.optional("new_raw_path")?,
            access: b.optional("access")?,
            created: b.optional("created")?,
            truncated: b.optional("truncated")?,
            path_incomplete: b.optional("path_incomplete")?,
            addr: b.optional("addr")?,
            port: b.optional("port")?,
            unix_path: b.optional("unix_path")?,
            local_addr: b.optional("local_addr")?,
            local_port: b.optional("local_port")?,
            dns_name: b.optional("dns_name")?,
            name: b.optional("name")?,
            target_pid: b.optional("target_pid")?,
        })
    }

    fn row(&self, row: usize) -> EventRow {
        let flag = |c: Option<&BooleanArray>| c.filter(|c| c.is_valid(row)).map(|c| c.value(row));
        let fields = ActionFields {
            path: text(self.path, row),
            raw_path: text(self.raw_path, row),
            new_path: text(self.new_path, row),
            new_raw_path: text(self.new_raw_path, row),
            access: text(self.access, row).and_then(|a| access(&a)),
            created: flag(self.created),
            truncated: flag(self.truncated),
            path_incomplete: flag(self.path_incomplete),
            addr: text(self.addr, row),
            port: value(self.port, row),
            unix_path: text(self.unix_path, row),
            local_addr: text(self.local_addr, row),
            local_port: value(self.local_port, row),
            dns_name: text(self.dns_name, row),
            name: text(self.name, row),
            target_pid: value(self.target_pid, row),
            signal: value(self.signal, row),
            ..ActionFields::default()
        };
        let pid = self.pid.value(row);
        EventRow {
            seq: self.seq.value(row),
            ts: self.ts.value(row),
            kind: self.kind.value(row).to_string(),
            agent: text(self.agent, row).unwrap_or_default(),
            pid,
            ppid: value(self.ppid, row).unwrap_or(0),
            tid: value(self.tid, row).unwrap_or(pid),
            uid: value(self.uid, row).unwrap_or(0),
            comm: self.comm.value(row).to_string(),
            process_key: self.process_key.value(row).to_string(),
            exe: text(self.exe, row),
            result: value(self.result, row),
            filename: text(self.filename, row),
            cwd: text(self.cwd, row),
            child_pid: value(self.child_pid, row),
            child_process_key: text(self.child_process_key, row),
            exit_code: value(self.exit_code, row),
            signal: value(self.signal, row),
            session_id: text(self.session_id, row),
            tool_call_id: text(self.tool_call_id, row),
            verdict: text(self.verdict, row),
            rule: text(self.rule, row),
            fields,
        }
    }
}

fn access(name: &str) -> Option<Access> {
    [Access::Read, Access::Write, Access::ReadWrite]
        .into_iter()
        .find(|a| a.name() == name)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
