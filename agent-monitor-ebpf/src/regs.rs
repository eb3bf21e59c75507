//! Syscall arguments from the user registers the `sys_enter` raw tracepoint
//! hands over. x86_64 only for now: the syscall numbers in
//! `agent_monitor_common::syscall::nr` are x86_64's too.

use crate::task::read;

/// The tail of x86_64's `struct pt_regs` that holds the syscall number and
/// arguments, from `r10` to `orig_ax`. This is kernel ABI (ptrace exposes
/// it), not a layout that changes between builds.
#[repr(C)]
#[derive(Clone, Copy)]
struct SyscallRegs {
    r10: u64,
    r9: u64,
    r8: u64,
    ax: u64,
    cx: u64,
    dx: u64,
    si: u64,
    di: u64,
    orig_ax: u64,
}

/// Offset of `r10` in `struct pt_regs` (after r15, r14, r13, r12, bp, bx,
/// r11).
const R10: usize = 7 * 8;

/// A syscall as its saved registers describe it: number and arguments.
pub struct SyscallFrame {
    pub nr: u64,
    pub args: [u64; 6],
}

/// The syscall number and its six arguments (rdi, rsi, rdx, r10, r8, r9),
/// in one read of the saved registers.
#[inline(always)]
pub fn syscall_frame(regs: *const u8) -> Result<SyscallFrame, i64> {
    let regs: SyscallRegs = read(regs, R10)?;
    Ok(SyscallFrame {
        nr: regs.orig_ax,
        args: [regs.di, regs.si, regs.dx, regs.r10, regs.r8, regs.r9],
    })
}
