//! Installing the daemon as a service and removing it, against a
//! temporary root: the helpers are here, the tests in the modules below.

use std::{
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use super::*;
use crate::config::{self, Config};

/// The unit's directives, comments and section headers left out.
fn directives(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with('['))
        .map(|line| line.split_once('=').expect("a directive is KEY=VALUE"))
        .collect()
}

/// The one value of `key`; panics unless it is set exactly once.
fn directive<'a>(unit: &'a str, key: &str) -> &'a str {
    let values: Vec<&str> = directives(unit)
        .into_iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= is set {} times", values.len());
    values[0]
}

fn config(text: &str) -> Config {
    Config::parse(text, "test").expect("the test config is valid")
}

fn dirs_of(text: &str) -> Result<WritableDirs, InstallError> {
    WritableDirs::of(&config(text))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// A temporary root to install into, and a binary to install.
struct Host {
    _tmp: tempfile::TempDir,
    prefix: PathBuf,
    binary: PathBuf,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().expect("temporary directory");
        let prefix = tmp.path().join("root");
        fs::create_dir(&prefix).expect("the prefix");
        let binary = tmp.path().join("agent-monitor-built");
        fs::write(&binary, b"\x7fELF the binary").expect("the binary");
        Host {
            _tmp: tmp,
            prefix,
            binary,
        }
    }

    fn path(&self, path: &str) -> PathBuf {
        on_disk(&self.prefix, Path::new(path))
    }

    fn options(&self, config: Option<&Path>) -> InstallOptions {
        InstallOptions {
            prefix: self.prefix.clone(),
            binary: self.binary.clone(),
            config: config.map(Path::to_path_buf),
        }
    }

    fn install(&self, config: Option<&Path>) -> Vec<Done> {
        let plan = plan(&self.options(config)).expect("install plan");
        apply(&plan).expect("install")
    }

    /// Writes `text` as the installed config, with `mode`.
    fn put_config(&self, text: &str, mode: u32) -> PathBuf {
        let path = self.path(config::DEFAULT_PATH);
        fs::create_dir_all(path.parent().unwrap()).expect("config directory");
        fs::write(&path, text).expect("config");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn uninstall(&self, purge_config: bool) -> Uninstalled {
        uninstall(&UninstallOptions {
            prefix: self.prefix.clone(),
            purge_config,
        })
        .expect("uninstall")
    }
}

fn change_of(done: &[Done], role: Role) -> &Change {
    &done
        .iter()
        .find(|d| d.role == role)
        .unwrap_or_else(|| panic!("nothing done for {role}"))
        .change
}

// The tests, by what they cover.
mod apply;
mod uninstall;
mod unit;
