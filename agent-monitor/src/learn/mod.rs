//! Learn: a baseline proposed from a clean run (the engine of
//! `agent-monitor learn -- CMD`).
//!
//! The store is replayed under the policy ([`crate::replay`]), and the
//! effects judged `undeclared` outside any tool call (events bound to no
//! call) are what the runtime does that the baseline misses: those are
//! proposed, generalised conservatively (exact paths, `DIR/*` from
//! [`COLLAPSE_AT`] siblings, `{cwd}`, `name:port`). Undeclared effects inside tool calls are the tool's
//! business: they are listed as notes, not proposed. Sensitive resources
//! and actions no effect kind names are never proposed: they are listed as
//! left out.

mod collect;
mod generalise;
mod proposal;

#[cfg(test)]
mod learn_tests;

use std::path::Path;

pub use generalise::COLLAPSE_AT;
pub use proposal::{LeftOut, Proposal, Proposed, ToolNote};

use crate::{
    policy::{Context, Policy},
    replay::{Engine, ReplayError, Store},
};

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(
        "`{name}` cannot name a baseline group: use letters, digits, `_` and `-` (as in `baseline.{name}`)"
    )]
    BadName { name: String },
    #[error(
        "the policy already has a group `baseline.{name}`: choose another name, or the merged file will not load"
    )]
    NameTaken { name: String },
}

/// Proposes the `[baseline.NAME]` group that would cover what the runtime
/// did outside tool calls in the store at `dir`, judged under `policy`.
pub fn propose(dir: &Path, policy: &Policy, name: &str) -> Result<Proposal, LearnError> {
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if name.is_empty() || !name.chars().all(bare) {
        return Err(LearnError::BadName { name: name.into() });
    }
    let group = format!("baseline.{name}");
    // With a working directory, so groups made only of `{cwd}` patterns
    // show too.
    let all = policy.baseline_in(&Context { cwd: Some("/") });
    if all.rules().any(|r| r.name == group) {
        return Err(LearnError::NameTaken { name: name.into() });
    }

    let store = Store::open(dir)?;
    let mut engine = Engine::load(store, policy)?;
    let mut seen = collect::Seen::default();
    engine.run(|known, row, judged| seen.add(known, row, judged))?;

    let (patterns, mut left_out) = generalise::generalise(&seen);
    for (effect, s) in &seen.sensitive {
        left_out.push(LeftOut {
            effect: effect.clone(),
            seen: s.seen,
            why: format!("sensitive ({}, {})", s.rule, s.severity),
        });
    }
    for (kind, n) in &seen.uncoverable {
        left_out.push(LeftOut {
            effect: kind.clone(),
            seen: *n,
            why: "no effect kind names it: no baseline can cover it".into(),
        });
    }
    let tool_notes = seen
        .in_calls
        .iter()
        .flat_map(|(tool, effects)| {
            effects.iter().map(|(effect, n)| ToolNote {
                tool: tool.clone(),
                effect: effect.clone(),
                seen: *n,
            })
        })
        .collect();
    Ok(Proposal {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        policy_name: policy.name().to_string(),
        policy_sha256: policy.sha256().to_string(),
        events: seen.events,
        sessions: seen.sessions.len(),
        patterns,
        left_out,
        tool_notes,
        unjudged: seen.unjudged,
    })
}
