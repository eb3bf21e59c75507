//! Reads of kernel structures at the offsets userspace resolved from BTF.

use agent_monitor_common::layout::KernelLayout;
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

/// Set by userspace before load; read-only here.
#[unsafe(no_mangle)]
pub static KERNEL_LAYOUT: KernelLayout = KernelLayout::ZERO;

/// One offset from the layout global. A volatile read, so the compiler does
/// not fold the zero the object file holds.
macro_rules! offset {
    ($field:ident) => {
        // SAFETY: reading a plain integer from a static.
        unsafe { core::ptr::read_volatile(&raw const $crate::task::KERNEL_LAYOUT.$field) as usize }
    };
}
pub(crate) use offset;

/// An opaque kernel `struct task_struct *`.
#[derive(Clone, Copy)]
pub struct Task(*const u8);

impl Task {
    #[inline(always)]
    pub fn current() -> Task {
        // SAFETY: the helper has no preconditions.
        Task(unsafe { bpf_get_current_task() } as *const u8)
    }

    #[inline(always)]
    pub fn from_ptr(ptr: *const u8) -> Task {
        Task(ptr)
    }

    #[inline(always)]
    pub fn as_ptr(self) -> *const u8 {
        self.0
    }

    #[inline(always)]
    pub fn tgid(self) -> Result<u32, i64> {
        read(self.0, offset!(task_tgid))
    }

    #[inline(always)]
    pub fn pid(self) -> Result<u32, i64> {
        read(self.0, offset!(task_pid))
    }

    #[inline(always)]
    pub fn real_parent(self) -> Result<Task, i64> {
        read::<*const u8>(self.0, offset!(task_real_parent)).map(Task)
    }

    #[inline(always)]
    pub fn group_leader(self) -> Result<Task, i64> {
        read::<*const u8>(self.0, offset!(task_group_leader)).map(Task)
    }

    #[inline(always)]
    pub fn start_boottime(self) -> Result<u64, i64> {
        read(self.0, offset!(task_start_boottime))
    }

    #[inline(always)]
    pub fn exit_code(self) -> Result<u32, i64> {
        read(self.0, offset!(task_exit_code))
    }

    /// Whether every thread of the group has started exiting.
    #[inline(always)]
    pub fn group_dead(self) -> Result<bool, i64> {
        let signal = read::<*const u8>(self.0, offset!(task_signal))?;
        read::<i32>(signal, offset!(signal_live)).map(|live| live == 0)
    }

    /// The uid and gid of the task's credentials and its name: what
    /// `bpf_get_current_uid_gid` (which maps through the initial user
    /// namespace, the identity) and `bpf_get_current_comm` return, in two
    /// reads where the helpers take two calls of several functions each.
    ///
    /// `comm` follows `cred` within a few words in every layout since 5.3
    /// (`cached_requested_key` between them with CONFIG_KEYS), so one read
    /// gets both. `None` when this kernel's layout differs (a randomized
    /// `task_struct`) or a read fails: the caller asks the helpers then.
    #[inline(always)]
    pub fn identity(self) -> Option<Identity> {
        let cred_at = offset!(task_cred);
        let uid_at = offset!(cred_uid);
        if offset!(cred_gid) != uid_at + 4 {
            return None;
        }
        let words: [u64; 5] = read(self.0, cred_at).ok()?;
        let comm = match offset!(task_comm).wrapping_sub(cred_at) {
            8 => [words[1], words[2]],
            16 => [words[2], words[3]],
            24 => [words[3], words[4]],
            _ => return None,
        };
        let ids: u64 = read(words[0] as *const u8, uid_at).ok()?;
        let mut name = [0u8; 16];
        name[..8].copy_from_slice(&comm[0].to_ne_bytes());
        name[8..].copy_from_slice(&comm[1].to_ne_bytes());
        Some(Identity {
            uid: ids as u32,
            gid: (ids >> 32) as u32,
            comm: name,
        })
    }

    /// `mm->arg_start` and `mm->arg_end`: where the argument block lives.
    #[inline(always)]
    pub fn arg_range(self) -> Result<(u64, u64), i64> {
        let mm = read::<*const u8>(self.0, offset!(task_mm))?;
        if mm.is_null() {
            return Err(-1);
        }
        Ok((
            read(mm, offset!(mm_arg_start))?,
            read(mm, offset!(mm_arg_end))?,
        ))
    }
}

/// Who a task is, as every event header records it.
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// NUL-padded, as the kernel keeps it.
    pub comm: [u8; 16],
}

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: *const u8, offset: usize) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel checks the address; a bad one is an
    // error, not a fault.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset) as *const T) }.map_err(i64::from)
}

/// Reads a `T` from the current task's user memory.
#[inline(always)]
pub fn read_user<T>(addr: u64) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_user checks the address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(addr as *const T) }.map_err(i64::from)
}
