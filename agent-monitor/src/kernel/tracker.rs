//! The tracked-process map from userspace: letting a child put itself in
//! an agent's tree before it execs, adopting processes already running,
//! and seeing who is still tracked.
//!
//! A child that puts itself in the map gets its bit in the kernel's
//! pre-filter bitmap at its first exec (`probes/process.rs`). A process
//! adopted while it runs gets its bit from here, through the bitmap's
//! memory mapping, with the same atomic operations the kernel uses.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
};

use agent_monitor_common::maps::TrackedProcess;
use aya::maps::{HashMap, IterableMap, MapData};

use crate::kernel::{
    mapping::Mapping,
    sys_bpf::{BPF_MAP_DELETE_ELEM, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, MapElemAttr, bpf},
    syscall_hook::{Hold, SyscallHook},
};

pub struct Tracker {
    map: HashMap<MapData, u32, TrackedProcess>,
    bits: std::sync::Arc<TrackedBits>,
    hook: std::sync::Arc<SyscallHook>,
}

impl Tracker {
    pub fn new(
        map: HashMap<MapData, u32, TrackedProcess>,
        bits: TrackedBits,
        hook: std::sync::Arc<SyscallHook>,
    ) -> Tracker {
        Tracker {
            map,
            bits: std::sync::Arc::new(bits),
            hook,
        }
    }

    /// Keeps the syscall probes attached, for a caller about to start a
    /// child that tracks itself ([`Tracker::self_registration`]).
    pub fn hold_syscall_probes(&self) -> io::Result<Hold> {
        self.hook.hold()
    }

    /// Tracked thread-group ids, as the kernel holds them now.
    pub fn tracked_pids(&self) -> Vec<u32> {
        self.map.keys().filter_map(|k| k.ok()).collect()
    }

    /// A handle a freshly forked child can use to track itself.
    pub fn self_registration(&self, agent: u32) -> SelfRegistration {
        SelfRegistration {
            map_fd: self.map.map().fd().as_fd().as_raw_fd(),
            entry: TrackedProcess {
                agent,
                ..Default::default()
            },
        }
    }
}

impl Tracker {
    /// A handle on the map for the declaration server, which runs on other
    /// tasks: it looks peers up and sets their tool-call slot.
    pub fn slots(&self) -> io::Result<Slots> {
        Ok(Slots {
            map: std::sync::Arc::new(self.map.map().fd().as_fd().try_clone_to_owned()?),
            bits: self.bits.clone(),
            hook: self.hook.clone(),
        })
    }
}

/// The tracked-process map through its own file descriptor: lookups and
/// slot updates by raw `bpf()` calls, safe from any thread.
#[derive(Clone, Debug)]
pub struct Slots {
    map: std::sync::Arc<std::os::fd::OwnedFd>,
    bits: std::sync::Arc<TrackedBits>,
    hook: std::sync::Arc<SyscallHook>,
}

/// Create only an entry that does not exist: a process the kernel already
/// tracks keeps its agent.
const BPF_NOEXIST: u64 = 1;
/// Update only an entry that exists: a process that exited meanwhile is
/// not put back.
const BPF_EXIST: u64 = 2;

impl Slots {
    /// One map command on `pid`'s entry; `value` is read or written by the
    /// kernel as the command says (0: none).
    fn command(&self, cmd: libc::c_long, pid: u32, value: u64, flags: u64) -> io::Result<()> {
        let attr = MapElemAttr {
            map_fd: self.map.as_raw_fd() as u32,
            _pad: 0,
            key: &pid as *const u32 as u64,
            value,
            flags,
        };
        // SAFETY: the key is live, and `value` is 0 or points at a live
        // value of the map's size, as every caller passes it.
        unsafe { bpf(cmd, &attr) }.map(drop)
    }

    /// Writes `pid`'s entry under `flags` (`BPF_EXIST`, `BPF_NOEXIST`).
    fn write(&self, pid: u32, entry: &TrackedProcess, flags: u64) -> io::Result<()> {
        let value = entry as *const TrackedProcess as u64;
        self.command(BPF_MAP_UPDATE_ELEM, pid, value, flags)
    }

    /// The process's entry, when it is tracked.
    pub fn lookup(&self, pid: u32) -> Option<TrackedProcess> {
        let mut value = TrackedProcess::default();
        let out = &mut value as *mut TrackedProcess as u64;
        self.command(BPF_MAP_LOOKUP_ELEM, pid, out, 0)
            .ok()
            .map(|()| value)
    }

    /// Sets the tool-call slot of a tracked process: its threads' events,
    /// and the children it forks from now on, carry `slot`. With a
    /// `start_ns` (non-zero), only if the entry is that process: a pid
    /// reused since is another process, left alone (NotFound).
    pub fn set_tool_call(&self, pid: u32, slot: u64, start_ns: u64) -> io::Result<()> {
        let mut entry = self
            .lookup(pid)
            .filter(|e| start_ns == 0 || e.start_ns == 0 || e.start_ns == start_ns)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        // The kernel only adds `start_ns` to an entry, and keeps a cache
        // of the parent. The copy could hold that cache torn (the kernel
        // refreshing it while it was read), so it goes back emptied, for
        // the kernel to fill again; nothing else can be lost.
        entry.tool_call = slot;
        entry.parent_task = 0;
        entry.ppid = 0;
        self.write(pid, &entry, BPF_EXIST)
    }
}

impl Slots {
    /// Tracks a running process as `agent`'s, with its pre-filter bit set.
    /// False when it is tracked already (it keeps the agent it has);
    /// NotFound when it has exited.
    pub fn adopt(&self, pid: u32, agent: u32) -> io::Result<bool> {
        // Until the entry is in, the map may be empty: the hold keeps the
        // probes from being detached meanwhile. After, the entry does. An
        // error attaching is no NotFound, which would say the process left.
        let _probes = self
            .hook
            .hold()
            .map_err(|e| io::Error::other(format!("attaching the syscall probes: {e}")))?;
        let entry = TrackedProcess {
            agent,
            ..TrackedProcess::default()
        };
        // The bit goes in first: a process that exits right after the
        // write has it cleared by the kernel, with its entry, and never
        // keeps a bit without one.
        self.bits.set(pid);
        match self.write(pid, &entry, BPF_NOEXIST) {
            Ok(()) => {
                // The kernel forgets a process when its last thread exits.
                // One that exited before its entry was written would keep
                // it for good: the syscall probes attached, and its pid,
                // once reused, tracked as the agent's.
                if group_exited(pid) {
                    self.forget(pid)?;
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("pid {pid} exited before it was tracked"),
                    ));
                }
                Ok(true)
            }
            // Tracked already: the bit was set.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => {
                self.bits.clear(pid);
                Err(e)
            }
        }
    }

    /// Stops tracking a process. Whoever deletes the entry clears the bit:
    /// here, or the kernel at exit, never both.
    pub fn forget(&self, pid: u32) -> io::Result<()> {
        match self.command(BPF_MAP_DELETE_ELEM, pid, 0, 0) {
            Ok(()) => {
                self.bits.clear(pid);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Gives a tracked process another agent; the children it forks from
    /// now on inherit it.
    pub fn set_agent(&self, pid: u32, agent: u32) -> io::Result<()> {
        let mut entry = self
            .lookup(pid)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        entry.agent = agent;
        self.write(pid, &entry, BPF_EXIST)
    }
}

/// `PF_EXITING`: set on a thread as it enters `do_exit`, before the
/// kernel's exit probe runs for the last thread of its process.
const PF_EXITING: u64 = 0x4;

/// Whether every thread of process `pid` has begun to exit, so that the
/// kernel's exit probe may have run for it already: it is gone, or each
/// thread in `/proc/PID/task` is flagged exiting (a zombie is too). Any
/// other error reading /proc counts as alive: forgetting a live process
/// would lose its actions, keeping a dead one costs an entry.
pub fn group_exited(pid: u32) -> bool {
    let gone = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH));
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => tasks,
        Err(e) => return gone(&e),
    };
    for task in tasks {
        let Ok(task) = task else {
            return false;
        };
        match std::fs::read_to_string(task.path().join("stat")) {
            Ok(stat) if exiting_by_stat(&stat) => {}
            Ok(_) => return false,
            // Reaped since the directory was listed.
            Err(e) if gone(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// From a thread's `stat`: whether its flags (field 9) say `PF_EXITING`.
fn exiting_by_stat(stat: &str) -> bool {
    // The command, in parentheses, may hold anything: fields are counted
    // from the last `)`, field 3 (state) first, so field 9 is the 7th.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return false;
    };
    fields
        .split_whitespace()
        .nth(6)
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

/// The kernel's pre-filter bitmap, mapped into this process.
#[derive(Debug)]
pub struct TrackedBits {
    words: Mapping,
}

impl TrackedBits {
    /// Maps the bitmap through the map's file descriptor.
    pub fn map(fd: std::os::fd::BorrowedFd<'_>, words: usize) -> io::Result<TrackedBits> {
        Ok(TrackedBits {
            words: Mapping::shared(fd, words * 8, 0, true)?,
        })
    }

    fn word(&self, pid: u32) -> Option<&std::sync::atomic::AtomicU64> {
        let index = (pid / 64) as usize;
        // SAFETY: in bounds, aligned (page-aligned mapping), and the kernel
        // too changes these words only atomically.
        (index < self.words.bytes() / 8).then(|| unsafe {
            std::sync::atomic::AtomicU64::from_ptr(
                self.words.start().cast::<u64>().as_ptr().add(index),
            )
        })
    }

    pub fn set(&self, pid: u32) {
        if let Some(word) = self.word(pid) {
            word.fetch_or(1 << (pid % 64), std::sync::atomic::Ordering::SeqCst);
        }
    }

    pub fn clear(&self, pid: u32) {
        if let Some(word) = self.word(pid) {
            word.fetch_and(!(1 << (pid % 64)), std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// What a child needs, between fork and exec, to put itself in the map.
/// Copyable and allocation-free, because it runs in a `pre_exec` hook.
#[derive(Clone, Copy)]
pub struct SelfRegistration {
    map_fd: RawFd,
    entry: TrackedProcess,
}

impl SelfRegistration {
    /// Tracks the calling process. Async-signal-safe: one raw syscall, no
    /// allocation, so it may run in a forked child before exec. Because the
    /// child is in the map before it execs, its exec and everything after
    /// are seen: there is no window to race.
    pub fn track_current_process(&self) -> io::Result<()> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        let attr = MapElemAttr {
            map_fd: self.map_fd as u32,
            _pad: 0,
            key: &pid as *const u32 as u64,
            value: &self.entry as *const TrackedProcess as u64,
            flags: 0,
        };
        // SAFETY: `attr` points at live key and value of the map's sizes.
        unsafe { bpf(BPF_MAP_UPDATE_ELEM, &attr) }.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_flagged_exiting_has_begun_to_exit() {
        let stat = |flags: u64| {
            format!("4242 (a) b) R 1 4242 4242 0 -1 {flags} 100 0 0 0 1 2 0 0 20 0 1 0 900 0 0")
        };
        assert!(exiting_by_stat(&stat(0x40_0004)));
        assert!(!exiting_by_stat(&stat(0x40_0000)));
        assert!(
            !exiting_by_stat(&stat(0x40_0040)),
            "PF_FORKNOEXEC is not exiting"
        );
        assert!(!exiting_by_stat("garbage"));
    }

    #[test]
    fn a_live_process_has_not_exited_and_a_zombie_or_reaped_one_has() {
        // This test process has other threads, all alive.
        assert!(!group_exited(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Unreaped, it stays a zombie until waited for.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !group_exited(pid) {
            assert!(std::time::Instant::now() < deadline, "never a zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert!(group_exited(pid));
    }
}
