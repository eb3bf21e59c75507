//! The search for the highest zero-drop rate, and the run at twice it.

use anyhow::Result;

use super::{Limit, Probe, TARGET_RATE, Throughput};

/// How the search runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The first rate tried, events per second.
    pub start: u64,
    /// Seconds of workload per probe.
    pub seconds: f64,
    /// Probes of the search, the run at twice the rate not included.
    pub max_probes: usize,
    /// Bisection stops once the failing rate is within this factor of the
    /// passing one.
    pub precision: f64,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            // Starts at the target: typically the target, then twice it,
            // which is also the overload run.
            Plan {
                start: TARGET_RATE as u64,
                seconds: 2.0,
                max_probes: 2,
                precision: 1.25,
            }
        } else {
            Plan {
                start: 50_000,
                seconds: 5.0,
                max_probes: 8,
                precision: 1.1,
            }
        }
    }
}

/// The search and the overload run, with `run` measuring one rate.
///
/// From `plan.start` the rate doubles while probes pass (no drop, the
/// generator reaching the rate). A probe that drops brackets the limit,
/// which is then bisected (or, with no passing rate yet, halved) until the
/// bracket is within `plan.precision` or the probes run out. A probe whose
/// generator falls short without dropping ends the search: the generator's
/// ceiling is below the monitor's. When one generator thread fell short
/// losing nothing and two, at the same rate, lost events, the short attempt
/// is a passing rate of its own (what it reached) and the search goes on.
/// Then the rate twice the sustained one runs once, unless a probe already
/// ran it.
pub fn run_plan(plan: &Plan, mut run: impl FnMut(u64) -> Result<Probe>) -> Result<Throughput> {
    let mut probes: Vec<Probe> = Vec::new();
    let mut best: Option<usize> = None;
    // The highest rate sustained (see `Probe::sustained_rate`), and the
    // lowest that dropped: the bracket bisected.
    let mut passed: Option<u64> = None;
    let mut failed: Option<u64> = None;
    let mut rate = plan.start.max(1);
    // Rates tried: a short attempt kept beside its rate's is not another.
    let mut tried = 0;
    let limit = loop {
        if tried >= plan.max_probes {
            break if failed.is_some() {
                Limit::Drops
            } else {
                Limit::Budget
            };
        }
        let mut probe = run(rate)?;
        tried += 1;
        // One generator thread that fell short losing nothing, beside two
        // that went further and lost events, are two findings: a rate the
        // monitor sustained, and one it did not. The first is kept as a
        // probe of its own, just before the second.
        if !probe.zero_drop()
            && let Some(short) = probe.other.take_if(|o| o.zero_drop())
        {
            probes.push(*short);
            keep_if_best(&probes, &mut best, &mut passed);
        }
        let (pass, reached) = (probe.zero_drop(), probe.reached());
        probes.push(probe);
        if pass {
            keep_if_best(&probes, &mut best, &mut passed);
            if !reached {
                break Limit::Generator;
            }
        } else {
            failed = Some(failed.map_or(rate, |f| f.min(rate)));
        }
        rate = match (passed, failed) {
            (_, None) => rate.saturating_mul(2),
            (None, Some(failed)) => failed / 2,
            (Some(low), Some(failed)) => {
                if failed as f64 <= low as f64 * plan.precision {
                    break Limit::Drops;
                }
                low + (failed - low) / 2
            }
        };
        if rate == 0 {
            break Limit::Drops;
        }
    };
    let overload = match best {
        None => None,
        Some(b) => {
            let twice = 2 * probes[b].sustained_rate();
            match probes
                .iter()
                .position(|p| (p.requested as f64 - twice as f64).abs() <= 0.01 * twice as f64)
            {
                Some(i) => Some(i),
                None => {
                    probes.push(run(twice)?);
                    Some(probes.len() - 1)
                }
            }
        }
    };
    Ok(Throughput {
        plan: plan.clone(),
        probes,
        sustained: best,
        limit,
        overload,
    })
}

/// Takes the last probe, which lost nothing, into the best (the highest
/// rate reached) and the bracket's passing end.
fn keep_if_best(probes: &[Probe], best: &mut Option<usize>, passed: &mut Option<u64>) {
    let index = probes.len() - 1;
    let probe = &probes[index];
    if best.is_none_or(|b| probe.achieved() > probes[b].achieved()) {
        *best = Some(index);
    }
    *passed = Some(passed.unwrap_or(0).max(probe.sustained_rate()));
}

/// A probe with one generator thread, and, when that thread fell short of
/// the rate without a drop, again with two, keeping whichever issued more.
/// One thread is preferred: on a small machine a second one takes the CPU
/// the monitor needs.
pub fn one_then_two(mut run: impl FnMut(u32) -> Result<Probe>) -> Result<Probe> {
    let one = run(1)?;
    if one.reached() || !one.zero_drop() {
        return Ok(one);
    }
    let two = run(2)?;
    let (mut kept, other) = if two.achieved() > one.achieved() {
        (two, one)
    } else {
        (one, two)
    };
    kept.other = Some(Box::new(other));
    Ok(kept)
}

#[cfg(test)]
pub(super) mod tests {
    use anyhow::bail;

    use super::*;
    use crate::bench::throughput::markdown;

    /// A monitor that keeps up to `capacity` events/s, driven by a
    /// generator that reaches at most `ceiling`.
    pub(in crate::bench::throughput) fn fake(
        capacity: u64,
        ceiling: u64,
    ) -> impl FnMut(u64) -> Result<Probe> {
        move |rate| {
            let reached = rate.min(ceiling);
            let sent = reached * 2;
            let lost = if reached > capacity {
                (reached - capacity) * 2
            } else {
                0
            };
            Ok(Probe {
                requested: rate,
                threads: 1,
                sent,
                secs: 2.0,
                events: sent - lost + 3,
                opens: sent - lost,
                lost,
                cpu_secs: 1.0,
                startup_cpu_secs: 0.2,
                peak_rss_kib: 40 * 1024,
                evidence_bytes: 20 * sent,
                journal_bytes: 0,
                other: None,
            })
        }
    }

    fn rates(t: &Throughput) -> Vec<u64> {
        t.probes.iter().map(|p| p.requested).collect()
    }

    #[test]
    fn doubles_then_bisects_then_overloads() {
        let plan = Plan::new(false);
        let t = run_plan(&plan, fake(700_000, 10_000_000)).unwrap();
        assert_eq!(t.limit, Limit::Drops);
        // 50k … 400k pass, 800k drops, then 600k, 700k pass and 750k drops
        // (within 10% of 700k), then the overload at 1.4M.
        assert_eq!(
            rates(&t),
            [
                50_000, 100_000, 200_000, 400_000, 800_000, 600_000, 700_000, 750_000, 1_400_000
            ]
        );
        assert_eq!(t.sustained().unwrap().requested, 700_000);
        let over = t.overload().unwrap();
        assert_eq!(over.requested, 1_400_000);
        assert!(over.lost > 0);
    }

    #[test]
    fn quick_reuses_the_probe_at_twice_the_rate() {
        let t = run_plan(&Plan::new(true), fake(700_000, 10_000_000)).unwrap();
        assert_eq!(rates(&t), [500_000, 1_000_000]);
        assert_eq!(t.sustained, Some(0));
        assert_eq!(t.overload, Some(1));
        assert_eq!(t.limit, Limit::Drops);
    }

    #[test]
    fn quick_halves_when_the_first_rate_drops() {
        let t = run_plan(&Plan::new(true), fake(300_000, 10_000_000)).unwrap();
        assert_eq!(rates(&t), [500_000, 250_000]);
        assert_eq!(t.sustained, Some(1));
        assert_eq!(t.overload, Some(0));
    }

    #[test]
    fn quick_runs_out_of_probes_while_passing() {
        let t = run_plan(&Plan::new(true), fake(5_000_000, 10_000_000)).unwrap();
        assert_eq!(rates(&t), [500_000, 1_000_000, 2_000_000]);
        assert_eq!(t.limit, Limit::Budget);
        assert_eq!(t.sustained, Some(1));
        assert_eq!(t.overload, Some(2));
    }

    #[test]
    fn the_generator_ceiling_stops_the_search() {
        let t = run_plan(&Plan::new(false), fake(10_000_000, 300_000)).unwrap();
        // 50k … 200k pass, 400k reaches only 300k without drops.
        assert_eq!(rates(&t), [50_000, 100_000, 200_000, 400_000, 600_000]);
        assert_eq!(t.limit, Limit::Generator);
        let best = t.sustained().unwrap();
        assert_eq!((best.requested, best.achieved()), (400_000, 300_000.0));
        // Twice what was reached.
        assert_eq!(t.overload().unwrap().requested, 600_000);
    }

    #[test]
    fn two_threads_only_when_one_falls_short() {
        let probe = |requested, threads, reached: u64, lost| Probe {
            requested,
            threads,
            sent: reached,
            secs: 1.0,
            opens: reached - lost,
            lost,
            ..Probe::default()
        };
        let mut asked = Vec::new();
        let mut run = |results: Vec<Probe>| {
            asked.clear();
            let mut results = results.into_iter();
            let chosen = one_then_two(|threads| {
                asked.push(threads);
                Ok(results.next().unwrap())
            })
            .unwrap();
            (chosen.threads, asked.clone())
        };
        // Reached: one thread.
        assert_eq!(run(vec![probe(100, 1, 100, 0)]), (1, vec![1]));
        // Dropped: no second try.
        assert_eq!(run(vec![probe(100, 1, 50, 5)]), (1, vec![1]));
        // Short: two threads, kept when they issue more, dropping or not.
        assert_eq!(
            run(vec![probe(100, 1, 50, 0), probe(100, 2, 80, 3)]),
            (2, vec![1, 2])
        );
        let mut results = vec![probe(100, 1, 50, 0), probe(100, 2, 80, 3)].into_iter();
        let kept = one_then_two(|_| Ok(results.next().unwrap())).unwrap();
        assert_eq!(kept.other.as_ref().map(|o| o.threads), Some(1));
        let t = Throughput {
            plan: Plan::new(true),
            probes: vec![kept],
            sustained: None,
            limit: Limit::Drops,
            overload: None,
        };
        assert!(
            markdown(&t).contains("| 100 | 1 | 50 | 0 | 0 (0.00%) | 0% | 0.00 µs | 0.0 MiB | 0.0 | other attempt at the rate above, not kept; generator short of the rate |"),
            "{}",
            markdown(&t)
        );
        assert_eq!(
            run(vec![probe(100, 1, 50, 0), probe(100, 2, 40, 0)]),
            (1, vec![1, 2])
        );
    }

    /// A monitor that keeps up to `capacity` events/s, whose one-thread
    /// generator reaches at most `one` and two threads at most `two`.
    fn two_generators(capacity: u64, one: u64, two: u64) -> impl FnMut(u64) -> Result<Probe> {
        move |rate| {
            let (mut one, mut two) = (fake(capacity, one), fake(capacity, two));
            one_then_two(|threads| {
                let mut probe = if threads == 1 { one(rate)? } else { two(rate)? };
                probe.threads = threads;
                Ok(probe)
            })
        }
    }

    #[test]
    fn a_short_attempt_that_lost_nothing_counts_when_more_threads_lost_events() {
        let t = run_plan(&Plan::new(false), two_generators(520_000, 505_000, 700_000)).unwrap();
        // 50k … 400k pass with one thread. At 800k one thread reaches 505k
        // losing nothing and two reach 700k losing events; bisecting from
        // 505k: at 652.5k the same, then 578.75k the same; at 541.875k one
        // thread comes within 10% of the rate, within 10% of 578.75k. The
        // overload runs at twice the 505k reached.
        assert_eq!(
            t.probes
                .iter()
                .map(|p| (p.requested, p.threads, p.zero_drop()))
                .collect::<Vec<_>>(),
            [
                (50_000, 1, true),
                (100_000, 1, true),
                (200_000, 1, true),
                (400_000, 1, true),
                (800_000, 1, true),
                (800_000, 2, false),
                (652_500, 1, true),
                (652_500, 2, false),
                (578_750, 1, true),
                (578_750, 2, false),
                (541_875, 1, true),
                (1_010_000, 2, false),
            ]
        );
        assert_eq!(t.limit, Limit::Drops);
        let best = t.sustained().unwrap();
        assert_eq!((best.threads, best.achieved()), (1, 505_000.0));
        assert_eq!(t.overload().unwrap().requested, 1_010_000);
        let report = markdown(&t);
        assert!(
            report.contains(
                "| 800,000 | 1 | 505,000 | 1,010,003 | 0 (0.00%) | 50% | 0.99 µs | 40.0 MiB | 20.0 | \
                 the same rate with more generator threads follows; highest with zero drops; \
                 generator short of the rate |"
            ),
            "{report}"
        );
        assert!(
            report.contains("**505,000 events/s** (578,750 events/s lost events)"),
            "{report}"
        );
    }

    #[test]
    fn a_higher_rate_that_lost_events_says_how_far_its_generator_got() {
        let probe = |requested, reached: u64, lost| Probe {
            requested,
            threads: 1,
            sent: reached,
            secs: 1.0,
            opens: reached - lost,
            lost,
            ..Probe::default()
        };
        let t = Throughput {
            plan: Plan::new(false),
            // On a noisy machine, 550,988 asked lost events while reaching
            // less than 509,486 asked had reached without a loss.
            probes: vec![
                probe(509_486, 482_439, 0),
                probe(550_988, 472_187, 6),
                probe(800_000, 590_825, 9),
            ],
            sustained: Some(0),
            limit: Limit::Drops,
            overload: None,
        };
        let report = markdown(&t);
        assert!(
            report.contains(
                "**482,439 events/s** (550,988 events/s lost events, the generator reaching \
                 472,187)"
            ),
            "{report}"
        );
    }

    #[test]
    fn nothing_passes() {
        let t = run_plan(&Plan::new(true), fake(0, 10_000_000)).unwrap();
        assert_eq!(t.sustained, None);
        assert_eq!(t.overload, None);
        assert!(markdown(&t).contains("none found | not met"));
    }

    #[test]
    fn errors_stop_the_search() {
        let err = run_plan(&Plan::new(true), |_| bail!("no root")).unwrap_err();
        assert_eq!(err.to_string(), "no root");
    }
}
