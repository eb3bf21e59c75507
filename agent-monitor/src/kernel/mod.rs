//! Everything that touches the kernel: checks, loading, attaching, maps.
//! The stages after the ring-buffer reader never see any of it.

pub mod btf;
pub mod counters;
pub mod event_ring;
pub mod exec_gate;
pub mod layout;
pub mod mapping;
pub mod preflight;
pub mod programs;
pub mod ring;
pub mod rules;
pub mod sys_bpf;
pub mod syscall_hook;
pub mod tracefs;
pub mod tracker;

use std::{os::fd::AsFd, path::Path, sync::Arc};

use agent_monitor_common::maps::{
    COUNTERS, EVENTS, KERNEL_LAYOUT, RULES_COMM, RULES_EXE, RULES_UID, TRACKED, TRACKED_BITS,
    TRACKED_WORDS, TrackedProcess,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, Map, MapData, PerCpuArray},
};

use crate::{
    error::{Error, Result},
    kernel::{
        btf::Btf,
        counters::Counters,
        event_ring::EventRing,
        programs::Unattached,
        ring::RingReader,
        syscall_hook::{KernelSwitch, SyscallHook},
        tracker::{TrackedBits, Tracker},
    },
};

/// The kernel programs, built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-monitor"));

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Ring-buffer size in bytes (a power of two, a multiple of the page
    /// size); the object's default when `None`.
    pub ring_bytes: Option<u32>,
    /// Have the kernel count each program's runs and run time while the
    /// monitor lives (BPF_ENABLE_STATS; off again when it exits).
    pub probe_stats: bool,
}

/// What one kernel program cost, from the kernel's own run-time counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeCost {
    pub program: String,
    pub runs: u64,
    pub total_ns: u64,
}

/// Loaded and attached programs with the maps userspace works with. The
/// programs stay attached for as long as this lives.
pub struct Monitor {
    pub ebpf: Ebpf,
    pub reader: RingReader,
    pub tracker: Tracker,
    /// The discovery rules' keys, empty until a daemon fills them.
    pub rules: rules::RuleMaps,
    /// Optional programs that could not be attached.
    pub unattached: Vec<Unattached>,
    /// The syscall probes' attachment, shared with whatever starts
    /// tracking a process. Attached at load; only a caller that calls
    /// `release_if_idle` ever has it detached.
    pub syscall_hook: Arc<SyscallHook>,
    /// Keeps the kernel's run-time statistics on while it is open.
    pub stats: Option<std::os::fd::OwnedFd>,
}

impl Monitor {
    pub fn load(options: &LoadOptions) -> Result<Monitor> {
        preflight::check_privileges()?;
        preflight::check_btf()?;
        if OBJECT.is_empty() {
            return Err(Error::NoPrograms);
        }
        tracefs::ensure_mounted().map_err(Error::Tracefs)?;
        let stats = if options.probe_stats {
            Some(
                aya::sys::enable_stats(aya::sys::Stats::RunTime)
                    .map_err(|e| Error::io("enabling BPF run-time statistics", e.io_error))?,
            )
        } else {
            None
        };

        let btf = Btf::from_file(Path::new(preflight::VMLINUX_BTF))?;
        let layout = layout::resolve(&btf).map_err(|e| Error::Map {
            map: KERNEL_LAYOUT,
            detail: e.to_string(),
        })?;

        let mut loader = EbpfLoader::new();
        loader.override_global(KERNEL_LAYOUT, &layout, true);
        if let Some(bytes) = options.ring_bytes {
            loader.map_max_entries(EVENTS, bytes);
        }
        let mut ebpf = loader.load(OBJECT).map_err(|e| Error::Load(Box::new(e)))?;
        let attached = programs::attach_all(&mut ebpf)?;
        let mut unattached = attached.unattached;

        let ring = match take_map(&mut ebpf, EVENTS)? {
            Map::RingBuf(data) => {
                let size = data.info().map_err(map_error(EVENTS))?.max_entries();
                EventRing::new(data, size as usize).map_err(|e| Error::Map {
                    map: EVENTS,
                    detail: format!("mapping it into memory: {e}"),
                })?
            }
            _ => {
                return Err(Error::Map {
                    map: EVENTS,
                    detail: "not a ring buffer".into(),
                });
            }
        };
        let counters = PerCpuArray::<MapData, u64>::try_from(take_map(&mut ebpf, COUNTERS)?)
            .map_err(map_error(COUNTERS))?;
        let tracked: HashMap<MapData, u32, TrackedProcess> =
            HashMap::try_from(take_map(&mut ebpf, TRACKED)?).map_err(map_error(TRACKED))?;
        let syscall_hook = match attached.while_tracking {
            Some(loaded) => {
                let switch = KernelSwitch {
                    tracepoint: loaded.tracepoint,
                    program: loaded.fd,
                    tracked: aya::maps::IterableMap::map(&tracked)
                        .fd()
                        .as_fd()
                        .try_clone_to_owned()
                        .map_err(|e| Error::io(format!("duplicating the fd of {TRACKED}"), e))?,
                };
                SyscallHook::attached(switch).unwrap_or_else(|e| {
                    unattached.push(Unattached {
                        program: loaded.program,
                        reason: format!("cannot attach it to {:?}: {e}", loaded.tracepoint),
                    });
                    SyscallHook::unavailable()
                })
            }
            None => SyscallHook::unavailable(),
        };
        let bits = take_map(&mut ebpf, TRACKED_BITS)?;
        let bits = match &bits {
            Map::Array(data) => TrackedBits::map(data.fd().as_fd(), TRACKED_WORDS as usize)
                .map_err(|e| Error::Map {
                    map: TRACKED_BITS,
                    detail: format!("mapping it into memory: {e}"),
                })?,
            _ => {
                return Err(Error::Map {
                    map: TRACKED_BITS,
                    detail: "not an array".into(),
                });
            }
        };
        let rules = rules::RuleMaps {
            exe: HashMap::try_from(take_map(&mut ebpf, RULES_EXE)?)
                .map_err(map_error(RULES_EXE))?,
            comm: HashMap::try_from(take_map(&mut ebpf, RULES_COMM)?)
                .map_err(map_error(RULES_COMM))?,
            uid: HashMap::try_from(take_map(&mut ebpf, RULES_UID)?)
                .map_err(map_error(RULES_UID))?,
            hook: syscall_hook.clone(),
            probes: None,
            gate: rules::GateState::NotStarted,
        };
        // The kernel's BTF, parsed to load the programs, is freed by now.
        crate::memory::release_freed();
        Ok(Monitor {
            ebpf,
            reader: RingReader::new(ring, Counters::new(counters), syscall_hook.quiet())?,
            tracker: Tracker::new(tracked, bits, syscall_hook.clone()),
            rules,
            unattached,
            syscall_hook,
            stats,
        })
    }
}

/// Each loaded program's runs and run time so far. Tail-called programs
/// count no runs of their own: their time is in their caller's.
pub fn probe_costs(ebpf: &Ebpf) -> Vec<ProbeCost> {
    ebpf.programs()
        .filter_map(|(name, program)| {
            let info = program.info().ok()?;
            Some(ProbeCost {
                program: name.to_string(),
                runs: info.run_count(),
                total_ns: info.run_time().as_nanos() as u64,
            })
        })
        .collect()
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<Map> {
    ebpf.take_map(name).ok_or(Error::Map {
        map: name,
        detail: "not in the object".into(),
    })
}

fn map_error(map: &'static str) -> impl Fn(aya::maps::MapError) -> Error {
    move |e| Error::Map {
        map,
        detail: e.to_string(),
    }
}
