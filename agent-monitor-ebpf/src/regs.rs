//! Syscall arguments from the user registers the `sys_enter` raw tracepoint
//! hands over. x86_64 only for now: the syscall numbers in
//! `agent_monitor_common::syscall::nr` are x86_64's too.

use crate::task::read;

/// `struct pt_regs` on x86_64, as far as the syscall ABI needs it. This is
/// kernel ABI (ptrace exposes it), not a layout that changes between builds.
#[repr(C)]
#[derive(Clone, Copy)]
struct PtRegs {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    bp: u64,
    bx: u64,
    r11: u64,
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

/// The six syscall arguments: rdi, rsi, rdx, r10, r8, r9.
#[inline(always)]
pub fn syscall_args(regs: *const u8) -> Result<[u64; 6], i64> {
    let regs: PtRegs = read(regs, 0)?;
    Ok([regs.di, regs.si, regs.dx, regs.r10, regs.r8, regs.r9])
}

/// The syscall number at exit, which the kernel keeps in `orig_ax`.
#[inline(always)]
pub fn syscall_nr(regs: *const u8) -> Result<u64, i64> {
    read(regs, core::mem::offset_of!(PtRegs, orig_ax))
}
