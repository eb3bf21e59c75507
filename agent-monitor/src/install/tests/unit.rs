//! The systemd unit rendered from a configuration.

use super::*;

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
