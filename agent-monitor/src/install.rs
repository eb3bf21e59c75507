//! `agent-monitor install` and `uninstall`: the daemon as a systemd service.
//!
//! Everything here works under a prefix directory (`/` for the host), so
//! the tests install into a temporary directory. [`plan`] reads the config
//! that is to be installed and lists the file operations; [`apply`] carries
//! them out, idempotently; [`render_unit`] fills the packaged unit in with
//! that config's directories; [`uninstall`] removes what `install` put in
//! place, but never the evidence or the capture key. Running systemctl is
//! left to the command: [`start_commands`] says what it should run.

use std::{
    fmt,
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Component, Path, PathBuf},
};

use crate::config::{self, Config, ConfigError};

/// The packaged unit, as `install` writes it for the default config.
pub const UNIT_TEMPLATE: &str = include_str!("../../packaging/agent-monitor.service");
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

/// The directories the daemon writes to, from its config: the only ones
/// the unit makes writable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritableDirs {
    pub evidence: PathBuf,
    /// The capture key's directory.
    pub capture_key: PathBuf,
    /// The socket's directory.
    pub run: PathBuf,
    /// The directory of `alerts.jsonl`, when set.
    pub alerts: Option<PathBuf>,
}

impl WritableDirs {
    /// The config's directories, each checked to be one a unit can name
    /// and the daemon can share.
    pub fn of(config: &Config) -> Result<WritableDirs, InstallError> {
        let parent = |path: &Path| path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let dirs = WritableDirs {
            evidence: config.evidence.dir.clone(),
            capture_key: parent(&config.capture.key),
            run: config.run_dir().to_path_buf(),
            alerts: config.alerts.jsonl.as_deref().map(parent),
        };
        for (key, path) in dirs.keyed() {
            check_dir(key, path)?;
        }
        Ok(dirs)
    }

    /// Each directory with the config key it comes from, in the unit's
    /// order.
    fn keyed(&self) -> Vec<(&'static str, &Path)> {
        let mut keyed = vec![
            ("evidence.dir", self.evidence.as_path()),
            ("capture.key's directory", self.capture_key.as_path()),
            ("api.socket's directory", self.run.as_path()),
        ];
        if let Some(alerts) = &self.alerts {
            keyed.push(("alerts.jsonl's directory", alerts));
        }
        keyed
    }

    /// `ReadWritePaths=`: every directory once, in the unit's order.
    pub fn read_write_paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = Vec::new();
        for (_, path) in self.keyed() {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        paths
    }

    /// `RuntimeDirectory=`: the socket's directory relative to /run, when
    /// it is below it. systemd makes it at each start (/run is empty after
    /// a boot, and read-only to the daemon) and removes it at stop.
    pub fn runtime_directory(&self) -> Option<&Path> {
        RUNTIME_ROOTS.iter().find_map(|root| {
            self.run
                .strip_prefix(root)
                .ok()
                .filter(|rel| !rel.as_os_str().is_empty())
        })
    }
}

/// A directory the unit can name in `ReadWritePaths=` and the daemon can
/// write to where others see it.
fn check_dir(key: &'static str, path: &Path) -> Result<(), InstallError> {
    let refuse = |reason: &str| {
        Err(InstallError::Path {
            key,
            path: path.to_path_buf(),
            reason: reason.to_string(),
        })
    };
    let Some(text) = path.to_str() else {
        return refuse("is not UTF-8, and a unit file is text");
    };
    if text
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return refuse(
            "holds a space, a quote, a backslash or a control character, which systemd would split or unquote; choose a plainer path",
        );
    }
    if !path.is_absolute() {
        return refuse("is not an absolute path");
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return refuse("holds `..`; give the path itself");
    }
    if is_host(path) {
        return refuse("would make the whole file system writable to the daemon");
    }
    if let Some(tmp) = PRIVATE_TMP.iter().find(|tmp| path.starts_with(tmp)) {
        return refuse(&format!(
            "is under {tmp}, which the unit makes private to the daemon (PrivateTmp=yes): no one else would see it, and systemd empties it when the daemon stops"
        ));
    }
    Ok(())
}

/// A path as a unit file value: `%` starts a specifier there.
fn unit_value(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%%")
}

/// The packaged unit with `dirs` in place of the default directories.
pub fn render_unit(dirs: &WritableDirs) -> Result<String, InstallError> {
    const RUNTIME: &str = "RuntimeDirectory=";
    const READ_WRITE: &str = "ReadWritePaths=";
    let runtime = dirs.runtime_directory().map(unit_value).unwrap_or_default();
    let read_write = dirs
        .read_write_paths()
        .iter()
        // "-": a missing directory does not stop the unit from starting.
        .map(|path| format!("-{}", unit_value(path)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut counts = [0usize; 2];
    let mut unit = String::with_capacity(UNIT_TEMPLATE.len() + read_write.len());
    for line in UNIT_TEMPLATE.split_inclusive('\n') {
        if line.starts_with(RUNTIME) {
            counts[0] += 1;
            unit.push_str(&format!("{RUNTIME}{runtime}\n"));
        } else if line.starts_with(READ_WRITE) {
            counts[1] += 1;
            unit.push_str(&format!("{READ_WRITE}{read_write}\n"));
        } else {
            unit.push_str(line);
        }
    }
    for (key, count) in [
        ("RuntimeDirectory", counts[0]),
        ("ReadWritePaths", counts[1]),
    ] {
        if count != 1 {
            return Err(InstallError::Template { key, count });
        }
    }
    Ok(unit)
}

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

/// What one operation found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    /// Replaced by other contents; `old` holds the previous ones, if kept.
    Replaced {
        old: Option<PathBuf>,
    },
    /// Already there with these contents (its mode is set again).
    Unchanged,
    /// Already there and left alone.
    Kept,
}

/// One operation carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub role: Role,
    /// The path written, under the prefix.
    pub path: PathBuf,
    /// Its mode now.
    pub mode: u32,
    pub change: Change,
}

impl Done {
    /// Whether the daemon would see something new.
    pub fn changed(&self) -> bool {
        matches!(self.change, Change::Created | Change::Replaced { .. })
    }

    /// A kept file or directory that others may read, where they should not.
    pub fn warning(&self) -> Option<String> {
        let private = matches!(
            self.role,
            Role::Config | Role::Evidence | Role::CaptureKeyDir | Role::AlertsDir
        );
        (private && self.change == Change::Kept && self.mode & 0o077 != 0).then(|| {
            let mode = if self.role == Role::Config {
                CONFIG_MODE
            } else {
                PRIVATE_DIR_MODE
            };
            format!(
                "{} {} is mode {:04o}: others may read it; `chmod {mode:04o} {}`",
                self.role,
                self.path.display(),
                self.mode,
                self.path.display()
            )
        })
    }
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let change = match &self.change {
            Change::Created => "created",
            Change::Replaced { .. } => "replaced",
            Change::Unchanged => "unchanged",
            Change::Kept => "kept",
        };
        write!(
            f,
            "{change:<9} {} ({:04o}, {})",
            self.path.display(),
            self.mode,
            self.role
        )?;
        if let Change::Replaced { old: Some(old) } = &self.change {
            write!(f, "; the previous one is {}", old.display())?;
        }
        Ok(())
    }
}

/// Carries out the plan: directories are made, files written atomically
/// (a temporary file renamed over the old), owned by root when run as
/// root. Running it twice changes nothing the second time.
pub fn apply(plan: &Plan) -> Result<Vec<Done>, InstallError> {
    let chown = running_as_root();
    plan.ops
        .iter()
        .map(|op| apply_op(&plan.prefix, op, chown))
        .collect()
}

fn apply_op(prefix: &Path, op: &Op, chown: bool) -> Result<Done, InstallError> {
    let path = on_disk(prefix, &op.path);
    let change = match &op.action {
        Action::Dir => match make_dir(&path, op.mode, chown)? {
            true => Change::Created,
            false => Change::Kept,
        },
        Action::File { contents, existing } => {
            if let Some(parent) = path.parent() {
                make_dir(parent, PARENT_DIR_MODE, chown)?;
            }
            write_file(&path, contents, op.mode, *existing, chown)?
        }
    };
    let mode = fs::metadata(&path)
        .map_err(io_error("read the metadata of", &path))?
        .mode()
        & 0o7777;
    Ok(Done {
        role: op.role,
        path,
        mode,
        change,
    })
}

/// Makes `path` with `mode`, and its missing parents with 0755; true when
/// `path` was made, false when a directory was there.
fn make_dir(path: &Path, mode: u32, chown: bool) -> Result<bool, InstallError> {
    if path.as_os_str().is_empty() {
        return Ok(false);
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(InstallError::Io {
                action: "make the directory",
                path: path.to_path_buf(),
                error: io::Error::other("something other than a directory is there"),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("read the metadata of", path)(e)),
    }
    if let Some(parent) = path.parent() {
        make_dir(parent, PARENT_DIR_MODE, chown)?;
    }
    match DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => return Ok(false),
        Err(e) => return Err(io_error("make the directory", path)(e)),
    }
    if chown {
        std::os::unix::fs::chown(path, Some(0), Some(0)).map_err(io_error("chown", path))?;
    }
    // The umask took bits away.
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(io_error("chmod", path))?;
    Ok(true)
}

fn write_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    existing: Existing,
    chown: bool,
) -> Result<Change, InstallError> {
    let old = match fs::read(path) {
        Ok(old) => Some(old),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        // There, if unreadable to us: never overwritten either.
        Err(_) if existing == Existing::Keep => return Ok(Change::Kept),
        Err(e) => return Err(io_error("read", path)(e)),
    };
    match (old, existing) {
        (Some(_), Existing::Keep) => Ok(Change::Kept),
        (Some(old), _) if old == contents => {
            if chown {
                std::os::unix::fs::chown(path, Some(0), Some(0))
                    .map_err(io_error("chown", path))?;
            }
            fs::set_permissions(path, Permissions::from_mode(mode))
                .map_err(io_error("chmod", path))?;
            Ok(Change::Unchanged)
        }
        (Some(old), Existing::KeepAsOld) => {
            let mut name = path.file_name().unwrap_or_default().to_os_string();
            name.push(".old");
            let saved = path.with_file_name(name);
            write_atomic(&saved, &old, mode, true, chown)?;
            write_atomic(path, contents, mode, true, chown)?;
            Ok(Change::Replaced { old: Some(saved) })
        }
        (Some(_), _) => {
            write_atomic(path, contents, mode, true, chown)?;
            Ok(Change::Replaced { old: None })
        }
        (None, existing) => {
            // Keep: linked into place, so a config made meanwhile wins.
            let made = write_atomic(path, contents, mode, existing != Existing::Keep, chown)?;
            Ok(if made { Change::Created } else { Change::Kept })
        }
    }
}

/// Writes `contents` to a temporary file beside `path`, syncs it, and
/// renames it over `path` (`replace`) or links it there unless a file is
/// there. False: a file was there and `replace` was not asked.
fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    replace: bool,
    chown: bool,
) -> Result<bool, InstallError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.install-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        if chown {
            std::os::unix::fs::fchown(&file, Some(0), Some(0))?;
        }
        // After chown, which may clear bits; and the umask took some.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()?;
        if replace {
            fs::rename(&tmp, path).map(|()| true)
        } else {
            match fs::hard_link(&tmp, path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
    })();
    let _ = fs::remove_file(&tmp);
    let written = written.map_err(io_error("write", path))?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync the directory", dir))?;
    Ok(written)
}

/// What systemctl runs after the files are in place: a reload of the
/// units, a restart if the binary or unit changed (a reload if only the
/// config did) when the service runs, and enable-and-start.
pub fn start_commands(done: &[Done]) -> Vec<Vec<&'static str>> {
    let changed = |role| done.iter().any(|d| d.role == role && d.changed());
    let mut commands = vec![vec!["systemctl", "daemon-reload"]];
    if changed(Role::Binary) || changed(Role::Unit) {
        commands.push(vec!["systemctl", "try-restart", UNIT_NAME]);
    } else if changed(Role::Config) {
        commands.push(vec!["systemctl", "try-reload-or-restart", UNIT_NAME]);
    }
    commands.push(vec!["systemctl", "enable", "--now", UNIT_NAME]);
    commands
}

/// What systemctl runs before `uninstall` removes the files.
pub const STOP_COMMAND: [&str; 4] = ["systemctl", "disable", "--now", UNIT_NAME];
/// And after.
pub const RELOAD_COMMAND: [&str; 2] = ["systemctl", "daemon-reload"];

/// What `uninstall` is asked to do.
#[derive(Clone, Debug)]
pub struct UninstallOptions {
    pub prefix: PathBuf,
    /// Also remove the config (never the keys beside it).
    pub purge_config: bool,
}

/// What `uninstall` removed and kept; paths are under the prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uninstalled {
    pub removed: Vec<PathBuf>,
    /// Not there to remove.
    pub absent: Vec<PathBuf>,
    /// Kept, with what each is.
    pub kept: Vec<(PathBuf, &'static str)>,
    /// Why the kept paths are the defaults' rather than the config's.
    pub note: Option<String>,
}

/// Removes the unit and the binary, and the config if asked. The evidence,
/// the capture key and the signing key are always kept: the config, read
/// first, says where they are.
pub fn uninstall(options: &UninstallOptions) -> Result<Uninstalled, InstallError> {
    let prefix = &options.prefix;
    let config_path = on_disk(prefix, Path::new(config::DEFAULT_PATH));
    let mut done = Uninstalled::default();
    let config = match Config::load(&config_path) {
        Ok(config) => config,
        Err(ConfigError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            done.note = Some(format!(
                "no config at {}: the kept paths are the defaults'",
                config_path.display()
            ));
            Config::defaults()
        }
        Err(error) => {
            done.note = Some(format!(
                "the config does not load ({error}): the kept paths are the defaults'"
            ));
            Config::defaults()
        }
    };
    let mut remove = |path: PathBuf| -> Result<(), InstallError> {
        match fs::remove_file(&path) {
            Ok(()) => done.removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => done.absent.push(path),
            Err(e) => return Err(io_error("remove", &path)(e)),
        }
        Ok(())
    };
    remove(on_disk(prefix, Path::new(UNIT_PATH)))?;
    remove(on_disk(prefix, Path::new(BINARY_PATH)))?;
    if options.purge_config {
        let mut old = config_path.clone().into_os_string();
        old.push(".old");
        remove(config_path.clone())?;
        let old = PathBuf::from(old);
        if fs::symlink_metadata(&old).is_ok() {
            remove(old)?;
        }
    }

    // Named whether or not they are there: where they would be is news too.
    done.kept = vec![
        (on_disk(prefix, &config.evidence.dir), "the evidence"),
        (on_disk(prefix, &config.capture.key), "the capture key"),
    ];
    let mut others = Vec::new();
    if let Some(key) = &config.evidence.signing_key {
        others.push((on_disk(prefix, key), "the chain's signing key"));
    }
    if let Some(jsonl) = &config.alerts.jsonl {
        others.push((on_disk(prefix, jsonl), "the alerts file"));
    }
    if !options.purge_config {
        others.push((config_path.clone(), "the config; --purge-config removes it"));
    } else if let Some(dir) = config_path.parent() {
        // Gone if the config was all it held; else what is left is kept.
        if fs::remove_dir(dir).is_ok() {
            done.removed.push(dir.to_path_buf());
        } else {
            others.push((dir.to_path_buf(), "the config's directory, not empty"));
        }
    }
    done.kept.extend(
        others
            .into_iter()
            .filter(|(path, _)| fs::symlink_metadata(path).is_ok()),
    );
    Ok(done)
}

#[cfg(test)]
#[path = "install_tests.rs"]
mod tests;
