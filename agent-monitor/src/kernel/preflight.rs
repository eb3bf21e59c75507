//! Checks made before loading anything, so that a missing privilege or
//! kernel feature is reported in one clear line instead of a load error.

use std::{fs, path::Path};

use crate::error::{Error, Result};

pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fails unless the process may load tracing programs: CAP_BPF with
/// CAP_PERFMON, or CAP_SYS_ADMIN (which implies both on older kernels).
pub fn check_privileges() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io("reading /proc/self/status", e))?;
    let effective = effective_capabilities(&status).unwrap_or(0);
    match missing_capabilities(effective) {
        None => Ok(()),
        Some(missing) => Err(Error::Privileges { missing }),
    }
}

pub fn check_btf() -> Result<()> {
    let path = Path::new(VMLINUX_BTF);
    if path.exists() {
        Ok(())
    } else {
        Err(Error::NoBtf { path: path.into() })
    }
}

/// The `CapEff` mask from the text of /proc/<pid>/status.
fn effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

fn missing_capabilities(effective: u64) -> Option<String> {
    let has = |cap: u32| effective & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| name)
        .collect();
    Some(missing.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_mask() {
        let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_capabilities("Name: x\n"), None);
    }

    #[test]
    fn names_the_missing_capabilities() {
        assert_eq!(missing_capabilities(1 << CAP_SYS_ADMIN), None);
        assert_eq!(
            missing_capabilities((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
        assert_eq!(
            missing_capabilities(1 << CAP_BPF).as_deref(),
            Some("CAP_PERFMON")
        );
        assert_eq!(
            missing_capabilities(0).as_deref(),
            Some("CAP_BPF, CAP_PERFMON")
        );
    }
}
