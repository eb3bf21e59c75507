//! tracefs, which classic tracepoints need to look up their ids. Some hosts
//! (this project's CI among them) boot without it mounted.

use std::{ffi::CString, io, path::Path};

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Mounts tracefs at [`TRACEFS`] unless it is already there. Returns whether
/// this call mounted it.
pub fn ensure_mounted() -> io::Result<bool> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(false);
    }
    let source = CString::new("tracefs").expect("no NUL");
    let target = CString::new(TRACEFS).expect("no NUL");
    // SAFETY: all pointers are valid NUL-terminated strings; no data block.
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            source.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(true)
    } else {
        Err(io::Error::last_os_error())
    }
}
