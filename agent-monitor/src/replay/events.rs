//! Rows of `events`, read back, and the policy effects each one had.

use arrow_array::{
    Array, BooleanArray, StringArray, TimestampNanosecondArray, UInt16Array, UInt32Array,
    UInt64Array,
};

use super::{
    error::ReplayError,
    store::{Batch, Store, text, value},
};
use crate::{
    actions::{Access, Action, ActionFields, ActionKind},
    correlate::effects::{self, Effects},
    policy::{Effect, EffectKind},
};

/// One stored event, as much as judging it needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EventRow {
    pub seq: u64,
    /// Wall-clock ns.
    pub ts: i64,
    pub kind: String,
    pub pid: u32,
    pub comm: String,
    pub process_key: String,
    pub exe: Option<String>,
    pub filename: Option<String>,
    pub session_id: Option<String>,
    pub tool_call_id: Option<String>,
    pub verdict: Option<String>,
    pub rule: Option<String>,
    pub fields: ActionFields,
}

/// What an event means to the policy, or that its kind is unknown to
/// this build (a newer store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RowEffects {
    Known(Effects),
    UnknownKind,
}

impl EventRow {
    /// The effects of the event, rebuilt as the live correlator made them:
    /// an exec is an `exec` of the executable; an action goes through
    /// [`effects::of_action`]; fork and exit are lifecycle.
    pub fn effects(&self) -> RowEffects {
        match self.kind.as_str() {
            "process.fork" | "process.exit" => RowEffects::Known(Effects::Lifecycle),
            "process.exec" => match self.exe.clone().or_else(|| self.filename.clone()) {
                Some(path) => {
                    RowEffects::Known(Effects::Some(vec![Effect::new(EffectKind::Exec, path)]))
                }
                None => RowEffects::Known(Effects::Uncoverable),
            },
            kind => match ActionKind::ALL.iter().find(|k| k.name() == kind) {
                Some(kind) => RowEffects::Known(effects::of_action(&Action {
                    kind: *kind,
                    syscall: "",
                    result: 0,
                    fields: self.fields.clone(),
                })),
                None => RowEffects::UnknownKind,
            },
        }
    }

    /// `pid 42 (python3)`, as live alerts name the actor.
    pub fn actor(&self) -> String {
        format!("pid {} ({})", self.pid, self.comm)
    }
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
    pid: &'a UInt32Array,
    comm: &'a StringArray,
    process_key: &'a StringArray,
    exe: Option<&'a StringArray>,
    filename: Option<&'a StringArray>,
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
}

impl<'a> Columns<'a> {
    fn of(b: &'a Batch<'a>) -> Result<Columns<'a>, ReplayError> {
        Ok(Columns {
            seq: b.required("seq")?,
            ts: b.required("ts")?,
            kind: b.required("kind")?,
            pid: b.required("pid")?,
            comm: b.required("comm")?,
            process_key: b.required("process_key")?,
            exe: b.optional("exe")?,
            filename: b.optional("filename")?,
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
            ..ActionFields::default()
        };
        EventRow {
            seq: self.seq.value(row),
            ts: self.ts.value(row),
            kind: self.kind.value(row).to_string(),
            pid: self.pid.value(row),
            comm: self.comm.value(row).to_string(),
            process_key: self.process_key.value(row).to_string(),
            exe: text(self.exe, row),
            filename: text(self.filename, row),
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
