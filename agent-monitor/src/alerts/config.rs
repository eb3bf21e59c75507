//! What the alerter is configured with, and what can be wrong with it.

use std::{fmt, io, path::PathBuf, time::Duration};

/// How alerts are held back and where they go.
#[derive(Clone, Debug)]
pub struct AlertConfig {
    /// One human line per alert on stderr.
    pub stderr: bool,
    /// A JSONL file the alerts are appended to.
    pub jsonl: Option<PathBuf>,
    pub webhook: Option<WebhookConfig>,
    /// An alert with the same kind, agent, session, rule and message as one
    /// sent less than this long ago is a duplicate.
    pub dedup_window: Duration,
    /// The sustained rate of non-critical alerts, per second.
    pub rate_per_sec: f64,
    /// How many non-critical alerts may go out at once after a quiet spell.
    pub burst: u32,
    /// The shortest time between two `alerts_suppressed` reports.
    pub report_every: Duration,
    /// The most alert keys remembered for de-duplication. Past it the oldest
    /// is forgotten, which can only let a repeat through, never hide one.
    pub max_keys: usize,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            stderr: true,
            jsonl: None,
            webhook: None,
            dedup_window: Duration::from_secs(60),
            rate_per_sec: 20.0,
            burst: 100,
            report_every: Duration::from_secs(10),
            max_keys: 65_536,
        }
    }
}

impl AlertConfig {
    pub(crate) fn validate(&self) -> Result<(), AlertError> {
        if !self.rate_per_sec.is_finite() || self.rate_per_sec < 0.0 {
            return Err(AlertError::Invalid(format!(
                "rate_per_sec must be a finite number ≥ 0, not {}",
                self.rate_per_sec
            )));
        }
        if self.burst == 0 {
            return Err(AlertError::Invalid(
                "burst must be at least 1, or no non-critical alert could ever be sent".into(),
            ));
        }
        if self.max_keys == 0 {
            return Err(AlertError::Invalid("max_keys must be at least 1".into()));
        }
        Ok(())
    }
}

/// An HTTP(S) endpoint that receives each alert as a JSON POST.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// Extra request headers, e.g. `Authorization`.
    pub headers: Vec<(String, String)>,
    /// Alerts waiting for the sender thread; past it new ones are dropped
    /// (and counted), so a slow endpoint never stalls the daemon.
    pub queue: usize,
    /// The whole of one request: connect, send, response.
    pub timeout: Duration,
    /// Tries per alert, the first included.
    pub attempts: u32,
    /// The wait before the second try; it doubles after each failure.
    pub initial_backoff: Duration,
    /// The longest wait between two tries.
    pub max_backoff: Duration,
    /// How long shutdown waits for queued alerts to be delivered.
    pub drain_timeout: Duration,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            headers: Vec::new(),
            queue: 1024,
            timeout: Duration::from_secs(5),
            attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Header values are credentials more often than not: Debug shows only
/// their names, and the URL only up to its host.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("WebhookConfig")
            .field("url", &origin(&self.url))
            .field("headers", &headers)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alerts: {0}")]
    Invalid(String),
    #[error("alerts JSONL file {}: {source}", path.display())]
    Jsonl { path: PathBuf, source: io::Error },
    /// The URL as given: it could not be parsed, so it cannot be shortened
    /// to its origin either.
    #[error("alert webhook URL {url:?}: {reason}")]
    WebhookUrl { url: String, reason: String },
    #[error("alert webhook {url}: header {name:?}: {reason}")]
    WebhookHeader {
        url: String,
        name: String,
        reason: String,
    },
    #[error("alert webhook {url}: {reason}")]
    Webhook { url: String, reason: String },
    #[error("alert webhook {url}: cannot start its sender thread: {source}")]
    WebhookThread { url: String, source: io::Error },
}

/// The URL without its path, query and credentials: Slack-style webhook
/// URLs carry their secret in the path, and this form goes to logs.
pub(crate) fn origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("");
            match parsed.port() {
                Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
                None => format!("{}://{host}", parsed.scheme()),
            }
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// Rejects what could never be delivered, at start rather than on the first
/// alert.
pub(crate) fn check_webhook(config: &WebhookConfig) -> Result<(), AlertError> {
    let bad_url = |reason: &str| AlertError::WebhookUrl {
        url: config.url.clone(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(&config.url).map_err(|e| bad_url(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad_url("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad_url("no host"));
    }
    // ureq parses with the `http` crate, which is stricter than `url` in
    // places; checking here too keeps the failure at start.
    if config.url.parse::<ureq::http::Uri>().is_err() {
        return Err(bad_url("not a valid HTTP request URI"));
    }
    let at = origin(&config.url);
    for (name, value) in &config.headers {
        let bad_header = |reason: &str| AlertError::WebhookHeader {
            url: at.clone(),
            name: name.clone(),
            reason: reason.to_string(),
        };
        ureq::http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad_header("not a valid header name"))?;
        // The value is not shown: it is likely a credential.
        ureq::http::HeaderValue::from_str(value)
            .map_err(|_| bad_header("the value has characters a header cannot carry"))?;
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("content-length")
        {
            return Err(bad_header("set by the sink itself"));
        }
    }
    let invalid = |reason: &str| AlertError::Webhook {
        url: at.clone(),
        reason: reason.to_string(),
    };
    if config.queue == 0 {
        return Err(invalid("queue must hold at least 1 alert"));
    }
    if config.attempts == 0 {
        return Err(invalid("attempts must be at least 1"));
    }
    if config.timeout.is_zero() {
        return Err(invalid("timeout must be more than zero"));
    }
    Ok(())
}
