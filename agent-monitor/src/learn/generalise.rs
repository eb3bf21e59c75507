//! From observed effects to baseline patterns, conservatively:
//!
//! - paths are exact, escaped (a `*` in a file name is that character);
//! - [`COLLAPSE_AT`] or more entries of one directory become `DIR/*`
//!   (one level, never `**`), except in `/` and in a directory where a
//!   sensitive file was touched;
//! - paths under the session's working directory are written `{cwd}/…`;
//! - connections are `name:port` when the agent looked the address up,
//!   else `address:port` (or the socket path);
//! - DNS names are exact.
//!
//! Every pattern is checked before it is proposed: it must load as a
//! policy pattern and cover each effect it stands for.

use std::collections::BTreeMap;

use globset::escape;

use super::{
    collect::{Key, Seen},
    proposal::{LeftOut, Proposed, toml_string},
};
use crate::{
    actions::paths::normalize,
    policy::{Context, EffectKind, Policy},
};

/// Entries of one directory from which it is written `DIR/*`.
pub const COLLAPSE_AT: usize = 8;

/// Path effects grouped by kind, working directory and parent directory.
type Dirs<'a> = BTreeMap<(EffectKind, Option<&'a str>, &'a str), Vec<(&'a Key, u64)>>;

/// A pattern and the effects it stands for.
struct Candidate {
    pattern: Proposed,
    keys: Vec<Key>,
}

pub(crate) fn generalise(seen: &Seen) -> (Vec<Proposed>, Vec<LeftOut>) {
    let mut left_out = Vec::new();
    let mut candidates: BTreeMap<(EffectKind, String), Candidate> = BTreeMap::new();
    let mut add = |kind: EffectKind, pattern: String, why: String, keys: Vec<(&Key, u64)>| {
        let c = candidates
            .entry((kind, pattern.clone()))
            .or_insert_with(|| Candidate {
                pattern: Proposed {
                    kind,
                    pattern,
                    seen: 0,
                    why,
                },
                keys: Vec::new(),
            });
        for (key, n) in keys {
            c.pattern.seen += n;
            c.keys.push(key.clone());
        }
    };

    // Path kinds, by directory, to find the ones to collapse.
    let mut dirs: Dirs = BTreeMap::new();
    for (key, n) in &seen.outside {
        match key.kind {
            EffectKind::NetConnect | EffectKind::NetBind => {
                let (pattern, why) = net_pattern(key);
                add(key.kind, pattern, why, vec![(key, *n)]);
            }
            EffectKind::Dns => {
                let name = key.resource.trim_end_matches('.').to_ascii_lowercase();
                add(key.kind, escape(&name), "exact".into(), vec![(key, *n)]);
            }
            _ if !key.resource.starts_with('/') => left_out.push(LeftOut {
                effect: key.effect().to_string(),
                seen: *n,
                why: "not an absolute path (the kernel gave no full path): no pattern can name it"
                    .into(),
            }),
            _ => {
                let dir = key.resource.rsplit_once('/').map_or("", |(d, _)| d);
                dirs.entry((key.kind, key.cwd.as_deref(), dir))
                    .or_default()
                    .push((key, *n));
            }
        }
    }
    for ((kind, cwd, dir), entries) in dirs {
        let many = entries.len() >= COLLAPSE_AT;
        let kept_exact = if !many {
            None
        } else if dir.is_empty() {
            Some("exact: `/*` would be too broad".to_string())
        } else if seen.sensitive_dirs.contains(dir) {
            Some(format!(
                "exact: {dir} not collapsed, a sensitive file in it was touched"
            ))
        } else {
            None
        };
        if many && kept_exact.is_none() {
            let pattern = format!("{}/*", path_text(dir, cwd));
            let why = format!(
                "{} entries of {dir} seen: collapsed to `{dir}/*`",
                entries.len()
            );
            add(kind, pattern, why, entries);
            continue;
        }
        for (key, n) in entries {
            let pattern = path_text(&key.resource, cwd);
            let why = match &kept_exact {
                Some(why) => why.clone(),
                None if pattern.starts_with("{cwd}") => {
                    "under the session's working directory".to_string()
                }
                None => "exact".to_string(),
            };
            add(kind, pattern, why, vec![(key, n)]);
        }
    }

    let mut proposed = Vec::new();
    for candidate in candidates.into_values() {
        match check(&candidate) {
            Ok(()) => proposed.push(candidate.pattern),
            Err(why) => left_out.push(LeftOut {
                effect: format!("{} {}", candidate.pattern.kind, candidate.pattern.pattern),
                seen: candidate.pattern.seen,
                why,
            }),
        }
    }
    (proposed, left_out)
}

/// A path as a pattern: escaped, and relative to `{cwd}` when under it.
fn path_text(path: &str, cwd: Option<&str>) -> String {
    if let Some(cwd) = cwd.filter(|c| c.starts_with('/')).map(normalize)
        && cwd != "/"
    {
        if path == cwd {
            return "{cwd}".to_string();
        }
        if let Some(rest) = path.strip_prefix(&format!("{cwd}/")) {
            return format!("{{cwd}}/{}", escape(rest));
        }
    }
    escape(path)
}

/// `name:port` when a name was looked up, else the resource itself.
fn net_pattern(key: &Key) -> (String, String) {
    let socket = key.resource.starts_with('/') || key.resource.starts_with('@');
    if socket {
        return (escape(&key.resource), "socket path, exact".into());
    }
    let port = key.resource.rsplit_once(':').map(|(_, p)| p);
    match (&key.name, port) {
        (Some(name), Some(port)) => {
            let name = escape(&name.trim_end_matches('.').to_ascii_lowercase());
            let why = format!("by the name looked up for {}", key.resource);
            (format!("{name}:{port}"), why)
        }
        _ => (
            key.resource.clone(),
            "by address: no DNS lookup was seen for it".into(),
        ),
    }
}

/// The pattern loads as a baseline pattern and covers every effect it
/// was made from.
fn check(candidate: &Candidate) -> Result<(), String> {
    let Proposed { kind, pattern, .. } = &candidate.pattern;
    let text = format!("[baseline.check]\n{kind} = [{}]\n", toml_string(pattern));
    let policy = Policy::from_toml(&text).map_err(|e| format!("not a valid pattern: {e}"))?;
    for key in &candidate.keys {
        let baseline = policy.baseline_in(&Context {
            cwd: key.cwd.as_deref(),
        });
        if baseline.covers(&key.effect()).is_none() {
            return Err(format!(
                "`{pattern}` would not match {}: left out",
                key.effect()
            ));
        }
    }
    Ok(())
}
