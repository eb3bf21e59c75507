//! The JSON form of an alert, shared by the JSONL file and the webhook so
//! the two never drift apart: the row's fields, with `ts` in RFC 3339.

use serde::Serialize;

use crate::{evidence::declared::AlertRow, time::rfc3339};

#[derive(Serialize)]
struct AlertJson<'a> {
    ts: String,
    alert_id: &'a str,
    kind: &'a str,
    severity: &'a str,
    agent: Option<&'a str>,
    session_id: Option<&'a str>,
    tool_call_id: Option<&'a str>,
    event_seq: Option<u64>,
    process_key: Option<&'a str>,
    rule: Option<&'a str>,
    message: &'a str,
}

/// One JSON object, without a trailing newline. Absent fields are `null`
/// rather than left out, so every object has the same keys.
pub fn to_vec(row: &AlertRow) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&AlertJson {
        ts: rfc3339(i128::from(row.ts)),
        alert_id: &row.alert_id,
        kind: &row.kind,
        severity: &row.severity,
        agent: row.agent.as_deref(),
        session_id: row.session_id.as_deref(),
        tool_call_id: row.tool_call_id.as_deref(),
        event_seq: row.event_seq,
        process_key: row.process_key.as_deref(),
        rule: row.rule.as_deref(),
        message: &row.message,
    })
}
