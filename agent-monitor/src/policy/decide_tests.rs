//! Decisions at tool.start (deny rules, extension, inference) and the
//! classification of observed effects.

use serde_json::json;

use super::{EffectKind::*, *};

const POLICY: &str = r#"
name = "decide-tests"

[baseline.loader]
file.read = ["/lib/**", "/usr/lib/**"]

[baseline.work]
file.read = ["{cwd}/**/*.py"]

[sensitive.ssh]
file = ["~/.ssh/**"]

[sensitive.metadata]
severity = "critical"
net.connect = ["169.254.169.254:*"]

[[deny]]
name = "rm-root"
tool = "bash"
reason = "removes everything"
args.command = ["*rm -rf /", "*rm -rf / *"]

[[deny]]
name = "no-writes-to-etc"
tool = "write_file"
args.path = "/etc/**"

[[deny]]
name = "metadata"
args.url.host = "169.254.169.254"

[tools.read_file]
aliases = ["Read"]
file.read = ["{args.file_path|args.path}"]

[tools.write_file]
aliases = ["Write"]
file.write = ["{args.file_path|args.path}"]
file.create = ["{args.file_path|args.path}"]

[tools.fetch]
extend = "allow"
net.connect = ["{args.url.host}:{args.url.port}"]
dns = ["{args.url.host}"]

[tools.bash]
extend = "allow"
infer = "words"
exec = ["/**"]
file.read = ["{cwd}/**"]
file.write = ["{cwd}/**", "/tmp/**"]
"#;

fn policy() -> Policy {
    Policy::from_toml(POLICY).unwrap_or_else(|e| panic!("{e}"))
}

fn effects(json: serde_json::Value) -> Effects {
    serde_json::from_value(json).unwrap()
}

fn covers(envelope: &Envelope, kind: EffectKind, resource: &str) -> bool {
    envelope.covers(&Effect::new(kind, resource)).is_some()
}

#[test]
fn deny_rules_come_first_and_name_themselves() {
    let p = policy();
    let d = p.decide_start("bash", &json!({"command": "sudo rm -rf / --force"}), None);
    assert!(!d.allow);
    assert_eq!(d.name(), "deny");
    assert_eq!(d.rule, "deny.rm-root");
    assert!(d.reason.contains("removes everything"), "{}", d.reason);
    assert!(d.reason.contains("args.command"), "{}", d.reason);
    assert_eq!(d.policy_sha256, p.sha256());
    // The envelope is still derived, so a call that runs anyway is judged.
    assert!(covers(&d.envelope, Exec, "/usr/bin/rm"));

    let ok = p.decide_start("bash", &json!({"command": "rm -rf /tmp/build"}), None);
    assert!(ok.allow, "{}", ok.reason);
    // The rule is for bash only.
    let other = p.decide_start("sh", &json!({"command": "rm -rf /"}), None);
    assert!(other.allow);
}

#[test]
fn deny_rules_match_aliases_urls_and_missing_arguments() {
    let p = policy();
    let d = p.decide_start("Write", &json!({"path": "/etc/cron.d/x"}), None);
    assert_eq!(d.rule, "deny.no-writes-to-etc", "the alias is the tool");
    let d = p.decide_start("Write", &json!({"file_path": "/etc/cron.d/x"}), None);
    assert!(d.allow, "the rule names args.path only");
    let d = p.decide_start(
        "fetch",
        &json!({"url": "http://169.254.169.254/latest/"}),
        None,
    );
    assert_eq!(d.rule, "deny.metadata");
    let d = p.decide_start("anything", &json!({"url": 3}), None);
    assert!(d.allow);
}

#[test]
fn a_named_tool_gets_its_templates() {
    let p = policy();
    let d = p.decide_start("Read", &json!({"file_path": "/home/u/a.txt"}), None);
    assert!(d.allow);
    assert_eq!(d.rule, "tools.read_file");
    assert!(covers(&d.envelope, FileRead, "/home/u/a.txt"));
    assert!(!covers(&d.envelope, FileRead, "/home/u/b.txt"));
    assert!(!covers(&d.envelope, FileWrite, "/home/u/a.txt"));
    // A missing argument leaves a note and no pattern.
    let d = p.decide_start("Read", &json!({"offset": 3}), None);
    assert!(d.allow && d.envelope.is_empty());
    assert!(
        d.notes[0].contains("no usable args.file_path or args.path"),
        "{:?}",
        d.notes
    );
}

#[test]
fn narrower_declarations_narrow_and_wider_ones_need_extend() {
    let p = policy();
    let args = json!({"command": "make", "cwd": "/w"});
    let ctx = Context { cwd: Some("/w") };
    let declared = effects(json!({"file.read": ["src/**"]}));
    let d = p.decide_start_in(&ctx, "bash", &args, Some(&declared));
    assert!(d.allow, "{}", d.reason);
    assert!(covers(&d.envelope, FileRead, "/w/src/main.c"));
    assert!(!covers(&d.envelope, FileRead, "/w/README"), "narrowed");
    assert!(
        covers(&d.envelope, Exec, "/usr/bin/make"),
        "other kinds kept"
    );
    assert!(d.notes.is_empty(), "{:?}", d.notes);

    // read_file does not extend: a wider declaration is refused.
    let declared = effects(json!({"file.read": ["/a.txt", "/etc/passwd"]}));
    let d = p.decide_start("Read", &json!({"file_path": "/a.txt"}), Some(&declared));
    assert!(!d.allow);
    assert_eq!(d.rule, "tools.read_file.extend");
    assert!(d.reason.contains("file.read `/etc/passwd`"), "{}", d.reason);
    assert!(covers(&d.envelope, FileRead, "/a.txt"));
    assert!(!covers(&d.envelope, FileRead, "/etc/passwd"));

    // fetch does: a redirect's host may be declared.
    let declared = effects(json!({"net.connect": ["example.com:443", "cdn.example.net:443"]}));
    let d = p.decide_start(
        "fetch",
        &json!({"url": "https://example.com/"}),
        Some(&declared),
    );
    assert!(d.allow);
    let cdn = Effect::new(NetConnect, "1.2.3.4:443").named("cdn.example.net");
    assert_eq!(d.envelope.covers(&cdn).unwrap().name, "declared");
    assert!(
        d.notes.iter().any(|n| n.contains("cdn.example.net:443")),
        "{:?}",
        d.notes
    );
    // dns was not declared, so the derived pattern stays.
    assert!(covers(&d.envelope, Dns, "example.com"));
}

#[test]
fn a_declared_pattern_that_is_not_a_pattern_is_refused() {
    let p = policy();
    let declared = effects(json!({"net.connect": ["no port here"]}));
    let d = p.decide_start("fetch", &json!({"url": "https://e.com/"}), Some(&declared));
    assert!(!d.allow);
    assert_eq!(d.rule, "declared.invalid");
    assert!(d.reason.contains("no port here"), "{}", d.reason);
    // An empty declaration is no declaration.
    let d = p.decide_start("Read", &json!({"path": "/a"}), Some(&Effects::default()));
    assert!(d.allow && covers(&d.envelope, FileRead, "/a"));
}

#[test]
fn unknown_tools_get_an_inferred_envelope() {
    let p = policy();
    let args = json!({
        "input": "/data/in.csv",
        "options": {"mirror": "https://files.example.org/pkg"},
        "note": "relative/path and plain words",
        "n": 3,
    });
    let d = p.decide_start("summarize", &args, None);
    assert!(d.allow);
    assert_eq!(d.rule, "infer");
    let env = &d.envelope;
    assert!(covers(env, FileRead, "/data/in.csv"));
    assert!(
        covers(env, FileRead, "/data/in.csv/part-0"),
        "it may be a directory"
    );
    assert!(
        !covers(env, FileWrite, "/data/in.csv"),
        "inference never grants writes"
    );
    assert!(!covers(env, FileRead, "/data/other.csv"));
    let conn = Effect::new(NetConnect, "5.6.7.8:443").named("files.example.org");
    assert!(env.covers(&conn).is_some());
    assert!(covers(env, Dns, "files.example.org"));
    assert!(!env.rules().any(|r| r.pattern.contains("relative")));
    // The root is itself, not the whole tree.
    let d = p.decide_start("summarize", &json!({"dir": "/"}), None);
    assert!(covers(&d.envelope, FileRead, "/"));
    assert!(!covers(&d.envelope, FileRead, "/srv/x"));
}

#[test]
fn inference_can_be_turned_off() {
    let text = format!("{POLICY}\n[settings]\ninfer_unknown_tools = false\n");
    let p = Policy::from_toml(&text).unwrap();
    let d = p.decide_start("summarize", &json!({"input": "/data/in.csv"}), None);
    assert!(d.allow);
    assert_eq!(d.rule, "unknown");
    assert!(d.envelope.is_empty());
    // Declared effects are then the whole envelope.
    let declared = effects(json!({"file.read": ["/data/in.csv"]}));
    let d = p.decide_start("summarize", &json!({}), Some(&declared));
    assert!(d.allow && covers(&d.envelope, FileRead, "/data/in.csv"));
    // ... unless unknown tools may not extend.
    let text = format!("{POLICY}\n[settings]\nunknown_tool_extend = \"deny\"\n");
    let p = Policy::from_toml(&text).unwrap();
    let d = p.decide_start("summarize", &json!({"input": "/a"}), Some(&declared));
    assert!(!d.allow);
    assert_eq!(d.rule, "settings.unknown_tool_extend");
}

#[test]
fn words_inference_finds_paths_and_urls_in_a_command() {
    let p = policy();
    let cmd =
        "cat /etc/hostname 2>/dev/null && curl -sS --output=/tmp/x 'https://example.com:8443/a'";
    let d = p.decide_start("bash", &json!({ "command": cmd }), None);
    let env = &d.envelope;
    assert!(covers(env, FileRead, "/etc/hostname"));
    assert!(covers(env, FileRead, "/dev/null"));
    let conn = Effect::new(NetConnect, "9.9.9.9:8443").named("example.com");
    assert_eq!(env.covers(&conn).unwrap().name, "tools.bash.infer");
    assert!(!covers(env, FileDelete, "/etc/hostname"));
    // Without a working directory, `{cwd}` patterns are skipped, noted.
    assert!(d.notes.iter().any(|n| n.contains("cwd")), "{:?}", d.notes);
}

#[test]
fn classify_picks_the_open_call_that_covers_the_effect() {
    let p = policy();
    let read = p.decide_start("Read", &json!({"file_path": "/srv/a.txt"}), None);
    let write = p.decide_start("Write", &json!({"file_path": "/srv/b.txt"}), None);
    let calls = [("call-1", &read.envelope), ("call-2", &write.envelope)];
    let effect = Effect::new(FileWrite, "/srv/b.txt");
    match p.classify(&effect, &calls) {
        Verdict::Declared { call_id, rule } => {
            assert_eq!(call_id, "call-2");
            assert_eq!(rule.name, "tools.write_file");
        }
        other => panic!("{other:?}"),
    }
    let effect = Effect::new(FileRead, "/srv/a.txt");
    assert!(matches!(
        p.classify(&effect, &calls),
        Verdict::Declared {
            call_id: "call-1",
            ..
        }
    ));
    let effect = Effect::new(FileRead, "/lib/x86_64-linux-gnu/libc.so.6");
    match p.classify(&effect, &calls) {
        Verdict::Baseline { rule } => assert_eq!(rule.name, "baseline.loader"),
        other => panic!("{other:?}"),
    }
    let effect = Effect::new(FileRead, "/srv/b.txt");
    assert_eq!(p.classify(&effect, &calls), Verdict::Undeclared);
    // Both cover: the first given wins.
    let again = p.decide_start("Read", &json!({"file_path": "/srv/a.txt"}), None);
    let calls = [("inner", &again.envelope), ("outer", &read.envelope)];
    let effect = Effect::new(FileRead, "/srv/a.txt");
    assert!(matches!(
        p.classify(&effect, &calls),
        Verdict::Declared {
            call_id: "inner",
            ..
        }
    ));
}

#[test]
fn a_session_baseline_fills_in_the_working_directory() {
    let p = policy();
    let script = Effect::new(FileRead, "/home/u/agent/tools/search.py");
    assert_eq!(p.classify(&script, &[]), Verdict::Undeclared);
    let base = p.baseline_in(&Context {
        cwd: Some("/home/u/agent"),
    });
    match p.classify_in(&script, &base, &[]) {
        Verdict::Baseline { rule } => {
            assert_eq!(
                rule.to_string(),
                "baseline.work file.read /home/u/agent/**/*.py"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(
        base.covers(&Effect::new(FileRead, "/lib/libc.so.6"))
            .is_some()
    );
}

#[test]
fn sensitive_alerts_even_inside_a_declared_call() {
    let p = policy();
    let d = p.decide_start(
        "Read",
        &json!({"file_path": "/home/u/.ssh/id_ed25519"}),
        None,
    );
    assert!(d.allow);
    let effect = Effect::new(FileRead, "/home/u/.ssh/id_ed25519");
    let calls = [("c", &d.envelope)];
    assert!(matches!(
        p.classify(&effect, &calls),
        Verdict::Declared { .. }
    ));
    let (rule, severity) = p.sensitive(&effect).expect("sensitive");
    assert_eq!(
        (rule.name.as_str(), severity),
        ("sensitive.ssh", Severity::High)
    );
    let imds = Effect::new(NetConnect, "169.254.169.254:80");
    assert_eq!(p.sensitive(&imds).unwrap().1, Severity::Critical);
    assert!(
        p.sensitive(&Effect::new(FileRead, "/home/u/notes.txt"))
            .is_none()
    );
}

#[test]
fn protected_directories_are_critical() {
    let mut p = policy();
    let hash = p.sha256().to_string();
    p.protect("/srv/evidence/").unwrap();
    for (kind, path) in [
        (FileDelete, "/srv/evidence/events-1.parquet"),
        (FileRead, "/srv/evidence"),
    ] {
        let (rule, severity) = p.sensitive(&Effect::new(kind, path)).expect(path);
        assert_eq!(
            (rule.name.as_str(), severity),
            ("sensitive.monitor", Severity::Critical)
        );
    }
    assert!(
        p.sensitive(&Effect::new(FileRead, "/srv/evidence2/x"))
            .is_none()
    );
    assert!(
        p.sensitive(&Effect::new(FileRead, "/home/u/.ssh/x"))
            .is_some(),
        "kept"
    );
    assert_eq!(p.sha256(), hash);
    assert!(matches!(
        p.protect("relative"),
        Err(PolicyError::Protect { .. })
    ));
}
