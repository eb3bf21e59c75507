//! Sessions that end with their tree, delegation to another agent's
//! program, workload identity, and `run` without discovery.

use super::*;

// ---------------------------------------------------------------------------
// Sessions end with the tree.
// ---------------------------------------------------------------------------

#[test]
fn an_agents_session_ends_when_its_last_process_exits() {
    // The root first, then the child; and the other way round.
    for root_first in [true, false] {
        let kernel = FakeKernel::default();
        let mut p = discovering(RULES, &kernel);
        let slot = start_agent(&mut p);
        let session_id = agent_status(&p, "agent").expect("the agent").session_id;
        let root = actor(ROOT, 0, 1).agent(slot);
        let child = actor(CHILD, 20, ROOT).agent(slot);
        p.handle(root.fork(2, CHILD, 20));
        assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(2));

        let (first, second) = if root_first {
            (root.exit(3, 0), child.exit(4, 0))
        } else {
            (child.exit(3, 0), root.exit(4, 0))
        };
        p.handle(first);
        assert_eq!(p.sink.sessions(), vec![], "one process still runs");
        assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));

        p.handle(second);
        let rows = p.sink.sessions();
        assert_eq!(rows.len(), 1, "root first: {root_first}");
        let row = &rows[0];
        assert_eq!(row.session_id, session_id);
        assert_eq!(row.agent, "agent");
        assert_eq!(row.source, "rule");
        assert_eq!(row.parent_session_id, None);
        assert_eq!(row.pid, Some(ROOT));
        assert_eq!(row.uid, Some(1000));
        assert_eq!(row.task.as_deref(), Some("agent --task fix it"));
        assert_eq!(row.started, 1_000, "the exec's time");
        assert_eq!(row.ended, Some(4_000), "the last exit's time");
        assert_eq!(row.exe_sha256.as_deref(), Some("sha-of-/usr/bin/agent"));
        assert_eq!(row.spiffe_id, None);
        let status = p.status();
        assert_eq!(status.agents, vec![]);
        assert_eq!(status.sessions_open, 0);
        assert_eq!(status.discovery.by_rule, 1);

        // The row is written once, not again at the end.
        let (_, _, sink) = p.finish();
        assert_eq!(sink.sessions(), rows);
    }
}

#[test]
fn a_session_still_running_at_the_end_is_written_by_finish() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    start_agent(&mut p);
    let session_id = agent_status(&p, "agent").expect("the agent").session_id;
    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, session_id);
    assert_eq!(rows[0].source, "rule");
    assert!(rows[0].ended.is_some());
}

// ---------------------------------------------------------------------------
// Delegation: an agent's process runs another agent's program.
// ---------------------------------------------------------------------------

#[test]
fn a_process_running_another_agents_program_is_delegated_to_it() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    let root = actor(ROOT, 0, 1).agent(first);
    p.handle(root.fork(2, CHILD, 20));
    p.handle(
        actor(CHILD, 20, ROOT)
            .agent(first)
            .exec(3, "/usr/bin/helper", &["helper", "run"]),
    );

    let exec = p.sink.events.last().expect("the exec").clone();
    assert_eq!(exec.agent, "helper");
    let second = exec.slot;
    assert_ne!(second, first);
    assert_eq!(
        kernel.calls(),
        vec![Call::SetAgent(ROOT, first), Call::SetAgent(CHILD, second)]
    );
    assert_eq!(p.table().get(CHILD).map(|c| c.agent_slot), Some(second));
    let helper = agent_status(&p, "helper").expect("the helper");
    assert_eq!(
        (helper.root_pid, helper.source, helper.processes),
        (CHILD, "delegated", 1)
    );
    assert_eq!(exec.session_id.as_deref(), Some(helper.session_id.as_str()));
    assert_eq!(
        agent_status(&p, "agent").map(|a| a.processes),
        Some(1),
        "the child left the first agent"
    );
    assert_eq!(p.status().discovery.delegated, 1);

    // What the child does next is the helper's, and so are its children.
    let child = actor(CHILD, 20, ROOT).agent(second);
    p.handle(child.fork(4, GRANDCHILD, 30));
    p.handle(actor(GRANDCHILD, 30, CHILD).agent(second).exit(5, 0));
    assert_eq!(
        p.sink.agents(),
        vec![
            (1, "agent"),
            (2, "agent"),
            (3, "helper"),
            (4, "helper"),
            (5, "helper")
        ]
    );
    assert_eq!(p.table().exited()[0].agent_slot, second);
    assert_eq!(agent_status(&p, "helper").map(|a| a.processes), Some(1));

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 2);
    let first_row = rows.iter().find(|r| r.agent == "agent").expect("agent row");
    let second_row = rows
        .iter()
        .find(|r| r.agent == "helper")
        .expect("helper row");
    assert_eq!(first_row.session_id, first_session);
    assert_eq!(first_row.source, "rule");
    assert_eq!(second_row.session_id, helper.session_id);
    assert_eq!(second_row.source, "delegated");
    assert_eq!(second_row.parent_session_id, Some(first_session));
    assert_eq!(second_row.pid, Some(CHILD));
    assert_eq!(second_row.task.as_deref(), Some("helper run"));
}

#[test]
fn a_delegating_last_process_ends_the_first_agents_session() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let first_session = agent_status(&p, "agent").expect("the agent").session_id;
    // The root itself runs the helper: the first agent has nothing left.
    p.handle(
        actor(ROOT, 0, 1)
            .agent(first)
            .exec(2, "/usr/bin/helper", &["helper"]),
    );
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, first_session);
    assert_eq!(rows[0].ended, Some(2_000));
    let status = p.status();
    assert_eq!(status.agents.len(), 1);
    assert_eq!(
        (status.agents[0].agent.as_str(), status.agents[0].source),
        ("helper", "delegated")
    );

    let second = p.sink.events[1].slot;
    p.handle(actor(ROOT, 0, 1).agent(second).exit(3, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].agent, "helper");
    assert_eq!(rows[1].parent_session_id, Some(first_session));
    assert_eq!(rows[1].ended, Some(3_000));
    assert_eq!(p.status().agents, vec![]);
}

#[test]
fn running_the_same_agents_program_again_is_not_delegation() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let slot = start_agent(&mut p);
    p.handle(
        actor(ROOT, 0, 1)
            .agent(slot)
            .exec(2, "/usr/bin/agent", &["agent", "--task", "y"]),
    );
    p.handle(actor(ROOT, 0, 1).agent(slot).exec(3, "/bin/sh", &["sh"]));
    assert_eq!(
        p.sink.agents(),
        vec![(1, "agent"), (2, "agent"), (3, "agent")]
    );
    assert!(p.sink.events.iter().all(|e| e.slot == slot));
    assert_eq!(kernel.calls(), vec![Call::SetAgent(ROOT, slot)]);
    assert_eq!(p.status().discovery.delegated, 0);
    assert_eq!(p.status().agents.len(), 1);
}

#[test]
fn a_delegated_process_exiting_before_the_kernel_learned_its_new_agent() {
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    let first = start_agent(&mut p);
    let root = actor(ROOT, 0, 1).agent(first);
    p.handle(root.fork(2, CHILD, 20));
    // The child runs the helper, and exits before `set_agent` reached the
    // kernel: its exit still carries the first agent's slot.
    let stale = actor(CHILD, 20, ROOT).agent(first);
    p.handle(stale.exec(3, "/usr/bin/helper", &["helper"]));
    p.handle(stale.exit(4, 0));

    assert_eq!(
        p.sink.agents().last(),
        Some(&(4, "helper")),
        "the exit is the helper's"
    );
    let rows = p.sink.sessions();
    let ended: Vec<&str> = rows.iter().map(|r| r.agent.as_str()).collect();
    assert_eq!(
        ended,
        vec!["helper"],
        "the helper's tree is gone; the agent's root still runs"
    );
    assert_eq!(agent_status(&p, "agent").map(|a| a.processes), Some(1));
    assert_eq!(agent_status(&p, "helper"), None);
}

// ---------------------------------------------------------------------------
// Workload identity.
// ---------------------------------------------------------------------------

#[test]
fn an_identity_mapping_gives_the_agents_session_its_spiffe_id() {
    let text = format!(
        r#"{RULES}
[[identity]]
spiffe_id = "spiffe://example.org/agent"
agent = "agent"
"#
    );
    let kernel = FakeKernel::default();
    let mut p = discovering(&text, &kernel);
    let slot = start_agent(&mut p);
    // Another agent, which no mapping names.
    p.handle(pending(OTHER, 1).exec(2, "/usr/bin/helper", &["helper"]));
    p.handle(actor(ROOT, 0, 1).agent(slot).exit(3, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].agent, "agent");
    assert_eq!(
        rows[0].spiffe_id.as_deref(),
        Some("spiffe://example.org/agent")
    );

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    let helper = rows
        .iter()
        .find(|r| r.agent == "helper")
        .expect("helper row");
    assert_eq!(helper.spiffe_id, None);
}

// ---------------------------------------------------------------------------
// Without discovery (`run`).
// ---------------------------------------------------------------------------

#[test]
fn without_discovery_pending_events_pass_through_unjudged() {
    let mut p = Processor::new(Recorder::default(), Agents::default())
        .with_cwd_lookup(project_cwd)
        .with_identity_lookup(fake_identity);
    let root = pending(ROOT, 1);
    p.handle(root.exec(1, "/usr/bin/agent", &["agent", "--help"]));
    p.handle(root.fork(2, CHILD, 20));
    p.handle(pending_child(CHILD, 20, ROOT).exit(3, 0));

    // `run` never sees a pending process (its kernel has no rules); if it
    // did, the events would be kept as they came, under no agent.
    assert_eq!(
        p.sink.agents(),
        vec![(1, "unknown"), (2, "unknown"), (3, "unknown")]
    );
    assert!(p.sink.events.iter().all(|e| e.slot == AGENT_PENDING));
    assert_eq!(
        p.table().get(ROOT).map(|r| r.agent_slot),
        Some(AGENT_PENDING)
    );
    let status = p.status();
    assert_eq!(status.agents, vec![]);
    assert_eq!(
        status.discovery,
        crate::discovery::DiscoveryStats::default()
    );
    assert!(p.discovery().is_none());
    assert_eq!(p.adopt_running(), 0);
    let (_, _, sink) = p.finish();
    assert_eq!(sink.sessions(), vec![]);
}
