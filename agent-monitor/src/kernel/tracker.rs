//! The tracked-process map from userspace: letting a child put itself in
//! an agent's tree before it execs, and seeing who is still tracked.
//!
//! A process put in the map from userspace gets its bit in the kernel's
//! pre-filter bitmap at its first exec (`probes/process.rs`). Tracking a
//! process that is already running (adoption) will also need that bit set
//! from here; there is deliberately no such call until it does.

use std::{
    io,
    os::fd::{AsFd, AsRawFd, RawFd},
};

use agent_monitor_common::maps::TrackedProcess;
use aya::maps::{HashMap, IterableMap, MapData};

pub struct Tracker {
    map: HashMap<MapData, u32, TrackedProcess>,
}

impl Tracker {
    pub fn new(map: HashMap<MapData, u32, TrackedProcess>) -> Tracker {
        Tracker { map }
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

/// What a child needs, between fork and exec, to put itself in the map.
/// Copyable and allocation-free, because it runs in a `pre_exec` hook.
#[derive(Clone, Copy)]
pub struct SelfRegistration {
    map_fd: RawFd,
    entry: TrackedProcess,
}

/// `union bpf_attr` as BPF_MAP_UPDATE_ELEM reads it.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;

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
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &attr as *const MapElemAttr,
                std::mem::size_of::<MapElemAttr>() as u32,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}
