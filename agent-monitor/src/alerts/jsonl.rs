//! Alerts appended to a file, one JSON object per line.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use crate::{
    alerts::{AlertSink, json},
    evidence::declared::AlertRow,
};

pub struct JsonlAlerts<W: Write> {
    out: W,
    name: String,
    /// Reused for each line, so a line goes out in one write.
    line: Vec<u8>,
}

impl JsonlAlerts<File> {
    /// Opens `path` for appending, creating it if needed: restarts add to
    /// the file rather than replace what earlier runs alerted.
    pub fn create(path: &Path) -> io::Result<JsonlAlerts<File>> {
        // Alerts name what agents touched: readable by the monitor's user
        // only, like the evidence.
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(JsonlAlerts {
            out: file,
            name: format!("jsonl {}", path.display()),
            line: Vec::new(),
        })
    }
}

impl<W: Write> JsonlAlerts<W> {
    pub fn new(out: W) -> JsonlAlerts<W> {
        JsonlAlerts {
            out,
            name: "jsonl".to_string(),
            line: Vec::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> AlertSink for JsonlAlerts<W> {
    /// Unbuffered on purpose: alerts are few (rate-limited), and whoever
    /// tails the file should see each at once. One `write_all` of the whole
    /// line keeps lines whole in an O_APPEND file shared with other writers.
    fn send(&mut self, row: &AlertRow) -> io::Result<()> {
        self.line.clear();
        self.line
            .extend(json::to_vec(row).map_err(io::Error::other)?);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
#[path = "jsonl_tests.rs"]
mod tests;
