//! Templates: patterns with placeholders filled from a tool call.
//!
//! `{args.path}` takes an argument, `{args.url.host}` walks into objects (and
//! into a URL held in a string: `host`, `port`, `scheme`, `path`), and
//! `{args.file_path|args.path|cwd}` takes the first alternative present.
//! Braces that hold no placeholder stay glob alternation (`{a,b}`).
//!
//! Every value is escaped before it joins the pattern: an argument is a
//! literal, so an agent that passes `path = "/**"` gets the file `/**`,
//! not the whole filesystem.

use globset::escape;
use serde_json::Value;

use super::model::{Class, EffectKind};
use crate::actions::paths;

/// What a tool call's envelope may depend on besides its arguments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The agent's working directory: relative paths join it, and `{cwd}`
    /// is it. Without it, a relative path `p` becomes `**/p`.
    pub cwd: Option<&'a str>,
}

/// Most patterns one template yields (argument arrays multiply).
pub const MAX_EXPANSION: usize = 64;

#[derive(Clone, Debug)]
pub(crate) struct Template {
    pub source: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
enum Segment {
    Lit(String),
    Slot(Vec<Source>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Arg(Vec<String>),
    Cwd,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Arg(path) => format!("args.{}", path.join(".")),
            Source::Cwd => "cwd".to_string(),
        }
    }
}

impl Template {
    /// Parses `text`; `{args.…}` placeholders only when `allow_args`.
    pub fn parse(text: &str, allow_args: bool) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let Some(len) = rest[open..].find('}') else {
                break;
            };
            let inner = &rest[open + 1..open + len];
            lit.push_str(&rest[..open]);
            match slot(inner)? {
                Some(sources) => {
                    if !allow_args && sources.iter().any(|s| matches!(s, Source::Arg(_))) {
                        return Err(format!(
                            "`{text}`: only {{cwd}} is available here, not {{args.…}}"
                        ));
                    }
                    if !lit.is_empty() {
                        segments.push(Segment::Lit(std::mem::take(&mut lit)));
                    }
                    segments.push(Segment::Slot(sources));
                }
                None => lit.push_str(&rest[open..=open + len]),
            }
            rest = &rest[open + len + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(Template {
            source: text.to_string(),
            segments,
        })
    }

    /// Whether the template takes anything from the call's arguments: what
    /// it yields is then a resource the call named.
    pub fn uses_args(&self) -> bool {
        self.segments.iter().any(|s| match s {
            Segment::Slot(sources) => sources.iter().any(|s| matches!(s, Source::Arg(_))),
            Segment::Lit(_) => false,
        })
    }

    pub fn has_slots(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Slot(_)))
    }

    /// The template with a harmless value in each slot, to check at load
    /// time that the rest of it makes a valid pattern.
    pub fn sample(&self, kind: EffectKind) -> String {
        let mut out = String::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Lit(s) => push_lit(&mut out, s),
                Segment::Slot(_) if i == 0 && kind.class() == Class::Path => out.push_str("/1"),
                Segment::Slot(_) => out.push('1'),
            }
        }
        out
    }

    /// The patterns for one call, or why there are none (a value missing).
    pub fn expand(
        &self,
        kind: EffectKind,
        args: &Value,
        ctx: &Context,
    ) -> Result<Vec<String>, String> {
        let mut out = vec![String::new()];
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Lit(s) => out.iter_mut().for_each(|o| push_lit(o, s)),
                Segment::Slot(sources) => {
                    let values = sources
                        .iter()
                        .map(|source| {
                            let raw = match source {
                                Source::Arg(path) => resolve(args, path),
                                Source::Cwd => ctx
                                    .cwd
                                    .filter(|c| c.starts_with('/'))
                                    .map(|c| vec![c.to_string()])
                                    .unwrap_or_default(),
                            };
                            raw.iter()
                                .filter_map(|v| format_value(kind, v, i == 0, ctx))
                                .collect::<Vec<_>>()
                        })
                        .find(|values| !values.is_empty())
                        .ok_or_else(|| {
                            let names: Vec<String> = sources.iter().map(Source::describe).collect();
                            format!("`{}`: no usable {}", self.source, names.join(" or "))
                        })?;
                    out = out
                        .iter()
                        .flat_map(|o| values.iter().map(move |v| format!("{o}{v}")))
                        .take(MAX_EXPANSION)
                        .collect();
                }
            }
        }
        Ok(out)
    }
}

/// Appends a literal, without doubling the slash after a value that is `/`.
fn push_lit(out: &mut String, lit: &str) {
    if out.ends_with('/') && lit.starts_with('/') {
        out.push_str(&lit[1..]);
    } else {
        out.push_str(lit);
    }
}

/// The alternatives of `{…}` when it is a placeholder, None when it is
/// glob alternation, an error when it looks like a placeholder but is not.
fn slot(inner: &str) -> Result<Option<Vec<Source>>, String> {
    let parts: Vec<&str> = inner.split('|').map(str::trim).collect();
    let looks = |p: &&str| *p == "cwd" || *p == "args" || p.starts_with("args.");
    if !parts.iter().any(looks) {
        return Ok(None);
    }
    parts
        .iter()
        .map(|part| {
            if *part == "cwd" {
                return Ok(Source::Cwd);
            }
            let path: Vec<String> = part
                .strip_prefix("args.")
                .map(|p| p.split('.').map(str::to_string).collect())
                .unwrap_or_default();
            let ident = |s: &String| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            if path.is_empty() || !path.iter().all(ident) {
                return Err(format!(
                    "`{{{inner}}}`: `{part}` is not a placeholder; use args.NAME[.NAME…] or cwd"
                ));
            }
            Ok(Source::Arg(path))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The values at `path` in a call's arguments, as text: one for a scalar,
/// one per scalar element for an array, none when absent. A string that is
/// a URL can be walked into: `url.host`, `url.port` (the scheme's default
/// when not written), `url.scheme`, `url.path`.
pub(crate) fn resolve(args: &Value, path: &[String]) -> Vec<String> {
    let Some((first, rest)) = path.split_first() else {
        return match args {
            Value::Array(items) => items
                .iter()
                .filter_map(scalar)
                .take(MAX_EXPANSION)
                .collect(),
            v => scalar(v).into_iter().collect(),
        };
    };
    match args {
        Value::Object(map) => map.get(first).map_or_else(Vec::new, |v| resolve(v, rest)),
        Value::Array(items) => match first.parse::<usize>() {
            Ok(i) => items.get(i).map_or_else(Vec::new, |v| resolve(v, rest)),
            Err(_) => Vec::new(),
        },
        Value::String(s) if rest.is_empty() => url_field(s, first).into_iter().collect(),
        _ => Vec::new(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn url_field(text: &str, field: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    match field {
        "host" => url.host_str().map(str::to_string),
        "port" => url.port_or_known_default().map(|p| p.to_string()),
        "scheme" => Some(url.scheme().to_string()),
        "path" => Some(url.path().to_string()),
        _ => None,
    }
}

/// A value as it enters a pattern of `kind`, escaped; None when it cannot
/// stand for anything of that kind.
fn format_value(kind: EffectKind, value: &str, first: bool, ctx: &Context) -> Option<String> {
    if value.is_empty() || value.contains('\0') {
        return None;
    }
    match kind.class() {
        Class::Path if first => path_value(value, ctx),
        Class::Path => Some(escape(value)),
        Class::Net => Some(host_value(value)),
        Class::Name => name_value(value),
    }
}

/// A path argument as a pattern: normalised, `~/` kept for the homes,
/// relative paths joined to the working directory (or under `**/` when it
/// is unknown), `file://` URLs read as paths.
pub(crate) fn path_value(value: &str, ctx: &Context) -> Option<String> {
    if value == "~" || value.starts_with("~/") {
        let rest = paths::normalize(&value[1..]);
        return Some(if rest == "/" {
            "~".to_string()
        } else {
            format!("~{}", escape(&rest))
        });
    }
    let path = if value.starts_with('/') {
        paths::normalize(value)
    } else if value.starts_with("file://") {
        let url = url::Url::parse(value).ok()?;
        paths::normalize(url.to_file_path().ok()?.to_str()?)
    } else if let Some(cwd) = ctx.cwd.filter(|c| c.starts_with('/')) {
        paths::absolute(value, Some(cwd))?
    } else {
        if value.split('/').any(|c| c == "..") {
            return None;
        }
        let rel = paths::normalize(&format!("/{value}"));
        if rel == "/" {
            return None;
        }
        return Some(format!("**{}", escape(&rel)));
    };
    Some(escape(&path))
}

/// A host (or port) as it enters a network pattern: an IP as an address
/// (IPv6 in brackets), anything else an escaped, lower-case name.
pub(crate) fn host_value(value: &str) -> String {
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(v4) => v4.to_string(),
        Err(_) => escape(&value.to_ascii_lowercase()),
    }
}

/// A DNS name as a pattern; None for an IP, which needs no lookup.
pub(crate) fn name_value(value: &str) -> Option<String> {
    let name = value.trim_end_matches('.').to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || bare.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    Some(escape(&name))
}
