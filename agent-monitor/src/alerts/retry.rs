//! One webhook POST, and whether a failed one is worth trying again.
//!
//! Retried: transport failures (refused or reset connections, timeouts,
//! failed name lookups), `5xx` and `429`, which say "not now". Not retried:
//! other `4xx`, which say the request itself is wrong and will stay so, TLS
//! failures, and redirects, which are not followed so that the headers
//! (often a credential) only ever go to the configured host.

use std::time::Duration;

use crate::alerts::config::WebhookConfig;

/// How delivering one alert ended.
pub enum Outcome {
    Delivered,
    Failed(String),
    /// Shutdown stopped waiting before it was delivered.
    Abandoned,
}

#[derive(Debug)]
pub struct Failure {
    pub retry: bool,
    pub reason: String,
}

/// The waits between tries: `initial`, doubling each time, capped at `max`.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            next: initial.min(max),
            max,
        }
    }

    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }
}

/// The HTTP client for one webhook: status codes come back as responses
/// (not errors) so they can be classified here, and redirects are returned
/// rather than followed.
pub fn agent(config: &WebhookConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(config.timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("agent-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Tries one alert until it is delivered, refused, out of tries, or given
/// up on by shutdown; `pause` waits between tries and says whether to go on.
pub fn deliver(
    agent: &ureq::Agent,
    config: &WebhookConfig,
    body: &[u8],
    mut pause: impl FnMut(Duration) -> bool,
) -> Outcome {
    let mut backoff = Backoff::new(config.initial_backoff, config.max_backoff);
    let mut attempt = 1;
    loop {
        let reason = match post(agent, config, body) {
            Ok(()) => return Outcome::Delivered,
            Err(failure) if !failure.retry => return Outcome::Failed(failure.reason),
            Err(failure) => failure.reason,
        };
        if attempt >= config.attempts {
            return Outcome::Failed(format!("{reason} (after {attempt} tries)"));
        }
        attempt += 1;
        if !pause(backoff.next_wait()) {
            return Outcome::Abandoned;
        }
    }
}

fn post(agent: &ureq::Agent, config: &WebhookConfig, body: &[u8]) -> Result<(), Failure> {
    let mut request = agent
        .post(&config.url)
        .header("content-type", "application/json");
    for (name, value) in &config.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read (a bounded amount of) the body so the connection can be
            // reused; what it says does not matter.
            let mut reply = response.into_body();
            let _ = reply.with_config().limit(64 * 1024).read_to_vec();
            classify_status(status)
        }
        Err(error) => Err(classify_error(&error)),
    }
}

pub fn classify_status(status: u16) -> Result<(), Failure> {
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(Failure {
            retry: true,
            reason: format!("HTTP status {status}"),
        }),
        300..=399 => Err(Failure {
            retry: false,
            reason: format!("HTTP status {status}: redirects are not followed"),
        }),
        _ => Err(Failure {
            retry: false,
            reason: format!("HTTP status {status}"),
        }),
    }
}

fn classify_error(error: &ureq::Error) -> Failure {
    use ureq::Error as E;
    let retry = matches!(
        error,
        E::Io(_)
            | E::Timeout(_)
            | E::ConnectionFailed
            | E::HostNotFound
            | E::Protocol(_)
            | E::ConnectProxyFailed(_)
            | E::BodyStalled
    );
    Failure {
        retry,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
        let waits: Vec<u64> = (0..7)
            .map(|_| backoff.next_wait().as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn statuses_are_classified() {
        assert!(classify_status(200).is_ok());
        assert!(classify_status(204).is_ok());
        for retried in [429, 500, 502, 503, 599] {
            assert!(classify_status(retried).unwrap_err().retry, "{retried}");
        }
        for final_ in [301, 302, 400, 401, 403, 404, 413, 422] {
            assert!(!classify_status(final_).unwrap_err().retry, "{final_}");
        }
    }
}
