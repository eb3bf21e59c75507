//! Patterns and the envelopes made of them.
//!
//! A pattern is read according to its kind's class: path globs for files
//! and exec (`**` crosses directories, `*` does not, `~` stands for each
//! configured home), `HOST:PORT` for the network (host a name glob, an IP,
//! a CIDR or `*`; port a number, a range or `*`; or a Unix socket path),
//! and a case-insensitive glob for DNS names.

use std::{borrow::Cow, fmt, net::IpAddr};

use globset::{Glob, GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use ipnet::IpNet;

use super::model::{Class, Effect, EffectKind, Effects, Severity};

/// The policy entry that matched: its name (`baseline.loader`,
/// `tools.read_file`, `sensitive.ssh`, `declared`, …), the kind and the
/// pattern as written (after templates were filled in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub kind: EffectKind,
    pub pattern: String,
    /// Set on sensitive rules only.
    pub severity: Option<Severity>,
    /// The pattern came from the call itself (its arguments, or what it
    /// declared), not from the policy's fixed text: a resource the call
    /// named, which a summary can report as never touched.
    pub named: bool,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.name, self.kind, self.pattern)
    }
}

/// A glob with the text it was built from.
#[derive(Clone, Debug)]
pub(crate) struct TextGlob {
    pub text: String,
    glob: Glob,
    matcher: GlobMatcher,
}

impl TextGlob {
    fn new(text: &str, literal_separator: bool, case_insensitive: bool) -> Result<Self, String> {
        let glob = GlobBuilder::new(text)
            .literal_separator(literal_separator)
            .case_insensitive(case_insensitive)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        let matcher = glob.compile_matcher();
        Ok(TextGlob {
            text: text.to_string(),
            glob,
            matcher,
        })
    }

    pub(crate) fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// The text as written, and one glob per home a leading `~` stands
    /// for (one glob otherwise).
    Path {
        source: String,
        globs: Vec<TextGlob>,
    },
    Net(NetPattern),
    Name(TextGlob),
}

#[derive(Clone, Debug)]
pub(crate) enum NetPattern {
    Socket(Vec<TextGlob>),
    Addr { host: Host, port: Port },
}

#[derive(Clone, Debug)]
pub(crate) enum Host {
    Any,
    Net(IpNet),
    Name(TextGlob),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Port {
    Any,
    Range(u16, u16),
}

impl Pattern {
    /// Compiles `text` as a pattern of `kind`, `~` standing for each home.
    pub fn compile(kind: EffectKind, text: &str, homes: &[String]) -> Result<Pattern, String> {
        match kind.class() {
            Class::Path => Ok(Pattern::Path {
                source: text.to_string(),
                globs: path_globs(text, homes)?,
            }),
            Class::Net => net_pattern(text, homes).map(Pattern::Net),
            Class::Name => {
                let name = text.trim_end_matches('.').to_ascii_lowercase();
                if name.is_empty() || name.contains(['/', ' ']) {
                    return Err(format!("`{text}` is not a DNS name pattern"));
                }
                TextGlob::new(&name, false, true).map(Pattern::Name)
            }
        }
    }

    pub fn matches(&self, effect: &Effect) -> bool {
        match self {
            Pattern::Path { globs, .. } => globs.iter().any(|g| g.is_match(&effect.resource)),
            Pattern::Name(glob) => glob.is_match(&dns_name(&effect.resource)),
            Pattern::Net(net) => net.matches(effect),
        }
    }
}

fn path_globs(text: &str, homes: &[String]) -> Result<Vec<TextGlob>, String> {
    let texts: Vec<String> = if text == "~" {
        homes.to_vec()
    } else if let Some(rest) = text.strip_prefix("~/") {
        homes.iter().map(|h| format!("{h}/{rest}")).collect()
    } else if text.starts_with('~') {
        return Err(format!("`{text}`: only `~` and `~/…` are expanded"));
    } else {
        vec![text.to_string()]
    };
    if texts.is_empty() {
        return Err(format!("`{text}` uses ~ but no homes are configured"));
    }
    texts
        .iter()
        .map(|t| {
            if !(t.starts_with('/') || t.starts_with("**")) {
                return Err(format!("`{t}`: a path pattern starts with /, ~/ or **"));
            }
            // Observed paths are normalised, so these would never match.
            if t.split('/').any(|c| c == "." || c == "..") {
                return Err(format!("`{t}`: `.` and `..` components never match"));
            }
            TextGlob::new(t, true, false).map_err(|e| format!("`{t}`: {e}"))
        })
        .collect()
}

fn net_pattern(text: &str, homes: &[String]) -> Result<NetPattern, String> {
    if text.starts_with('/') || text.starts_with('~') {
        return path_globs(text, homes).map(NetPattern::Socket);
    }
    if text.starts_with('@') {
        // Abstract Unix sockets have no directories.
        return TextGlob::new(text, false, false).map(|g| NetPattern::Socket(vec![g]));
    }
    let (host, port) = split_host_port(text).ok_or_else(|| {
        format!("`{text}`: expected HOST:PORT (IPv6 in brackets, `*` for any) or a socket path")
    })?;
    let port = parse_port(port).ok_or_else(|| format!("`{text}`: `{port}` is not a port"))?;
    let host = if host == "*" {
        Host::Any
    } else if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        ip_net(inner)
            .ok_or_else(|| format!("`{text}`: `{inner}` is not an IPv6 address or CIDR"))?
    } else if host.is_empty() || host.contains([':', ' ']) {
        return Err(format!(
            "`{text}`: `{host}` is not a host (IPv6 goes in brackets)"
        ));
    } else if host.contains('/') {
        ip_net(host).ok_or_else(|| format!("`{text}`: `{host}` is not a CIDR"))?
    } else if let Some(net) = ip_net(host) {
        net
    } else {
        Host::Name(TextGlob::new(&host.to_ascii_lowercase(), false, true)?)
    };
    Ok(NetPattern::Addr { host, port })
}

/// `host` and `port` of `host:port` or `[v6]:port`.
fn split_host_port(text: &str) -> Option<(&str, &str)> {
    if text.starts_with('[') {
        let close = text.find(']')?;
        let port = text[close + 1..].strip_prefix(':')?;
        Some((&text[..=close], port))
    } else {
        text.rsplit_once(':')
    }
}

fn parse_port(port: &str) -> Option<Port> {
    if port == "*" {
        return Some(Port::Any);
    }
    if let Some((lo, hi)) = port.split_once('-') {
        let (lo, hi) = (lo.parse().ok()?, hi.parse().ok()?);
        return (lo <= hi).then_some(Port::Range(lo, hi));
    }
    port.parse().ok().map(|p| Port::Range(p, p))
}

fn ip_net(text: &str) -> Option<Host> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(Host::Net(net.trunc()));
    }
    let ip = canonical_ip(text.parse().ok()?);
    Some(Host::Net(IpNet::from(ip)))
}

/// IPv4-mapped IPv6 as IPv4: a dual-stack socket reports `::ffff:a.b.c.d`,
/// and that must still match `a.b.c.d` patterns.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn dns_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl NetPattern {
    fn matches(&self, effect: &Effect) -> bool {
        let resource = effect.resource.as_str();
        let socket = resource.starts_with('/') || resource.starts_with('@');
        match self {
            NetPattern::Socket(globs) => socket && globs.iter().any(|g| g.is_match(resource)),
            NetPattern::Addr { .. } if socket => false,
            NetPattern::Addr { host, port } => {
                let Some((h, p)) = split_host_port(resource) else {
                    return false;
                };
                let Ok(p) = p.parse::<u16>() else {
                    return false;
                };
                if let Port::Range(lo, hi) = port
                    && !(*lo..=*hi).contains(&p)
                {
                    return false;
                }
                let h = h.trim_start_matches('[').trim_end_matches(']');
                let ip = h.parse::<IpAddr>().ok().map(canonical_ip);
                match host {
                    Host::Any => true,
                    Host::Net(net) => ip.is_some_and(|ip| net.contains(&ip)),
                    Host::Name(glob) => {
                        let text = ip.map_or_else(|| dns_name(h), |ip| ip.to_string());
                        glob.is_match(&text)
                            || effect
                                .name
                                .as_deref()
                                .is_some_and(|n| glob.is_match(&dns_name(n)))
                    }
                }
            }
        }
    }
}

/// One rule and its compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub rule: Rule,
    pub pattern: Pattern,
}

/// The set of effects a tool call (or the baseline, or the sensitive list)
/// covers. Path and name globs of a kind are matched together by one
/// `GlobSet`; network patterns one by one.
#[derive(Clone, Debug, Default)]
pub struct Envelope {
    entries: Vec<Entry>,
    index: Vec<KindIndex>,
}

#[derive(Clone, Debug)]
struct KindIndex {
    set: GlobSet,
    /// The entry each glob of `set` belongs to.
    owners: Vec<usize>,
    /// Entries matched one by one.
    linear: Vec<usize>,
}

impl Envelope {
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Envelope {
        let index = EffectKind::ALL
            .iter()
            .map(|kind| index_kind(&entries, *kind))
            .collect();
        Envelope { entries, index }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn into_entries(self) -> Vec<Entry> {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.entries.iter().map(|e| &e.rule)
    }

    /// The patterns by kind, as an envelope is declared and recorded.
    pub fn effects(&self) -> Effects {
        let mut out = Effects::default();
        for rule in self.rules() {
            out.0
                .entry(rule.kind)
                .or_default()
                .push(rule.pattern.clone());
        }
        out
    }

    /// The first rule (in policy order) whose pattern matches `effect`.
    pub fn covers(&self, effect: &Effect) -> Option<&Rule> {
        self.matching(effect).next()
    }

    /// The rule that best covers `effect`: one that named the resource
    /// (`read_file /srv/a`) over one that merely includes it (`/srv/**`),
    /// else the first in policy order. How both the daemon and
    /// [`super::Policy::classify`] choose among an envelope's rules.
    pub fn best_cover(&self, effect: &Effect) -> Option<&Rule> {
        let mut matching = self.matching(effect);
        let first = matching.next()?;
        if first.named {
            return Some(first);
        }
        Some(matching.find(|r| r.named).unwrap_or(first))
    }

    /// Every rule whose pattern matches `effect`, in policy order.
    pub fn matching<'a>(&'a self, effect: &Effect) -> impl Iterator<Item = &'a Rule> + 'a {
        let mut hits: Vec<usize> = Vec::new();
        if let Some(index) = self.index.get(effect.kind.index()) {
            if !index.owners.is_empty() {
                let subject = match effect.kind.class() {
                    Class::Name => Cow::Owned(dns_name(&effect.resource)),
                    _ => Cow::Borrowed(effect.resource.as_str()),
                };
                hits.extend(
                    index
                        .set
                        .matches(subject.as_ref())
                        .into_iter()
                        .map(|g| index.owners[g]),
                );
            }
            hits.extend(
                index
                    .linear
                    .iter()
                    .copied()
                    .filter(|i| self.entries[*i].pattern.matches(effect)),
            );
        }
        hits.sort_unstable();
        hits.dedup();
        hits.into_iter().map(|i| &self.entries[i].rule)
    }
}

fn index_kind(entries: &[Entry], kind: EffectKind) -> KindIndex {
    let mut builder = GlobSetBuilder::new();
    let mut owners = Vec::new();
    let mut linear = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if entry.rule.kind != kind {
            continue;
        }
        match &entry.pattern {
            Pattern::Path { globs, .. } => {
                for g in globs {
                    builder.add(g.glob.clone());
                    owners.push(i);
                }
            }
            Pattern::Name(g) => {
                builder.add(g.glob.clone());
                owners.push(i);
            }
            Pattern::Net(_) => linear.push(i),
        }
    }
    match builder.build() {
        Ok(set) => KindIndex {
            set,
            owners,
            linear,
        },
        // A set too large to compile still works, one pattern at a time.
        Err(_) => {
            linear.extend(owners);
            linear.sort_unstable();
            linear.dedup();
            KindIndex {
                set: GlobSet::empty(),
                owners: Vec::new(),
                linear,
            }
        }
    }
}
