//! End-to-end: observed actions (files, network, DNS, privilege) of real
//! tracked processes, with exact paths, addresses and results. Run as root
//! with one test thread (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value, json};
use support::{Run, monitor, real_python};

fn agent(script: &str) -> String {
    format!("{}/../tests/agents/{script}", env!("CARGO_MANIFEST_DIR"))
}

/// The only event of `kind` whose `field` is `value`.
fn one<'a>(run: &'a Run, kind: &str, field: &str, value: &str) -> &'a Value {
    let found: Vec<&Value> = run.of_kind(kind).filter(|e| e[field] == value).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} with {field}={value}, found {}:\n{}",
        found.len(),
        run.dump()
    );
    found[0]
}

fn check(event: &Value, expected: Value) {
    for (key, want) in expected.as_object().expect("an object") {
        assert_eq!(&event[key], want, "{key} of {event}");
    }
}

#[test]
fn file_actions_have_exact_absolute_paths_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let w = work.to_str().unwrap();
    let run = monitor(&[], &[&real_python(), &agent("file_actions.py"), w]);
    assert_eq!(run.status, 0, "{}", run.dump());

    let created = one(&run, "file.open", "path", &format!("{w}/created.txt"));
    check(
        created,
        json!({"access": "write", "created": true, "truncated": true, "raw_path": format!("{w}/created.txt"), "syscall": "openat"}),
    );
    assert!(created["result"].as_i64().unwrap() >= 0);
    assert!(created["error"].is_null());

    let hostname = one(&run, "file.open", "path", "/etc/hostname");
    check(
        hostname,
        json!({"access": "read", "created": false, "truncated": false}),
    );
    assert!(hostname["result"].as_i64().unwrap() >= 0);

    let renamed = one(&run, "file.rename", "path", &format!("{w}/created.txt"));
    check(
        renamed,
        json!({"new_path": format!("{w}/renamed.txt"), "result": 0}),
    );

    let mkdir = one(&run, "file.mkdir", "path", &format!("{w}/sub"));
    check(
        mkdir,
        json!({"mode": 0o750, "result": 0, "syscall": "mkdir"}),
    );

    let chmod = one(&run, "file.chmod", "path", &format!("{w}/renamed.txt"));
    check(chmod, json!({"mode": 0o600, "result": 0}));

    let unlink = one(&run, "file.unlink", "path", &format!("{w}/renamed.txt"));
    check(unlink, json!({"result": 0, "syscall": "unlink"}));

    let missing = one(&run, "file.open", "path", &format!("{w}/missing.txt"));
    check(
        missing,
        json!({"result": -2, "error": "ENOENT", "created": false}),
    );

    let relative = one(&run, "file.open", "raw_path", "relative.txt");
    check(
        relative,
        json!({"path": format!("{w}/relative.txt"), "created": true}),
    );

    let via_dirfd = one(&run, "file.open", "raw_path", "via-dirfd.txt");
    check(
        via_dirfd,
        json!({"path": format!("{w}/sub/via-dirfd.txt"), "created": true, "mode": 0o644}),
    );
}

#[test]
fn network_actions_and_dns_names() {
    let run = monitor(&[], &[&real_python(), &agent("net_actions.py")]);
    assert_eq!(run.status, 0, "{}", run.dump());

    let query = one(&run, "dns.query", "name", "agent-monitor.test");
    check(
        query,
        json!({"type": "A", "addr": "127.0.0.1", "port": 53, "protocol": "udp", "syscall": "sendto"}),
    );
    let answer = one(&run, "dns.answer", "name", "agent-monitor.test");
    check(answer, json!({"answers": ["127.0.0.77"], "port": 53}));

    let listen = one(&run, "net.listen", "local_addr", "127.0.0.77");
    let port = listen["local_port"].as_u64().unwrap();
    check(
        listen,
        json!({"family": "inet", "protocol": "tcp", "result": 0}),
    );

    let bind = one(&run, "net.bind", "addr", "127.0.0.77");
    check(bind, json!({"port": 0, "protocol": "tcp", "result": 0}));
    let dns_bind = one(&run, "net.bind", "addr", "127.0.0.1");
    check(
        dns_bind,
        json!({"port": 53, "protocol": "udp", "result": 0}),
    );

    let connect = one(&run, "net.connect", "addr", "127.0.0.77");
    check(
        connect,
        json!({"port": port, "dns_name": "agent-monitor.test", "protocol": "tcp", "result": 0}),
    );

    let accept = one(&run, "net.accept", "local_addr", "127.0.0.77");
    check(
        accept,
        json!({"local_port": port, "addr": "127.0.0.1", "protocol": "tcp"}),
    );
    assert!(accept["result"].as_i64().unwrap() >= 0);

    let send = run
        .of_kind("net.send")
        .find(|e| e["port"] == 9)
        .unwrap_or_else(|| panic!("no send to port 9:\n{}", run.dump()));
    check(
        send,
        json!({"addr": "127.0.0.1", "protocol": "udp", "result": 5}),
    );
}

#[test]
fn setuid_to_nobody_is_a_privilege_event() {
    let script = "import os; os.setuid(65534)";
    let run = monitor(&[], &[&real_python(), "-c", script]);
    assert_eq!(run.status, 0, "{}", run.dump());
    let setuid = one(&run, "priv.setuid", "syscall", "setuid");
    check(setuid, json!({"ids": [65534], "result": 0}));
}

#[test]
fn a_refused_connection_keeps_its_errno() {
    // Port 1 on loopback: nothing listens there.
    let script = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 1))\nexcept OSError:\n    pass";
    let run = monitor(&[], &[&real_python(), "-c", script]);
    assert_eq!(run.status, 0, "{}", run.dump());
    let connect = one(&run, "net.connect", "addr", "127.0.0.1");
    check(
        connect,
        json!({"port": 1, "result": -111, "error": "ECONNREFUSED"}),
    );
}

#[test]
fn the_other_file_privilege_and_mount_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().canonicalize().unwrap();
    let w = work.to_str().unwrap();
    let mut outsider = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = outsider.id().to_string();
    let run = monitor(&[], &[&real_python(), &agent("more_actions.py"), w, &pid]);
    outsider.kill().unwrap();
    outsider.wait().unwrap();
    assert_eq!(run.status, 0, "{}", run.dump());

    let t = format!("{w}/t.txt");
    check(
        one(&run, "file.chown", "path", &t),
        json!({"owner_uid": 65534, "owner_gid": -1, "result": 0}),
    );
    check(
        one(&run, "file.link", "new_path", &format!("{w}/hard.txt")),
        json!({"path": t, "result": 0}),
    );
    let soft = one(&run, "file.link", "new_path", &format!("{w}/soft.txt"));
    check(
        soft,
        json!({"symlink": true, "raw_path": "t.txt", "result": 0}),
    );
    assert!(
        soft["path"].is_null(),
        "a symlink's target is content, not a path: {soft}"
    );
    check(
        one(&run, "file.truncate", "path", &t),
        json!({"length": 4, "result": 0}),
    );
    let memfd = one(&run, "mem.memfd_create", "name", "agent-scratch");
    assert!(memfd["result"].as_i64().unwrap() >= 0);
    check(
        one(&run, "proc.signal", "syscall", "kill"),
        json!({"target_pid": outsider_pid(&pid), "signal": 0, "result": 0}),
    );
    check(
        one(&run, "fs.mount", "path", &format!("{w}/mnt")),
        json!({"name": "agent-tmpfs", "fstype": "tmpfs", "result": 0}),
    );
    check(
        one(&run, "fs.umount", "path", &format!("{w}/mnt")),
        json!({"result": 0}),
    );
}

fn outsider_pid(pid: &str) -> i64 {
    pid.parse().unwrap()
}
