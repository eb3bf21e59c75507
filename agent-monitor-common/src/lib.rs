//! The one definition of every event and map layout shared by the kernel
//! programs (`agent-monitor-ebpf`) and the userspace daemon (`agent-monitor`).
//!
//! Everything here is `#[repr(C)]` with explicit padding, and every size is
//! asserted at compile time, so the two sides cannot drift apart.
#![no_std]

pub mod event;
pub mod layout;
pub mod maps;
pub mod process;
pub mod syscall;

pub use event::{EventHeader, EventKind, UnknownEventKind};

/// Asserts at compile time that a shared type has exactly the given size and
/// an alignment that the ring buffer (8-byte records) can honour.
#[macro_export]
macro_rules! assert_layout {
    ($ty:ty, $size:expr) => {
        const _: () = assert!(::core::mem::size_of::<$ty>() == $size);
        const _: () = assert!(8 % ::core::mem::align_of::<$ty>() == 0);
    };
}

/// Program names: the function names in `agent-monitor-ebpf/src/probes`.
pub mod programs {
    pub const SCHED_PROCESS_FORK: &str = "sched_process_fork";
    pub const SCHED_PROCESS_EXEC: &str = "sched_process_exec";
    pub const SCHED_PROCESS_EXIT: &str = "sched_process_exit";
    pub const SYS_EXIT: &str = "sys_exit";
    pub const FILE_EXIT: &str = "file_exit";
    pub const NET_EXIT: &str = "net_exit";
    pub const PRIVILEGE_EXIT: &str = "privilege_exit";
}
