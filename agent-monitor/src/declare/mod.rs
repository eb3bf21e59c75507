//! The declaration protocol, without I/O: agents say what they are doing
//! (sessions, prompts, model outputs, tool calls) so that the monitor can
//! match what the kernel sees against it. docs/protocol.md is the contract;
//! this is its code.
//!
//! In brief: a Unix stream socket carries newline-delimited JSON, one
//! request per line and exactly one reply line per request, in order. The
//! peer is identified by `SO_PEERCRED` (the server's job, not this
//! module's): it declares for the agent whose process tree it belongs to,
//! and only root may name another with `"agent"`.
//!
//! The parts, in the order a request meets them:
//! - [`LineSplitter`] frames the byte stream into lines, at most
//!   [`MAX_LINE`] bytes each, with memory bounded by that limit;
//! - [`decode`] turns a line into an [`Envelope`] or a [`ProtocolError`]
//!   with a stable code;
//! - [`Reply`] is the answer, written with [`Reply::to_line`].
//!
//! A bad line costs only its own error reply: the connection, and whatever
//! was declared before, are unaffected.

mod error;
mod lines;
mod message;
mod parse;
mod reply;

pub use error::ProtocolError;
pub use lines::{LineSplitter, MAX_LINE, Oversize};
pub use message::{
    EffectKind, Effects, Envelope, Links, MAX_IDENT, MAX_PATTERN_LEN, MAX_PATTERNS, ModelOutput,
    PlannedCall, Register, Request, SessionStart, Source, Status, ToolEnd, ToolStart,
};
pub use parse::{Rejected, decode, decode_with_id};
pub use reply::{Decision, Reply, code};

#[cfg(test)]
mod decode_errors_tests;
#[cfg(test)]
mod docs_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod lines_tests;
#[cfg(test)]
mod message_tests;
#[cfg(test)]
mod reply_tests;
