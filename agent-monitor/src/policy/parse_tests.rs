//! Loading: a good policy, and each way a policy can be wrong, with the
//! line and field its error names.

use super::*;

fn load(text: &str) -> Policy {
    Policy::from_toml(text).unwrap_or_else(|e| panic!("policy should load: {e}\n{text}"))
}

/// The error `text` gives, as displayed.
fn error(text: &str) -> (PolicyError, String) {
    match Policy::from_toml(text) {
        Ok(_) => panic!("policy should not load:\n{text}"),
        Err(e) => {
            let shown = e.to_string();
            (e, shown)
        }
    }
}

fn assert_error(text: &str, line: usize, parts: &[&str]) {
    let (e, shown) = error(text);
    assert_eq!(e.line(), Some(line), "wrong line in `{shown}`");
    for part in parts {
        assert!(shown.contains(part), "`{shown}` should mention `{part}`");
    }
}

const GOOD: &str = r#"
version = 1
name = "team"
description = "for tests"

[settings]
infer_unknown_tools = false
unknown_tool_extend = "deny"
homes = ["/home/agent/"]

[baseline.loader]
file.read = ["/lib/**", "/etc/ld.so.cache"]

[sensitive.keys]
severity = "critical"
file = ["~/.ssh/**"]

[[deny]]
name = "no-rm"
tool = "bash"
args.command = "*rm -rf*"

[tools.read_file]
aliases = ["Read"]
file.read = ["{args.file_path|args.path}"]

[tools.fetch]
extend = "allow"
infer = "args"
net.connect = ["{args.url.host}:{args.url.port}"]
"#;

#[test]
fn a_good_policy_loads_with_its_settings() {
    let policy = load(GOOD);
    assert_eq!(policy.name(), "team");
    assert_eq!(policy.description(), "for tests");
    assert_eq!(policy.version(), 1);
    assert!(!policy.infers_unknown_tools());
    assert_eq!(policy.settings.homes, ["/home/agent"]);
    assert_eq!(policy.settings.unknown_tool_extend, Extend::Deny);
    assert_eq!(policy.tool_name("Read"), Some("read_file"));
    assert_eq!(policy.tool_name("read_file"), Some("read_file"));
    assert_eq!(policy.tool_name("read"), None, "names are case-sensitive");
    let ssh = Effect::new(EffectKind::FileWrite, "/home/agent/.ssh/id_ed25519");
    let (rule, severity) = policy.sensitive(&ssh).expect("~ is the configured home");
    assert_eq!(
        (rule.name.as_str(), severity),
        ("sensitive.keys", Severity::Critical)
    );
}

#[test]
fn an_empty_policy_is_valid_and_allows_by_inference() {
    let policy = load("");
    assert!(policy.infers_unknown_tools());
    assert!(policy.baseline().is_empty());
    assert_eq!(policy.settings.homes, ["/root", "/home/*"]);
}

#[test]
fn the_hash_is_the_sha256_of_the_source_bytes() {
    assert_eq!(
        load("").sha256(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(load(GOOD).sha256(), load(GOOD).sha256());
    assert_ne!(load(GOOD).sha256(), load(&format!("{GOOD}\n")).sha256());
    assert_eq!(load(GOOD).sha256().len(), 64);
}

#[test]
fn load_reads_a_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, GOOD).unwrap();
    assert_eq!(Policy::load(&path).unwrap().sha256(), load(GOOD).sha256());
    let missing = dir.path().join("nope.toml");
    let e = Policy::load(&missing).unwrap_err();
    assert!(matches!(e, PolicyError::Read { .. }));
    assert!(e.to_string().contains("nope.toml"), "{e}");
}

#[test]
fn bad_toml_names_its_line() {
    assert_error("version = 1\n\n[tools.x\n", 3, &["policy line 3"]);
}

#[test]
fn unknown_keys_are_rejected_everywhere() {
    assert_error("versoin = 1\n", 1, &["versoin", "version"]);
    assert_error("[settings]\ninfer_unknown = true\n", 2, &["infer_unknown"]);
    assert_error(
        "[tools.x]\nfile.raed = [\"/x\"]\n",
        2,
        &["file.raed", "file.read"],
    );
    assert_error(
        "[tools.x]\npath = [\"/x\"]\n",
        2,
        &["unknown key `path`", "`aliases`", "`file`"],
    );
    assert_error(
        "[baseline.x]\nseverity = \"high\"\n",
        2,
        &["unknown key `severity`"],
    );
    assert_error(
        "\n[[deny]]\nname = \"x\"\ntools = \"*\"\n",
        4,
        &["tools", "expected one of"],
    );
}

#[test]
fn wrong_types_and_values_are_rejected() {
    assert_error(
        "[baseline.x]\nfile.read = \"/lib/**\"\n",
        2,
        &["invalid type", "sequence"],
    );
    assert_error(
        "[sensitive.x]\nseverity = \"severe\"\nfile = [\"/x\"]\n",
        2,
        &["severe", "critical"],
    );
    assert_error("[tools.x]\nextend = \"maybe\"\n", 2, &["maybe", "allow"]);
    assert_error("[tools.x]\ninfer = \"all\"\n", 2, &["all", "words"]);
    assert_error("[[deny]]\ntool = \"x\"\n", 1, &["name"]);
}

#[test]
fn bad_patterns_name_their_line_and_field() {
    assert_error(
        "[baseline.x]\nfile.read = [\n  \"/lib/**\",\n  \"/lib/[\",\n]\n",
        4,
        &["baseline.x.file.read", "/lib/["],
    );
    assert_error(
        "[baseline.x]\nfile.read = [\"lib/**\"]\n",
        2,
        &["starts with /"],
    );
    assert_error(
        "[baseline.x]\nfile.read = [\"/usr/../etc/**\"]\n",
        2,
        &["never match"],
    );
    assert_error(
        "[baseline.x]\nnet.connect = [\"10.0.0.0/33:*\"]\n",
        2,
        &["baseline.x.net.connect", "CIDR"],
    );
    assert_error(
        "[baseline.x]\nnet.connect = [\"example.com:99999\"]\n",
        2,
        &["not a port"],
    );
    assert_error(
        "[baseline.x]\nnet.connect = [\"example.com\"]\n",
        2,
        &["HOST:PORT"],
    );
    assert_error(
        "[baseline.x]\nnet.bind = [\"::1:8080\"]\n",
        2,
        &["brackets"],
    );
    assert_error("[baseline.x]\ndns = [\"a b\"]\n", 2, &["DNS name"]);
    assert_error(
        "\n[[deny]]\nname = \"x\"\nargs.command = [\"[\"]\n",
        4,
        &["deny.x.args.command"],
    );
    assert_error(
        "\n[[deny]]\nname = \"x\"\nargs.count = 3\n",
        4,
        &["deny.x.args", "glob"],
    );
}

#[test]
fn bad_templates_are_rejected() {
    assert_error(
        "[tools.x]\nfile.read = [\"{args.}\"]\n",
        2,
        &["tools.x.file.read", "not a placeholder"],
    );
    assert_error(
        "[tools.x]\nfile.read = [\"{args.path|home}\"]\n",
        2,
        &["`home` is not a placeholder"],
    );
    assert_error(
        "[tools.x]\nfile.read = [\"{args.path}/[\"]\n",
        1,
        &["tools.x.file.read"],
    );
    assert_error(
        "[baseline.x]\nfile.read = [\"{args.path}\"]\n",
        2,
        &["only {cwd}"],
    );
    assert_error(
        "[sensitive.x]\nfile = [\"{cwd}/.env\"]\n",
        1,
        &["sensitive.x", "no placeholders"],
    );
}

#[test]
fn names_are_unique() {
    assert_error(
        "[tools.a]\naliases = [\"Read\"]\n\n[tools.b]\naliases = [\"Read\"]\n",
        5,
        &["`Read` already names tool `a`"],
    );
    assert_error(
        "[tools.a]\n[tools.b]\naliases = [\"a\"]\n",
        3,
        &["`a` already names tool `a`"],
    );
    assert_error(
        "[[deny]]\nname = \"x\"\n[[deny]]\nname = \"x\"\n",
        3,
        &["used twice"],
    );
}

#[test]
fn version_and_homes_are_checked() {
    assert_error("\nversion = 2\n", 2, &["version 2"]);
    assert_error(
        "[settings]\nhomes = [\"home/u\"]\n",
        2,
        &["settings.homes", "absolute"],
    );
    assert_error(
        "[settings]\nhomes = []\n[baseline.x]\nfile.read = [\"~/.cache/**\"]\n",
        4,
        &["no homes"],
    );
}

#[test]
fn quoted_and_nested_kind_keys_mean_the_same() {
    let nested = load("[baseline.x]\nfile.read = [\"/a\"]\n");
    let quoted = load("[baseline.x]\n\"file.read\" = [\"/a\"]\n");
    let table = load("[baseline.x.file]\nread = [\"/a\"]\n");
    for policy in [nested, quoted, table] {
        assert_eq!(
            policy.baseline().effects().0,
            [(EffectKind::FileRead, vec!["/a".to_string()])].into()
        );
    }
    let family = load("[baseline.x]\nfile = [\"/a\"]\nnet = [\"*:1\"]\n");
    let kinds: Vec<EffectKind> = family.baseline().effects().0.into_keys().collect();
    assert_eq!(
        kinds,
        [
            EffectKind::FileRead,
            EffectKind::FileWrite,
            EffectKind::FileCreate,
            EffectKind::FileDelete,
            EffectKind::NetConnect,
            EffectKind::NetBind
        ]
    );
}

#[test]
fn declared_effects_read_from_json_in_every_form() {
    let flat: Effects =
        serde_json::from_str(r#"{"file.read": ["/a"], "net.connect": ["h:443"]}"#).unwrap();
    let nested: Effects =
        serde_json::from_str(r#"{"file": {"read": ["/a"]}, "net": {"connect": ["h:443"]}}"#)
            .unwrap();
    assert_eq!(flat, nested);
    let all: Effects = serde_json::from_str(r#"{"file": ["/a"]}"#).unwrap();
    assert_eq!(all.0.len(), 4);
    let e = serde_json::from_str::<Effects>(r#"{"file.exec": ["/a"]}"#).unwrap_err();
    assert!(
        e.to_string().contains("unknown effect kind `file.exec`"),
        "{e}"
    );
    assert_eq!(
        serde_json::to_string(&flat).unwrap(),
        r#"{"file.read":["/a"],"net.connect":["h:443"]}"#
    );
}

#[test]
fn a_policy_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<Policy>();
    shared::<Envelope>();
}
