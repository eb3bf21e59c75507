//! The declaration socket: agents connect, and every request line goes to
//! the processing stage, whose [`crate::correlate::Correlator`] answers it.
//!
//! This module is the I/O around the sans-IO protocol of [`crate::declare`]:
//! it accepts connections, learns each peer from `SO_PEERCRED` and the
//! kernel's tracked-process map, frames lines, and applies the tool-call
//! slot an answer asks for to the kernel map *before* it writes the reply,
//! so that everything the agent does once it has its answer carries the
//! call.

pub mod client;
mod server;
mod servers;
mod socket;

pub use server::{Kernel, serve};
pub use servers::Servers;
pub use socket::{PrivateSocket, pattern as socket_pattern};

use tokio::sync::oneshot;

use crate::{
    correlate::{Now, Peer, SlotUpdate, Target},
    declare::{Envelope, Reply},
};

/// What the server asks of the processing stage.
// A request is the large variant, and the common one: one per line read,
// moved once through the channel. Boxing it would add an allocation to
// every declaration to shrink the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ApiMessage {
    /// A new connection, with who is on the other end.
    Connect { conn: u64, peer: Peer },
    /// A decoded request, stamped when its line was read.
    Request {
        conn: u64,
        envelope: Envelope,
        now: Now,
        /// The peer's tool-call slot as the kernel holds it now: a call
        /// declared from inside another call is confined to it.
        slot: u64,
        /// For a `tool.start` whose `pid` names another process: that
        /// process, as the kernel's map holds it now.
        target: Option<Target>,
        answer: oneshot::Sender<Answer>,
    },
    /// A line the decoder refused; its error reply is already written.
    Refused { conn: u64 },
    /// The connection closed; the calls it left open end.
    Disconnect {
        conn: u64,
        now: Now,
        answer: oneshot::Sender<Vec<SlotUpdate>>,
    },
}

/// The reply to write, and the slots to set first.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub slots: Vec<SlotUpdate>,
}
