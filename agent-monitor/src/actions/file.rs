//! `file.*`, `fs.*`, `kernel.module_load` and `mem.memfd_create`.

use agent_monitor_common::syscall::{nr, tag};

use super::{Access, Action, ActionKind, paths, record::SyscallRecord};
use crate::decode::text;

const O_ACCMODE: u64 = 0o3;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_WRONLY: u64 = 0o1;
const AT_REMOVEDIR: u64 = 0x200;
/// `FMODE_CREATED` in `file->f_mode`: this open created the file.
const FMODE_CREATED: u32 = 1 << 20;

pub(super) fn interpret(r: &SyscallRecord) -> Option<Box<Action>> {
    use ActionKind::*;
    let a = r.args;
    let (kind, syscall) = match r.nr {
        nr::OPEN => (FileOpen, "open"),
        nr::CREAT => (FileOpen, "creat"),
        nr::OPENAT => (FileOpen, "openat"),
        nr::OPENAT2 => (FileOpen, "openat2"),
        nr::UNLINK => (FileUnlink, "unlink"),
        nr::UNLINKAT => (FileUnlink, "unlinkat"),
        nr::RMDIR => (FileUnlink, "rmdir"),
        nr::RENAME => (FileRename, "rename"),
        nr::RENAMEAT => (FileRename, "renameat"),
        nr::RENAMEAT2 => (FileRename, "renameat2"),
        nr::MKDIR => (FileMkdir, "mkdir"),
        nr::MKDIRAT => (FileMkdir, "mkdirat"),
        nr::CHMOD => (FileChmod, "chmod"),
        nr::FCHMOD => (FileChmod, "fchmod"),
        nr::FCHMODAT => (FileChmod, "fchmodat"),
        nr::FCHMODAT2 => (FileChmod, "fchmodat2"),
        nr::CHOWN => (FileChown, "chown"),
        nr::FCHOWN => (FileChown, "fchown"),
        nr::LCHOWN => (FileChown, "lchown"),
        nr::FCHOWNAT => (FileChown, "fchownat"),
        nr::LINK => (FileLink, "link"),
        nr::LINKAT => (FileLink, "linkat"),
        nr::SYMLINK => (FileLink, "symlink"),
        nr::SYMLINKAT => (FileLink, "symlinkat"),
        nr::TRUNCATE => (FileTruncate, "truncate"),
        nr::FTRUNCATE => (FileTruncate, "ftruncate"),
        nr::MEMFD_CREATE => (MemMemfdCreate, "memfd_create"),
        nr::MOUNT => (FsMount, "mount"),
        nr::UMOUNT2 => (FsUmount, "umount2"),
        nr::INIT_MODULE => (KernelModuleLoad, "init_module"),
        nr::FINIT_MODULE => (KernelModuleLoad, "finit_module"),
        _ => return None,
    };
    let mut action = Action::new(kind, syscall, r);
    let f = &mut action.fields;

    // The paths: the first is the subject, the second the new name.
    // An unreadable or empty path names nothing: joining it to its base
    // would name the base directory instead.
    let readable = |tag: u8| {
        r.field(tag)
            .filter(|f| !f.unreadable && !f.bytes.is_empty())
    };
    if let Some(raw) = readable(tag::PATH_0).map(|f| text(f.bytes)) {
        let base = r.bytes(tag::BASE_0).map(paths::from_components);
        f.path = paths::absolute(&raw, base.as_deref());
        f.raw_path = Some(raw);
    }
    if let Some(raw) = readable(tag::PATH_1).map(|f| text(f.bytes)) {
        let base = r.bytes(tag::BASE_1).map(paths::from_components);
        f.new_path = paths::absolute(&raw, base.as_deref());
        f.new_raw_path = Some(raw);
    }
    if let Some(components) = r.bytes(tag::FD_PATH) {
        f.path = Some(paths::from_components(components));
    }
    let captured = [
        tag::PATH_0,
        tag::PATH_1,
        tag::BASE_0,
        tag::BASE_1,
        tag::FD_PATH,
    ];
    if r.incomplete(&captured) {
        f.path_incomplete = Some(true);
    }

    match r.nr {
        nr::OPEN | nr::OPENAT | nr::CREAT | nr::OPENAT2 => {
            let how = match r.nr {
                nr::OPEN => Some((a[1], a[2])),
                nr::OPENAT => Some((a[2], a[3])),
                nr::CREAT => Some((O_CREAT | O_WRONLY | O_TRUNC, a[1])),
                _ => open_how(r.bytes(tag::USER_STRUCT)),
            };
            // openat2 whose open_how could not be read: no flags to report,
            // rather than made-up ones.
            let Some((flags, mode)) = how else {
                f.path_incomplete = Some(true);
                return Some(action);
            };
            f.flags = Some(flags);
            f.mode = (flags & O_CREAT != 0).then_some(mode as u32);
            let access = match flags & O_ACCMODE {
                0 => Access::Read,
                1 => Access::Write,
                _ => Access::ReadWrite,
            };
            f.access = Some(access);
            let opened = r.ret >= 0;
            f.created = Some(
                opened
                    && r.bytes(tag::FILE_MODE)
                        .and_then(|b| b.try_into().ok())
                        .is_some_and(|b| u32::from_ne_bytes(b) & FMODE_CREATED != 0),
            );
            f.truncated = Some(opened && flags & O_TRUNC != 0 && access != Access::Read);
        }
        nr::UNLINKAT => f.flags = Some(a[2]),
        nr::RMDIR => f.flags = Some(AT_REMOVEDIR),
        nr::RENAMEAT2 => f.flags = Some(a[4]),
        nr::MKDIR | nr::CHMOD => f.mode = Some(a[1] as u32),
        nr::MKDIRAT | nr::FCHMODAT => f.mode = Some(a[2] as u32),
        nr::FCHMODAT2 => {
            f.mode = Some(a[2] as u32);
            f.flags = Some(a[3]);
        }
        nr::FCHMOD => f.mode = Some(a[1] as u32),
        nr::CHOWN | nr::FCHOWN | nr::LCHOWN => {
            f.owner_uid = Some(a[1] as u32 as i32 as i64);
            f.owner_gid = Some(a[2] as u32 as i32 as i64);
        }
        nr::FCHOWNAT => {
            f.owner_uid = Some(a[2] as u32 as i32 as i64);
            f.owner_gid = Some(a[3] as u32 as i32 as i64);
            f.flags = Some(a[4]);
        }
        nr::LINKAT => f.flags = Some(a[4]),
        nr::SYMLINK | nr::SYMLINKAT => {
            // The target is link content, not a path the call touched.
            f.symlink = Some(true);
            f.path = None;
        }
        nr::TRUNCATE | nr::FTRUNCATE => f.length = Some(a[1] as i64),
        nr::MEMFD_CREATE => {
            f.name = f.raw_path.take();
            f.path = None;
            f.flags = Some(a[1]);
        }
        nr::MOUNT => {
            // source, target, fstype: the target is what changes.
            f.name = f.raw_path.take();
            f.path = f.new_path.take();
            f.raw_path = f.new_raw_path.take();
            f.fstype = r.text(tag::USER_STRUCT).filter(|t| !t.is_empty());
            f.flags = Some(a[3]);
        }
        nr::UMOUNT2 => f.flags = Some(a[1]),
        nr::INIT_MODULE | nr::FINIT_MODULE => {
            // The module's parameters; finit_module names its file by fd.
            f.name = f.raw_path.take();
            if r.nr == nr::INIT_MODULE {
                f.path = None;
            }
        }
        _ => {}
    }
    Some(action)
}

/// `struct open_how { u64 flags; u64 mode; u64 resolve; }`.
fn open_how(bytes: Option<&[u8]>) -> Option<(u64, u64)> {
    let bytes = bytes?;
    let word = |i: usize| {
        bytes
            .get(i * 8..i * 8 + 8)?
            .try_into()
            .ok()
            .map(u64::from_ne_bytes)
    };
    Some((word(0)?, word(1)?))
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
