//! The discovery rules' exact keys in the kernel's rule maps: what
//! `probes/process.rs` tests at every exec of an untracked process.

use std::sync::Arc;

use agent_monitor_common::maps::{RULE_EXE_LEN, RULE_KEYS_MAX};
use aya::maps::{HashMap, MapData};

use crate::{
    config::KernelKeys,
    kernel::syscall_hook::{Hold, SyscallHook},
};

pub struct RuleMaps {
    pub(super) exe: HashMap<MapData, [u8; RULE_EXE_LEN], u32>,
    pub(super) comm: HashMap<MapData, [u8; 16], u32>,
    pub(super) uid: HashMap<MapData, u32, u32>,
    pub(super) hook: Arc<SyscallHook>,
    /// Held while any key is loaded: the kernel may then track a process
    /// at any exec, before userspace hears of it.
    pub(super) probes: Option<Hold>,
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
        if any && self.probes.is_none() {
            self.probes = Some(self.hook.hold().map_err(RuleMapError::Probes)?);
        }
        sync(&mut self.exe, &exes)?;
        sync(&mut self.comm, &comms)?;
        sync(&mut self.uid, &keys.uids)?;
        if !any {
            // Every key is out: no exec can be tracked by a rule now.
            self.probes = None;
        }
        Ok(())
    }
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
