//! The maps, named and sized by `agent_monitor_common::maps`.

use agent_monitor_common::{
    maps::{Counter, EVENTS_BYTES, TRACKED_MAX, TrackedProcess},
    process::ExecEvent,
    syscall::{Family, SYSCALL_SCRATCH, SyscallHead},
};

use crate::probes::syscall::Syscall;
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, ProgramArray, RingBuf},
};

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map]
pub static TRACKED: HashMap<u32, TrackedProcess> = HashMap::with_max_entries(TRACKED_MAX, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

#[map]
pub static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// The per-family exit programs, indexed by [`Family`].
#[map]
pub static EXIT_PROGRAMS: ProgramArray = ProgramArray::with_max_entries(Family::COUNT, 0);

/// Per-CPU state: the syscall `sys_exit` hands to its family's program,
/// this CPU's event sequence counter, and space for building a record. One
/// map value, so each program finds all of it with one lookup.
#[repr(C, align(8))]
pub struct SyscallScratch {
    pub call: Syscall,
    /// The next sequence number of this CPU.
    pub seq: u64,
    pub head: SyscallHead,
    pub data: [u8; SYSCALL_SCRATCH - core::mem::size_of::<SyscallHead>()],
    /// Bytes a path walk has written so far. Kept in map memory, not in a
    /// register, on purpose: the verifier does not track values loaded from
    /// a map, so the walk's states stay equal from one iteration to the
    /// next and it verifies in linear rather than exponential time.
    pub walk_used: u64,
}

// `Record::send` sends `head` and `data` as one slice.
const _: () = assert!(
    core::mem::offset_of!(SyscallScratch, data)
        == core::mem::offset_of!(SyscallScratch, head) + core::mem::size_of::<SyscallHead>()
);

#[map]
pub static SYSCALL_SCRATCH_MAP: PerCpuArray<SyscallScratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch and state.
#[inline(always)]
pub fn scratch() -> Option<&'static mut SyscallScratch> {
    let scratch = SYSCALL_SCRATCH_MAP.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; tracepoint programs do not nest on one CPU,
    // so nothing else uses it while the calling program runs.
    Some(unsafe { &mut *scratch })
}

/// Adds one to a per-CPU counter. Per-CPU, so no atomics are needed.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer comes from a successful lookup of this CPU's
        // slot, which nothing else writes while this program runs.
        unsafe { *value += 1 };
    }
}

/// The tracked-process entry of a thread group, if it is tracked. Fills in
/// the cached start time the first time it is missing.
#[inline(always)]
pub fn tracked(tgid: u32) -> Option<TrackedProcess> {
    let entry = TRACKED.get_ptr_mut(tgid)?;
    // SAFETY: a live map value; concurrent writers can only store the same
    // start time.
    let entry = unsafe { &mut *entry };
    if entry.start_ns == 0 {
        entry.start_ns = crate::task::Task::current()
            .group_leader()
            .and_then(crate::task::Task::start_boottime)
            .unwrap_or_default();
    }
    Some(*entry)
}
