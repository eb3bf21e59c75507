//! The alerter: de-duplication, then rate limiting, then the sinks; and the
//! periodic report of what the first two held back.

use std::{
    collections::BTreeMap,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    alerts::{
        AlertConfig, AlertError, AlertSink, JsonlAlerts, SUPPRESSED_KIND, StderrAlerts,
        WebhookAlerts, config::check_webhook, dedup, dedup::DedupTable, limit::TokenBucket,
        one_line, report::Tally,
    },
    evidence::declared::{AlertRow, WallNs},
    random,
    time::rfc3339,
};

/// What [`Alerter::raise`] did with an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Given to the sinks: the caller records it in the evidence store.
    Sent,
    /// The same alert was sent less than the de-duplication window ago.
    Duplicate,
    /// Over the rate limit. Its next repeat is not a duplicate, since this
    /// one reached nobody.
    RateLimited,
}

/// One sink's trouble over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkStats {
    pub name: String,
    /// `send` and `flush` calls that failed.
    pub errors: u64,
    /// Alerts the sink accepted but did not deliver (see [`AlertSink::lost`]).
    pub lost: u64,
}

/// Totals over the run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertStats {
    /// Alerts admitted by `raise` (reports not included).
    pub sent: u64,
    pub duplicates: u64,
    pub rate_limited: u64,
    /// `alerts_suppressed` rows produced.
    pub reports: u64,
    /// De-duplication keys forgotten early because the table was full.
    pub evicted_keys: u64,
    pub sent_by_kind: BTreeMap<String, u64>,
    pub sinks: Vec<SinkStats>,
}

struct Slot {
    sink: Box<dyn AlertSink + Send>,
    name: String,
    errors: u64,
}

pub struct Alerter {
    config: AlertConfig,
    dedup: DedupTable,
    bucket: TokenBucket,
    /// Held back since the last report.
    tally: Tally,
    last_report: Option<Instant>,
    /// A monotonic instant and the wall time it corresponds to, to stamp
    /// the reports, which have no event of their own to take a time from.
    anchor: (Instant, WallNs),
    stats: AlertStats,
    slots: Vec<Slot>,
}

impl Alerter {
    pub fn new(config: AlertConfig, sinks: Vec<Box<dyn AlertSink + Send>>) -> Alerter {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as WallNs);
        Alerter {
            dedup: DedupTable::new(config.dedup_window, config.max_keys),
            bucket: TokenBucket::new(config.rate_per_sec, config.burst),
            tally: Tally::default(),
            last_report: None,
            anchor: (Instant::now(), wall),
            stats: AlertStats::default(),
            slots: sinks
                .into_iter()
                .map(|sink| Slot {
                    name: sink.name(),
                    sink,
                    errors: 0,
                })
                .collect(),
            config,
        }
    }

    /// Checks `config` and opens the sinks it names.
    pub fn from_config(config: AlertConfig) -> Result<Alerter, AlertError> {
        config.validate()?;
        // The webhook is checked before the file is created, so a bad URL
        // leaves nothing behind.
        if let Some(webhook) = &config.webhook {
            check_webhook(webhook)?;
        }
        let mut sinks: Vec<Box<dyn AlertSink + Send>> = Vec::new();
        if config.stderr {
            sinks.push(Box::new(StderrAlerts::stderr()));
        }
        if let Some(path) = &config.jsonl {
            let sink = JsonlAlerts::create(path).map_err(|source| AlertError::Jsonl {
                path: path.clone(),
                source,
            })?;
            sinks.push(Box::new(sink));
        }
        if let Some(webhook) = &config.webhook {
            sinks.push(Box::new(WebhookAlerts::start(webhook.clone())?));
        }
        Ok(Alerter::new(config, sinks))
    }

    /// Makes `at` read as `wall_ns` when reports are stamped. The alerter
    /// samples both clocks when created; a caller with a clock of its own
    /// (or a test) sets it here so all its timestamps agree.
    pub fn anchor_wall_clock(&mut self, at: Instant, wall_ns: WallNs) {
        self.anchor = (at, wall_ns);
    }

    /// Decides `row`'s fate and, if it is [`Admission::Sent`], gives it to
    /// every sink. A duplicate is checked first, so a repeat never uses up
    /// the rate budget; critical alerts skip the rate limit, not the
    /// de-duplication.
    /// Counts an alert its producer did not even build because it repeats
    /// one sent within the window (the correlator's per-process memory):
    /// reported as a duplicate like any other.
    pub fn repeated(&mut self, kind: &str, now: impl FnOnce() -> Instant) {
        self.stats.duplicates += 1;
        self.tally.duplicate(kind, now);
    }

    pub fn raise(&mut self, row: &AlertRow, now: Instant) -> Admission {
        let key = dedup::key(row);
        if self.dedup.check(&key, now).is_some() {
            self.stats.duplicates += 1;
            self.tally.duplicate(&row.kind, || now);
            return Admission::Duplicate;
        }
        // A flood of medium alerts must not push a high one out: high and
        // critical alerts are de-duplicated, never rate-limited.
        let exempt = ["critical", "high"]
            .iter()
            .any(|s| row.severity.eq_ignore_ascii_case(s));
        if !exempt && !self.bucket.take(now) {
            self.stats.rate_limited += 1;
            self.tally.rate_limited(&row.kind, now);
            return Admission::RateLimited;
        }
        self.dedup.insert(key, now);
        self.deliver(row);
        self.stats.sent += 1;
        *self.stats.sent_by_kind.entry(row.kind.clone()).or_insert(0) += 1;
        Admission::Sent
    }

    /// The `alerts_suppressed` report, when something was held back and the
    /// last report is at least `report_every` old. It has already gone to
    /// the sinks (past the limits, which must not hide their own report);
    /// the caller records it in the evidence store.
    pub fn tick(&mut self, now: Instant) -> Option<AlertRow> {
        // Expired keys go even when no alert comes to trigger it.
        self.dedup.prune(now);
        if !self
            .tally
            .due(self.last_report, self.config.report_every, now)
        {
            return None;
        }
        Some(self.report(now))
    }

    /// Ends the run: the last report if anything is held back, whatever its
    /// age; then every sink flushed and closed. The caller records the
    /// report. Alerts raised afterwards reach no sink.
    pub fn finish(&mut self, now: Instant) -> (Option<AlertRow>, AlertStats) {
        let report = (!self.tally.is_empty()).then(|| self.report(now));
        for slot in &mut self.slots {
            if let Err(error) = slot.sink.flush() {
                slot.errors += 1;
                eprintln!(
                    "agent-monitor: alert sink {}: flush failed: {}",
                    slot.name,
                    one_line(&error.to_string())
                );
            }
        }
        let stats = self.stats();
        // Dropping closes them: the webhook's thread is told to stop.
        self.slots.clear();
        (report, stats)
    }

    /// Totals so far.
    pub fn stats(&self) -> AlertStats {
        let mut stats = self.stats.clone();
        stats.evicted_keys = self.dedup.evicted();
        stats.sinks = self
            .slots
            .iter()
            .map(|slot| SinkStats {
                name: slot.name.clone(),
                errors: slot.errors,
                lost: slot.sink.lost(),
            })
            .collect();
        stats
    }

    fn report(&mut self, now: Instant) -> AlertRow {
        let since = self.tally.since(self.last_report).unwrap_or(now);
        let ts = self.wall(now);
        let message = self.tally.message(&rfc3339(i128::from(self.wall(since))));
        let alert_id = random::uuid_v4()
            .unwrap_or_else(|_| format!("alerts-suppressed-{ts}-{}", self.stats.reports));
        let row = AlertRow {
            ts,
            alert_id,
            kind: SUPPRESSED_KIND.to_string(),
            severity: "low".to_string(),
            message,
            ..AlertRow::default()
        };
        self.deliver(&row);
        self.tally = Tally::default();
        self.last_report = Some(now);
        self.stats.reports += 1;
        row
    }

    /// Gives `row` to every sink; one failing does not keep it from the
    /// others. Only a sink's first error is printed, so a broken sink does
    /// not flood stderr at the alert rate.
    fn deliver(&mut self, row: &AlertRow) {
        for slot in &mut self.slots {
            if let Err(error) = slot.sink.send(row) {
                slot.errors += 1;
                if slot.errors == 1 {
                    eprintln!(
                        "agent-monitor: alert sink {}: {}; further errors are only counted",
                        slot.name,
                        one_line(&error.to_string())
                    );
                }
            }
        }
    }

    fn wall(&self, at: Instant) -> WallNs {
        let (anchor, wall) = self.anchor;
        let nanos = |d: std::time::Duration| d.as_nanos() as WallNs;
        match at.checked_duration_since(anchor) {
            Some(after) => wall.saturating_add(nanos(after)),
            None => wall.saturating_sub(nanos(anchor.duration_since(at))),
        }
    }
}

#[cfg(test)]
#[path = "alerter_tests.rs"]
mod tests;
