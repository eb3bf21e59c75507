//! Free space where cargo writes, checked before long builds: a full disk
//! shows up deep inside a build as "rustc-LLVM ERROR: IO failure on output
//! stream", minutes in, which says nothing about the cause.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

use crate::root;

const GIB: u64 = 1 << 30;

/// Bytes available to an unprivileged writer on the filesystem holding the
/// target directory (or its nearest existing ancestor, on a fresh clone).
fn available() -> Option<u64> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), Into::into);
    let dir = target
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, and path is NUL-terminated.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &raw mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail * stat.f_frsize)
}

/// A note about free space when it is below `needed_gib`, for a warning
/// before the build and for the error after a failed one.
pub fn shortage(needed_gib: u64, what: &str) -> Option<String> {
    let free = available()?;
    (free < needed_gib * GIB).then(|| {
        format!(
            "only {:.1} GiB free for target/; {what} needs about {needed_gib} GiB, \
             so it may fail with \"No space left on device\"",
            free as f64 / GIB as f64
        )
    })
}
