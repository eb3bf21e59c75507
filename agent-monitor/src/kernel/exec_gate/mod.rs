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
//! Two threads: one answers held execs and does nothing else, so that no
//! slow filesystem can keep an exec waiting; the other looks at the
//! rules' paths every second and marks the file a path names now when it
//! is another one (an upgrade renames a new file into place) or has
//! appeared. An exec the gate did not hold (within that second, or of the
//! same path in another mount namespace) is tracked all the same by the
//! kernel's rule keys: the probes are attached when the daemon reads that
//! exec, and the gap is reported (`pipeline/unseen.rs`).

mod fanotify;
mod marks;

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

pub use marks::MarkError;
use marks::{Look, Marker, Marks, look};

use crate::kernel::syscall_hook::{Hold, Switch, SyscallHook};

/// How often the gate looks at its paths again.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// The longest the probes stay held for one exec the gate let go. The hold
/// ends as soon as the process runs another program (it is tracked by
/// then, and that keeps the probes attached) or is gone; this bounds an
/// exec that failed, whose process goes on running its old program.
const HOLD_MAX: Duration = Duration::from_secs(60);

/// The fanotify group and the files it holds execs of. Dropping it stops
/// the gate; the kernel lets go any exec still held when the group closes.
pub struct ExecGate {
    shared: Arc<Shared>,
    /// An eventfd that wakes the answering thread to stop.
    wake: Arc<OwnedFd>,
    answering: Option<JoinHandle<()>>,
}

struct Shared {
    group: OwnedFd,
    marks: Mutex<Marks>,
    stop: AtomicBool,
    /// Tells the syscall hook, for status, how many files are marked.
    report: Box<dyn Fn(usize) + Send + Sync>,
}

impl Marker for OwnedFd {
    fn mark(&self, file: &OwnedFd) -> io::Result<()> {
        fanotify::mark(self.as_raw_fd(), libc::FAN_MARK_ADD, file)
    }

    fn unmark(&self, file: &OwnedFd) {
        // The file may be gone, and its mark with it.
        let _ = fanotify::mark(self.as_raw_fd(), libc::FAN_MARK_REMOVE, file);
    }
}

impl ExecGate {
    /// Starts the gate's threads, holding no exec yet. Fails where the
    /// kernel has no fanotify permission events.
    pub fn start<S: Switch>(hook: Arc<SyscallHook<S>>) -> io::Result<ExecGate> {
        // Each held exec's file arrives as an fd; a daemon out of fds
        // could not take one, and the kernel would refuse that exec.
        raise_fd_limit();
        let group = fanotify::group()?;
        // SAFETY: plain syscall; the result is checked.
        let wake = Arc::new(fanotify::owned(unsafe {
            libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK)
        })?);
        let shared = Arc::new(Shared {
            group,
            marks: Mutex::new(Marks::default()),
            stop: AtomicBool::new(false),
            report: Box::new({
                let hook = hook.clone();
                move |files| hook.set_gated(files)
            }),
        });
        let answering = std::thread::Builder::new()
            .name("exec-gate".into())
            .spawn({
                let (shared, wake) = (shared.clone(), wake.clone());
                move || shared.answer(&hook, wake.as_raw_fd())
            })?;
        let gate = ExecGate {
            shared,
            wake,
            answering: Some(answering),
        };
        // Not joined at stop: it may be waiting on a slow filesystem, and
        // it holds nothing an exec waits for. (On failure, dropping the
        // gate stops the answering thread.)
        std::thread::Builder::new()
            .name("exec-gate-marks".into())
            .spawn({
                let shared = gate.shared.clone();
                move || shared.keep_marked()
            })?;
        Ok(gate)
    }

    /// Holds the execs of exactly the files these paths name from now on,
    /// and returns the paths that name no regular file yet: each is marked
    /// once it does. An error names the first path that could not be
    /// marked; the others are.
    pub fn watch(&self, paths: &[String]) -> Result<Vec<PathBuf>, MarkError> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let generation = {
            let mut marks = self.shared.lock();
            marks.paths = paths.clone();
            // Looks the marking thread has in flight are for the old paths.
            marks.generation += 1;
            marks.generation
        };
        self.shared.refresh(&paths, generation)?;
        Ok(self.shared.lock().absent.clone())
    }

    /// How many files the gate holds the execs of now.
    pub fn marked(&self) -> usize {
        self.shared.lock().count()
    }
}

impl Drop for ExecGate {
    fn drop(&mut self) {
        {
            // No exec can be held from here on: the marks go (the marking
            // thread, which outlives this, marks nothing more), then the
            // answering thread answers what is queued and stops.
            let mut marks = self.shared.lock();
            marks.paths.clear();
            marks.generation += 1;
            self.shared.stop.store(true, Ordering::Release);
            if let Err(err) = fanotify::flush(self.shared.group.as_raw_fd()) {
                tracing::warn!("exec gate: removing its marks at stop: {err}");
            }
        }
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
        if let Some(thread) = self.answering.take() {
            let _ = thread.join();
        }
    }
}

/// The probes held for one exec the gate let go.
struct Pending<S: Switch> {
    /// The exec'ing process; none for a queue overflow, whose execs went
    /// on unheld.
    pid: Option<i32>,
    /// The device and inode of the program it ran when its exec was held.
    before: Option<(u64, u64)>,
    since: Instant,
    _hold: Hold<S>,
}

impl<S: Switch> Pending<S> {
    /// The process runs another program than when its exec was held (the
    /// exec is done: for a script, the program is its interpreter), or is
    /// gone. A process that execs the program it runs already is held
    /// until [`HOLD_MAX`].
    fn done(&self) -> bool {
        if self.since.elapsed() >= HOLD_MAX {
            return true;
        }
        match (self.pid, self.before) {
            (Some(pid), Some(before)) => exe_of(pid).is_none_or(|exe| exe != before),
            _ => false,
        }
    }
}

/// The device and inode of the program `pid` runs; None when it is gone.
fn exe_of(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((exe.dev(), exe.ino()))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Marks> {
        // Every change leaves the marks consistent.
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks at `paths` without the lock (a path on a slow filesystem
    /// delays only this), then brings the marks up to date, unless they
    /// changed since `generation` (the looks are stale then) or the gate
    /// is stopping.
    fn refresh(&self, paths: &[PathBuf], generation: u64) -> Result<(), MarkError> {
        let looks: Vec<(PathBuf, Look)> = paths.iter().map(|p| (p.clone(), look(p))).collect();
        let mut marks = self.lock();
        if marks.generation != generation || self.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = marks.update(looks, &self.group);
        (self.report)(marks.count());
        result
    }

    /// The marking thread: every second, the files the paths name now.
    fn keep_marked(&self) {
        let mut last_error = None;
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(REFRESH_EVERY);
            let (paths, generation) = {
                let marks = self.lock();
                (marks.paths.clone(), marks.generation)
            };
            let error = self
                .refresh(&paths, generation)
                .err()
                .map(|e| e.to_string());
            // Said once when it starts failing, and once when it recovers.
            if error != last_error {
                match &error {
                    Some(error) => tracing::warn!("exec gate: {error}"),
                    None => tracing::info!("exec gate: every rule's program is marked again"),
                }
                last_error = error;
            }
        }
    }

    /// The answering thread: attaches the probes for each held exec, then
    /// lets it go on.
    fn answer<S: Switch>(&self, hook: &Arc<SyscallHook<S>>, wake: RawFd) {
        // A gate that stopped answering would leave every exec of a rule's
        // program waiting until the daemon exits: better to exit now.
        let _abort = AbortOnUnwind;
        let group = self.group.as_raw_fd();
        let mut pending: Vec<Pending<S>> = Vec::new();
        let mut read_error = None;
        // 64 events' worth; aligned for the metadata's u64.
        let mut buf = [0u64; 3 * 64];
        loop {
            // Read before the drain: what was queued before the marks went
            // at stop is answered by this last pass.
            let stopping = self.stop.load(Ordering::Acquire);
            let mut fds = [group, wake].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // Held probes are looked at every second; with none, only an
            // event or the stop wakes the thread.
            let timeout = if stopping {
                0
            } else if pending.is_empty() {
                -1
            } else {
                REFRESH_EVERY.as_millis() as libc::c_int
            };
            // SAFETY: two live pollfds. An error or timeout only means
            // that the reads below find nothing.
            unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            loop {
                // SAFETY: reads into our own buffer, within its size.
                let n = unsafe { libc::read(group, buf.as_mut_ptr().cast(), size_of_val(&buf)) };
                if n < 0 {
                    let err = io::Error::last_os_error();
                    match err.raw_os_error() {
                        Some(libc::EAGAIN) => break,
                        Some(libc::EINTR) => continue,
                        // The kernel could not give us an exec's file (out
                        // of fds or memory) and refused that exec.
                        code if code != read_error => {
                            tracing::error!("exec gate: reading held execs: {err}");
                            read_error = code;
                            break;
                        }
                        _ => break,
                    }
                }
                if n == 0 {
                    break;
                }
                read_error = None;
                // SAFETY: the kernel wrote n bytes of the buffer.
                let bytes =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
                for event in fanotify::events(bytes) {
                    self.on_event(hook, event, &mut pending);
                }
            }
            pending.retain(|p| !p.done());
            if stopping {
                return;
            }
        }
    }

    fn on_event<S: Switch>(
        &self,
        hook: &Arc<SyscallHook<S>>,
        event: fanotify::Event,
        pending: &mut Vec<Pending<S>>,
    ) {
        let held = event.mask & libc::FAN_OPEN_EXEC_PERM != 0;
        if event.mask & libc::FAN_Q_OVERFLOW != 0 {
            tracing::warn!("exec gate: its queue overflowed, and execs went on unheld");
        }
        if held || event.mask & libc::FAN_Q_OVERFLOW != 0 {
            // Attached before the exec goes on; whatever happens, the exec
            // is let go.
            match hook.hold() {
                Ok(hold) => pending.push(Pending {
                    pid: held.then_some(event.pid),
                    before: exe_of(event.pid).filter(|_| held),
                    since: Instant::now(),
                    _hold: hold,
                }),
                Err(err) => tracing::warn!(
                    pid = event.pid,
                    "exec gate: cannot attach the syscall probes: {err}"
                ),
            }
        }
        if held && let Err(err) = fanotify::allow(self.group.as_raw_fd(), event.fd) {
            tracing::error!(
                pid = event.pid,
                "exec gate: cannot let an exec go on: {err}"
            );
        }
        if event.fd >= 0 {
            // SAFETY: the kernel opened this fd for us and nothing else
            // owns it; the exec was answered above.
            drop(unsafe { OwnedFd::from_raw_fd(event.fd) });
        }
    }
}

struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            tracing::error!("exec gate: the answering thread panicked; exiting");
            std::process::abort();
        }
    }
}

/// Raises the soft limit on open files to the hard one.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
