//! Uninstalling: what goes, and the evidence, key and config that stay.

use super::*;

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
