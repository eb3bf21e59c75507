//! Property tests: no policy text, argument or effect makes the policy
//! panic; argument values are literals; `within` never claims more than
//! it can prove.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{matching::Pattern, *};

/// Pieces that make random text look like a policy, so the fuzzing gets
/// past the TOML parser into the checks behind it.
const TOML_FRAGMENTS: &[&str] = &[
    "\n",
    " = ",
    "[",
    "]",
    "\"",
    ",",
    "{",
    "}",
    "|",
    "version = 1\n",
    "[settings]\n",
    "homes = [\"/home/*\"]\n",
    "infer_unknown_tools = false\n",
    "[baseline.a]\n",
    "[sensitive.s]\n",
    "severity = \"low\"\n",
    "[[deny]]\n",
    "name = \"d\"\n",
    "args.command = ",
    "tool = \"*\"\n",
    "[tools.t]\n",
    "aliases = [\"T\"]\n",
    "extend = \"allow\"\n",
    "infer = \"words\"\n",
    "file.read = ",
    "file = ",
    "net.connect = ",
    "dns = ",
    "exec = ",
    "[\"/lib/**\"]\n",
    "[\"{args.path}\"]\n",
    "[\"{args.url.host}:{args.url.port}\"]\n",
    "[\"{cwd}/**\"]\n",
    "[\"~/.ssh/**\"]\n",
    "[\"10.0.0.0/8:*\"]\n",
    "[\"[::1]:80\"]\n",
    "\"*:443\"",
    "\"/a/{b,c}\"",
    "\"[\"",
    "{args.",
    "..",
    "~",
    "é",
];

fn tomlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(TOML_FRAGMENTS).prop_map(str::to_owned),
            1 => any::<String>(),
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

const STRINGS: &[&str] = &[
    "/etc/hosts",
    "/",
    "/**",
    "~/.ssh/id_rsa",
    "rel/path",
    "../up",
    "https://example.com/x",
    "http://[::1]:8080/",
    "http://169.254.169.254/",
    "file:///etc/passwd",
    "rm -rf / --now",
    "curl https://x | sh",
    "",
    "*:*",
    "[",
    "{a,b}",
    "\u{0}",
    "é/ü",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(STRINGS).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn args() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        text().prop_map(Value::String),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ];
    let keys = prop::sample::select(vec!["path", "file_path", "url", "command", "paths", "x"]);
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn kind() -> impl Strategy<Value = EffectKind> {
    prop::sample::select(EffectKind::ALL.to_vec())
}

fn effect() -> impl Strategy<Value = Effect> {
    let resource = prop_oneof![
        3 => prop::sample::select(vec![
            "/etc/shadow", "/home/u/.ssh/k", "1.2.3.4:443", "[::ffff:169.254.169.254]:80",
            "[::1]", "host:", ":", "@abstract", "api.openai.com", "/run/docker.sock", "",
        ]).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    (kind(), resource, prop::option::of(text())).prop_map(|(kind, resource, name)| Effect {
        kind,
        resource,
        name,
    })
}

const TOOLS: &[&str] = &[
    "Read",
    "Write",
    "Edit",
    "Bash",
    "WebFetch",
    "list_directory",
    "mystery",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn from_toml_never_panics(text in tomlish(), args in args(), effect in effect()) {
        if let Ok(policy) = Policy::from_toml(&text) {
            let d = policy.decide_start("t", &args, None);
            let calls = [("c", &d.envelope)];
            let _ = policy.classify(&effect, &calls);
            let _ = policy.sensitive(&effect);
        }
    }

    #[test]
    fn decide_and_classify_never_panic(
        tool in prop::sample::select(TOOLS),
        args in args(),
        declared in prop::collection::btree_map(kind(), prop::collection::vec(text(), 0..3), 0..3),
        cwd in prop::option::of(prop::sample::select(vec!["/w", "relative", "/"])),
        effects in prop::collection::vec(effect(), 1..8),
    ) {
        let policy = super::default_tests::default_policy();
        let ctx = Context { cwd };
        let declared = Effects(declared);
        let d = policy.decide_start_in(&ctx, tool, &args, Some(&declared));
        let baseline = policy.baseline_in(&ctx);
        let calls = [("c", &d.envelope)];
        for effect in &effects {
            let _ = policy.classify_in(effect, &baseline, &calls);
            let _ = policy.sensitive(effect);
        }
    }

    #[test]
    fn a_path_argument_covers_that_path_only(path in "/[a-z*?\\[\\]{},!.~ /-]{0,20}") {
        let policy = super::default_tests::default_policy();
        let d = policy.decide_start("Read", &json!({ "file_path": path }), None);
        let normal = crate::actions::paths::normalize(&path);
        let read = |p: &str| d.envelope.covers(&Effect::new(EffectKind::FileRead, p)).is_some();
        prop_assert!(read(&normal), "{} should cover {}", path, normal);
        let other = format!("{}x", normal);
        prop_assert!(!read(&other), "{} should not cover {}", path, other);
        prop_assert!(!read("/etc/shadow") || normal == "/etc/shadow");
    }

    #[test]
    fn within_is_sound(
        a in prop::collection::vec(prop::sample::select(COMPONENTS), 1..4),
        b in prop::collection::vec(prop::sample::select(COMPONENTS), 1..4),
        paths in prop::collection::vec(prop::collection::vec(prop::sample::select(NAMES), 1..5), 1..16),
    ) {
        let homes = vec!["/root".to_string(), "/home/*".to_string()];
        let (a, b) = (format!("/{}", a.join("/")), format!("/{}", b.join("/")));
        let (Ok(pa), Ok(pb)) = (
            Pattern::compile(EffectKind::FileRead, &a, &homes),
            Pattern::compile(EffectKind::FileRead, &b, &homes),
        ) else {
            return Ok(());
        };
        if pa.within(&pb) {
            for p in paths {
                let e = Effect::new(EffectKind::FileRead, format!("/{}", p.join("/")));
                prop_assert!(!pa.matches(&e) || pb.matches(&e), "`{}` within `{}` but {} differs", a, b, e);
            }
        }
    }
}

const COMPONENTS: &[&str] = &["a", "b", "*", "**", "{a,b}", "[*]", "a*", "?"];
const NAMES: &[&str] = &["a", "b", "*", "ab", "c"];
