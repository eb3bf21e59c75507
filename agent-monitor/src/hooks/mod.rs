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

pub mod ancestry;
pub mod claude_code;
pub mod fit;

use serde_json::Value;

use crate::api::client::{Client, ClientError};

/// Where declarations go: the socket's client, or a scripted monitor in
/// tests.
pub trait Monitor {
    /// Sends one request and returns its reply, an error when it is
    /// `ok: false`.
    fn request(&mut self, request: &Value) -> Result<Value, ClientError>;
}

impl Monitor for Client {
    fn request(&mut self, request: &Value) -> Result<Value, ClientError> {
        Client::request(self, request)
    }
}
