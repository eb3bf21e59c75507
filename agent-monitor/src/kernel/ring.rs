//! The ring-buffer reader stage: waits on the ring with tokio's `AsyncFd`,
//! drains it fully on each wakeup, decodes, and hands batches on.
//!
//! Records below the kernel's wakeup threshold wake no one, so the reader
//! also drains on a timer: every 20 ms, but only once a second while the
//! probes are quiet (nothing is tracked, and the syscall probes are
//! detached), when none of them records anything, so that an idle daemon
//! does not wake 50 times a second for nothing.

use std::time::{Duration, Instant};

use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, watch},
};

use crate::{
    decode::decode,
    error::{Error, Result},
    event::Record,
    kernel::{counters::Counters, event_ring::EventRing},
};

/// How often the loss counters are read while events flow.
const COUNTER_INTERVAL: Duration = Duration::from_millis(500);
/// How often the ring is drained when no wakeup came: records below the
/// kernel's wakeup threshold (`maps::WAKEUP_BYTES`) wait at most this long.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// How often the ring is drained while the probes are quiet and the last
/// drain found nothing: a safety net only, since quiet probes record
/// nothing but a rule's exec the exec gate did not hold, and that record
/// wakes the reader itself.
pub const QUIET_DRAIN_INTERVAL: Duration = Duration::from_secs(1);
/// Most records sent downstream in one batch.
const BATCH: usize = 1024;

pub struct RingReader {
    ring: AsyncFd<EventRing>,
    counters: Counters,
    /// The stream sequence number of the next record: the order in which
    /// the kernel committed records to the ring.
    next_seq: u64,
    /// The most records a batch of the last drain took: each batch of the
    /// next drain starts with room for as many (see `drain`).
    room: usize,
    /// True while no probe records anything (see `SyscallHook::quiet`).
    quiet: watch::Receiver<bool>,
}

impl RingReader {
    pub fn new(
        ring: EventRing,
        counters: Counters,
        quiet: watch::Receiver<bool>,
    ) -> Result<RingReader> {
        // SAFETY: the ring owns its map's fd, which stays open and the same
        // for as long as the ring, and so the AsyncFd, lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| Error::io("polling the event ring", e.into()))?;
        Ok(RingReader {
            ring,
            counters,
            next_seq: 0,
            room: 0,
            quiet,
        })
    }

    /// Runs until `stop` turns true, then drains what is left and returns.
    /// A full downstream channel makes this wait, so the ring fills and the
    /// kernel counts the overflow: nothing is dropped silently here.
    pub async fn run(
        mut self,
        out: mpsc::Sender<Vec<Record>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let mut last_poll = Instant::now();
        let mut found_nothing = false;
        loop {
            // Quiet probes record nothing that does not wake the reader, so
            // after an empty drain the long timer is enough. A sender gone
            // is never quiet: nothing would say when that ends.
            let quiet = found_nothing
                && *self.quiet.borrow_and_update()
                && self.quiet.has_changed().is_ok();
            let interval = if quiet {
                QUIET_DRAIN_INTERVAL
            } else {
                DRAIN_INTERVAL
            };
            let stopping = tokio::select! {
                ready = self.ring.readable_mut() => {
                    let mut guard = ready.map_err(|e| Error::io("polling the event ring", e))?;
                    guard.clear_ready();
                    false
                }
                _ = stop.wait_for(|stop| *stop) => true,
                // The probes attached again: back to the short timer.
                _ = self.quiet.changed(), if quiet => false,
                () = tokio::time::sleep(interval) => false,
            };
            let poll_counters = stopping || last_poll.elapsed() >= COUNTER_INTERVAL;
            if poll_counters {
                last_poll = Instant::now();
            }
            let Some(sent) = self.drain(&out, poll_counters).await else {
                return Ok(());
            };
            found_nothing = sent == 0;
            if stopping {
                return Ok(());
            }
        }
    }

    /// Sends everything in the ring downstream, and says how many records
    /// it sent; None when the receiver is gone.
    async fn drain(
        &mut self,
        out: &mpsc::Sender<Vec<Record>>,
        poll_counters: bool,
    ) -> Option<usize> {
        let mut sent = 0;
        // Under load a drain's batches are full but for its last, the
        // remainder; a batch grown from nothing moves its records again at
        // every doubling. So every batch starts with room for the largest
        // of the last drain, not for the remainder it ended on.
        let room = self.room.clamp(1, BATCH);
        self.room = 0;
        loop {
            let mut batch = Vec::with_capacity(room);
            {
                let ring = self.ring.get_mut();
                while batch.len() < BATCH {
                    let seq = self.next_seq;
                    let Some(record) = ring.next(|bytes| match decode(bytes, seq) {
                        Ok(event) => Record::Event(event),
                        Err(err) => Record::Invalid(err),
                    }) else {
                        break;
                    };
                    self.next_seq += 1;
                    batch.push(record);
                }
                // A full batch leaves records in the ring: give back the
                // space of those read. A dry ring has, in `next`.
                if batch.len() == BATCH {
                    ring.release();
                }
            }
            self.room = self.room.max(batch.len());
            let more = batch.len() == BATCH;
            if !more && poll_counters {
                match self.counters.poll() {
                    Ok(reports) => batch.extend(reports.into_iter().map(Record::Loss)),
                    Err(err) => eprintln!("agent-monitor: {err}"),
                }
            }
            sent += batch.len();
            if !batch.is_empty() && out.send(batch).await.is_err() {
                return None;
            }
            if !more {
                return Some(sent);
            }
        }
    }
}
