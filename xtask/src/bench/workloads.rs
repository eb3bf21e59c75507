//! The benchmark's five workloads, run by the `workload` binary
//! (`xtask/src/bin/workload.rs`): four syscall storms and a real build.
//!
//! Every workload prints one line, `ns=<elapsed> units=<N>`, timed inside
//! the workload's own process around the measured loop only, so the same
//! figure is read whatever runs it: plainly, under `agent-monitor run`, or
//! under a peer (strace, auditd, bpftrace). Their start-up costs are never
//! counted. The build is timed the same way: `workload build DIR N` runs
//! `make` N times and times only the makes.
//!
//! Use: [`binary`] builds the `workload` binary once; for each [`Workload`]
//! of [`ALL`], [`Workload::prepare`] sets up its files once (only the build
//! has any), [`Workload::argv`] or [`Workload::command`] gives the command
//! for a count, and [`parse_measured`] reads its stdout.

use std::{
    ffi::OsString,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, root, sh};

/// One benchmark workload.
#[derive(Debug)]
pub struct Workload {
    /// Short name, also the `workload` subcommand for the storms: `open`,
    /// `stat`, `forkexec`, `connect`, `build`.
    pub name: &'static str,
    /// One line for the report.
    pub description: &'static str,
    /// What one unit is.
    pub unit: &'static str,
    /// Units per run in a full bench.
    pub full: u64,
    /// Units per run with `--quick`.
    pub quick: u64,
    /// The syscalls (x86_64 names) the measured loop makes: the peers trace
    /// these and only these (`strace -e trace=`, auditd `-S`, bpftrace
    /// tracepoints). The process-lifecycle ones (`clone`, `execve`,
    /// `exit_group`, …) stand for fork, exec and exit.
    pub syscalls: &'static [&'static str],
    /// Events agent-monitor records per unit when it tracks the workload,
    /// counted once with `agent-monitor run --events` (None for the build,
    /// whose count depends on the compiler). Setup outside the loop adds a
    /// handful (the loader's opens, the scratch directory).
    pub monitor_events_per_unit: Option<u64>,
    /// What agent-monitor records per unit, in words.
    pub monitor_events: &'static str,
    /// Debian packages the workload needs besides the `workload` binary.
    pub packages: &'static [&'static str],
    /// Programs those packages provide, checked on PATH by
    /// [`missing_packages`].
    programs: &'static [&'static str],
}

pub const OPEN: Workload = Workload {
    name: "open",
    description: "open/read/close loop: open a 64-byte file, read it, close it",
    unit: "open + read + close",
    full: 1_000_000,
    quick: 20_000,
    syscalls: &["openat", "read", "close"],
    monitor_events_per_unit: Some(1),
    monitor_events: "file.open",
    packages: &[],
    programs: &[],
};

pub const STAT: Workload = Workload {
    name: "stat",
    description: "stat storm: stat() four existing files in turn",
    unit: "stat",
    full: 1_000_000,
    quick: 50_000,
    syscalls: &["statx"],
    monitor_events_per_unit: Some(0),
    monitor_events: "nothing (stat is not hooked: the cost of the filter alone)",
    packages: &[],
    programs: &[],
};

pub const FORKEXEC: Workload = Workload {
    name: "forkexec",
    description: "fork/exec/exit storm: fork, exec /bin/true, wait",
    unit: "fork + exec /bin/true + exit + wait",
    full: 5_000,
    quick: 200,
    syscalls: &["clone", "execve", "exit_group", "wait4"],
    monitor_events_per_unit: Some(5),
    monitor_events: "process.fork, process.exec, process.exit, and 2 file.open of the loader",
    packages: &[],
    programs: &[],
};

pub const CONNECT: Workload = Workload {
    name: "connect",
    description: "loopback TCP on one CPU: connect to a listener in the same process, accept, close both ends",
    unit: "a loopback TCP connection: connect, accept, close both ends",
    full: 20_000,
    quick: 1_000,
    syscalls: &["socket", "connect", "accept4", "recvfrom", "close"],
    monitor_events_per_unit: Some(2),
    monitor_events: "net.connect, net.accept",
    packages: &[],
    programs: &[],
};

pub const BUILD: Workload = Workload {
    name: "build",
    description: "a real build: 40 C files and a link, `make -B -j2` with gcc -O2",
    unit: "full build (40 compiles + link)",
    full: 1,
    quick: 1,
    syscalls: &[
        "clone",
        "clone3",
        "vfork",
        "execve",
        "exit_group",
        "openat",
        "unlink",
        "unlinkat",
        "rename",
        "chmod",
        "setresuid",
        "setresgid",
    ],
    monitor_events_per_unit: None,
    monitor_events: "process.fork/exec/exit of make, gcc, cc1, as, collect2 and ld, file.open, file.unlink, file.chmod, priv.setuid/setgid: about 6,200 per build with Debian 12's gcc 12",
    packages: &["gcc", "make", "libc6-dev"],
    programs: &["gcc", "make"],
};

pub const ALL: [&Workload; 5] = [&OPEN, &STAT, &FORKEXEC, &CONNECT, &BUILD];

/// Number of C files the build compiles.
pub const BUILD_FILES: usize = 40;
/// Functions in each of them: with gcc -O2, a build takes 2 to 3 s on the
/// two cores of the development VM.
const BUILD_FUNCTIONS: usize = 2;

/// What a workload printed: elapsed nanoseconds of its measured loop, and
/// how many units that loop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    pub ns: u64,
    pub units: u64,
}

impl Measured {
    pub fn per_unit_ns(&self) -> f64 {
        self.ns as f64 / self.units.max(1) as f64
    }
}

impl Workload {
    /// Units per run.
    pub fn count(&self, quick: bool) -> u64 {
        if quick { self.quick } else { self.full }
    }

    /// Sets up what the workload needs in `work_dir` (created if missing),
    /// once before any run: for the build, checks gcc and make and writes
    /// the C project to `work_dir/cbuild`. Nothing for the storms, which
    /// make and remove their own files under the temporary directory.
    pub fn prepare(&self, work_dir: &Path) -> Result<()> {
        if self.name != BUILD.name {
            return Ok(());
        }
        let missing = missing_packages(&[self]);
        if !missing.is_empty() {
            bail!(
                "the build workload needs gcc and make: apt-get install {}",
                missing.join(" ")
            );
        }
        write_c_project(&build_dir(work_dir))
    }

    /// The command line of one run of `count` units. `binary` is the
    /// `workload` binary ([`binary`]); `work_dir` the directory given to
    /// [`Workload::prepare`].
    pub fn argv(&self, binary: &Path, work_dir: &Path, count: u64) -> Vec<OsString> {
        let mut argv = vec![binary.into(), self.name.into()];
        if self.name == BUILD.name {
            argv.push(build_dir(work_dir).into());
        }
        argv.push(count.to_string().into());
        argv
    }

    /// [`Workload::argv`] as a `Command`, stdout piped (it carries the
    /// `ns=` line), stderr inherited.
    pub fn command(&self, binary: &Path, work_dir: &Path, count: u64) -> Command {
        let argv = self.argv(binary, work_dir, count);
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        command
    }

    /// One plain run (no monitor, no peer).
    pub fn run(&self, binary: &Path, work_dir: &Path, count: u64) -> Result<Measured> {
        let out = self
            .command(binary, work_dir, count)
            .output()
            .with_context(|| format!("starting the {} workload", self.name))?;
        if !out.status.success() {
            bail!("the {} workload failed with {}", self.name, out.status);
        }
        parse_measured(&out.stdout)
    }
}

/// Builds the `workload` binary (release) and returns its path.
pub fn binary() -> Result<PathBuf> {
    sh(cargo().args([
        "build",
        "--release",
        "--package",
        "xtask",
        "--bin",
        "workload",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root().join(dir))
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join("release/workload"))
}

/// The Debian packages the given workloads need and that seem missing
/// (one of their programs is not on PATH).
pub fn missing_packages(workloads: &[&Workload]) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for workload in workloads {
        if workload.programs.iter().any(|p| !on_path(p)) {
            for package in workload.packages {
                if !missing.contains(package) {
                    missing.push(*package);
                }
            }
        }
    }
    missing
}

pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The `ns=… units=…` line of a workload's stdout (the last one).
pub fn parse_measured(stdout: &[u8]) -> Result<Measured> {
    let text = String::from_utf8_lossy(stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("ns="))
        .with_context(|| format!("no `ns=` line in the workload's output {text:?}"))?;
    let mut ns = None;
    let mut units = None;
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("ns=") {
            ns = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("units=") {
            units = v.parse().ok();
        }
    }
    match (ns, units) {
        (Some(ns), Some(units)) => Ok(Measured { ns, units }),
        _ => bail!("unreadable workload line {line:?}"),
    }
}

fn build_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("cbuild")
}

/// Writes the C project: `common.h`, `unit_00.c` … and `main.c`
/// ([`BUILD_FILES`] files in all) and a Makefile that compiles each with
/// `gcc -O2` and links `app`. Rewritten only when different, so `make`
/// sees the same sources every time.
fn write_c_project(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in c_project() {
        let path = dir.join(&name);
        if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The C project's files, name and text.
fn c_project() -> Vec<(String, String)> {
    let units = BUILD_FILES - 1;
    let mut files = Vec::new();
    let mut header = String::from("#ifndef COMMON_H\n#define COMMON_H\n#include <stdint.h>\n\n");
    for u in 0..units {
        writeln!(header, "uint64_t unit_{u:02}(uint64_t seed);").unwrap();
    }
    header.push_str("\n#endif\n");
    files.push(("common.h".to_string(), header));
    for u in 0..units {
        let mut c = String::from("#include \"common.h\"\n#include <string.h>\n\n");
        // Enough distinct code that -O2 has real work: loops to unroll and
        // vectorise, a table, a switch.
        for f in 0..BUILD_FUNCTIONS {
            writeln!(
                c,
                "static uint64_t f{f}(uint64_t x, const uint32_t *t, int n) {{
    uint64_t acc = x ^ {seed}u;
    for (int i = 0; i < n; i++) {{
        acc = (acc << {s1}) ^ (acc >> {s2}) ^ t[i & 63];
        switch ((acc + i) & 7) {{
        case 0: acc += {a}u; break;
        case 1: acc *= {b}u; break;
        case 2: acc ^= acc >> 7; break;
        case 3: acc -= t[(i * {b}) & 63]; break;
        default: acc = acc * 31 + i;
        }}
    }}
    return acc;
}}
",
                seed = u * 97 + f * 13 + 1,
                s1 = 1 + (u + f) % 13,
                s2 = 3 + (u * f) % 11,
                a = 1_000_003 + u * f,
                b = 2 * (u + f) + 3,
            )
            .unwrap();
        }
        writeln!(
            c,
            "uint64_t unit_{u:02}(uint64_t seed) {{
    uint32_t t[64];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 64; i++) t[i] = (uint32_t)(seed * (i + {u}) + i);
    uint64_t acc = seed;"
        )
        .unwrap();
        for f in 0..BUILD_FUNCTIONS {
            writeln!(c, "    acc = f{f}(acc, t, 100 + {f});").unwrap();
        }
        c.push_str("    return acc;\n}\n");
        files.push((format!("unit_{u:02}.c"), c));
    }
    let mut main = String::from(
        "#include <stdio.h>\n#include \"common.h\"\n\nint main(void) {\n    uint64_t acc = 1;\n",
    );
    for u in 0..units {
        writeln!(main, "    acc = unit_{u:02}(acc);").unwrap();
    }
    main.push_str("    printf(\"%llu\\n\", (unsigned long long)acc);\n    return 0;\n}\n");
    files.push(("main.c".to_string(), main));
    let objects: Vec<String> = files
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(".c").map(|stem| format!("{stem}.o")))
        .collect();
    let makefile = format!(
        "# Generated by cargo xtask bench: {BUILD_FILES} C files and a link.
CC = gcc
CFLAGS = -O2 -Wall
OBJECTS = {objects}

app: $(OBJECTS)
\t$(CC) -o $@ $(OBJECTS)

%.o: %.c common.h
\t$(CC) $(CFLAGS) -c -o $@ $<

clean:
\trm -f app $(OBJECTS)

.PHONY: clean
",
        objects = objects.join(" ")
    );
    files.push(("Makefile".to_string(), makefile));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_measured_line() {
        let out = b"make: noise\nns=123 units=4\nns=456789 units=1000\n";
        assert_eq!(
            parse_measured(out).unwrap(),
            Measured {
                ns: 456_789,
                units: 1000
            }
        );
        assert!(parse_measured(b"nothing\n").is_err());
        assert!(parse_measured(b"ns=12 units=\n").is_err());
        assert_eq!(parse_measured(b"ns=10 units=4").unwrap().per_unit_ns(), 2.5);
    }

    #[test]
    fn the_c_project_has_its_files_and_rules() {
        let files = c_project();
        let c_files = files.iter().filter(|(n, _)| n.ends_with(".c")).count();
        assert_eq!(c_files, BUILD_FILES);
        let makefile = &files.iter().find(|(n, _)| n == "Makefile").unwrap().1;
        assert!(makefile.contains("main.o"));
        assert!(makefile.contains("unit_38.o"));
        assert!(makefile.contains("\n\t$(CC) $(CFLAGS) -c -o $@ $<\n"));
        // Deterministic: the same text every time, so make sees no change.
        assert_eq!(files, c_project());
    }

    #[test]
    fn argv_per_workload() {
        let bin = Path::new("/b/workload");
        let dir = Path::new("/w");
        assert_eq!(OPEN.argv(bin, dir, 7), ["/b/workload", "open", "7"]);
        assert_eq!(
            BUILD.argv(bin, dir, 1),
            ["/b/workload", "build", "/w/cbuild", "1"]
        );
        for workload in ALL {
            assert!(workload.quick <= workload.full);
            assert!(!workload.syscalls.is_empty());
        }
    }
}
