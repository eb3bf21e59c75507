//! The three questions the daemon asks: may this call start (and what does
//! it cover), whose is this effect, and is it sensitive.

use serde_json::Value;

use super::{
    DenyRule, Policy, ToolSpec,
    infer::infer,
    load::entry,
    matching::{Entry, Envelope, Pattern, Rule},
    model::{Class, Effect, EffectKind, Effects, Extend, Infer, Severity},
    template::{Context, resolve},
};

/// The answer at `tool.start`.
#[derive(Clone, Debug)]
pub struct Decision {
    pub allow: bool,
    /// The rule that decided: `deny.NAME`, `tools.NAME`, `tools.NAME.extend`,
    /// `settings.unknown_tool_extend`, `declared.invalid`, `infer` (a tool
    /// the policy does not name, envelope inferred) or `unknown` (not
    /// named, inference off).
    pub rule: String,
    pub reason: String,
    /// What the call covers. On a deny, the envelope derived from the
    /// policy alone, so the call's effects can still be judged if it runs.
    pub envelope: Envelope,
    /// What did not make it into the envelope and why: a template whose
    /// argument was missing, a declared pattern that extended it.
    pub notes: Vec<String>,
    pub policy_sha256: String,
}

impl Decision {
    /// `allow` or `deny`, as the evidence records it.
    pub fn name(&self) -> &'static str {
        if self.allow { "allow" } else { "deny" }
    }
}

/// Whose an observed effect is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Inside the envelope of the open call `call_id`.
    Declared {
        call_id: &'a str,
        rule: &'a Rule,
    },
    /// What the agent runtime does outside tool calls.
    Baseline {
        rule: &'a Rule,
    },
    Undeclared,
}

impl Policy {
    /// [`Policy::decide_start_in`] without a working directory.
    pub fn decide_start(&self, tool: &str, args: &Value, declared: Option<&Effects>) -> Decision {
        self.decide_start_in(&Context::default(), tool, args, declared)
    }

    /// Decides on a tool call as it starts. Deny rules come first. Then
    /// the envelope is derived from the policy (the tool's templates, or
    /// inference for a tool it does not name). Declared effects replace
    /// the derived patterns of each kind they name: narrower is always
    /// accepted; wider only when the tool's `extend` is `allow`.
    pub fn decide_start_in(
        &self,
        ctx: &Context,
        tool: &str,
        args: &Value,
        declared: Option<&Effects>,
    ) -> Decision {
        let spec = self.spec(tool);
        let canonical = spec.map_or(tool, |s| s.name.as_str());
        let (derived, mut notes) = self.derive(ctx, spec, args);
        let decision = |allow: bool, rule: String, reason: String, envelope, notes| Decision {
            allow,
            rule,
            reason,
            envelope,
            notes,
            policy_sha256: self.sha256.clone(),
        };

        if let Some(rule) = self.deny.iter().find(|r| r.applies(tool, canonical, args)) {
            let reason = rule.reason(tool);
            return decision(false, format!("deny.{}", rule.name), reason, derived, notes);
        }

        let (rule, extend, extend_rule) = match spec {
            Some(s) => (
                format!("tools.{}", s.name),
                s.extend,
                format!("tools.{}.extend", s.name),
            ),
            None => (
                if self.settings.infer_unknown_tools {
                    "infer"
                } else {
                    "unknown"
                }
                .to_string(),
                self.settings.unknown_tool_extend,
                "settings.unknown_tool_extend".to_string(),
            ),
        };
        let Some(declared) = declared.filter(|d| !d.is_empty()) else {
            let reason = format!("tool `{tool}`: envelope from the policy ({rule})");
            return decision(true, rule, reason, derived, notes);
        };

        let mut declared_entries = Vec::new();
        for (kind, patterns) in &declared.0 {
            for raw in patterns {
                let text = declared_text(*kind, raw, ctx);
                let pattern = match Pattern::compile(*kind, &text, &self.settings.homes) {
                    Ok(p) => p,
                    Err(m) => {
                        let reason = format!("declared {kind} `{raw}` is not a pattern: {m}");
                        return decision(false, "declared.invalid".into(), reason, derived, notes);
                    }
                };
                let within = derived
                    .entries()
                    .iter()
                    .any(|e| e.rule.kind == *kind && pattern.within(&e.pattern));
                if !within {
                    if extend == Extend::Deny {
                        let reason = format!(
                            "declared {kind} `{raw}` is outside the envelope the policy gives \
                             tool `{canonical}`, and it may not be extended"
                        );
                        return decision(false, extend_rule, reason, derived, notes);
                    }
                    notes.push(format!("declared {kind} `{raw}` extends the envelope"));
                }
                let mut e = entry("declared", *kind, &text, None, pattern);
                e.rule.named = true;
                declared_entries.push(e);
            }
        }
        let entries: Vec<Entry> = derived
            .into_entries()
            .into_iter()
            .filter(|e| !declared.0.contains_key(&e.rule.kind))
            .chain(declared_entries)
            .collect();
        let kinds: Vec<&str> = declared.0.keys().map(|k| k.name()).collect();
        let reason = format!(
            "tool `{tool}`: envelope from the policy ({rule}), declared for {}",
            kinds.join(", ")
        );
        decision(true, rule, reason, Envelope::from_entries(entries), notes)
    }

    /// The envelope the policy alone gives a call, and notes on templates
    /// that yielded nothing.
    fn derive(
        &self,
        ctx: &Context,
        spec: Option<&ToolSpec>,
        args: &Value,
    ) -> (Envelope, Vec<String>) {
        let mut entries = Vec::new();
        let mut notes = Vec::new();
        let mut add =
            |name: &str, kind: EffectKind, text: &str, named: bool, notes: &mut Vec<String>| {
                match Pattern::compile(kind, text, &self.settings.homes) {
                    Ok(p) => {
                        let mut e = entry(name, kind, text, None, p);
                        e.rule.named = named;
                        entries.push(e);
                    }
                    Err(m) => notes.push(format!("{name}: {kind} skipped: {m}")),
                }
            };
        let infer_mode = match spec {
            Some(s) => {
                let name = format!("tools.{}", s.name);
                for (kind, template) in &s.templates {
                    match template.expand(*kind, args, ctx) {
                        Ok(texts) => {
                            let named = template.uses_args();
                            texts
                                .iter()
                                .for_each(|t| add(&name, *kind, t, named, &mut notes))
                        }
                        Err(m) => notes.push(format!("{name}: {kind} skipped: {m}")),
                    }
                }
                s.infer
            }
            None if self.settings.infer_unknown_tools => Infer::Args,
            None => Infer::None,
        };
        if infer_mode != Infer::None {
            let name = spec.map_or("infer".to_string(), |s| format!("tools.{}.infer", s.name));
            for (kind, text) in infer(args, infer_mode == Infer::Words) {
                add(&name, kind, &text, true, &mut notes);
            }
        }
        (Envelope::from_entries(entries), notes)
    }

    /// Classifies an effect against the open calls (first covering one
    /// wins: pass the acting agent's calls, innermost first) and then the
    /// policy's fixed baseline.
    pub fn classify<'a>(
        &'a self,
        effect: &Effect,
        open_calls: &[(&'a str, &'a Envelope)],
    ) -> Verdict<'a> {
        classify_with(effect, &self.baseline, open_calls)
    }

    /// [`Policy::classify`] against a session's baseline from
    /// [`Policy::baseline_in`].
    pub fn classify_in<'a>(
        &self,
        effect: &Effect,
        baseline: &'a Envelope,
        open_calls: &[(&'a str, &'a Envelope)],
    ) -> Verdict<'a> {
        classify_with(effect, baseline, open_calls)
    }

    /// The baseline patterns that need no context.
    pub fn baseline(&self) -> &Envelope {
        &self.baseline
    }

    /// The whole baseline for a session: the fixed patterns and those that
    /// use `{cwd}`, filled in. Build it once per session.
    pub fn baseline_in(&self, ctx: &Context) -> Envelope {
        let mut entries = self.baseline.entries().to_vec();
        for (name, kind, template) in &self.baseline_templates {
            for text in template
                .expand(*kind, &Value::Null, ctx)
                .unwrap_or_default()
            {
                if let Ok(p) = Pattern::compile(*kind, &text, &self.settings.homes) {
                    entries.push(entry(name, *kind, &text, None, p));
                }
            }
        }
        Envelope::from_entries(entries)
    }

    /// The most severe sensitive rule `effect` touches (the first in policy
    /// order among equals). Checked on every effect, declared or not.
    pub fn sensitive(&self, effect: &Effect) -> Option<(&Rule, Severity)> {
        let mut best: Option<(&Rule, Severity)> = None;
        for rule in self.sensitive.matching(effect) {
            let severity = rule.severity.unwrap_or_default();
            if best.is_none_or(|(_, s)| severity > s) {
                best = Some((rule, severity));
            }
        }
        best
    }
}

fn classify_with<'a>(
    effect: &Effect,
    baseline: &'a Envelope,
    open_calls: &[(&'a str, &'a Envelope)],
) -> Verdict<'a> {
    // A call that named the resource beats an earlier one that merely
    // includes it; among equals, the first.
    let mut broad = None;
    for (call_id, envelope) in open_calls {
        match envelope.best_cover(effect) {
            Some(rule) if rule.named => return Verdict::Declared { call_id, rule },
            Some(rule) => {
                broad.get_or_insert(Verdict::Declared { call_id, rule });
            }
            None => {}
        }
    }
    if let Some(verdict) = broad {
        return verdict;
    }
    match baseline.covers(effect) {
        Some(rule) => Verdict::Baseline { rule },
        None => Verdict::Undeclared,
    }
}

/// A declared path pattern made absolute: relative ones join the working
/// directory (escaped: it is a literal), or go under `**/` without one.
fn declared_text(kind: EffectKind, raw: &str, ctx: &Context) -> String {
    let relative = kind.class() == Class::Path
        && !(raw.starts_with('/') || raw.starts_with('~') || raw.starts_with("**"));
    if !relative {
        return raw.to_string();
    }
    let raw = raw.trim_start_matches("./");
    match ctx.cwd.filter(|c| c.starts_with('/')) {
        Some(cwd) => {
            let cwd = globset::escape(&crate::actions::paths::normalize(cwd));
            format!("{}/{raw}", cwd.trim_end_matches('/'))
        }
        None => format!("**/{raw}"),
    }
}

impl DenyRule {
    fn applies(&self, tool: &str, canonical: &str, args: &Value) -> bool {
        (self.tool.is_match(tool) || self.tool.is_match(canonical))
            && self.conditions.iter().all(|c| {
                resolve(args, &c.path)
                    .iter()
                    .any(|v| c.globs.iter().any(|g| g.is_match(v)))
            })
    }

    fn reason(&self, tool: &str) -> String {
        let mut reason = match &self.reason {
            Some(r) => format!("{r} (deny rule `{}`, tool `{tool}`", self.name),
            None => format!("deny rule `{}` matched tool `{tool}`", self.name),
        };
        let conditions: Vec<String> = self
            .conditions
            .iter()
            .map(|c| format!("args.{} ~ {:?}", c.path.join("."), c.texts))
            .collect();
        if !conditions.is_empty() {
            reason.push_str(&format!(" with {}", conditions.join(", ")));
        }
        if self.reason.is_some() {
            reason.push(')');
        }
        reason
    }
}
