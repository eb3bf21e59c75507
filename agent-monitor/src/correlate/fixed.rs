//! What the policy says of an effect whatever calls are open: whether the
//! baseline covers it and whether it is sensitive. Both are glob searches
//! over dozens of patterns, and agents repeat the same effects (a build
//! opens the same headers thousands of times), so the answers are cached
//! per session, whose baseline they depend on.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::Arc,
};

use crate::policy::{Effect, Envelope, Policy, Severity};

/// Entries kept per cache; past it the cache starts over, which costs
/// only recomputation.
const CAPACITY: usize = 16_384;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fixed {
    /// The baseline rule that covers the effect.
    pub baseline: Option<Arc<str>>,
    /// The most severe sensitive rule it touches.
    pub sensitive: Option<(Arc<str>, Severity)>,
}

#[derive(Debug, Default)]
pub(super) struct FixedCache {
    hasher: RandomState,
    /// By the effect's hash; the effect itself settles collisions.
    map: HashMap<u64, (Effect, Fixed)>,
}

impl FixedCache {
    pub fn get(&mut self, effect: &Effect, policy: &Policy, baseline: &Envelope) -> Fixed {
        let hash = self.hasher.hash_one(effect);
        if let Some((cached, fixed)) = self.map.get(&hash)
            && cached == effect
        {
            return fixed.clone();
        }
        let fixed = Fixed {
            baseline: baseline.covers(effect).map(|r| Arc::from(r.name.as_str())),
            sensitive: policy
                .sensitive(effect)
                .map(|(r, s)| (Arc::from(r.name.as_str()), s)),
        };
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        self.map.insert(hash, (effect.clone(), fixed.clone()));
        fixed
    }
}

/// How one call's envelope covers an effect: the rule that does, and
/// whether that rule named the resource.
pub(super) type CallCover = Option<(Arc<str>, bool)>;

/// A call's answers, cached like the baseline's: a call's effects repeat
/// as much as the agent's do.
#[derive(Debug, Default)]
pub(super) struct CallCache {
    hasher: RandomState,
    map: HashMap<u64, (Effect, CallCover)>,
}

impl CallCache {
    pub fn get(&mut self, effect: &Effect, envelope: &Envelope) -> CallCover {
        let hash = self.hasher.hash_one(effect);
        if let Some((cached, cover)) = self.map.get(&hash)
            && cached == effect
        {
            return cover.clone();
        }
        let mut matching = envelope.matching(effect).peekable();
        let first = matching.peek().map(|r| Arc::from(r.name.as_str()));
        let cover = match matching.find(|r| r.named) {
            Some(named) => Some((Arc::from(named.name.as_str()), true)),
            None => first.map(|rule| (rule, false)),
        };
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        self.map.insert(hash, (effect.clone(), cover.clone()));
        cover
    }
}
