use super::*;

#[test]
fn the_embedded_defaults_parse_and_an_empty_file_gives_them() {
    let defaults = Config::defaults();
    assert_eq!(Config::parse("", "x").unwrap(), defaults);
    assert_eq!(
        defaults.api.socket,
        PathBuf::from("/run/agent-monitor/api.sock")
    );
    assert_eq!(defaults.api.mode, 0o660);
    assert_eq!(defaults.kernel.ring_mib, 8);
    // The daemon's default ring is the one the kernel programs declare,
    // which `run` uses and its summary names.
    assert_eq!(
        defaults.kernel.ring_mib << 20,
        agent_monitor_common::maps::EVENTS_BYTES
    );
    assert_eq!(defaults.capture.policy, capture::Policy::Redact);
    assert!(defaults.metrics.listen.is_none());
    assert!(defaults.rules.is_empty());
}

#[test]
fn a_file_overrides_only_the_keys_it_sets() {
    let config = Config::parse(
        "[evidence]\ndir = \"/srv/evidence\"\n[api]\ngroup = \"root\"\n",
        "test.toml",
    )
    .unwrap();
    assert_eq!(config.evidence.dir, PathBuf::from("/srv/evidence"));
    assert_eq!(config.evidence.rotate_seconds, 60);
    assert_eq!(config.api.mode, 0o660);
    assert_eq!(config.api.group, Some(Group::Name("root".into())));
    assert_eq!(config.api.group.unwrap().resolve(), Ok(0));
}

fn error(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn errors_name_the_file_and_the_key() {
    assert!(error("[api]\nmode = \"0666\"").contains("test.toml: api.mode: "));
    assert!(error("[api]\nmode = \"rw\"").contains("api.mode"));
    assert!(error("[kernel]\nring_mib = 3").contains("kernel.ring_mib"));
    assert!(error("[capture]\npolicy = \"most\"").contains("capture.policy"));
    assert!(error("[metrics]\nlisten = \"0.0.0.0:9464\"").contains("not a loopback"));
    assert!(error("[evidence]\ndir = \"relative\"").contains("evidence.dir"));
    assert!(error("[alerts]\nwebhook_headers = [\"x: y\"]").contains("no webhook"));
    // Unknown keys are refused, not ignored: a typo must not silently
    // leave a default in force.
    assert!(error("[evidence]\ndri = \"/x\"").contains("dri"));
    assert!(
        error("[[agents]]\nname = \"a\"\nexe = \"/bin/a\"\nexec = \"/bin/b\"").contains("exec")
    );
    assert_eq!(
        error("[api]\nmode = \"0660\"\ngarbage =\n"),
        "test.toml: line 3: string values must be quoted, expected literal string"
    );
}

#[test]
fn rules_need_a_key_the_kernel_can_match() {
    let message = error("[[agents]]\nname = \"a\"\nargv = \"*agent*\"");
    assert!(message.contains("agents[0].exe"), "{message}");
    assert!(
        error("[[agents]]\nname = \"a\"\ncomm = \"a-very-long-task-name\"")
            .contains("agents[0].comm")
    );
    assert!(error("[[agents]]\nname = \"a\"\nexe = \"bin/a\"").contains("absolute"));
    assert!(error("[[agents]]\nname = \"\"\nuid = 1").contains("agents[0].name"));
    assert!(
        error("[[agents]]\nname = \"a\"\nuid = 1\ncontainer_id = \"abc\"").contains("container_id")
    );
    assert!(error("[[agents]]\nname = \"a\"\nuid = 1\nargv = \"[\"").contains("agents[0].argv"));
    let many: String = (0..=MAX_RULES)
        .map(|i| format!("[[agents]]\nname = \"a{i}\"\nuid = {i}\n"))
        .collect();
    assert!(error(&many).contains("at most 64"));
}

fn rules(text: &str) -> Rules {
    Config::parse(text, "test.toml").unwrap().rules
}

#[test]
fn every_condition_of_a_rule_must_hold_and_the_first_match_wins() {
    let rules = rules(
        r#"
[[agents]]
name = "py-agent"
comm = "python3"
argv = "* agent.py*"
[[agents]]
name = "claude"
exe = "/usr/local/bin/claude"
uid = 1000
[[agents]]
name = "boxed"
uid = 1000
cgroup = "/system.slice/box-*.service"
container_id = "0123456789ab"
"#,
    );
    let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let agent_py = argv(&["python3", "agent.py", "--fast"]);
    let other_py = argv(&["python3", "other.py"]);
    let candidate = |exe, comm, argv: &'static [String], uid| Candidate {
        exe: Some(exe),
        comm,
        argv,
        uid,
        cgroup: None,
        container_id: None,
    };
    let agent_py: &'static [String] = agent_py.leak();
    let other_py: &'static [String] = other_py.leak();
    let name = |c: &Candidate| rules.agent_for(c).map(|r| r.name.clone());
    assert_eq!(
        name(&candidate("/usr/bin/python3", "python3", agent_py, 5)).as_deref(),
        Some("py-agent")
    );
    assert_eq!(
        name(&candidate("/usr/bin/python3", "python3", other_py, 5)),
        None
    );
    assert_eq!(
        name(&candidate("/usr/local/bin/claude", "claude", &[], 1000)).as_deref(),
        Some("claude")
    );
    assert_eq!(
        name(&candidate("/usr/local/bin/claude", "claude", &[], 1001)),
        None
    );
    let mut boxed = candidate("/bin/sh", "sh", &[], 1000);
    assert_eq!(name(&boxed), None);
    boxed.cgroup = Some("/system.slice/box-1.service");
    boxed.container_id = Some("0123456789abcdef");
    assert_eq!(name(&boxed).as_deref(), Some("boxed"));
    boxed.container_id = Some("ffff56789abcdef0");
    assert_eq!(name(&boxed), None);
    assert_eq!(
        rules.kernel_keys(),
        KernelKeys {
            exes: vec!["/usr/local/bin/claude".into()],
            comms: vec!["python3".into()],
            uids: vec![1000],
            gated_by_exe: false,
        }
    );
}

#[test]
fn only_rules_that_all_name_a_host_program_can_be_gated_at_exec() {
    let exe_only = r#"
[[agents]]
name = "claude"
exe = "/usr/local/bin/claude"
uid = 1000

[[agents]]
name = "py"
exe = "/usr/bin/python3"
argv = "python3 agent.py*"
"#;
    assert!(rules(exe_only).kernel_keys().gated_by_exe);
    let with_comm_only = format!("{exe_only}\n[[agents]]\nname = \"c\"\ncomm = \"codex\"\n");
    assert!(!rules(&with_comm_only).kernel_keys().gated_by_exe);
    let in_container = format!(
        "{exe_only}\n[[agents]]\nname = \"boxed\"\nexe = \"/app/agent\"\ncontainer_id = \"0123456789ab\"\n"
    );
    assert!(!rules(&in_container).kernel_keys().gated_by_exe);
    // The uid of a rule with an exe is no key of its own.
    assert_eq!(rules(exe_only).kernel_keys().uids, Vec::<u32>::new());
}

#[test]
fn identity_mappings_give_the_first_matching_spiffe_id() {
    let rules = rules(
        r#"
[[identity]]
spiffe_id = "spiffe://example.org/ci"
agent = "claude"
uid = 1001
[[identity]]
spiffe_id = "spiffe://example.org/any-claude"
agent = "claude"
"#,
    );
    let ci = Candidate {
        uid: 1001,
        ..Candidate::default()
    };
    let dev = Candidate {
        uid: 1000,
        ..Candidate::default()
    };
    assert_eq!(
        rules.spiffe_id_for("claude", &ci),
        Some("spiffe://example.org/ci")
    );
    assert_eq!(
        rules.spiffe_id_for("claude", &dev),
        Some("spiffe://example.org/any-claude")
    );
    assert_eq!(rules.spiffe_id_for("other", &ci), None);
    assert!(
        error("[[identity]]\nspiffe_id = \"http://x\"\nuid = 1").contains("identity[0].spiffe_id")
    );
    assert!(error("[[identity]]\nspiffe_id = \"spiffe://x/y\"").contains("selector"));
}
