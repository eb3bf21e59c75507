//! A process's life in the table: registered or first seen, forked,
//! exec'd, exited; and the live and seen counts along the way.

use super::*;

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
        identity: Default::default(),
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
            identity: Default::default(),
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
        identity: Default::default(),
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
