//! The OpenTelemetry receiver: OTLP/HTTP trace exports on a loopback
//! address, whose GenAI spans become declarations (docs/otel.md).
//!
//! An agent instrumented with the OpenTelemetry GenAI conventions declares
//! its tool calls with no change at all: it exports its spans here. The
//! parts, in the order a request meets them:
//! - [`server`] accepts connections, finds the process on the other end
//!   of each (nothing the client says about itself is believed), and
//!   answers as OTLP/HTTP requires;
//! - [`json`] and [`proto`] decode the two encodings into [`Span`]s;
//! - [`spans`] maps a span to declarations, which [`declarer`] submits
//!   to the processing stage as the socket server does;
//! - [`conversations`] remembers, across connections, the conversations
//!   whose sessions the receiver entered (to end them once they are over)
//!   and the prompt last declared in each (to declare a prompt once).
//!
//! Spans arrive after the fact: their calls bind no kernel slot, and are
//! matched to the agent's actions by time and envelope. The processing
//! stage holds an agent's undeclared verdicts for a grace period so that
//! such declarations can still cover them.

mod conversations;
mod declarer;
mod json;
mod proto;
mod server;
pub mod spans;

use std::{net::SocketAddr, time::Duration};

pub use conversations::DEFAULT_QUIET;
pub use declarer::Counts;
pub use server::{bind, serve};
pub use spans::{Span, SpanEvent, StatusCode};

use crate::policy::{EffectKind, Policy, PolicyError};

/// How long an agent's undeclared verdicts wait for late declarations
/// unless configured otherwise: the Python SDK's batch processor exports
/// every 5 s, and an export may take a few more.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// The encodings OTLP/HTTP defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

impl Encoding {
    /// From a `Content-Type` value, parameters (`; charset=utf-8`) aside.
    pub fn from_content_type(value: &str) -> Option<Encoding> {
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// A request body that is no `ExportTraceServiceRequest`.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an OTLP/JSON ExportTraceServiceRequest: {0}")]
    Json(#[source] serde_json::Error),
    #[error("not a protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[source] prost::DecodeError),
}

/// The spans of an export request in `encoding`.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<Vec<Span>, DecodeError> {
    match encoding {
        Encoding::Protobuf => proto::decode(body),
        Encoding::Json => json::decode(body),
    }
}

/// A double attribute as JSON; JSON has no NaN or infinities, so those
/// are kept as protobuf's JSON mapping writes them.
fn double(d: f64) -> serde_json::Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => serde_json::Value::Number(n),
        None if d.is_nan() => "NaN".into(),
        None if d > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

/// Where the receiver may listen: loopback only, since who sent a span is
/// learnt from the local socket table.
pub fn check_listen(addr: SocketAddr) -> Result<SocketAddr, String> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{addr} is not a loopback address; the OTLP receiver listens on loopback only (127.0.0.1 or [::1])"
        ))
    }
}

/// `[otel] listen`: an address with its port, or empty for none.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an address such as \"127.0.0.1:4318\""))?;
    if addr.port() == 0 {
        return Err(format!(
            "{addr}: name a port; agents are told where to export, and a port the daemon picks is known to none"
        ));
    }
    check_listen(addr).map(Some)
}

/// `[otel] grace`: a number and a unit, `ms`, `s` or `m` (`"30s"`).
pub fn parse_grace(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as \"30s\""))?;
    let grace = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => {
            return Err(format!(
                "{text:?} is not a duration such as \"30s\" (units: ms, s, m)"
            ));
        }
    };
    if grace > Duration::from_secs(3600) {
        return Err(format!(
            "{text:?} is more than an hour; undeclared verdicts are held that long in memory"
        ));
    }
    Ok(grace)
}

/// Connecting to the receiver, as connecting to the declaration socket, is
/// the monitor's interface and no action of the agent's (`monitor.otlp`).
pub fn baseline(policy: &mut Policy, addr: SocketAddr) -> Result<(), PolicyError> {
    policy.extend_baseline("monitor.otlp", EffectKind::NetConnect, &addr.to_string())
}

#[cfg(test)]
mod tests;
