//! Recognising one tool call declared by several adapters: Claude Code's
//! hook says `mcp__fs__read_file {"path":"/a"}`, the MCP proxy in front of
//! the `fs` server says `read_file {"path":"/a"}` a moment later, and an
//! OpenTelemetry span may say it again after the fact. They share no id
//! (MCP requests do not carry the model's `tool_use` id), so the name, the
//! arguments and the time decide; docs/protocol.md has the rules.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value};

use super::calls::Call;

/// How long after a call started another adapter's declaration of it may
/// come: the hook runs just before the client sends the MCP request.
pub const LINK_WINDOW_NS: u64 = 60_000_000_000;

/// How far a span's start may lie outside a call's run and still be it:
/// the agent's clock and the monitor's read the same host clock, but the
/// span starts around the call, not exactly at it.
const RETRO_SLACK_NS: u64 = 2_000_000_000;

/// A hash of a call's arguments. serde_json's maps are ordered by key, so
/// the same arguments hash the same whatever order they were sent in.
/// `DefaultHasher::new()` has fixed keys: the hash is the same in every
/// process, which only matters for tests, and it is not an input an agent
/// can use against us (an agent only links its own calls).
pub fn args_hash(args: &Map<String, Value>) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(args)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// Whether two adapters name the same tool: the same name, or Claude
/// Code's name for an MCP tool (`mcp__SERVER__TOOL`) and the server's own.
pub fn same_tool(a: &str, b: &str) -> bool {
    a == b || mcp_tool(a) == Some(b) || mcp_tool(b) == Some(a)
}

fn mcp_tool(name: &str) -> Option<&str> {
    name.strip_prefix("mcp__")?
        .split_once("__")
        .map(|(_, tool)| tool)
}

/// Whether a declaration that started at `started_ns` can be `call`: for a
/// live one, the call is open and began within [`LINK_WINDOW_NS`]; for one
/// made after the fact, its start falls within the call's run.
pub fn in_window(call: &Call, started_ns: u64, after_the_fact: bool) -> bool {
    if after_the_fact {
        let end = call.ended_ns.unwrap_or(u64::MAX);
        call.started_ns <= started_ns.saturating_add(RETRO_SLACK_NS)
            && started_ns <= end.saturating_add(RETRO_SLACK_NS)
    } else {
        call.ended_ns.is_none() && started_ns.saturating_sub(call.started_ns) <= LINK_WINDOW_NS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_code_names_mcp_tools_with_their_server() {
        assert!(same_tool("read_file", "read_file"));
        assert!(same_tool("mcp__fs__read_file", "read_file"));
        assert!(same_tool("read_file", "mcp__fs__read_file"));
        assert!(!same_tool("mcp__fs__read_file", "write_file"));
        assert!(!same_tool("mcp__fs", "fs"));
        assert!(!same_tool("Read", "read_file"));
    }

    #[test]
    fn argument_order_does_not_matter() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":[2,3]}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"b":[2,3],"a":1}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":[3,2]}"#).unwrap();
        assert_eq!(args_hash(&a), args_hash(&b));
        assert_ne!(args_hash(&a), args_hash(&c));
    }
}
