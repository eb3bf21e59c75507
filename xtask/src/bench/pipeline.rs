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
    let rate = |name: &str| -> Result<f64> {
        let block = text
            .split(&format!("pipeline/{name}"))
            .nth(1)
            .with_context(|| format!("no pipeline/{name} in the bench output"))?;
        let line = block
            .lines()
            .find(|l| l.contains("thrpt:"))
            .context("no throughput line")?;
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
    };
    let decode = rate("decode ")?;
    let process = rate("decode+process ")?;
    let declared = rate("decode+process(declared)")?;
    let arrow = rate("decode+process+arrow")?;
    let full = rate("decode+process+parquet ")?;
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
            "decode, process, Arrow, journal (LZ4 Arrow IPC), zstd Parquet, chain: \
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
