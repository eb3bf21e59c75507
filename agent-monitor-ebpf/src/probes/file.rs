//! Files: the `file.*`, `fs.*`, `kernel.module_load` and `mem.memfd_create`
//! syscalls, captured at exit with their result. Paths are captured as the
//! process passed them; a relative one also gets the directory it is
//! relative to, walked in the kernel at the time of the call.

use agent_monitor_common::syscall::{nr, tag};
use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};

use crate::{
    capture::Record,
    probes::syscall::Syscall,
    task::offset,
    vfs::{AT_FDCWD, dirfd_path, fd_file, root_and_cwd},
};

/// Tail-called by `sys_exit` for [`agent_monitor_common::syscall::Family::File`].
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn file_exit(_ctx: RawTracePointContext) -> i32 {
    let Some(mut record) = Record::handed_over() else {
        return 0;
    };
    let call = *record.call();
    record.begin();
    capture(&mut record, &call);
    record.send();
    0
}

const CWD: u64 = AT_FDCWD as u64;

#[inline(always)]
fn capture(record: &mut Record, call: &Syscall) {
    let a = call.args;
    let ret = call.ret;
    let at = |dirfd: u64| {
        move || -> Result<_, i64> {
            let (root, cwd) = root_and_cwd()?;
            Ok((root, dirfd_path(dirfd, cwd)?))
        }
    };
    let first = (tag::PATH_0, tag::BASE_0);
    let second = (tag::PATH_1, tag::BASE_1);
    match call.nr {
        nr::OPEN => {
            record.path(first, a[0], at(CWD));
            opened_file_mode(record, ret, a[1]);
        }
        nr::CREAT => {
            record.path(first, a[0], at(CWD));
            opened_file_mode(record, ret, O_CREAT);
        }
        nr::OPENAT => {
            record.path(first, a[1], at(a[0]));
            opened_file_mode(record, ret, a[2]);
        }
        nr::OPENAT2 => {
            record.path(first, a[1], at(a[0]));
            // struct open_how { u64 flags; u64 mode; u64 resolve; }
            record.user_bytes(tag::USER_STRUCT, a[2], 24, 24);
            let flags = crate::task::read_user::<u64>(a[2]).unwrap_or(O_CREAT);
            opened_file_mode(record, ret, flags);
        }
        nr::UNLINK
        | nr::RMDIR
        | nr::MKDIR
        | nr::CHMOD
        | nr::CHOWN
        | nr::LCHOWN
        | nr::TRUNCATE
        | nr::UMOUNT2 => record.path(first, a[0], at(CWD)),
        nr::UNLINKAT | nr::MKDIRAT | nr::FCHMODAT | nr::FCHMODAT2 | nr::FCHOWNAT => {
            record.path(first, a[1], at(a[0]))
        }
        nr::RENAME | nr::LINK => {
            record.path(first, a[0], at(CWD));
            record.path(second, a[1], at(CWD));
        }
        nr::RENAMEAT | nr::RENAMEAT2 | nr::LINKAT => {
            record.path(first, a[1], at(a[0]));
            record.path(second, a[3], at(a[2]));
        }
        nr::SYMLINK => {
            // The target is stored as given, never resolved.
            record.user_str(tag::PATH_0, a[0]);
            record.path(second, a[1], at(CWD));
        }
        nr::SYMLINKAT => {
            record.user_str(tag::PATH_0, a[0]);
            record.path(second, a[2], at(a[1]));
        }
        nr::FCHMOD | nr::FCHOWN | nr::FTRUNCATE => record.fd_path(a[0]),
        nr::MEMFD_CREATE => record.user_str(tag::PATH_0, a[0]),
        nr::MOUNT => {
            // Source and fstype may be NULL (bind mounts, remounts).
            if a[0] != 0 {
                record.user_str(tag::PATH_0, a[0]);
            }
            record.path(second, a[1], at(CWD));
            if a[2] != 0 {
                record.user_str(tag::USER_STRUCT, a[2]);
            }
        }
        nr::INIT_MODULE => record.user_str(tag::PATH_0, a[2]),
        nr::FINIT_MODULE => {
            record.fd_path(a[0]);
            record.user_str(tag::PATH_0, a[1]);
        }
        _ => {}
    }
}

const O_CREAT: u64 = 0o100;

/// `file->f_mode` of the fd an open returned: it says whether the open
/// created the file (`FMODE_CREATED`). Only an `O_CREAT` open can have, so
/// the others skip the five reads it takes to get there.
#[inline(always)]
fn opened_file_mode(record: &mut Record, ret: i64, flags: u64) {
    if ret < 0 || flags & O_CREAT == 0 {
        return;
    }
    if let Ok(file) = fd_file(ret as u64)
        && let Ok(mode) = crate::task::read::<u32>(file, offset!(file_mode))
    {
        record.value(tag::FILE_MODE, &mode);
    }
}
