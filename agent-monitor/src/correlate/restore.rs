//! What a replay of stored evidence ([`crate::replay`]) needs beyond the
//! live inputs: sessions and decisions as the evidence recorded them, where
//! the live path would ask the system (`/proc`) or the policy.

use super::{Correlator, sessions::SessionSpec};
use crate::policy::Envelope;

impl Correlator {
    /// Opens a session an agent declared (`session.start`), from its
    /// stored row: like the live declaration, it claims the tree of its
    /// root process (`row.pid`, none for one declared from outside the
    /// tree) and leaves the agent's default session alone; its working
    /// directory comes from `spec`, not from `/proc`.
    pub fn restore_session(&mut self, spec: SessionSpec) {
        let session = self.sessions.create(&self.policy, spec);
        if let Some(pid) = session.row.pid {
            self.sessions.by_pid.insert(pid, (0, session.id.clone()));
        }
        self.sessions
            .by_id
            .insert(session.row.session_id.clone(), session);
    }

    /// The slot of the call `call_id` open in session `session_id`.
    pub fn open_call_slot(&self, session_id: &str, call_id: &str) -> Option<u64> {
        self.sessions
            .by_id
            .get(session_id)?
            .open_calls
            .get(call_id)
            .copied()
    }

    /// The call in `slot` keeps the decision the evidence recorded for it
    /// (`allow`, and the rule that decided) and covers nothing: the
    /// arguments it was decided on are no longer known (hashed, redacted
    /// or dropped by the capture policy).
    pub fn keep_recorded_decision(&mut self, slot: u64, allow: bool, rule: Option<String>) {
        let Some(call) = self.calls.get_mut(slot) else {
            return;
        };
        call.allowed = allow;
        call.deny_rule = if allow { None } else { rule };
        call.envelope = Envelope::default();
        call.covers = Default::default();
    }
}
