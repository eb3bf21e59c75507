//! When the table's view is stale or incomplete: a pid reused after a lost
//! exit, a process whose fork was lost, a child reparented after its
//! parent's exit.

use super::*;

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
            identity: Default::default(),
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
            identity: Default::default(),
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
            identity: Default::default(),
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
            identity: Default::default(),
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
