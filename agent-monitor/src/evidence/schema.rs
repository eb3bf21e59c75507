//! The Arrow schema of every table, in one place. docs/evidence.md
//! describes each column.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn list_of(name: &str, item: DataType) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", item, true))),
        true,
    )
}

fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        nullable,
    )
}

/// `events`: every observed action, the event contract flattened. The
/// common columns are never null; the kind-specific ones are null where
/// they do not apply. The correlation columns stay null until correlation
/// fills them.
pub static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("seq", UInt64, false),
        timestamp("ts", false),
        Field::new("kind", Utf8, false),
        Field::new("agent", Utf8, false),
        Field::new("pid", UInt32, false),
        Field::new("ppid", UInt32, false),
        Field::new("tid", UInt32, false),
        Field::new("uid", UInt32, false),
        Field::new("comm", Utf8, false),
        text("exe"),
        Field::new("process_key", Utf8, false),
        text("syscall"),
        Field::new("result", Int64, true),
        text("error"),
        // process.exec
        text("filename"),
        list_of("argv", Utf8),
        Field::new("argv_truncated", Boolean, true),
        text("cwd"),
        // process.fork
        Field::new("child_pid", UInt32, true),
        text("child_process_key"),
        // process.exit (signal is shared with proc.signal)
        Field::new("exit_code", Int32, true),
        Field::new("signal", Int64, true),
        Field::new("core_dumped", Boolean, true),
        // files
        text("path"),
        text("raw_path"),
        text("new_path"),
        text("new_raw_path"),
        Field::new("flags", UInt64, true),
        Field::new("mode", UInt32, true),
        text("access"),
        Field::new("created", Boolean, true),
        Field::new("truncated", Boolean, true),
        Field::new("path_incomplete", Boolean, true),
        Field::new("symlink", Boolean, true),
        Field::new("owner_uid", Int64, true),
        Field::new("owner_gid", Int64, true),
        Field::new("length", Int64, true),
        // network and DNS
        text("family"),
        text("protocol"),
        text("addr"),
        Field::new("port", UInt16, true),
        text("unix_path"),
        text("local_addr"),
        Field::new("local_port", UInt16, true),
        text("dns_name"),
        text("name"),
        text("type"),
        list_of("answers", Utf8),
        // privilege and processes
        list_of("ids", Int64),
        list_of("caps", Utf8),
        Field::new("target_pid", Int64, true),
        Field::new("request", Int64, true),
        text("bpf_cmd"),
        Field::new("prog_type", UInt32, true),
        text("fstype"),
        // correlation, filled by the declared-tool-calls stage
        text("session_id"),
        text("tool_call_id"),
        text("verdict"),
        text("rule"),
    ]))
});

/// `processes`: one row per process of a tracked tree, written when it
/// exits, or when the run ends while it still runs (`exit` null).
pub static PROCESSES: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("process_key", Utf8, false),
        Field::new("pid", UInt32, false),
        text("parent_key"),
        Field::new("ppid", UInt32, false),
        Field::new("agent", Utf8, false),
        text("exe"),
        list_of("argv", Utf8),
        text("cwd"),
        Field::new("uid", UInt32, false),
        text("cgroup"),
        text("container_id"),
        text("exe_sha256"),
        timestamp("start", false),
        timestamp("exit", true),
        Field::new("exit_code", Int32, true),
        Field::new("signal", Int32, true),
    ]))
});

/// `gaps`: events the kernel could not deliver, per CPU and time range.
pub static GAPS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("lost", DataType::Utf8, false),
        Field::new("cause", DataType::Utf8, false),
        Field::new("cpu", DataType::UInt32, true),
        Field::new("count", DataType::UInt64, false),
        timestamp("since", false),
        timestamp("until", false),
    ]))
});

/// `sessions`: one row per agent session, written when it ends (or when
/// the monitor stops while it is open, `ended` null).
pub static SESSIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("session_id", Utf8, false),
        text("parent_session_id"),
        Field::new("agent", Utf8, false),
        text("task"),
        text("user"),
        Field::new("source", Utf8, false),
        Field::new("host", Utf8, false),
        timestamp("started", false),
        timestamp("ended", true),
        text("root_process_key"),
        Field::new("pid", UInt32, true),
        Field::new("uid", UInt32, true),
        text("cgroup"),
        text("container_id"),
        text("exe_sha256"),
        text("spiffe_id"),
    ]))
});

/// `messages`: prompts and model outputs, as the capture policy keeps them.
pub static MESSAGES: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("session_id", Utf8, false),
        timestamp("ts", false),
        Field::new("role", Utf8, false),
        text("text"),
        Field::new("capture", Utf8, false),
        list_of("redacted", Utf8),
        list_of("tool_call_ids", Utf8),
    ]))
});

/// `tool_calls`: one row per declared tool call, written when it ends.
pub static TOOL_CALLS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        Field::new("session_id", Utf8, false),
        Field::new("call_id", Utf8, false),
        Field::new("tool", Utf8, false),
        text("args"),
        text("effects"),
        timestamp("started", false),
        timestamp("ended", true),
        Field::new("status", Utf8, false),
        text("result"),
        text("decision"),
        text("rule"),
        text("reason"),
        text("declared_by"),
        Field::new("source", Utf8, false),
        text("tool_use_id"),
        text("mcp_request_id"),
        text("otel_span_id"),
        Field::new("events", UInt64, false),
        list_of("effects_seen", Utf8),
        list_of("declared_unseen", Utf8),
        list_of("undeclared_effects", Utf8),
        Field::new("undeclared_events", UInt64, false),
        Field::new("summary_cut", UInt64, false),
        Field::new("events_lost", Boolean, false),
        Field::new("ran_despite_deny", Boolean, false),
    ]))
});

/// `decisions`: every policy decision on a declared tool call.
pub static DECISIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        timestamp("ts", false),
        Field::new("session_id", Utf8, false),
        Field::new("call_id", Utf8, false),
        Field::new("decision", Utf8, false),
        text("rule"),
        text("reason"),
        text("policy_sha256"),
    ]))
});

/// `alerts`: actions no declaration or baseline covers, refused
/// declarations, and the monitor's own alarms.
pub static ALERTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    use DataType::*;
    Arc::new(Schema::new(vec![
        timestamp("ts", false),
        Field::new("alert_id", Utf8, false),
        Field::new("kind", Utf8, false),
        Field::new("severity", Utf8, false),
        text("agent"),
        text("session_id"),
        text("tool_call_id"),
        Field::new("event_seq", UInt64, true),
        text("process_key"),
        text("rule"),
        Field::new("message", Utf8, false),
    ]))
});

/// The schema of a table, by its name.
pub fn of_table(table: &str) -> Option<SchemaRef> {
    let schema = match table {
        "events" => &EVENTS,
        "processes" => &PROCESSES,
        "gaps" => &GAPS,
        "sessions" => &SESSIONS,
        "messages" => &MESSAGES,
        "tool_calls" => &TOOL_CALLS,
        "decisions" => &DECISIONS,
        "alerts" => &ALERTS,
        _ => return None,
    };
    Some(LazyLock::force(schema).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_table_has_a_schema() {
        for table in crate::evidence::publish::TABLES {
            assert!(of_table(table).is_some(), "{table}");
        }
    }

    #[test]
    fn column_names_are_unique() {
        for schema in [
            &*EVENTS,
            &*PROCESSES,
            &*GAPS,
            &*SESSIONS,
            &*MESSAGES,
            &*TOOL_CALLS,
            &*DECISIONS,
            &*ALERTS,
        ] {
            let mut names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), count);
        }
    }
}
