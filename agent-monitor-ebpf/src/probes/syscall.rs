//! Syscall exit: the shared front of the file, network and privilege
//! probes.
//!
//! Everything happens at exit, on one raw tracepoint: on x86_64 the saved
//! argument registers still hold the arguments when a syscall returns (no
//! hooked syscall rewrites them), so no entry probe and no per-thread map
//! are needed. For every syscall of an untracked process this costs one
//! bit test in an inlined array lookup (`maps::maybe_tracked`). A tracked
//! one is handed, through per-CPU memory (a tail call stays on its CPU), to
//! its family's program.

use agent_monitor_common::{
    maps::TrackedProcess,
    syscall::{Family, HOOKED, MAX_NR},
};
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext,
};

use crate::{
    maps::{maybe_tracked, scratch, tail_call_exit, tracked},
    regs::syscall_frame,
};

/// A finished hooked syscall of a tracked thread.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Syscall {
    pub nr: u32,
    pub _pad: u32,
    /// `bpf_get_current_pid_tgid()`, asked once for the whole event.
    pub pid_tgid: u64,
    pub ret: i64,
    pub args: [u64; 6],
    pub process: TrackedProcess,
}

#[inline(always)]
fn hooked(nr: u64) -> bool {
    nr < u64::from(MAX_NR) && HOOKED[(nr / 64) as usize] & (1 << (nr % 64)) != 0
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn sys_exit(ctx: RawTracePointContext) -> i32 {
    match try_exit(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_exit(ctx: &RawTracePointContext) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if !maybe_tracked(tgid) {
        return Ok(());
    }
    let frame = syscall_frame(ctx.arg::<*const u8>(0))?;
    let nr = frame.nr;
    if !hooked(nr) {
        return Ok(());
    }
    let Some(family) = Family::of(nr as u32) else {
        return Ok(());
    };
    let Some(process) = tracked(tgid) else {
        return Ok(());
    };
    // Read by the program tail-called below, which runs on this CPU before
    // anything else can.
    scratch().ok_or(-1i64)?.call = Syscall {
        nr: nr as u32,
        _pad: 0,
        pid_tgid,
        ret: ctx.arg::<i64>(1),
        args: frame.args,
        process,
    };
    // SAFETY: the context is the one this program was called with. On
    // success the call does not return. It fails only when the family's
    // program is not loaded, which userspace reports at start.
    unsafe {
        match family {
            Family::File => tail_call_exit::<{ Family::File as u32 }>(ctx),
            Family::Net => tail_call_exit::<{ Family::Net as u32 }>(ctx),
            Family::Privilege => tail_call_exit::<{ Family::Privilege as u32 }>(ctx),
        }
    };
    Ok(())
}
