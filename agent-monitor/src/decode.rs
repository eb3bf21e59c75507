//! Ring-buffer records to [`Event`]s. Every length is checked and the kind
//! goes through `TryFrom`: nothing the kernel sends is trusted blindly.

use std::mem::size_of;

use agent_monitor_common::{
    EventHeader, EventKind, UnknownEventKind,
    process::{
        EXEC_ARGV_TRUNCATED, EXEC_ARGV_UNREADABLE, EXEC_FILENAME_TRUNCATED, EXEC_FIXED_LEN,
        ExecHead, ExitEvent, ForkEvent,
    },
};

use crate::{
    comm::Comm,
    event::{Detail, Event, Exec, ExitStatus},
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than the {need}-byte {what}")]
    Short {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("unknown event kind {}", .0.0)]
    UnknownKind(UnknownEventKind),
    #[error("exec record claims {claimed} bytes of filename and arguments but carries {carried}")]
    ExecLength { claimed: usize, carried: usize },
    #[error("syscall record claims {claimed} bytes of fields but carries {carried}")]
    FieldLength { claimed: usize, carried: usize },
    #[error("unknown syscall field tag {0}")]
    UnknownField(u8),
    #[error("syscall {0} is not one this build interprets")]
    Uninterpreted(u32),
}

impl DecodeError {
    /// What kind of failure this is, without the details that vary from
    /// record to record: a bounded set of keys for counting.
    pub fn reason(&self) -> String {
        match self {
            DecodeError::Short { what, .. } => format!("short {what}"),
            DecodeError::UnknownKind(kind) => format!("unknown kind {}", kind.0),
            DecodeError::ExecLength { .. } => "bad exec lengths".into(),
            DecodeError::FieldLength { .. } => "bad field lengths".into(),
            DecodeError::UnknownField(tag) => format!("unknown field tag {tag}"),
            DecodeError::Uninterpreted(nr) => format!("uninterpreted syscall {nr}"),
        }
    }
}

/// Reads a plain-integer `repr(C)` struct from the front of `bytes`.
pub(crate) fn read_struct<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short {
            what,
            len: bytes.len(),
            need,
        });
    }
    // SAFETY: the length is checked above, the read is unaligned-safe, and
    // every `T` used here (header and payloads from agent-monitor-common) is
    // made only of integers, for which every bit pattern is valid.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Decodes one record; `seq` is its position in the stream.
pub fn decode(bytes: &[u8], seq: u64) -> Result<Event, DecodeError> {
    let header: EventHeader = read_struct(bytes, "event header")?;
    let kind = EventKind::try_from(header.kind).map_err(DecodeError::UnknownKind)?;
    let detail = match kind {
        EventKind::ProcessExec => Detail::Exec(decode_exec(bytes)?),
        EventKind::ProcessFork => {
            let fork: ForkEvent = read_struct(bytes, "fork record")?;
            Detail::Fork {
                child_pid: fork.child_pid,
                child_start_ns: fork.child_start_ns,
            }
        }
        EventKind::ProcessExit => {
            let exit: ExitEvent = read_struct(bytes, "exit record")?;
            Detail::Exit(ExitStatus::from_wait_status(exit.status))
        }
        EventKind::Syscall => {
            let (_, record) = crate::actions::record::parse(bytes)?;
            match crate::actions::interpret(&record) {
                Some(action) => Detail::Action(action),
                None => return Err(DecodeError::Uninterpreted(record.nr)),
            }
        }
    };
    Ok(Event {
        seq,
        cpu_seq: header.cpu_seq,
        ts_ns: header.ts_ns,
        cpu: header.cpu,
        pid: header.pid,
        tid: header.tid,
        ppid: header.ppid,
        uid: header.uid,
        gid: header.gid,
        start_ns: header.start_ns,
        agent_slot: header.agent,
        tool_call: header.tool_call,
        comm: c_string(&header.comm),
        detail,
    })
}

fn decode_exec(bytes: &[u8]) -> Result<Exec, DecodeError> {
    let fixed: ExecHead = read_struct(bytes, "exec record")?;
    let data = &bytes[EXEC_FIXED_LEN..];
    let filename_len = usize::from(fixed.filename_len);
    let argv_len = usize::from(fixed.argv_len);
    if filename_len + argv_len > data.len() {
        return Err(DecodeError::ExecLength {
            claimed: filename_len + argv_len,
            carried: data.len(),
        });
    }
    let (filename, rest) = data.split_at(filename_len);
    Ok(Exec {
        filename: text(filename),
        filename_truncated: fixed.flags & EXEC_FILENAME_TRUNCATED != 0,
        argv: split_args(&rest[..argv_len]),
        argv_truncated: fixed.flags & EXEC_ARGV_TRUNCATED != 0,
        argv_unreadable: fixed.flags & EXEC_ARGV_UNREADABLE != 0,
    })
}

/// Splits a NUL-separated argument block. The block normally ends in a NUL;
/// a cut-short block ends in a partial argument, which is kept.
fn split_args(block: &[u8]) -> Vec<String> {
    // An empty block has no arguments; a lone NUL is one empty argument
    // (what Linux 5.18+ runs when execve is given an empty argv).
    if block.is_empty() {
        return Vec::new();
    }
    let block = block.strip_suffix(&[0]).unwrap_or(block);
    block.split(|b| *b == 0).map(text).collect()
}

/// Kernel bytes as text, invalid UTF-8 replaced by U+FFFD. Valid text,
/// nearly all of it, is checked and copied in one pass each; the lossy
/// walk runs only on the rest.
pub(crate) fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// A NUL-terminated (or full) fixed-size byte array as text.
fn c_string(bytes: &[u8]) -> Comm {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    Comm::from_bytes(&bytes[..end])
}

#[cfg(test)]
#[path = "decode_tests/mod.rs"]
mod tests;
