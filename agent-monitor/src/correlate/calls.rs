//! The tool calls the correlator knows: open ones, ended ones whose late
//! events may still arrive, and those whose processes outlive them.
//!
//! A call is found two ways. The kernel tags every event with the
//! tool-call slot of its process, which the declaring process gets at
//! `tool.start` and its children inherit at fork: that is exact. The
//! declaring process's own threads can have several calls open at once
//! (an async agent), and the slot names only the latest; for them every
//! call they declared that was open at the event's time is a candidate,
//! and the envelopes decide.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    hash::{BuildHasherDefault, Hasher},
    sync::Arc,
};

use super::{
    effects::EffectRef,
    fixed::{EffectHash, Passthrough},
};
use crate::{declare::Source, evidence::declared::ToolCallRow, policy::Envelope};

/// Most distinct effects a call's summary lists per category; the rest
/// are counted, and the summary says it was cut.
pub const SUMMARY_LIMIT: usize = 256;

/// Calls kept after they were summarised, so that processes they started
/// are still attributed to them. The oldest are forgotten beyond this,
/// and counted.
pub const RETAINED_CALLS: usize = 65_536;

#[derive(Debug)]
pub struct Call {
    pub slot: u64,
    /// The process the call binds (thread-group id): the declaring process,
    /// or the one its `pid` named. Linked declarations may bind more: see
    /// [`Call::parts`].
    pub declarer: u32,
    /// The agent it was declared for.
    pub agent_slot: u32,
    /// Bound to no process: declared from outside the agent's tree (root
    /// naming the agent) or after the fact (`at`, an OpenTelemetry span).
    /// No kernel slot names it, so it is a candidate for every event of
    /// the agent while it is open.
    pub external: bool,
    /// Declared after the fact: its times are the ones declared, and it
    /// may cover events judged before it arrived (see `pipeline::held`).
    pub retro: bool,
    pub started_ns: u64,
    pub ended_ns: Option<u64>,
    /// When its summary may be written: [`super::SUMMARY_DELAY_NS`] after
    /// this (its end, or for a call declared after the fact, the moment
    /// its end was declared).
    pub settled_ns: Option<u64>,
    /// Each declaration of the call: the first, and those of other
    /// adapters linked to it (docs/protocol.md, "Linked declarations").
    /// The call ends when all have ended.
    pub parts: Vec<Part>,
    /// A hash of its arguments as JSON, by which an adapter's declaration
    /// of the same call is recognised.
    pub args_hash: u64,
    pub allowed: bool,
    /// The deny rule, for a denied call.
    pub deny_rule: Option<String>,
    pub envelope: Envelope,
    /// Calls the declarer had open when this one started: a child forked
    /// while both ran may be working for either.
    pub concurrent: Vec<u64>,
    /// The row's session and call ids, shared: every event the call
    /// covers names both, and a clone here is a count, not a copy.
    pub session_id: Arc<str>,
    pub call_id: Arc<str>,
    /// The row, filled in at start and completed at the summary.
    pub row: ToolCallRow,
    pub summary: Summary,
    /// How the envelope covers the effects seen so far.
    pub covers: super::fixed::CallCache,
    /// The row has been written; later events no longer change it.
    pub summarised: bool,
}

/// One declaration of a call.
#[derive(Debug)]
pub struct Part {
    /// The session it was declared in, and its `call_id` there.
    pub session_id: String,
    pub call_id: String,
    /// The connection it was declared on.
    pub conn: u64,
    /// The process whose kernel slot it set; none when it bound none.
    pub pid: Option<u32>,
    pub source: Source,
    /// It outlives its connection.
    pub detached: bool,
    pub open: bool,
}

impl Call {
    pub fn open_at(&self, ts_ns: u64) -> bool {
        self.started_ns <= ts_ns && self.ended_ns.is_none_or(|end| ts_ns < end)
    }

    /// Whether `pid` is a process the call binds.
    pub fn binds(&self, pid: u32) -> bool {
        self.declarer == pid || self.parts.iter().any(|p| p.pid == Some(pid))
    }

    /// Whether the call is open, and open for `pid`: a linked declaration
    /// that bound `pid` has not ended yet.
    fn open_for(&self, pid: u32) -> bool {
        self.ended_ns.is_none()
            && (self.parts.iter().any(|p| p.open && p.pid == Some(pid))
                || (self.declarer == pid && self.parts.iter().all(|p| p.pid.is_none())))
    }
}

/// What a call was seen to do.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub events: u64,
    pub undeclared_events: u64,
    /// Distinct effects seen, as `kind resource`.
    pub seen: BTreeSet<String>,
    /// Distinct effects no envelope or baseline covered.
    pub undeclared: BTreeSet<String>,
    /// Envelope patterns (`kind pattern`) some effect matched.
    pub matched: BTreeSet<String>,
    /// Distinct effects left out of the lists above.
    pub cut: u64,
    /// Hashes of the effects already listed, so that a repeat costs a
    /// lookup rather than a string.
    known: HashSet<u64, BuildHasherDefault<Passthrough>>,
}

/// Distinct effects a summary tells apart; past it, every further event
/// of a new effect only counts in `cut`.
const KNOWN_LIMIT: usize = 65_536;

impl Summary {
    /// Counts one event bound to the call.
    pub fn count(&mut self, undeclared: bool) {
        self.events += 1;
        if undeclared {
            self.undeclared_events += 1;
        }
    }

    /// Lists an event's effect; true the first time this effect is seen.
    pub fn observe(
        &mut self,
        EffectHash(hash): EffectHash,
        effect: &EffectRef,
        undeclared: bool,
    ) -> bool {
        if self.known.contains(&hash) {
            return false;
        }
        if self.known.len() >= KNOWN_LIMIT {
            self.cut += 1;
            return false;
        }
        self.known.insert(hash);
        let text = effect.to_effect().to_string();
        if undeclared {
            insert_bounded(&mut self.undeclared, &text, &mut self.cut);
        }
        insert_bounded(&mut self.seen, &text, &mut self.cut);
        true
    }

    /// Lists an action no effect names, by its description.
    pub fn record(&mut self, what: String, undeclared: bool) {
        if undeclared {
            insert_bounded(&mut self.undeclared, &what, &mut self.cut);
        }
        insert_bounded(&mut self.seen, &what, &mut self.cut);
    }

    pub fn matched(&mut self, pattern: String) {
        if self.matched.len() < SUMMARY_LIMIT * 4 {
            self.matched.insert(pattern);
        }
    }
}

fn insert_bounded(set: &mut BTreeSet<String>, item: &str, cut: &mut u64) {
    if set.contains(item) {
        return;
    }
    if set.len() < SUMMARY_LIMIT {
        set.insert(item.to_string());
    } else {
        *cut += 1;
    }
}

/// What candidate selection needs of an event.
#[derive(Clone, Copy, Debug)]
pub struct EventRef {
    /// The kernel's tool-call slot (0: none).
    pub slot: u64,
    pub pid: u32,
    pub agent_slot: u32,
    pub ts_ns: u64,
    /// Start of the acting process.
    pub process_start_ns: u64,
    /// Its parent's pid.
    pub ppid: u32,
}

/// Maps keyed by numbers the correlator hands out itself (call slots,
/// agent slots), never chosen by an agent: they need no keyed hash, and
/// judging one event looks calls up half a dozen times, where SipHash
/// was a tenth of the stage's time.
type Ours<K, V> = HashMap<K, V, BuildHasherDefault<Spread>>;

/// A multiply by the golden ratio: consecutive numbers land far apart,
/// in the high bits hashbrown's control bytes use as well as the low.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only integer keys are hashed; fold anything else rather than panic.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Calls by slot, and each declarer's calls in start order.
#[derive(Debug, Default)]
pub struct CallBook {
    by_slot: Ours<u64, Call>,
    /// Per declaring pid: its calls not yet summarised, oldest first.
    /// Pids are the kernel's, so this map keeps the keyed hash.
    by_declarer: HashMap<u32, Vec<u64>>,
    /// Per agent: calls declared from outside its tree, not yet summarised.
    external: Ours<u32, Vec<u64>>,
    /// Summarised calls, oldest first, for eviction.
    retired: VecDeque<u64>,
    next_slot: u64,
    pub evicted: u64,
}

impl CallBook {
    /// A fresh slot: never 0 (no call), never reused.
    pub fn allocate(&mut self) -> u64 {
        self.next_slot += 1;
        self.next_slot
    }

    pub fn insert(&mut self, call: Call) {
        if call.external {
            self.external
                .entry(call.agent_slot)
                .or_default()
                .push(call.slot);
        }
        self.by_declarer
            .entry(call.declarer)
            .or_default()
            .push(call.slot);
        self.by_slot.insert(call.slot, call);
    }

    /// A linked declaration binds the call on one more process.
    pub fn bind_also(&mut self, slot: u64, pid: u32) {
        let list = self.by_declarer.entry(pid).or_default();
        if !list.contains(&slot) {
            list.push(slot);
        }
    }

    /// Calls not yet summarised, in slot order.
    pub fn live(&self) -> impl Iterator<Item = &Call> {
        let mut slots: Vec<u64> = self.by_declarer.values().flatten().copied().collect();
        slots.sort_unstable();
        slots.dedup();
        slots.into_iter().filter_map(|s| self.by_slot.get(&s))
    }

    pub fn get(&self, slot: u64) -> Option<&Call> {
        self.by_slot.get(&slot)
    }

    pub fn get_mut(&mut self, slot: u64) -> Option<&mut Call> {
        self.by_slot.get_mut(&slot)
    }

    /// The calls still open that bind `pid`, oldest first.
    pub fn open_of(&self, pid: u32) -> impl Iterator<Item = &Call> {
        self.by_declarer
            .get(&pid)
            .into_iter()
            .flatten()
            .filter_map(|slot| self.by_slot.get(slot))
            .filter(move |c| c.open_for(pid))
    }

    /// Candidate calls for an event, best first: the slot the kernel
    /// tagged it with; then, for the declarer's own threads, its calls
    /// open at `ts_ns`, latest first; then, for a process the slot's call
    /// started, the calls open alongside it when that process started;
    /// last, calls declared for the agent from outside its tree. Written
    /// to `out` (cleared first), a buffer the caller keeps: an allocation
    /// per event saved.
    /// The call of the event's kernel slot, if the slot is believed. A
    /// stale slot (a map update that failed, or a fork that raced the
    /// reset at `tool.end`) is not: the declarer's own events carry its
    /// slot only while the call is open, and its direct children only if
    /// they started before the call ended. Processes further down
    /// inherited it from a process the call started.
    pub fn believed(&self, event: &EventRef) -> Option<&Call> {
        self.by_slot.get(&event.slot).filter(|c| {
            if c.external {
                true
            } else if c.binds(event.pid) {
                c.open_at(event.ts_ns)
            } else {
                !c.binds(event.ppid) || c.ended_ns.is_none_or(|end| event.process_start_ns < end)
            }
        })
    }

    pub fn candidates(&self, event: &EventRef, out: &mut Vec<u64>) {
        let EventRef {
            pid,
            agent_slot,
            ts_ns,
            process_start_ns,
            ..
        } = *event;
        out.clear();
        let primary = self.believed(event);
        if let Some(call) = primary {
            out.push(call.slot);
        }
        let open_now = |list: Option<&Vec<u64>>, out: &mut Vec<u64>| {
            for s in list.into_iter().flatten().rev() {
                if !out.contains(s) && self.by_slot.get(s).is_some_and(|c| c.open_at(ts_ns)) {
                    out.push(*s);
                }
            }
        };
        open_now(self.by_declarer.get(&pid), out);
        if let Some(call) = primary.filter(|c| !c.binds(pid)) {
            for s in call.concurrent.iter().rev() {
                if !out.contains(s)
                    && self
                        .by_slot
                        .get(s)
                        .is_some_and(|c| c.open_at(process_start_ns))
                {
                    out.push(*s);
                }
            }
        }
        open_now(self.external.get(&agent_slot), out);
    }

    /// Calls settled at or before `cutoff_ns` and not yet summarised.
    pub fn due(&self, cutoff_ns: u64) -> Vec<u64> {
        self.live()
            .filter(|c| c.settled_ns.is_some_and(|e| e <= cutoff_ns))
            .map(|c| c.slot)
            .collect()
    }

    /// Every call not yet summarised, open or not, in slot order.
    pub fn unsummarised(&self) -> Vec<u64> {
        self.live().map(|c| c.slot).collect()
    }

    /// Marks a call summarised: it leaves its declarer's list, and joins
    /// the retired calls, the oldest of which are forgotten.
    pub fn retire(&mut self, slot: u64) {
        let Some(call) = self.by_slot.get_mut(&slot) else {
            return;
        };
        call.summarised = true;
        forget(&mut self.by_declarer, call.declarer, slot);
        for pid in call.parts.iter().filter_map(|p| p.pid) {
            forget(&mut self.by_declarer, pid, slot);
        }
        forget(&mut self.external, call.agent_slot, slot);
        self.retired.push_back(slot);
        while self.retired.len() > RETAINED_CALLS {
            if let Some(old) = self.retired.pop_front() {
                self.by_slot.remove(&old);
                self.evicted += 1;
            }
        }
    }
}

/// Takes `slot` out of `key`'s list, and the list once it is empty.
fn forget<S: std::hash::BuildHasher>(map: &mut HashMap<u32, Vec<u64>, S>, key: u32, slot: u64) {
    if let Some(list) = map.get_mut(&key) {
        list.retain(|s| *s != slot);
        if list.is_empty() {
            map.remove(&key);
        }
    }
}
