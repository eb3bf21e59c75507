//! Small evidence stores for tests, written as the monitor writes them:
//! Parquet files with the real schemas, at `<table>/date=…/hour=…/`.

use std::{path::Path, sync::Arc};

use arrow_array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array, UInt64Array,
    builder::{Int64Builder, ListBuilder, StringBuilder},
};
use arrow_schema::{DataType, SchemaRef};
use parquet::arrow::ArrowWriter;
use tempfile::TempDir;

use crate::evidence::{
    declared::{self, DecisionRow, SessionRow, ToolCallRow},
    schema,
};

/// A column value.
#[derive(Clone, Debug)]
pub(crate) enum V {
    S(String),
    U(u64),
    I(i64),
    B(bool),
}

impl From<&str> for V {
    fn from(s: &str) -> V {
        V::S(s.to_string())
    }
}
impl From<String> for V {
    fn from(s: String) -> V {
        V::S(s)
    }
}
impl From<u16> for V {
    fn from(n: u16) -> V {
        V::U(n.into())
    }
}
impl From<u32> for V {
    fn from(n: u32) -> V {
        V::U(n.into())
    }
}
impl From<u64> for V {
    fn from(n: u64) -> V {
        V::U(n)
    }
}
impl From<i64> for V {
    fn from(n: i64) -> V {
        V::I(n)
    }
}
impl From<bool> for V {
    fn from(b: bool) -> V {
        V::B(b)
    }
}

/// One row: values by column name; every other column null (or zero,
/// or empty, where the schema forbids null).
#[derive(Clone, Debug, Default)]
pub(crate) struct Row(Vec<(&'static str, V)>);

impl Row {
    pub fn set(mut self, column: &'static str, value: impl Into<V>) -> Row {
        self.0.retain(|(c, _)| *c != column);
        self.0.push((column, value.into()));
        self
    }

    fn get(&self, column: &str) -> Option<&V> {
        self.0.iter().find(|(c, _)| *c == column).map(|(_, v)| v)
    }
}

/// An event of process `100@1` (pid 100, `agent`) in session `s1`.
pub(crate) fn event(seq: u64, ts: i64, kind: &str) -> Row {
    Row::default()
        .set("seq", seq)
        .set("ts", ts)
        .set("kind", kind)
        .set("agent", "a")
        .set("pid", 100u32)
        .set("comm", "agent")
        .set("process_key", "100@1")
        .set("session_id", "s1")
}

/// A call of session `s1`, allowed at the time under `rule`.
pub(crate) fn call(id: &str, tool: &str, args: &str, started: i64, ended: i64) -> ToolCallRow {
    ToolCallRow {
        session_id: "s1".into(),
        call_id: id.into(),
        tool: tool.into(),
        args: Some(args.into()),
        started,
        ended: Some(ended),
        status: "ok".into(),
        decision: Some("allow".into()),
        rule: Some(format!("tools.{tool}")),
        source: "api".into(),
        ..ToolCallRow::default()
    }
}

/// Session `s1`, root process `100@1` working in `/work/proj`.
pub(crate) fn session(store: &mut Fixture) {
    session_of(store, "s1", "run", 0, "100@1", "/work/proj");
}

/// Session `id` of agent `a`, declared by `source` at `started`, its
/// root process `root` (`pid@start`) working in `cwd`.
pub(crate) fn session_of(
    store: &mut Fixture,
    id: &str,
    source: &str,
    started: i64,
    root: &str,
    cwd: &str,
) {
    let pid: u32 = root
        .split('@')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid@start");
    store.sessions(&[SessionRow {
        session_id: id.into(),
        agent: "a".into(),
        source: source.into(),
        host: "h".into(),
        started,
        root_process_key: Some(root.into()),
        pid: Some(pid),
        ..SessionRow::default()
    }]);
    store.rows(
        "processes",
        &[Row::default()
            .set("process_key", root)
            .set("pid", pid)
            .set("agent", "a")
            .set("cwd", cwd)],
    );
}

/// A batch of `schema` from rows.
pub(crate) fn batch(schema: &SchemaRef, rows: &[Row]) -> RecordBatch {
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let name = field.name().as_str();
            let values = rows.iter().map(|r| r.get(name));
            let zero = !field.is_nullable();
            let text = |v: Option<&V>| match v {
                Some(V::S(s)) => Some(s.clone()),
                None if zero => Some(String::new()),
                _ => None,
            };
            let unsigned = |v: Option<&V>| match v {
                Some(V::U(n)) => Some(*n),
                None if zero => Some(0),
                _ => None,
            };
            let signed = |v: Option<&V>| match v {
                Some(V::I(n)) => Some(*n),
                Some(V::U(n)) => Some(*n as i64),
                None if zero => Some(0),
                _ => None,
            };
            let flag = |v: Option<&V>| match v {
                Some(V::B(b)) => Some(*b),
                None if zero => Some(false),
                _ => None,
            };
            let array: ArrayRef = match field.data_type() {
                DataType::Utf8 => Arc::new(StringArray::from_iter(values.map(text))),
                DataType::UInt64 => Arc::new(UInt64Array::from_iter(values.map(unsigned))),
                DataType::UInt32 => Arc::new(UInt32Array::from_iter(
                    values.map(|v| unsigned(v).map(|n| n as u32)),
                )),
                DataType::UInt16 => Arc::new(UInt16Array::from_iter(
                    values.map(|v| unsigned(v).map(|n| n as u16)),
                )),
                DataType::Int64 => Arc::new(Int64Array::from_iter(values.map(signed))),
                DataType::Int32 => Arc::new(Int32Array::from_iter(
                    values.map(|v| signed(v).map(|n| n as i32)),
                )),
                DataType::Boolean => Arc::new(BooleanArray::from_iter(values.map(flag))),
                DataType::Timestamp(_, _) => Arc::new(
                    TimestampNanosecondArray::from_iter(values.map(signed)).with_timezone("UTC"),
                ),
                DataType::List(item) if item.data_type() == &DataType::Int64 => {
                    let mut b = ListBuilder::new(Int64Builder::new());
                    rows.iter().for_each(|_| b.append_null());
                    Arc::new(b.finish())
                }
                DataType::List(_) => {
                    let mut b = ListBuilder::new(StringBuilder::new());
                    rows.iter().for_each(|_| b.append_null());
                    Arc::new(b.finish())
                }
                other => panic!("fixture: no builder for {other}"),
            };
            array
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).expect("fixture batch matches its schema")
}

/// An evidence store in a temporary directory.
pub(crate) struct Fixture {
    pub dir: TempDir,
    files: usize,
}

impl Fixture {
    /// A store with a `chain.log` and no tables yet.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("chain.log"), "").expect("chain.log");
        Fixture { dir, files: 0 }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes one Parquet file of `table`.
    pub fn write(&mut self, table: &str, batch: &RecordBatch) {
        let dir = self
            .dir
            .path()
            .join(table)
            .join("date=2026-01-01")
            .join("hour=00");
        std::fs::create_dir_all(&dir).expect("partition directory");
        self.files += 1;
        let path = dir.join(format!("test-{table}-{}.parquet", self.files));
        let file = std::fs::File::create(&path).expect("parquet file");
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
        writer.write(batch).expect("write batch");
        writer.close().expect("close");
    }

    pub fn rows(&mut self, table: &str, rows: &[Row]) {
        let schema = schema::of_table(table).expect("a table with a schema");
        self.write(table, &batch(&schema, rows));
    }

    pub fn events(&mut self, rows: &[Row]) {
        self.rows("events", rows);
    }

    pub fn sessions(&mut self, rows: &[SessionRow]) {
        self.write(
            "sessions",
            &declared::sessions_batch(rows).expect("sessions"),
        );
    }

    pub fn tool_calls(&mut self, rows: &[ToolCallRow]) {
        let batch = declared::tool_calls_batch(rows).expect("tool calls");
        self.write("tool_calls", &batch);
    }

    pub fn decisions(&mut self, rows: &[DecisionRow]) {
        self.write(
            "decisions",
            &declared::decisions_batch(rows).expect("decisions"),
        );
    }

    /// Every table the monitor writes, empty, as a closed store has them.
    pub fn empty_tables(&mut self) {
        for table in crate::evidence::publish::TABLES {
            let schema = schema::of_table(table).expect("schema");
            self.write(table, &RecordBatch::new_empty(schema));
        }
    }
}
