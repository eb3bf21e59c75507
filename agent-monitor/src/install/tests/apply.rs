//! Installing: the files written, what changes, what restarts, and what
//! is refused before anything is written.

use super::*;

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
