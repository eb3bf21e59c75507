//! End-to-end: `agent-monitor daemon` as a host monitor. It is started,
//! reloaded and stopped by running the binary directly (no systemd), and
//! finds its agents by an exe rule, by registration, by adoption of a
//! process that was running before it, and through `run`. Run as root
//! (`cargo xtask test`).

#[path = "daemon/harness.rs"]
mod harness;
#[path = "support/mod.rs"]
mod support;

use std::{
    os::unix::fs::MetadataExt,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use harness::{
    Daemon, agent_program, blocking_waits, exec_gate_marks, release_reader, run_ok, sys_exit_links,
    temp_dir,
};
use serde_json::{Value, json};
use support::{duckdb, monitor_command, real_python, verify};

#[test]
fn two_agents_are_found_one_by_an_exe_rule_one_by_registration() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "ruled-agent");
    let mut daemon = Daemon::start(
        dir.path(),
        &format!(
            "[[agents]]\nname = \"ruled\"\nexe = \"{}\"\n\
             [[identity]]\nspiffe_id = \"spiffe://test.local/ruled\"\nagent = \"ruled\"\n",
            program.display()
        ),
    );
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    let script = format!(
        "import sys; sys.path.insert(0, {sdk:?})\n\
         import agent_monitor as am\n\
         print(am.register('registered', task='read the hostname', path={socket:?}), flush=True)\n\
         open('/etc/hostname').read()\n",
        sdk = sdk.display().to_string(),
        socket = daemon.socket.display().to_string(),
    );
    let out = Command::new(real_python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registered_session = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(registered_session.len(), 36, "{registered_session}");
    let status = daemon.wait_for("both agents to be found and to end", |s| {
        s["discovery"]["by_rule"] == 1
            && s["discovery"]["registered"] == 1
            && s["agents"] == json!([])
    });
    assert_eq!(status["discovery"]["dismissed"], 0, "{status:#}");
    daemon.stop();

    let sessions = duckdb(&format!(
        "select agent, source, spiffe_id, task, ended is not null from {} order by agent",
        daemon.table("sessions")
    ));
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(sessions[0][0], "registered");
    assert_eq!(sessions[0][1], "register");
    assert_eq!(sessions[0][2], Value::Null);
    assert_eq!(sessions[0][3], "read the hostname");
    assert_eq!(sessions[1][0], "ruled");
    assert_eq!(sessions[1][1], "rule");
    assert_eq!(sessions[1][2], "spiffe://test.local/ruled");
    assert_eq!(sessions[0][4], true);
    assert_eq!(sessions[1][4], true);
    // Each agent's read of /etc/hostname is in its own session; the
    // ruled agent's from its exec on, through its child `cat`.
    let reads = duckdb(&format!(
        "select e.agent, count(*) from {} e join {} s using (session_id) \
         where e.kind = 'file.open' and e.path = '/etc/hostname' group by e.agent order by e.agent",
        daemon.table("events"),
        daemon.table("sessions")
    ));
    assert_eq!(reads, vec![json!(["registered", 1]), json!(["ruled", 1])]);
    let first = duckdb(&format!(
        "select kind, list_aggregate(argv, 'string_agg', ' ') from {} where agent = 'ruled' order by seq limit 1",
        daemon.table("events")
    ));
    assert_eq!(
        first[0][0], "process.exec",
        "the ruled agent's exec is its first event"
    );
    assert_eq!(verify(&daemon.evidence).0, 0);
}

#[test]
fn a_process_running_before_the_daemon_starts_is_adopted() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "early-agent");
    let go = dir.path().join("go");
    let mut early = Command::new(&program)
        .args([
            "-c",
            &format!(
                "while [ ! -e {} ]; do sleep 0.05; done; cat /etc/hostname > /dev/null",
                go.display()
            ),
        ])
        .spawn()
        .unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        &format!(
            "[[agents]]\nname = \"early\"\nexe = \"{}\"\n",
            program.display()
        ),
    );
    let status = daemon.wait_for("the early agent to be adopted", |s| {
        s["discovery"]["adopted"] == 1
    });
    assert_eq!(status["agents"][0]["agent"], "early", "{status:#}");
    assert_eq!(status["agents"][0]["root_pid"], early.id(), "{status:#}");
    assert_eq!(status["agents"][0]["source"], "adopted");
    std::fs::write(&go, "").unwrap();
    assert!(early.wait().unwrap().success());
    daemon.wait_for("the adopted agent to end", |s| s["agents"] == json!([]));
    daemon.stop();
    let rows = duckdb(&format!(
        "select s.source, e.pid from {} e join {} s using (session_id) \
         where e.kind = 'file.open' and e.path = '/etc/hostname'",
        daemon.table("events"),
        daemon.table("sessions")
    ));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "adopted");
}

#[test]
fn a_restart_continues_the_chain_and_verify_passes_across_it() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "restart-agent");
    let rule = format!(
        "[[agents]]\nname = \"r\"\nexe = \"{}\"\n",
        program.display()
    );
    let mut daemon = Daemon::start(dir.path(), &rule);
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    daemon.wait_for("the first agent", |s| {
        s["discovery"]["by_rule"] == 1 && s["agents"] == json!([])
    });
    daemon.stop();
    let chain = dir.path().join("evidence/chain.log");
    let before = std::fs::read_to_string(&chain).unwrap().lines().count();
    assert!(before > 0);

    daemon.spawn();
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    daemon.wait_for("the second agent", |s| {
        s["discovery"]["by_rule"] == 1 && s["agents"] == json!([])
    });
    daemon.stop();
    let links: Vec<Value> = std::fs::read_to_string(&chain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(links.len() > before);
    // The first link after the restart continues from the last before it.
    assert_eq!(links[before]["prev"], links[before - 1]["link"]);
    let (code, out) = verify(&daemon.evidence);
    assert_eq!(code, 0, "{out}");
    let sessions = duckdb(&format!(
        "select count(*) from {}",
        daemon.table("sessions")
    ));
    assert_eq!(sessions, vec![json!([2])]);
}

#[test]
fn a_tracked_process_signalling_the_daemon_raises_a_tampering_alert() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "rogue-agent");
    let mut daemon = Daemon::start(
        dir.path(),
        &format!(
            "[[agents]]\nname = \"rogue\"\nexe = \"{}\"\n",
            program.display()
        ),
    );
    // SIGCONT: harmless to the daemon, and still a signal aimed at it.
    run_ok(Command::new(&program).args(["-c", &format!("kill -CONT {}", daemon.pid())]));
    let status = daemon.wait_for("the tampering alert", |s| {
        s["alerts"]["tampering"].as_u64() >= Some(1)
    });
    assert_eq!(status["alerts"]["tampering"], 1, "{status:#}");
    daemon.stop();
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl")).unwrap();
    let tampering: Vec<Value> = alerts
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["kind"] == "tampering")
        .collect();
    assert_eq!(tampering.len(), 1, "{alerts}");
    assert_eq!(tampering[0]["agent"], "rogue");
    let stored = duckdb(&format!(
        "select severity from {} where kind = 'tampering'",
        daemon.table("alerts")
    ));
    assert_eq!(stored.len(), 1);
}

#[test]
fn sighup_reloads_the_rules_and_an_invalid_config_keeps_the_old_one() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "late-agent");
    let mut daemon = Daemon::start(dir.path(), "");
    run_ok(Command::new(&program).args(["-c", "true"]));
    // Give the daemon time to see the exec, had it been tracked.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.status()["discovery"]["by_rule"], 0);

    let rule = format!(
        "[[agents]]\nname = \"late\"\nexe = \"{}\"\n",
        program.display()
    );
    daemon.reload(dir.path(), &rule);
    daemon.wait_for("the reload", |s| s["discovery"]["rules"] == 1);
    run_ok(Command::new(&program).args(["-c", "true"]));
    daemon.wait_for("the late agent", |s| s["discovery"]["by_rule"] == 1);

    std::fs::write(&daemon.config, "[[agents]]\nname = \"broken\"\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let status = daemon.wait_for("the refused reload's alert", |s| {
        s["alerts"]["config_invalid"] == 1
    });
    assert_eq!(
        status["discovery"]["rules"], 1,
        "the old rules stay in force"
    );
    run_ok(Command::new(&program).args(["-c", "true"]));
    daemon.wait_for("the late agent again", |s| s["discovery"]["by_rule"] == 2);
    daemon.stop();
    assert!(
        daemon.log_text().contains("agents[0].exe"),
        "{}",
        daemon.log_text()
    );
}

#[test]
fn run_hands_its_command_to_a_running_daemon() {
    let dir = temp_dir();
    let mut daemon = Daemon::start(dir.path(), "");
    let out = daemon
        .run_handed("cat /etc/hostname > /dev/null; echo \"$AGENT_MONITOR_SESSION\"; exit 3")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&session),
        "run names the daemon's session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.wait_for("the handed agent to end", |s| {
        s["discovery"]["registered"] == 1 && s["agents"] == json!([])
    });
    daemon.stop();
    let rows = duckdb(&format!(
        "select s.agent, s.source, e.kind from {} e join {} s using (session_id) \
         where s.session_id = '{session}' and (e.kind = 'process.exec' or e.path = '/etc/hostname') order by e.seq",
        daemon.table("events"),
        daemon.table("sessions")
    ));
    // The command's own exec is recorded: it was tracked before it ran.
    assert_eq!(
        rows[0],
        json!(["handed", "register", "process.exec"]),
        "{rows:?}"
    );
    assert!(rows.iter().any(|r| r[2] == "file.open"), "{rows:?}");
}

#[test]
fn the_syscall_probes_are_attached_only_while_something_can_be_tracked() {
    let dir = temp_dir();
    let program = agent_program(dir.path(), "probed-agent");
    let mut daemon = Daemon::start(dir.path(), "");
    // With no rule and no agent, nothing can be tracked.
    daemon.wait_for("the probes to be detached", |s| {
        s["syscall_probes"]["state"] == "detached"
    });
    assert_eq!(sys_exit_links(daemon.pid()), 0);
    // Quiet, it wakes for its own timers, about 20 times a second, and no
    // longer every 20 ms to drain a ring no probe writes to (70 a second).
    let wakeups = blocking_waits(daemon.pid(), Duration::from_secs(2));
    assert!(
        wakeups < 80,
        "the idle daemon blocked {wakeups} times in 2 s"
    );

    // A command handed over by `run` is tracked before it execs, so the
    // probes are back before its first syscall.
    let mut handed = daemon
        .run_handed("cat /etc/hostname > /dev/null; read line; exit 0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status = daemon.wait_for("the handed agent", |s| s["agents"] != json!([]));
    assert_eq!(status["syscall_probes"]["state"], "attached", "{status:#}");
    assert_eq!(sys_exit_links(daemon.pid()), 1);
    drop(handed.stdin.take());
    assert!(handed.wait().unwrap().success());
    let status = daemon.wait_for("the probes to be detached again", |s| {
        s["agents"] == json!([]) && s["syscall_probes"]["state"] == "detached"
    });
    assert_eq!(status["syscall_probes"]["attaches"], 2, "{status:#}");
    assert_eq!(sys_exit_links(daemon.pid()), 0);

    // Rules that name their programs hold nothing while they wait: the
    // exec gate attaches the probes when one of those files is exec'd,
    // before the exec goes on.
    let unheld = agent_program(dir.path(), "unheld-agent");
    let rules = format!(
        "[[agents]]\nname = \"probed\"\nexe = \"{}\"\n\
         [[agents]]\nname = \"unheld\"\nexe = \"{}\"\n",
        program.display(),
        unheld.display()
    );
    daemon.reload(dir.path(), &rules);
    // The reload held the probes while it changed the keys; then they go.
    daemon.wait_for("the rules, gated", |s| {
        s["discovery"]["rules"] == 2
            && s["syscall_probes"]["gated"] == 2
            && s["syscall_probes"]["state"] == "detached"
    });
    assert_eq!(sys_exit_links(daemon.pid()), 0);
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    daemon.wait_for("the gated agent to end, and the probes to go", |s| {
        s["discovery"]["by_rule"] == 1
            && s["agents"] == json!([])
            && s["syscall_probes"]["state"] == "detached"
    });
    // An upgrade renames a new file into place: within a second the gate
    // holds the new file's execs.
    let fresh = dir.path().join("bin/probed-agent.new");
    std::fs::copy("/bin/sh", &fresh).unwrap();
    std::fs::rename(&fresh, &program).unwrap();
    let upgraded = std::fs::metadata(&program).unwrap().ino();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exec_gate_marks(daemon.pid()).contains(&upgraded) {
        assert!(
            Instant::now() < deadline,
            "the upgraded file was never marked"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    daemon.wait_for("the upgraded agent to end, and the probes to go", |s| {
        s["discovery"]["by_rule"] == 2
            && s["agents"] == json!([])
            && s["syscall_probes"]["state"] == "detached"
    });

    // In another mount namespace the rule's path names another file,
    // whose exec the gate does not hold. The kernel's rule key tracks the
    // process all the same; the probes are attached when its exec is
    // read, and an alert says that its syscalls until then were missed.
    let other = agent_program(dir.path(), "other-sh");
    let go = dir.path().join("go");
    run_ok(Command::new("mkfifo").arg(&go));
    let script = format!(
        "mount --bind {} {} && exec {} -c 'read line < {}; cat /etc/hostname > /dev/null'",
        other.display(),
        unheld.display(),
        unheld.display(),
        go.display()
    );
    let mut ungated = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .spawn()
        .unwrap();
    // It reads the file once the daemon has read its exec.
    daemon.wait_for("the ungated agent", |s| {
        s["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["agent"] == "unheld"))
            && s["syscall_probes"]["state"] == "attached"
    });
    release_reader(&go, &mut ungated);
    assert!(ungated.wait().unwrap().success());
    daemon.wait_for("the ungated agent to end", |s| {
        s["discovery"]["by_rule"] == 3 && s["agents"] == json!([])
    });

    // A rule with no program can track a process at any exec: loaded, it
    // holds them.
    daemon.reload(
        dir.path(),
        "[[agents]]\nname = \"by-comm\"\ncomm = \"probed-agent\"\n",
    );
    daemon.wait_for("the comm rule", |s| {
        s["discovery"]["rules"] == 1 && s["syscall_probes"]["state"] == "attached"
    });
    std::thread::sleep(Duration::from_millis(2500));
    let status = daemon.status();
    assert_eq!(status["syscall_probes"]["state"], "attached", "{status:#}");
    assert_eq!(status["syscall_probes"]["gated"], 0, "{status:#}");
    run_ok(Command::new(&program).args(["-c", "cat /etc/hostname > /dev/null"]));
    daemon.wait_for("the comm agent to end", |s| {
        s["discovery"]["by_rule"] == 4 && s["agents"] == json!([])
    });
    daemon.reload(dir.path(), "");
    daemon.wait_for("the rule to go and the probes with it", |s| {
        s["discovery"]["rules"] == 0 && s["syscall_probes"]["state"] == "detached"
    });
    daemon.stop();

    // Every agent's read was recorded.
    let reads = duckdb(&format!(
        "select agent, count(*) from {} where kind = 'file.open' and path = '/etc/hostname' \
         group by agent order by agent",
        daemon.table("events")
    ));
    assert_eq!(
        reads,
        vec![
            json!(["by-comm", 1]),
            json!(["handed", 1]),
            json!(["probed", 2]),
            json!(["unheld", 1])
        ]
    );
    // The gated program, before and after its upgrade, was watched from
    // its first syscalls: the dynamic loader's, before its own code ran.
    let loader = duckdb(&format!(
        "select count(*) from {} where agent = 'probed' and comm = 'probed-agent' \
         and kind = 'file.open' and path = '/etc/ld.so.cache'",
        daemon.table("events")
    ));
    assert_eq!(loader, vec![json!([2])]);
    let losses = duckdb(&format!(
        "select agent, message from {} where kind = 'event_loss'",
        daemon.table("alerts")
    ));
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert_eq!(losses[0][0], "unheld");
    let message = losses[0][1].as_str().unwrap();
    assert!(
        message.starts_with("the syscall probes were attached ")
            && message.contains("(unheld-agent) exec'd"),
        "{message}"
    );
}

#[test]
fn config_default_prints_a_config_that_checks() {
    let out = monitor_command()
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = temp_dir();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let check = monitor_command()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(&file, "[api]\nmode = \"0666\"\n").unwrap();
    let check = monitor_command()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&check.stderr).contains("api.mode"));
}

#[test]
fn the_installed_unit_passes_systemd_analyze_verify() {
    let prefix = temp_dir();
    let out = monitor_command()
        .args(["install", "--no-start", "--prefix"])
        .arg(prefix.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit_path = prefix
        .path()
        .join("etc/systemd/system/agent-monitor.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(unit.contains("ProtectSystem=strict"), "{unit}");
    assert!(unit.contains("CapabilityBoundingSet="), "{unit}");
    let installed = prefix.path().join("usr/local/bin/agent-monitor");
    assert!(installed.exists());
    // systemd-analyze checks that ExecStart's program exists on this
    // root: point it at the copy install made.
    let unit = unit.replace(
        "/usr/local/bin/agent-monitor",
        &installed.display().to_string(),
    );
    let checked = prefix.path().join("agent-monitor.service");
    std::fs::write(&checked, unit).unwrap();
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg(&checked)
        .output()
    {
        Ok(out) => assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => {
            eprintln!("systemd-analyze is not installed ({err}): the unit was not verified")
        }
    }
}
