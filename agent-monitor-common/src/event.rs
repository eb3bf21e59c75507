//! The fixed header that starts every record in the ring buffer.

use crate::assert_layout;

/// What a ring-buffer record is. Sent as a plain `u32` and converted with
/// [`TryFrom`] in userspace: kernel bytes are never transmuted into an enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventKind {
    ProcessExec = 1,
    ProcessFork = 2,
    ProcessExit = 3,
    /// A hooked syscall of a tracked process, with its result: a
    /// [`crate::syscall::SyscallHead`] and its fields.
    Syscall = 4,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::ProcessExec,
        EventKind::ProcessFork,
        EventKind::ProcessExit,
        EventKind::Syscall,
    ];

    /// The dotted name used in every output format (the event contract).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ProcessExec => "process.exec",
            EventKind::ProcessFork => "process.fork",
            EventKind::ProcessExit => "process.exit",
            EventKind::Syscall => "syscall",
        }
    }
}

/// A `kind` value this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownEventKind(pub u32);

impl TryFrom<u32> for EventKind {
    type Error = UnknownEventKind;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        EventKind::ALL
            .into_iter()
            .find(|kind| *kind as u32 == value)
            .ok_or(UnknownEventKind(value))
    }
}

/// Common to every event: who did it, when, and where it sits in the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// The CPU the event was recorded on.
    pub cpu: u32,
    /// Sequence number of `cpu`, taken before the ring-buffer reserve, so a
    /// lost record leaves a hole in its CPU's sequence that locates it.
    pub cpu_seq: u64,
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub ts_ns: u64,
    /// Start of the acting process (its thread-group leader), in
    /// `CLOCK_BOOTTIME` nanoseconds. With `pid` it forms a key that survives
    /// pid reuse.
    pub start_ns: u64,
    /// The tool-call slot of the acting process, 0 when none is open.
    pub tool_call: u64,
    /// Thread-group id, the process id users know.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Thread-group id of the real parent at the time of the event.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The agent slot of the acting process.
    pub agent: u32,
    pub comm: [u8; 16],
}
assert_layout!(EventHeader, 80);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_values_are_rejected() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u32), Ok(kind));
        }
        assert_eq!(EventKind::try_from(0), Err(UnknownEventKind(0)));
        assert_eq!(EventKind::try_from(999), Err(UnknownEventKind(999)));
    }
}
