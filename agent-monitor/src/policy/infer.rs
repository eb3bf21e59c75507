//! Effects inferred from a tool call's arguments, for tools the policy does
//! not name (and for named tools that ask for it with `infer`).
//!
//! The rule: every string among the argument values (at any depth) that is
//! an absolute path, `~/…` or a `file://` URL is a read of that path and of
//! anything under it (it may be a directory); every other URL with a host
//! is a connect to its host and port (the scheme's default port, or any
//! port when the scheme has none) and a lookup of its name. With `words`,
//! each string is also split into shell-like words, so the paths and URLs
//! inside a command line count too. Nothing else is inferred: inference
//! never grants a write, a delete or an exec.

use serde_json::Value;

use super::{
    model::EffectKind,
    template::{Context, host_value, name_value, path_value},
};

/// Deepest nesting walked, and most strings looked at, per call: arguments
/// come from the agent, and a huge one must not cost more than a bound.
const MAX_DEPTH: usize = 32;
const MAX_STRINGS: usize = 1024;
const MAX_PATTERNS: usize = 256;

/// The inferred patterns, by kind, in the order found, without repeats.
pub(crate) fn infer(args: &Value, words: bool) -> Vec<(EffectKind, String)> {
    let mut strings = Vec::new();
    collect(args, 0, &mut strings);
    let mut out: Vec<(EffectKind, String)> = Vec::new();
    let mut add = |kind: EffectKind, pattern: String| {
        if out.len() < MAX_PATTERNS && !out.iter().any(|(k, p)| *k == kind && *p == pattern) {
            out.push((kind, pattern));
        }
    };
    for s in strings {
        let whole = std::iter::once(s);
        let split: Vec<&str> = if words { split_words(s) } else { Vec::new() };
        for candidate in whole.chain(split) {
            infer_one(candidate, &mut add);
        }
    }
    out
}

fn collect<'a>(v: &'a Value, depth: usize, out: &mut Vec<&'a str>) {
    if depth > MAX_DEPTH || out.len() >= MAX_STRINGS {
        return;
    }
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect(i, depth + 1, out)),
        Value::Object(map) => map.values().for_each(|i| collect(i, depth + 1, out)),
        _ => {}
    }
}

/// Words of a command line: split at blanks, quotes, `=`, `,` and shell
/// operators. Crude on purpose (no expansion, no escapes): it only looks
/// for paths and URLs.
fn split_words(s: &str) -> Vec<&str> {
    s.split(|c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '\'' | '"' | '`' | '=' | ',' | ';' | '|' | '&' | '<' | '>' | '(' | ')'
            )
    })
    .filter(|w| !w.is_empty())
    .collect()
}

fn infer_one(s: &str, add: &mut impl FnMut(EffectKind, String)) {
    if s.contains(['\n', '\0']) {
        return;
    }
    let as_path = s.starts_with('/') || s == "~" || s.starts_with("~/") || s.starts_with("file://");
    if as_path {
        // Absolute already: no working directory needed.
        if let Some(p) = path_value(s, &Context::default()) {
            add(EffectKind::FileRead, p.clone());
            // The root's subtree would be everything.
            if p != "/" {
                add(EffectKind::FileRead, format!("{p}/**"));
            }
        }
        return;
    }
    if !s.contains("://") {
        return;
    }
    let Ok(url) = url::Url::parse(s) else {
        return;
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return;
    };
    let port = url
        .port_or_known_default()
        .map_or_else(|| "*".to_string(), |p| p.to_string());
    add(
        EffectKind::NetConnect,
        format!("{}:{port}", host_value(host)),
    );
    if let Some(name) = name_value(host) {
        add(EffectKind::Dns, name);
    }
}
