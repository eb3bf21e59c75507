//! The processing stage's side of declarations and alerts: requests from
//! the socket answered by the correlator, their rows recorded, alerts
//! passed through the alerter before they are recorded.

use std::time::Instant;

use super::Processor;
use crate::{
    api::{Answer, ApiMessage},
    correlate::Now,
    declare::Request,
    evidence::declared::{AlertRow, Declared},
    sink::Sink,
    time::WallClock,
};

impl<S: Sink> Processor<S> {
    pub(super) fn declaration(&mut self, message: ApiMessage) {
        match message {
            ApiMessage::Connect { conn, peer } => self.correlator.connect(conn, peer),
            ApiMessage::Request {
                conn,
                envelope,
                now,
                slot,
                target,
                answer,
            } => {
                // The daemon's own requests, answered here: they change
                // or read the stage's state, not the correlator's.
                let reply = match &envelope.request {
                    Request::Register(register) => {
                        Some(self.register(conn, register.clone(), envelope.id.clone()))
                    }
                    Request::DaemonStatus => Some(self.status_reply(envelope.id.clone())),
                    _ => None,
                };
                if let Some(reply) = reply {
                    let _ = answer.send(Answer {
                        reply,
                        slots: Vec::new(),
                    });
                    return;
                }
                let outcome = self
                    .correlator
                    .declare_for(conn, envelope, now, slot, target);
                for record in &outcome.records {
                    self.record(record);
                }
                for row in self.correlator.ended_sessions(&self.table) {
                    self.record(&row);
                }
                for alert in outcome.alerts {
                    self.raise(alert);
                }
                if let Some(window) = outcome.rejudge {
                    self.rejudge_held(window);
                }
                // The client may have gone; its declarations stay recorded.
                let _ = answer.send(Answer {
                    reply: outcome.reply,
                    slots: outcome.slots,
                });
            }
            ApiMessage::Refused { .. } => self.correlator.refused(),
            ApiMessage::Disconnect { conn, now, answer } => {
                let _ = answer.send(self.correlator.disconnect(conn, now));
            }
        }
    }

    pub(super) fn record(&mut self, record: &Declared) {
        if let Err(err) = self.sink.declared(record) {
            self.sink_error(&err);
        }
    }

    /// Records an alert unless the alerter holds it back as a duplicate or
    /// over the rate limit; every event's verdict is kept regardless.
    pub(super) fn raise(&mut self, alert: AlertRow) {
        use crate::alerts::Admission;
        // A repeat is dropped (its event keeps its verdict, and the first
        // is recorded); an alert over the rate limit reaches no sink but is
        // still evidence, so a flood cannot erase one from the store.
        match self
            .alerter
            .as_mut()
            .map(|a| a.raise(&alert, Instant::now()))
        {
            Some(Admission::Duplicate) => {
                self.stats.alerts_suppressed += 1;
                return;
            }
            Some(Admission::RateLimited) => self.stats.alerts_suppressed += 1,
            Some(Admission::Sent) | None => {}
        }
        *self
            .stats
            .alerts_by_kind
            .entry(alert.kind.clone())
            .or_default() += 1;
        self.record(&Declared::Alert(alert));
    }

    /// An alert the correlator did not build, being a repeat.
    pub(super) fn repeated(&mut self, kind: &str) {
        self.stats.alerts_suppressed += 1;
        if let Some(alerter) = &mut self.alerter {
            alerter.repeated(kind, Instant::now);
        }
    }

    /// The timer's work: summaries of calls whose late events are in, and
    /// the alerter's report of what it held back.
    pub(super) fn tick(&mut self) {
        self.sample_rate();
        self.release_held(false);
        for row in self.correlator.tick(WallClock::boot_now_ns()) {
            self.record(&row);
        }
        if let Some(report) = self.alerter.as_mut().and_then(|a| a.tick(Instant::now())) {
            self.record(&Declared::Alert(report));
        }
    }

    /// Ends the declarations: open calls, summaries, sessions, the last
    /// alert report.
    pub(super) fn close_declarations(&mut self) {
        self.release_held(true);
        let boot_ns = WallClock::boot_now_ns();
        let now = Now {
            boot_ns,
            wall_ns: self.clock.wall_ns(boot_ns) as i64,
        };
        for row in self.correlator.close(now, &self.table) {
            self.record(&row);
        }
        if let Some(alerter) = &mut self.alerter {
            let (report, stats) = alerter.finish(Instant::now());
            if let Some(report) = report {
                self.record(&Declared::Alert(report));
            }
            for sink in stats.sinks.iter().filter(|s| s.errors + s.lost > 0) {
                eprintln!(
                    "agent-monitor: alert sink {}: {} errors, {} alerts not delivered",
                    sink.name, sink.errors, sink.lost
                );
            }
        }
        self.stats.correlation = self.correlator.stats();
    }
}
