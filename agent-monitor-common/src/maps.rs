//! Map names, keys, values and sizes. Both sides use these constants, so a
//! renamed map fails to compile rather than to load.

use crate::assert_layout;

/// Ring buffer carrying every event to userspace.
pub const EVENTS: &str = "EVENTS";
/// Hash map: tracked thread-group id (`u32`) → [`TrackedProcess`].
pub const TRACKED: &str = "TRACKED";
/// Array of `u64` words, one bit per pid: set while the pid is in
/// [`TRACKED`]. Memory-mappable, so that userspace can set a bit with an
/// atomic OR when it adopts a running process. A pre-filter the syscall probe can test without a helper
/// call (array lookups are inlined by the verifier).
pub const TRACKED_BITS: &str = "TRACKED_BITS";
/// The highest pid Linux can hand out (`PID_MAX_LIMIT` on 64-bit).
pub const PID_LIMIT: u32 = 1 << 22;
/// Words of [`TRACKED_BITS`]: 512 KiB covers every possible pid.
pub const TRACKED_WORDS: u32 = PID_LIMIT / 64;
/// Per-CPU array of `u64` counters, indexed by [`Counter`].
pub const COUNTERS: &str = "COUNTERS";
/// Per-CPU scratch space for building exec records too large for the stack.
pub const EXEC_SCRATCH: &str = "EXEC_SCRATCH";
/// Program array: the per-family syscall exit programs.
pub const EXIT_PROGRAMS: &str = "EXIT_PROGRAMS";
/// The global holding [`crate::layout::KernelLayout`].
pub const KERNEL_LAYOUT: &str = "KERNEL_LAYOUT";

/// Hash maps of the discovery rules' exact keys, each key → 1: the path
/// `execve` received (NUL-padded to [`RULE_EXE_LEN`]), the task name
/// (NUL-padded to 16 bytes), and the uid.
pub const RULES_EXE: &str = "RULES_EXE";
pub const RULES_COMM: &str = "RULES_COMM";
pub const RULES_UID: &str = "RULES_UID";
/// Bytes of a [`RULES_EXE`] key.
pub const RULE_EXE_LEN: usize = 256;
/// Most keys of each rule map.
pub const RULE_KEYS_MAX: u32 = 64;
/// Per-CPU scratch holding one exe key while it is looked up.
pub const RULE_KEY_SCRATCH: &str = "RULE_KEY_SCRATCH";
/// `TrackedProcess::agent` of a process the kernel started tracking at
/// exec because a rule key matched, until userspace has checked the whole
/// rule and given it an agent of its own (or dropped it).
pub const AGENT_PENDING: u32 = 1 << 31;

/// `BPF_F_MMAPABLE`, the flag of [`TRACKED_BITS`].
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Default ring-buffer size. 8 MiB holds about 45,000 file-open records:
/// at 650,000 events/s the reader may pause 70 ms (a journal sync, a
/// rotation) before one is lost. It is all resident from the start, an
/// eighth of the monitor's memory; `--ring-mib` trades one for the other.
pub const EVENTS_BYTES: u32 = 8 << 20;
/// Unread bytes in the ring at which a new record wakes the reader. Below
/// it, records do not wake the reader, which drains the ring on a timer.
pub const WAKEUP_BYTES: u64 = 256 << 10;
/// Least time between two wakeups one CPU forces. A reader that is awake,
/// draining or waiting on the stages after it, gains nothing from another
/// one, while each costs the traced process an interrupt (in a VM, an exit
/// to the hypervisor to write the APIC).
pub const WAKEUP_GAP_NS: u64 = 1_000_000;
/// Most processes tracked at once. When the map is full, a new child is not
/// tracked and [`Counter::TrackFull`] is incremented so userspace reports it.
pub const TRACKED_MAX: u32 = 65536;

/// Value of the tracked-process map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct TrackedProcess {
    /// The agent this process belongs to (non-zero).
    pub agent: u32,
    /// The parent's thread-group id, cached with `parent_task` below.
    pub ppid: u32,
    /// The open tool call the process works for, 0 when none. Set by
    /// userspace, inherited at fork.
    pub tool_call: u64,
    /// The process's start (`CLOCK_BOOTTIME` ns), cached so that events do
    /// not read it from the task each time; 0 until first known.
    pub start_ns: u64,
    /// The parent's `task_struct` address when `ppid` was read, 0 until
    /// then. Kept by the probes only: an event reads its task's parent
    /// pointer and reads the parent's pid again only when the pointer
    /// differs (the parent exited and the process was reparented). Every
    /// thread of a group has the same parent, so one cache serves them all.
    pub parent_task: u64,
}
assert_layout!(TrackedProcess, 32);

/// Indices of the per-CPU counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Counter {
    /// Events lost because the ring buffer was full.
    RingbufFull = 0,
    /// Child processes left untracked because [`TRACKED`] was full.
    TrackFull = 1,
}

impl Counter {
    pub const ALL: [Counter; 2] = [Counter::RingbufFull, Counter::TrackFull];
    pub const COUNT: u32 = Counter::ALL.len() as u32;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), only integer fields, explicit padding, no invalid bit
    // patterns.
    unsafe impl aya::Pod for super::TrackedProcess {}
    unsafe impl aya::Pod for crate::layout::KernelLayout {}
}
