//! Kernel structure offsets, resolved by userspace from the running kernel's
//! BTF and handed to the programs as a global before load.
//!
//! aya's Rust programs have no CO-RE relocations, so this is how the probes
//! read `task_struct` and friends without hard-coding one kernel's layout.

use crate::assert_layout;

/// Byte offsets of the fields the probes read. Every field is a byte offset
/// within the struct named by its prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KernelLayout {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_real_parent: u32,
    pub task_group_leader: u32,
    pub task_start_boottime: u32,
    pub task_exit_code: u32,
    pub task_mm: u32,
    pub task_signal: u32,
    /// `signal_struct.live.counter`: 0 once every thread has started exiting.
    pub signal_live: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub binprm_filename: u32,
}
assert_layout!(KernelLayout, 48);

impl KernelLayout {
    /// An all-zero layout, the value the global holds until userspace sets it.
    pub const ZERO: KernelLayout = KernelLayout {
        task_pid: 0,
        task_tgid: 0,
        task_real_parent: 0,
        task_group_leader: 0,
        task_start_boottime: 0,
        task_exit_code: 0,
        task_mm: 0,
        task_signal: 0,
        signal_live: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
        binprm_filename: 0,
    };
}
