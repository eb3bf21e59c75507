use super::*;
use crate::{
    actions::ActionFields,
    policy::EffectKind::*,
    test_support::{action, actor, process_info, s},
};

fn effects(kind: ActionKind, fields: ActionFields) -> Effects {
    let mut event = actor(10, 1, 1).exit(0);
    event.detail = Detail::Action(Box::new(action(kind, "x", 0, fields)));
    of(&event, &process_info(10, 1))
}

fn some(list: &[(EffectKind, &str)]) -> Effects {
    Effects::Some(list.iter().map(|(k, r)| Effect::new(*k, *r)).collect())
}

#[test]
fn opens_are_reads_writes_and_creates_by_their_flags() {
    let open = |access, created, truncated| ActionFields {
        path: s("/tmp/f"),
        access: Some(access),
        created: Some(created),
        truncated: Some(truncated),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::FileOpen, open(Access::Read, false, false)),
        some(&[(FileRead, "/tmp/f")])
    );
    assert_eq!(
        effects(ActionKind::FileOpen, open(Access::Write, true, true)),
        some(&[(FileWrite, "/tmp/f"), (FileCreate, "/tmp/f")])
    );
    assert_eq!(
        effects(ActionKind::FileOpen, open(Access::ReadWrite, false, false)),
        some(&[(FileRead, "/tmp/f"), (FileWrite, "/tmp/f")])
    );
    // O_RDONLY|O_TRUNC truncates: that is a write.
    assert_eq!(
        effects(ActionKind::FileOpen, open(Access::Read, false, true)),
        some(&[(FileRead, "/tmp/f"), (FileWrite, "/tmp/f")])
    );
}

#[test]
fn renames_delete_one_name_and_create_another() {
    let fields = ActionFields {
        path: s("/a"),
        new_path: s("/b"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::FileRename, fields.clone()),
        some(&[(FileDelete, "/a"), (FileCreate, "/b")])
    );
    assert_eq!(
        effects(ActionKind::FileLink, fields),
        some(&[(FileCreate, "/b"), (FileRead, "/a")])
    );
    let unlink = ActionFields {
        path: s("/a"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::FileUnlink, unlink.clone()),
        some(&[(FileDelete, "/a")])
    );
    assert_eq!(
        effects(ActionKind::FileChmod, unlink),
        some(&[(FileWrite, "/a")])
    );
}

#[test]
fn a_file_action_without_a_path_cannot_be_covered() {
    assert_eq!(
        effects(ActionKind::FileOpen, ActionFields::default()),
        Effects::Uncoverable
    );
}

#[test]
fn connections_carry_their_looked_up_name() {
    let fields = ActionFields {
        addr: s("93.184.216.34"),
        port: Some(443),
        dns_name: s("example.com"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::NetConnect, fields),
        Effects::Some(vec![
            Effect::new(NetConnect, "93.184.216.34:443").named("example.com")
        ])
    );
    let v6 = ActionFields {
        addr: s("::1"),
        port: Some(8080),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::NetSend, v6),
        some(&[(NetConnect, "[::1]:8080")])
    );
    let unix = ActionFields {
        unix_path: s("/run/x.sock"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::NetConnect, unix),
        some(&[(NetConnect, "/run/x.sock")])
    );
}

#[test]
fn listening_and_accepting_are_judged_by_the_local_end() {
    let listen = ActionFields {
        local_addr: s("0.0.0.0"),
        local_port: Some(8000),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::NetListen, listen),
        some(&[(NetBind, "0.0.0.0:8000")])
    );
    let accept = ActionFields {
        addr: s("10.0.0.9"),
        port: Some(5555),
        local_addr: s("127.0.0.1"),
        local_port: Some(8000),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::NetAccept, accept),
        some(&[(NetBind, "127.0.0.1:8000")])
    );
}

#[test]
fn lookups_privilege_and_lifecycle() {
    let dns = ActionFields {
        name: s("example.com"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::DnsQuery, dns),
        some(&[(Dns, "example.com")])
    );
    assert_eq!(
        effects(ActionKind::PrivSetuid, ActionFields::default()),
        Effects::Uncoverable
    );
    let process = process_info(10, 1);
    assert_eq!(of(&actor(10, 1, 1).exit(0), &process), Effects::Lifecycle);
    assert_eq!(
        of(&actor(10, 1, 1).fork(11, 2), &process),
        Effects::Lifecycle
    );
    let exec = actor(10, 1, 1).exec("ls", &["ls"]);
    let with_exe = ProcessInfo {
        exe: s("/usr/bin/ls"),
        ..process
    };
    assert_eq!(of(&exec, &with_exe), some(&[(Exec, "/usr/bin/ls")]));
}

#[test]
fn magic_links_under_proc_are_followed_or_uncoverable() {
    let read = |path: &str| {
        effects(
            ActionKind::FileOpen,
            ActionFields {
                path: s(path),
                access: Some(Access::Read),
                ..Default::default()
            },
        )
    };
    // The process's root is the host's: judged by the path below it.
    assert_eq!(
        read("/proc/self/root/root/.ssh/id_rsa"),
        some(&[(FileRead, "/root/.ssh/id_rsa")])
    );
    assert_eq!(
        read("/proc/1234/task/1235/root/etc/shadow"),
        some(&[(FileRead, "/etc/shadow")])
    );
    assert_eq!(read("/proc/thread-self/root"), some(&[(FileRead, "/")]));
    // Links whose text does not say which file they open.
    for path in [
        "/proc/self/cwd/.env",
        "/proc/self/fd/3",
        "/proc/42/exe",
        "/proc/self/map_files/400000-401000",
    ] {
        assert_eq!(read(path), Effects::Uncoverable, "{path}");
    }
    // Ordinary /proc files, and listing the descriptors.
    assert_eq!(
        read("/proc/self/maps"),
        some(&[(FileRead, "/proc/self/maps")])
    );
    assert_eq!(read("/proc/self/fd"), some(&[(FileRead, "/proc/self/fd")]));
    assert_eq!(read("/proc/meminfo"), some(&[(FileRead, "/proc/meminfo")]));
}

#[test]
fn a_link_reads_its_target() {
    let fields = ActionFields {
        path: s("/root/.ssh/id_rsa"),
        new_path: s("/tmp/k.so"),
        ..Default::default()
    };
    assert_eq!(
        effects(ActionKind::FileLink, fields),
        some(&[(FileCreate, "/tmp/k.so"), (FileRead, "/root/.ssh/id_rsa")])
    );
}
