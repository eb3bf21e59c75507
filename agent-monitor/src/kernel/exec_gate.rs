//! The exec gate: the syscall probes attached just before a rule's program
//! runs, instead of all the time a rule is loaded.
//!
//! A loaded discovery rule can track a process at any exec, and that
//! process's first syscalls must be seen. Keeping `sys_exit` attached while
//! waiting for it puts every syscall of the host through the kernel's slow
//! path (`kernel/syscall_hook.rs`). When every rule names its program
//! (`exe`), the gate asks the kernel instead to hold each exec of those
//! files (fanotify `FAN_OPEN_EXEC_PERM`, marked on the files themselves)
//! until the probes are attached, and only then lets the exec go on. The
//! execs of other programs are not held, and no other syscall pays.
//!
//! The marks follow the paths: every second the gate opens each path again
//! and marks the file now there when it is another one (an upgrade renames
//! a new file into place) or has appeared. An exec the gate did not hold
//! (within that second, or of the same path in another mount namespace) is
//! tracked all the same by the kernel's rule keys: the probes are attached
//! when the daemon reads that exec, and the gap is reported
//! (`pipeline/discovered.rs`).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::kernel::syscall_hook::{Switch, SyscallHook};

/// How often the gate looks at its paths again.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// How long the probes stay held after the last exec the gate let go: the
/// exec has made its process tracked long before, and from then on the
/// tracked process keeps them attached.
const HOLD_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
#[error("cannot gate the execs of {path}: {source}")]
pub struct MarkError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The fanotify group and the files it holds execs of. Dropping it stops
/// the gate; the kernel lets go any exec still held.
pub struct ExecGate {
    shared: Arc<Shared>,
    /// An eventfd that wakes the thread to stop.
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    fanotify: OwnedFd,
    marks: Mutex<Marks>,
    stop: AtomicBool,
}

#[derive(Default)]
struct Marks {
    paths: Vec<PathBuf>,
    marked: Vec<Marked>,
}

/// A marked file, kept open so that its mark can be removed even after
/// the path has come to name another file.
struct Marked {
    path: PathBuf,
    file: OwnedFd,
    /// Device and inode.
    id: (u64, u64),
}

impl ExecGate {
    /// Starts the gate's thread, holding no exec yet. Fails where the
    /// kernel has no fanotify permission events.
    pub fn start<S: Switch>(hook: Arc<SyscallHook<S>>) -> io::Result<ExecGate> {
        // SAFETY: plain syscall; the result is checked.
        let fanotify = unsafe {
            libc::fanotify_init(
                libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
                (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as libc::c_uint,
            )
        };
        let fanotify = owned(fanotify)?;
        // SAFETY: plain syscall; the result is checked.
        let wake = Arc::new(owned(unsafe {
            libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)
        })?);
        let shared = Arc::new(Shared {
            fanotify,
            marks: Mutex::new(Marks::default()),
            stop: AtomicBool::new(false),
        });
        let thread = std::thread::Builder::new()
            .name("exec-gate".into())
            .spawn({
                let (shared, wake) = (shared.clone(), wake.clone());
                move || shared.serve(&hook, wake.as_raw_fd())
            })?;
        Ok(ExecGate {
            shared,
            wake,
            thread: Some(thread),
        })
    }

    /// Holds the execs of exactly these files from now on. A path that
    /// names no file yet is marked once it does. An error names the first
    /// file that exists and could not be marked; the others are marked.
    pub fn watch(&self, paths: &[String]) -> Result<(), MarkError> {
        let mut marks = self.shared.lock();
        marks.paths = paths.iter().map(PathBuf::from).collect();
        marks.refresh(self.shared.fanotify.as_raw_fd())
    }

    /// The paths whose execs are held now, for status and tests.
    pub fn marked(&self) -> Vec<PathBuf> {
        let marks = self.shared.lock();
        marks.marked.iter().map(|m| m.path.clone()).collect()
    }
}

impl Drop for ExecGate {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Marks> {
        // Every change leaves the marks consistent.
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The gate's thread: answers every held exec, after attaching the
    /// probes, and looks at the paths again every second.
    fn serve<S: Switch>(&self, hook: &Arc<SyscallHook<S>>, wake: RawFd) {
        let fanotify = self.fanotify.as_raw_fd();
        let mut held = None;
        let mut refreshed = Instant::now();
        // 64 events' worth; aligned for the metadata's u64.
        let mut buf = [0u64; 3 * 64];
        while !self.stop.load(Ordering::Acquire) {
            let mut fds = [
                libc::pollfd {
                    fd: fanotify,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two live pollfds.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    2,
                    REFRESH_EVERY.as_millis() as libc::c_int,
                )
            };
            loop {
                // SAFETY: reads into our own buffer, within its size.
                let n = unsafe { libc::read(fanotify, buf.as_mut_ptr().cast(), size_of_val(&buf)) };
                if n <= 0 {
                    break;
                }
                // SAFETY: the kernel wrote n bytes of the buffer.
                let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast(), n as usize) };
                for event in events(bytes) {
                    if event.mask & libc::FAN_OPEN_EXEC_PERM != 0 {
                        // Attached before the exec goes on; whatever
                        // happens, the exec is let go.
                        match hook.hold() {
                            Ok(hold) => held = Some((hold, Instant::now())),
                            Err(err) => tracing::warn!(
                                pid = event.pid,
                                "exec gate: cannot attach the syscall probes: {err}"
                            ),
                        }
                        if let Err(err) = allow(fanotify, event.fd) {
                            tracing::error!(
                                pid = event.pid,
                                "exec gate: cannot let an exec go on: {err}"
                            );
                        }
                    }
                    if event.fd >= 0 {
                        // SAFETY: the kernel opened this fd for us and
                        // nothing else owns it.
                        drop(unsafe { OwnedFd::from_raw_fd(event.fd) });
                    }
                }
            }
            if held
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() >= HOLD_FOR)
            {
                held = None;
            }
            if refreshed.elapsed() >= REFRESH_EVERY {
                refreshed = Instant::now();
                if let Err(err) = self.lock().refresh(fanotify) {
                    tracing::warn!("{err}");
                }
            }
        }
    }
}

impl Marks {
    /// Marks the file each path names now, and unmarks files no path
    /// names any more.
    fn refresh(&mut self, fanotify: RawFd) -> Result<(), MarkError> {
        let mut first_error = None;
        let mut kept = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            let current = match open_file(path) {
                Ok(file) => file,
                // Nothing that can be exec'd is there now.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => None,
                Err(source) => {
                    first_error.get_or_insert(MarkError {
                        path: path.clone(),
                        source,
                    });
                    None
                }
            };
            let Some((file, id)) = current else {
                continue;
            };
            let old = self
                .marked
                .iter()
                .position(|m| m.path == *path && m.id == id);
            if let Some(old) = old {
                kept.push(self.marked.swap_remove(old));
                continue;
            }
            match fanotify_mark(fanotify, libc::FAN_MARK_ADD, &file) {
                Ok(()) => kept.push(Marked {
                    path: path.clone(),
                    file,
                    id,
                }),
                Err(source) => {
                    first_error.get_or_insert(MarkError {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        // What is left names a file no path names now.
        for stale in std::mem::replace(&mut self.marked, kept) {
            if !self.marked.iter().any(|m| m.id == stale.id) {
                // The file may be gone, and its mark with it.
                let _ = fanotify_mark(fanotify, libc::FAN_MARK_REMOVE, &stale.file);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// One fanotify event's metadata: what happened, the file's fd, who.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    mask: u64,
    fd: RawFd,
    pid: i32,
}

const METADATA_LEN: usize = size_of::<libc::fanotify_event_metadata>();
const _: () = assert!(METADATA_LEN == 24);

/// The events in what one read returned. Stops at a record that does not
/// fit or is not of the version this code reads.
fn events(bytes: &[u8]) -> Vec<Event> {
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

fn allow(fanotify: RawFd, fd: RawFd) -> io::Result<()> {
    let response = libc::fanotify_response {
        fd,
        response: libc::FAN_ALLOW,
    };
    let size = size_of_val(&response);
    // SAFETY: writes the response struct, a live local, to our group.
    let n = unsafe { libc::write(fanotify, (&raw const response).cast(), size) };
    if n == size as isize {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The regular file `path` names now, open, with its device and inode;
/// None for anything else, which no exec can run.
fn open_file(path: &Path) -> io::Result<Option<(OwnedFd, (u64, u64))>> {
    let name = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: a NUL-terminated path; the result is checked. An O_PATH fd
    // would do, but fanotify_mark does not take one; O_NONBLOCK so that a
    // FIFO put at the path cannot stall the gate.
    let file = owned(unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY,
        )
    })?;
    let meta = std::fs::File::from(file.try_clone()?).metadata()?;
    Ok(meta
        .file_type()
        .is_file()
        .then(|| (file, (meta.dev(), meta.ino()))))
}

fn fanotify_mark(fanotify: RawFd, action: libc::c_uint, file: &OwnedFd) -> io::Result<()> {
    // SAFETY: with no path, the kernel marks the open file `file`.
    let ret = unsafe {
        libc::fanotify_mark(
            fanotify,
            action,
            libc::FAN_OPEN_EXEC_PERM,
            file.as_raw_fd(),
            std::ptr::null(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
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
