//! `agent-monitor mcp-proxy`: declarations from MCP traffic.
//!
//! The proxy stands between an MCP client and server, relays their
//! JSON-RPC unchanged, and declares every `tools/call` to the monitor as a
//! tool call bound to the server's process ([`declarer`]), before the
//! server sees it; the server's response ends it. [`gate`] decides what is
//! relayed, [`jsonrpc`] reads the messages, and [`stdio`] and [`http`] are
//! the two transports. docs/mcp.md describes the behaviour.

pub mod declarer;
pub mod framing;
pub mod gate;
pub mod http;
pub mod jsonrpc;
pub mod sse;
pub mod stdio;

#[cfg(test)]
mod fake_monitor;
#[cfg(test)]
mod framing_tests;
#[cfg(test)]
mod gate_tests;
#[cfg(test)]
mod jsonrpc_tests;
#[cfg(test)]
mod sse_tests;
#[cfg(test)]
mod stdio_tests;

use std::io;

/// How the proxy's lines on stderr begin.
pub const PREFIX: &str = "agent-monitor mcp-proxy";

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("no server command given: put it after `--`")]
    NoCommand,
    #[error("starting the server `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Stdio {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("{0}")]
    Io(#[source] io::Error),
}
