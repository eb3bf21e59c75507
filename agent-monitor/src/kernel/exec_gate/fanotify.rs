//! The fanotify calls the gate makes, and the records it reads.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// One fanotify event's metadata: what happened, the file's fd, who.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub mask: u64,
    /// The file, opened for us; `FAN_NOFD` (-1) for a queue overflow.
    pub fd: RawFd,
    pub pid: i32,
}

const METADATA_LEN: usize = size_of::<libc::fanotify_event_metadata>();
const _: () = assert!(METADATA_LEN == 24);

/// A group for permission events, read without blocking.
pub fn group() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    owned(unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as libc::c_uint,
        )
    })
}

/// The events in what one read returned. Stops at a record that does not
/// fit or is not of the version this code reads (the kernel writes whole
/// records of its own version, so neither happens).
pub fn events(bytes: &[u8]) -> Vec<Event> {
    let mut events = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= METADATA_LEN {
        // SAFETY: METADATA_LEN bytes are there; the read is unaligned.
        let meta: libc::fanotify_event_metadata =
            unsafe { std::ptr::read_unaligned(bytes[at..].as_ptr().cast()) };
        let len = meta.event_len as usize;
        if meta.vers != libc::FANOTIFY_METADATA_VERSION
            || len < METADATA_LEN
            || len > bytes.len() - at
        {
            break;
        }
        events.push(Event {
            mask: meta.mask,
            fd: meta.fd,
            pid: meta.pid,
        });
        at += len;
    }
    events
}

/// Lets the held exec of the event whose file is `fd` go on.
pub fn allow(group: RawFd, fd: RawFd) -> io::Result<()> {
    let response = libc::fanotify_response {
        fd,
        response: libc::FAN_ALLOW,
    };
    let size = size_of_val(&response);
    // SAFETY: writes the response struct, a live local, to our group.
    let n = unsafe { libc::write(group, (&raw const response).cast(), size) };
    if n == size as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Adds (`FAN_MARK_ADD`) or removes (`FAN_MARK_REMOVE`) the exec mark of
/// the file `file` holds (an `O_PATH` fd will do).
pub fn mark(group: RawFd, action: libc::c_uint, file: &OwnedFd) -> io::Result<()> {
    // fanotify_mark refuses an O_PATH fd as its object, but resolves its
    // /proc/self/fd link, which names the very file even once unlinked.
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .expect("no NUL in a number");
    // SAFETY: a NUL-terminated path, read during the call; the borrow
    // keeps the fd it names open.
    let ret = unsafe {
        libc::fanotify_mark(
            group,
            action,
            libc::FAN_OPEN_EXEC_PERM,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn stat(fd: RawFd) -> io::Result<libc::stat> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the whole struct on success, checked.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call.
    Ok(unsafe { stat.assume_init() })
}

/// The device and inode of an open file.
pub fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    stat(fd).map(|s| (s.st_dev, s.st_ino))
}

/// Removes every mark of the group.
pub fn flush(group: RawFd) -> io::Result<()> {
    // SAFETY: FAN_MARK_FLUSH reads no path.
    let ret = unsafe {
        libc::fanotify_mark(
            group,
            libc::FAN_MARK_FLUSH,
            0,
            libc::AT_FDCWD,
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an open file (an `O_PATH` one included) is a regular file.
pub fn regular(fd: RawFd) -> io::Result<bool> {
    stat(fd).map(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG)
}

pub fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u64, fd: i32, pid: i32, len: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.push(libc::FANOTIFY_METADATA_VERSION);
        bytes.push(0);
        bytes.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        bytes.extend_from_slice(&mask.to_ne_bytes());
        bytes.extend_from_slice(&fd.to_ne_bytes());
        bytes.extend_from_slice(&pid.to_ne_bytes());
        bytes.resize(len as usize, 0);
        bytes
    }

    #[test]
    fn events_reads_each_record_by_its_own_length() {
        let mut bytes = record(libc::FAN_OPEN_EXEC_PERM, 7, 100, 24);
        // A record with extra information after its metadata.
        bytes.extend(record(libc::FAN_OPEN_EXEC_PERM, 8, 101, 40));
        assert_eq!(
            events(&bytes),
            vec![
                Event {
                    mask: libc::FAN_OPEN_EXEC_PERM,
                    fd: 7,
                    pid: 100
                },
                Event {
                    mask: libc::FAN_OPEN_EXEC_PERM,
                    fd: 8,
                    pid: 101
                },
            ]
        );
    }

    #[test]
    fn events_stops_at_a_record_that_does_not_fit() {
        let mut bytes = record(libc::FAN_OPEN_EXEC_PERM, 7, 100, 24);
        bytes.extend(record(libc::FAN_OPEN_EXEC_PERM, 8, 101, 24));
        bytes.truncate(40);
        assert_eq!(events(&bytes).len(), 1);
        let mut short = record(libc::FAN_OPEN_EXEC_PERM, 7, 100, 24);
        short[..4].copy_from_slice(&8u32.to_ne_bytes());
        assert_eq!(events(&short), vec![]);
    }
}
