//! The discovery rules' exact keys in the kernel's rule maps: what
//! `probes/process.rs` tests at every exec of an untracked process.

use std::sync::Arc;

use agent_monitor_common::maps::{RULE_EXE_LEN, RULE_KEYS_MAX};
use aya::maps::{HashMap, MapData};

use crate::{
    config::KernelKeys,
    kernel::{
        exec_gate::ExecGate,
        syscall_hook::{Hold, HookState, SyscallHook},
    },
};

pub struct RuleMaps {
    pub(super) exe: HashMap<MapData, [u8; RULE_EXE_LEN], u32>,
    pub(super) comm: HashMap<MapData, [u8; 16], u32>,
    pub(super) uid: HashMap<MapData, u32, u32>,
    pub(super) hook: Arc<SyscallHook>,
    /// Held while any key is loaded and the exec gate does not hold the
    /// execs that can start an agent: the kernel may then track a process
    /// at any exec, before userspace hears of it.
    pub(super) probes: Option<Hold>,
    pub(super) gate: GateState,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleMapError {
    #[error("{what} {value:?} does not fit the kernel's key of {limit} bytes")]
    TooLong {
        what: &'static str,
        value: String,
        limit: usize,
    },
    #[error("more than {RULE_KEYS_MAX} {0} keys")]
    TooMany(&'static str),
    #[error("updating the kernel's rule map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("attaching the syscall probes the rules need: {0}")]
    Probes(#[source] std::io::Error),
}

impl RuleMaps {
    /// Makes the maps hold exactly `keys`. New keys go in before stale ones
    /// go out, so a key kept across a reload is never missing meanwhile.
    pub fn apply(&mut self, keys: &KernelKeys) -> Result<(), RuleMapError> {
        let exes = keys
            .exes
            .iter()
            .map(|e| padded::<RULE_EXE_LEN>("exe", e))
            .collect::<Result<Vec<_>, _>>()?;
        let comms = keys
            .comms
            .iter()
            .map(|c| padded::<16>("comm", c))
            .collect::<Result<Vec<_>, _>>()?;
        for (what, count) in [
            ("exe", exes.len()),
            ("comm", comms.len()),
            ("uid", keys.uids.len()),
        ] {
            if count > RULE_KEYS_MAX as usize {
                return Err(RuleMapError::TooMany(what));
            }
        }
        let any = !(exes.is_empty() && comms.is_empty() && keys.uids.is_empty());
        if any {
            // Attached while the keys and marks change, and left attached
            // if a step fails: a change half made then costs the host its
            // slow path, never an agent its first syscalls.
            self.probes = Some(self.hook.hold().map_err(RuleMapError::Probes)?);
        }
        sync(&mut self.exe, &exes)?;
        sync(&mut self.comm, &comms)?;
        sync(&mut self.uid, &keys.uids)?;
        let gated = any && keys.gated_by_exe && self.gate(&keys.exes);
        if gated {
            if let GateState::Running(gate) = &self.gate {
                tracing::info!(
                    programs = keys.exes.len(),
                    marked = gate.marked(),
                    "exec gate: the syscall probes attach when a rule's program is exec'd"
                );
            }
            self.probes = None;
            return Ok(());
        }
        if let GateState::Running(gate) = &self.gate {
            // Unmarking only: nothing to fail but a file gone already.
            let _ = gate.watch(&[]);
        }
        if !any {
            // No exec can be tracked by a rule now.
            self.probes = None;
        } else if self.hook.status().state != HookState::Unavailable {
            tracing::info!(
                "a loaded rule has no exe, or has container_id, or the exec gate cannot hold \
                 its program: the syscall probes stay attached while the rules are loaded"
            );
        }
        Ok(())
    }

    /// Has the exec gate hold the execs of `exes`, starting it if need
    /// be; false when it cannot, and the rules must hold the probes.
    fn gate(&mut self, exes: &[String]) -> bool {
        if self.hook.status().state == HookState::Unavailable {
            // Nothing to attach: the gate would hold execs for nothing.
            return false;
        }
        if matches!(self.gate, GateState::NotStarted) {
            self.gate = match ExecGate::start(self.hook.clone()) {
                Ok(gate) => GateState::Running(gate),
                Err(err) => {
                    tracing::warn!(
                        "the exec gate is unavailable ({err}): while a discovery rule is \
                         loaded, the syscall probes stay attached"
                    );
                    GateState::Unavailable
                }
            };
        }
        let GateState::Running(gate) = &self.gate else {
            return false;
        };
        match gate.watch(exes) {
            Ok(absent) => {
                for path in absent {
                    tracing::warn!(
                        path = %path.display(),
                        "exec gate: this rule's path names no file (yet); its execs are held \
                         once it does, and until then an exec of it is reported as unwatched \
                         (under systemd's PrivateTmp=, /tmp and /var/tmp are the daemon's own)"
                    );
                }
                true
            }
            Err(err) => {
                tracing::warn!("exec gate: {err}");
                false
            }
        }
    }
}

/// The exec gate, started with the first rules it can gate.
pub enum GateState {
    NotStarted,
    Running(ExecGate),
    /// It could not start (said then); the rules hold the probes.
    Unavailable,
}

fn sync<K: aya::Pod + PartialEq>(
    map: &mut HashMap<MapData, K, u32>,
    keys: &[K],
) -> Result<(), aya::maps::MapError> {
    for key in keys {
        map.insert(key, 1, 0)?;
    }
    let stale: Vec<K> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !keys.contains(k))
        .collect();
    for key in &stale {
        map.remove(key)?;
    }
    Ok(())
}

/// `text` NUL-padded to `N` bytes, with room for at least one NUL: the
/// kernel compares whole keys, as a C string copy leaves them.
fn padded<const N: usize>(what: &'static str, text: &str) -> Result<[u8; N], RuleMapError> {
    let bytes = text.as_bytes();
    if bytes.len() >= N {
        return Err(RuleMapError::TooLong {
            what,
            value: text.to_string(),
            limit: N - 1,
        });
    }
    let mut key = [0u8; N];
    key[..bytes.len()].copy_from_slice(bytes);
    Ok(key)
}
