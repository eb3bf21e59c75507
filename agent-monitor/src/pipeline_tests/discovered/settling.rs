//! Pending processes settled by the whole rule or dismissed, and the
//! children they forked before they were.

use super::*;

// ---------------------------------------------------------------------------
// Settling pending processes.
// ---------------------------------------------------------------------------

#[test]
fn a_pending_exec_matching_the_whole_rule_becomes_a_new_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--task", "fix it"]));

    let events = &p.sink.events;
    assert_eq!(events.len(), 1, "the exec reaches the sink");
    let got = &events[0];
    assert_eq!(
        (got.kind, got.pid, got.agent.as_str()),
        ("process.exec", ROOT, "agent")
    );
    let slot = got.slot;
    assert_ne!(slot, 0);
    assert_eq!(slot & AGENT_PENDING, 0, "the event is re-attributed");
    assert_eq!(kernel.calls(), vec![Call::SetAgent(ROOT, slot)]);
    assert_eq!(p.table().get(ROOT).map(|r| r.agent_slot), Some(slot));

    let status = p.status();
    let session_id = got.session_id.clone().expect("the exec is in a session");
    assert_eq!(
        status.agents,
        vec![AgentStatus {
            agent: "agent".to_string(),
            root_pid: ROOT,
            session_id,
            source: "rule",
            processes: 1,
        }]
    );
    assert_eq!(status.sessions_open, 1);
    assert_eq!(status.discovery.rules, 2);
    assert_eq!(status.discovery.by_rule, 1);
    assert_eq!(status.discovery.dismissed, 0);
    assert_eq!(status.discovery.kernel_errors, 0);
    assert!(
        p.sink.sessions().is_empty(),
        "the session row waits for its end"
    );
}

#[test]
fn each_pending_agent_gets_its_own_slot_and_session() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--task", "a"]));
    p.handle(pending(OTHER, 1).exec(2, "/usr/bin/agent", &["agent", "--task", "b"]));
    let [a, b] = [&p.sink.events[0], &p.sink.events[1]];
    assert_eq!((a.agent.as_str(), b.agent.as_str()), ("agent", "agent"));
    assert_ne!(a.slot, b.slot);
    assert_ne!(a.session_id, b.session_id);
    assert_eq!(
        kernel.calls(),
        vec![Call::SetAgent(ROOT, a.slot), Call::SetAgent(OTHER, b.slot)]
    );
    let roots: Vec<u32> = p.status().agents.iter().map(|a| a.root_pid).collect();
    assert_eq!(roots, vec![ROOT, OTHER]);
    assert_eq!(p.status().discovery.by_rule, 2);
}

#[test]
fn a_pending_exec_the_argv_glob_refuses_is_dismissed_with_its_children() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let root = pending(ROOT, 1);
    let child = pending_child(CHILD, 20, ROOT);
    for record in [
        // comm "agent" is a rule key, but "agent --help" is not "* --task*".
        root.exec(1, "/usr/bin/agent", &["agent", "--help"]),
        root.fork(2, CHILD, 20),
        child.fork(3, GRANDCHILD, 30),
        child.exit(4, 0),
        pending_child(GRANDCHILD, 30, CHILD).exit(5, 0),
        root.exit(6, 0),
    ] {
        p.handle(record);
    }
    assert_eq!(p.sink.events, vec![], "nothing of the tree is kept");
    assert_eq!(
        kernel.calls(),
        vec![
            Call::Forget(ROOT),
            Call::Forget(CHILD),
            Call::Forget(GRANDCHILD)
        ],
        "the kernel forgets the process and the children it forked meanwhile"
    );
    assert_eq!(p.stats().events(), 0);
    assert_eq!(p.table().seen_count(), 0);
    let status = p.status();
    assert_eq!(status.agents, vec![]);
    assert_eq!(status.discovery.dismissed, 1);
    assert_eq!(status.discovery.by_rule, 0);
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(ROOT)
        && d.is_dismissed(CHILD)
        && d.is_dismissed(GRANDCHILD)));
}

#[test]
fn every_condition_of_the_rule_is_checked_not_only_the_kernel_key() {
    let text = r#"
[[agents]]
name = "agent"
comm = "agent"
uid = 4242
"#;
    let kernel = FakeKernel::default();
    let mut p = discovering(text, &kernel);
    // The comm key matched in the kernel; the uid does not.
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent"]));
    // Both hold.
    p.handle(with_uid(pending(OTHER, 1), 4242).exec(2, "/usr/bin/agent", &["agent"]));
    // The uid holds, the comm does not.
    p.handle(with_uid(pending(CHILD, 1), 4242).exec(3, "/usr/bin/agen", &["agen"]));
    assert_eq!(p.sink.agents(), vec![(2, "agent")]);
    assert_eq!(kernel.forgotten(), vec![ROOT, CHILD]);
    assert_eq!(p.status().discovery.dismissed, 2);
    assert_eq!(p.status().discovery.by_rule, 1);
}

#[test]
fn a_cgroup_condition_is_checked_against_the_processs_own_cgroup() {
    let text = r#"
[[agents]]
name = "agent"
comm = "agent"
cgroup = "/*"
"#;
    let me = std::process::id();
    let cgroup = crate::identity::read_cgroup(me).expect("this test runs in a cgroup");
    let kernel = FakeKernel::default();
    let mut p = discovering(text, &kernel);
    // No such process: no cgroup, and the rule needs one.
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent"]));
    // This process: its cgroup is read from /proc.
    p.handle(pending(me, 1).exec(2, "/usr/bin/agent", &["agent"]));
    assert_eq!(p.sink.agents(), vec![(2, "agent")]);
    assert_eq!(kernel.forgotten(), vec![ROOT]);
    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].pid, Some(me));
    assert_eq!(rows[0].cgroup.as_deref(), Some(cgroup.as_str()));
}

#[test]
fn a_dismissed_pid_reused_by_a_matching_exec_becomes_an_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = pending_child(ROOT, 5, 1);
    p.handle(first.exec(1, "/usr/bin/agent", &["agent", "--version"]));
    p.handle(first.exit(2, 0));
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(ROOT)));
    // A new process with the same pid, which the rule does match.
    let reused = pending_child(ROOT, 77, 1);
    p.handle(reused.exec(3, "/usr/bin/agent", &["agent", "--task", "x"]));
    p.handle(reused.fork(4, CHILD, 40));
    assert_eq!(p.sink.agents(), vec![(3, "agent"), (4, "agent")]);
    let slot = p.sink.events[0].slot;
    let calls = kernel.calls();
    assert!(
        calls.contains(&Call::SetAgent(ROOT, slot))
            && !calls.iter().any(|c| matches!(c, Call::Adopt(..))),
        "the kernel tracks the new process already: it only gets its agent: {calls:?}"
    );
    assert!(p.discovery().is_some_and(|d| !d.is_dismissed(ROOT)));
    assert_eq!(p.status().discovery.dismissed, 1);
    assert_eq!(
        agent_status(&p, "agent").map(|a| (a.root_pid, a.processes)),
        Some((ROOT, 2))
    );
}

#[test]
fn a_pending_process_whose_exec_was_lost_is_dropped() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    // Its exec never arrived: the rules cannot judge it.
    p.handle(pending(ROOT, 1).fork(1, CHILD, 20));
    assert_eq!(kernel.forgotten(), vec![ROOT]);
    p.handle(pending(ROOT, 1).exit(2, 0));
    // The child it forked is dropped at its own first event.
    p.handle(pending_child(CHILD, 20, ROOT).exit(3, 0));
    assert_eq!(p.sink.events, vec![]);
    assert_eq!(kernel.forgotten(), vec![ROOT, CHILD]);
    assert_eq!(p.status().agents, vec![]);
    assert_eq!(p.table().seen_count(), 0);
}

// ---------------------------------------------------------------------------
// Children forked before their parent was settled.
// ---------------------------------------------------------------------------

#[test]
fn a_child_forked_before_its_parent_was_settled_gets_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    // The parent's own events still pending (the kernel had not been told
    // yet), then its child's, whose entry was copied from the parent's.
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.fork(3, GRANDCHILD, 30));
    p.handle(pending_child(GRANDCHILD, 30, CHILD).exit(4, 0));

    let events = &p.sink.events;
    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent"), (4, "agent")]
    );
    assert!(events.iter().all(|e| e.slot == slot), "{events:?}");
    let session = &events[0].session_id;
    assert!(events.iter().all(|e| &e.session_id == session));
    assert_eq!(
        kernel.calls(),
        vec![
            Call::SetAgent(ROOT, slot),
            Call::SetAgent(ROOT, slot),
            Call::SetAgent(CHILD, slot),
            Call::SetAgent(GRANDCHILD, slot),
        ]
    );
    assert_eq!(p.table().get(CHILD).map(|c| c.agent_slot), Some(slot));
    assert_eq!(p.status().discovery.dismissed, 0);
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(2),
        "root and child live; the grandchild exited"
    );
}

#[test]
fn a_pending_childs_exec_of_an_ordinary_program_keeps_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    // The agent forked, and the child exec'd `ls`, before the agent's
    // kernel entry was settled: the child's entry is still pending.
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/bin/ls", &["ls", "-l"]));
    p.handle(child.exit(4, 0));

    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent"), (4, "agent")],
        "the agent's child and what it ran are the agent's"
    );
    assert_eq!(kernel.forgotten(), Vec::<u32>::new());
    assert!(kernel.calls().contains(&Call::SetAgent(CHILD, slot)));
    assert_eq!(p.status().discovery.dismissed, 0);
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(1),
        "the child's exit is counted"
    );
}

#[test]
fn a_pending_childs_exec_of_another_agents_program_is_delegated() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/usr/bin/helper", &["helper"]));

    let exec = p.sink.events.last().expect("the exec").clone();
    assert_eq!((exec.seq, exec.agent.as_str()), (3, "helper"));
    let second = exec.slot;
    assert_ne!(second, first);
    assert_eq!(second & AGENT_PENDING, 0);
    assert_eq!(kernel.forgotten(), Vec::<u32>::new());
    assert_eq!(
        kernel.calls().last(),
        Some(&Call::SetAgent(CHILD, second)),
        "the kernel ends with the child in the helper: {:?}",
        kernel.calls()
    );
    let helper = agent_status(&p, "helper").expect("the helper");
    assert_eq!((helper.root_pid, helper.source), (CHILD, "delegated"));
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));

    p.handle(actor(CHILD, 20, ROOT).agent(second).exit(4, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].agent, "helper");
    assert_eq!(rows[0].parent_session_id, Some(first_session));
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));
}

#[test]
fn a_pending_child_reusing_a_dismissed_pid_keeps_the_parents_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    // An earlier process with the child's pid was dismissed.
    p.handle(pending(CHILD, 1).exec(1, "/usr/bin/agent", &["agent", "--help"]));
    assert!(p.discovery().is_some_and(|d| d.is_dismissed(CHILD)));

    p.handle(pending(ROOT, 1).exec(2, "/usr/bin/agent", &["agent", "--task", "x"]));
    let slot = p.sink.events[0].slot;
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).fork(3, CHILD, 20));
    p.handle(child.fork(4, GRANDCHILD, 30));
    p.handle(child.exit(5, 0));

    assert_eq!(
        p.sink.agents(),
        vec![(2, "agent"), (3, "agent"), (4, "agent"), (5, "agent")]
    );
    assert!(kernel.calls().contains(&Call::SetAgent(CHILD, slot)));
    assert_eq!(kernel.forgotten(), vec![CHILD], "only the old process");
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(2),
        "root and grandchild live"
    );
}

#[test]
fn a_child_dropped_with_its_parent_that_execs_an_agent_is_tracked_again() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let child = pending_child(CHILD, 20, ROOT);
    // The parent is no agent; its child exec'd one before the daemon read
    // either, and dropping the parent's tree made the kernel forget it.
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--help"]));
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/usr/bin/agent", &["agent", "--task", "x"]));
    assert_eq!(p.sink.agents(), vec![(3, "agent")]);
    let slot = p.sink.events[0].slot;
    assert_eq!(
        kernel.calls(),
        vec![
            Call::Forget(ROOT),
            Call::Forget(CHILD),
            Call::Adopt(CHILD, slot)
        ],
        "tracked again, not only renamed in a map it is no longer in"
    );
    let losses: Vec<String> = p
        .sink
        .declared
        .iter()
        .filter_map(|d| match d {
            Declared::Alert(a) if a.kind == "event_loss" => Some(a.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert!(losses[0].contains(&format!("pid {CHILD}")), "{losses:?}");

    // A later process with that pid, which the kernel tracks, only gets
    // its agent.
    let reused = pending_child(CHILD, 99, OTHER);
    p.handle(reused.exec(4, "/usr/bin/helper", &["helper"]));
    let calls = kernel.calls();
    assert!(
        calls.len() == 4 && matches!(calls[3], Call::SetAgent(CHILD, _)),
        "{calls:?}"
    );
}

#[test]
fn a_dropped_child_whose_pid_is_no_longer_its_own_is_not_adopted() {
    // The child exited before the daemon read its exec: its pid may be
    // another process's by now.
    let kernel = FakeKernel {
        gone: true,
        ..FakeKernel::default()
    };
    let mut p = discovering(RULES, &kernel);
    let child = pending_child(CHILD, 20, ROOT);
    p.handle(pending(ROOT, 1).exec(1, "/usr/bin/agent", &["agent", "--help"]));
    p.handle(pending(ROOT, 1).fork(2, CHILD, 20));
    p.handle(child.exec(3, "/usr/bin/agent", &["agent", "--task", "x"]));
    assert_eq!(
        kernel.calls(),
        vec![Call::Forget(ROOT), Call::Forget(CHILD)]
    );
    let alerts = p
        .sink
        .declared
        .iter()
        .filter(|d| matches!(d, Declared::Alert(_)))
        .count();
    assert_eq!(alerts, 0);
}
