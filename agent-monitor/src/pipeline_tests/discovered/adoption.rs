//! Adoption and registration of processes already running (real /proc).

use super::*;

// ---------------------------------------------------------------------------
// Adoption and registration of running processes (real /proc).
// ---------------------------------------------------------------------------

/// A `sleep` this test starts, with an argument no other process has;
/// killed when dropped.
struct Sleeper {
    child: Child,
    arg: String,
}

impl Sleeper {
    fn start(tag: u32) -> Sleeper {
        let arg = format!("86400.{}{tag:03}", std::process::id());
        let child = Command::new("sleep")
            .arg(&arg)
            .spawn()
            .expect("sleep starts");
        Sleeper { child, arg }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A rule matching this sleep and no other process.
    fn rule(&self, name: &str) -> String {
        format!(
            "[[agents]]\nname = \"{name}\"\ncomm = \"sleep\"\nargv = \"sleep {}\"\n",
            self.arg
        )
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn running_processes_a_rule_matches_are_adopted() {
    let sleeper = Sleeper::start(1);
    let pid = sleeper.pid();
    let kernel = FakeKernel::default();
    let mut p = discovering(&sleeper.rule("sleeper"), &kernel);
    assert_eq!(p.adopt_running(), 1);

    let calls = kernel.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let Call::Adopt(adopted, slot) = calls[0] else {
        panic!("not an adoption: {calls:?}");
    };
    assert_eq!(adopted, pid);
    let status = p.status();
    assert_eq!(status.agents.len(), 1);
    let agent = &status.agents[0];
    assert_eq!(
        (
            agent.agent.as_str(),
            agent.root_pid,
            agent.source,
            agent.processes
        ),
        ("sleeper", pid, "adopted", 1)
    );
    assert_eq!(status.discovery.adopted, 1);
    let process = p
        .table()
        .get(pid)
        .expect("the adopted process is in the table");
    assert_eq!(process.agent_slot, slot);
    assert_eq!(process.argv, vec!["sleep".to_string(), sleeper.arg.clone()]);

    // Its exit ends the session.
    p.handle(actor(pid, 0, std::process::id()).agent(slot).exit(1, 0));
    let rows = p.sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].source, "adopted");
    assert_eq!(rows[0].agent, "sleeper");
    assert_eq!(rows[0].pid, Some(pid));
    assert_eq!(rows[0].session_id, agent.session_id);
    assert_eq!(p.status().agents, vec![]);
}

#[test]
fn a_process_the_kernel_already_tracks_is_not_adopted() {
    let sleeper = Sleeper::start(2);
    let kernel = FakeKernel::refusing_adoption();
    let mut p = discovering(&sleeper.rule("sleeper"), &kernel);
    let agents = p.correlator_mut().agents().len();
    assert_eq!(p.adopt_running(), 0);
    assert_eq!(
        p.correlator_mut().agents().len(),
        agents,
        "the refused agent's slot was taken back"
    );
    assert!(
        matches!(kernel.calls()[..], [Call::Adopt(pid, _)] if pid == sleeper.pid()),
        "{:?}",
        kernel.calls()
    );
    assert_eq!(p.status().agents, vec![]);
    assert_eq!(p.status().discovery.adopted, 0);
    assert!(p.table().get(sleeper.pid()).is_none());
}

#[test]
fn with_no_rules_nothing_is_adopted() {
    let kernel = FakeKernel::default();
    let mut p = discovering("", &kernel);
    assert_eq!(p.adopt_running(), 0);
    assert_eq!(kernel.calls(), vec![]);
}

#[test]
fn a_registered_descendant_becomes_an_agent() {
    let sleeper = Sleeper::start(3);
    let pid = sleeper.pid();
    let me = std::process::id();
    let uid = unsafe { libc::getuid() };
    let kernel = FakeKernel::default();
    let mut p = discovering(RULES, &kernel);
    p.correlator_mut().connect(
        7,
        Peer {
            pid: me,
            start_ns: 0,
            uid,
            agent_slot: None,
        },
    );
    let register = Register {
        name: "registered".to_string(),
        pid: Some(pid),
        task: Some("review the diff".to_string()),
    };
    let reply = p.register(7, register, None);
    let Reply::Accepted {
        session_id: Some(session_id),
        ..
    } = &reply
    else {
        panic!("registration refused: {reply:?}");
    };
    let session_id = session_id.clone();
    let status = p.status();
    assert_eq!(
        status.agents,
        vec![AgentStatus {
            agent: "registered".to_string(),
            root_pid: pid,
            session_id: session_id.clone(),
            source: "register",
            processes: 1,
        }]
    );
    assert_eq!(status.discovery.registered, 1);
    assert!(matches!(kernel.calls()[..], [Call::Adopt(adopted, _)] if adopted == pid));

    let (_, _, sink) = p.finish();
    let rows = sink.sessions();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].session_id, session_id);
    assert_eq!(rows[0].source, "register");
    assert_eq!(rows[0].task.as_deref(), Some("review the diff"));
}

#[test]
fn a_registered_process_that_exits_during_adoption_is_refused_and_no_failure() {
    let sleeper = Sleeper::start(3);
    let kernel = FakeKernel {
        gone: true,
        ..FakeKernel::default()
    };
    let mut p = discovering(RULES, &kernel);
    p.correlator_mut().connect(
        7,
        Peer {
            pid: std::process::id(),
            start_ns: 0,
            uid: unsafe { libc::getuid() },
            agent_slot: None,
        },
    );
    let register = Register {
        name: "registered".to_string(),
        pid: Some(sleeper.pid()),
        task: None,
    };
    let agents = p.correlator_mut().agents().len();
    let reply = p.register(7, register, None);
    assert!(
        format!("{reply:?}").contains("exited before it could be tracked"),
        "{reply:?}"
    );
    assert_eq!(
        p.correlator_mut().agents().len(),
        agents + 1,
        "the kernel may have named the slot in an exit: it is never given again"
    );
    let status = p.status();
    assert_eq!(status.agents, vec![]);
    assert_eq!(status.discovery.registered, 0);
    assert_eq!(status.discovery.kernel_errors, 0);
}

#[test]
fn registration_is_the_daemons_only() {
    let mut p = Processor::new(Recorder::default(), Agents::default());
    let register = Register {
        name: "registered".to_string(),
        pid: None,
        task: None,
    };
    let reply = p.register(7, register, None);
    assert!(
        matches!(&reply, Reply::Error { message, .. } if message.contains("daemon")),
        "{reply:?}"
    );
}
