//! The systemd unit rendered from the config, and the directories it opens.

use std::path::{Component, Path, PathBuf};

use super::{InstallError, PRIVATE_TMP, RUNTIME_ROOTS, UNIT_TEMPLATE, is_host};
use crate::config::Config;

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
