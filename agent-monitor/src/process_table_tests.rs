use super::*;

use agent_monitor_common::{
    EventHeader, EventKind,
    process::{ExecHead, ExitEvent, ForkEvent},
};

use crate::decode::decode;

// ---------------------------------------------------------------------------
// Events built as the kernel sends them: the shared structs as bytes, then
// decoded, so the table sees exactly what the pipeline would give it.
// ---------------------------------------------------------------------------

/// The raw bytes of a shared record struct.
///
/// Only called with the `repr(C)`, integer-only, explicitly padded structs
/// of agent-monitor-common, whose every byte is initialised.
fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: `value` is a valid reference to `size_of::<T>()` initialised
    // bytes (see above); the slice lives only for the copy.
    unsafe {
        std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>())
    }
    .to_vec()
}

/// Who acts: the fields of the header that the table uses.
#[derive(Clone, Copy)]
struct Actor {
    pid: u32,
    start_ns: u64,
    ppid: u32,
    uid: u32,
    agent: u32,
    ts_ns: u64,
}

fn actor(pid: u32, start_ns: u64, ppid: u32) -> Actor {
    Actor {
        pid,
        start_ns,
        ppid,
        uid: 1000,
        agent: 1,
        ts_ns: 10_000,
    }
}

impl Actor {
    fn uid(self, uid: u32) -> Actor {
        Actor { uid, ..self }
    }

    fn agent(self, agent: u32) -> Actor {
        Actor { agent, ..self }
    }

    fn at(self, ts_ns: u64) -> Actor {
        Actor { ts_ns, ..self }
    }

    fn header(self, kind: EventKind) -> EventHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"test");
        EventHeader {
            kind: kind as u32,
            cpu: 0,
            cpu_seq: 0,
            ts_ns: self.ts_ns,
            start_ns: self.start_ns,
            tool_call: 0,
            pid: self.pid,
            tid: self.pid,
            ppid: self.ppid,
            uid: self.uid,
            gid: self.uid,
            agent: self.agent,
            comm,
        }
    }

    fn exec(self, filename: &str, args: &[&str]) -> Event {
        let mut argv = Vec::new();
        for arg in args {
            argv.extend_from_slice(arg.as_bytes());
            argv.push(0);
        }
        let head = ExecHead {
            header: self.header(EventKind::ProcessExec),
            filename_len: filename.len() as u16,
            argv_len: argv.len() as u16,
            flags: 0,
            _pad: 0,
            argv_total_len: argv.len() as u32,
            _pad2: 0,
        };
        let mut bytes = bytes_of(&head);
        bytes.extend_from_slice(filename.as_bytes());
        bytes.extend_from_slice(&argv);
        decode(&bytes, 0).expect("exec record decodes")
    }

    fn fork(self, child_pid: u32, child_start_ns: u64) -> Event {
        let bytes = bytes_of(&ForkEvent {
            header: self.header(EventKind::ProcessFork),
            child_pid,
            _pad: 0,
            child_start_ns,
        });
        decode(&bytes, 0).expect("fork record decodes")
    }

    fn exit(self, status: u32) -> Event {
        let bytes = bytes_of(&ExitEvent {
            header: self.header(EventKind::ProcessExit),
            status,
            _pad: 0,
        });
        decode(&bytes, 0).expect("exit record decodes")
    }

    fn key(self) -> ProcessKey {
        ProcessKey {
            pid: self.pid,
            start_ns: self.start_ns,
        }
    }
}

fn no_cwd() -> ExecContext {
    ExecContext::default()
}

fn cwd(dir: &str) -> ExecContext {
    ExecContext {
        cwd: Some(dir.to_string()),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The command `run` launches, registered before its first event: its start
/// time is not known yet.
fn launched_root(pid: u32) -> ProcessInfo {
    ProcessInfo {
        key: ProcessKey { pid, start_ns: 0 },
        parent: None,
        ppid: 1,
        agent_slot: 1,
        exe: None,
        argv: strings(&["claude", "-p", "hi"]),
        cwd: Some("/home/u/project".to_string()),
        uid: 1000,
        exit: None,
        exit_ns: None,
    }
}

fn live(table: &ProcessTable, pid: u32) -> &ProcessInfo {
    table
        .get(pid)
        .unwrap_or_else(|| panic!("pid {pid} should be live"))
}

// ---------------------------------------------------------------------------

#[test]
fn key_displays_as_pid_at_start() {
    let key = ProcessKey {
        pid: 4242,
        start_ns: 123_456_789,
    };
    assert_eq!(key.to_string(), "4242@123456789");
}

#[test]
fn new_table_is_empty() {
    let table = ProcessTable::new();
    assert_eq!(table.live_count(), 0);
    assert_eq!(table.seen_count(), 0);
    assert!(table.exited().is_empty());
    assert!(table.get(1).is_none());
    assert_eq!(table.live().count(), 0);
}

#[test]
fn registered_root_learns_its_key_from_its_first_event() {
    let mut table = ProcessTable::new();
    table.register(launched_root(100));
    assert_eq!(table.live_count(), 1);
    assert_eq!(table.seen_count(), 1);

    let root = actor(100, 5_000, 50);
    let after = table
        .observe(
            &root.exec("/usr/bin/claude", &["claude", "-p", "hi"]),
            &no_cwd(),
        )
        .clone();
    let expected = ProcessInfo {
        key: root.key(),
        parent: None,
        ppid: 50,
        agent_slot: 1,
        exe: Some("/usr/bin/claude".to_string()),
        argv: strings(&["claude", "-p", "hi"]),
        cwd: Some("/home/u/project".to_string()),
        uid: 1000,
        exit: None,
        exit_ns: None,
    };
    assert_eq!(after, expected);
    assert_eq!(live(&table, 100), &expected);
    // Learning the key is not a new process: nothing was retired.
    assert!(table.exited().is_empty());
    assert_eq!(table.live_count(), 1);
    assert_eq!(table.seen_count(), 1);

    // Later events under the learned key update the same entry.
    table.observe(&root.fork(101, 6_000), &no_cwd());
    assert_eq!(live(&table, 100).key, root.key());
    assert!(table.exited().is_empty());
    assert_eq!(table.seen_count(), 2);
}

#[test]
fn registered_root_whose_first_event_is_its_exit_is_recorded() {
    let mut table = ProcessTable::new();
    table.register(launched_root(100));
    let root = actor(100, 5_000, 50).at(77_000);
    let after = table.observe(&root.exit(2 << 8), &no_cwd()).clone();
    assert_eq!(after.key, root.key());
    assert_eq!(after.exit, Some(ExitStatus::Exited(2)));
    assert_eq!(after.exit_ns, Some(77_000));
    assert_eq!(after.argv, strings(&["claude", "-p", "hi"]));
    assert_eq!(table.live_count(), 0);
    assert_eq!(table.exited(), &[after]);
    assert_eq!(table.seen_count(), 1);
}

#[test]
fn fork_creates_the_child_with_the_parents_key_and_inherited_facts() {
    let mut table = ProcessTable::new();
    table.register(launched_root(100));
    let parent = actor(100, 5_000, 50).uid(1234).agent(3);
    table.observe(
        &parent.exec("/bin/bash", &["bash", "-c", "make"]),
        &cwd("/src"),
    );

    let acting = table.observe(&parent.fork(101, 6_000), &no_cwd()).clone();
    // observe returns the acting process (the parent), not the child.
    assert_eq!(acting.key, parent.key());

    assert_eq!(
        live(&table, 101),
        &ProcessInfo {
            key: ProcessKey {
                pid: 101,
                start_ns: 6_000
            },
            parent: Some(parent.key()),
            ppid: 100,
            // The registered root's slot, inherited by the child.
            agent_slot: 1,
            exe: Some("/bin/bash".to_string()),
            argv: strings(&["bash", "-c", "make"]),
            cwd: Some("/src".to_string()),
            uid: 1234,
            exit: None,
            exit_ns: None,
        }
    );
    assert_eq!(table.live_count(), 2);
    assert_eq!(table.seen_count(), 2);
}

#[test]
fn exec_updates_exe_argv_cwd_and_uid() {
    let mut table = ProcessTable::new();
    let p = actor(200, 1_000, 1);
    table.observe(&p.exec("/bin/sh", &["sh"]), &cwd("/first"));
    let after = table
        .observe(
            &p.uid(0).exec("/usr/bin/sudo", &["sudo", "id"]),
            &cwd("/second"),
        )
        .clone();
    assert_eq!(after.exe.as_deref(), Some("/usr/bin/sudo"));
    assert_eq!(after.argv, strings(&["sudo", "id"]));
    assert_eq!(after.cwd.as_deref(), Some("/second"));
    assert_eq!(after.uid, 0);
    assert_eq!(table.live_count(), 1);
    assert_eq!(table.seen_count(), 1);
}

#[test]
fn exec_makes_a_relative_filename_absolute_against_the_cwd() {
    let mut table = ProcessTable::new();
    let p = actor(300, 1_000, 1);

    let exe = |table: &mut ProcessTable, filename: &str, ctx: ExecContext| {
        table.observe(&p.exec(filename, &["x"]), &ctx).exe.clone()
    };
    assert_eq!(
        exe(&mut table, "bin/tool", cwd("/work/repo")),
        Some("/work/repo/bin/tool".to_string())
    );
    // A trailing slash on the cwd is not doubled.
    assert_eq!(
        exe(&mut table, "bin/tool", cwd("/work/repo/")),
        Some("/work/repo/bin/tool".to_string())
    );
    assert_eq!(exe(&mut table, "ls", cwd("/")), Some("/ls".to_string()));
    // `.` and `..` are folded lexically.
    assert_eq!(
        exe(&mut table, "./run.sh", cwd("/tmp")),
        Some("/tmp/run.sh".to_string())
    );
    // An absolute filename is left alone.
    assert_eq!(
        exe(&mut table, "/usr/bin/env", cwd("/tmp")),
        Some("/usr/bin/env".to_string())
    );
    // No cwd this time: the last known one (/tmp) is kept and used.
    assert_eq!(exe(&mut table, "../up", no_cwd()), Some("/up".to_string()));
    assert_eq!(live(&table, 300).cwd.as_deref(), Some("/tmp"));
}

#[test]
fn exec_without_any_known_cwd_leaves_exe_unknown() {
    let mut table = ProcessTable::new();
    let p = actor(301, 1_000, 1);
    let after = table.observe(&p.exec("bin/tool", &["tool"]), &no_cwd());
    assert_eq!(after.exe, None, "exe is absolute or null, never relative");
    assert_eq!(after.cwd, None);
}

#[test]
fn exit_moves_the_process_to_exited_with_status_and_time() {
    let mut table = ProcessTable::new();
    let p = actor(400, 1_000, 1);
    table.observe(&p.exec("/bin/sleep", &["sleep", "1"]), &cwd("/"));
    assert_eq!(table.live_count(), 1);

    let after = table.observe(&p.at(2_500_000).exit(9), &no_cwd()).clone();
    let expected = ProcessInfo {
        key: p.key(),
        parent: None,
        ppid: 1,
        agent_slot: 1,
        exe: Some("/bin/sleep".to_string()),
        argv: strings(&["sleep", "1"]),
        cwd: Some("/".to_string()),
        uid: 1000,
        exit: Some(ExitStatus::Killed {
            signal: 9,
            core_dumped: false,
        }),
        exit_ns: Some(2_500_000),
    };
    assert_eq!(after, expected);
    assert!(table.get(400).is_none());
    assert_eq!(table.exited(), &[expected]);
    assert_eq!(table.live_count(), 0);
    assert_eq!(table.seen_count(), 1);
}

#[test]
fn exited_keeps_exit_order() {
    let mut table = ProcessTable::new();
    let parent = actor(10, 100, 1);
    table.observe(&parent.fork(11, 200), &no_cwd());
    table.observe(&parent.fork(12, 300), &no_cwd());
    table.observe(&actor(12, 300, 10).exit(1 << 8), &no_cwd());
    table.observe(&actor(11, 200, 10).exit(0x80 | 6), &no_cwd());
    table.observe(&parent.exit(0), &no_cwd());
    let order: Vec<(u32, Option<ExitStatus>)> =
        table.exited().iter().map(|p| (p.key.pid, p.exit)).collect();
    assert_eq!(
        order,
        vec![
            (12, Some(ExitStatus::Exited(1))),
            (
                11,
                Some(ExitStatus::Killed {
                    signal: 6,
                    core_dumped: true
                })
            ),
            (10, Some(ExitStatus::Exited(0))),
        ]
    );
    assert_eq!(table.live_count(), 0);
    assert_eq!(table.seen_count(), 3);
}

#[test]
fn pid_reuse_retires_the_old_process_and_does_not_mix_data() {
    let mut table = ProcessTable::new();
    let old = actor(500, 1_000, 1);
    table.observe(&old.exec("/bin/old", &["old", "--secret"]), &cwd("/old"));
    // The old process's exit was lost; a new process gets pid 500.
    let new = actor(500, 9_000, 2).uid(33).agent(2);
    let after = table.observe(&new.exec("new", &["new"]), &no_cwd()).clone();

    assert_eq!(
        after,
        ProcessInfo {
            key: new.key(),
            parent: None,
            ppid: 2,
            agent_slot: 2,
            // Relative and no cwd known: the old process's /old is not
            // used, and exe stays unknown.
            exe: None,
            argv: strings(&["new"]),
            cwd: None,
            uid: 33,
            exit: None,
            exit_ns: None,
        }
    );
    assert_eq!(
        table.exited(),
        &[ProcessInfo {
            key: old.key(),
            parent: None,
            ppid: 1,
            agent_slot: 1,
            exe: Some("/bin/old".to_string()),
            argv: strings(&["old", "--secret"]),
            cwd: Some("/old".to_string()),
            uid: 1000,
            exit: None,
            exit_ns: None,
        }]
    );
    assert_eq!(table.live_count(), 1);
    assert_eq!(table.seen_count(), 2);
}

#[test]
fn pid_reuse_seen_first_in_a_fork_or_exit_starts_clean() {
    let mut table = ProcessTable::new();
    let old = actor(600, 1_000, 1);
    table.observe(&old.exec("/bin/old", &["old"]), &cwd("/old"));

    // The new holder of pid 600 first shows up forking.
    let new = actor(600, 2_000, 1);
    let acting = table.observe(&new.fork(601, 2_500), &no_cwd()).clone();
    assert_eq!(acting.key, new.key());
    assert_eq!(acting.exe, None);
    assert_eq!(acting.argv, Vec::<String>::new());
    assert_eq!(acting.cwd, None);
    let child = live(&table, 601);
    assert_eq!(child.parent, Some(new.key()));
    assert_eq!(child.exe, None);
    assert_eq!(child.argv, Vec::<String>::new());

    // And a third holder first shows up exiting.
    let third = actor(600, 3_000, 1).at(4_000);
    let exited = table.observe(&third.exit(0), &no_cwd()).clone();
    assert_eq!(exited.key, third.key());
    assert_eq!(exited.exe, None);
    assert_eq!(exited.exit, Some(ExitStatus::Exited(0)));

    let keys: Vec<ProcessKey> = table.exited().iter().map(|p| p.key).collect();
    assert_eq!(keys, vec![old.key(), new.key(), third.key()]);
    assert_eq!(table.exited()[0].exit, None);
    assert_eq!(table.exited()[1].exit, None);
    assert!(table.get(600).is_none());
    assert_eq!(table.live_count(), 1);
    assert_eq!(table.seen_count(), 4);
}

#[test]
fn fork_onto_a_live_pid_retires_the_stale_entry() {
    let mut table = ProcessTable::new();
    let stale = actor(701, 100, 1);
    table.observe(&stale.exec("/bin/stale", &["stale"]), &no_cwd());
    let parent = actor(700, 50, 1);
    table.observe(&parent.exec("/bin/parent", &["parent"]), &no_cwd());
    table.observe(&parent.fork(701, 900), &no_cwd());

    let child = live(&table, 701);
    assert_eq!(
        child.key,
        ProcessKey {
            pid: 701,
            start_ns: 900
        }
    );
    assert_eq!(child.exe.as_deref(), Some("/bin/parent"));
    assert_eq!(table.exited().len(), 1);
    assert_eq!(table.exited()[0].key, stale.key());
    assert_eq!(table.exited()[0].exe.as_deref(), Some("/bin/stale"));
    assert_eq!(table.seen_count(), 3);
}

#[test]
fn unknown_process_with_a_known_parent_inherits_from_it() {
    let mut table = ProcessTable::new();
    let parent = actor(800, 1_000, 1);
    table.observe(
        &parent.exec("/usr/bin/python3", &["python3", "agent.py"]),
        &cwd("/srv"),
    );

    // The fork of 801 was lost; its first event is a fork of its own.
    let orphan = actor(801, 2_000, 800).uid(7).agent(4);
    let acting = table.observe(&orphan.fork(802, 3_000), &no_cwd()).clone();
    assert_eq!(
        acting,
        ProcessInfo {
            key: orphan.key(),
            parent: Some(parent.key()),
            ppid: 800,
            agent_slot: 4,
            exe: Some("/usr/bin/python3".to_string()),
            argv: strings(&["python3", "agent.py"]),
            cwd: Some("/srv".to_string()),
            uid: 7,
            exit: None,
            exit_ns: None,
        }
    );
    // Its child inherits in turn.
    let grandchild = live(&table, 802);
    assert_eq!(grandchild.parent, Some(orphan.key()));
    assert_eq!(grandchild.ppid, 801);
    assert_eq!(grandchild.exe.as_deref(), Some("/usr/bin/python3"));
    assert_eq!(grandchild.cwd.as_deref(), Some("/srv"));
    assert_eq!(grandchild.agent_slot, 4);
    assert_eq!(table.live_count(), 3);
}

#[test]
fn unknown_process_with_an_unknown_parent_starts_empty() {
    let mut table = ProcessTable::new();
    let stranger = actor(900, 1_000, 899).uid(5).agent(2);
    let acting = table.observe(&stranger.fork(901, 1_100), &no_cwd()).clone();
    assert_eq!(
        acting,
        ProcessInfo {
            key: stranger.key(),
            parent: None,
            ppid: 899,
            agent_slot: 2,
            exe: None,
            argv: Vec::new(),
            cwd: None,
            uid: 5,
            exit: None,
            exit_ns: None,
        }
    );
}

#[test]
fn ppid_follows_reparenting_and_parent_key_stays() {
    let mut table = ProcessTable::new();
    let parent = actor(1000, 1, 1);
    table.observe(&parent.fork(1001, 2), &no_cwd());
    table.observe(&parent.exit(0), &no_cwd());
    // The orphan is reparented to init (pid 1) and keeps acting.
    let child = actor(1001, 2, 1);
    let after = table
        .observe(&child.exec("/bin/true", &["true"]), &no_cwd())
        .clone();
    assert_eq!(after.ppid, 1);
    assert_eq!(after.parent, Some(parent.key()));
}

#[test]
fn seen_and_live_counts_follow_a_tree() {
    let mut table = ProcessTable::new();
    table.register(launched_root(1));
    let root = actor(1, 10, 0);
    let mut counts = Vec::new();
    let mut step = |table: &mut ProcessTable, event: Event| {
        table.observe(&event, &no_cwd());
        counts.push((table.live_count(), table.seen_count()));
    };
    step(&mut table, root.exec("/bin/agent", &["agent"]));
    step(&mut table, root.fork(2, 20));
    step(&mut table, root.fork(3, 30));
    step(&mut table, actor(2, 20, 1).fork(4, 40));
    step(&mut table, actor(3, 30, 1).exit(0));
    step(&mut table, actor(4, 40, 2).exit(0));
    step(&mut table, root.exit(0));
    step(&mut table, actor(2, 20, 1).exit(0));
    assert_eq!(
        counts,
        vec![
            (1, 1),
            (2, 2),
            (3, 3),
            (4, 4),
            (3, 4),
            (2, 4),
            (1, 4),
            (0, 4),
        ]
    );
    assert_eq!(table.live().count(), 0);
}

#[test]
fn live_iterates_the_live_processes_only() {
    let mut table = ProcessTable::new();
    let root = actor(1, 10, 0);
    table.observe(&root.fork(2, 20), &no_cwd());
    table.observe(&root.fork(3, 30), &no_cwd());
    table.observe(&actor(2, 20, 1).exit(0), &no_cwd());
    let mut keys: Vec<ProcessKey> = table.live().map(|p| p.key).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ProcessKey {
                pid: 1,
                start_ns: 10
            },
            ProcessKey {
                pid: 3,
                start_ns: 30
            },
        ]
    );
}

#[test]
fn registering_over_a_live_pid_retires_the_old_entry() {
    let mut table = ProcessTable::new();
    let p = actor(42, 1_000, 1);
    table.observe(&p.exec("/bin/a", &["a"]), &no_cwd());
    table.register(launched_root(42));
    assert_eq!(live(&table, 42).key.start_ns, 0);
    assert_eq!(table.exited().len(), 1);
    assert_eq!(table.exited()[0].key, p.key());
    assert_eq!(table.seen_count(), 2);
}
