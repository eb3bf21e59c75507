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

#[test]
fn the_packaged_unit_is_the_one_rendered_for_the_defaults() {
    let dirs = WritableDirs::of(&Config::defaults()).expect("the defaults' directories");
    assert_eq!(
        render_unit(&dirs).expect("render"),
        UNIT_TEMPLATE,
        "packaging/agent-monitor.service and the unit rendered for the default config differ"
    );
    assert_eq!(
        directive(UNIT_TEMPLATE, "ReadWritePaths"),
        "-/var/lib/agent-monitor/evidence -/var/lib/agent-monitor -/run/agent-monitor"
    );
    assert_eq!(
        directive(UNIT_TEMPLATE, "RuntimeDirectory"),
        "agent-monitor"
    );
}

#[test]
fn the_unit_runs_the_installed_binary_on_the_installed_config() {
    assert_eq!(
        directive(UNIT_TEMPLATE, "ExecStart"),
        format!("{BINARY_PATH} daemon --config {}", config::DEFAULT_PATH)
    );
    assert_eq!(
        directive(UNIT_TEMPLATE, "ExecReload"),
        "/bin/kill -HUP $MAINPID"
    );
    assert_eq!(directive(UNIT_TEMPLATE, "Type"), "simple");
    assert_eq!(directive(UNIT_TEMPLATE, "KillSignal"), "SIGTERM");
    assert_eq!(directive(UNIT_TEMPLATE, "Restart"), "on-failure");
    assert_eq!(
        directive(UNIT_TEMPLATE, "WantedBy"),
        "multi-user.target",
        "enable must start it at boot"
    );
    assert!(UNIT_TEMPLATE.ends_with('\n'));
    assert_eq!(UNIT_NAME, Path::new(UNIT_PATH).file_name().unwrap());
}

#[test]
fn the_unit_grants_exactly_the_capabilities_the_daemon_needs() {
    let expected = [
        "CAP_BPF",
        "CAP_PERFMON",
        "CAP_SYS_ADMIN",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
        "CAP_CHOWN",
        "CAP_FOWNER",
    ];
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let mut got: Vec<&str> = directive(UNIT_TEMPLATE, key).split(' ').collect();
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{key}");
    }
}

#[test]
fn the_unit_is_hardened_but_leaves_sys_writable_for_tracefs() {
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "read-only"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        (
            "SystemCallFilter",
            "~@clock @cpu-emulation @module @obsolete @raw-io @reboot @swap",
        ),
        ("LimitMEMLOCK", "infinity"),
        ("RuntimeDirectoryMode", "0755"),
        ("StateDirectory", "agent-monitor"),
        ("StateDirectoryMode", "0700"),
    ] {
        assert_eq!(directive(UNIT_TEMPLATE, key), value, "{key}");
    }
    // Each would break the daemon: a read-only /sys (no tracefs mount), a
    // hidden /proc, a frozen copy of the host name in the evidence.
    for key in [
        "ProtectKernelTunables",
        "ProtectProc",
        "ProcSubset",
        "ProtectHostname",
        "PrivateDevices",
        "User",
        "DynamicUser",
    ] {
        assert!(
            directives(UNIT_TEMPLATE).iter().all(|(k, _)| *k != key),
            "{key}= must not be set"
        );
    }
    assert!(
        directive(UNIT_TEMPLATE, "TimeoutStopSec")
            .parse::<u32>()
            .is_ok()
    );
}

#[test]
fn the_unit_makes_the_configs_directories_writable() {
    let dirs = dirs_of(
        r#"
        [evidence]
        dir = "/srv/evidence"
        [api]
        socket = "/run/am/sock/api.sock"
        [capture]
        key = "/etc/agent-monitor/keys/capture.key"
        [alerts]
        jsonl = "/var/log/agent-monitor/alerts.jsonl"
        "#,
    )
    .expect("directories");
    let unit = render_unit(&dirs).expect("render");
    assert_eq!(
        directive(&unit, "ReadWritePaths"),
        "-/srv/evidence -/etc/agent-monitor/keys -/run/am/sock -/var/log/agent-monitor"
    );
    assert_eq!(directive(&unit, "RuntimeDirectory"), "am/sock");
    // Only those two lines differ from the packaged unit.
    let differ = unit
        .lines()
        .zip(UNIT_TEMPLATE.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differ, 2);
    assert_eq!(unit.lines().count(), UNIT_TEMPLATE.lines().count());
}

#[test]
fn a_directory_shared_by_two_keys_is_named_once() {
    let dirs = dirs_of(
        r#"
        [evidence]
        dir = "/srv/am"
        [capture]
        key = "/srv/am/capture.key"
        "#,
    )
    .expect("directories");
    assert_eq!(
        directive(&render_unit(&dirs).unwrap(), "ReadWritePaths"),
        "-/srv/am -/run/agent-monitor"
    );
}

#[test]
fn a_socket_outside_run_has_no_runtime_directory() {
    let dirs = dirs_of("[api]\nsocket = \"/var/lib/agent-monitor/api.sock\"\n").unwrap();
    assert_eq!(dirs.runtime_directory(), None);
    let unit = render_unit(&dirs).unwrap();
    assert_eq!(directive(&unit, "RuntimeDirectory"), "");
    assert_eq!(
        directive(&unit, "ReadWritePaths"),
        "-/var/lib/agent-monitor/evidence -/var/lib/agent-monitor"
    );
    let via_var_run = dirs_of("[api]\nsocket = \"/var/run/am/api.sock\"\n").unwrap();
    assert_eq!(via_var_run.runtime_directory(), Some(Path::new("am")));
    let run_itself = dirs_of("[api]\nsocket = \"/run/api.sock\"\n").unwrap();
    assert_eq!(run_itself.runtime_directory(), None);
}

#[test]
fn a_percent_sign_is_escaped_from_systemds_specifiers() {
    let dirs = dirs_of("[evidence]\ndir = \"/srv/ev%i\"\n").unwrap();
    let unit = render_unit(&dirs).unwrap();
    assert!(
        directive(&unit, "ReadWritePaths").starts_with("-/srv/ev%%i "),
        "{unit}"
    );
}

#[test]
fn directories_a_unit_cannot_name_or_share_are_refused() {
    for (text, key, why) in [
        (
            "[evidence]\ndir = \"/srv/my evidence\"\n",
            "evidence.dir",
            "a space",
        ),
        (
            "[evidence]\ndir = \"/tmp/ev\"\n",
            "evidence.dir",
            "PrivateTmp",
        ),
        (
            "[api]\nsocket = \"/var/tmp/am/api.sock\"\n",
            "api.socket's directory",
            "PrivateTmp",
        ),
        (
            "[capture]\nkey = \"/capture.key\"\n",
            "capture.key's directory",
            "whole file system",
        ),
        (
            "[evidence]\ndir = \"/srv/../etc\"\n",
            "evidence.dir",
            "`..`",
        ),
        (
            "[alerts]\njsonl = \"/tmp/alerts.jsonl\"\n",
            "alerts.jsonl's directory",
            "PrivateTmp",
        ),
    ] {
        match dirs_of(text) {
            Err(err @ InstallError::Path { key: got, .. }) => {
                assert_eq!(got, key, "{text}");
                assert!(err.to_string().contains(why), "{text}: {err}");
            }
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn install_writes_every_file_with_its_mode() {
    let host = Host::new();
    let done = host.install(None);
    for d in &done {
        assert_eq!(d.change, Change::Created, "{d}");
    }

    let binary = host.path(BINARY_PATH);
    assert_eq!(fs::read(&binary).unwrap(), b"\x7fELF the binary");
    assert_eq!(mode(&binary), 0o755);

    let unit = host.path(UNIT_PATH);
    assert_eq!(fs::read_to_string(&unit).unwrap(), UNIT_TEMPLATE);
    assert_eq!(mode(&unit), 0o644);

    let config = host.path(config::DEFAULT_PATH);
    assert_eq!(fs::read_to_string(&config).unwrap(), config::DEFAULT);
    assert_eq!(mode(&config), 0o600);

    assert_eq!(mode(&host.path("/var/lib/agent-monitor")), 0o700);
    assert_eq!(mode(&host.path("/var/lib/agent-monitor/evidence")), 0o700);
    assert_eq!(mode(&host.path("/run/agent-monitor")), 0o755);
    assert_eq!(mode(&host.path("/usr/local/bin")), 0o755);

    if running_as_root() {
        for path in [&binary, &unit, &config] {
            let meta = fs::metadata(path).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 0), "{}", path.display());
        }
    }
    // No temporary file is left beside what was written.
    for dir in [binary.parent().unwrap(), unit.parent().unwrap()] {
        for entry in fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().contains(".install-"),
                "{name:?} left in {}",
                dir.display()
            );
        }
    }
}

#[test]
fn install_twice_changes_nothing_and_restarts_nothing() {
    let host = Host::new();
    let first = host.install(None);
    assert_eq!(
        start_commands(&first),
        [
            vec!["systemctl", "daemon-reload"],
            vec!["systemctl", "try-restart", UNIT_NAME],
            vec!["systemctl", "enable", "--now", UNIT_NAME],
        ]
    );
    let second = host.install(None);
    for d in &second {
        assert!(
            matches!(d.change, Change::Unchanged | Change::Kept),
            "second install: {d}"
        );
        assert_eq!(d.warning(), None, "{d}");
    }
    assert_eq!(
        start_commands(&second),
        [
            vec!["systemctl", "daemon-reload"],
            vec!["systemctl", "enable", "--now", UNIT_NAME],
        ]
    );
}

#[test]
fn a_new_binary_replaces_the_old_and_restarts_the_daemon() {
    let host = Host::new();
    host.install(None);
    fs::write(&host.binary, b"\x7fELF version two").unwrap();
    let done = host.install(None);
    assert_eq!(
        change_of(&done, Role::Binary),
        &Change::Replaced { old: None }
    );
    assert_eq!(
        fs::read(host.path(BINARY_PATH)).unwrap(),
        b"\x7fELF version two"
    );
    assert_eq!(change_of(&done, Role::Unit), &Change::Unchanged);
    assert!(start_commands(&done).contains(&vec!["systemctl", "try-restart", UNIT_NAME]));
}

#[test]
fn an_installed_config_is_never_overwritten_and_its_directories_are_used() {
    let host = Host::new();
    let text = "# mine\n[evidence]\ndir = \"/srv/evidence\"\n";
    let config = host.put_config(text, 0o644);
    let done = host.install(None);

    assert_eq!(fs::read_to_string(&config).unwrap(), text);
    assert_eq!(mode(&config), 0o644, "a kept config keeps its mode");
    let kept = done.iter().find(|d| d.role == Role::Config).unwrap();
    assert_eq!(kept.change, Change::Kept);
    let warning = kept.warning().expect("a readable config is warned about");
    assert!(warning.contains("chmod 0600"), "{warning}");

    assert_eq!(mode(&host.path("/srv/evidence")), 0o700);
    let unit = fs::read_to_string(host.path(UNIT_PATH)).unwrap();
    assert!(
        directive(&unit, "ReadWritePaths").starts_with("-/srv/evidence "),
        "{unit}"
    );
}

#[test]
fn a_given_config_is_checked_then_installed_and_the_old_one_saved() {
    let host = Host::new();
    host.install(None);
    let given = host._tmp.path().join("my.toml");
    let text = "[evidence]\ndir = \"/srv/ev\"\n[alerts]\njsonl = \"/var/log/am/alerts.jsonl\"\n";
    fs::write(&given, text).unwrap();
    let done = host.install(Some(&given));

    let config = host.path(config::DEFAULT_PATH);
    let old = host.path("/etc/agent-monitor/config.toml.old");
    assert_eq!(
        change_of(&done, Role::Config),
        &Change::Replaced {
            old: Some(old.clone())
        }
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
    assert_eq!(mode(&config), 0o600);
    assert_eq!(fs::read_to_string(&old).unwrap(), config::DEFAULT);
    assert_eq!(mode(&host.path("/var/log/am")), 0o700);
    let unit = fs::read_to_string(host.path(UNIT_PATH)).unwrap();
    assert_eq!(
        directive(&unit, "ReadWritePaths"),
        "-/srv/ev -/var/lib/agent-monitor -/run/agent-monitor -/var/log/am"
    );
    // The unit changed: the daemon is restarted, not merely reloaded.
    assert!(start_commands(&done).contains(&vec!["systemctl", "try-restart", UNIT_NAME]));

    // The same file again: nothing to save.
    let again = host.install(Some(&given));
    assert_eq!(change_of(&again, Role::Config), &Change::Unchanged);
}

#[test]
fn a_changed_config_alone_is_reloaded() {
    let host = Host::new();
    host.install(None);
    let given = host._tmp.path().join("my.toml");
    fs::write(&given, "[kernel]\nring_mib = 64\n").unwrap();
    let done = host.install(Some(&given));
    assert_eq!(change_of(&done, Role::Unit), &Change::Unchanged);
    assert_eq!(
        start_commands(&done)[1],
        ["systemctl", "try-reload-or-restart", UNIT_NAME]
    );
}

#[test]
fn a_bad_config_stops_install_before_anything_is_written() {
    let host = Host::new();
    let given = host._tmp.path().join("bad.toml");
    fs::write(&given, "[kernel]\nring_mib = 3\n").unwrap();
    let err = plan(&host.options(Some(&given))).expect_err("an invalid config");
    assert!(
        matches!(err, InstallError::Config(_)),
        "{err:?}: expected the config's own error"
    );
    assert!(err.to_string().contains("kernel.ring_mib"), "{err}");
    let missing = plan(&host.options(Some(&host._tmp.path().join("none.toml"))))
        .expect_err("a missing config");
    assert!(missing.to_string().contains("none.toml"), "{missing}");
    assert!(!host.path("/usr").exists(), "nothing is written");

    host.put_config("[kernel]\nring_mib = 3\n", 0o600);
    let err = plan(&host.options(None)).expect_err("an invalid installed config");
    assert!(
        matches!(err, InstallError::InstalledConfig { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("--config FILE"), "{err}");
}

#[test]
fn the_socket_group_must_exist() {
    let host = Host::new();
    host.put_config("[api]\ngroup = \"agent-monitor-no-such-group\"\n", 0o600);
    let err = plan(&host.options(None)).expect_err("a missing group");
    assert!(matches!(err, InstallError::Group(_)), "{err:?}");
    assert!(
        err.to_string().contains("agent-monitor-no-such-group"),
        "{err}"
    );

    host.put_config("[api]\ngroup = 4242\n", 0o600);
    assert_eq!(plan(&host.options(None)).unwrap().gid, Some(4242));
    host.put_config("[api]\ngroup = \"root\"\n", 0o600);
    assert_eq!(plan(&host.options(None)).unwrap().gid, Some(0));
}

#[test]
fn an_existing_directory_keeps_its_mode_and_is_warned_about() {
    let host = Host::new();
    let evidence = host.path("/var/lib/agent-monitor/evidence");
    fs::create_dir_all(&evidence).unwrap();
    fs::set_permissions(&evidence, fs::Permissions::from_mode(0o755)).unwrap();
    let done = host.install(None);
    let d = done.iter().find(|d| d.role == Role::Evidence).unwrap();
    assert_eq!(d.change, Change::Kept);
    assert_eq!(
        mode(&evidence),
        0o755,
        "never chmodded: the path may be shared"
    );
    assert!(d.warning().unwrap().contains("chmod 0700"));
}

#[test]
fn a_runtime_directory_holding_other_files_is_refused() {
    let host = Host::new();
    host.put_config("[api]\nsocket = \"/run/shared/api.sock\"\n", 0o600);
    fs::create_dir_all(host.path("/run/shared")).unwrap();
    fs::write(host.path("/run/shared/api.sock"), "").unwrap();
    plan(&host.options(None)).expect("only the socket is there");
    fs::write(host.path("/run/shared/other.pid"), "1").unwrap();
    let err = plan(&host.options(None)).expect_err("a shared /run directory");
    assert!(err.to_string().contains("other.pid"), "{err}");
}

#[test]
fn uninstall_removes_the_service_and_keeps_evidence_key_and_config() {
    let host = Host::new();
    host.install(None);
    let evidence_file = host.path("/var/lib/agent-monitor/evidence/events-0.parquet");
    fs::write(&evidence_file, "evidence").unwrap();
    let key = host.path("/var/lib/agent-monitor/capture.key");
    fs::write(&key, "00").unwrap();

    let done = host.uninstall(false);
    assert_eq!(
        done.removed,
        [host.path(UNIT_PATH), host.path(BINARY_PATH)],
        "{done:?}"
    );
    assert!(!host.path(UNIT_PATH).exists());
    assert!(!host.path(BINARY_PATH).exists());
    assert_eq!(fs::read_to_string(&evidence_file).unwrap(), "evidence");
    assert_eq!(fs::read_to_string(&key).unwrap(), "00");
    assert!(host.path(config::DEFAULT_PATH).exists());
    assert_eq!(
        done.kept,
        [
            (host.path("/var/lib/agent-monitor/evidence"), "the evidence"),
            (key.clone(), "the capture key"),
            (
                host.path(config::DEFAULT_PATH),
                "the config; --purge-config removes it"
            ),
        ]
    );
    assert_eq!(done.note, None);

    // Again: nothing left to remove, the same kept.
    let again = host.uninstall(false);
    assert!(again.removed.is_empty());
    assert_eq!(again.absent.len(), 2);
    assert_eq!(again.kept, done.kept);
}

#[test]
fn uninstall_purges_the_config_but_never_a_key_beside_it() {
    let host = Host::new();
    let signing = host.path("/etc/agent-monitor/signing.key");
    host.put_config(
        "[evidence]\ndir = \"/srv/ev\"\nsigning_key = \"/etc/agent-monitor/signing.key\"\n",
        0o600,
    );
    host.install(None);
    fs::write(&signing, "key").unwrap();

    let done = host.uninstall(true);
    assert!(!host.path(config::DEFAULT_PATH).exists());
    assert_eq!(fs::read_to_string(&signing).unwrap(), "key");
    assert!(
        host.path("/srv/ev").is_dir(),
        "a custom evidence dir is kept"
    );
    let kept: Vec<&str> = done.kept.iter().map(|(_, what)| *what).collect();
    assert_eq!(
        kept,
        [
            "the evidence",
            "the capture key",
            "the chain's signing key",
            "the config's directory, not empty"
        ]
    );
    assert_eq!(done.kept[0].0, host.path("/srv/ev"), "the config's paths");
}

#[test]
fn uninstall_purge_removes_an_emptied_config_directory() {
    let host = Host::new();
    host.install(None);
    let done = host.uninstall(true);
    assert!(!host.path("/etc/agent-monitor").exists());
    assert!(done.removed.contains(&host.path("/etc/agent-monitor")));
    assert!(host.path("/var/lib/agent-monitor/evidence").is_dir());
}

#[test]
fn uninstall_without_a_config_names_the_default_places() {
    let host = Host::new();
    let done = host.uninstall(false);
    assert!(done.removed.is_empty());
    assert!(done.note.unwrap().contains("defaults"));
    assert_eq!(
        done.kept[0].0,
        host.path("/var/lib/agent-monitor/evidence"),
        "the evidence is named even when it is not there"
    );
}

#[test]
fn only_the_root_directory_is_the_host() {
    assert!(is_host(Path::new("/")));
    assert!(is_host(Path::new("//")));
    assert!(!is_host(Path::new("/tmp/root")));
    assert_eq!(
        on_disk(Path::new("/tmp/root"), Path::new("/etc/x")),
        Path::new("/tmp/root/etc/x")
    );
    assert_eq!(
        on_disk(Path::new("/"), Path::new("/etc/x")),
        Path::new("/etc/x")
    );
}
