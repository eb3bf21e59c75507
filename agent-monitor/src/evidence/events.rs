//! Rows of the `events` and `gaps` tables, and their Arrow batches.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array, UInt64Array,
    builder::{Int64Builder, ListBuilder, StringBuilder},
};

use crate::{
    actions::{Action, ActionFields},
    event::{Detail, Event, Exec, ExitStatus, LossReport},
    evidence::{EvidenceError, schema},
    process_table::ProcessInfo,
    time::WallClock,
};

/// One event with what the process table knew when it was processed.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub event: Event,
    pub ts_ns: i64,
    pub agent: Arc<str>,
    pub exe: Option<String>,
    pub cwd: Option<String>,
    pub process_key: String,
}

impl EventRow {
    pub fn new(
        event: &Event,
        process: &ProcessInfo,
        agent: Arc<str>,
        clock: WallClock,
    ) -> EventRow {
        EventRow {
            event: event.clone(),
            ts_ns: clock.wall_ns(event.ts_ns) as i64,
            agent,
            exe: process.exe.clone(),
            cwd: process.cwd.clone(),
            process_key: process.key.to_string(),
        }
    }

    fn action(&self) -> Option<&ActionFields> {
        self.whole_action().map(|a| &a.fields)
    }

    fn whole_action(&self) -> Option<&Action> {
        match &self.event.detail {
            Detail::Action(action) => Some(action),
            _ => None,
        }
    }

    fn exec(&self) -> Option<&Exec> {
        match &self.event.detail {
            Detail::Exec(exec) => Some(exec),
            _ => None,
        }
    }

    fn exit(&self) -> Option<ExitStatus> {
        match &self.event.detail {
            Detail::Exit(status) => Some(*status),
            _ => None,
        }
    }
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn string_lists<'a>(values: impl Iterator<Item = Option<&'a [String]>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for value in values {
        match value {
            Some(items) => {
                for item in items {
                    builder.values().append_value(item);
                }
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

fn int_lists<'a>(values: impl Iterator<Item = Option<&'a [i64]>>) -> ArrayRef {
    let mut builder = ListBuilder::new(Int64Builder::new());
    for value in values {
        match value {
            Some(items) => {
                builder.values().append_slice(items);
                builder.append(true);
            }
            None => builder.append(false),
        }
    }
    Arc::new(builder.finish())
}

/// The `events` batch of `rows`, in [`schema::EVENTS`] column order.
pub fn events_batch(rows: &[EventRow]) -> Result<RecordBatch, EvidenceError> {
    let act = |f: fn(&ActionFields) -> Option<&str>| {
        strings(rows.iter().map(move |r| r.action().and_then(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|r| r.event.seq),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.ts_ns))
                .with_timezone("UTC"),
        ),
        strings(rows.iter().map(|r| Some(r.event.kind_name()))),
        strings(rows.iter().map(|r| Some(&*r.agent))),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.pid),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.ppid),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.tid),
        )),
        Arc::new(UInt32Array::from_iter_values(
            rows.iter().map(|r| r.event.uid),
        )),
        strings(rows.iter().map(|r| Some(r.event.comm.as_str()))),
        strings(rows.iter().map(|r| r.exe.as_deref())),
        strings(rows.iter().map(|r| Some(r.process_key.as_str()))),
        strings(rows.iter().map(|r| r.whole_action().map(|a| a.syscall))),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.whole_action().map(|a| a.result)),
        )),
        strings(
            rows.iter()
                .map(|r| r.whole_action().and_then(|a| a.error())),
        ),
        strings(rows.iter().map(|r| r.exec().map(|e| e.filename.as_str()))),
        string_lists(rows.iter().map(|r| r.exec().map(|e| e.argv.as_slice()))),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.exec().map(|e| e.argv_truncated)),
        )),
        strings(rows.iter().map(|r| r.exec().and(r.cwd.as_deref()))),
        Arc::new(UInt32Array::from_iter(rows.iter().map(
            |r| match &r.event.detail {
                Detail::Fork { child_pid, .. } => Some(*child_pid),
                _ => None,
            },
        ))),
        strings(
            rows.iter()
                .map(|r| match &r.event.detail {
                    Detail::Fork {
                        child_pid,
                        child_start_ns,
                    } => Some(format!("{child_pid}@{child_start_ns}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .iter()
                .map(Option::as_deref),
        ),
        Arc::new(Int32Array::from_iter(
            rows.iter().map(|r| r.exit().and_then(|s| s.exit_code())),
        )),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| {
            r.exit()
                .and_then(|s| s.signal())
                .map(i64::from)
                .or(r.action().and_then(|f| f.signal))
        }))),
        Arc::new(BooleanArray::from_iter(rows.iter().map(|r| {
            r.exit().map(|s| {
                matches!(
                    s,
                    crate::event::ExitStatus::Killed {
                        core_dumped: true,
                        ..
                    }
                )
            })
        }))),
        act(|f| f.path.as_deref()),
        act(|f| f.raw_path.as_deref()),
        act(|f| f.new_path.as_deref()),
        act(|f| f.new_raw_path.as_deref()),
        Arc::new(UInt64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.flags)),
        )),
        Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.mode)),
        )),
        act(|f| f.access.map(|a| a.name())),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.created)),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.truncated)),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter()
                .map(|r| r.action().and_then(|f| f.path_incomplete)),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.symlink)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.owner_uid)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.owner_gid)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.length)),
        )),
        act(|f| f.family),
        act(|f| f.protocol),
        act(|f| f.addr.as_deref()),
        Arc::new(UInt16Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.port)),
        )),
        act(|f| f.unix_path.as_deref()),
        act(|f| f.local_addr.as_deref()),
        Arc::new(UInt16Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.local_port)),
        )),
        act(|f| f.dns_name.as_deref()),
        act(|f| f.name.as_deref()),
        act(|f| f.qtype.as_deref()),
        string_lists(
            rows.iter()
                .map(|r| r.action().and_then(|f| f.answers.as_deref())),
        ),
        int_lists(
            rows.iter()
                .map(|r| r.action().and_then(|f| f.ids.as_deref())),
        ),
        string_lists(
            rows.iter()
                .map(|r| r.action().and_then(|f| f.caps.as_deref())),
        ),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.target_pid)),
        )),
        Arc::new(Int64Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.request)),
        )),
        act(|f| f.bpf_cmd),
        Arc::new(UInt32Array::from_iter(
            rows.iter().map(|r| r.action().and_then(|f| f.prog_type)),
        )),
        act(|f| f.fstype.as_deref()),
        strings(rows.iter().map(|_| None)),
        strings(rows.iter().map(|_| None)),
        strings(rows.iter().map(|_| None)),
        strings(rows.iter().map(|_| None)),
    ];
    Ok(RecordBatch::try_new(schema::EVENTS.clone(), columns)?)
}

/// The `gaps` batch of loss reports.
pub fn gaps_batch(losses: &[LossReport], clock: WallClock) -> Result<RecordBatch, EvidenceError> {
    use agent_monitor_common::maps::Counter;
    let columns: Vec<ArrayRef> = vec![
        strings(losses.iter().map(|l| {
            Some(match l.counter {
                Counter::RingbufFull => "events",
                Counter::TrackFull => "tracked_processes",
            })
        })),
        Arc::new(UInt32Array::from_iter_values(losses.iter().map(|l| l.cpu))),
        Arc::new(UInt64Array::from_iter_values(
            losses.iter().map(|l| l.count),
        )),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(
                losses.iter().map(|l| clock.wall_ns(l.since_ns) as i64),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(
            TimestampNanosecondArray::from_iter_values(
                losses.iter().map(|l| clock.wall_ns(l.until_ns) as i64),
            )
            .with_timezone("UTC"),
        ),
    ];
    Ok(RecordBatch::try_new(schema::GAPS.clone(), columns)?)
}
