//! Counting the alerts held back, and saying so in one `alerts_suppressed`
//! row every so often.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// How many kinds the report names.
const TOP_KINDS: usize = 3;

/// What was held back since the last report.
#[derive(Default)]
pub struct Tally {
    pub duplicates: u64,
    pub rate_limited: u64,
    by_kind: BTreeMap<String, u64>,
    /// The first suppression since the last report.
    first: Option<Instant>,
}

impl Tally {
    /// `now` is asked only when this starts a tally: a burst of repeats
    /// reads the clock once, not once per repeat.
    pub fn duplicate(&mut self, kind: &str, now: impl FnOnce() -> Instant) {
        self.duplicates += 1;
        self.count(kind, now);
    }

    pub fn rate_limited(&mut self, kind: &str, now: Instant) {
        self.rate_limited += 1;
        self.count(kind, || now);
    }

    fn count(&mut self, kind: &str, now: impl FnOnce() -> Instant) {
        // Kinds are a handful of fixed names, so the map stays tiny.
        match self.by_kind.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.by_kind.insert(kind.to_string(), 1);
            }
        }
        self.first.get_or_insert_with(now);
    }

    pub fn is_empty(&self) -> bool {
        self.duplicates == 0 && self.rate_limited == 0
    }

    /// Whether a report is due at `now`: something is held back, and the
    /// last report (or, before any, the first suppression) is at least
    /// `every` old. So reports come at most once per `every`, and the first
    /// one no sooner than `every` after the trouble began, which gathers a
    /// burst into one row rather than reporting its first repeat alone.
    pub fn due(&self, last_report: Option<Instant>, every: Duration, now: Instant) -> bool {
        match (last_report, self.first) {
            (_, None) => false,
            (Some(last), Some(_)) | (None, Some(last)) => {
                now.saturating_duration_since(last) >= every
            }
        }
    }

    /// When the period this tally covers began: the last report, or the
    /// first suppression if there was no report yet.
    pub fn since(&self, last_report: Option<Instant>) -> Option<Instant> {
        last_report.or(self.first)
    }

    /// The report's message, e.g. `12 duplicate and 40 rate-limited alerts
    /// suppressed since 2026-11-26T22:05:26.000000000Z; top: undeclared ×30,
    /// sensitive ×22`.
    pub fn message(&self, since: &str) -> String {
        let mut kinds: Vec<(&String, &u64)> = self.by_kind.iter().collect();
        // Most first; the map's name order breaks ties, so the text is
        // deterministic.
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        let top: Vec<String> = kinds
            .iter()
            .take(TOP_KINDS)
            .map(|(kind, n)| format!("{} ×{n}", super::one_line(kind)))
            .collect();
        let mut text = format!(
            "{} duplicate and {} rate-limited alerts suppressed since {since}; top: {}",
            self.duplicates,
            self.rate_limited,
            top.join(", ")
        );
        match kinds.len().saturating_sub(TOP_KINDS) {
            0 => {}
            1 => text.push_str(", and 1 other kind"),
            more => text.push_str(&format!(", and {more} other kinds")),
        }
        text
    }
}
