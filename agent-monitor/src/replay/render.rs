//! The replay report as text for people: a one-line summary first, then
//! the sections, each list cut at [`MAX_LINES`].

use std::fmt::Write as _;

use super::report::ReplayReport;
use crate::time::rfc3339;

/// Most lines a list shows; the rest are counted.
pub const MAX_LINES: usize = 200;

pub fn render(report: &ReplayReport) -> String {
    let mut out = String::new();
    summary(&mut out, report);
    policies(&mut out, report);
    notes(&mut out, report);

    let _ = writeln!(out, "\nverdicts (old → new):");
    if report.transitions.is_empty() {
        let _ = writeln!(out, "  no events");
    }
    for t in &report.transitions {
        let _ = writeln!(out, "  {:<12} → {:<12} {:>9}", t.old, t.new, t.events);
    }

    calls(&mut out, report);

    let _ = writeln!(
        out,
        "\nalerts the policy would raise: {} ({} not raised at the time)",
        report.alerts_total, report.alerts_new
    );
    list(&mut out, report.alerts_total, report.alerts.iter(), |a| {
        let mut line = format!(
            "[{}] {} {} seq {}{}{}: {}",
            a.severity,
            a.kind,
            rfc3339(i128::from(a.ts)),
            a.seq,
            opt(" session ", &a.session_id),
            opt(" call ", &a.tool_call_id),
            a.message
        );
        if let Some(rule) = &a.rule {
            let _ = write!(line, " (rule {rule})");
        }
        if !a.recorded {
            line.push_str(" [new]");
        }
        line
    });

    let _ = writeln!(out, "\nverdicts changed: {}", report.changes_total);
    list(&mut out, report.changes_total, report.changes.iter(), |c| {
        format!(
            "{} seq {}{}{} {}: {}: {} → {}",
            rfc3339(i128::from(c.ts)),
            c.seq,
            opt(" session ", &c.session_id),
            opt(" call ", &c.tool_call_id),
            c.kind,
            c.effect,
            verdict(c.old_verdict.as_deref(), c.old_rule.as_deref()),
            verdict(Some(&c.new_verdict), c.new_rule.as_deref()),
        )
    });
    out.truncate(out.trim_end().len());
    out
}

fn summary(out: &mut String, r: &ReplayReport) {
    let _ = writeln!(
        out,
        "replay of {} under policy `{}`: {} events, {} verdicts changed, {} now undeclared, \
         {} alerts ({} new), {} of {} decisions flip",
        r.dir.display(),
        r.policy_name,
        r.events,
        r.changes_total,
        r.undeclared(),
        r.alerts_total,
        r.alerts_new,
        r.flips.len(),
        r.calls,
    );
}

fn policies(out: &mut String, r: &ReplayReport) {
    let _ = writeln!(out, "\npolicy sha256: {}", r.policy_sha256);
    if r.recorded_policies.is_empty() {
        let _ = writeln!(out, "recorded decisions: none");
    }
    for (sha, n) in &r.recorded_policies {
        let same = if *sha == r.policy_sha256 {
            " (the replayed policy)"
        } else {
            " (another policy)"
        };
        let sha = if sha.is_empty() {
            "(none recorded)"
        } else {
            sha
        };
        let _ = writeln!(out, "recorded decisions: {n} by policy {sha}{same}");
    }
}

fn notes(out: &mut String, r: &ReplayReport) {
    let mut notes = Vec::new();
    for table in &r.missing_tables {
        notes.push(format!("the store has no `{table}` table: read as empty"));
    }
    if r.unpublished_segments > 0 {
        notes.push(format!(
            "{} journal segments are not published and not replayed: run `agent-monitor recover {}` first",
            r.unpublished_segments,
            r.dir.display()
        ));
    }
    for (why, n) in &r.kept {
        notes.push(format!("{n} events kept as recorded ({why})"));
    }
    if !r.unreadable_calls.is_empty() {
        notes.push(format!(
            "{} tool calls have unreadable args: they cover nothing in this replay",
            r.unreadable_calls.len()
        ));
    }
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nnotes:");
    for note in notes {
        let _ = writeln!(out, "  {note}");
    }
}

fn calls(out: &mut String, r: &ReplayReport) {
    let _ = writeln!(
        out,
        "\ntool calls: {}, {} decided again, {} with unreadable args",
        r.calls,
        r.calls - r.unreadable_calls.len() as u64,
        r.unreadable_calls.len()
    );
    let n = r.unreadable_calls.len() as u64;
    list(out, n, r.unreadable_calls.iter(), |c| {
        format!(
            "args unreadable: session {} call {} ({}): {}; judged with an empty envelope",
            c.session_id, c.call_id, c.tool, c.why
        )
    });
    let _ = writeln!(out, "\ndecisions that flip: {}", r.flips.len());
    list(out, r.flips.len() as u64, r.flips.iter(), |f| {
        format!(
            "session {} call {} ({}): {} → {} by {}: {}",
            f.session_id,
            f.call_id,
            f.tool,
            verdict(Some(&f.old), f.old_rule.as_deref()),
            f.new,
            f.new_rule,
            f.reason
        )
    });
}

/// Up to [`MAX_LINES`] lines of `items`, then how many more there are.
fn list<T>(
    out: &mut String,
    total: u64,
    items: impl Iterator<Item = T>,
    line: impl Fn(T) -> String,
) {
    let mut shown = 0u64;
    for item in items.take(MAX_LINES) {
        let _ = writeln!(out, "  {}", line(item));
        shown += 1;
    }
    if total > shown {
        let _ = writeln!(out, "  … and {} more", total - shown);
    }
}

fn opt(label: &str, value: &Option<String>) -> String {
    value
        .as_deref()
        .map_or(String::new(), |v| format!("{label}{v}"))
}

/// `declared (tools.read_file)`, `none`.
fn verdict(verdict: Option<&str>, rule: Option<&str>) -> String {
    let verdict = verdict.unwrap_or("none");
    match rule {
        Some(rule) => format!("{verdict} ({rule})"),
        None => verdict.to_string(),
    }
}
