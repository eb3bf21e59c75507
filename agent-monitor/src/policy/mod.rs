//! Policy as code: what each declared tool call may do, what an agent
//! runtime does anyway, what must never be touched quietly, and which
//! calls to refuse. docs/policy.md describes the file.
//!
//! The policy is pure: loading reads one file, and every other function
//! works on values. The daemon asks three questions of it:
//!
//! - at `tool.start`, [`Policy::decide_start`]: allow or deny, by which
//!   rule, and the envelope of effects the call covers;
//! - for each observed effect, [`Policy::classify`]: covered by an open
//!   call's envelope, by the baseline, or undeclared;
//! - independently, [`Policy::sensitive`]: whether the effect touches a
//!   sensitive resource, which alerts even when a call declared it.
//!
//! Every answer names the rule that gave it; [`Policy::sha256`] names the
//! policy, so a decision can be traced to the exact text that made it.

mod decide;
mod error;
mod infer;
mod load;
mod matching;
mod model;
mod raw;
mod template;
mod within;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod default_tests;
#[cfg(test)]
mod matching_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod template_tests;

use std::{collections::HashMap, path::Path};

use globset::GlobMatcher;

pub use decide::{Decision, Verdict};
pub use error::PolicyError;
pub use load::VERSION;
pub use matching::{Envelope, Rule};
pub use model::{Effect, EffectKind, Effects, Extend, Infer, Severity};
pub use template::{Context, MAX_EXPANSION};

/// The policy compiled into the monitor, used when none is configured.
pub const DEFAULT_POLICY: &str = include_str!("default.toml");

/// A loaded policy. Cheap to share behind an `Arc`; never changes once the
/// daemon runs, except through [`Policy::protect`] at start-up.
#[derive(Clone, Debug)]
pub struct Policy {
    name: String,
    description: String,
    version: u32,
    sha256: String,
    settings: Settings,
    baseline: Envelope,
    /// Baseline patterns that need a [`Context`] (`{cwd}`), with their rule
    /// names; [`Policy::baseline_in`] fills them in.
    baseline_templates: Vec<(String, EffectKind, template::Template)>,
    sensitive: Envelope,
    deny: Vec<DenyRule>,
    tools: Vec<ToolSpec>,
    /// Tool names and aliases → index in `tools`.
    tool_names: HashMap<String, usize>,
}

#[derive(Clone, Debug)]
struct Settings {
    infer_unknown_tools: bool,
    unknown_tool_extend: Extend,
    homes: Vec<String>,
}

#[derive(Clone, Debug)]
struct ToolSpec {
    name: String,
    extend: Extend,
    infer: Infer,
    templates: Vec<(EffectKind, template::Template)>,
}

#[derive(Clone, Debug)]
struct DenyRule {
    name: String,
    tool: GlobMatcher,
    reason: Option<String>,
    /// All must hold.
    conditions: Vec<Condition>,
}

/// An argument matching any of the globs.
#[derive(Clone, Debug)]
struct Condition {
    path: Vec<String>,
    texts: Vec<String>,
    globs: Vec<GlobMatcher>,
}

impl Policy {
    /// Parses and compiles a policy. Errors name the line, and the field
    /// once the shape is right; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        load::compile(text)
    }

    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Policy::from_toml(&text)
    }

    /// The embedded [`DEFAULT_POLICY`].
    pub fn default_policy() -> Policy {
        // Its tests load it, so this cannot fail in a built monitor.
        Policy::from_toml(DEFAULT_POLICY).expect("the embedded default policy is valid")
    }

    /// SHA-256 of the policy's source bytes, lower-case hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free text for people, from the file's `description`.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn infers_unknown_tools(&self) -> bool {
        self.settings.infer_unknown_tools
    }

    /// The name a tool (or alias) has in the policy; None for a tool the
    /// policy does not name. `mcp__SERVER__TOOL` is looked up as `TOOL`
    /// when the whole name is not in the policy.
    pub fn tool_name(&self, tool: &str) -> Option<&str> {
        self.spec(tool).map(|s| s.name.as_str())
    }

    fn spec(&self, tool: &str) -> Option<&ToolSpec> {
        let index = self.tool_names.get(tool).or_else(|| {
            // Claude Code calls an MCP server's tools `mcp__SERVER__TOOL`.
            let bare = tool.strip_prefix("mcp__")?.split_once("__")?.1;
            self.tool_names.get(bare)
        })?;
        Some(&self.tools[*index])
    }

    /// Adds `dir` and everything under it to the sensitive resources, at
    /// critical severity, as rule `sensitive.monitor`. The daemon calls it
    /// for its evidence and key directories, which only it knows. The
    /// policy's hash does not change: it names the file, and the daemon
    /// records its own configuration.
    pub fn protect(&mut self, dir: &str) -> Result<(), PolicyError> {
        let invalid = |message: String| PolicyError::Protect {
            path: dir.to_string(),
            message,
        };
        if !dir.starts_with('/') {
            return Err(invalid("not an absolute path".into()));
        }
        let dir = globset::escape(&crate::actions::paths::normalize(dir));
        let mut entries = std::mem::take(&mut self.sensitive).into_entries();
        let texts = if dir == "/" {
            vec!["/**".to_string()]
        } else {
            vec![dir.clone(), format!("{dir}/**")]
        };
        for kind in EffectKind::FILE {
            for text in &texts {
                let pattern = matching::Pattern::compile(kind, text, &self.settings.homes)
                    .map_err(invalid)?;
                entries.push(load::entry(
                    "sensitive.monitor",
                    kind,
                    text,
                    Some(Severity::Critical),
                    pattern,
                ));
            }
        }
        self.sensitive = Envelope::from_entries(entries);
        Ok(())
    }
}

impl Policy {
    /// Adds one baseline pattern under rule `name`. The monitor calls it
    /// for what it hands the agent itself (the declaration socket), which
    /// no policy file can know. Like [`Policy::protect`], it leaves the
    /// policy's hash alone.
    pub fn extend_baseline(
        &mut self,
        name: &str,
        kind: EffectKind,
        text: &str,
    ) -> Result<(), PolicyError> {
        let pattern =
            matching::Pattern::compile(kind, text, &self.settings.homes).map_err(|message| {
                PolicyError::Protect {
                    path: text.to_string(),
                    message,
                }
            })?;
        let mut entries = std::mem::take(&mut self.baseline).into_entries();
        entries.push(load::entry(name, kind, text, None, pattern));
        self.baseline = Envelope::from_entries(entries);
        Ok(())
    }

    /// The monitor's own interface as baseline: connecting to its socket
    /// (`monitor.api`), and running its own binary (`monitor.cli`), which
    /// a shell agent does to declare. Neither is an action of the agent's.
    pub fn baseline_monitor(&mut self, socket: &std::path::Path) -> Result<(), PolicyError> {
        self.extend_baseline(
            "monitor.api",
            EffectKind::NetConnect,
            &globset::escape(&socket.to_string_lossy()),
        )?;
        if let Ok(exe) = std::env::current_exe() {
            self.extend_baseline(
                "monitor.cli",
                EffectKind::Exec,
                &globset::escape(&exe.to_string_lossy()),
            )?;
        }
        Ok(())
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
