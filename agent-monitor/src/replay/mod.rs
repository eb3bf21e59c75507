//! Replay: stored evidence judged again under another policy, to see what
//! it would have alerted on (`agent-monitor replay DIR --policy FILE`).
//!
//! The replay drives the live [`crate::correlate::Correlator`] with the
//! replayed policy, so its verdicts, rules and alerts are the live ones:
//! the stored sessions are opened (with the working directory of their
//! root process), every recorded tool call is declared again in time
//! order from a stand-in connection of the process that declared it
//! (`tool_calls.declared_by`), and every stored event is rebuilt and
//! judged, bound to the call it was recorded under. The flipped decisions
//! are the correlator's answers to those declarations. Wall-clock times
//! from the tables are the correlator's only clock.
//!
//! What a replay cannot redo, it says so rather than guess:
//!
//! - `unverifiable` events stay as they were: losses do not change with
//!   the policy. Kernel losses (`gaps`, `ring_buffer_full`) are reported
//!   to the correlator, so an uncovered action in one is `unverifiable`.
//! - A call whose arguments the capture policy hashed or dropped (not
//!   JSON any more) keeps its recorded decision and covers nothing
//!   ([`crate::correlate::Correlator::keep_recorded_decision`]), and the
//!   report lists it.
//! - The monitor's pid is not known: signals and ptrace aimed at it stay
//!   undeclared rather than tampering.
//! - The kernel's tool-call slot of an event is not stored: the call the
//!   event was recorded under stands in for it (the covering call, for a
//!   `declared` event).
//! - Tables other than `events` may be missing (a store that was never
//!   closed, or copied in part): they are read as empty, and the report
//!   names them. Sessions the events name and the table lacks are opened
//!   without a root or a working directory. A directory with neither
//!   `chain.log` nor `events/` is not a store; one without `events/` is an
//!   error naming the table.
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

pub(crate) use engine::{Engine, Judged, Known};
pub(crate) use events::EventRow;
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
    Ok(builder.finish(&engine.known.calls))
}
