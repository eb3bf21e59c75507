//! The report's section, in Markdown.

use std::{fmt::Write as _, thread};

use super::{Limit, TARGET_RATE, TARGET_RSS_MIB, Throughput};

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "not met" }
}

/// The report's section.
pub fn markdown(t: &Throughput) -> String {
    let mut out = String::new();
    let _ = write_markdown(&mut out, t);
    out
}

fn write_markdown(out: &mut String, t: &Throughput) -> std::fmt::Result {
    writeln!(out, "## Throughput and footprint\n")?;
    writeln!(
        out,
        "Each probe runs `agent-monitor run --standalone --quiet-alerts --evidence DIR -- rate R {secs}`: \
         `rate` issues R failed `openat`s a second over 1,024 paths (one `file.open` event each, \
         undeclared, judged and written to zstd Parquet in the hash chain) and reports the rate it \
         reached; when one thread falls short without a drop, two threads try again, and when \
         those lose events the one-thread attempt stays as a zero-drop rate of its own, the rate \
         it reached. The generator \
         pays the kernel side of every event (the probe and the ring), the monitor the rest, on a \
         machine of {cpus} CPUs. The search starts at {start} events/s, doubles while no event is \
         lost, then bisects (at most {probes} rates); then twice the highest zero-drop rate runs \
         once. Monitor CPU is the `run` process's own \
         `utime + stime` (all its threads, not its child) from the workload's start to its exit, \
         draining and final flush included, over the workload's seconds; peak RSS is its `ru_maxrss`; \
         evidence bytes are the Parquet files and `chain.log` per recorded event.\n",
        secs = t.plan.seconds,
        cpus = thread::available_parallelism().map_or(0, |n| n.get()),
        start = thousands(t.plan.start as f64),
        probes = t.plan.max_probes,
    )?;
    writeln!(
        out,
        "| requested events/s | generator threads | reached events/s | events recorded | lost | monitor CPU, % of one core | monitor CPU per event | peak RSS | evidence bytes/event | |"
    )?;
    writeln!(
        out,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )?;
    let rows = t.probes.iter().enumerate().flat_map(|(i, p)| {
        std::iter::once((Some(i), p)).chain(p.other.as_deref().map(|o| (None, o)))
    });
    for (i, p) in rows {
        let mut role = Vec::new();
        if i.is_none() {
            role.push("other attempt at the rate above, not kept");
        }
        let next = i.and_then(|i| t.probes.get(i + 1));
        if next.is_some_and(|n| n.requested == p.requested && n.threads > p.threads) {
            role.push("the same rate with more generator threads follows");
        }
        if i.is_some() && t.sustained == i {
            role.push("highest with zero drops");
        }
        if i.is_some() && t.overload == i {
            role.push("twice that");
        }
        if !p.reached() {
            role.push("generator short of the rate");
        }
        writeln!(
            out,
            "| {} | {} | {} | {} | {} ({:.2}%) | {:.0}% | {:.2} µs | {:.1} MiB | {:.1} | {} |",
            thousands(p.requested as f64),
            p.threads,
            thousands(p.achieved()),
            thousands(p.events as f64),
            thousands(p.dropped() as f64),
            100.0 * p.drop_fraction(),
            p.cpu_percent(),
            p.cpu_us_per_event(),
            p.peak_rss_mib(),
            p.bytes_per_event(),
            role.join("; "),
        )?;
    }
    writeln!(out)?;
    let Some(best) = t.sustained() else {
        writeln!(
            out,
            "Every probe lost events: no rate with zero drops was found down to {} events/s.\n",
            thousands(t.probes.iter().map(|p| p.requested).min().unwrap_or(0) as f64)
        )?;
        writeln!(out, "| figure | target | measured | |")?;
        writeln!(out, "| --- | --- | --- | --- |")?;
        writeln!(
            out,
            "| zero-drop rate into Parquet | ≥ {} events/s | none found | not met |",
            thousands(TARGET_RATE)
        )?;
        return Ok(());
    };
    let why = match t.limit {
        Limit::Drops => {
            // The lowest rate asked above the one sustained that lost
            // events, with what the generator reached when it fell short:
            // on a noisy machine that can be below the rate sustained.
            let above = t
                .probes
                .iter()
                .filter(|p| !p.zero_drop() && p.requested > best.sustained_rate())
                .min_by_key(|p| p.requested);
            match above {
                Some(p) if p.reached() => {
                    format!("{} events/s lost events", thousands(p.requested as f64))
                }
                Some(p) => format!(
                    "{} events/s lost events, the generator reaching {}",
                    thousands(p.requested as f64),
                    thousands(p.achieved())
                ),
                None => "higher rates lost events".to_string(),
            }
        }
        Limit::Generator => {
            "the generator could go no faster, and lost nothing: the monitor's limit was not \
             reached; its CPU use says how close it was"
                .into()
        }
        Limit::Budget => "the probes ran out while every rate passed; the limit is higher".into(),
    };
    writeln!(
        out,
        "Highest rate sustained with zero drops: **{} events/s** ({why}). At it: {:.1} evidence bytes \
         per event, monitor CPU {:.0}% of one core ({:.2} µs per event: one core of the monitor \
         would keep up with about {} events/s), peak RSS {:.1} MiB. Start-up, loading the programs, \
         took {:.2} CPU s more. The peak RSS includes the kernel ring, all of it resident from \
         the start: 8 MiB by default.",
        thousands(best.achieved()),
        best.bytes_per_event(),
        best.cpu_percent(),
        best.cpu_us_per_event(),
        thousands(if best.cpu_us_per_event() > 0.0 {
            1e6 / best.cpu_us_per_event()
        } else {
            0.0
        }),
        best.peak_rss_mib(),
        best.startup_cpu_secs,
    )?;
    if let Some(over) = t.overload() {
        writeln!(
            out,
            "\nAt twice that rate (asked {}, reached {} events/s): {} events lost ({:.2}% of those \
             issued), monitor CPU {:.0}% of one core, peak RSS {:.1} MiB.",
            thousands(over.requested as f64),
            thousands(over.achieved()),
            thousands(over.dropped() as f64),
            100.0 * over.drop_fraction(),
            over.cpu_percent(),
            over.peak_rss_mib(),
        )?;
        if !over.reached() {
            writeln!(
                out,
                "The generator did not reach twice the rate on this machine: these are the figures at the rate it reached."
            )?;
        }
    }
    writeln!(out, "\n| figure | target | measured | |")?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    let rate_ok = best.achieved() >= TARGET_RATE;
    let rate_note = if !rate_ok && t.limit != Limit::Drops {
        " (not shown: the search stopped before any drop)"
    } else {
        ""
    };
    writeln!(
        out,
        "| zero-drop rate into Parquet | ≥ {} events/s | {} events/s | {}{rate_note} |",
        thousands(TARGET_RATE),
        thousands(best.achieved()),
        met(rate_ok),
    )?;
    let rss_ok = best.peak_rss_mib() <= TARGET_RSS_MIB;
    let rss_note = if rate_ok {
        String::new()
    } else {
        format!(
            " (measured at {} events/s, below the target rate)",
            thousands(best.achieved())
        )
    };
    writeln!(
        out,
        "| peak RSS at that rate | ≤ {TARGET_RSS_MIB:.0} MiB | {:.1} MiB | {}{rss_note} |",
        best.peak_rss_mib(),
        met(rss_ok && rate_ok),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::throughput::{Plan, run_plan, search::tests::fake};

    #[test]
    fn markdown_reports_figures_and_targets() {
        let t = run_plan(&Plan::new(true), fake(700_000, 10_000_000)).unwrap();
        let md = markdown(&t);
        assert!(md.starts_with("## Throughput and footprint\n"), "{md}");
        assert!(
            md.contains(
                "| 500,000 | 1 | 500,000 | 1,000,003 | 0 (0.00%) | 50% | 1.00 µs | 40.0 MiB | 20.0 | highest with zero drops |"
            ),
            "{md}"
        );
        assert!(md.contains("| 1,000,000 | 1 | 1,000,000 |"), "{md}");
        assert!(md.contains("keep up with about 1,000,003 events/s"), "{md}");
        assert!(md.contains("twice that"), "{md}");
        assert!(
            md.contains("**500,000 events/s** (1,000,000 events/s lost events)"),
            "{md}"
        );
        assert!(
            md.contains("600,000 events lost (30.00% of those issued)"),
            "{md}"
        );
        assert!(
            md.contains(
                "| zero-drop rate into Parquet | ≥ 500,000 events/s | 500,000 events/s | met |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| peak RSS at that rate | ≤ 64 MiB | 40.0 MiB | met |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_is_honest_below_the_target() {
        let t = run_plan(&Plan::new(false), fake(10_000_000, 300_000)).unwrap();
        let md = markdown(&t);
        assert!(md.contains("300,000 events/s | not met (not shown"), "{md}");
        assert!(md.contains("generator could go no faster"), "{md}");
        assert!(md.contains("below the target rate"), "{md}");
        assert!(
            md.contains("The generator did not reach twice the rate"),
            "{md}"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
