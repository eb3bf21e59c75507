//! agent-monitor: watches AI agents from the kernel and keeps the evidence of
//! what they did.
//!
//! Data flows one way: the kernel ring buffer ([`kernel::ring`]) → decoding
//! ([`decode`]) → the process table ([`process_table`]) in the processing
//! stage ([`pipeline`]) → sinks ([`sink`]). Every stage after the reader
//! works on plain values and is tested without the kernel.

pub mod actions;
pub mod admission;
pub mod alerts;
pub mod api;
pub mod capture;
pub mod comm;
pub mod config;
pub mod correlate;
pub mod daemon;
pub mod declare;
pub mod decode;
pub mod discovery;
pub mod dns_cache;
pub mod error;
pub mod event;
pub mod evidence;
pub mod hooks;
pub mod identity;
pub mod install;
pub mod kernel;
pub mod keyfile;
pub mod learn;
pub mod mcp;
pub mod memory;
pub mod otlp;
pub mod pipeline;
pub mod policy;
pub mod proc_net;
pub mod process_table;
pub mod random;
pub mod replay;
pub mod run;
pub mod sink;
pub mod summary;
#[cfg(test)]
pub(crate) mod test_support;
pub mod time;

pub use error::{Error, Result};
