//! From the policy file as written ([`super::raw`]) to a [`Policy`]: every
//! pattern and template is compiled here, once, so a bad one fails the
//! load with its line instead of failing a match later.

use std::collections::HashMap;

use globset::{GlobBuilder, GlobMatcher};

use super::{
    Condition, DenyRule, Policy, Settings, ToolSpec,
    error::{PolicyError, line_of},
    matching::{Entry, Envelope, Pattern, Rule},
    model::{EffectKind, Extend, Infer, Severity},
    raw::{DenyRaw, Patterns, PolicyRaw},
    template::Template,
};

/// The policy file format this monitor reads.
pub const VERSION: i64 = 1;

/// Homes `~` stands for when the policy does not say.
const DEFAULT_HOMES: [&str; 2] = ["/root", "/home/*"];

pub(crate) fn compile(text: &str) -> Result<Policy, PolicyError> {
    let raw: PolicyRaw = toml::from_str(text).map_err(|e| PolicyError::Parse {
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().to_string(),
    })?;
    let loader = Loader {
        text,
        homes: homes(text, &raw)?,
    };
    if let Some(v) = &raw.version
        && *v.get_ref() != VERSION
    {
        return Err(loader.invalid(
            v.span().start,
            "version",
            format!(
                "unsupported policy version {}; this monitor reads version {VERSION}",
                v.get_ref()
            ),
        ));
    }

    let mut groups: Vec<_> = raw.baseline.iter().collect();
    groups.sort_by_key(|(_, g)| g.span().start);
    let mut baseline = Vec::new();
    let mut baseline_templates = Vec::new();
    for (group, spanned) in groups {
        let name = format!("baseline.{group}");
        for (kind, template) in loader.templates(&name, &spanned.get_ref().patterns, false)? {
            if template.has_slots() {
                baseline_templates.push((name.clone(), kind, template));
            } else {
                let pattern = loader.pattern(&name, kind, &template.source, 0)?;
                baseline.push(entry(&name, kind, &template.source, None, pattern));
            }
        }
    }

    let mut groups: Vec<_> = raw.sensitive.iter().collect();
    groups.sort_by_key(|(_, g)| g.span().start);
    let mut sensitive = Vec::new();
    for (group, spanned) in groups {
        let name = format!("sensitive.{group}");
        let severity = spanned.get_ref().severity.unwrap_or_default();
        for (kind, template) in loader.templates(&name, &spanned.get_ref().patterns, false)? {
            if template.has_slots() {
                return Err(loader.invalid(
                    spanned.span().start,
                    &name,
                    format!(
                        "`{}`: sensitive patterns take no placeholders",
                        template.source
                    ),
                ));
            }
            let pattern = loader.pattern(&name, kind, &template.source, 0)?;
            sensitive.push(entry(
                &name,
                kind,
                &template.source,
                Some(severity),
                pattern,
            ));
        }
    }

    let mut tools = Vec::new();
    let mut tool_names: HashMap<String, usize> = HashMap::new();
    for (name, spanned) in &raw.tools {
        let field = format!("tools.{name}");
        let tool = spanned.get_ref();
        let names = std::iter::once((name.as_str(), spanned.span().start)).chain(
            tool.aliases
                .iter()
                .map(|a| (a.get_ref().as_str(), a.span().start)),
        );
        for (alias, at) in names {
            if let Some(other) = tool_names.insert(alias.to_string(), tools.len()) {
                let other: &ToolSpec = &tools[other];
                return Err(loader.invalid(
                    at,
                    &field,
                    format!("`{alias}` already names tool `{}`", other.name),
                ));
            }
        }
        let templates = loader.templates(&field, &tool.patterns, true)?;
        for (kind, template) in &templates {
            // A value in each slot, to find a bad glob now rather than at
            // the first call.
            loader.pattern(&field, *kind, &template.sample(*kind), spanned.span().start)?;
        }
        tools.push(ToolSpec {
            name: name.clone(),
            extend: tool.extend.unwrap_or(Extend::Deny),
            infer: tool.infer.unwrap_or(Infer::None),
            templates,
        });
    }

    let mut deny: Vec<DenyRule> = Vec::new();
    for spanned in &raw.deny {
        let rule = loader.deny_rule(spanned.get_ref(), spanned.span().start)?;
        if deny.iter().any(|d| d.name == rule.name) {
            return Err(loader.invalid(
                spanned.span().start,
                "deny",
                format!("the name `{}` is used twice", rule.name),
            ));
        }
        deny.push(rule);
    }

    Ok(Policy {
        name: raw.name.clone().unwrap_or_default(),
        description: raw.description.clone().unwrap_or_default(),
        version: VERSION as u32,
        sha256: super::sha256_hex(text.as_bytes()),
        settings: Settings {
            infer_unknown_tools: raw.settings.infer_unknown_tools.unwrap_or(true),
            unknown_tool_extend: raw.settings.unknown_tool_extend.unwrap_or(Extend::Allow),
            homes: loader.homes,
        },
        baseline: Envelope::from_entries(baseline),
        baseline_templates,
        sensitive: Envelope::from_entries(sensitive),
        deny,
        tools,
        tool_names,
    })
}

fn homes(text: &str, raw: &PolicyRaw) -> Result<Vec<String>, PolicyError> {
    let Some(homes) = &raw.settings.homes else {
        return Ok(DEFAULT_HOMES.iter().map(|h| h.to_string()).collect());
    };
    homes
        .get_ref()
        .iter()
        .map(|h| {
            if !h.starts_with('/') {
                return Err(PolicyError::Invalid {
                    line: line_of(text, homes.span().start),
                    field: "settings.homes".into(),
                    message: format!("`{h}`: a home is an absolute path (globs allowed)"),
                });
            }
            Ok(h.trim_end_matches('/').to_string())
        })
        .collect()
}

pub(crate) fn entry(
    name: &str,
    kind: EffectKind,
    text: &str,
    severity: Option<Severity>,
    pattern: Pattern,
) -> Entry {
    Entry {
        rule: Rule {
            name: name.to_string(),
            kind,
            pattern: text.to_string(),
            severity,
            named: false,
        },
        pattern,
    }
}

struct Loader<'a> {
    text: &'a str,
    homes: Vec<String>,
}

impl Loader<'_> {
    fn invalid(&self, offset: usize, field: &str, message: String) -> PolicyError {
        PolicyError::Invalid {
            line: line_of(self.text, offset),
            field: field.to_string(),
            message,
        }
    }

    /// Every pattern of a table as a template, in kind order.
    fn templates(
        &self,
        field: &str,
        patterns: &Patterns,
        allow_args: bool,
    ) -> Result<Vec<(EffectKind, Template)>, PolicyError> {
        let mut out = Vec::new();
        for (kind, list) in &patterns.0 {
            for p in list {
                let template = Template::parse(p.get_ref(), allow_args)
                    .map_err(|m| self.invalid(p.span().start, &format!("{field}.{kind}"), m))?;
                if !template.has_slots() {
                    self.pattern(field, *kind, p.get_ref(), p.span().start)?;
                }
                out.push((*kind, template));
            }
        }
        Ok(out)
    }

    fn pattern(
        &self,
        field: &str,
        kind: EffectKind,
        text: &str,
        offset: usize,
    ) -> Result<Pattern, PolicyError> {
        Pattern::compile(kind, text, &self.homes)
            .map_err(|m| self.invalid(offset, &format!("{field}.{kind}"), m))
    }

    fn deny_rule(&self, raw: &DenyRaw, offset: usize) -> Result<DenyRule, PolicyError> {
        let field = format!("deny.{}", raw.name);
        if raw.name.is_empty() {
            return Err(self.invalid(offset, "deny.name", "a deny rule needs a name".into()));
        }
        let tool_text = raw.tool.as_ref().map_or("*", |t| t.get_ref().as_str());
        let tool =
            text_glob(tool_text).map_err(|m| self.invalid(offset, &format!("{field}.tool"), m))?;
        let mut conditions = Vec::new();
        if let Some(args) = &raw.args {
            let at = args.span().start;
            let mut flat = Vec::new();
            flatten(args.get_ref(), &mut Vec::new(), &mut flat)
                .map_err(|m| self.invalid(at, &format!("{field}.args"), m))?;
            for (path, texts) in flat {
                let globs = texts
                    .iter()
                    .map(|t| text_glob(t))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| {
                        self.invalid(at, &format!("{field}.args.{}", path.join(".")), m)
                    })?;
                conditions.push(Condition { path, texts, globs });
            }
        }
        Ok(DenyRule {
            name: raw.name.clone(),
            tool,
            reason: raw.reason.clone(),
            conditions,
        })
    }
}

/// A glob over free text (a tool name, a command line): `*` crosses `/`.
fn text_glob(text: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(text)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("`{text}`: {}", e.kind()))
}

type Flat = Vec<(Vec<String>, Vec<String>)>;

/// `args.url.host = "x"` is a nested table: its leaves, by path.
fn flatten(table: &toml::Table, prefix: &mut Vec<String>, out: &mut Flat) -> Result<(), String> {
    for (key, value) in table {
        prefix.push(key.clone());
        match value {
            toml::Value::String(s) => out.push((prefix.clone(), vec![s.clone()])),
            toml::Value::Array(items) => {
                let texts = items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("`{}`: a list holds strings only", prefix.join(".")))?;
                out.push((prefix.clone(), texts));
            }
            toml::Value::Table(inner) => flatten(inner, prefix, out)?,
            _ => {
                return Err(format!(
                    "`{}`: a condition is a glob or a list of globs",
                    prefix.join(".")
                ));
            }
        }
        prefix.pop();
    }
    Ok(())
}
