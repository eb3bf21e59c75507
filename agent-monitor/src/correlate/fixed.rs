//! What the policy says of an effect whatever calls are open: whether the
//! baseline covers it and whether it is sensitive. Both are glob searches
//! over dozens of patterns, and agents repeat the same effects (a build
//! opens the same headers thousands of times), so the answers are cached
//! per session, whose baseline they depend on.

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use super::effects::EffectRef;
use crate::policy::{Effect, Envelope, Policy, Severity};

/// Entries kept per cache; past it the cache starts over, which costs
/// only recomputation.
const CAPACITY: usize = 16_384;

/// An effect's hash, taken once per effect with the correlator's keyed
/// hasher and used by every cache it meets: a path hashed three times was
/// a fifth of the stage's time. Keyed, so an agent cannot choose paths
/// that collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct EffectHash(pub u64);

/// Hashes an effect; one per correlator. aHash with random keys rather
/// than std's SipHash: as hard for an agent to aim at, and about three
/// times faster on paths.
#[derive(Debug, Default)]
pub(super) struct EffectHasher(ahash::RandomState);

impl EffectHasher {
    pub fn hash(&self, effect: &EffectRef) -> EffectHash {
        EffectHash(self.0.hash_one(effect))
    }

    /// The same keyed hash of anything else (a cache key of several parts).
    pub fn hash_key(&self, key: &impl std::hash::Hash) -> u64 {
        self.0.hash_one(key)
    }
}

/// Maps keyed by an [`EffectHash`], which is already a keyed hash: it is
/// used as it is.
pub(super) type ByHash<V> = HashMap<u64, V, BuildHasherDefault<Passthrough>>;

#[derive(Default)]
pub(super) struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Fixed {
    /// The baseline rule that covers the effect.
    pub baseline: Option<Arc<str>>,
    /// The most severe sensitive rule it touches.
    pub sensitive: Option<(Arc<str>, Severity)>,
}

#[derive(Debug, Default)]
pub(super) struct FixedCache {
    /// By the effect's hash; the effect itself settles collisions.
    map: ByHash<(Effect, Fixed)>,
}

impl FixedCache {
    pub fn get(
        &mut self,
        EffectHash(hash): EffectHash,
        effect: &EffectRef,
        policy: &Policy,
        baseline: &Envelope,
    ) -> Fixed {
        if let Some((cached, fixed)) = self.map.get(&hash)
            && effect.is(cached)
        {
            return fixed.clone();
        }
        // A miss: the policy judges, and the cache keeps, an owned effect.
        let effect = effect.to_effect();
        let fixed = Fixed {
            baseline: baseline.covers(&effect).map(|r| Arc::from(r.name.as_str())),
            sensitive: policy
                .sensitive(&effect)
                .map(|(r, s)| (Arc::from(r.name.as_str()), s)),
        };
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        self.map.insert(hash, (effect, fixed.clone()));
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
    map: ByHash<(Effect, CallCover)>,
}

impl CallCache {
    pub fn get(
        &mut self,
        EffectHash(hash): EffectHash,
        effect: &EffectRef,
        envelope: &Envelope,
    ) -> CallCover {
        if let Some((cached, cover)) = self.map.get(&hash)
            && effect.is(cached)
        {
            return cover.clone();
        }
        let effect = effect.to_effect();
        let cover = envelope
            .best_cover(&effect)
            .map(|rule| (Arc::from(rule.name.as_str()), rule.named));
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        self.map.insert(hash, (effect, cover.clone()));
        cover
    }
}
