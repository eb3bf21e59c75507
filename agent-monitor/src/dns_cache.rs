//! Names learned from DNS answers, so that a later connection to an
//! address carries the name the agent looked up: `connect example.com:443`
//! says more than `connect 93.184.216.34:443`.
//!
//! Names feed the policy (a host pattern matches the looked-up name), so
//! only answers from a resolver the host trusts are learned: port 53 of
//! a `nameserver` in /etc/resolv.conf, or of a loopback address (a local
//! stub resolver). An agent that asks its own server on the internet
//! cannot make `203.0.113.9` pass for `api.openai.com`.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

/// Most addresses remembered; the oldest are forgotten first.
pub const CAPACITY: usize = 16384;

/// Address → name, per agent: one agent's lookups never name another's
/// connections.
#[derive(Debug, Default)]
pub struct DnsCache {
    names: HashMap<(u32, String), String>,
    order: VecDeque<(u32, String)>,
    /// The `nameserver`s of /etc/resolv.conf (loopback is always trusted).
    resolvers: Vec<IpAddr>,
    /// Entries forgotten to stay within [`CAPACITY`].
    pub evicted: u64,
    /// Answers not learned: they came from no trusted resolver.
    pub untrusted: u64,
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

impl DnsCache {
    /// A cache that trusts the host's resolvers, from /etc/resolv.conf.
    pub fn system() -> DnsCache {
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        DnsCache::trusting(nameservers(&text))
    }

    pub fn trusting(resolvers: Vec<IpAddr>) -> DnsCache {
        DnsCache {
            resolvers,
            ..DnsCache::default()
        }
    }

    /// Whether an answer from `addr`:`port` comes from a trusted resolver.
    pub fn trusts(&self, addr: &str, port: u16) -> bool {
        // An IPv4 resolver heard on an IPv6 socket is `::ffff:a.b.c.d`.
        let Ok(ip) = addr.parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            return false;
        };
        port == 53 && (ip.is_loopback() || self.resolvers.contains(&ip))
    }

    /// Records the `addresses` an answer from `from` (address, port) gave
    /// `agent` for `name`, when a trusted resolver sent it.
    pub fn learn_from(&mut self, agent: u32, name: &str, addresses: &[String], from: (&str, u16)) {
        if self.trusts(from.0, from.1) {
            self.learn(agent, name, addresses);
        } else {
            self.untrusted += 1;
        }
    }

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
    fn only_trusted_resolvers_teach_names() {
        let resolvers =
            nameservers("# comment\nnameserver 10.0.0.2\nsearch example\nnameserver ::1\n");
        assert_eq!(
            resolvers,
            [
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        let mut cache = DnsCache::trusting(resolvers);
        let answer = ["203.0.113.9".to_string()];
        cache.learn_from(1, "api.openai.com", &answer, ("203.0.113.9", 53));
        assert_eq!(cache.name(1, "203.0.113.9"), None, "the agent's own server");
        cache.learn_from(1, "api.openai.com", &answer, ("10.0.0.2", 5353));
        assert_eq!(cache.name(1, "203.0.113.9"), None, "not port 53");
        cache.learn_from(1, "api.openai.com", &answer, ("10.0.0.2", 53));
        assert_eq!(cache.name(1, "203.0.113.9"), Some("api.openai.com"));
        cache.learn_from(1, "local.test", &["127.0.0.77".into()], ("127.0.0.53", 53));
        assert_eq!(
            cache.name(1, "127.0.0.77"),
            Some("local.test"),
            "a stub resolver"
        );
        assert_eq!(cache.untrusted, 2);
    }

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
