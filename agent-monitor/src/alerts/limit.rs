//! A token bucket over all non-critical alerts: `burst` may go out at once,
//! then `rate_per_sec` on average.

use std::time::Instant;

pub struct TokenBucket {
    rate_per_sec: f64,
    capacity: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date; `None` until first used,
    /// so the bucket starts full at whatever instant the caller's clock
    /// begins.
    updated: Option<Instant>,
}

impl TokenBucket {
    pub fn new(rate_per_sec: f64, burst: u32) -> TokenBucket {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            rate_per_sec: rate_per_sec.max(0.0),
            capacity,
            tokens: capacity,
            updated: None,
        }
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left at `now`.
    pub fn available(&mut self, now: Instant) -> u32 {
        self.refill(now);
        self.tokens as u32
    }

    fn refill(&mut self, now: Instant) {
        if let Some(updated) = self.updated {
            // An instant earlier than the last one (callers on other
            // threads) adds nothing rather than going backwards.
            let elapsed = now.saturating_duration_since(updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.capacity);
            if now > updated {
                self.updated = Some(now);
            }
        } else {
            self.updated = Some(now);
        }
    }
}

#[cfg(test)]
#[path = "limit_tests.rs"]
mod tests;
