//! Files, paths and fds of the current task, at the offsets in
//! `KernelLayout`.

use crate::task::{Task, offset, read};

/// `AT_FDCWD`: a dirfd meaning the working directory.
pub const AT_FDCWD: i64 = -100;

/// A `struct path`: a mount and a dentry.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PathRef {
    pub mnt: *const u8,
    pub dentry: *const u8,
}

impl PathRef {
    /// Reads the `struct path` embedded at `base + at`.
    #[inline(always)]
    pub fn at(base: *const u8, at: usize) -> Result<PathRef, i64> {
        let path = base.wrapping_add(at);
        Ok(PathRef {
            mnt: read(path, offset!(path_mnt))?,
            dentry: read(path, offset!(path_dentry))?,
        })
    }
}

/// The current task's root and working directory.
#[inline(always)]
pub fn root_and_cwd() -> Result<(PathRef, PathRef), i64> {
    let fs = read::<*const u8>(Task::current().as_ptr(), offset!(task_fs))?;
    Ok((
        PathRef::at(fs, offset!(fs_root))?,
        PathRef::at(fs, offset!(fs_pwd))?,
    ))
}

/// The `struct file *` behind an fd of the current task.
#[inline(always)]
pub fn fd_file(fd: u64) -> Result<*const u8, i64> {
    let files = read::<*const u8>(Task::current().as_ptr(), offset!(task_files))?;
    let fdt = read::<*const u8>(files, offset!(files_fdt))?;
    let max = read::<u32>(fdt, offset!(fdtable_max_fds))?;
    if fd >= u64::from(max) {
        return Err(-9);
    }
    let fds = read::<*const u8>(fdt, offset!(fdtable_fd))?;
    let file = read::<*const u8>(fds, (fd as usize) * 8)?;
    if file.is_null() { Err(-9) } else { Ok(file) }
}

/// The path of an open file.
#[inline(always)]
pub fn file_path(file: *const u8) -> Result<PathRef, i64> {
    PathRef::at(file, offset!(file_path))
}

/// The directory a path argument is relative to: the working directory for
/// `AT_FDCWD`, else the dirfd's file.
#[inline(always)]
pub fn dirfd_path(dirfd: u64, cwd: PathRef) -> Result<PathRef, i64> {
    if dirfd as i32 as i64 == AT_FDCWD {
        Ok(cwd)
    } else {
        file_path(fd_file(dirfd)?)
    }
}

/// `S_IFMT` bits of the inode behind a file.
#[inline(always)]
pub fn file_type(file: *const u8) -> Result<u16, i64> {
    let inode = read::<*const u8>(file, offset!(file_inode))?;
    read::<u16>(inode, offset!(inode_mode)).map(|mode| mode & 0o170000)
}

pub const S_IFSOCK: u16 = 0o140000;
