//! Syscall entry and exit: the shared front of the file, network and
//! privilege probes.
//!
//! `sys_enter` records the arguments of a hooked syscall of a tracked thread;
//! `sys_exit` hands the finished syscall to its family's program by tail
//! call. For every other syscall on the host, each costs a register read
//! and a bitmap test; for a hooked syscall of an untracked process, one
//! hash lookup more.

use agent_monitor_common::{
    maps::Counter,
    syscall::{Family, HOOKED, Inflight, MAX_NR},
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{
    maps::{EXIT_PROGRAMS, INFLIGHT, count, tracked},
    regs::{syscall_args, syscall_nr},
};

#[inline(always)]
fn hooked(nr: u64) -> bool {
    nr < u64::from(MAX_NR) && HOOKED[(nr / 64) as usize] & (1 << (nr % 64)) != 0
}

/// `sys_enter(struct pt_regs *regs, long id)`.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn sys_enter(ctx: RawTracePointContext) -> i32 {
    match try_enter(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_enter(ctx: &RawTracePointContext) -> Result<(), i64> {
    let nr = ctx.arg::<u64>(1);
    if !hooked(nr) {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let Some(process) = tracked((pid_tgid >> 32) as u32) else {
        return Ok(());
    };
    let inflight = Inflight {
        nr: nr as u32,
        _pad: 0,
        args: syscall_args(ctx.arg::<*const u8>(0))?,
        process,
    };
    if INFLIGHT.insert(pid_tgid as u32, inflight, 0).is_err() {
        count(Counter::InflightFull);
    }
    Ok(())
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    match try_exit(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_exit(ctx: &RawTracePointContext) -> Result<(), i64> {
    let nr = syscall_nr(ctx.arg::<*const u8>(0))?;
    if !hooked(nr) {
        return Ok(());
    }
    let Some(family) = Family::of(nr as u32) else {
        return Ok(());
    };
    // Only threads whose entry was recorded go on: untracked ones stop here.
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: only the presence is checked; the value is not kept.
    if unsafe { INFLIGHT.get(tid) }.is_none() {
        return Ok(());
    }
    // SAFETY: the context is the one this program was called with. On
    // success the call does not return. It fails only when the family's
    // program is not loaded, which userspace reports at start.
    unsafe { EXIT_PROGRAMS.tail_call(ctx, family as u32) };
    INFLIGHT.remove(tid).ok();
    Ok(())
}

/// The finished syscall of the current thread, taken out of the map.
#[inline(always)]
pub fn take_inflight() -> Option<Inflight> {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let inflight = unsafe { INFLIGHT.get(tid) }.copied()?;
    INFLIGHT.remove(tid).ok();
    Some(inflight)
}
