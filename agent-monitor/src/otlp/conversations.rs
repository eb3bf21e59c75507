//! What the receiver remembers across its TCP connections: the
//! conversations whose sessions it entered, so that it ends them once they
//! are over, and the prompt it last declared in each, so that a prompt
//! sent again is declared once.
//!
//! **Ending sessions.** A conversation's session counts against the
//! agent's open sessions until it ends, and spans never say that a
//! conversation is over. A session the receiver's own `session.start`
//! opened (its reply says `created`) is ended once the conversation is
//! over by every sign the receiver has: no TCP connection holds a
//! declaring connection in it (they let go of one when they close, past
//! [`super::declarer`]'s bound, and once it is quiet), and no span has
//! named it for the quiet period. A session the hook, the SDK or `run`
//! opened under the same id is theirs to end.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use super::spans::Prompt;
use crate::correlate::Peer;

/// How long a conversation goes without spans before its session is
/// ended: longer than a user's pause between turns, most of the time, and
/// short enough that an agent with many conversations does not reach its
/// 1,024 open sessions.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(30 * 60);

/// Conversations (and spans without one, per agent) whose last prompt is
/// remembered; the oldest is forgotten past it.
pub const MAX_PROMPTS: usize = 1024;

/// A conversation: the agent it belongs to, and its id.
pub type Key = (Option<u32>, String);

/// Where prompts are remembered: a conversation, or an agent's current
/// session (`None`).
pub type PromptKey = (Option<u32>, Option<String>);

#[derive(Debug)]
pub struct Conversations {
    quiet: Duration,
    entries: HashMap<Key, Entry>,
    prompts: Prompts,
}

#[derive(Debug)]
struct Entry {
    /// TCP connections holding a declaring connection in its session.
    holders: usize,
    /// The receiver's `session.start` opened its session: there is a
    /// session of the receiver's to end.
    opened: bool,
    /// When a span last named it.
    last_span: Instant,
    /// Who sent that span: the session is ended as that process.
    peer: Peer,
    /// Its session is being ended: spans naming it now are refused.
    ending: bool,
}

/// The conversation's session is being ended.
#[derive(Debug, PartialEq, Eq)]
pub struct Ending;

impl Conversations {
    pub fn new(quiet: Duration) -> Conversations {
        Conversations {
            quiet,
            entries: HashMap::new(),
            prompts: Prompts::default(),
        }
    }

    pub fn quiet(&self) -> Duration {
        self.quiet
    }

    /// A TCP connection takes a declaring connection in the conversation's
    /// session.
    pub fn hold(&mut self, key: &Key, peer: &Peer, now: Instant) -> Result<(), Ending> {
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            holders: 0,
            opened: false,
            last_span: now,
            peer: peer.clone(),
            ending: false,
        });
        if entry.ending {
            return Err(Ending);
        }
        entry.holders += 1;
        Ok(())
    }

    /// The receiver's `session.start` opened its session.
    pub fn opened(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.opened = true;
        }
    }

    /// A span named it, sent by `peer`.
    pub fn named(&mut self, key: &Key, peer: &Peer, now: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.last_span = now;
            entry.peer = peer.clone();
        }
    }

    /// A TCP connection let go of its declaring connection in the
    /// session. One whose session was never opened is forgotten when none
    /// holds it.
    pub fn release(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.holders = entry.holders.saturating_sub(1);
            if entry.holders == 0 && !entry.opened && !entry.ending {
                self.entries.remove(key);
            }
        }
    }

    /// Whether no span has named it for the quiet period.
    pub fn is_quiet(&self, key: &Key, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_none_or(|e| now.saturating_duration_since(e.last_span) >= self.quiet)
    }

    /// The sessions to end now, each with the process to end it as: held
    /// by no connection, and quiet. They are marked as being ended.
    pub fn due(&mut self, now: Instant) -> Vec<(Key, Peer)> {
        let quiet = self.quiet;
        let mut due = Vec::new();
        for (key, entry) in &mut self.entries {
            if entry.holders == 0
                && entry.opened
                && !entry.ending
                && now.saturating_duration_since(entry.last_span) >= quiet
            {
                entry.ending = true;
                due.push((key.clone(), entry.peer.clone()));
            }
        }
        // The map's order would end them in a different order each run.
        due.sort_by(|a, b| a.0.cmp(&b.0));
        due
    }

    /// Its session has ended (or could not be): forgotten, with its last
    /// prompt.
    pub fn ended(&mut self, key: &Key) {
        self.entries.remove(key);
        self.prompts.forget(&(key.0, Some(key.1.clone())));
    }

    /// Whether `prompt` is the last one declared in `key`: the same text
    /// at the same place in the input.
    pub fn is_last_prompt(&self, key: &PromptKey, prompt: &Prompt) -> bool {
        self.prompts.last.get(key) == Some(&fingerprint(prompt))
    }

    /// `prompt` was declared in `key`.
    pub fn prompt_declared(&mut self, key: PromptKey, prompt: &Prompt) {
        self.prompts.remember(key, fingerprint(prompt));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A prompt as it is remembered: a digest of its text (prompts may be
/// long), and its place in the input.
type Fingerprint = ([u8; 32], usize);

fn fingerprint(prompt: &Prompt) -> Fingerprint {
    (
        Sha256::digest(prompt.text.as_bytes()).into(),
        prompt.position,
    )
}

/// The last prompt of each conversation, at most [`MAX_PROMPTS`] of them.
#[derive(Debug, Default)]
struct Prompts {
    last: HashMap<PromptKey, Fingerprint>,
    /// Keys in the order they were first remembered.
    order: VecDeque<PromptKey>,
}

impl Prompts {
    fn remember(&mut self, key: PromptKey, fingerprint: Fingerprint) {
        if self.last.insert(key.clone(), fingerprint).is_none() {
            self.order.push_back(key);
            while self.order.len() > MAX_PROMPTS {
                if let Some(oldest) = self.order.pop_front() {
                    self.last.remove(&oldest);
                }
            }
        }
    }

    fn forget(&mut self, key: &PromptKey) {
        if self.last.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
#[path = "conversations_tests.rs"]
mod tests;
