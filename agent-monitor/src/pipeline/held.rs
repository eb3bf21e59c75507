//! Undeclared events held back for declarations made after the fact.
//!
//! An OpenTelemetry span reaches the monitor once its tool call is over:
//! the actions the call took were read from the ring, and judged, before
//! anyone declared it. With a grace period set, an event of an agent that
//! declares after the fact (one that has sent a span, or the run's agent
//! under `run --otlp`) judged `undeclared` is neither written nor alerted
//! on at once; it waits up to the grace period, and each call declared
//! after the fact judges the waiting events in its window again. An event
//! some call then covers is written as `declared`; the others are written
//! as they were judged, alerts and all, when their time is up. Events
//! judged anything else, events of other agents, and events whose alert
//! is high or critical (a sensitive file, tampering) are never held.
//!
//! Held events are bounded: past [`MAX_HELD`] the oldest is released at
//! once, and the first time that happens it is reported.

use std::collections::{HashSet, VecDeque};

use super::Processor;
use crate::{
    correlate::{Judgement, LateWindow, Verdict},
    event::Event,
    process_table::ProcessInfo,
    sink::Sink,
    time::WallClock,
};

/// Most events held at once.
pub const MAX_HELD: usize = 65_536;

/// The waiting events, oldest first.
#[derive(Debug, Default)]
pub struct Held {
    grace_ns: u64,
    queue: VecDeque<Waiting>,
    /// Agents (slots) that declare after the fact.
    late: HashSet<u32>,
}

#[derive(Debug)]
struct Waiting {
    /// When it was held (`CLOCK_BOOTTIME` ns).
    since_ns: u64,
    event: Event,
    process: ProcessInfo,
    wall_ns: i64,
    judgement: Judgement,
}

impl Held {
    pub fn new(grace: std::time::Duration) -> Held {
        Held {
            grace_ns: u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX),
            ..Held::default()
        }
    }
}

impl<S: Sink> Processor<S> {
    /// Holds undeclared events for up to `grace`, for calls declared after
    /// the fact (OpenTelemetry spans) to cover them.
    pub fn with_late_declarations(mut self, grace: std::time::Duration) -> Processor<S> {
        self.held = (!grace.is_zero()).then(|| Held::new(grace));
        self.correlator.delay_summaries(grace);
        self
    }

    /// `agent_slot` declares after the fact: its undeclared events wait.
    /// The run's agent under `run --otlp` does from the start; an agent of
    /// the daemon once its first span has declared a call.
    pub fn declares_late(&mut self, agent_slot: u32) {
        if let Some(held) = &mut self.held {
            held.late.insert(agent_slot);
        }
    }

    /// Whether an event so judged waits for late declarations. Every
    /// event asks: the verdict is looked at before the agent is hashed.
    pub(super) fn holds(&self, event: &Event, judgement: &Judgement) -> bool {
        judgement.verdict == Verdict::Undeclared
            && self
                .held
                .as_ref()
                .is_some_and(|h| h.late.contains(&event.agent_slot))
            && judgement
                .alerts
                .iter()
                .all(|a| !matches!(a.severity.as_str(), "high" | "critical"))
    }

    /// Keeps an undeclared event back, for up to the grace period.
    pub(super) fn hold(
        &mut self,
        event: Event,
        process: ProcessInfo,
        wall_ns: i64,
        judgement: Judgement,
    ) {
        let Some(held) = &mut self.held else {
            return self.release(Waiting {
                since_ns: 0,
                event,
                process,
                wall_ns,
                judgement,
            });
        };
        held.queue.push_back(Waiting {
            since_ns: WallClock::boot_now_ns(),
            event,
            process,
            wall_ns,
            judgement,
        });
        if held.queue.len() > MAX_HELD {
            if self.stats.held_overflowed == 0 {
                eprintln!(
                    "agent-monitor: {MAX_HELD} undeclared events are waiting for late declarations; \
                     releasing the oldest early (they keep their verdict)"
                );
            }
            self.stats.held_overflowed += 1;
            if let Some(oldest) = held.queue.pop_front() {
                self.release(oldest);
            }
        }
    }

    /// Judges again the waiting events a call declared after the fact may
    /// cover: its agent's, in its window.
    pub(super) fn rejudge_held(&mut self, window: LateWindow) {
        let Some(held) = &mut self.held else {
            return;
        };
        held.late.insert(window.agent_slot);
        let waiting = std::mem::take(&mut held.queue);
        let mut still = VecDeque::with_capacity(waiting.len());
        for mut w in waiting {
            let better = window
                .holds(&w.event)
                .then(|| {
                    self.correlator.rejudge(
                        &w.event,
                        &w.process,
                        &self.table,
                        w.wall_ns,
                        &w.judgement,
                    )
                })
                .flatten();
            match better {
                Some(judgement) => {
                    w.judgement = judgement;
                    self.stats.late_covered += 1;
                    self.release(w);
                }
                None => still.push_back(w),
            }
        }
        if let Some(held) = &mut self.held {
            held.queue = still;
        }
    }

    /// Writes the events whose grace period is over; with `all`, every one
    /// (the stage is closing).
    pub(super) fn release_held(&mut self, all: bool) {
        let now = WallClock::boot_now_ns();
        loop {
            let Some(held) = &mut self.held else {
                return;
            };
            let due = held
                .queue
                .front()
                .is_some_and(|w| all || w.since_ns.saturating_add(held.grace_ns) <= now);
            if !due {
                return;
            }
            if let Some(w) = held.queue.pop_front() {
                self.release(w);
            }
        }
    }

    fn release(&mut self, w: Waiting) {
        let written = super::write_event(
            &mut self.sink,
            &self.correlator,
            &w.event,
            &w.process,
            &w.judgement,
        );
        if let Err(err) = written {
            self.sink_error(&err);
        }
        self.raise_judged(w.judgement);
    }
}
