//! `uninstall`: removes what `install` put in place, keeping evidence and keys.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use super::{BINARY_PATH, InstallError, UNIT_NAME, UNIT_PATH, io_error, on_disk};
use crate::config::{self, Config, ConfigError};

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
