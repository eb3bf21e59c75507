//! One JSON object per line, in the event contract of docs/events.md.

use std::io::{self, Write};

use serde::{Serializer, ser::SerializeMap};

use crate::{
    actions::Action,
    event::{Detail, Event, LossReport},
    evidence::declared::Declared,
    process_table::ProcessInfo,
    sink::{Attribution, Sink},
    time::{WallClock, rfc3339},
};

pub struct JsonlSink<W: Write> {
    out: W,
    clock: WallClock,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(out: W, clock: WallClock) -> JsonlSink<W> {
        JsonlSink { out, clock }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(
        &mut self,
        write: impl FnOnce(&mut serde_json::Serializer<&mut W>) -> serde_json::Result<()>,
    ) -> io::Result<()> {
        let mut serializer = serde_json::Serializer::new(&mut self.out);
        write(&mut serializer).map_err(io::Error::from)?;
        self.out.write_all(b"\n")
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn event(&mut self, event: &Event, process: &ProcessInfo, who: &Attribution) -> io::Result<()> {
        let ts = rfc3339(self.clock.wall_ns(event.ts_ns));
        self.line(|s| {
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("seq", &event.seq)?;
            map.serialize_entry("ts", &ts)?;
            map.serialize_entry("kind", event.kind_name())?;
            map.serialize_entry("agent", who.agent)?;
            let correlation = [
                ("session_id", who.session_id),
                ("tool_call_id", who.tool_call_id),
                ("verdict", who.verdict),
                ("rule", who.rule),
            ];
            for (key, value) in correlation {
                if let Some(value) = value {
                    map.serialize_entry(key, value)?;
                }
            }
            map.serialize_entry("pid", &event.pid)?;
            map.serialize_entry("ppid", &event.ppid)?;
            map.serialize_entry("tid", &event.tid)?;
            map.serialize_entry("uid", &event.uid)?;
            map.serialize_entry("comm", event.comm.as_str())?;
            map.serialize_entry("exe", &process.exe)?;
            map.serialize_entry("process_key", &process.key.to_string())?;
            match &event.detail {
                Detail::Exec(exec) => {
                    map.serialize_entry("filename", &exec.filename)?;
                    map.serialize_entry("argv", &exec.argv)?;
                    map.serialize_entry("argv_truncated", &exec.argv_truncated)?;
                    if exec.filename_truncated {
                        map.serialize_entry("filename_truncated", &true)?;
                    }
                    if exec.argv_unreadable {
                        map.serialize_entry("argv_unreadable", &true)?;
                    }
                    map.serialize_entry("cwd", &process.cwd)?;
                }
                Detail::Fork {
                    child_pid,
                    child_start_ns,
                } => {
                    map.serialize_entry("child_pid", child_pid)?;
                    let child = crate::process_table::ProcessKey {
                        pid: *child_pid,
                        start_ns: *child_start_ns,
                    };
                    map.serialize_entry("child_process_key", &child.to_string())?;
                }
                Detail::Action(action) => write_action(&mut map, action)?,
                Detail::Exit(status) => {
                    map.serialize_entry("exit_code", &status.exit_code())?;
                    map.serialize_entry("signal", &status.signal())?;
                    if let crate::event::ExitStatus::Killed {
                        core_dumped: true, ..
                    } = status
                    {
                        map.serialize_entry("core_dumped", &true)?;
                    }
                }
            }
            map.end()
        })
    }

    fn loss(&mut self, loss: &LossReport) -> io::Result<()> {
        let since = rfc3339(self.clock.wall_ns(loss.since_ns));
        let until = rfc3339(self.clock.wall_ns(loss.until_ns));
        let what = loss.lost();
        self.line(|s| {
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("kind", "monitor.loss")?;
            map.serialize_entry("lost", what)?;
            map.serialize_entry("cpu", &loss.cpu)?;
            map.serialize_entry("count", &loss.count)?;
            map.serialize_entry("since", &since)?;
            map.serialize_entry("until", &until)?;
            map.end()
        })
    }

    /// One line per record, `kind` naming its table (`session`,
    /// `message`, `tool_call`, `decision`, `alert`), times in RFC 3339.
    /// An alert's kind is `alert_kind`.
    fn declared(&mut self, record: &Declared) -> io::Result<()> {
        let (kind, row) = match record {
            Declared::Session(row) => ("session", serde_json::to_value(row)),
            Declared::Message(row) => ("message", serde_json::to_value(row)),
            Declared::ToolCall(row) => ("tool_call", serde_json::to_value(row)),
            Declared::Decision(row) => ("decision", serde_json::to_value(row)),
            Declared::Alert(row) => ("alert", serde_json::to_value(row)),
        };
        let serde_json::Value::Object(fields) = row.map_err(io::Error::from)? else {
            return Err(io::Error::other("a row serializes to an object"));
        };
        self.line(|s| {
            let mut map = s.serialize_map(None)?;
            map.serialize_entry("kind", kind)?;
            for (key, value) in &fields {
                // An alert's own kind cannot take the line's `kind`.
                let key = match (kind, key.as_str()) {
                    ("alert", "kind") => "alert_kind",
                    (_, key) => key,
                };
                match (key, value.as_i64()) {
                    ("ts" | "started" | "ended", Some(ns)) => {
                        map.serialize_entry(key, &rfc3339(i128::from(ns)))?
                    }
                    _ => map.serialize_entry(key, value)?,
                }
            }
            map.end()
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The kind-specific fields of an action: those it has, by their contract
/// names, then the syscall and its result.
fn write_action<M: SerializeMap>(map: &mut M, action: &Action) -> Result<(), M::Error> {
    macro_rules! present {
        ($($name:literal => $value:expr,)*) => {
            $(if let Some(value) = &$value {
                map.serialize_entry($name, value)?;
            })*
        };
    }
    let f = &action.fields;
    present! {
        "path" => f.path,
        "raw_path" => f.raw_path,
        "new_path" => f.new_path,
        "new_raw_path" => f.new_raw_path,
        "flags" => f.flags,
        "mode" => f.mode,
        "access" => f.access.map(|a| a.name()),
        "created" => f.created,
        "truncated" => f.truncated,
        "path_incomplete" => f.path_incomplete,
        "symlink" => f.symlink,
        "owner_uid" => f.owner_uid,
        "owner_gid" => f.owner_gid,
        "length" => f.length,
        "family" => f.family,
        "protocol" => f.protocol,
        "addr" => f.addr,
        "port" => f.port,
        "unix_path" => f.unix_path,
        "local_addr" => f.local_addr,
        "local_port" => f.local_port,
        "dns_name" => f.dns_name,
        "name" => f.name,
        "type" => f.qtype,
        "answers" => f.answers,
        "ids" => f.ids,
        "caps" => f.caps,
        "target_pid" => f.target_pid,
        "signal" => f.signal,
        "request" => f.request,
        "bpf_cmd" => f.bpf_cmd,
        "prog_type" => f.prog_type,
        "fstype" => f.fstype,
    }
    map.serialize_entry("syscall", action.syscall)?;
    map.serialize_entry("result", &action.result)?;
    if let Some(error) = action.error() {
        map.serialize_entry("error", error)?;
    }
    Ok(())
}

#[cfg(test)]
#[path = "jsonl_tests.rs"]
mod tests;
