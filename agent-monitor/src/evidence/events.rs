//! Rows of the `events` and `gaps` tables, appended straight into Arrow
//! column builders as events arrive: no row is copied or kept, and each
//! batch is built column by column only once, when a file closes.

use std::{fmt::Write as _, sync::Arc};

use arrow_array::{
    ArrayRef, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array,
    builder::{
        BooleanBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
        TimestampNanosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    },
};

use crate::{
    actions::ActionFields,
    event::{Detail, Event, ExitStatus, LossReport},
    evidence::{EvidenceError, columns::Lazy, schema},
    process_table::ProcessInfo,
    sink::Attribution,
    time::WallClock,
};

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

/// Appends a process key, `pid@start_ns` as `ProcessKey` displays it,
/// written straight into the builder's buffer: no `String` and no
/// `core::fmt` per row.
fn append_key(column: &mut StringBuilder, pid: u32, start_ns: u64) {
    let mut text = itoa::Buffer::new();
    column
        .write_str(text.format(pid))
        .expect("a builder takes any text");
    column.write_str("@").expect("a builder takes any text");
    column
        .write_str(text.format(start_ns))
        .expect("a builder takes any text");
    column.append_value("");
}

/// Declares the builder of the `events` table: one Arrow builder per
/// column, in [`schema::EVENTS`] order, so `finish` cannot reorder them.
macro_rules! events_builder {
    ($($column:ident: $builder:ty,)*) => {
        /// The `events` table being filled, one appended row per event.
        pub struct EventsBuilder {
            $($column: $builder,)*
            rows: usize,
        }

        impl Default for EventsBuilder {
            fn default() -> EventsBuilder {
                EventsBuilder { $($column: <$builder>::default(),)* rows: 0 }
            }
        }

        impl EventsBuilder {
            /// The batch of every row appended so far; the builder is empty
            /// after.
            pub fn finish(&mut self) -> Result<RecordBatch, EvidenceError> {
                self.rows = 0;
                let columns: Vec<ArrayRef> = vec![$(Arc::new(self.$column.finish()),)*];
                let columns = columns
                    .into_iter()
                    .map(|column| match column.data_type() {
                        // The builder's timestamps carry no zone; the schema's do.
                        arrow_schema::DataType::Timestamp(_, None) => Arc::new(
                            column
                                .as_any()
                                .downcast_ref::<TimestampNanosecondArray>()
                                .expect("the only timestamp column")
                                .clone()
                                .with_timezone("UTC"),
                        ) as ArrayRef,
                        _ => column,
                    })
                    .collect();
                Ok(RecordBatch::try_new(schema::EVENTS.clone(), columns)?)
            }
        }
    };
}

events_builder! {
    seq: UInt64Builder,
    ts: TimestampNanosecondBuilder,
    kind: StringBuilder,
    agent: StringBuilder,
    pid: UInt32Builder,
    ppid: UInt32Builder,
    tid: UInt32Builder,
    uid: UInt32Builder,
    comm: StringBuilder,
    exe: Lazy<StringBuilder>,
    process_key: StringBuilder,
    syscall: Lazy<StringBuilder>,
    result: Lazy<Int64Builder>,
    error: Lazy<StringBuilder>,
    filename: Lazy<StringBuilder>,
    argv: Lazy<ListBuilder<StringBuilder>>,
    argv_truncated: Lazy<BooleanBuilder>,
    cwd: Lazy<StringBuilder>,
    child_pid: Lazy<UInt32Builder>,
    child_process_key: Lazy<StringBuilder>,
    exit_code: Lazy<Int32Builder>,
    signal: Lazy<Int64Builder>,
    core_dumped: Lazy<BooleanBuilder>,
    path: Lazy<StringBuilder>,
    raw_path: Lazy<StringBuilder>,
    new_path: Lazy<StringBuilder>,
    new_raw_path: Lazy<StringBuilder>,
    flags: Lazy<UInt64Builder>,
    mode: Lazy<UInt32Builder>,
    access: Lazy<StringBuilder>,
    created: Lazy<BooleanBuilder>,
    truncated: Lazy<BooleanBuilder>,
    path_incomplete: Lazy<BooleanBuilder>,
    symlink: Lazy<BooleanBuilder>,
    owner_uid: Lazy<Int64Builder>,
    owner_gid: Lazy<Int64Builder>,
    length: Lazy<Int64Builder>,
    family: Lazy<StringBuilder>,
    protocol: Lazy<StringBuilder>,
    addr: Lazy<StringBuilder>,
    port: Lazy<UInt16Builder>,
    unix_path: Lazy<StringBuilder>,
    local_addr: Lazy<StringBuilder>,
    local_port: Lazy<UInt16Builder>,
    dns_name: Lazy<StringBuilder>,
    name: Lazy<StringBuilder>,
    qtype: Lazy<StringBuilder>,
    answers: Lazy<ListBuilder<StringBuilder>>,
    ids: Lazy<ListBuilder<Int64Builder>>,
    caps: Lazy<ListBuilder<StringBuilder>>,
    target_pid: Lazy<Int64Builder>,
    request: Lazy<Int64Builder>,
    bpf_cmd: Lazy<StringBuilder>,
    prog_type: Lazy<UInt32Builder>,
    fstype: Lazy<StringBuilder>,
    session_id: Lazy<StringBuilder>,
    tool_call_id: Lazy<StringBuilder>,
    verdict: Lazy<StringBuilder>,
    rule: Lazy<StringBuilder>,
}

impl EventsBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one event as a row: a value or a null in every column.
    pub fn append(
        &mut self,
        event: &Event,
        process: &ProcessInfo,
        who: &Attribution,
        clock: WallClock,
    ) {
        self.rows += 1;
        self.seq.append_value(event.seq);
        self.ts.append_value(clock.wall_ns(event.ts_ns) as i64);
        self.kind.append_value(event.kind_name());
        self.agent.append_value(who.agent);
        self.pid.append_value(event.pid);
        self.ppid.append_value(event.ppid);
        self.tid.append_value(event.tid);
        self.uid.append_value(event.uid);
        self.comm.append_value(event.comm.as_str());
        self.exe.append_option(process.exe.as_deref());
        append_key(&mut self.process_key, process.key.pid, process.key.start_ns);

        let action = match &event.detail {
            Detail::Action(action) => Some(action.as_ref()),
            _ => None,
        };
        self.syscall.append_option(action.map(|a| a.syscall));
        self.result.append_option(action.map(|a| a.result));
        self.error.append_option(action.and_then(|a| a.error()));

        let exec = match &event.detail {
            Detail::Exec(exec) => Some(exec),
            _ => None,
        };
        self.filename
            .append_option(exec.map(|e| e.filename.as_str()));
        self.argv.append_strings(exec.map(|e| e.argv.as_slice()));
        self.argv_truncated
            .append_option(exec.map(|e| e.argv_truncated));
        self.cwd.append_option(exec.and(process.cwd.as_deref()));

        match &event.detail {
            Detail::Fork {
                child_pid,
                child_start_ns,
            } => {
                self.child_pid.append_value(*child_pid);
                append_key(self.child_process_key.get(), *child_pid, *child_start_ns);
            }
            _ => {
                self.child_pid.append_null();
                self.child_process_key.append_null();
            }
        }
        let exit = match &event.detail {
            Detail::Exit(status) => Some(*status),
            _ => None,
        };
        let f: Option<&ActionFields> = action.map(|a| &a.fields);
        self.exit_code
            .append_option(exit.and_then(ExitStatus::exit_code));
        self.signal.append_option(
            exit.and_then(ExitStatus::signal)
                .map(i64::from)
                .or(f.and_then(|f| f.signal)),
        );
        self.core_dumped.append_option(exit.map(|s| {
            matches!(
                s,
                ExitStatus::Killed {
                    core_dumped: true,
                    ..
                }
            )
        }));

        self.path.append_option(f.and_then(|f| f.path.as_deref()));
        self.raw_path
            .append_option(f.and_then(|f| f.raw_path.as_deref()));
        self.new_path
            .append_option(f.and_then(|f| f.new_path.as_deref()));
        self.new_raw_path
            .append_option(f.and_then(|f| f.new_raw_path.as_deref()));
        self.flags.append_option(f.and_then(|f| f.flags));
        self.mode.append_option(f.and_then(|f| f.mode));
        self.access
            .append_option(f.and_then(|f| f.access).map(|a| a.name()));
        self.created.append_option(f.and_then(|f| f.created));
        self.truncated.append_option(f.and_then(|f| f.truncated));
        self.path_incomplete
            .append_option(f.and_then(|f| f.path_incomplete));
        self.symlink.append_option(f.and_then(|f| f.symlink));
        self.owner_uid.append_option(f.and_then(|f| f.owner_uid));
        self.owner_gid.append_option(f.and_then(|f| f.owner_gid));
        self.length.append_option(f.and_then(|f| f.length));
        self.family.append_option(f.and_then(|f| f.family));
        self.protocol.append_option(f.and_then(|f| f.protocol));
        self.addr.append_option(f.and_then(|f| f.addr.as_deref()));
        self.port.append_option(f.and_then(|f| f.port));
        self.unix_path
            .append_option(f.and_then(|f| f.unix_path.as_deref()));
        self.local_addr
            .append_option(f.and_then(|f| f.local_addr.as_deref()));
        self.local_port.append_option(f.and_then(|f| f.local_port));
        self.dns_name
            .append_option(f.and_then(|f| f.dns_name.as_deref()));
        self.name.append_option(f.and_then(|f| f.name.as_deref()));
        self.qtype.append_option(f.and_then(|f| f.qtype.as_deref()));
        self.answers
            .append_strings(f.and_then(|f| f.answers.as_deref()));
        match f.and_then(|f| f.ids.as_deref()) {
            Some(ids) => {
                let builder = self.ids.get();
                builder.values().append_slice(ids);
                builder.append(true);
            }
            None => self.ids.append_null(),
        }
        self.caps.append_strings(f.and_then(|f| f.caps.as_deref()));
        self.target_pid.append_option(f.and_then(|f| f.target_pid));
        self.request.append_option(f.and_then(|f| f.request));
        self.bpf_cmd.append_option(f.and_then(|f| f.bpf_cmd));
        self.prog_type.append_option(f.and_then(|f| f.prog_type));
        self.fstype
            .append_option(f.and_then(|f| f.fstype.as_deref()));
        // Null until known: the session from `run` or a declaration, the
        // rest from correlation with declared tool calls.
        self.session_id.append_option(who.session_id);
        self.tool_call_id.append_option(who.tool_call_id);
        self.verdict.append_option(who.verdict);
        self.rule.append_option(who.rule);
    }
}

/// The `processes` table being filled.
#[derive(Default)]
pub struct ProcessesBuilder {
    process_key: StringBuilder,
    pid: UInt32Builder,
    parent_key: StringBuilder,
    ppid: UInt32Builder,
    agent: StringBuilder,
    exe: StringBuilder,
    argv: Lazy<ListBuilder<StringBuilder>>,
    cwd: StringBuilder,
    uid: UInt32Builder,
    cgroup: StringBuilder,
    container_id: StringBuilder,
    exe_sha256: StringBuilder,
    start: TimestampNanosecondBuilder,
    exit: TimestampNanosecondBuilder,
    exit_code: Int32Builder,
    signal: Int32Builder,
    rows: usize,
}

impl ProcessesBuilder {
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn append(&mut self, process: &ProcessInfo, agent: &str, clock: WallClock) {
        self.rows += 1;
        append_key(&mut self.process_key, process.key.pid, process.key.start_ns);
        self.pid.append_value(process.key.pid);
        self.parent_key
            .append_option(process.parent.map(|k| k.to_string()));
        self.ppid.append_value(process.ppid);
        self.agent.append_value(agent);
        self.exe.append_option(process.exe.as_deref());
        self.argv.append_strings(Some(&process.argv));
        self.cwd.append_option(process.cwd.as_deref());
        self.uid.append_value(process.uid);
        let identity = &process.identity;
        self.cgroup.append_option(identity.cgroup.as_deref());
        self.container_id
            .append_option(identity.container_id.as_deref());
        self.exe_sha256
            .append_option(identity.exe_sha256.as_deref());
        self.start
            .append_value(clock.wall_ns(process.key.start_ns) as i64);
        self.exit
            .append_option(process.exit_ns.map(|ns| clock.wall_ns(ns) as i64));
        self.exit_code
            .append_option(process.exit.and_then(ExitStatus::exit_code));
        self.signal
            .append_option(process.exit.and_then(ExitStatus::signal));
    }

    pub fn finish(&mut self) -> Result<RecordBatch, EvidenceError> {
        self.rows = 0;
        let utc = |mut b: TimestampNanosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.process_key.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.parent_key.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.agent.finish()),
            Arc::new(self.exe.finish()),
            Arc::new(self.argv.finish()),
            Arc::new(self.cwd.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.cgroup.finish()),
            Arc::new(self.container_id.finish()),
            Arc::new(self.exe_sha256.finish()),
            utc(std::mem::take(&mut self.start)),
            utc(std::mem::take(&mut self.exit)),
            Arc::new(self.exit_code.finish()),
            Arc::new(self.signal.finish()),
        ];
        Ok(RecordBatch::try_new(schema::PROCESSES.clone(), columns)?)
    }
}

/// One row of `gaps`: work lost, where and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What was lost: `events`, `tracked_processes`, `processes`.
    pub lost: &'static str,
    /// Why: `ring_buffer_full` and `tracked_map_full` in the kernel,
    /// `storage` when the journal could not take the rows.
    pub cause: &'static str,
    /// The CPU, for losses the kernel counts per CPU.
    pub cpu: Option<u32>,
    pub count: u64,
    /// Wall-clock ns: the loss happened in between.
    pub since_ns: i64,
    pub until_ns: i64,
}

impl Gap {
    pub fn from_loss(loss: &LossReport, clock: WallClock) -> Gap {
        Gap {
            lost: loss.lost(),
            cause: match loss.counter {
                agent_monitor_common::maps::Counter::RingbufFull => "ring_buffer_full",
                agent_monitor_common::maps::Counter::TrackFull => "tracked_map_full",
            },
            cpu: Some(loss.cpu),
            count: loss.count,
            since_ns: clock.wall_ns(loss.since_ns) as i64,
            until_ns: clock.wall_ns(loss.until_ns) as i64,
        }
    }
}

fn utc_timestamps(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// The `gaps` batch of these rows.
pub fn gaps_batch(gaps: &[Gap]) -> Result<RecordBatch, EvidenceError> {
    let columns: Vec<ArrayRef> = vec![
        strings(gaps.iter().map(|g| Some(g.lost))),
        strings(gaps.iter().map(|g| Some(g.cause))),
        Arc::new(UInt32Array::from_iter(gaps.iter().map(|g| g.cpu))),
        Arc::new(UInt64Array::from_iter_values(gaps.iter().map(|g| g.count))),
        utc_timestamps(gaps.iter().map(|g| g.since_ns)),
        utc_timestamps(gaps.iter().map(|g| g.until_ns)),
    ];
    Ok(RecordBatch::try_new(schema::GAPS.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_table::ProcessKey;

    #[test]
    fn keys_are_written_as_they_display() {
        let mut column = StringBuilder::new();
        for (pid, start_ns) in [(0, 0), (1, 12_345), (u32::MAX, u64::MAX)] {
            append_key(&mut column, pid, start_ns);
        }
        let column = column.finish();
        for (i, (pid, start_ns)) in [(0, 0), (1, 12_345), (u32::MAX, u64::MAX)]
            .into_iter()
            .enumerate()
        {
            assert_eq!(column.value(i), ProcessKey { pid, start_ns }.to_string());
        }
    }
}
