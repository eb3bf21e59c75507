//! Pattern matching, as tables: paths, network endpoints, names, and the
//! conservative `within` that guards declared envelopes.

use super::{
    EffectKind::{self, *},
    matching::{Entry, Envelope, Pattern, Rule},
    model::Effect,
};

fn homes() -> Vec<String> {
    vec!["/root".into(), "/home/*".into()]
}

fn pattern(kind: EffectKind, text: &str) -> Pattern {
    Pattern::compile(kind, text, &homes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Each row: pattern, resource, whether it matches.
fn table(kind: EffectKind, rows: &[(&str, &str, bool)]) {
    for (p, resource, want) in rows {
        let got = pattern(kind, p).matches(&Effect::new(kind, *resource));
        assert_eq!(got, *want, "{kind} `{p}` against `{resource}`");
    }
}

#[test]
fn path_globs() {
    table(
        FileRead,
        &[
            ("/etc/hosts", "/etc/hosts", true),
            ("/etc/hosts", "/etc/hosts.allow", false),
            ("/lib/**", "/lib/x86_64-linux-gnu/libc.so.6", true),
            ("/lib/**", "/lib64/ld-linux-x86-64.so.2", false),
            ("/lib/**", "/lib", false),
            ("/etc/*", "/etc/hosts", true),
            ("/etc/*", "/etc/ssl/certs/ca.pem", false),
            ("/usr/lib/python3*/**", "/usr/lib/python3.12/os.py", true),
            ("/usr/lib/python3*/**", "/usr/lib/python2.7/os.py", false),
            ("**/.env", "/home/u/proj/.env", true),
            ("**/.env", "/.env", true),
            ("**/.env", "/home/u/proj/.envrc", false),
            ("**/.env.*", "/srv/app/.env.production", true),
            ("~/.ssh/**", "/root/.ssh/id_rsa", true),
            ("~/.ssh/**", "/home/alice/.ssh/known_hosts", true),
            ("~/.ssh/**", "/home/alice/x/.ssh/id_rsa", false),
            ("~/.ssh/**", "/srv/.ssh/id_rsa", false),
            ("~", "/home/bob", true),
            ("/x/{a,b}/*.py", "/x/b/m.py", true),
            ("/x/{a,b}/*.py", "/x/c/m.py", false),
            ("/etc/[*]", "/etc/*", true),
            ("/etc/[*]", "/etc/hosts", false),
            ("/**", "/anything/at/all", true),
        ],
    );
}

#[test]
fn network_endpoints() {
    table(
        NetConnect,
        &[
            ("example.com:443", "example.com:443", true),
            ("example.com:443", "EXAMPLE.com:443", true),
            ("example.com:443", "example.com:80", false),
            ("*.example.com:443", "api.example.com:443", true),
            ("*.example.com:443", "example.com:443", false),
            ("*:443", "93.184.216.34:443", true),
            ("*:443", "[2001:db8::1]:443", true),
            ("*:*", "10.0.0.1:1", true),
            ("10.0.0.0/8:*", "10.200.3.4:5432", true),
            ("10.0.0.0/8:*", "11.0.0.1:5432", false),
            ("10.0.0.0/8:*", "db.internal:5432", false),
            ("169.254.169.254:*", "169.254.169.254:80", true),
            ("169.254.169.254:*", "[::ffff:169.254.169.254]:80", true),
            ("[::1]:8080", "[::1]:8080", true),
            ("[::1]:8080", "[::1]:8081", false),
            ("[::1]:8080", "127.0.0.1:8080", false),
            ("[fd00::/8]:*", "[fd12:3456::1]:22", true),
            ("*:8000-8999", "1.2.3.4:8443", true),
            ("*:8000-8999", "1.2.3.4:9000", false),
            ("10.0.*:80", "10.0.3.4:80", true),
            // Socket paths are not endpoints, and the reverse.
            ("*:*", "/var/run/docker.sock", false),
            ("/var/run/docker.sock", "/var/run/docker.sock", true),
            ("/run/**", "/run/user/1000/bus", true),
            ("@/tmp/.X11-unix/*", "@/tmp/.X11-unix/X0", true),
            ("/var/run/docker.sock", "1.2.3.4:80", false),
            // Garbage never matches and never panics.
            ("*:*", "no-port", false),
            ("*:*", "host:notaport", false),
        ],
    );
}

#[test]
fn host_patterns_match_the_looked_up_name_but_addresses_stay_addresses() {
    let api = pattern(NetConnect, "api.anthropic.com:443");
    let by_ip = Effect::new(NetConnect, "160.79.104.10:443");
    assert!(!api.matches(&by_ip));
    assert!(api.matches(&by_ip.clone().named("api.anthropic.com")));
    assert!(api.matches(&by_ip.clone().named("API.Anthropic.com.")));
    // A friendly name does not hide the metadata address.
    let imds = pattern(NetConnect, "169.254.169.254:*");
    let named = Effect::new(NetConnect, "169.254.169.254:80").named("metadata.google.internal");
    assert!(imds.matches(&named));
    let other = Effect::new(NetConnect, "10.0.0.1:80").named("169.254.169.254");
    assert!(!imds.matches(&other));
}

#[test]
fn dns_names() {
    table(
        Dns,
        &[
            ("api.openai.com", "api.openai.com", true),
            ("api.openai.com", "API.OpenAI.com.", true),
            ("api.openai.com", "openai.com", false),
            (
                "*.googleapis.com",
                "generativelanguage.googleapis.com",
                true,
            ),
            ("*.googleapis.com", "googleapis.com", false),
            ("*", "anything.at.all", true),
        ],
    );
}

#[test]
fn within_is_sound_for_what_it_accepts() {
    // (declared, derived, within)
    let rows: &[(EffectKind, &str, &str, bool)] = &[
        (FileRead, "/src/a.rs", "/src/a.rs", true),
        (FileRead, "/src/a.rs", "/src/**", true),
        (FileRead, "/src/x/*.rs", "/src/**", true),
        (FileRead, "/src/**", "/src/**", true),
        (FileRead, "/src/**", "/src/*", false),
        (FileRead, "/srcx/a", "/src/**", false),
        (FileRead, "/etc/passwd", "/src/**", false),
        (FileRead, "/**", "/src/**", false),
        (FileRead, "/src/[*]", "/src/*", true),
        (FileRead, "/anything", "/**", true),
        (FileRead, "~/.cache/x", "~/.cache/**", true),
        (NetConnect, "example.com:443", "example.com:443", true),
        (NetConnect, "example.com:443", "*:443", true),
        (NetConnect, "example.com:443", "*.example.com:443", false),
        (NetConnect, "a.example.com:443", "*.example.com:443", true),
        (NetConnect, "*.a.example.com:443", "*.example.com:443", true),
        (NetConnect, "*.com:443", "*.example.com:443", false),
        (NetConnect, "example.com:*", "example.com:443", false),
        (
            NetConnect,
            "example.com:8443",
            "example.com:8000-8999",
            true,
        ),
        (NetConnect, "10.1.0.0/16:80", "10.0.0.0/8:*", true),
        (NetConnect, "10.0.0.0/8:80", "10.1.0.0/16:*", false),
        (NetConnect, "10.1.2.3:80", "10.1.2.*:80", true),
        (NetConnect, "/run/a.sock", "/run/**", true),
        (NetConnect, "/run/a.sock", "*:*", false),
        (Dns, "pypi.org", "pypi.org", true),
        (Dns, "files.pythonhosted.org", "*.pythonhosted.org", true),
        (Dns, "evil.org", "*.pythonhosted.org", false),
    ];
    for (kind, declared, derived, want) in rows {
        let got = pattern(*kind, declared).within(&pattern(*kind, derived));
        assert_eq!(got, *want, "{kind} `{declared}` within `{derived}`");
    }
}

fn envelope(rules: &[(&str, EffectKind, &str)]) -> Envelope {
    Envelope::from_entries(
        rules
            .iter()
            .map(|(name, kind, text)| Entry {
                rule: Rule {
                    name: name.to_string(),
                    kind: *kind,
                    pattern: text.to_string(),
                    severity: None,
                    named: false,
                },
                pattern: pattern(*kind, text),
            })
            .collect(),
    )
}

#[test]
fn an_envelope_reports_the_first_rule_in_order_and_keeps_kinds_apart() {
    let env = envelope(&[
        ("a", FileRead, "/usr/lib/python3*/**"),
        ("b", FileRead, "/usr/lib/**"),
        ("c", FileWrite, "/tmp/**"),
        ("d", NetConnect, "*:443"),
        ("e", Dns, "*.example.com"),
    ]);
    let name = |e: Effect| env.covers(&e).map(|r| r.name.clone());
    assert_eq!(
        name(Effect::new(FileRead, "/usr/lib/python3.12/os.py")).as_deref(),
        Some("a")
    );
    assert_eq!(
        name(Effect::new(FileRead, "/usr/lib/libc.so")).as_deref(),
        Some("b")
    );
    assert_eq!(name(Effect::new(FileWrite, "/usr/lib/libc.so")), None);
    assert_eq!(name(Effect::new(FileRead, "/tmp/x")), None);
    assert_eq!(name(Effect::new(FileWrite, "/tmp/x")).as_deref(), Some("c"));
    assert_eq!(
        name(Effect::new(NetConnect, "1.1.1.1:443")).as_deref(),
        Some("d")
    );
    assert_eq!(name(Effect::new(NetBind, "0.0.0.0:443")), None);
    assert_eq!(
        name(Effect::new(Dns, "WWW.Example.com")).as_deref(),
        Some("e")
    );
    let all: Vec<&str> = env
        .matching(&Effect::new(FileRead, "/usr/lib/python3.12/os.py"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(all, ["a", "b"]);
    assert_eq!(
        env.rules().next().unwrap().to_string(),
        "a file.read /usr/lib/python3*/**"
    );
}

#[test]
fn an_empty_envelope_covers_nothing() {
    let env = Envelope::default();
    assert!(env.is_empty());
    for kind in EffectKind::ALL {
        assert!(env.covers(&Effect::new(kind, "/x")).is_none());
    }
}
