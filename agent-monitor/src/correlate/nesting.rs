//! Calls declared for a process that runs inside another process's call
//! (a script a `bash` call started): confined to that call's envelope, or
//! the code a call runs could declare itself whatever it likes.

use super::Correlator;
use crate::policy::Envelope;

/// Declaring processes whose enclosing call is remembered; past it the
/// memory starts over (a process then falls back to no call).
const INHERITED_LIMIT: usize = 65_536;

impl Correlator {
    /// The call `pid` runs under, declared for another process, given its
    /// kernel slot `slot`: the slot's call when it binds another process;
    /// else, once `pid` has calls of its own, the call it was under when
    /// it first declared one.
    pub(super) fn enclosing(&self, pid: u32, slot: u64) -> Option<u64> {
        match self.calls.get(slot) {
            Some(call) if !call.binds(pid) && !call.external => Some(slot),
            Some(_) => self.inherited.get(&pid).copied(),
            None => None,
        }
    }

    /// Remembers the call `pid` runs under: its slot falls back to it when
    /// its own calls end, and it still confines the calls it declares.
    pub(super) fn remember_enclosing(&mut self, pid: u32, enclosing: u64) {
        if self.inherited.len() >= INHERITED_LIMIT {
            self.inherited.clear();
        }
        self.inherited.insert(pid, enclosing);
    }

    /// Why a call with `envelope` may not run inside the call `enclosing`:
    /// it reaches beyond that call's envelope, or that call was denied.
    pub(super) fn reaches_out(&self, enclosing: u64, envelope: &Envelope) -> Option<String> {
        let parent = self.calls.get(enclosing)?;
        let why = if parent.allowed {
            let rule = envelope.first_outside(&parent.envelope)?;
            format!(
                "whose envelope does not cover {} {}",
                rule.kind, rule.pattern
            )
        } else {
            "which was denied".to_string()
        };
        Some(format!(
            "declared from inside call `{}` ({}), {why}",
            parent.row.call_id, parent.row.tool
        ))
    }
}
