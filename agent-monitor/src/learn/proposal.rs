//! A proposed baseline, and its text: a `[baseline.NAME]` table with a
//! header that says how it was made and how to merge it.

use std::{fmt::Write as _, path::PathBuf};

use crate::policy::EffectKind;

/// Most lines each commented list shows.
const MAX_LINES: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Proposal {
    /// The group's name: the table is `[baseline.NAME]`.
    pub name: String,
    pub dir: PathBuf,
    pub policy_name: String,
    pub policy_sha256: String,
    pub events: u64,
    pub sessions: usize,
    /// By kind (in the policy's order), then pattern.
    pub patterns: Vec<Proposed>,
    /// Undeclared effects outside tool calls that are not proposed, and
    /// why: sensitive, uncoverable, or no pattern can name them.
    pub left_out: Vec<LeftOut>,
    /// Undeclared effects inside tool calls: the tool's policy, not the
    /// baseline, should cover them.
    pub tool_notes: Vec<ToolNote>,
    /// Events not judged (lost, or a kind this build does not know).
    pub unjudged: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Proposed {
    pub kind: EffectKind,
    /// The pattern as the policy file writes it.
    pub pattern: String,
    /// Events it covers in this store.
    pub seen: u64,
    /// How it was made: `exact`, a collapse, `{cwd}`, a looked-up name.
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeftOut {
    pub effect: String,
    pub seen: u64,
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ToolNote {
    pub tool: String,
    pub effect: String,
    pub seen: u64,
}

impl Proposal {
    /// The `[baseline.NAME]` table, with a header comment. Appended to a
    /// policy file (after its other baseline tables) it loads as is.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        self.header(&mut out);
        let _ = writeln!(out, "[baseline.{}]", self.name);
        if self.patterns.is_empty() {
            let _ = writeln!(
                out,
                "# Nothing to add: the policy's baseline covered everything outside tool calls."
            );
        }
        for kind in EffectKind::ALL {
            let patterns: Vec<&Proposed> =
                self.patterns.iter().filter(|p| p.kind == kind).collect();
            if patterns.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{kind} = [");
            for p in patterns {
                let _ = writeln!(
                    out,
                    "    {}, # {}{}",
                    toml_string(&p.pattern),
                    times(p.seen),
                    if p.why == "exact" {
                        String::new()
                    } else {
                        format!("; {}", comment(&p.why))
                    }
                );
            }
            let _ = writeln!(out, "]");
        }
        out
    }

    fn header(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# Baseline proposed by `agent-monitor learn` from {} ({}, {}),\n\
             # judged under policy `{}` (sha256 {}).",
            comment(&self.dir.display().to_string()),
            count(self.events, "event"),
            count(self.sessions as u64, "session"),
            comment(&self.policy_name),
            self.policy_sha256
        );
        out.push_str(
            "#\n\
             # It lists what the runtime did outside tool calls that the policy's baseline\n\
             # did not cover. To use it, paste the table below into your policy file (a copy\n\
             # of the default policy, for one), after its other [baseline.*] tables: groups\n\
             # are tried in file order, so the specific ones should come first. Review every\n\
             # line: what a baseline covers is never undeclared again.\n\
             #\n",
        );
        let _ = writeln!(
            out,
            "# How: paths are exact unless {} or more entries of one directory were seen\n\
             # (then DIR/*, one level); paths under the session's working directory are\n\
             # written {{cwd}}/...; connections are name:port when the agent looked the\n\
             # address up, else address:port; DNS names are exact. Sensitive resources are\n\
             # never proposed.",
            super::generalise::COLLAPSE_AT
        );
        if self.unjudged > 0 {
            let _ = writeln!(
                out,
                "#\n# {} events were not judged (lost, or of a kind this build does not know).",
                self.unjudged
            );
        }
        if !self.left_out.is_empty() {
            out.push_str("#\n# Left out on purpose:\n");
            commented(out, self.left_out.iter(), |l| {
                format!("{}: {}, {}", l.effect, l.why, times(l.seen))
            });
        }
        if !self.tool_notes.is_empty() {
            out.push_str("#\n# Inside tool calls (the tool's business, not the baseline's):\n");
            commented(out, self.tool_notes.iter(), |n| {
                format!(
                    "tool `{}` touched {} outside its envelope ({}): consider its policy",
                    n.tool,
                    n.effect,
                    times(n.seen)
                )
            });
        }
        out.push('\n');
    }

    /// One line for people: how much was proposed and left out.
    pub fn summary(&self) -> String {
        format!(
            "learned {} for `baseline.{}` from {} in {}; {} left out (sensitive or \
             uncoverable), {} inside tool calls",
            count(self.patterns.len() as u64, "pattern"),
            self.name,
            count(self.events, "event"),
            count(self.sessions as u64, "session"),
            self.left_out.len(),
            count(self.tool_notes.len() as u64, "undeclared effect")
        )
    }
}

fn commented<T>(
    out: &mut String,
    items: impl ExactSizeIterator<Item = T>,
    line: impl Fn(T) -> String,
) {
    let total = items.len();
    for item in items.take(MAX_LINES) {
        let _ = writeln!(out, "#   {}", comment(&line(item)));
    }
    if total > MAX_LINES {
        let _ = writeln!(out, "#   … and {} more", total - MAX_LINES);
    }
}

/// `1 event`, `2 events`.
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "seen 1 time".into()
    } else {
        format!("seen {n} times")
    }
}

/// Text made safe for a comment: one line.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A TOML basic string.
pub(crate) fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
