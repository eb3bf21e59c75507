//! Rows of the agent-side tables: what agents declare (sessions, prompts
//! and model outputs, tool calls), the policy's decisions, and alerts.
//! Their volume is a small fraction of the events', so each is a plain
//! struct turned into a batch when journaled.
//!
//! Text fields arrive here already shaped by the capture policy
//! ([`crate::capture`]): nothing in this module sees a secret.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
    UInt64Array,
    builder::{ListBuilder, StringBuilder},
};
use arrow_schema::SchemaRef;

use crate::evidence::{EvidenceError, schema};

/// Wall-clock nanoseconds since the Unix epoch.
pub type WallNs = i64;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionRow {
    pub session_id: String,
    pub parent_session_id: Option<String>,
    pub agent: String,
    pub task: Option<String>,
    pub user: Option<String>,
    /// How the session was declared: `run`, `api`, `mcp`, `hook`, `otel`.
    pub source: String,
    pub host: String,
    pub started: WallNs,
    pub ended: Option<WallNs>,
    pub root_process_key: Option<String>,
    pub pid: Option<u32>,
    pub uid: Option<u32>,
    pub cgroup: Option<String>,
    pub container_id: Option<String>,
    pub exe_sha256: Option<String>,
    pub spiffe_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MessageRow {
    pub session_id: String,
    pub ts: WallNs,
    /// `prompt` or `model_output`.
    pub role: String,
    pub text: Option<String>,
    /// The capture policy applied to `text`.
    pub capture: String,
    /// Detector kinds whose matches were replaced.
    pub redacted: Vec<String>,
    pub tool_call_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ToolCallRow {
    pub session_id: String,
    pub call_id: String,
    pub tool: String,
    /// JSON, as the capture policy keeps it.
    pub args: Option<String>,
    /// The declared effects envelope, JSON.
    pub effects: Option<String>,
    pub started: WallNs,
    pub ended: Option<WallNs>,
    /// `open`, `ok` or `error`.
    pub status: String,
    pub result: Option<String>,
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// Process key of the peer that declared it.
    pub declared_by: Option<String>,
    pub source: String,
    pub tool_use_id: Option<String>,
    pub mcp_request_id: Option<String>,
    pub otel_span_id: Option<String>,
    /// The summary, once the call is over: events attributed to it.
    pub events: u64,
    /// Distinct effects seen (`kind resource`), at most 256.
    pub effects_seen: Vec<String>,
    /// Concrete resources the envelope named (`kind pattern`, no
    /// wildcard) that no effect touched.
    pub declared_unseen: Vec<String>,
    /// Distinct effects nothing covered.
    pub undeclared_effects: Vec<String>,
    pub undeclared_events: u64,
    /// Distinct effects left out of the lists, past their bound.
    pub summary_cut: u64,
    /// Events were lost while the call ran: the summary may be incomplete.
    pub events_lost: bool,
    /// The call was denied, and actions were seen under it anyway.
    pub ran_despite_deny: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecisionRow {
    pub ts: WallNs,
    pub session_id: String,
    pub call_id: String,
    /// `allow` or `deny`.
    pub decision: String,
    pub rule: Option<String>,
    pub reason: Option<String>,
    pub policy_sha256: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct AlertRow {
    pub ts: WallNs,
    pub alert_id: String,
    pub kind: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub agent: Option<String>,
    pub session_id: Option<String>,
    pub tool_call_id: Option<String>,
    pub event_seq: Option<u64>,
    pub process_key: Option<String>,
    pub rule: Option<String>,
    pub message: String,
}

/// One agent-side record, on its way to its table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Declared {
    Session(SessionRow),
    Message(MessageRow),
    ToolCall(ToolCallRow),
    Decision(DecisionRow),
    Alert(AlertRow),
}

impl Declared {
    pub fn table(&self) -> &'static str {
        match self {
            Declared::Session(_) => "sessions",
            Declared::Message(_) => "messages",
            Declared::ToolCall(_) => "tool_calls",
            Declared::Decision(_) => "decisions",
            Declared::Alert(_) => "alerts",
        }
    }
}

fn text<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn required<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn times(values: impl Iterator<Item = Option<WallNs>>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter(values).with_timezone("UTC"))
}

fn lists<'a>(values: impl Iterator<Item = &'a [String]>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new());
    for items in values {
        for item in items {
            builder.values().append_value(item);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch, EvidenceError> {
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

pub fn sessions_batch(rows: &[SessionRow]) -> Result<RecordBatch, EvidenceError> {
    batch(
        &schema::SESSIONS,
        vec![
            required(rows.iter().map(|r| r.session_id.as_str())),
            text(rows.iter().map(|r| r.parent_session_id.as_deref())),
            required(rows.iter().map(|r| r.agent.as_str())),
            text(rows.iter().map(|r| r.task.as_deref())),
            text(rows.iter().map(|r| r.user.as_deref())),
            required(rows.iter().map(|r| r.source.as_str())),
            required(rows.iter().map(|r| r.host.as_str())),
            times(rows.iter().map(|r| Some(r.started))),
            times(rows.iter().map(|r| r.ended)),
            text(rows.iter().map(|r| r.root_process_key.as_deref())),
            Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.pid))),
            Arc::new(UInt32Array::from_iter(rows.iter().map(|r| r.uid))),
            text(rows.iter().map(|r| r.cgroup.as_deref())),
            text(rows.iter().map(|r| r.container_id.as_deref())),
            text(rows.iter().map(|r| r.exe_sha256.as_deref())),
            text(rows.iter().map(|r| r.spiffe_id.as_deref())),
        ],
    )
}

pub fn messages_batch(rows: &[MessageRow]) -> Result<RecordBatch, EvidenceError> {
    batch(
        &schema::MESSAGES,
        vec![
            required(rows.iter().map(|r| r.session_id.as_str())),
            times(rows.iter().map(|r| Some(r.ts))),
            required(rows.iter().map(|r| r.role.as_str())),
            text(rows.iter().map(|r| r.text.as_deref())),
            required(rows.iter().map(|r| r.capture.as_str())),
            lists(rows.iter().map(|r| r.redacted.as_slice())),
            lists(rows.iter().map(|r| r.tool_call_ids.as_slice())),
        ],
    )
}

pub fn tool_calls_batch(rows: &[ToolCallRow]) -> Result<RecordBatch, EvidenceError> {
    batch(
        &schema::TOOL_CALLS,
        vec![
            required(rows.iter().map(|r| r.session_id.as_str())),
            required(rows.iter().map(|r| r.call_id.as_str())),
            required(rows.iter().map(|r| r.tool.as_str())),
            text(rows.iter().map(|r| r.args.as_deref())),
            text(rows.iter().map(|r| r.effects.as_deref())),
            times(rows.iter().map(|r| Some(r.started))),
            times(rows.iter().map(|r| r.ended)),
            required(rows.iter().map(|r| r.status.as_str())),
            text(rows.iter().map(|r| r.result.as_deref())),
            text(rows.iter().map(|r| r.decision.as_deref())),
            text(rows.iter().map(|r| r.rule.as_deref())),
            text(rows.iter().map(|r| r.reason.as_deref())),
            text(rows.iter().map(|r| r.declared_by.as_deref())),
            required(rows.iter().map(|r| r.source.as_str())),
            text(rows.iter().map(|r| r.tool_use_id.as_deref())),
            text(rows.iter().map(|r| r.mcp_request_id.as_deref())),
            text(rows.iter().map(|r| r.otel_span_id.as_deref())),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.events))),
            lists(rows.iter().map(|r| r.effects_seen.as_slice())),
            lists(rows.iter().map(|r| r.declared_unseen.as_slice())),
            lists(rows.iter().map(|r| r.undeclared_effects.as_slice())),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.undeclared_events),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.summary_cut),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.events_lost)),
            )),
            Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.ran_despite_deny)),
            )),
        ],
    )
}

pub fn decisions_batch(rows: &[DecisionRow]) -> Result<RecordBatch, EvidenceError> {
    batch(
        &schema::DECISIONS,
        vec![
            times(rows.iter().map(|r| Some(r.ts))),
            required(rows.iter().map(|r| r.session_id.as_str())),
            required(rows.iter().map(|r| r.call_id.as_str())),
            required(rows.iter().map(|r| r.decision.as_str())),
            text(rows.iter().map(|r| r.rule.as_deref())),
            text(rows.iter().map(|r| r.reason.as_deref())),
            text(rows.iter().map(|r| r.policy_sha256.as_deref())),
        ],
    )
}

pub fn alerts_batch(rows: &[AlertRow]) -> Result<RecordBatch, EvidenceError> {
    batch(
        &schema::ALERTS,
        vec![
            times(rows.iter().map(|r| Some(r.ts))),
            required(rows.iter().map(|r| r.alert_id.as_str())),
            required(rows.iter().map(|r| r.kind.as_str())),
            required(rows.iter().map(|r| r.severity.as_str())),
            text(rows.iter().map(|r| r.agent.as_deref())),
            text(rows.iter().map(|r| r.session_id.as_deref())),
            text(rows.iter().map(|r| r.tool_call_id.as_deref())),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.event_seq))),
            text(rows.iter().map(|r| r.process_key.as_deref())),
            text(rows.iter().map(|r| r.rule.as_deref())),
            required(rows.iter().map(|r| r.message.as_str())),
        ],
    )
}

/// Records waiting to be journaled, one list per table.
#[derive(Debug, Default)]
pub struct DeclaredBuffer {
    pub sessions: Vec<SessionRow>,
    pub messages: Vec<MessageRow>,
    pub tool_calls: Vec<ToolCallRow>,
    pub decisions: Vec<DecisionRow>,
    pub alerts: Vec<AlertRow>,
}

impl DeclaredBuffer {
    pub fn push(&mut self, record: Declared) {
        match record {
            Declared::Session(row) => self.sessions.push(row),
            Declared::Message(row) => self.messages.push(row),
            Declared::ToolCall(row) => self.tool_calls.push(row),
            Declared::Decision(row) => self.decisions.push(row),
            Declared::Alert(row) => self.alerts.push(row),
        }
    }

    /// Each non-empty table's batch. The buffer keeps
    /// its rows until [`DeclaredBuffer::clear`] says they were journaled.
    pub fn batches(&self) -> Result<Vec<(&'static str, RecordBatch)>, EvidenceError> {
        let mut out = Vec::new();
        if !self.sessions.is_empty() {
            out.push(("sessions", sessions_batch(&self.sessions)?));
        }
        if !self.messages.is_empty() {
            out.push(("messages", messages_batch(&self.messages)?));
        }
        if !self.tool_calls.is_empty() {
            out.push(("tool_calls", tool_calls_batch(&self.tool_calls)?));
        }
        if !self.decisions.is_empty() {
            out.push(("decisions", decisions_batch(&self.decisions)?));
        }
        if !self.alerts.is_empty() {
            out.push(("alerts", alerts_batch(&self.alerts)?));
        }
        Ok(out)
    }

    /// Forgets one table's rows, once journaled.
    pub fn clear(&mut self, table: &str) {
        match table {
            "sessions" => self.sessions.clear(),
            "messages" => self.messages.clear(),
            "tool_calls" => self.tool_calls.clear(),
            "decisions" => self.decisions.clear(),
            "alerts" => self.alerts.clear(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_builds_a_batch_matching_its_schema() {
        let mut buffer = DeclaredBuffer::default();
        buffer.push(Declared::Session(SessionRow {
            session_id: "s".into(),
            agent: "a".into(),
            source: "run".into(),
            host: "h".into(),
            started: 1,
            ..SessionRow::default()
        }));
        buffer.push(Declared::Message(MessageRow {
            session_id: "s".into(),
            role: "prompt".into(),
            capture: "redact".into(),
            redacted: vec!["aws_access_key".into()],
            ..MessageRow::default()
        }));
        buffer.push(Declared::ToolCall(ToolCallRow {
            session_id: "s".into(),
            call_id: "c".into(),
            tool: "bash".into(),
            status: "ok".into(),
            source: "api".into(),
            ..ToolCallRow::default()
        }));
        buffer.push(Declared::Decision(DecisionRow {
            session_id: "s".into(),
            call_id: "c".into(),
            decision: "allow".into(),
            ..DecisionRow::default()
        }));
        buffer.push(Declared::Alert(AlertRow {
            alert_id: "x".into(),
            kind: "undeclared_action".into(),
            severity: "high".into(),
            event_seq: Some(7),
            message: "m".into(),
            ..AlertRow::default()
        }));
        let batches = buffer.batches().unwrap();
        let tables: Vec<&str> = batches.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            tables,
            ["sessions", "messages", "tool_calls", "decisions", "alerts"]
        );
        for (table, batch) in &batches {
            assert_eq!(batch.num_rows(), 1, "{table}");
        }
        for table in tables {
            buffer.clear(table);
        }
        assert!(buffer.batches().unwrap().is_empty());
    }
}
