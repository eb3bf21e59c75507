//! The monitor's own machinery in an agent's tree: a hook or a proxy of
//! the monitor's runs as a process of the agent, and reads a few files to
//! do its job (the hook walks /proc to find its agent, the HTTP proxy
//! finds which process holds a socket). Those reads are `monitor.cli`,
//! not the agent's.
//!
//! The process must really run the monitor's executable: its executable's
//! SHA-256, taken from /proc/PID/exe at its exec (not from a path the
//! agent could swap), must be the monitor's own. And only the reads the
//! machinery needs are covered, none of them a file the sensitive rules
//! name.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, OnceLock},
};

use super::Correlator;
use crate::{policy::EffectKind, process_table::ProcessInfo};

/// The rule name of the machinery's reads.
pub(super) static MONITOR_CLI: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("monitor.cli"));

/// The monitor's executable, to recognise processes that run it.
#[derive(Debug)]
pub struct MonitorExe {
    path: PathBuf,
    /// Its file name: a process whose executable has another name is not
    /// hashed against it at all.
    name: Option<String>,
    /// Its SHA-256, computed the first time a process of that name is
    /// judged: hashing the binary costs a read of it, which most runs
    /// never need.
    sha256: OnceLock<Option<String>>,
}

impl MonitorExe {
    /// The running executable.
    pub fn current() -> Option<MonitorExe> {
        std::env::current_exe().ok().map(|path| MonitorExe {
            name: file_name(&path),
            path,
            sha256: OnceLock::new(),
        })
    }

    /// An executable at `path` whose SHA-256 is `sha256` (tests).
    pub fn known(path: impl Into<PathBuf>, sha256: &str) -> MonitorExe {
        let path = path.into();
        MonitorExe {
            name: file_name(&path),
            path,
            sha256: OnceLock::from(Some(sha256.to_string())),
        }
    }

    /// Whether `process` runs this executable. Every event with effects
    /// asks, so the name is compared first, as a string.
    fn runs_in(&self, process: &ProcessInfo) -> bool {
        let named_alike = match (process.exe.as_deref(), self.name.as_deref()) {
            (Some(exe), Some(name)) => exe.rsplit('/').next() == Some(name),
            _ => false,
        };
        let Some(theirs) = process
            .identity
            .exe_sha256
            .as_deref()
            .filter(|_| named_alike)
        else {
            return false;
        };
        let ours = self
            .sha256
            .get_or_init(|| crate::identity::ExeHasher::new().hash_path(&self.path));
        ours.as_deref() == Some(theirs)
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// The reads the machinery makes: /proc's directory, a process's `stat`
/// (the hook's walk to its agent) and `fd` directory, and the kernel's
/// TCP tables (the proxy finding a socket's owner).
fn machinery_read(path: &str) -> bool {
    if matches!(path, "/proc" | "/proc/net/tcp" | "/proc/net/tcp6") {
        return true;
    }
    path.strip_prefix("/proc/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(pid, what)| {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && matches!(what, "stat" | "fd")
        })
}

impl Correlator {
    pub fn with_monitor_exe(mut self, exe: Option<MonitorExe>) -> Correlator {
        self.monitor_exe = exe;
        self
    }

    /// Whether every effect of an event is a read the monitor's machinery
    /// makes, by a process that runs the monitor's executable.
    pub(super) fn machinery(
        &self,
        process: &ProcessInfo,
        effects: &super::effects::List<'_>,
    ) -> bool {
        self.monitor_exe
            .as_ref()
            .is_some_and(|m| m.runs_in(process))
            && effects
                .iter()
                .all(|e| e.kind == EffectKind::FileRead && machinery_read(&e.resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_reads_the_machinery_needs() {
        for path in ["/proc", "/proc/42/stat", "/proc/42/fd", "/proc/net/tcp6"] {
            assert!(machinery_read(path), "{path}");
        }
        for path in [
            "/proc/42/mem",
            "/proc/42/environ",
            "/proc/self/stat",
            "/proc//stat",
            "/proc/42/fd/3",
            "/etc/agent-monitor/config.toml",
            "/proc/kcore",
        ] {
            assert!(!machinery_read(path), "{path}");
        }
    }
}
