//! One human line per alert, for a terminal or the journal:
//! `agent-monitor: ALERT [high] undeclared: <message> (agent=…, session=…,
//! call=…, rule=…)`.

use std::io::{self, Write};

use crate::{
    alerts::{AlertSink, one_line},
    evidence::declared::AlertRow,
};

pub struct StderrAlerts<W: Write> {
    out: W,
}

impl StderrAlerts<io::Stderr> {
    pub fn stderr() -> StderrAlerts<io::Stderr> {
        StderrAlerts { out: io::stderr() }
    }
}

impl<W: Write> StderrAlerts<W> {
    pub fn new(out: W) -> StderrAlerts<W> {
        StderrAlerts { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// The line for `row`, without its newline. Fields that are absent are left
/// out, and the parentheses too when none is present. Every field is made
/// one-line safe: messages name paths and hosts the agent chose.
pub fn line(row: &AlertRow) -> String {
    let mut text = format!(
        "agent-monitor: ALERT [{}] {}: {}",
        one_line(&row.severity),
        one_line(&row.kind),
        one_line(&row.message)
    );
    let context: Vec<String> = [
        ("agent", &row.agent),
        ("session", &row.session_id),
        ("call", &row.tool_call_id),
        ("rule", &row.rule),
    ]
    .iter()
    .filter_map(|(label, value)| {
        value
            .as_deref()
            .map(|value| format!("{label}={}", one_line(value)))
    })
    .collect();
    if !context.is_empty() {
        text.push_str(&format!(" ({})", context.join(", ")));
    }
    text
}

impl<W: Write> AlertSink for StderrAlerts<W> {
    fn send(&mut self, row: &AlertRow) -> io::Result<()> {
        let mut text = line(row);
        text.push('\n');
        // One write per line, so lines from other threads do not interleave
        // with it.
        self.out.write_all(text.as_bytes())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn name(&self) -> String {
        "stderr".to_string()
    }
}

#[cfg(test)]
#[path = "stderr_tests.rs"]
mod tests;
