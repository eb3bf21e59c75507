//! The bounded table of recently sent alert keys.
//!
//! A key is a 128-bit keyed hash (two SipHash instances with random keys)
//! of (kind, agent, session, rule, message): the message names the
//! resource, so the same alert about another file is another key. Hashing
//! keeps every entry 16 bytes however long the message, so the table's
//! memory is bounded by its key count alone. The keys are random per
//! process, so an agent cannot craft two alerts that collide; by chance,
//! two of 65,536 keys collide with a probability near 2^-97.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, Hasher, RandomState},
    sync::LazyLock,
    time::{Duration, Instant},
};

use crate::evidence::declared::AlertRow;

pub type Key = (u64, u64);

static HASHERS: LazyLock<(RandomState, RandomState)> =
    LazyLock::new(|| (RandomState::new(), RandomState::new()));

/// The de-duplication key of an alert.
pub fn key(row: &AlertRow) -> Key {
    let (mut a, mut b) = (HASHERS.0.build_hasher(), HASHERS.1.build_hasher());
    // Each field is length-prefixed and tagged present/absent, so no two
    // different tuples hash the same input ("a" + "bc" vs "ab" + "c").
    let mut field = |value: Option<&str>| {
        for hasher in [&mut a, &mut b] {
            match value {
                None => hasher.write_u8(0),
                Some(text) => {
                    hasher.write_u8(1);
                    hasher.write_u64(text.len() as u64);
                    hasher.write(text.as_bytes());
                }
            }
        }
    };
    field(Some(&row.kind));
    field(row.agent.as_deref());
    field(row.session_id.as_deref());
    field(row.rule.as_deref());
    field(Some(&row.message));
    (a.finish(), b.finish())
}

struct Entry {
    sent: Instant,
    /// Repeats held back since it was sent.
    duplicates: u64,
}

/// Keys sent within the window, oldest first.
///
/// Every key is sent, and so entered, with the same window, so insertion
/// order is expiry order: pruning and eviction both take from the front of
/// one queue, each in O(1).
pub struct DedupTable {
    window: Duration,
    capacity: usize,
    entries: HashMap<Key, Entry>,
    order: VecDeque<(Instant, Key)>,
    evicted: u64,
}

impl DedupTable {
    pub fn new(window: Duration, capacity: usize) -> DedupTable {
        DedupTable {
            window,
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// Counts a repeat of `key` if it was sent within the window, and
    /// returns how many repeats it has had; `None` if it is new.
    pub fn check(&mut self, key: &Key, now: Instant) -> Option<u64> {
        self.prune(now);
        let entry = self.entries.get_mut(key)?;
        entry.duplicates += 1;
        Some(entry.duplicates)
    }

    /// Remembers `key` as sent at `now`. Only sent alerts are remembered: a
    /// rate-limited one must not make its next repeat a "duplicate" of an
    /// alert nobody received.
    pub fn insert(&mut self, key: Key, now: Instant) {
        self.prune(now);
        if self.entries.contains_key(&key) {
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.entries.remove(&oldest).is_some() {
                self.evicted += 1;
            }
        }
        self.entries.insert(
            key,
            Entry {
                sent: now,
                duplicates: 0,
            },
        );
        self.order.push_back((now, key));
    }

    /// Forgets the keys whose window has passed.
    pub fn prune(&mut self, now: Instant) {
        while let Some(&(sent, key)) = self.order.front() {
            if now.saturating_duration_since(sent) < self.window {
                break;
            }
            self.order.pop_front();
            // The entry is this queue slot's only if it was sent then; a
            // defensive check, since a key is re-entered only after expiry.
            if self.entries.get(&key).is_some_and(|e| e.sent == sent) {
                self.entries.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys forgotten early because the table was full.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
