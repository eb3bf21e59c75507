//! Templates: placeholders, alternatives, missing values, URLs, escaping.

use serde_json::json;

use super::{
    EffectKind::{self, *},
    template::{Context, MAX_EXPANSION, Template, resolve},
};

fn expand(text: &str, kind: EffectKind, args: serde_json::Value) -> Result<Vec<String>, String> {
    expand_in(text, kind, args, &Context::default())
}

fn expand_in(
    text: &str,
    kind: EffectKind,
    args: serde_json::Value,
    ctx: &Context,
) -> Result<Vec<String>, String> {
    let template = Template::parse(text, true).unwrap_or_else(|e| panic!("{text}: {e}"));
    template.expand(kind, &args, ctx)
}

fn one(text: &str, kind: EffectKind, args: serde_json::Value) -> String {
    let mut out = expand(text, kind, args).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(out.len(), 1, "{text}: {out:?}");
    out.remove(0)
}

#[test]
fn a_placeholder_takes_its_argument() {
    assert_eq!(
        one("{args.path}", FileRead, json!({"path": "/etc/hosts"})),
        "/etc/hosts"
    );
    assert_eq!(
        one("{args.path}/**", FileRead, json!({"path": "/src"})),
        "/src/**"
    );
    assert_eq!(
        one("{args.opts.dir}", FileRead, json!({"opts": {"dir": "/d"}})),
        "/d"
    );
    assert_eq!(
        one("/data/{args.n}.csv", FileRead, json!({"n": 7})),
        "/data/7.csv"
    );
}

#[test]
fn the_first_present_alternative_wins() {
    let t = "{args.file_path|args.path}";
    assert_eq!(
        one(t, FileRead, json!({"file_path": "/a", "path": "/b"})),
        "/a"
    );
    assert_eq!(one(t, FileRead, json!({"path": "/b"})), "/b");
    // Present but unusable counts as absent.
    assert_eq!(
        one(t, FileRead, json!({"file_path": "", "path": "/b"})),
        "/b"
    );
    assert_eq!(
        one(t, FileRead, json!({"file_path": null, "path": "/b"})),
        "/b"
    );
}

#[test]
fn a_missing_argument_yields_no_pattern() {
    let e = expand("{args.path}", FileRead, json!({"other": "/x"})).unwrap_err();
    assert!(e.contains("no usable args.path"), "{e}");
    let e = expand("{args.a|args.b}", FileRead, json!({})).unwrap_err();
    assert!(e.contains("args.a or args.b"), "{e}");
    assert!(expand("{args.path}", FileRead, json!(null)).is_err());
    assert!(expand("{args.path}", FileRead, json!({"path": {"x": 1}})).is_err());
}

#[test]
fn urls_give_host_and_port_with_the_scheme_default() {
    let t = "{args.url.host}:{args.url.port}";
    let cases = [
        ("https://example.com/a?b", "example.com:443"),
        ("http://example.com", "example.com:80"),
        ("http://Example.COM:8080/x", "example.com:8080"),
        ("wss://stream.example/", "stream.example:443"),
        ("http://10.1.2.3:9000/", "10.1.2.3:9000"),
        ("http://[::1]:8080/", "[::1]:8080"),
        ("https://[2001:db8::1]/", "[2001:db8::1]:443"),
    ];
    for (url, want) in cases {
        assert_eq!(one(t, NetConnect, json!({"url": url})), want, "{url}");
    }
    assert_eq!(
        one("{args.url.host}", Dns, json!({"url": "https://a.b.c./"})),
        "a.b.c"
    );
    // A scheme without a known port has no port to give.
    assert!(expand(t, NetConnect, json!({"url": "gopher2://h/"})).is_err());
    assert!(expand(t, NetConnect, json!({"url": "not a url"})).is_err());
    // No lookup is needed for an address.
    assert!(expand("{args.url.host}", Dns, json!({"url": "http://10.0.0.1/"})).is_err());
}

#[test]
fn url_fields_and_objects_resolve_alike() {
    let args = json!({"url": "https://h.example:8443/p", "target": {"host": "o.example"}});
    let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
    assert_eq!(resolve(&args, &path("url.host")), ["h.example"]);
    assert_eq!(resolve(&args, &path("url.port")), ["8443"]);
    assert_eq!(resolve(&args, &path("url.scheme")), ["https"]);
    assert_eq!(resolve(&args, &path("url.path")), ["/p"]);
    assert_eq!(resolve(&args, &path("target.host")), ["o.example"]);
    assert!(resolve(&args, &path("url.query")).is_empty());
}

#[test]
fn values_are_literals_not_globs() {
    assert_eq!(
        one("{args.path}", FileRead, json!({"path": "/**"})),
        "/[*][*]"
    );
    assert_eq!(
        one("{args.path}/**", FileRead, json!({"path": "/tmp/{a,b}"})),
        "/tmp/[{]a,b[}]/**"
    );
    assert_eq!(
        one("{args.h}:443", NetConnect, json!({"h": "*.example.com"})),
        "[*].example.com:443"
    );
    assert_eq!(
        one("{args.url.host}", Dns, json!({"url": "http://*.x/"})),
        "[*].x"
    );
}

#[test]
fn paths_are_normalised_and_relative_ones_joined() {
    assert_eq!(
        one("{args.p}", FileRead, json!({"p": "/a//b/./c/../d/"})),
        "/a/b/d"
    );
    assert_eq!(
        one("{args.p}", FileRead, json!({"p": "~/notes.txt"})),
        "~/notes.txt"
    );
    assert_eq!(one("{args.p}", FileRead, json!({"p": "~"})), "~");
    assert_eq!(
        one("{args.p}", FileRead, json!({"p": "file:///etc/hosts"})),
        "/etc/hosts"
    );
    // Without a working directory a relative path can be anywhere.
    assert_eq!(
        one("{args.p}", FileRead, json!({"p": "src/main.rs"})),
        "**/src/main.rs"
    );
    assert!(expand("{args.p}", FileRead, json!({"p": "../secret"})).is_err());
    let ctx = Context {
        cwd: Some("/home/u/proj"),
    };
    let got = expand_in("{args.p}", FileRead, json!({"p": "../lib/x.rs"}), &ctx).unwrap();
    assert_eq!(got, ["/home/u/lib/x.rs"]);
    let got = expand_in("{args.p|cwd}/**", FileRead, json!({}), &ctx).unwrap();
    assert_eq!(got, ["/home/u/proj/**"]);
    // `/` as a directory does not double the slash.
    assert_eq!(one("{args.p}/**", FileRead, json!({"p": "/"})), "/**");
}

#[test]
fn arrays_give_one_pattern_per_element_up_to_a_bound() {
    let got = expand("{args.paths}", FileRead, json!({"paths": ["/a", "/b", 3]})).unwrap();
    assert_eq!(got, ["/a", "/b", "**/3"]);
    let many: Vec<String> = (0..200).map(|i| format!("/f{i}")).collect();
    let got = expand("{args.p}", FileRead, json!({ "p": many })).unwrap();
    assert_eq!(got.len(), MAX_EXPANSION);
    let got = expand("{args.paths.1}", FileRead, json!({"paths": ["/a", "/b"]})).unwrap();
    assert_eq!(got, ["/b"]);
}

#[test]
fn braces_without_a_placeholder_stay_glob_alternation() {
    assert_eq!(
        one("/x/{a,b}/{args.n}", FileRead, json!({"n": "f"})),
        "/x/{a,b}/f"
    );
    let t = Template::parse("/etc/{hosts,passwd}", false).unwrap();
    assert!(!t.has_slots());
}

#[test]
fn samples_fill_every_slot() {
    let t = Template::parse("{args.url.host}:{args.url.port}", true).unwrap();
    assert_eq!(t.sample(NetConnect), "1:1");
    let t = Template::parse("{args.path}/**", true).unwrap();
    assert_eq!(t.sample(FileRead), "/1/**");
}
