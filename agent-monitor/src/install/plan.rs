//! The install plan: the config to install, checked, and its file operations.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use super::{
    BINARY_MODE, BINARY_PATH, CONFIG_MODE, InstallError, PRIVATE_DIR_MODE, RUN_DIR_MODE, UNIT_MODE,
    UNIT_PATH, WritableDirs, io_error, on_disk, render_unit,
};
use crate::config::{self, Config, ConfigError};

/// What `install` is asked to do.
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// The root of the system installed to: `/` for this host.
    pub prefix: PathBuf,
    /// The binary to install (the running one).
    pub binary: PathBuf,
    /// A config to check and install in place of the installed one.
    pub config: Option<PathBuf>,
}

/// Which config the installation follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// `--config FILE`, installed over the one there.
    Given(PathBuf),
    /// The one already installed, kept.
    Installed(PathBuf),
    /// None was installed: the defaults are.
    Defaults,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigOrigin::Given(path) => write!(f, "{} (given)", path.display()),
            ConfigOrigin::Installed(path) => write!(f, "{} (installed, kept)", path.display()),
            ConfigOrigin::Defaults => f.write_str("the defaults (`agent-monitor config default`)"),
        }
    }
}

/// What a file or directory is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Binary,
    Config,
    Unit,
    Evidence,
    CaptureKeyDir,
    RunDir,
    AlertsDir,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Binary => "the binary",
            Role::Config => "the config",
            Role::Unit => "the systemd unit",
            Role::Evidence => "the evidence",
            Role::CaptureKeyDir => "the capture key's directory",
            Role::RunDir => "the socket's directory",
            Role::AlertsDir => "the alerts file's directory",
        })
    }
}

/// What to do with a file that is already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (atomically).
    Replace,
    /// Leave it as it is: never overwrite a user's config.
    Keep,
    /// Replace it, saving it first as `NAME.old`.
    KeepAsOld,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Make a directory, and its missing parents (0755). One that exists is
    /// left as it is: its mode is the owner's choice, and the path may be a
    /// shared one.
    Dir,
    File {
        contents: Vec<u8>,
        existing: Existing,
    },
}

/// One file operation; `path` is on the installed system, under no prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub role: Role,
    pub path: PathBuf,
    pub mode: u32,
    pub action: Action,
}

/// Everything `install` will do, decided before anything is written.
#[derive(Clone, Debug)]
pub struct Plan {
    pub prefix: PathBuf,
    pub config: Config,
    pub origin: ConfigOrigin,
    /// The socket's group, resolved.
    pub gid: Option<u32>,
    pub dirs: WritableDirs,
    pub ops: Vec<Op>,
}

/// Reads the config to install (given, installed, or the defaults),
/// checks it, and lists the file operations.
pub fn plan(options: &InstallOptions) -> Result<Plan, InstallError> {
    let prefix = &options.prefix;
    let config_path = PathBuf::from(config::DEFAULT_PATH);
    let installed = on_disk(prefix, &config_path);
    // Read once: what is checked is what is written.
    let read = |path: &Path| -> Result<(Config, Vec<u8>), ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text, &path.display().to_string())?;
        Ok((config, text.into_bytes()))
    };
    let (config, origin, contents, existing) = match &options.config {
        Some(given) => {
            let (config, text) = read(given).map_err(InstallError::Config)?;
            let origin = ConfigOrigin::Given(given.clone());
            (config, origin, text, Existing::KeepAsOld)
        }
        None if fs::symlink_metadata(&installed).is_ok() => {
            let (config, text) =
                read(&installed).map_err(|error| InstallError::InstalledConfig {
                    path: installed.clone(),
                    error,
                })?;
            let origin = ConfigOrigin::Installed(installed);
            (config, origin, text, Existing::Keep)
        }
        None => {
            let origin = ConfigOrigin::Defaults;
            let contents = config::DEFAULT.as_bytes().to_vec();
            (Config::defaults(), origin, contents, Existing::Keep)
        }
    };
    let gid = config
        .api
        .group
        .as_ref()
        .map(config::Group::resolve)
        .transpose()
        .map_err(InstallError::Group)?;
    let dirs = WritableDirs::of(&config)?;
    check_runtime_directory(prefix, &dirs, &config)?;
    let unit = render_unit(&dirs)?;
    let binary = fs::read(&options.binary).map_err(io_error("read", &options.binary))?;

    let mut dir_ops: Vec<Op> = Vec::new();
    let dir_roles = [
        (
            Role::CaptureKeyDir,
            Some(&dirs.capture_key),
            PRIVATE_DIR_MODE,
        ),
        (Role::Evidence, Some(&dirs.evidence), PRIVATE_DIR_MODE),
        (Role::AlertsDir, dirs.alerts.as_ref(), PRIVATE_DIR_MODE),
        (Role::RunDir, Some(&dirs.run), RUN_DIR_MODE),
    ];
    for (role, path, mode) in dir_roles {
        if let Some(path) = path
            && !dir_ops.iter().any(|op| &op.path == path)
        {
            dir_ops.push(Op {
                role,
                path: path.clone(),
                mode,
                action: Action::Dir,
            });
        }
    }
    // Outer directories first, so one inside another is made with its own
    // mode and the outer one is not made as its parent (0755).
    dir_ops.sort_by_key(|op| op.path.components().count());

    let file = |role, path: &str, mode, contents, existing| Op {
        role,
        path: PathBuf::from(path),
        mode,
        action: Action::File { contents, existing },
    };
    let mut ops = vec![
        file(
            Role::Binary,
            BINARY_PATH,
            BINARY_MODE,
            binary,
            Existing::Replace,
        ),
        file(
            Role::Config,
            config::DEFAULT_PATH,
            CONFIG_MODE,
            contents,
            existing,
        ),
    ];
    ops.extend(dir_ops);
    ops.push(file(
        Role::Unit,
        UNIT_PATH,
        UNIT_MODE,
        unit.into_bytes(),
        Existing::Replace,
    ));
    Ok(Plan {
        prefix: prefix.clone(),
        config,
        origin,
        gid,
        dirs,
        ops,
    })
}

/// systemd removes a `RuntimeDirectory=` when the daemon stops: refuse one
/// that already holds anything but the socket, so a shared directory of
/// /run is never named.
fn check_runtime_directory(
    prefix: &Path,
    dirs: &WritableDirs,
    config: &Config,
) -> Result<(), InstallError> {
    if dirs.runtime_directory().is_none() {
        return Ok(());
    }
    let Ok(entries) = fs::read_dir(on_disk(prefix, &dirs.run)) else {
        return Ok(());
    };
    let socket = config.api.socket.file_name();
    for entry in entries.flatten() {
        if Some(entry.file_name().as_os_str()) != socket {
            return Err(InstallError::Path {
                key: "api.socket's directory",
                path: dirs.run.clone(),
                reason: format!(
                    "already holds {:?}, and systemd removes the socket's directory when the daemon stops (RuntimeDirectory=); give api.socket a directory of its own",
                    entry.file_name()
                ),
            });
        }
    }
    Ok(())
}
