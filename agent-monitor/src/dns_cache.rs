//! Names learned from DNS answers, so that a later connection to an
//! address carries the name the agent looked up: `connect example.com:443`
//! says more than `connect 93.184.216.34:443`.

use std::collections::{HashMap, VecDeque};

/// Most addresses remembered; the oldest are forgotten first.
pub const CAPACITY: usize = 16384;

/// Address → name, per agent: one agent's lookups never name another's
/// connections.
#[derive(Debug, Default)]
pub struct DnsCache {
    names: HashMap<(u32, String), String>,
    order: VecDeque<(u32, String)>,
    /// Entries forgotten to stay within [`CAPACITY`].
    pub evicted: u64,
}

impl DnsCache {
    /// Records that `agent` learned `addresses` for `name`.
    pub fn learn(&mut self, agent: u32, name: &str, addresses: &[String]) {
        for addr in addresses {
            let key = (agent, addr.clone());
            if self.names.insert(key.clone(), name.to_string()).is_none() {
                self.order.push_back(key);
            }
        }
        while self.order.len() > CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.names.remove(&old);
                self.evicted += 1;
            }
        }
    }

    /// The name `agent` last learned for `addr`.
    pub fn name(&self, agent: u32, addr: &str) -> Option<&str> {
        self.names
            .get(&(agent, addr.to_string()))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_agent_and_the_latest_wins() {
        let mut cache = DnsCache::default();
        cache.learn(1, "example.com", &["93.184.216.34".into()]);
        assert_eq!(cache.name(1, "93.184.216.34"), Some("example.com"));
        assert_eq!(cache.name(2, "93.184.216.34"), None);
        cache.learn(1, "other.example", &["93.184.216.34".into()]);
        assert_eq!(cache.name(1, "93.184.216.34"), Some("other.example"));
    }

    #[test]
    fn the_oldest_are_forgotten_past_capacity() {
        let mut cache = DnsCache::default();
        for i in 0..CAPACITY + 3 {
            cache.learn(1, "n", &[format!("10.0.{}.{}", i / 256, i % 256)]);
        }
        assert_eq!(cache.evicted, 3);
        assert_eq!(cache.name(1, "10.0.0.0"), None);
        assert_eq!(cache.name(1, "10.0.0.3"), Some("n"));
    }
}
