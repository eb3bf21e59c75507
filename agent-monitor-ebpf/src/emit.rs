//! Building and sending records: the header every event starts with, the
//! sequence number, and the drop counter that records every failed send.

use agent_monitor_common::{
    EventHeader, EventKind,
    maps::{Counter, TrackedProcess, WAKEUP_BYTES, WAKEUP_GAP_NS},
};
use aya_ebpf::helpers::{
    bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, generated,
};

use crate::{
    maps::{EVENTS, count},
    task::{Identity, Task},
};

/// The header for an event of the current task, which belongs to `tracked`.
///
/// `seq` is this CPU's sequence counter (in its scratch state). The number
/// is taken before the ring-buffer reserve, so a record that cannot be sent
/// leaves a hole in its CPU's sequence that locates it. Per-CPU rather than
/// global: the BPF target has no fetching atomic add at ISA v1, and a shared
/// counter would bounce one cache line between CPUs on every event.
///
/// `tracked` comes from `maps::tracked`, which brought its cached parent pid
/// up to date.
///
/// `pid_tgid` is the current task's, which the syscall probe already asked
/// for: every helper call costs tens of nanoseconds here (the return thunk
/// of the CPU's speculation mitigations), so none is made twice.
#[inline(always)]
pub fn header(
    kind: EventKind,
    tracked: &TrackedProcess,
    seq: &mut u64,
    pid_tgid: u64,
) -> EventHeader {
    let cpu_seq = *seq;
    *seq = cpu_seq + 1;
    let who = identity();
    EventHeader {
        kind: kind as u32,
        // SAFETY: these helpers have no preconditions.
        cpu: unsafe { bpf_get_smp_processor_id() },
        cpu_seq,
        ts_ns: unsafe { bpf_ktime_get_boot_ns() },
        start_ns: tracked.start_ns,
        tool_call: tracked.tool_call,
        pid: (pid_tgid >> 32) as u32,
        tid: pid_tgid as u32,
        ppid: tracked.ppid,
        uid: who.uid,
        gid: who.gid,
        agent: tracked.agent,
        comm: who.comm,
    }
}

/// The current task's [`Identity`]: read from the task, or from the
/// helpers when this kernel's layout does not allow that.
#[inline(always)]
fn identity() -> Identity {
    Task::current().identity().unwrap_or_else(|| {
        let uid_gid = bpf_get_current_uid_gid();
        Identity {
            uid: uid_gid as u32,
            gid: (uid_gid >> 32) as u32,
            comm: current_comm(),
        }
    })
}

/// `BPF_RB_AVAIL_DATA` for `bpf_ringbuf_query`.
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_NO_WAKEUP: u64 = 1;
pub const BPF_RB_FORCE_WAKEUP: u64 = 2;
/// A power of two, so the test is a mask.
const WAKEUP_CHECK_EVERY: u64 = 32;

/// The ring-buffer flags for the record `header` heads: whether it should
/// wake the reader. Waking it on every record costs the traced process an
/// interrupt per event; instead the reader is woken once [`WAKEUP_BYTES`]
/// wait, and otherwise drains the ring on its own short timer
/// (`kernel::ring::DRAIN_INTERVAL`).
///
/// Only one record in [`WAKEUP_CHECK_EVERY`] of a CPU asks how much waits:
/// the query reads the consumer's position, a cache line the reader keeps
/// writing. And a CPU forces a wakeup at most once per [`WAKEUP_GAP_NS`]
/// (`woken_ns`, its last): until the reader has drained, the ring stays
/// above the threshold, and every check would raise another interrupt for
/// a reader already awake. A record the ring then refuses, being full,
/// still counts as one: a reader that far behind is awake.
#[inline(always)]
pub fn wakeup(header: &EventHeader, woken_ns: &mut u64) -> u64 {
    if !header.cpu_seq.is_multiple_of(WAKEUP_CHECK_EVERY)
        || header.ts_ns.wrapping_sub(*woken_ns) < WAKEUP_GAP_NS
        || EVENTS.query(BPF_RB_AVAIL_DATA) < WAKEUP_BYTES
    {
        return BPF_RB_NO_WAKEUP;
    }
    *woken_ns = header.ts_ns;
    BPF_RB_FORCE_WAKEUP
}

/// The current task's name. The helper fills all 16 bytes (NUL-padded),
/// so the buffer needs no zeroing first, which the library wrapper does
/// with a call to `memset`.
#[inline(always)]
fn current_comm() -> [u8; 16] {
    let mut comm = core::mem::MaybeUninit::<[u8; 16]>::uninit();
    // SAFETY: the helper writes the whole buffer on success; on failure it
    // zeroes it (bpf_get_current_comm's documented behaviour).
    unsafe {
        generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), 16);
        comm.assume_init()
    }
}

/// Sends a fixed-size record with the [`wakeup`] flags `flags`, counting
/// it as lost when the ring is full.
#[inline(always)]
pub fn send<T: 'static>(record: T, flags: u64) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(record);
            entry.submit(flags);
        }
        None => count(Counter::RingbufFull),
    }
}

/// Sends a record built in scratch space, with the [`wakeup`] flags
/// `flags`.
#[inline(always)]
pub fn send_bytes(bytes: &[u8], flags: u64) {
    if EVENTS.output::<[u8]>(bytes, flags).is_err() {
        count(Counter::RingbufFull);
    }
}
