//! The few `bpf()` commands the monitor issues itself, by raw syscall:
//! they run on threads that do not own the `Ebpf` object, and one of them
//! in a forked child before exec, where nothing may allocate.

use std::{
    io,
    os::fd::{FromRawFd, OwnedFd, RawFd},
};

pub const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
pub const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
pub const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;

/// `union bpf_attr` as the map element commands read it. `value` is
/// `next_key` for BPF_MAP_GET_NEXT_KEY.
#[repr(C)]
pub struct MapElemAttr {
    pub map_fd: u32,
    pub _pad: u32,
    pub key: u64,
    pub value: u64,
    pub flags: u64,
}

/// `union bpf_attr` as BPF_RAW_TRACEPOINT_OPEN reads it.
#[repr(C)]
struct RawTracepointOpenAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
    cookie: u64,
}

const _: () = assert!(std::mem::size_of::<MapElemAttr>() == 32);
const _: () = assert!(std::mem::size_of::<RawTracepointOpenAttr>() == 24);

/// One `bpf()` command; its non-negative result. Async-signal-safe.
///
/// # Safety
/// Every pointer in `attr` must be valid for what `cmd` reads or writes
/// through it, for the duration of the call.
pub unsafe fn bpf<A>(cmd: libc::c_long, attr: &A) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for the pointers inside `attr`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const A,
            std::mem::size_of::<A>() as u32,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Attaches the loaded raw-tracepoint program `program` to `tracepoint`.
/// The link is the returned fd: closing it detaches the program.
pub fn raw_tracepoint_open(tracepoint: &std::ffi::CStr, program: RawFd) -> io::Result<OwnedFd> {
    let attr = RawTracepointOpenAttr {
        name: tracepoint.as_ptr() as u64,
        prog_fd: program as u32,
        _pad: 0,
        cookie: 0,
    };
    // SAFETY: the name is a live NUL-terminated string.
    let fd = unsafe { bpf(BPF_RAW_TRACEPOINT_OPEN, &attr) }?;
    // SAFETY: the kernel just returned this fd, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the hash map behind `map` holds any entry, for a key of `K`.
pub fn map_is_empty<K: Default>(map: RawFd) -> io::Result<bool> {
    let mut next = K::default();
    let attr = MapElemAttr {
        map_fd: map as u32,
        _pad: 0,
        // No key: the kernel returns the first one.
        key: 0,
        value: &mut next as *mut K as u64,
        flags: 0,
    };
    // SAFETY: `next` is a live key-sized buffer for the kernel to fill.
    match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &attr) } {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(true),
        Err(e) => Err(e),
    }
}
