//! The calls one POST carried, from the moment the proxy relays it until
//! each is answered or given up on, so that none stays open for good.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::mcp::gate::{Gate, Relayed};

/// Why calls end when their request is dropped while the upstream has
/// not answered it yet: hyper drops a request's future when its client
/// goes away.
const CLIENT_GONE: &str = "the client went away before the upstream answered";

/// Calls relayed in one request and not known to be answered. Dropped,
/// it ends those still open.
pub(super) struct Pending {
    gate: Arc<Gate>,
    scope: String,
    calls: Vec<Relayed>,
}

impl Pending {
    pub(super) fn new(gate: Arc<Gate>, scope: String, calls: Vec<Relayed>) -> Pending {
        Pending { gate, scope, calls }
    }

    /// Ends the calls still open, as `error` with `result`.
    pub(super) fn end(&mut self, result: &Value) {
        let calls = std::mem::take(&mut self.calls);
        if !calls.is_empty() {
            self.gate.abandon(&self.scope, &calls, result);
        }
    }

    /// Leaves the calls to the rest of their scope: an answer may still
    /// come on another stream of the session.
    pub(super) fn keep_open(&mut self) {
        self.calls.clear();
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.end(&json!({"unanswered": CLIENT_GONE}));
    }
}
