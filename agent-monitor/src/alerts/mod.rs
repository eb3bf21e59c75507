//! Alerts: de-duplicated, rate-limited, sent to stderr, a JSONL file and a
//! webhook.
//!
//! The daemon keeps every event's verdict in the evidence store whatever
//! happens here, so this module is free to hold back repeated or excess
//! alerts: an alert is a notification, not the record. What it holds back it
//! still says, in periodic `alerts_suppressed` rows, so suppression is never
//! silent.
//!
//! Use: build an [`Alerter`] once ([`Alerter::from_config`]); for each alert
//! call [`Alerter::raise`] and record the row in the evidence store only when
//! it returns [`Admission::Sent`]; call [`Alerter::tick`] about once a second
//! and record the row it may return; at shutdown call [`Alerter::finish`] and
//! record its row too.
//!
//! Each stage is its own small module: [`dedup`] (the bounded table of recent
//! alert keys), [`limit`] (the token bucket), [`report`] (counting what was
//! held back), [`alerter`] (the three put together, feeding the sinks), and
//! one module per sink.

pub mod alerter;
mod config;
pub mod dedup;
mod json;
pub mod jsonl;
pub mod limit;
pub mod report;
mod retry;
pub mod stderr;
pub mod webhook;

use std::io;

pub use alerter::{Admission, AlertStats, Alerter, SinkStats};
pub use config::{AlertConfig, AlertError, WebhookConfig};
pub use jsonl::JsonlAlerts;
pub use stderr::StderrAlerts;
pub use webhook::{WebhookAlerts, WebhookStats};

use crate::evidence::declared::AlertRow;

/// The kind of the rows that report suppressed alerts.
pub const SUPPRESSED_KIND: &str = "alerts_suppressed";

/// Where admitted alerts go. A sink that fails does not stop the others: the
/// [`Alerter`] counts its errors and prints the first one.
pub trait AlertSink {
    fn send(&mut self, row: &AlertRow) -> io::Result<()>;

    /// Writes out anything buffered; called once, at the end of the run.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// How this sink is named in messages and stats. It must not carry
    /// secrets (webhook URLs often embed a token, so the webhook shows only
    /// its origin).
    fn name(&self) -> String {
        "alert sink".to_string()
    }

    /// Alerts that `send` accepted but that never reached their
    /// destination: a sink that delivers in the background counts here what
    /// it dropped, gave up on, or still held at shutdown.
    fn lost(&self) -> u64 {
        0
    }
}

/// Makes attacker-influenced text (a message names a file path or a host
/// the agent chose) safe for one line of a terminal or log: control
/// characters, including newlines and escape sequences, are escaped, and so
/// are the bidirectional overrides that make a terminal show text in another
/// order than it is.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
