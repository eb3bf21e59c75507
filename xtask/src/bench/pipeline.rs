//! The userspace pipeline's throughput on one core, from the criterion
//! bench `agent-monitor/benches/evidence.rs`.

use std::{fmt::Write as _, process::Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cargo;

/// The userspace pipeline's throughput, from the criterion bench
/// `agent-monitor/benches/evidence.rs`: decoding alone (the baseline) and
/// decoding through the processing stage into zstd Parquet, in one run.
pub fn report(quick: bool) -> Result<String> {
    let mut command = cargo();
    command.args([
        "bench",
        "--package",
        "agent-monitor",
        "--bench",
        "evidence",
        "--",
        "--noplot",
    ]);
    if quick {
        command.args(["--warm-up-time", "1", "--measurement-time", "3"]);
    }
    let out = command.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("cargo bench failed");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = |name: &str| throughput(&text, name);
    let decode = rate("decode")?;
    let process = rate("decode+process")?;
    let declared = rate("decode+process(declared)")?;
    let arrow = rate("decode+process+arrow")?;
    let full = rate("decode+process+parquet")?;
    let sustained = rate("decode+process+parquet(sustained)")?;
    let mut out = String::new();
    writeln!(out, "## Userspace pipeline (criterion)\n")?;
    writeln!(
        out,
        "`cargo bench --bench evidence`: 100,000 recorded build-like file opens, one core \
         (1,000,000 in the sustained run). \
         The processing stage judges every event: in the plain stream no call covers \
         the opens, so each is undeclared and raises an alert (held back by the \
         alerter after the first of each); in the declared stream a `bash` call covers \
         them, the common case of an agent at work.\n"
    )?;
    writeln!(out, "| stage | events/s | ratio to decoding alone |")?;
    writeln!(out, "| --- | --- | --- |")?;
    writeln!(out, "| decode (baseline) | {decode:.0} | 1.00 |")?;
    let stages = [
        (
            "decode, process (no output), every open undeclared",
            process,
        ),
        (
            "decode, process (no output), inside a declared call",
            declared,
        ),
        ("decode, process, Arrow builders", arrow),
        (
            "decode, process, Arrow, journal (Arrow IPC in LZ4 frames), zstd Parquet, chain: \
             a store opened, filled and closed",
            full,
        ),
        (
            "the same, sustained: 1,000,000 events through one store, which rotates \
             its files as at run time",
            sustained,
        ),
    ];
    for (stage, rate) in stages {
        writeln!(out, "| {stage} | {rate:.0} | {:.2} |", rate / decode)?;
    }
    writeln!(
        out,
        "\nThe short run pays the store's fixed costs (a directory, the journal's files, \
         the syncs when it closes: about 20 ms) on 100,000 events; the sustained run \
         spreads them over ten times as many.\n\n\
         Target: at least 1,000,000 events/s sustained through the whole pipeline: \
         {}.",
        if sustained >= 1e6 { "met" } else { "not met" }
    )?;
    Ok(out)
}

/// The median throughput criterion printed for `pipeline/{name}`, in
/// events/s. The name stands alone on its line (criterion wraps a long one
/// before its figures) or is followed by spaces and the time.
fn throughput(text: &str, name: &str) -> Result<f64> {
    let id = format!("pipeline/{name}");
    let mut lines = text.lines().skip_while(|line| {
        line.strip_prefix(id.as_str())
            .is_none_or(|rest| !(rest.is_empty() || rest.starts_with(char::is_whitespace)))
    });
    lines
        .next()
        .with_context(|| format!("no {id} in the bench output"))?;
    let line = lines
        .find(|l| l.contains("thrpt:"))
        .with_context(|| format!("no throughput for {id}"))?;
    // thrpt:  [low UNIT mid UNIT high UNIT]
    let words: Vec<&str> = line
        .split(['[', ']'])
        .nth(1)
        .context("no [..]")?
        .split_whitespace()
        .collect();
    let value: f64 = words.get(2).context("no median")?.parse()?;
    let scale = match words.get(3).copied() {
        Some("Melem/s") => 1e6,
        Some("Kelem/s") => 1e3,
        _ => 1.0,
    };
    Ok(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "\
pipeline/decode         time:   [15.088 ms 15.309 ms 15.779 ms]
                        thrpt:  [6.3376 Melem/s 6.5321 Melem/s 6.6278 Melem/s]
pipeline/decode+process time:   [35.0 ms 36.0 ms 37.0 ms]
                        thrpt:  [2.7 Melem/s 2.8 Melem/s 2.9 Melem/s]
pipeline/decode+process+parquet
                        time:   [123.38 ms 125.40 ms 128.17 ms]
                        thrpt:  [780.22 Kelem/s 797.47 Kelem/s 810.49 Kelem/s]
                 change:
                        time:   [-17.379% -13.019% -8.1439%] (p = 0.00 < 0.05)
                        thrpt:  [+8.8659% +14.968% +21.035%]
pipeline/decode+process+parquet(sustained)
                        time:   [1.0439 s 1.0508 s 1.0587 s]
                        thrpt:  [944.52 Kelem/s 951.64 Kelem/s 957.94 Kelem/s]
";

    #[test]
    fn each_name_finds_its_own_figures_wrapped_or_not() {
        let rate = |name| throughput(OUTPUT, name).unwrap().round();
        assert_eq!(rate("decode"), 6_532_100.0);
        assert_eq!(rate("decode+process"), 2_800_000.0);
        assert_eq!(rate("decode+process+parquet"), 797_470.0);
        assert_eq!(rate("decode+process+parquet(sustained)"), 951_640.0);
        assert!(throughput(OUTPUT, "decode+process+arrow").is_err());
    }
}
