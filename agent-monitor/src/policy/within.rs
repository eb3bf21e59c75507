//! Whether one pattern's matches all fall inside another's: how a declared
//! envelope is checked against the one the policy derives. Deciding glob
//! inclusion in general is costly, so this answers yes only in the cases
//! it can prove from the texts (the same text, a literal the other
//! matches, a pattern inside a literal directory's `/**`, a name under a
//! `*.suffix`, a smaller CIDR or port range) and no otherwise. A wrong no
//! costs an extension; a wrong yes would let a declaration widen an
//! envelope it may not, which is why prop_tests.rs checks the yeses.

use super::matching::{Envelope, Host, NetPattern, Pattern, Port, Rule, TextGlob};

impl Envelope {
    /// The first rule of `self` that no rule of `outer` (of its kind)
    /// provably contains; none when all of `self` lies inside `outer`.
    pub fn first_outside<'a>(&'a self, outer: &Envelope) -> Option<&'a Rule> {
        self.entries()
            .iter()
            .find(|inner| {
                !outer
                    .entries()
                    .iter()
                    .any(|o| o.rule.kind == inner.rule.kind && inner.pattern.within(&o.pattern))
            })
            .map(|e| &e.rule)
    }
}

impl Pattern {
    /// True only when every resource `self` matches, `other` matches too.
    /// Conservative: when that cannot be told from the two texts, false.
    pub fn within(&self, other: &Pattern) -> bool {
        match (self, other) {
            (
                Pattern::Path {
                    source: a,
                    globs: ga,
                },
                Pattern::Path {
                    source: b,
                    globs: gb,
                },
            ) => {
                // `~` stands for the same homes on both sides, so the texts
                // as written can be compared before expansion.
                a == b || subtree_within(a, b) || all_within(ga, gb)
            }
            (Pattern::Name(a), Pattern::Name(b)) => name_within(a, b),
            (Pattern::Net(NetPattern::Socket(a)), Pattern::Net(NetPattern::Socket(b))) => {
                all_within(a, b)
            }
            (
                Pattern::Net(NetPattern::Addr { host: ha, port: pa }),
                Pattern::Net(NetPattern::Addr { host: hb, port: pb }),
            ) => port_within(*pa, *pb) && host_within(ha, hb),
            _ => false,
        }
    }
}

const META: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// The literal a glob stands for when it has no wildcard: escapes (`\*`,
/// `[*]`) are undone. None when it matches more than one string.
fn literal(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '[' => {
                let inner = chars.next()?;
                if chars.next()? != ']' || inner == '!' || inner == '^' {
                    return None;
                }
                out.push(inner);
            }
            c if META.contains(&c) => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

fn all_within(a: &[TextGlob], b: &[TextGlob]) -> bool {
    a.iter().all(|ga| b.iter().any(|gb| path_within(ga, gb)))
}

fn path_within(a: &TextGlob, b: &TextGlob) -> bool {
    if a.text == b.text || b.text == "**" || b.text == "/**" {
        return true;
    }
    if let Some(lit) = literal(&a.text) {
        return b.is_match(&lit);
    }
    subtree_within(&a.text, &b.text)
}

/// `b` is a literal directory's subtree and every match of `a` starts
/// inside that directory.
fn subtree_within(a: &str, b: &str) -> bool {
    match b.strip_suffix("/**") {
        Some(dir) if !dir.contains(META) => {
            let prefix = a.split(META).next().unwrap_or_default();
            prefix.starts_with(&format!("{dir}/"))
        }
        _ => false,
    }
}

fn name_within(a: &TextGlob, b: &TextGlob) -> bool {
    if a.text == b.text || b.text == "*" {
        return true;
    }
    if let Some(lit) = literal(&a.text) {
        return b.is_match(&lit);
    }
    // `*.example.com` holds every pattern that ends in `.example.com`.
    match b.text.strip_prefix('*') {
        Some(suffix) if suffix.starts_with('.') && !suffix.contains(META) => {
            let tail = a.text.rsplit(META).next().unwrap_or_default();
            tail.ends_with(suffix)
        }
        _ => false,
    }
}

fn host_within(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (_, Host::Any) => true,
        (Host::Net(x), Host::Net(y)) => y.contains(x),
        (Host::Name(x), Host::Name(y)) => name_within(x, y),
        (Host::Net(x), Host::Name(y)) => {
            x.prefix_len() == x.max_prefix_len() && y.is_match(&x.addr().to_string())
        }
        _ => false,
    }
}

fn port_within(a: Port, b: Port) -> bool {
    match (a, b) {
        (_, Port::Any) => true,
        (Port::Range(a1, a2), Port::Range(b1, b2)) => b1 <= a1 && a2 <= b2,
        (Port::Any, Port::Range(..)) => false,
    }
}
