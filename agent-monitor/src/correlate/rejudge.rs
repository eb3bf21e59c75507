//! Judging again an action held back as undeclared, once a call declared
//! after the fact (an OpenTelemetry span) may cover it: see
//! `pipeline::held`.

use super::{Correlator, Judgement, Verdict};
use crate::{event::Event, process_table::ProcessInfo, process_table::ProcessTable};

/// A call declared after the fact, now complete: the agent and the time
/// (`CLOCK_BOOTTIME` ns) in which it may cover held actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LateWindow {
    pub agent_slot: u32,
    pub from_ns: u64,
    pub to_ns: u64,
}

impl LateWindow {
    pub fn holds(&self, event: &Event) -> bool {
        event.agent_slot == self.agent_slot && (self.from_ns..=self.to_ns).contains(&event.ts_ns)
    }
}

impl Correlator {
    /// Judges again an action held back as undeclared. Returns the new
    /// judgement when it is better; the counts then move from the old
    /// verdict to the new one, and otherwise stay as they were.
    ///
    /// Only actions that no call claimed are judged again: one that
    /// happened under a call was counted in that call's summary, and a
    /// second judging would count it twice.
    pub fn rejudge(
        &mut self,
        event: &Event,
        process: &ProcessInfo,
        table: &ProcessTable,
        wall_ns: i64,
        held: &Judgement,
    ) -> Option<Judgement> {
        if held.tool_call_id.is_some() {
            return None;
        }
        let counts = self.verdict_counts();
        let fresh = self.judge(event, process, table, wall_ns);
        self.set_verdict_counts(counts);
        if fresh.verdict >= held.verdict {
            return None;
        }
        *self.verdict_count(held.verdict) -= 1;
        *self.verdict_count(fresh.verdict) += 1;
        Some(fresh)
    }

    fn verdict_counts(&self) -> [u64; 4] {
        let s = &self.stats;
        [s.baseline, s.declared, s.unverifiable, s.undeclared]
    }

    fn set_verdict_counts(&mut self, [baseline, declared, unverifiable, undeclared]: [u64; 4]) {
        let s = &mut self.stats;
        (s.baseline, s.declared, s.unverifiable, s.undeclared) =
            (baseline, declared, unverifiable, undeclared);
    }

    fn verdict_count(&mut self, verdict: Verdict) -> &mut u64 {
        match verdict {
            Verdict::Baseline => &mut self.stats.baseline,
            Verdict::Declared => &mut self.stats.declared,
            Verdict::Unverifiable => &mut self.stats.unverifiable,
            Verdict::Undeclared => &mut self.stats.undeclared,
        }
    }
}
