//! Payloads of the `process.*` events, emitted by `probes/process.rs`.

use crate::{EventHeader, assert_layout};

/// Longest path the probes copy, including the terminating NUL.
pub const PATH_CAP: usize = 4096;
/// Bytes of the NUL-separated argument block copied at exec: room for at
/// least 32 arguments of 256 bytes, and then some.
pub const ARGV_CAP: usize = 16384;

/// `ExecEvent::flags`: the filename did not fit in [`PATH_CAP`].
pub const EXEC_FILENAME_TRUNCATED: u16 = 1 << 0;
/// `ExecEvent::flags`: the argument block was longer than [`ARGV_CAP`].
pub const EXEC_ARGV_TRUNCATED: u16 = 1 << 1;
/// `ExecEvent::flags`: the argument block could not be read at all.
pub const EXEC_ARGV_UNREADABLE: u16 = 1 << 2;

/// The fixed part of a `process.exec` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ExecHead {
    pub header: EventHeader,
    /// Bytes of `data` holding the filename, without its NUL.
    pub filename_len: u16,
    /// Bytes of `data` after the filename holding the argument block.
    pub argv_len: u16,
    pub flags: u16,
    pub _pad: u16,
    /// Full length of the argument block in the process, before truncation.
    pub argv_total_len: u32,
    pub _pad2: u32,
}
assert_layout!(ExecHead, 96);

/// `process.exec`. Only the used prefix is sent: the record is
/// `EXEC_FIXED_LEN + filename_len + argv_len` bytes.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct ExecEvent {
    pub head: ExecHead,
    /// The filename (without NUL), then the NUL-separated argument block.
    pub data: [u8; EXEC_DATA_CAP],
}
/// Room for the filename and the arguments; the filename's share is bounded
/// by [`PATH_CAP`] so the argument copy can always start inside the buffer.
pub const EXEC_DATA_CAP: usize = PATH_CAP + ARGV_CAP;
/// Where `data` starts in a record: the fixed part every exec record carries.
pub const EXEC_FIXED_LEN: usize = core::mem::size_of::<ExecHead>();
assert_layout!(ExecEvent, EXEC_FIXED_LEN + EXEC_DATA_CAP);
const _: () = assert!(PATH_CAP.is_power_of_two() && ARGV_CAP.is_power_of_two());

/// `process.fork`: a new process (not a thread) in a tracked tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ForkEvent {
    pub header: EventHeader,
    pub child_pid: u32,
    pub _pad: u32,
    /// The child's start, `CLOCK_BOOTTIME` nanoseconds: its process key.
    pub child_start_ns: u64,
}
assert_layout!(ForkEvent, 96);

/// `process.exit`: the last thread of a tracked process has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// The kernel's wait status: `(code << 8)` for a normal exit, the
    /// signal number (with 0x80 for a core dump) for a killed process.
    pub status: u32,
    pub _pad: u32,
}
assert_layout!(ExitEvent, 88);
