use std::{
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use sha2::{Digest, Sha256};

use super::*;

const ID: &str = "3f2d1c0b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060504";
const ID2: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const POD: &str = "pod8f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

/// Hex SHA-256 computed in one shot, independently of the streaming path.
fn sha256_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn parses_cgroup_v2() {
    let contents = "0::/user.slice/user-1000.slice/session-3.scope\n";
    assert_eq!(
        parse_cgroup(contents).as_deref(),
        Some("/user.slice/user-1000.slice/session-3.scope")
    );
    assert_eq!(parse_cgroup("0::/\n").as_deref(), Some("/"));
}

#[test]
fn parses_cgroup_v1_prefers_name_systemd() {
    let contents = "12:memory:/docker/abc\n\
                    11:cpu,cpuacct:/docker/abc\n\
                    1:name=systemd:/system.slice/docker.service\n";
    assert_eq!(
        parse_cgroup(contents).as_deref(),
        Some("/system.slice/docker.service")
    );
}

#[test]
fn parses_cgroup_v1_without_systemd_takes_first() {
    let contents = "5:memory:/mem/path\n4:cpu,cpuacct:/cpu/path\n";
    assert_eq!(parse_cgroup(contents).as_deref(), Some("/mem/path"));
}

#[test]
fn parses_cgroup_hybrid_prefers_v2() {
    let contents = "9:name=systemd:/init.scope\n\
                    4:memory:/process_api/c3df\n\
                    0::/system.slice/foo.service\n";
    assert_eq!(
        parse_cgroup(contents).as_deref(),
        Some("/system.slice/foo.service")
    );
}

#[test]
fn parses_cgroup_keeps_colons_in_path() {
    let contents = "0::/kubepods-pod1.slice:cri-containerd:abc\n";
    assert_eq!(
        parse_cgroup(contents).as_deref(),
        Some("/kubepods-pod1.slice:cri-containerd:abc")
    );
}

#[test]
fn rejects_garbage_cgroup() {
    for contents in [
        "",
        "\n\n",
        "hello world",
        "0:/no-third-field",
        "x::/not-a-number",
        "0::relative",
    ] {
        assert_eq!(parse_cgroup(contents), None, "{contents:?}");
    }
    // A garbage line does not hide a good one.
    assert_eq!(
        parse_cgroup("junk\n0::/ok\n").as_deref(),
        Some("/ok"),
        "good line after junk"
    );
}

#[test]
fn finds_container_ids() {
    let cases = [
        format!("/docker/{ID}"),
        format!("/system.slice/docker-{ID}.scope"),
        format!("/system.slice/cri-containerd-{ID}.scope"),
        format!("/kubepods/burstable/{POD}/{ID}"),
        format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{}.slice/cri-containerd-{ID}.scope",
            POD.replace('-', "_")
        ),
        format!(
            "/system.slice/containerd.service/kubepods-burstable-{POD}.slice:cri-containerd:{ID}"
        ),
        format!("/kubepods.slice/kubepods-burstable.slice/crio-{ID}.scope"),
        format!("/kubepods.slice/crio-{ID}.scope/container"),
        format!("/machine.slice/libpod-{ID}.scope"),
        format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
        ),
        format!("/docker/{ID}/init.scope"),
        format!("/{ID}"),
        ID.to_string(),
    ];
    for path in &cases {
        assert_eq!(container_id(path).as_deref(), Some(ID), "{path}");
    }
}

#[test]
fn conmon_is_not_the_container() {
    for path in [
        format!("/kubepods.slice/crio-conmon-{ID}.scope"),
        format!("/machine.slice/libpod-conmon-{ID}.scope"),
    ] {
        assert_eq!(container_id(&path), None, "{path}");
    }
}

#[test]
fn nested_container_takes_innermost() {
    let path = format!("/docker/{ID}/docker/{ID2}");
    assert_eq!(container_id(&path).as_deref(), Some(ID2));
    let path = format!("/machine.slice/libpod-{ID}.scope/container/docker-{ID2}.scope");
    assert_eq!(container_id(&path).as_deref(), Some(ID2));
}

#[test]
fn no_container_id_in_host_paths_or_near_misses() {
    let upper = ID.to_uppercase();
    let short = &ID[..63];
    let long = format!("{ID}0");
    let not_hex = ID.replace('a', "g");
    for path in [
        "/".to_string(),
        String::new(),
        "/user.slice/user-1000.slice/session-3.scope".to_string(),
        "/system.slice/docker.service".to_string(),
        format!("/kubepods/burstable/{POD}"),
        format!("/docker/{upper}"),
        format!("/docker/{short}"),
        format!("/docker/{long}"),
        format!("/docker/{not_hex}"),
        format!("/system.slice/other-{ID}.scope"),
    ] {
        assert_eq!(container_id(&path), None, "{path}");
    }
}

#[test]
fn hash_matches_independent_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "abc", b"abc");
    let mut hasher = ExeHasher::new();
    // FIPS 180-2 test vector.
    assert_eq!(
        hasher.hash_path(&path).as_deref(),
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );

    // Larger than several read buffers and not a multiple of one.
    let bytes: Vec<u8> = (0..200_003u32).map(|i| (i * 31 % 251) as u8).collect();
    let path = write(dir.path(), "big", &bytes);
    assert_eq!(hasher.hash_path(&path), Some(sha256_of(&bytes)));

    let empty = write(dir.path(), "empty", b"");
    assert_eq!(hasher.hash_path(&empty), Some(sha256_of(b"")));
}

#[test]
fn hash_matches_sha256sum() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "f", b"agent-monitor identity\n");
    // coreutils is part of every Debian system.
    let out = Command::new("sha256sum")
        .arg(&path)
        .output()
        .expect("sha256sum (coreutils) runs");
    assert!(out.status.success(), "sha256sum failed: {out:?}");
    let expected = String::from_utf8(out.stdout).unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    assert_eq!(ExeHasher::new().hash_path(&path).as_deref(), Some(expected));
}

#[test]
fn second_hash_is_a_cache_hit() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bin", b"#!/bin/sh\ntrue\n");
    let mut hasher = ExeHasher::new();
    let first = hasher.hash_path(&path);
    assert_eq!(hasher.stats(), (0, 1));
    let second = hasher.hash_path(&path);
    assert_eq!(hasher.stats(), (1, 1));
    assert_eq!(first, second);
    assert_eq!(first, Some(sha256_of(b"#!/bin/sh\ntrue\n")));
}

#[test]
fn changed_file_misses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bin", b"version one");
    let mut hasher = ExeHasher::new();
    assert_eq!(hasher.hash_path(&path), Some(sha256_of(b"version one")));

    // Same size, same inode, rewritten in place with a different mtime.
    fs::write(&path, b"version two").unwrap();
    let later = SystemTime::now() + Duration::from_secs(10);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(hasher.hash_path(&path), Some(sha256_of(b"version two")));
    assert_eq!(hasher.stats(), (0, 2));
}

#[test]
fn cache_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut hasher = ExeHasher::with_limits(3, MAX_EXE_SIZE);
    let paths: Vec<_> = (0..5)
        .map(|i| write(dir.path(), &format!("f{i}"), format!("file {i}").as_bytes()))
        .collect();
    for path in &paths {
        assert!(hasher.hash_path(path).is_some());
    }
    assert_eq!(hasher.len(), 3);
    // The first file was forgotten, the last is remembered.
    hasher.hash_path(&paths[4]);
    assert_eq!(hasher.stats(), (1, 5));
    hasher.hash_path(&paths[0]);
    assert_eq!(hasher.stats(), (1, 6));
    assert_eq!(hasher.len(), 3);
}

#[test]
fn oversized_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big", &[7u8; 1000]);
    let mut hasher = ExeHasher::with_limits(16, 999);
    assert_eq!(hasher.hash_path(&path), None);
    let mut hasher = ExeHasher::with_limits(16, 1000);
    assert_eq!(hasher.hash_path(&path), Some(sha256_of(&[7u8; 1000])));
}

#[test]
fn non_regular_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut hasher = ExeHasher::new();
    assert_eq!(hasher.hash_path(dir.path()), None, "directory");
    assert_eq!(hasher.hash_path(Path::new("/dev/null")), None, "device");
    assert_eq!(hasher.hash_path(&dir.path().join("missing")), None);

    // A FIFO nobody writes to must not block.
    let fifo = dir.path().join("fifo");
    let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string for the call.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    assert_eq!(hasher.hash_path(&fifo), None, "fifo");
    assert_eq!(hasher.stats(), (0, 0));
}

#[test]
fn own_process_hash_matches_current_exe() {
    let exe = std::env::current_exe().unwrap();
    let by_pid = ExeHasher::new().hash_process(std::process::id(), None);
    let by_path = ExeHasher::new().hash_path(&exe);
    assert!(by_pid.is_some(), "/proc/self/exe not hashed");
    assert_eq!(by_pid, by_path);
}

#[test]
fn proc_exe_wins_over_the_given_path() {
    let dir = tempfile::tempdir().unwrap();
    let decoy = write(dir.path(), "decoy", b"not this process");
    let exe = std::env::current_exe().unwrap();
    let mut hasher = ExeHasher::new();
    let got = hasher.hash_process(std::process::id(), decoy.to_str());
    assert_eq!(got, hasher.hash_path(&exe));
    assert_ne!(got, Some(sha256_of(b"not this process")));
}

#[test]
fn gone_process_falls_back_to_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "exe", b"binary of a short-lived process");
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "reaped pid {pid} was reused"
    );
    let mut hasher = ExeHasher::new();
    assert_eq!(
        hasher.hash_process(pid, path.to_str()),
        Some(sha256_of(b"binary of a short-lived process"))
    );
    assert_eq!(hasher.hash_process(pid, None), None);
}

#[test]
fn observe_own_process() {
    let mut hasher = ExeHasher::new();
    let exe = std::env::current_exe().unwrap();
    let identity = observe(&mut hasher, std::process::id(), exe.to_str());
    let cgroup = identity.cgroup.as_deref().expect("own cgroup");
    assert!(cgroup.starts_with('/'), "{cgroup}");
    assert_eq!(identity.container_id, container_id(cgroup));
    assert_eq!(identity.exe_sha256, ExeHasher::new().hash_path(&exe));
}

#[test]
fn observe_gone_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "exe", b"gone");
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let identity = observe(&mut ExeHasher::new(), pid, path.to_str());
    assert_eq!(
        identity,
        WorkloadIdentity {
            cgroup: None,
            container_id: None,
            exe_sha256: Some(sha256_of(b"gone")),
        }
    );
}
