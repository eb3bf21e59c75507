//! The policy file as written, before any pattern is compiled. Every table
//! rejects keys it does not know: a misspelt `file.raed` must fail the
//! load, not quietly allow nothing (or everything).

use std::{collections::BTreeMap, fmt};

use serde::{
    Deserialize, Deserializer,
    de::{self, MapAccess, Visitor},
};
use toml::Spanned;

use super::model::{Extend, Infer, KIND_KEYS, KindMap, Severity};

pub(crate) type Patterns = KindMap<Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyRaw {
    pub version: Option<Spanned<i64>>,
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub settings: SettingsRaw,
    #[serde(default)]
    pub baseline: BTreeMap<String, Spanned<GroupRaw>>,
    #[serde(default)]
    pub sensitive: BTreeMap<String, Spanned<SensitiveRaw>>,
    #[serde(default)]
    pub deny: Vec<Spanned<DenyRaw>>,
    #[serde(default)]
    pub tools: BTreeMap<String, Spanned<ToolRaw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsRaw {
    pub infer_unknown_tools: Option<bool>,
    pub unknown_tool_extend: Option<Extend>,
    pub homes: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DenyRaw {
    pub name: String,
    pub tool: Option<Spanned<String>>,
    pub reason: Option<String>,
    pub args: Option<Spanned<toml::Table>>,
}

/// A value that is always an error: the key before it was unknown.
struct Reject(String);

impl<'de> de::DeserializeSeed<'de> for Reject {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, _: D) -> Result<(), D::Error> {
        Err(de::Error::custom(self.0))
    }
}

/// A `[baseline.NAME]` table: patterns only.
#[derive(Debug, Default)]
pub(crate) struct GroupRaw {
    pub patterns: Patterns,
}

/// A `[sensitive.NAME]` table: a severity and patterns.
#[derive(Debug, Default)]
pub(crate) struct SensitiveRaw {
    pub severity: Option<Severity>,
    pub patterns: Patterns,
}

/// A `[tools.NAME]` table: aliases, switches and template patterns.
#[derive(Debug, Default)]
pub(crate) struct ToolRaw {
    pub aliases: Vec<Spanned<String>>,
    pub extend: Option<Extend>,
    pub infer: Option<Infer>,
    pub patterns: Patterns,
}

/// Reads a table whose keys are effect kinds plus the `meta` keys, which
/// `on_meta` reads. Any other key is an error that lists the valid ones.
fn read_table<'de, A: MapAccess<'de>>(
    mut map: A,
    meta: &[&str],
    mut on_meta: impl FnMut(&str, &mut A) -> Result<(), A::Error>,
) -> Result<Patterns, A::Error> {
    let mut patterns = Patterns::default();
    while let Some(key) = map.next_key::<String>()? {
        if meta.contains(&key.as_str()) {
            on_meta(&key, &mut map)?;
        } else if !patterns.take(&key, &mut map)? {
            let expected: Vec<String> = meta
                .iter()
                .chain(KIND_KEYS.iter())
                .map(|k| format!("`{k}`"))
                .collect();
            let message = format!(
                "unknown key `{key}`, expected one of {}",
                expected.join(", ")
            );
            // Failing inside the value makes the error point at its line
            // rather than at the table's header.
            map.next_value_seed(Reject(message))?;
        }
    }
    Ok(patterns)
}

impl<'de> Deserialize<'de> for GroupRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GroupRaw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GroupRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a baseline table of effect kinds")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GroupRaw, A::Error> {
                let patterns = read_table(map, &[], |_, _| Ok(()))?;
                Ok(GroupRaw { patterns })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for SensitiveRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SensitiveRaw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SensitiveRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a sensitive table: severity and effect kinds")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<SensitiveRaw, A::Error> {
                let mut severity = None;
                let patterns = read_table(map, &["severity"], |_, map| {
                    severity = Some(map.next_value()?);
                    Ok(())
                })?;
                Ok(SensitiveRaw { severity, patterns })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for ToolRaw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ToolRaw, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolRaw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tool table: aliases, extend, infer and effect kinds")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ToolRaw, A::Error> {
                let (mut aliases, mut extend, mut infer) = (Vec::new(), None, None);
                let patterns = read_table(map, &["aliases", "extend", "infer"], |key, map| {
                    match key {
                        "aliases" => aliases = map.next_value()?,
                        "extend" => extend = Some(map.next_value()?),
                        _ => infer = Some(map.next_value()?),
                    }
                    Ok(())
                })?;
                Ok(ToolRaw {
                    aliases,
                    extend,
                    infer,
                    patterns,
                })
            }
        }
        d.deserialize_map(V)
    }
}
