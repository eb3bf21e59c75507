//! The processor, one record at a time: what reaches the sink, what is
//! counted, and the tree state it keeps.

use super::*;

#[test]
fn agents_are_numbered_from_one_and_unknown_slots_named_unknown() {
    let agents = agents();
    assert_eq!(agents.name(1), "claude-code");
    assert_eq!(agents.name(2), "codex");
    assert_eq!(agents.name(0), "unknown");
    assert_eq!(agents.name(3), "unknown");
    assert_eq!(agents.name(u32::MAX), "unknown");
    assert_eq!(Agents::default().name(1), "unknown");
}

#[test]
fn a_new_processor_has_nothing() {
    let p = processor(Capture::default());
    assert_eq!(p.state(), TreeState::default());
    assert_eq!(p.stats(), &Stats::default());
    assert_eq!(p.stats().events(), 0);
    assert_eq!(p.stats().lost(), 0);
    assert_eq!(p.table().seen_count(), 0);
}

#[test]
fn stats_count_events_by_kind() {
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    let b = actor(101, 20, 100);
    for record in [
        a.exec(1, "/bin/sh", &["sh"]),
        a.fork(2, 101, 20),
        b.exec(3, "/bin/ls", &["ls"]),
        a.fork(4, 102, 30),
        b.exit(5, 0),
        actor(102, 30, 100).exit(6, 0),
        a.exit(7, 0),
    ] {
        p.handle(record);
    }
    let expected: BTreeMap<&'static str, u64> = [
        ("process.exec", 2),
        ("process.exit", 3),
        ("process.fork", 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(p.stats().events_by_kind, expected);
    assert_eq!(p.stats().events(), 7);
    assert_eq!(p.stats().sink_errors, 0);
    assert_eq!(p.stats().invalid, BTreeMap::new());
    assert_eq!(p.sink.seqs(), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(p.table().seen_count(), 3);
    assert_eq!(p.table().live_count(), 0);
}

#[test]
fn sink_gets_each_event_with_its_process_after_it_and_the_agent_name() {
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    p.handle(a.exec(1, "bin/agent", &["agent", "--go"]));
    p.handle(a.fork(2, 101, 20));
    p.handle(actor(101, 20, 100).agent(2).exit(3, 1 << 8));
    p.handle(actor(300, 30, 1).agent(0).fork(4, 301, 40));
    p.handle(actor(400, 40, 1).agent(7).exit(5, 0));

    let after_exec = ProcessInfo {
        key: a.key(),
        parent: None,
        ppid: 1,
        agent_slot: 1,
        // Relative filename resolved against the looked-up cwd.
        exe: Some("/home/u/project/bin/agent".to_string()),
        argv: vec!["agent".to_string(), "--go".to_string()],
        cwd: Some("/home/u/project".to_string()),
        uid: 1000,
        identity: fake_identity(
            &mut crate::identity::ExeHasher::new(),
            100,
            Some("/home/u/project/bin/agent"),
        ),
        exit: None,
        exit_ns: None,
    };
    let events = &p.sink.events;
    assert_eq!(events.len(), 5);
    assert_eq!(
        events[0],
        Seen {
            seq: 1,
            kind: "process.exec",
            process: after_exec.clone(),
            agent: "claude-code".to_string(),
        }
    );
    // The fork reports the acting parent.
    assert_eq!(
        events[1],
        Seen {
            seq: 2,
            kind: "process.fork",
            process: after_exec.clone(),
            agent: "claude-code".to_string(),
        }
    );
    // The exit reports the child as it ended, named by the event's slot.
    assert_eq!(
        events[2],
        Seen {
            seq: 3,
            kind: "process.exit",
            process: ProcessInfo {
                key: ProcessKey {
                    pid: 101,
                    start_ns: 20
                },
                parent: Some(a.key()),
                ppid: 100,
                exit: Some(ExitStatus::Exited(1)),
                exit_ns: Some(3_000),
                ..after_exec
            },
            agent: "codex".to_string(),
        }
    );
    assert_eq!(events[3].agent, "unknown");
    assert_eq!(events[4].agent, "unknown");
}

#[test]
fn the_cwd_is_looked_up_for_exec_only() {
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    let b = actor(200, 20, 100);
    p.handle(a.fork(1, 200, 20));
    p.handle(b.exec(2, "tool", &["tool"]));
    p.handle(a.exec(3, "tool", &["tool"]));
    p.handle(b.exit(4, 0));
    p.handle(a.exit(5, 0));
    assert_eq!(cwd_lookups(), vec![200, 100]);
    // 200's cwd could not be read: it keeps the one inherited at fork
    // (none here), so its relative filename cannot be made absolute and
    // `exe` stays unknown rather than relative.
    assert_eq!(p.sink.events[1].process.exe.as_deref(), None);
    assert_eq!(
        p.sink.events[2].process.exe.as_deref(),
        Some("/home/u/project/tool")
    );
}

#[test]
fn workload_identity_is_learned_at_exec_and_inherited_at_fork() {
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    let b = actor(200, 20, 100);
    p.handle(a.exec(1, "/usr/bin/agent", &["agent"]));
    p.handle(a.fork(2, 200, 20));
    p.handle(b.exec(3, "/bin/ls", &["ls"]));
    let identity = |i: usize| p.sink.events[i].process.identity.clone();
    assert_eq!(identity(0).cgroup.as_deref(), Some("/agents/100"));
    assert_eq!(
        identity(0).exe_sha256.as_deref(),
        Some("sha-of-/usr/bin/agent")
    );
    // The child runs the parent's image until its own exec.
    assert_eq!(identity(1), identity(0));
    assert_eq!(identity(2).cgroup.as_deref(), Some("/agents/200"));
    assert_eq!(identity(2).exe_sha256.as_deref(), Some("sha-of-/bin/ls"));
}

#[test]
fn a_process_gone_before_its_lookup_keeps_its_inherited_cgroup() {
    fn gone(_: &mut crate::identity::ExeHasher, _: u32, _: Option<&str>) -> WorkloadIdentity {
        WorkloadIdentity::default()
    }
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    let b = actor(200, 20, 100);
    p.handle(a.exec(1, "/usr/bin/agent", &["agent"]));
    p = p.with_identity_lookup(gone);
    p.handle(a.fork(2, 200, 20));
    p.handle(b.exec(3, "/bin/true", &["true"]));
    let identity = &p.sink.events[2].process.identity;
    assert_eq!(identity.cgroup.as_deref(), Some("/agents/100"));
    // Not the parent's image.
    assert_eq!(identity.exe_sha256, None);
}

#[test]
fn invalid_records_are_counted_by_reason_and_not_sent() {
    let mut p = processor(Capture::default());
    let fork = actor(1, 1, 0).numbered(1).fork_record(2, 2);
    let mut unknown = fork.clone();
    unknown[..4].copy_from_slice(&0xdead_u32.to_ne_bytes());
    // Claims 10 + 10 bytes, carries 6.
    let mut bad_exec = bytes_of(&actor(1, 1, 0).numbered(1).exec_head(10, 10, 0));
    bad_exec.extend_from_slice(b"/bin/x");

    for (bytes, seq) in [
        (&unknown[..], 1),
        (&unknown[..], 2),
        (&fork[..40], 3),
        (&fork[..90], 4),
        (&fork[..90], 5),
        (&bad_exec[..], 6),
    ] {
        p.handle(record(bytes, seq));
    }
    p.handle(Record::Invalid(DecodeError::UnknownKind(UnknownEventKind(
        0,
    ))));

    let expected: BTreeMap<String, u64> = [
        ("unknown kind 57005", 2),
        ("unknown kind 0", 1),
        ("short event header", 1),
        ("short fork record", 2),
        ("bad exec lengths", 1),
    ]
    .into_iter()
    .map(|(reason, n)| (reason.to_string(), n))
    .collect();
    assert_eq!(p.stats().invalid, expected);
    assert!(p.sink.events.is_empty());
    assert_eq!(p.stats().events(), 0);
    assert_eq!(p.stats().sink_errors, 0);
    assert_eq!(p.table().seen_count(), 0);
    assert_eq!(p.state(), TreeState::default());
}

#[test]
fn loss_reports_accumulate_per_cpu_and_untracked_children() {
    let mut p = processor(Capture::default());
    for record in [
        loss(Counter::RingbufFull, 0, 3),
        loss(Counter::RingbufFull, 1, 2),
        loss(Counter::TrackFull, 0, 5),
        loss(Counter::RingbufFull, 0, 4),
        loss(Counter::TrackFull, 3, 1),
        loss(Counter::RingbufFull, 7, 0),
    ] {
        p.handle(record);
    }
    let expected: BTreeMap<u32, u64> = [(0, 7), (1, 2), (7, 0)].into_iter().collect();
    assert_eq!(p.stats().lost_events, expected);
    assert_eq!(p.stats().lost(), 9);
    assert_eq!(p.stats().untracked_children, 6);
    assert_eq!(p.stats().events(), 0);

    // Every report reaches the sink, in order, unchanged.
    let sent: Vec<(Counter, u32, u64)> = p
        .sink
        .losses
        .iter()
        .map(|l| (l.counter, l.cpu, l.count))
        .collect();
    assert_eq!(
        sent,
        vec![
            (Counter::RingbufFull, 0, 3),
            (Counter::RingbufFull, 1, 2),
            (Counter::TrackFull, 0, 5),
            (Counter::RingbufFull, 0, 4),
            (Counter::TrackFull, 3, 1),
            (Counter::RingbufFull, 7, 0),
        ]
    );
    assert!(
        p.sink
            .losses
            .iter()
            .all(|l| l.since_ns == 1 && l.until_ns == 2)
    );
}

#[test]
fn tree_state_follows_the_root_and_its_children() {
    let mut p = processor(Capture::default());
    assert_eq!(p.state(), state(false, 0));
    p.set_root(root_info(100));
    assert_eq!(p.state(), state(false, 1));

    let root = actor(100, 10, 1);
    let child = actor(101, 20, 100);
    let grandchild = actor(102, 30, 101);
    let mut states = Vec::new();
    for record in [
        root.exec(1, "/usr/bin/agent", &["agent"]),
        root.fork(2, 101, 20),
        child.fork(3, 102, 30),
        child.exit(4, 0),
        root.exit(5, 0),
        grandchild.exec(6, "/bin/sleep", &["sleep", "9"]),
        grandchild.exit(7, 9),
    ] {
        p.handle(record);
        states.push(p.state());
    }
    assert_eq!(
        states,
        vec![
            state(false, 1),
            state(false, 2),
            state(false, 3),
            state(false, 2),
            state(true, 1),
            state(true, 1),
            state(true, 0),
        ]
    );
    // The registered root learned its key and was not counted twice.
    assert_eq!(p.table().seen_count(), 3);
    assert_eq!(p.table().exited()[1].key, root.key());
    assert_eq!(p.table().exited()[1].exit, Some(ExitStatus::Exited(0)));
}

#[test]
fn only_the_roots_exit_marks_the_root_exited() {
    let mut p = processor(Capture::default());
    p.set_root(root_info(100));
    p.handle(actor(100, 10, 1).fork(1, 101, 20));
    p.handle(actor(101, 20, 100).exit(2, 0));
    p.handle(actor(555, 50, 1).exit(3, 0));
    assert_eq!(p.state(), state(false, 1));

    // Without a root, no exit marks it.
    let mut rootless = processor(Capture::default());
    rootless.handle(actor(100, 10, 1).exit(1, 0));
    assert_eq!(rootless.state(), state(false, 0));
}

#[test]
fn sink_errors_are_counted_and_processing_continues() {
    let mut p = processor(Capture::failing());
    p.set_root(root_info(100));
    let root = actor(100, 10, 1);
    p.handle(root.exec(1, "/usr/bin/agent", &["agent"]));
    p.handle(root.fork(2, 101, 20));
    p.handle(loss(Counter::RingbufFull, 2, 4));
    p.handle(record(&[0; 8], 3));
    p.handle(root.exit(4, 0));

    let stats = p.stats();
    // Three events and one loss failed to write; the invalid record never
    // reached the sink.
    assert_eq!(stats.sink_errors, 4);
    assert_eq!(stats.events(), 3);
    assert_eq!(stats.lost(), 4);
    assert_eq!(stats.invalid.values().sum::<u64>(), 1);
    // The table and the tree state moved on regardless.
    assert_eq!(p.state(), state(true, 1));
    assert_eq!(p.table().seen_count(), 2);
    assert_eq!(
        p.table().get(101).map(|c| c.exe.as_deref()),
        Some(Some("/usr/bin/agent"))
    );
}

#[test]
fn into_parts_hands_back_table_stats_and_sink() {
    let mut p = processor(Capture::default());
    p.handle(actor(100, 10, 1).fork(1, 101, 20));
    p.handle(loss(Counter::TrackFull, 0, 2));
    let (table, stats, sink) = p.into_parts();
    assert_eq!(table.live_count(), 2);
    assert_eq!(stats.events(), 1);
    assert_eq!(stats.untracked_children, 2);
    assert_eq!(sink.seqs(), vec![1]);
    assert_eq!(sink.losses.len(), 1);
}

#[test]
fn each_process_gets_one_final_record_at_exit_or_at_finish() {
    let mut p = processor(Capture::default());
    let a = actor(100, 10, 1);
    let b = actor(101, 20, 100);
    p.handle(a.exec(1, "/bin/sh", &["sh"]));
    p.handle(a.fork(2, 101, 20));
    p.handle(b.exit(3, 0));
    assert_eq!(
        p.sink.processes,
        vec![(b.key(), true, "claude-code".to_string())],
        "the child's record comes at its exit"
    );
    let (_, _, sink) = p.finish();
    assert_eq!(
        sink.processes,
        vec![
            (b.key(), true, "claude-code".to_string()),
            (a.key(), false, "claude-code".to_string()),
        ],
        "the shell, still running, gets its record at the end, with no exit"
    );
}
