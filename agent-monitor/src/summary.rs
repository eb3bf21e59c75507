//! The short end-of-run report on stderr.

use std::fmt::Write as _;

use crate::run::RunReport;

/// The summary lines, without a trailing newline.
pub fn render(report: &RunReport) -> String {
    let stats = &report.stats;
    let mut out = String::new();
    let by_kind: Vec<String> = stats
        .events_by_kind
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let _ = write!(
        out,
        "agent-monitor: agent {:?}: {} processes, {} events ({}), {} lost",
        report.agent,
        report.processes,
        stats.events(),
        if by_kind.is_empty() {
            "none".to_string()
        } else {
            by_kind.join(", ")
        },
        stats.lost(),
    );
    if !stats.lost_events.is_empty() {
        let per_cpu: Vec<String> = stats
            .lost_events
            .iter()
            .map(|(cpu, n)| format!("cpu{cpu} {n}"))
            .collect();
        let _ = write!(out, " ({})", per_cpu.join(", "));
        let _ = write!(
            out,
            "\nagent-monitor: events were lost because the kernel's event ring was full; \
             a larger ring (--ring-mib, default {} MiB) absorbs longer bursts",
            agent_monitor_common::maps::EVENTS_BYTES >> 20
        );
    }
    let c = &stats.correlation;
    let _ = write!(
        out,
        "\nagent-monitor: {} declared, {} baseline, {} undeclared, {} unverifiable; {} tool calls ({} denied)",
        c.declared, c.baseline, c.undeclared, c.unverifiable, c.tool_calls, c.denied
    );
    if c.refused > 0 {
        let _ = write!(out, "; {} declarations refused", c.refused);
    }
    if stats.late_covered > 0 {
        let _ = write!(
            out,
            "; {} held undeclared actions covered by calls declared after the fact",
            stats.late_covered
        );
    }
    if stats.held_overflowed > 0 {
        let _ = write!(
            out,
            "\nagent-monitor: {} undeclared actions were judged before their grace period was over: more than {} were waiting",
            stats.held_overflowed,
            crate::pipeline::MAX_HELD
        );
    }
    if !stats.alerts_by_kind.is_empty() || stats.alerts_suppressed > 0 {
        let kinds: Vec<String> = stats
            .alerts_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        let _ = write!(
            out,
            "\nagent-monitor: alerts: {}",
            if kinds.is_empty() {
                "none".to_string()
            } else {
                kinds.join(", ")
            }
        );
        if stats.alerts_suppressed > 0 {
            let _ = write!(
                out,
                " ({} more held back as repeats or over the rate limit)",
                stats.alerts_suppressed
            );
        }
    }
    if c.calls_evicted > 0 {
        let _ = write!(
            out,
            "\nagent-monitor: {} finished tool calls were forgotten past the limit of {}; later actions of their processes are not bound to them",
            c.calls_evicted,
            crate::correlate::RETAINED_CALLS
        );
    }
    let invalid: u64 = stats.invalid.values().sum();
    if invalid > 0 {
        let reasons: Vec<String> = stats
            .invalid
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        let _ = write!(
            out,
            "\nagent-monitor: {invalid} invalid records ignored: {}",
            reasons.join("; ")
        );
    }
    if stats.untracked_children > 0 {
        let _ = write!(
            out,
            "\nagent-monitor: {} child processes were not tracked: the tracked-process map was full",
            stats.untracked_children
        );
    }
    if stats.sink_errors > 0 {
        let _ = write!(
            out,
            "\nagent-monitor: {} events could not be written",
            stats.sink_errors
        );
    }
    for unattached in &report.unattached {
        let _ = write!(
            out,
            "\nagent-monitor: optional probe {} not attached: {}",
            unattached.program, unattached.reason
        );
    }
    let costs: Vec<String> = report
        .probe_costs
        .iter()
        .filter(|c| c.runs > 0)
        .map(|c| {
            format!(
                "{} {} runs, {:.0} ns each",
                c.program,
                c.runs,
                c.total_ns as f64 / c.runs as f64
            )
        })
        .collect();
    if !costs.is_empty() {
        let _ = write!(out, "\nagent-monitor: probe costs: {}", costs.join("; "));
    }
    if !report.survivors.is_empty() {
        let n = report.survivors.len();
        let _ = write!(
            out,
            "\nagent-monitor: {n} {} still running, no longer recorded:",
            if n == 1 { "descendant" } else { "descendants" }
        );
        for process in &report.survivors {
            let _ = write!(
                out,
                " {} ({})",
                process.pid,
                process.exe.as_deref().unwrap_or("?")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stats: crate::pipeline::Stats) -> RunReport {
        RunReport {
            agent: "a".into(),
            session_id: "s".into(),
            status: crate::event::ExitStatus::Exited(0),
            stats,
            processes: 1,
            survivors: Vec::new(),
            unattached: Vec::new(),
            probe_costs: Vec::new(),
        }
    }

    #[test]
    fn lost_events_name_the_ring_and_the_flag_that_sizes_it() {
        let mut stats = crate::pipeline::Stats::default();
        assert!(!render(&report(stats.clone())).contains("--ring-mib"));
        stats.lost_events.insert(1, 300);
        let text = render(&report(stats));
        assert!(text.contains(", 300 lost (cpu1 300)"), "{text}");
        assert!(
            text.contains("the kernel's event ring was full")
                && text.contains("--ring-mib, default 8 MiB"),
            "{text}"
        );
    }
}
