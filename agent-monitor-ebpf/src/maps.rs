//! The maps, named and sized by `agent_monitor_common::maps`.

use agent_monitor_common::{
    maps::{
        BPF_F_MMAPABLE, Counter, EVENTS_BYTES, RULE_EXE_LEN, RULE_KEYS_MAX, TRACKED_MAX,
        TRACKED_WORDS, TrackedProcess,
    },
    process::ExecEvent,
    syscall::{Family, SYSCALL_SCRATCH, SyscallHead},
};

use crate::{probes::syscall::Syscall, task::Task};
use aya_ebpf::{
    EbpfContext,
    macros::map,
    maps::{Array, HashMap, PerCpuArray, ProgramArray, RingBuf},
};

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

#[map]
pub static TRACKED: HashMap<u32, TrackedProcess> = HashMap::with_max_entries(TRACKED_MAX, 0);

#[map]
pub static TRACKED_BITS: Array<u64> = Array::with_max_entries(TRACKED_WORDS, BPF_F_MMAPABLE);

/// Discovery rule keys (see `agent_monitor_common::maps::RULES_EXE`).
#[map]
pub static RULES_EXE: HashMap<[u8; RULE_EXE_LEN], u32> =
    HashMap::with_max_entries(RULE_KEYS_MAX, 0);

#[map]
pub static RULES_COMM: HashMap<[u8; 16], u32> = HashMap::with_max_entries(RULE_KEYS_MAX, 0);

#[map]
pub static RULES_UID: HashMap<u32, u32> = HashMap::with_max_entries(RULE_KEYS_MAX, 0);

/// Room to build an exe key: too big for the stack.
#[map]
pub static RULE_KEY_SCRATCH: PerCpuArray<[u8; RULE_EXE_LEN]> = PerCpuArray::with_max_entries(1, 0);

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
    /// When this CPU last forced the reader awake (`emit::wakeup`).
    pub woken_ns: u64,
}

// `Record::send` sends `head` and `data` as one slice.
const _: () = assert!(
    core::mem::offset_of!(SyscallScratch, data)
        == core::mem::offset_of!(SyscallScratch, head) + core::mem::size_of::<SyscallHead>()
);

#[map]
pub static SYSCALL_SCRATCH_MAP: PerCpuArray<SyscallScratch> = PerCpuArray::with_max_entries(1, 0);

/// Whether `tgid` may be tracked: false means certainly not. Costs an
/// inlined array access, no helper call, which is what every syscall of
/// every untracked process on the host pays.
#[inline(always)]
pub fn maybe_tracked(tgid: u32) -> bool {
    match TRACKED_BITS.get(tgid / 64) {
        Some(word) => *word & (1 << (tgid % 64)) != 0,
        // Beyond the bitmap (cannot happen for a real pid): ask the map.
        None => true,
    }
}

/// Sets or clears the pre-filter bit of `tgid`.
///
/// Other bits of the word change concurrently (forks and exits on other
/// CPUs), so the change is an atomic add. The ISA this builds for has no
/// atomic OR, and an add is only right when the bit's state is known:
/// this pid's own bit changes only at its fork and its exit, which cannot
/// overlap, so reading it first is enough.
#[inline(always)]
pub fn mark_tracked(tgid: u32, tracked: bool) {
    let Some(word) = TRACKED_BITS.get_ptr_mut(tgid / 64) else {
        return;
    };
    let bit = 1u64 << (tgid % 64);
    // SAFETY: a live, aligned map value; all writers use atomic adds.
    unsafe {
        let set = core::ptr::read_volatile(word) & bit != 0;
        if set != tracked {
            atomic_add(word, if tracked { bit } else { bit.wrapping_neg() });
        }
    }
}

/// An atomic add whose result is not used: BPF's `XADD`, which ISA v1 has.
#[cfg(target_arch = "bpf")]
#[inline(always)]
unsafe fn atomic_add(word: *mut u64, delta: u64) {
    // SAFETY: the caller passes a live, aligned u64.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            word, delta,
        )
    };
}

/// The same on the host, where this crate is only type-checked.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
unsafe fn atomic_add(word: *mut u64, delta: u64) {
    // SAFETY: the caller passes a live, aligned u64.
    unsafe { core::sync::atomic::AtomicU64::from_ptr(word) }
        .fetch_add(delta, core::sync::atomic::Ordering::Relaxed);
}

/// Tail-calls the exit program of family `FAMILY` (see [`EXIT_PROGRAMS`]).
///
/// The index is a constant in the instruction, which lets the verifier
/// patch a direct jump in place of the call; an index in a register costs
/// an indirect jump, a retpoline on this kernel. Written in assembly
/// because LLVM merges calls that differ only in a constant argument into
/// one call with the index in a register.
///
/// # Safety
///
/// `ctx` is the context the running program was called with. On success
/// the call does not return.
#[cfg(target_arch = "bpf")]
#[inline(always)]
pub unsafe fn tail_call_exit<const FAMILY: u32>(ctx: &impl EbpfContext) {
    // SAFETY: `bpf_tail_call(ctx, prog_array_map, index)` (helper 12) with
    // the caller's context and this program array; the helper clobbers the
    // argument registers and r0, as every BPF call does.
    unsafe {
        core::arch::asm!(
            "r3 = {index}",
            "call 12",
            index = const FAMILY,
            inlateout("r1") ctx.as_ptr() => _,
            inlateout("r2") core::ptr::addr_of!(EXIT_PROGRAMS) => _,
            out("r0") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
        )
    };
}

/// The same on the host, where this crate is only type-checked.
#[cfg(not(target_arch = "bpf"))]
#[inline(always)]
pub unsafe fn tail_call_exit<const FAMILY: u32>(ctx: &impl EbpfContext) {
    // SAFETY: as the caller promised.
    unsafe { EXIT_PROGRAMS.tail_call(ctx, FAMILY) };
}

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

/// The tracked-process entry of the current thread group (`tgid`), if it
/// is tracked, with its cached start time and parent brought up to date.
#[inline(always)]
pub fn tracked(tgid: u32) -> Option<TrackedProcess> {
    let entry = TRACKED.get_ptr_mut(tgid)?;
    // SAFETY: a live map value; concurrent writers can only store the same
    // start time.
    let entry = unsafe { &mut *entry };
    let task = Task::current();
    if entry.start_ns == 0 {
        entry.start_ns = task
            .group_leader()
            .and_then(Task::start_boottime)
            .unwrap_or_default();
    }
    let ppid = parent_pid(entry, task);
    Some(TrackedProcess { ppid, ..*entry })
}

/// The parent's pid, from `entry`'s cache, which it brings up to date:
/// one read of the parent pointer, and a second one for its pid only when
/// the pointer changed. 0 when the task cannot be read.
///
/// Threads of the group race here only when the parent changed, and then
/// all store the same pair. The pid is stored before the pointer, and read
/// after it, so a reader that sees the new pointer sees its pid (x86 keeps
/// stores, and loads, in program order; the volatile accesses keep the
/// compiler from reordering them).
#[inline(always)]
fn parent_pid(entry: &mut TrackedProcess, task: Task) -> u32 {
    let Ok(parent) = task.real_parent() else {
        return 0;
    };
    let address = parent.as_ptr() as u64;
    // SAFETY: plain loads and stores of a live map value.
    unsafe {
        if core::ptr::read_volatile(&entry.parent_task) == address {
            return core::ptr::read_volatile(&entry.ppid);
        }
        let Ok(ppid) = parent.tgid() else {
            return 0;
        };
        core::ptr::write_volatile(&mut entry.ppid, ppid);
        core::ptr::write_volatile(&mut entry.parent_task, address);
        ppid
    }
}
