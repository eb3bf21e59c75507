//! Building a syscall record in per-CPU scratch space: the fixed head, then
//! tagged fields, then one variable-length send.
//!
//! Every write goes through [`Record::field`], which refuses a field that
//! might not fit and masks the offset so the verifier sees the bound.

use agent_monitor_common::{
    EventKind,
    syscall::{
        FIELD_CAP, FIELD_TRUNCATED, FIELD_UNREADABLE, FieldHead, SYSCALL_DATA_CAP,
        SYSCALL_FIELDS_DROPPED, SyscallHead, tag,
    },
};
use aya_ebpf::helpers::generated::{
    bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_probe_read_user_str,
};

use crate::{
    emit::{header, send_bytes, wakeup},
    maps::{SyscallScratch, scratch},
    probes::syscall::Syscall,
    task::{offset, read},
    vfs::PathRef,
};

const HEAD: usize = core::mem::size_of::<FieldHead>();
/// Longest path component, with its NUL.
const NAME_CAP: usize = 256;
/// Most components walked from a dentry up to the root.
const MAX_DEPTH: usize = 48;

pub struct Record {
    scratch: &'static mut SyscallScratch,
    /// Bytes of `data` used.
    len: usize,
}

impl Record {
    /// The syscall `sys_exit` handed over on this CPU, as a record yet to
    /// be started.
    #[inline(always)]
    pub fn handed_over() -> Option<Record> {
        Some(Record {
            scratch: scratch()?,
            len: 0,
        })
    }

    /// The finished syscall this record is about.
    #[inline(always)]
    pub fn call(&self) -> &Syscall {
        &self.scratch.call
    }

    /// Fills the head: from here on the syscall will be reported.
    #[inline(always)]
    pub fn begin(&mut self) {
        let state = &mut *self.scratch;
        state.head.header = header(
            EventKind::Syscall,
            &state.call.process,
            &mut state.seq,
            state.call.pid_tgid,
        );
        state.head.nr = state.call.nr;
        state.head.flags = 0;
        state.head.data_len = 0;
        state.head.ret = state.call.ret;
        state.head.args = state.call.args;
    }

    /// Where a field of at most `cap` bytes would start its content, or
    /// `None` (and the record flagged) when it might not fit.
    #[inline(always)]
    fn field(&mut self, cap: usize) -> Option<usize> {
        if self.len + HEAD + cap > SYSCALL_DATA_CAP {
            self.scratch.head.flags |= SYSCALL_FIELDS_DROPPED;
            return None;
        }
        Some(self.len & (SYSCALL_DATA_CAP - 1))
    }

    #[inline(always)]
    fn close(&mut self, at: usize, tag: u8, flags: u8, len: usize) {
        let head = FieldHead {
            tag,
            flags,
            len: len as u16,
        };
        // SAFETY: `at + HEAD` is within `data` (checked in `field`).
        unsafe {
            core::ptr::write_unaligned(
                self.scratch.data.as_mut_ptr().add(at).cast::<FieldHead>(),
                head,
            )
        };
        self.len = at + HEAD + len;
    }

    #[inline(always)]
    fn dst(&mut self, at: usize) -> *mut core::ffi::c_void {
        // SAFETY: `at` was bounded by `field`; the write that follows is at
        // most FIELD_CAP bytes, for which the scratch has slack.
        unsafe { self.scratch.data.as_mut_ptr().add(at + HEAD).cast() }
    }

    /// A NUL-terminated user string, stored without its NUL.
    #[inline(always)]
    pub fn user_str(&mut self, tag: u8, ptr: u64) {
        let Some(at) = self.field(FIELD_CAP) else {
            return;
        };
        let dst = self.dst(at);
        // SAFETY: the destination has FIELD_CAP bytes; the helper checks the
        // source and always NUL-terminates.
        let n = unsafe { bpf_probe_read_user_str(dst, FIELD_CAP as u32, ptr as *const _) };
        match n {
            n if n <= 0 => self.close(at, tag, FIELD_UNREADABLE, 0),
            n => {
                let n = n as usize;
                let flags = if n >= FIELD_CAP { FIELD_TRUNCATED } else { 0 };
                self.close(at, tag, flags, (n - 1) & (FIELD_CAP - 1));
            }
        }
    }

    /// Up to `cap` bytes of user memory (`cap` at most FIELD_CAP).
    #[inline(always)]
    pub fn user_bytes(&mut self, tag: u8, ptr: u64, len: u64, cap: usize) {
        let Some(at) = self.field(cap) else { return };
        let (n, flags) = if len > cap as u64 {
            (cap, FIELD_TRUNCATED)
        } else {
            (len as usize, 0)
        };
        let n = n & (FIELD_CAP - 1);
        let dst = self.dst(at);
        // SAFETY: `n` < FIELD_CAP bytes fit at `dst`; the helper checks the
        // source.
        let ret = unsafe { bpf_probe_read_user(dst, n as u32, ptr as *const _) };
        if ret < 0 {
            self.close(at, tag, FIELD_UNREADABLE, 0);
        } else {
            self.close(at, tag, flags, n);
        }
    }

    /// A plain value read in the kernel.
    #[inline(always)]
    pub fn value<T: Copy>(&mut self, tag: u8, value: &T) {
        let size = core::mem::size_of::<T>();
        let Some(at) = self.field(size) else { return };
        let dst = self.dst(at);
        // SAFETY: `size` bytes fit at `dst`; the source is a live value.
        let ret = unsafe { bpf_probe_read_kernel(dst, size as u32, (value as *const T).cast()) };
        let flags = if ret < 0 { FIELD_UNREADABLE } else { 0 };
        self.close(at, tag, flags, if ret < 0 { 0 } else { size });
    }

    /// A path argument: the string, and when it is relative, the directory
    /// it is relative to.
    #[inline(always)]
    pub fn path(
        &mut self,
        tags: (u8, u8),
        ptr: u64,
        base: impl FnOnce() -> Result<(PathRef, PathRef), i64>,
    ) {
        let (path_tag, base_tag) = tags;
        let at = self.len;
        self.user_str(path_tag, ptr);
        // Nothing read (unreadable, empty, or no room): no base to add. The
        // first byte must not be read then: it is left over from an
        // earlier record.
        if self.len <= at + HEAD {
            return;
        }
        let first = if at + HEAD < SYSCALL_DATA_CAP {
            // SAFETY: in bounds, just written.
            unsafe {
                *self
                    .scratch
                    .data
                    .as_ptr()
                    .add((at + HEAD) & (SYSCALL_DATA_CAP - 1))
            }
        } else {
            b'/'
        };
        if first != b'/'
            && let Ok((root, dir)) = base()
        {
            self.walk(base_tag, &(root, dir));
        }
    }

    /// The components of `path` from leaf to `root` (or the filesystem
    /// root), each NUL-terminated. Userspace reverses and joins them.
    ///
    /// Not inlined, so the verifier checks the loop once, as a subprogram;
    /// the two paths go by reference because BPF calls take five arguments.
    #[inline(never)]
    pub fn walk(&mut self, tag: u8, ends: &(PathRef, PathRef)) {
        let (root, path) = *ends;
        let Some(at) = self.field(FIELD_CAP) else {
            return;
        };
        self.scratch.walk_used = 0;
        let mut flags = FIELD_TRUNCATED;
        let mut mnt = path.mnt;
        let mut dentry = path.dentry;
        for _ in 0..MAX_DEPTH {
            if mnt == root.mnt && dentry == root.dentry {
                flags = 0;
                break;
            }
            let Ok(mnt_root) = read::<*const u8>(mnt, offset!(vfsmount_root)) else {
                flags = FIELD_UNREADABLE;
                break;
            };
            if dentry == mnt_root {
                // At the top of a mount: continue from where it is mounted.
                let mount = mnt.wrapping_sub(offset!(mount_mnt));
                let Ok(parent) = read::<*const u8>(mount, offset!(mount_parent)) else {
                    flags = FIELD_UNREADABLE;
                    break;
                };
                if parent == mount {
                    flags = 0;
                    break;
                }
                let Ok(mountpoint) = read::<*const u8>(mount, offset!(mount_mountpoint)) else {
                    flags = FIELD_UNREADABLE;
                    break;
                };
                dentry = mountpoint;
                mnt = parent.wrapping_add(offset!(mount_mnt));
                continue;
            }
            let Ok(parent) = read::<*const u8>(dentry, offset!(dentry_parent)) else {
                flags = FIELD_UNREADABLE;
                break;
            };
            if parent == dentry {
                flags = 0;
                break;
            }
            let Ok(name) = read::<*const u8>(dentry, offset!(dentry_name)) else {
                flags = FIELD_UNREADABLE;
                break;
            };
            // SAFETY: a plain load of this CPU's scratch.
            let used = unsafe { core::ptr::read_volatile(&self.scratch.walk_used) } as usize
                & (FIELD_CAP - 1);
            if used + NAME_CAP > FIELD_CAP {
                break;
            }
            // SAFETY: `at + HEAD + used + NAME_CAP` is within the field,
            // whose room `field` checked.
            let n = unsafe {
                bpf_probe_read_kernel_str(
                    self.dst(at).cast::<u8>().add(used).cast(),
                    NAME_CAP as u32,
                    name.cast(),
                )
            };
            if n <= 0 {
                flags = FIELD_UNREADABLE;
                break;
            }
            // SAFETY: a plain store to this CPU's scratch.
            unsafe {
                core::ptr::write_volatile(&mut self.scratch.walk_used, (used + n as usize) as u64)
            };
            dentry = parent;
        }
        // SAFETY: a plain load of this CPU's scratch.
        let used = unsafe { core::ptr::read_volatile(&self.scratch.walk_used) } as usize;
        self.close(at, tag, flags, used & (2 * FIELD_CAP - 1));
    }

    /// The path of the file behind an fd argument.
    #[inline(always)]
    pub fn fd_path(&mut self, fd: u64) {
        if let (Ok(file), Ok((root, _))) = (crate::vfs::fd_file(fd), crate::vfs::root_and_cwd())
            && let Ok(path) = crate::vfs::file_path(file)
        {
            self.walk(tag::FD_PATH, &(root, path));
        }
    }

    /// Sends the record: the head and the fields after it.
    #[inline(always)]
    pub fn send(self) {
        self.scratch.head.data_len = self.len as u16;
        let len = core::mem::size_of::<SyscallHead>() + (self.len & (2 * SYSCALL_DATA_CAP - 1));
        let room = core::mem::size_of::<SyscallHead>() + self.scratch.data.len();
        if len <= room {
            let state = &mut *self.scratch;
            let flags = wakeup(&state.head.header, &mut state.woken_ns);
            // SAFETY: `head` and `data` are adjacent in the repr(C) scratch
            // (asserted in maps.rs), and `len` bytes of them are initialised.
            let bytes = unsafe {
                core::slice::from_raw_parts(
                    (&self.scratch.head as *const SyscallHead).cast::<u8>(),
                    len,
                )
            };
            send_bytes(bytes, flags);
        }
    }
}
