//! `agent-monitor install` and `uninstall`: the daemon as a systemd service.
//!
//! Everything here works under a prefix directory (`/` for the host), so
//! the tests install into a temporary directory. [`plan`](fn@plan) reads
//! the config that is to be installed and lists the file operations;
//! [`apply`](fn@apply) carries them out, idempotently; [`render_unit`]
//! fills the packaged unit in with that config's directories;
//! [`uninstall`](fn@uninstall) removes what `install` put in place, but
//! never the evidence or the capture key. Running systemctl is left to the
//! command: [`start_commands`] says what it should run.

use std::{
    io,
    path::{Component, Path, PathBuf},
};

use crate::config::ConfigError;

mod apply;
mod plan;
mod uninstall;
mod unit;

pub use apply::{Change, Done, apply, start_commands};
pub use plan::{Action, ConfigOrigin, Existing, InstallOptions, Op, Plan, Role, plan};
pub use uninstall::{RELOAD_COMMAND, STOP_COMMAND, UninstallOptions, Uninstalled, uninstall};
pub use unit::{WritableDirs, render_unit};

/// The packaged unit, as `install` writes it for the default config.
pub const UNIT_TEMPLATE: &str = include_str!("../../../packaging/agent-monitor.service");
/// The unit's name, as systemctl takes it.
pub const UNIT_NAME: &str = "agent-monitor.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/agent-monitor.service";
/// Where the unit's `ExecStart=` finds the binary.
pub const BINARY_PATH: &str = "/usr/local/bin/agent-monitor";

const BINARY_MODE: u32 = 0o755;
const UNIT_MODE: u32 = 0o644;
/// The config may hold webhook tokens.
const CONFIG_MODE: u32 = 0o600;
/// The evidence, the capture key's directory, the alerts file's directory.
const PRIVATE_DIR_MODE: u32 = 0o700;
/// The socket's directory: the socket's own mode and group decide who may
/// connect.
const RUN_DIR_MODE: u32 = 0o755;
/// Directories made on the way to one of the above (`/usr/local/bin`).
const PARENT_DIR_MODE: u32 = 0o755;
/// Where systemd makes `RuntimeDirectory=`; `/var/run` links to it.
const RUNTIME_ROOTS: [&str; 2] = ["/run", "/var/run"];
/// Private to the unit (`PrivateTmp=yes`).
const PRIVATE_TMP: [&str; 2] = ["/tmp", "/var/tmp"];

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{0}")]
    Config(ConfigError),
    #[error(
        "the installed config {path} does not load ({error}); fix it, or pass --config FILE to install another"
    )]
    InstalledConfig { path: PathBuf, error: ConfigError },
    #[error("api.group: {0}; create the group (groupadd) or change api.group in the config")]
    Group(String),
    #[error("{key} = {path}: {reason}")]
    Path {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot {action} {path}: {error}")]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("the unit template has {count} `{key}=` lines, not one")]
    Template { key: &'static str, count: usize },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |error| InstallError::Io {
        action,
        path,
        error,
    }
}

/// Whether this process runs as root (effective uid 0).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `prefix` is the host's root, where systemctl applies.
pub fn is_host(prefix: &Path) -> bool {
    prefix.components().eq([Component::RootDir])
}

/// Where `path`, a path on the installed system, is under `prefix`.
pub fn on_disk(prefix: &Path, path: &Path) -> PathBuf {
    prefix.join(path.strip_prefix("/").unwrap_or(path))
}

#[cfg(test)]
mod tests;
