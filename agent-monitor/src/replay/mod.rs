//! Replay: stored evidence judged again under another policy, to see what
//! it would have alerted on (`agent-monitor replay DIR --policy FILE`).
//!
//! Every recorded tool call is decided again
//! ([`crate::policy::Policy::decide_start_in`], with the working
//! directory of its session's root process), and every stored event is
//! judged as the live correlator judges it, except that its binding to a
//! call is already known: the recorded call first, then the session's
//! calls open at the event's time, innermost first. A call that named the
//! resource wins over a broader one; denied calls cover nothing; then the
//! session's baseline; then undeclared. Sensitive resources alert even
//! when covered.
//!
//! What a replay cannot redo, it says so rather than guess:
//!
//! - `unverifiable` events stay as they were: losses do not change with
//!   the policy.
//! - A call whose arguments the capture policy hashed or dropped (not
//!   JSON any more) keeps its recorded decision and covers nothing: its
//!   events are judged against an empty envelope, and the report lists it.
//! - Tables other than `events` may be missing (a store that was never
//!   closed, or copied in part): they are read as empty, and the report
//!   names them. A directory with neither `chain.log` nor `events/` is not
//!   a store; one without `events/` is an error naming the table.
//! - Rows still in `journal/` are not replayed (the report says how many
//!   segments wait for `agent-monitor recover`).
//! - The replayed policy is taken as given: the daemon adds
//!   `sensitive.monitor` for its evidence and key directories with
//!   [`crate::policy::Policy::protect`]; call it before replaying to get
//!   the same alerts.

mod calls;
mod engine;
mod error;
mod events;
mod judge;
mod render;
mod report;
mod store;
mod tables;

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod render_tests;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod store_tests;

use std::path::Path;

pub use error::ReplayError;
pub use render::{MAX_LINES, render};
pub use report::{Alert, Change, Flip, MAX_KEPT, ReplayReport, Transition, UnreadableCall};

pub(crate) use engine::{Engine, Judge};
pub(crate) use events::EventRow;
pub(crate) use judge::{Cover, Judged};
pub(crate) use store::Store;

use crate::policy::Policy;

/// Judges the evidence in `dir` again under `policy`.
pub fn replay(dir: &Path, policy: &Policy) -> Result<ReplayReport, ReplayError> {
    let store = Store::open(dir)?;
    let recorded_policies = tables::policy_hashes(&store)?;
    let recorded_alerts = tables::recorded_alerts(&store)?;
    let mut builder = report::Builder::new(&store, policy, recorded_policies, recorded_alerts);
    let mut engine = Engine::load(store, policy)?;
    engine.run(|_, row, judged| builder.add(row, judged))?;
    Ok(builder.finish(&engine.judge.calls))
}
