//! Carrying out a plan, idempotently, and what systemctl runs after it.

use std::{
    fmt,
    fs::{self, DirBuilder, File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::{
    Action, CONFIG_MODE, Existing, InstallError, Op, PARENT_DIR_MODE, PRIVATE_DIR_MODE, Plan, Role,
    UNIT_NAME, io_error, on_disk, running_as_root,
};

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
