//! Coding-agent hooks that declare tool calls: the agent runs
//! `agent-monitor hook …` around each tool call, with the call on stdin,
//! and the hook turns it into declarations on the socket
//! ([`crate::api::client`]), blocking the call when the policy denies it.
//!
//! - [`claude_code`]: Claude Code's command hooks (docs/claude-code.md):
//!   the payloads, parsed into [`claude_code::HookInput`], and what each
//!   one declares.
//! - [`ancestry`]: which process is the agent, found by walking up from the
//!   hook past the shells that ran it.
//! - [`fit`]: results and prompts cut to fit a request line.
//!
//! Requests are built as the protocol's types ([`crate::declare::Request`]),
//! which serialise to the wire form.

pub mod ancestry;
pub mod claude_code;
pub mod fit;

use std::io;

use serde_json::Value;

use crate::{
    api::client::{Client, ClientError},
    declare::Request,
};

/// Where declarations go: the socket's client, or a scripted monitor in
/// tests.
pub trait Monitor {
    /// Sends one request and returns its reply, an error when it is
    /// `ok: false`.
    fn request(&mut self, request: &Request) -> Result<Value, ClientError>;
}

impl Monitor for Client {
    fn request(&mut self, request: &Request) -> Result<Value, ClientError> {
        // The typed request serialises to its wire form.
        let line = serde_json::to_value(request).map_err(io::Error::from)?;
        Client::request(self, &line)
    }
}
