//! Decoded events: owned, checked copies of what the kernel sent.

use agent_monitor_common::EventKind;

use crate::{actions::Action, comm::Comm};

/// One observed action of a tracked process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Position in the stream, in the order the kernel committed records.
    pub seq: u64,
    /// Sequence number within `cpu`: a hole is a lost record.
    pub cpu_seq: u64,
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub ts_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Start of the acting process, `CLOCK_BOOTTIME` nanoseconds.
    pub start_ns: u64,
    pub agent_slot: u32,
    pub tool_call: u64,
    pub comm: Comm,
    pub detail: Detail,
}

/// The kind-specific part of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detail {
    Exec(Exec),
    Fork {
        child_pid: u32,
        child_start_ns: u64,
    },
    Exit(ExitStatus),
    /// A file, network, DNS or privilege action, from a hooked syscall.
    /// Boxed: it is several times the size of the other variants.
    Action(Box<Action>),
}

impl Event {
    /// The record kind the kernel sent.
    pub fn kind(&self) -> EventKind {
        match self.detail {
            Detail::Exec(_) => EventKind::ProcessExec,
            Detail::Fork { .. } => EventKind::ProcessFork,
            Detail::Exit(_) => EventKind::ProcessExit,
            Detail::Action(_) => EventKind::Syscall,
        }
    }

    /// The dotted kind of the event contract (`process.exec`, `file.open`).
    pub fn kind_name(&self) -> &'static str {
        match &self.detail {
            Detail::Action(action) => action.kind.name(),
            _ => self.kind().name(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exec {
    /// The path as passed to execve, which may be relative.
    pub filename: String,
    pub filename_truncated: bool,
    pub argv: Vec<String>,
    /// The argument block was longer than the probe copies; the last
    /// argument may be cut short.
    pub argv_truncated: bool,
    /// The argument block could not be read at all.
    pub argv_unreadable: bool,
}

/// How a process ended, from the kernel's wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Killed { signal: i32, core_dumped: bool },
}

impl ExitStatus {
    /// Decodes a wait status as `waitpid` reports it.
    pub fn from_wait_status(status: u32) -> ExitStatus {
        let signal = (status & 0x7f) as i32;
        if signal == 0 {
            ExitStatus::Exited(((status >> 8) & 0xff) as i32)
        } else {
            ExitStatus::Killed {
                signal,
                core_dumped: status & 0x80 != 0,
            }
        }
    }

    pub fn exit_code(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(code),
            ExitStatus::Killed { .. } => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Killed { signal, .. } => Some(signal),
        }
    }

    /// The status a shell reports: the code, or 128 + the signal.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Killed { signal, .. } => 128 + signal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decodes_exits_and_signals() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8), ExitStatus::Exited(3));
        assert_eq!(ExitStatus::from_wait_status(0), ExitStatus::Exited(0));
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus::Killed {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(0x80 | 11),
            ExitStatus::Killed {
                signal: 11,
                core_dumped: true
            }
        );
        assert_eq!(ExitStatus::from_wait_status(9).shell_status(), 137);
        assert_eq!(ExitStatus::from_wait_status(3 << 8).shell_status(), 3);
    }
}

/// What flows from the ring-buffer reader to the processing stage.
#[derive(Debug)]
pub enum Record {
    Event(Event),
    /// A record that failed to decode; counted and reported, never used.
    Invalid(crate::decode::DecodeError),
    /// The kernel counted lost work on one CPU since the last report.
    Loss(LossReport),
}

impl LossReport {
    /// What was lost, as every output names it.
    pub fn lost(&self) -> &'static str {
        match self.counter {
            agent_monitor_common::maps::Counter::RingbufFull => "events",
            agent_monitor_common::maps::Counter::TrackFull => "tracked_processes",
        }
    }
}

/// Lost work reported by the kernel's per-CPU counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossReport {
    pub counter: agent_monitor_common::maps::Counter,
    pub cpu: u32,
    /// How many were lost since the previous report.
    pub count: u64,
    /// `CLOCK_BOOTTIME` ns of the previous and of this reading: the loss
    /// happened in between.
    pub since_ns: u64,
    pub until_ns: u64,
}
