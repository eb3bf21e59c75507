//! Agents by slot: the kernel map names an agent by a small number.

use std::sync::Arc;

/// Agent names by slot.
#[derive(Clone, Debug, Default)]
pub struct Agents {
    names: Vec<String>,
    /// The session each agent's events belong to, when there is one;
    /// shared, as every judgement of the agent's events names it.
    sessions: Vec<Option<Arc<str>>>,
}

impl Agents {
    /// Adds an agent and returns its slot. Slots start at 1: 0 is "none" in
    /// the kernel map.
    pub fn add(&mut self, name: impl Into<String>) -> u32 {
        self.names.push(name.into());
        self.sessions.push(None);
        self.names.len() as u32
    }

    /// Takes back the agent added last, `slot`, which nothing came of (its
    /// process could not be tracked), so that refusals do not add up.
    /// False, and nothing changes, when `slot` is not the last added.
    pub fn retract(&mut self, slot: u32) -> bool {
        if slot == 0 || slot as usize != self.names.len() {
            return false;
        }
        self.names.pop();
        self.sessions.pop();
        true
    }

    /// How many agents were added and not retracted.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Attributes the agent's events to a session from now on.
    pub fn set_session(&mut self, slot: u32, session_id: Option<Arc<str>>) {
        if let Some(session) = slot
            .checked_sub(1)
            .and_then(|i| self.sessions.get_mut(i as usize))
        {
            *session = session_id;
        }
    }

    pub fn session(&self, slot: u32) -> Option<&str> {
        self.session_shared(slot).map(|s| &**s)
    }

    /// The same, to keep.
    pub fn session_shared(&self, slot: u32) -> Option<&Arc<str>> {
        slot.checked_sub(1)
            .and_then(|i| self.sessions.get(i as usize))
            .and_then(Option::as_ref)
    }

    /// The slot of the agent named `name`.
    pub fn slot_of(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as u32 + 1)
    }

    pub fn name(&self, slot: u32) -> &str {
        slot.checked_sub(1)
            .and_then(|i| self.names.get(i as usize))
            .map_or("unknown", String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_agent_added_last_can_be_retracted() {
        let mut agents = Agents::default();
        let first = agents.add("first");
        let second = agents.add("second");
        assert!(!agents.retract(first), "not the last");
        assert!(!agents.retract(0));
        assert!(!agents.retract(second + 1));
        assert_eq!(agents.len(), 2);
        assert!(agents.retract(second));
        assert_eq!(agents.name(second), "unknown");
        assert_eq!(agents.name(first), "first");
        assert_eq!(agents.add("third"), second, "the slot is given again");
    }
}
