//! What the daemon changes under a running correlator: agents found while
//! it runs, connections that become an agent's, sessions that end with
//! their process tree, and the policy itself on reload.

use std::sync::Arc;

use super::{Correlator, Now, Peer, SlotUpdate, fixed};
use crate::policy::Policy;

impl Correlator {
    /// A new agent (a discovered or registered process tree); its slot.
    pub fn add_agent(&mut self, name: &str) -> u32 {
        self.agents.add(name)
    }

    /// Takes back the agent just added, when its process could not be
    /// tracked (see `Agents::retract`).
    pub fn retract_agent(&mut self, slot: u32) -> bool {
        self.agents.retract(slot)
    }

    /// The peer of a connection.
    pub fn peer(&self, conn: u64) -> Option<&Peer> {
        self.connections.get(&conn).map(|c| &c.peer)
    }

    /// The connection's peer now belongs to `agent_slot` (it registered):
    /// it declares for that agent, in that agent's session.
    pub fn rebind(&mut self, conn: u64, agent_slot: u32) {
        let session = self.agents.session(agent_slot).map(String::from);
        if let Some(c) = self.connections.get_mut(&conn) {
            c.peer.agent_slot = Some(agent_slot);
            c.session = session;
        }
    }

    /// Ends the sessions the monitor opened for `agent_slot` (not those
    /// the agent declared, which end with `session.end` or their
    /// connection): its process tree is gone. Calls still open in them end
    /// as `unfinished`. Their rows come out of
    /// [`Correlator::ended_sessions`].
    pub fn end_agent_sessions(&mut self, agent_slot: u32, now: Now) -> Vec<SlotUpdate> {
        let ids: Vec<String> = self
            .sessions
            .by_id
            .values()
            .filter(|s| {
                s.agent_slot == agent_slot && s.row.source != "api" && s.row.ended.is_none()
            })
            .map(|s| s.row.session_id.clone())
            .collect();
        let mut updates = Vec::new();
        for id in ids {
            updates.extend(self.end_open_calls(&id, "unfinished", now));
            if let Some(session) = self.sessions.by_id.get_mut(&id) {
                session.row.ended = Some(now.wall_ns);
            }
        }
        self.agents.set_session(agent_slot, None);
        updates
    }

    /// An alert about the monitor itself (a refused reload, say).
    pub fn monitor_alert(
        &self,
        now: Now,
        kind: &str,
        severity: &str,
        message: String,
    ) -> crate::evidence::declared::AlertRow {
        self.alert(now, kind, severity, message)
    }

    /// Judges by `policy` from now on. Sessions get the new baseline and
    /// every cached answer is dropped; calls already decided keep their
    /// decision and envelope, which were the policy's answer when they
    /// were declared.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
        self.fixed = fixed::FixedCache::default();
        self.sessions.rebase(&self.policy);
    }
}
