//! Alerts POSTed as JSON to an HTTP(S) endpoint, from a thread of their own.
//!
//! `send` never blocks the daemon: it puts the alert on a bounded queue and
//! returns. A dedicated thread drains the queue, retrying each POST with
//! exponential backoff (the `retry` module decides what is worth a
//! retry). When the queue is full the alert is dropped for this sink only
//! and counted; the evidence store and the other sinks still have it.

use std::{
    collections::VecDeque,
    io,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use crate::{
    alerts::{
        AlertSink,
        config::{AlertError, WebhookConfig, check_webhook, origin},
        json,
        retry::{Outcome, deliver},
    },
    evidence::declared::AlertRow,
};

/// What the sender thread has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookStats {
    pub delivered: u64,
    /// Dropped by `send` because the queue was full.
    pub dropped: u64,
    /// Given up on: a response not worth retrying, or every try failed.
    pub failed: u64,
    /// Queued or being sent.
    pub pending: u64,
}

struct Job {
    alert_id: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    in_flight: bool,
    /// No more alerts will come: the thread ends once the queue is empty.
    closed: bool,
    /// Shutdown stopped waiting: the thread ends at its next check, even in
    /// the middle of a backoff.
    abandoned: bool,
    delivered: u64,
    dropped: u64,
    failed: u64,
    failure_reported: bool,
}

/// The queue and counters, shared with the sender thread; every change is
/// signalled on `changed`, which both sides wait on.
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    /// The thread never panics with the lock held, but if it ever did, the
    /// counters are still worth reading, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub struct WebhookAlerts {
    shared: Arc<Shared>,
    /// The URL's origin only: the path may hold a token.
    name: String,
    capacity: usize,
    drain_timeout: Duration,
    flushed: bool,
    worker: Option<JoinHandle<()>>,
}

impl WebhookAlerts {
    /// Checks `config` and starts the sender thread.
    pub fn start(config: WebhookConfig) -> Result<WebhookAlerts, AlertError> {
        check_webhook(&config)?;
        let at = origin(&config.url);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let worker = {
            let shared = Arc::clone(&shared);
            let config = config.clone();
            let thread_at = at.clone();
            thread::Builder::new()
                .name("alert-webhook".into())
                .spawn(move || run(&shared, &config, &thread_at))
                .map_err(|source| AlertError::WebhookThread {
                    url: at.clone(),
                    source,
                })?
        };
        Ok(WebhookAlerts {
            shared,
            name: format!("webhook {at}"),
            capacity: config.queue,
            drain_timeout: config.drain_timeout,
            flushed: false,
            worker: Some(worker),
        })
    }

    pub fn stats(&self) -> WebhookStats {
        let state = self.shared.lock();
        WebhookStats {
            delivered: state.delivered,
            dropped: state.dropped,
            failed: state.failed,
            pending: state.queue.len() as u64 + u64::from(state.in_flight),
        }
    }

    /// Waits up to `drain_timeout` for the queue to empty; returns what is
    /// still pending.
    fn drain(&self) -> u64 {
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, self.drain_timeout, |s| {
                !s.queue.is_empty() || s.in_flight
            })
            .unwrap_or_else(PoisonError::into_inner);
        state.queue.len() as u64 + u64::from(state.in_flight)
    }
}

impl AlertSink for WebhookAlerts {
    fn send(&mut self, row: &AlertRow) -> io::Result<()> {
        // Serialized here, on the caller's thread, so the queue holds bytes
        // and the thread needs nothing of the row.
        let body = json::to_vec(row).map_err(io::Error::other)?;
        let mut state = self.shared.lock();
        if state.closed {
            return Err(io::Error::other("the webhook sink is closed"));
        }
        if state.queue.len() >= self.capacity {
            state.dropped += 1;
            if state.dropped == 1 {
                eprintln!(
                    "agent-monitor: alert {}: queue full ({} alerts), dropping alert {}; \
                     further drops are only counted",
                    self.name,
                    self.capacity,
                    super::one_line(&row.alert_id)
                );
            }
            return Ok(());
        }
        state.queue.push_back(Job {
            alert_id: row.alert_id.clone(),
            body,
        });
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Waits, for at most `drain_timeout`, until every queued alert is
    /// delivered or given up on, then says on stderr what was not delivered.
    fn flush(&mut self) -> io::Result<()> {
        self.flushed = true;
        let pending = self.drain();
        let stats = self.stats();
        if stats.dropped + stats.failed + pending > 0 {
            eprintln!(
                "agent-monitor: alert {}: {} alerts not delivered ({} dropped on a full queue, \
                 {} failed, {pending} still pending at shutdown); {} delivered",
                self.name,
                stats.dropped + stats.failed + pending,
                stats.dropped,
                stats.failed,
                stats.delivered
            );
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn lost(&self) -> u64 {
        let stats = self.stats();
        stats.dropped + stats.failed + stats.pending
    }
}

impl Drop for WebhookAlerts {
    /// Gives queued alerts the same bounded time as `flush` unless `flush`
    /// already waited, then lets the thread go: it stops at its next check,
    /// and a request in flight ends within its timeout. The thread is not
    /// joined, so shutdown never waits on a stuck endpoint.
    fn drop(&mut self) {
        if !self.flushed {
            self.drain();
        }
        {
            let mut state = self.shared.lock();
            state.closed = true;
            if !state.queue.is_empty() || state.in_flight {
                state.abandoned = true;
            }
        }
        self.shared.changed.notify_all();
        if let Some(worker) = self.worker.take()
            && worker.is_finished()
        {
            // It ended on its own, so joining does not wait; a panic in it
            // has nothing left to report.
            let _ = worker.join();
        }
    }
}

/// The sender thread: one alert at a time, in order.
fn run(shared: &Shared, config: &WebhookConfig, at: &str) {
    let agent = super::retry::agent(config);
    loop {
        let job = {
            let state = shared.lock();
            let mut state = shared
                .changed
                .wait_while(state, |s| s.queue.is_empty() && !s.closed && !s.abandoned)
                .unwrap_or_else(PoisonError::into_inner);
            if state.abandoned {
                return;
            }
            let Some(job) = state.queue.pop_front() else {
                return; // closed and drained
            };
            state.in_flight = true;
            job
        };
        let outcome = deliver(&agent, config, &job.body, |wait| pause(shared, wait));
        let mut state = shared.lock();
        state.in_flight = false;
        match outcome {
            Outcome::Delivered => state.delivered += 1,
            Outcome::Failed(reason) => {
                state.failed += 1;
                if !state.failure_reported {
                    state.failure_reported = true;
                    eprintln!(
                        "agent-monitor: alert webhook {at}: alert {} not delivered: {}; \
                         further failures are only counted",
                        super::one_line(&job.alert_id),
                        super::one_line(&reason)
                    );
                }
            }
            // Shutdown gave up on it; it stays counted as pending.
            Outcome::Abandoned => {
                state.queue.push_front(job);
                shared.changed.notify_all();
                return;
            }
        }
        shared.changed.notify_all();
    }
}

/// Waits `wait` between tries on the condition variable rather than
/// sleeping, so shutdown can cut it short; false if shutdown gave up.
fn pause(shared: &Shared, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut state = shared.lock();
    loop {
        if state.abandoned {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        state = shared
            .changed
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
