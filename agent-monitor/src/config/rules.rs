//! Agent discovery rules and workload-identity mappings.
//!
//! A rule's conditions all have to hold. The kernel can only test exact
//! keys at exec (`exe`, `comm`, `uid`), so every rule names at least one of
//! them: that is what lets the kernel track a matching process from its
//! exec, before it has done anything. The other conditions (`argv`,
//! `cgroup`, `container_id`) narrow a rule down, and userspace checks every
//! condition again when it reads the exec.

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::declare::MAX_IDENT;

/// Most discovery rules (and most identity mappings).
pub const MAX_RULES: usize = 64;
/// Bytes of the kernel's exe key: the longest `exe` is one less.
pub const RULE_EXE_LEN: usize = agent_monitor_common::maps::RULE_EXE_LEN;
/// Bytes of a task's name, without its NUL.
const COMM_LEN: usize = 15;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRule {
    pub name: String,
    /// The absolute path `execve` received, exactly.
    pub exe: Option<String>,
    /// The task name the kernel gives at exec, exactly.
    pub comm: Option<String>,
    /// A glob over the arguments joined by single spaces.
    pub argv: Option<String>,
    pub uid: Option<u32>,
    /// A glob over the cgroup v2 path.
    pub cgroup: Option<String>,
    /// The full container id, or a prefix of at least 12 hex digits.
    pub container_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRule {
    pub spiffe_id: String,
    pub agent: Option<String>,
    pub exe: Option<String>,
    pub uid: Option<u32>,
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
}

/// What the rules are tested against: one process at exec.
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidate<'a> {
    pub exe: Option<&'a str>,
    pub comm: &'a str,
    pub argv: &'a [String],
    pub uid: u32,
    pub cgroup: Option<&'a str>,
    pub container_id: Option<&'a str>,
}

/// The exact keys the kernel matches at exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelKeys {
    pub exes: Vec<String>,
    pub comms: Vec<String>,
    pub uids: Vec<u32>,
    /// Every rule names its program by `exe` and none is for a container
    /// (whose files the host's paths do not name): an agent can then only
    /// start by an exec of one of `exes`, which the exec gate can hold
    /// (`kernel/exec_gate`).
    pub gated_by_exe: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RulesError {
    key: String,
    message: String,
}

impl RulesError {
    /// The config key at fault, such as `agents[2].comm`.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The rules, checked and compiled.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    agents: Vec<Compiled<AgentRule>>,
    identity: Vec<Compiled<IdentityRule>>,
}

impl PartialEq for Rules {
    fn eq(&self, other: &Rules) -> bool {
        self.agent_rules().eq(other.agent_rules())
            && self
                .identity
                .iter()
                .map(|c| &c.rule)
                .eq(other.identity.iter().map(|c| &c.rule))
    }
}

#[derive(Clone, Debug)]
struct Compiled<R> {
    rule: R,
    argv: Option<GlobMatcher>,
    cgroup: Option<GlobMatcher>,
}

impl Rules {
    pub fn new(agents: Vec<AgentRule>, identity: Vec<IdentityRule>) -> Result<Rules, RulesError> {
        for (what, count) in [("agents", agents.len()), ("identity", identity.len())] {
            if count > MAX_RULES {
                return Err(RulesError {
                    key: what.into(),
                    message: format!("{count} entries; at most {MAX_RULES} are allowed"),
                });
            }
        }
        let agents = agents
            .into_iter()
            .enumerate()
            .map(|(i, rule)| compile_agent(&format!("agents[{i}]"), rule))
            .collect::<Result<_, _>>()?;
        let identity = identity
            .into_iter()
            .enumerate()
            .map(|(i, rule)| compile_identity(&format!("identity[{i}]"), rule))
            .collect::<Result<_, _>>()?;
        Ok(Rules { agents, identity })
    }

    pub fn agent_rules(&self) -> impl Iterator<Item = &AgentRule> {
        self.agents.iter().map(|c| &c.rule)
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn identity_count(&self) -> usize {
        self.identity.len()
    }

    /// The first agent rule `candidate` matches.
    pub fn agent_for(&self, candidate: &Candidate) -> Option<&AgentRule> {
        self.agents
            .iter()
            .find(|c| {
                let r = &c.rule;
                r.exe.as_deref().is_none_or(|e| candidate.exe == Some(e))
                    && r.comm.as_deref().is_none_or(|c| candidate.comm == c)
                    && r.uid.is_none_or(|u| candidate.uid == u)
                    && c.argv
                        .as_ref()
                        .is_none_or(|g| g.is_match(candidate.argv.join(" ")))
                    && c.cgroup
                        .as_ref()
                        .is_none_or(|g| candidate.cgroup.is_some_and(|p| g.is_match(p)))
                    && container_matches(r.container_id.as_deref(), candidate.container_id)
            })
            .map(|c| &c.rule)
    }

    /// The SPIFFE ID of the first identity mapping `candidate` of `agent`
    /// matches.
    pub fn spiffe_id_for(&self, agent: &str, candidate: &Candidate) -> Option<&str> {
        self.identity
            .iter()
            .find(|c| {
                let r = &c.rule;
                r.agent.as_deref().is_none_or(|a| a == agent)
                    && r.exe.as_deref().is_none_or(|e| candidate.exe == Some(e))
                    && r.uid.is_none_or(|u| candidate.uid == u)
                    && c.cgroup
                        .as_ref()
                        .is_none_or(|g| candidate.cgroup.is_some_and(|p| g.is_match(p)))
                    && container_matches(r.container_id.as_deref(), candidate.container_id)
            })
            .map(|c| c.rule.spiffe_id.as_str())
    }

    /// The keys the kernel needs, without repeats: one per rule, its
    /// narrowest. Every condition of a rule must hold, so a rule with an
    /// `exe` can only match an exec of that path, and its `comm` or `uid`
    /// would only make the kernel track execs that userspace then drops
    /// (with their children, and a forced wakeup each).
    pub fn kernel_keys(&self) -> KernelKeys {
        let mut keys = KernelKeys {
            gated_by_exe: true,
            ..KernelKeys::default()
        };
        for rule in self.agent_rules() {
            keys.gated_by_exe &= rule.exe.is_some() && rule.container_id.is_none();
            if let Some(exe) = &rule.exe {
                if !keys.exes.contains(exe) {
                    keys.exes.push(exe.clone());
                }
            } else if let Some(comm) = &rule.comm {
                if !keys.comms.contains(comm) {
                    keys.comms.push(comm.clone());
                }
            } else if let Some(uid) = rule.uid
                && !keys.uids.contains(&uid)
            {
                keys.uids.push(uid);
            }
        }
        keys
    }
}

fn container_matches(want: Option<&str>, have: Option<&str>) -> bool {
    match want {
        None => true,
        Some(want) => have.is_some_and(|have| have.starts_with(want)),
    }
}

fn compile_agent(at: &str, rule: AgentRule) -> Result<Compiled<AgentRule>, RulesError> {
    let error = |field: &str, message: String| RulesError {
        key: format!("{at}.{field}"),
        message,
    };
    if rule.name.is_empty() || rule.name.len() > MAX_IDENT {
        return Err(error(
            "name",
            format!("must be 1 to {MAX_IDENT} bytes, not {}", rule.name.len()),
        ));
    }
    if rule.exe.is_none() && rule.comm.is_none() && rule.uid.is_none() {
        return Err(error(
            "exe",
            "a rule needs `exe`, `comm` or `uid`: the kernel matches those at exec, so that the agent's first actions are recorded".into(),
        ));
    }
    if let Some(exe) = &rule.exe {
        check_exe(exe).map_err(|m| error("exe", m))?;
    }
    if let Some(comm) = &rule.comm
        && (comm.is_empty() || comm.len() > COMM_LEN || comm.contains('\0'))
    {
        return Err(error(
            "comm",
            format!("{comm:?} is not a task name: 1 to {COMM_LEN} bytes, as `ps -o comm` shows"),
        ));
    }
    if let Some(id) = &rule.container_id {
        check_container_id(id).map_err(|m| error("container_id", m))?;
    }
    let argv = rule
        .argv
        .as_deref()
        .map(|g| glob(g).map_err(|m| error("argv", m)))
        .transpose()?;
    let cgroup = rule
        .cgroup
        .as_deref()
        .map(|g| glob(g).map_err(|m| error("cgroup", m)))
        .transpose()?;
    Ok(Compiled { rule, argv, cgroup })
}

fn compile_identity(at: &str, rule: IdentityRule) -> Result<Compiled<IdentityRule>, RulesError> {
    let error = |field: &str, message: String| RulesError {
        key: format!("{at}.{field}"),
        message,
    };
    let trust_domain = rule
        .spiffe_id
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split('/').next())
        .filter(|domain| !domain.is_empty());
    if trust_domain.is_none() || rule.spiffe_id.len() > 2048 {
        return Err(error(
            "spiffe_id",
            format!(
                "{:?} is not a SPIFFE ID such as spiffe://example.org/agent",
                rule.spiffe_id
            ),
        ));
    }
    if rule.agent.is_none()
        && rule.exe.is_none()
        && rule.uid.is_none()
        && rule.cgroup.is_none()
        && rule.container_id.is_none()
    {
        return Err(error(
            "agent",
            "a mapping needs a selector: agent, exe, uid, cgroup or container_id".into(),
        ));
    }
    if let Some(exe) = &rule.exe {
        check_exe(exe).map_err(|m| error("exe", m))?;
    }
    if let Some(id) = &rule.container_id {
        check_container_id(id).map_err(|m| error("container_id", m))?;
    }
    let cgroup = rule
        .cgroup
        .as_deref()
        .map(|g| glob(g).map_err(|m| error("cgroup", m)))
        .transpose()?;
    Ok(Compiled {
        rule,
        argv: None,
        cgroup,
    })
}

fn check_exe(exe: &str) -> Result<(), String> {
    if !exe.starts_with('/') || exe.len() >= RULE_EXE_LEN || exe.contains('\0') {
        return Err(format!(
            "{exe:?} must be an absolute path shorter than {RULE_EXE_LEN} bytes"
        ));
    }
    Ok(())
}

fn check_container_id(id: &str) -> Result<(), String> {
    let hex = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !(12..=64).contains(&id.len()) || !hex {
        return Err(format!(
            "{id:?} is not a container id: 12 to 64 lowercase hex digits"
        ));
    }
    Ok(())
}

/// A glob whose `*` also crosses `/`: argv and cgroup paths are matched
/// as plain text.
fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("{pattern:?} is not a glob: {e}"))
}
