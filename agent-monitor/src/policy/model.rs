//! The vocabulary the policy speaks: effect kinds, observed effects, declared
//! envelopes, severities, and the per-tool switches.
//!
//! Effect kinds are shared with the declaration protocol, so [`Effects`]
//! reads the same JSON an agent sends in a tool call's `effects` field.

use std::{collections::BTreeMap, fmt, marker::PhantomData, str::FromStr};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

macro_rules! effect_kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// What an action does to what, as the policy sees it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EffectKind { $($variant,)* }

        impl EffectKind {
            pub const ALL: [EffectKind; 8] = [$(EffectKind::$variant,)*];

            pub const fn name(self) -> &'static str {
                match self { $(EffectKind::$variant => $name,)* }
            }
        }
    };
}

effect_kinds! {
    FileRead => "file.read",
    FileWrite => "file.write",
    FileCreate => "file.create",
    FileDelete => "file.delete",
    Exec => "exec",
    NetConnect => "net.connect",
    NetBind => "net.bind",
    Dns => "dns",
}

/// How a kind's resource is written, and so how its patterns match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// An absolute path, matched by a path glob.
    Path,
    /// `host:port` (or a Unix socket path), matched by a network pattern.
    Net,
    /// A DNS name, matched by a case-insensitive glob.
    Name,
}

impl EffectKind {
    pub const FILE: [EffectKind; 4] = [
        EffectKind::FileRead,
        EffectKind::FileWrite,
        EffectKind::FileCreate,
        EffectKind::FileDelete,
    ];
    pub const NET: [EffectKind; 2] = [EffectKind::NetConnect, EffectKind::NetBind];

    pub fn from_name(name: &str) -> Option<EffectKind> {
        EffectKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn class(self) -> Class {
        match self {
            EffectKind::NetConnect | EffectKind::NetBind => Class::Net,
            EffectKind::Dns => Class::Name,
            _ => Class::Path,
        }
    }
}

impl fmt::Display for EffectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EffectKind {
    type Err = String;

    fn from_str(s: &str) -> Result<EffectKind, String> {
        EffectKind::from_name(s).ok_or_else(|| unknown_kind(s))
    }
}

fn unknown_kind(name: &str) -> String {
    let names: Vec<&str> = EffectKind::ALL.iter().map(|k| k.name()).collect();
    format!(
        "unknown effect kind `{name}`; expected one of {}",
        names.join(", ")
    )
}

impl serde::Serialize for EffectKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One observed action, as the policy judges it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Effect {
    pub kind: EffectKind,
    /// An absolute, normalised path for file kinds and exec; `ip:port`,
    /// `[ipv6]:port`, `host:port` or a Unix socket path for net kinds; a
    /// name for dns.
    pub resource: String,
    /// For net kinds, the name the agent looked up for the address, when
    /// the daemon knows it: host patterns match it as well as the address.
    /// Address patterns (CIDRs) always match the address itself, so a name
    /// cannot hide a connection to a sensitive address.
    pub name: Option<String>,
}

impl Effect {
    pub fn new(kind: EffectKind, resource: impl Into<String>) -> Effect {
        Effect {
            kind,
            resource: resource.into(),
            name: None,
        }
    }

    pub fn named(mut self, name: impl Into<String>) -> Effect {
        self.name = Some(name.into());
        self
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.resource)?;
        if let Some(name) = &self.name {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

/// A declared envelope: effect kind → patterns, as an agent sends it with a
/// tool call (`{"file.read": ["/src/**"], "net.connect": ["pypi.org:443"]}`).
/// Also read in the nested form `{"file": {"read": [...]}}` and the
/// shorthands `"file": [...]` (all four file kinds) and `"net": [...]`
/// (connect and bind).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Effects(pub BTreeMap<EffectKind, Vec<String>>);

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// So another module's map of kinds converts in one `collect`.
impl FromIterator<(EffectKind, Vec<String>)> for Effects {
    fn from_iter<I: IntoIterator<Item = (EffectKind, Vec<String>)>>(iter: I) -> Effects {
        let mut out = Effects::default();
        for (kind, patterns) in iter {
            out.0.entry(kind).or_default().extend(patterns);
        }
        out
    }
}

impl<'de> Deserialize<'de> for Effects {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Effects, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Effects;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of effect kind to patterns")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Effects, A::Error> {
                let mut kinds = KindMap::default();
                while let Some(key) = map.next_key::<String>()? {
                    if !kinds.take(&key, &mut map)? {
                        return Err(de::Error::custom(unknown_kind(&key)));
                    }
                }
                Ok(Effects(kinds.0))
            }
        }
        d.deserialize_map(V)
    }
}

/// Patterns by kind while a table is read; `P` is `String` for JSON and a
/// spanned string for the policy file, so errors can name a line.
#[derive(Debug)]
pub(crate) struct KindMap<P>(pub BTreeMap<EffectKind, Vec<P>>);

impl<P> Default for KindMap<P> {
    fn default() -> KindMap<P> {
        KindMap(BTreeMap::new())
    }
}

/// The keys a table may use for its patterns.
pub(crate) const KIND_KEYS: [&str; 4] = ["file", "net", "exec", "dns"];

impl<'de, P: Deserialize<'de> + Clone> KindMap<P> {
    /// Reads the value of `key` when it names kinds; false when it does not.
    pub fn take<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        let (family, all): (&'static str, &'static [EffectKind]) = match key {
            "file" => ("file", &EffectKind::FILE),
            "net" => ("net", &EffectKind::NET),
            _ => match EffectKind::from_name(key) {
                Some(kind) => {
                    let patterns: Vec<P> = map.next_value()?;
                    self.0.entry(kind).or_default().extend(patterns);
                    return Ok(true);
                }
                None => return Ok(false),
            },
        };
        let seed = GroupSeed::<P> {
            family,
            kinds: all,
            out: PhantomData,
        };
        for (kind, patterns) in map.next_value_seed(seed)? {
            self.0.entry(kind).or_default().extend(patterns);
        }
        Ok(true)
    }
}

/// A family's value: a list (the same patterns for every kind of the
/// family) or a table of its kinds. Unknown kinds fail as their key is
/// read, so the error points at their line.
struct GroupSeed<P> {
    family: &'static str,
    kinds: &'static [EffectKind],
    out: PhantomData<P>,
}

impl<'de, P: Deserialize<'de> + Clone> de::DeserializeSeed<'de> for GroupSeed<P> {
    type Value = Vec<(EffectKind, Vec<P>)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, P: Deserialize<'de> + Clone> Visitor<'de> for GroupSeed<P> {
    type Value = Vec<(EffectKind, Vec<P>)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of patterns or a table of effect kinds")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut patterns = Vec::new();
        while let Some(p) = seq.next_element::<P>()? {
            patterns.push(p);
        }
        Ok(self.kinds.iter().map(|k| (*k, patterns.clone())).collect())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(sub) = map.next_key::<String>()? {
            let name = format!("{}.{sub}", self.family);
            let kind = EffectKind::from_name(&name)
                .filter(|k| self.kinds.contains(k))
                .ok_or_else(|| de::Error::custom(unknown_kind(&name)))?;
            out.push((kind, map.next_value()?));
        }
        Ok(out)
    }
}

/// How bad touching a sensitive resource is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    #[default]
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a tool call's declared effects may go beyond the envelope the
/// policy derives for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Extend {
    Allow,
    Deny,
}

impl Extend {
    pub fn name(self) -> &'static str {
        match self {
            Extend::Allow => "allow",
            Extend::Deny => "deny",
        }
    }
}

/// Whether a tool's arguments add inferred effects to its envelope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Infer {
    /// Only the tool's templates.
    #[default]
    None,
    /// Absolute paths and URLs among the argument values.
    Args,
    /// The same, also looking inside each string's words (a command line).
    Words,
}
