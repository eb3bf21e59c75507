//! The `sys_exit` program, attached only while a process is tracked or
//! could become tracked.
//!
//! Attaching any program to a syscall tracepoint sets the syscall-trace
//! work flag on every thread of the host, and from then on every syscall
//! takes the kernel's slow path, whatever the program does (6 to 10% of an
//! open/read/close loop here). Only detaching the program clears the flag.
//! The process probes (fork, exec, exit) stay attached throughout: they
//! cost nothing per syscall, and they mark a new agent's process at exec.
//!
//! The invariant: the program is attached whenever the kernel's
//! tracked-process map holds a process or could get one, which is while a
//! discovery rule is loaded, a process is being adopted, or `run` is
//! starting its command. Each of those takes a [`Hold`] first. Rules that
//! all name their program hold it only around each exec of one
//! (`kernel/exec_gate`); an exec the gate missed is tracked by the
//! kernel anyway, and [`SyscallHook::cover`] attaches the program when it
//! is read and says what was missed.
//! [`SyscallHook::release_if_idle`] detaches only with no hold and an empty
//! map, under the lock every hold is taken under, so nothing userspace does
//! makes a process tracked between its check and the detach; and only on
//! its second such look in a row, so that no kernel program that was
//! about to track one is still running.

use std::{
    ffi::CStr,
    io,
    os::fd::{AsRawFd, OwnedFd},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use serde::Serialize;
use tokio::sync::watch;

use crate::{kernel::sys_bpf, time::WallClock};

/// Ended attachments remembered for [`SyscallHook::cover`]: an exec read
/// later than this many detaches ago is reported as unwatched.
const HISTORY: usize = 64;

/// What the hook switches: the program's attachment, and the question of
/// whether any process is tracked. A trait so that when it switches is
/// tested without BPF.
pub trait Switch: Send + Sync + 'static {
    /// Keeps the program attached for as long as it lives.
    type Link: Send;
    fn attach(&self) -> io::Result<Self::Link>;
    /// Whether the kernel's tracked-process map holds any process.
    fn anything_tracked(&self) -> io::Result<bool>;
}

/// The loaded program and the tracked-process map, by their own fds.
pub struct KernelSwitch {
    pub tracepoint: &'static CStr,
    pub program: OwnedFd,
    pub tracked: OwnedFd,
}

impl Switch for KernelSwitch {
    type Link = OwnedFd;

    fn attach(&self) -> io::Result<OwnedFd> {
        sys_bpf::raw_tracepoint_open(self.tracepoint, self.program.as_raw_fd())
    }

    fn anything_tracked(&self) -> io::Result<bool> {
        sys_bpf::map_is_empty::<u32>(self.tracked.as_raw_fd()).map(|empty| !empty)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    Attached,
    Detached,
    /// The program could not be attached at start (reported then).
    Unavailable,
}

/// The hook as `status` and the metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HookStatus {
    pub state: HookState,
    /// Times it was attached, the first at start included.
    pub attaches: u64,
    pub detaches: u64,
    /// Files whose execs the exec gate holds until the program is
    /// attached (`kernel/exec_gate`); 0 when the gate is not in use.
    pub gated: u64,
}

struct Inner<L> {
    link: Option<L>,
    holds: usize,
    /// The last look found nothing to watch, and no hold came since.
    idle_seen: bool,
    /// Detached for good: the monitor is stopping.
    closed: bool,
    /// When the link in force was made (`CLOCK_BOOTTIME` ns, read after
    /// the kernel made it), for [`SyscallHook::cover`].
    attached_ns: Option<u64>,
    /// The last attachments that ended, (attached, detached) in
    /// `CLOCK_BOOTTIME` ns, oldest first: an exec the daemon reads late
    /// may have been watched by one of them.
    history: std::collections::VecDeque<(u64, u64)>,
    attaches: u64,
    detaches: u64,
}

pub struct SyscallHook<S: Switch = KernelSwitch> {
    /// None: unavailable, and every hold is a no-op.
    switch: Option<S>,
    inner: Mutex<Inner<S::Link>>,
    /// True while detached: then the probes record almost nothing, since
    /// nothing is tracked and nothing becomes tracked without a hold but
    /// by a rule's exec the gate did not hold, whose record wakes the
    /// reader itself.
    quiet: watch::Sender<bool>,
    /// See [`HookStatus::gated`].
    gated: std::sync::atomic::AtomicU64,
}

impl<S: Switch> SyscallHook<S> {
    /// Attaches the program now, so that a kernel that refuses it is found
    /// at start; it stays attached until [`release_if_idle`] finds nothing
    /// to watch.
    ///
    /// [`release_if_idle`]: SyscallHook::release_if_idle
    pub fn attached(switch: S) -> io::Result<Arc<Self>> {
        let link = switch.attach()?;
        Ok(Arc::new(SyscallHook {
            switch: Some(switch),
            inner: Mutex::new(Inner {
                link: Some(link),
                holds: 0,
                idle_seen: false,
                closed: false,
                attached_ns: Some(WallClock::boot_now_ns()),
                history: Default::default(),
                attaches: 1,
                detaches: 0,
            }),
            quiet: watch::Sender::new(false),
            gated: Default::default(),
        }))
    }

    /// A hook whose program could not be attached: holds change nothing.
    pub fn unavailable() -> Arc<Self> {
        Arc::new(SyscallHook {
            switch: None,
            inner: Mutex::new(Inner {
                link: None,
                holds: 0,
                idle_seen: false,
                closed: false,
                attached_ns: None,
                history: Default::default(),
                attaches: 0,
                detaches: 0,
            }),
            // The process probes still record tracked processes.
            quiet: watch::Sender::new(false),
            gated: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner<S::Link>> {
        // The state stays consistent at every unlock, so a panic elsewhere
        // while it was held does not make it unusable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches the program if it is not, and keeps it attached until the
    /// hold is dropped. Take it before a process can become tracked.
    pub fn hold(self: &Arc<Self>) -> io::Result<Hold<S>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(io::Error::other("the monitor is stopping"));
        }
        self.attach(&mut inner)?;
        inner.holds += 1;
        inner.idle_seen = false;
        Ok(Hold { hook: self.clone() })
    }

    fn attach(&self, inner: &mut Inner<S::Link>) -> io::Result<()> {
        if let Some(switch) = &self.switch
            && inner.link.is_none()
        {
            inner.link = Some(switch.attach()?);
            inner.attached_ns = Some(WallClock::boot_now_ns());
            inner.attaches += 1;
            self.quiet.send_replace(false);
            tracing::debug!("syscall probes attached");
        }
        Ok(())
    }

    /// For a process a rule tracked at its exec at `since_ns`
    /// (`CLOCK_BOOTTIME`), read by the daemon only now: attaches the
    /// program if it is not (the process is an agent now, whatever
    /// happened before), and says whether its syscalls were missed. None
    /// when the program was attached at `since_ns`, and so for as long as
    /// the process was tracked; otherwise (an exec the exec gate did not
    /// hold) when the program was first attached after `since_ns`. None
    /// too when the program is unavailable (reported at start) or the
    /// monitor is stopping.
    pub fn cover(&self, since_ns: u64) -> io::Result<Option<u64>> {
        let mut inner = self.lock();
        if self.switch.is_none() || inner.closed {
            return Ok(None);
        }
        let watched = inner.attached_ns.is_some_and(|at| at <= since_ns)
            || inner
                .history
                .iter()
                .any(|&(at, until)| at <= since_ns && since_ns < until);
        self.attach(&mut inner)?;
        // The tracked process keeps it attached from now on.
        inner.idle_seen = false;
        if watched {
            return Ok(None);
        }
        let first = inner
            .history
            .iter()
            .map(|&(at, _)| at)
            .chain(inner.attached_ns)
            .find(|&at| at > since_ns);
        Ok(first)
    }

    /// Ends the attachment in force, remembering it for [`cover`].
    ///
    /// [`cover`]: SyscallHook::cover
    fn detach(&self, inner: &mut Inner<S::Link>, why: &str) {
        let Some(link) = inner.link.take() else {
            return;
        };
        // Read while still attached: an exec after this time is never
        // taken for one this attachment watched.
        let until = WallClock::boot_now_ns();
        drop(link);
        if let Some(at) = inner.attached_ns.take() {
            if inner.history.len() == HISTORY {
                inner.history.pop_front();
            }
            inner.history.push_back((at, until));
        }
        inner.idle_seen = false;
        inner.detaches += 1;
        self.quiet.send_replace(true);
        tracing::debug!("syscall probes detached: {why}");
    }

    /// Detaches the program once two calls in a row have found nothing
    /// holding it and no process tracked, with no hold taken between them.
    /// True when it detached it now. An error asking the kernel leaves it
    /// attached.
    ///
    /// One idle look is not enough: a kernel program that read a rule key
    /// just before the rule went, or a parent's entry just before it was
    /// deleted, may still be about to write an entry. Programs run for
    /// microseconds and the daemon calls this every second, so by the
    /// second look that entry is in the map, or never will be.
    pub fn release_if_idle(&self) -> io::Result<bool> {
        let Some(switch) = &self.switch else {
            return Ok(false);
        };
        let mut inner = self.lock();
        if inner.link.is_none() {
            return Ok(false);
        }
        if inner.holds > 0 || switch.anything_tracked()? {
            inner.idle_seen = false;
            return Ok(false);
        }
        if !inner.idle_seen {
            inner.idle_seen = true;
            return Ok(false);
        }
        self.detach(&mut inner, "no process is tracked");
        Ok(true)
    }

    /// Detaches the program for good, holds or not, once the monitor has
    /// read its last record: the host's syscalls should not pay for a
    /// program whose records no one will read while the evidence is
    /// closed. Holds taken from now on are refused.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        self.detach(&mut inner, "the monitor is stopping");
    }

    /// Whether the probes are quiet: true while detached, when they record
    /// nothing that does not wake the reader. Changes as the program is
    /// attached and detached.
    pub fn quiet(&self) -> watch::Receiver<bool> {
        self.quiet.subscribe()
    }

    pub fn status(&self) -> HookStatus {
        let inner = self.lock();
        let state = match (&self.switch, &inner.link) {
            (None, _) => HookState::Unavailable,
            (Some(_), Some(_)) => HookState::Attached,
            (Some(_), None) => HookState::Detached,
        };
        HookStatus {
            state,
            attaches: inner.attaches,
            detaches: inner.detaches,
            gated: self.gated.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Says how many files the exec gate holds the execs of, for status.
    pub fn set_gated(&self, files: usize) {
        self.gated
            .store(files as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

impl<S: Switch> std::fmt::Debug for SyscallHook<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SyscallHook").field(&self.status()).finish()
    }
}

/// Keeps the program attached while it lives.
#[must_use = "the program may be detached as soon as the hold is dropped"]
pub struct Hold<S: Switch = KernelSwitch> {
    hook: Arc<SyscallHook<S>>,
}

impl<S: Switch> Drop for Hold<S> {
    fn drop(&mut self) {
        self.hook.lock().holds -= 1;
    }
}

impl<S: Switch> std::fmt::Debug for Hold<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

#[cfg(test)]
#[path = "syscall_hook_tests.rs"]
mod tests;
