//! The peers agent-monitor is compared with: strace, auditd and bpftrace,
//! each recording the same workload's syscalls to a file.
//!
//! Use: [`install`] once (installs the missing peers from Debian's packages
//! and says which of them work on this kernel, and why not for the others);
//! then for each working peer and workload, [`run_under`] runs the workload
//! under the peer and returns the workload's own timing (the same `ns=` line
//! as a plain run, so the peers' start-up is not counted) and how many
//! events the peer recorded.
//!
//! Every peer is limited to the workload's syscalls
//! ([`Workload::syscalls`]) and to the workload's process tree:
//! - strace: `strace -f --seccomp-bpf -e trace=<syscalls> -o FILE -- CMD`.
//!   `-e trace=` with `--seccomp-bpf` is the fair configuration: the
//!   tracee stops only at the traced syscalls instead of at every one. It
//!   follows the tree by ptrace.
//! - auditd: one rule, `-a always,exit -F arch=b64 -S <syscalls> -F
//!   auid=<A> -k agent-monitor-bench`. Audit has no process-tree filter
//!   (`-F pid`/`-F ppid` miss grandchildren), but the login uid is
//!   inherited by every descendant: the workload starts under `sh -c 'echo
//!   A > /proc/self/loginuid; exec CMD'` with a uid A that no process has
//!   as its login uid, so the rule matches exactly the workload's tree
//!   ([`pick_audit_uid`]: an existing account, `nobody` first, since
//!   auditd's ENRICHED format looks every uid up, and an unknown one costs
//!   several times more per record). The kernel's backlog is Debian's:
//!   `-b 8192 --backlog_wait_time 60000`. When no audit daemon
//!   runs, one of our own (`auditd -n -c DIR`) writes to a log in the
//!   output directory and is stopped afterwards; when the system's runs,
//!   it is used as it is and the records added to its log are counted
//!   (across rotations, as far as the rotated files remain:
//!   [`PeerSample::note`] says when some did not).
//! - bpftrace: a generated script ([`bpftrace_script`]) on the syscall exit
//!   tracepoints (and `sched:sched_process_fork/exec/exit` for clone,
//!   execve and exit), one `printf` line per event, `-o FILE`. It keeps to
//!   the workload by a cgroup v2: the workload starts under
//!   `sh -c 'echo $$ > CGROUP/cgroup.procs; exec CMD'` and every probe has
//!   the predicate `cgroup == cgroupid("CGROUP")`. Only tracepoints:
//!   kprobes may be missing from the kernel.
//!
//! All of this needs root. Every run leaves the system as it found it: the
//! audit rule is deleted and the kernel's audit settings restored, an
//! auditd we started is stopped, bpftrace is stopped with SIGINT, the
//! cgroup is removed; the peers' output files are deleted once counted.

use std::{
    ffi::{OsStr, OsString},
    fs,
    io::{BufRead as _, BufReader, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::workloads::{Measured, Workload, on_path, parse_measured};

mod auditd;
mod bpftrace;
mod strace;
#[cfg(test)]
mod tests;

unsafe extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Strace,
    Auditd,
    Bpftrace,
}

impl Peer {
    pub const ALL: [Peer; 3] = [Peer::Strace, Peer::Auditd, Peer::Bpftrace];

    pub fn name(self) -> &'static str {
        match self {
            Peer::Strace => "strace",
            Peer::Auditd => "auditd",
            Peer::Bpftrace => "bpftrace",
        }
    }

    /// The Debian package.
    pub fn package(self) -> &'static str {
        self.name()
    }

    /// The program whose presence means the package is installed.
    fn program(self) -> &'static str {
        match self {
            Peer::Strace => "strace",
            Peer::Auditd => "auditctl",
            Peer::Bpftrace => "bpftrace",
        }
    }

    /// How the peer is run, for the report.
    pub fn setup(self) -> &'static str {
        match self {
            Peer::Strace => "`strace -f --seccomp-bpf -e trace=<the workload's syscalls> -o FILE`",
            Peer::Auditd => {
                "auditd with Debian's settings (log format ENRICHED, flush INCREMENTAL_ASYNC, backlog 8192, backlog wait 60 s), one rule `-a always,exit -F arch=b64 -S <the workload's syscalls> -F auid=<the workload's login uid>`"
            }
            Peer::Bpftrace => {
                "bpftrace, one `printf` line per event to `-o FILE`, on the syscall exit tracepoints (sched_process_* for fork/exec/exit), filtered by the workload's cgroup"
            }
        }
    }
}

/// Whether a peer works here.
#[derive(Clone, Debug)]
pub struct PeerStatus {
    pub peer: Peer,
    /// Its version line, when it could be read.
    pub version: Option<String>,
    /// Why it cannot be run; None when it works.
    pub problem: Option<String>,
}

impl PeerStatus {
    pub fn works(&self) -> bool {
        self.problem.is_none()
    }
}

/// One run of a workload under a peer.
#[derive(Clone, Debug)]
pub struct PeerSample {
    /// The workload's own timing, as in a plain run.
    pub measured: Measured,
    /// Events the peer recorded: syscall lines for strace (an interrupted
    /// call's `<... resumed>` line is not counted again), SYSCALL records
    /// with the key for auditd, event lines for bpftrace.
    pub events: u64,
    /// Events the peer says it lost: the kernel's audit `lost` counter's
    /// increase, bpftrace's "Lost N events"; None for strace, which cannot
    /// lose any.
    pub lost: Option<u64>,
    /// Size of the peer's output file.
    pub output_bytes: u64,
    /// Wall clock of the whole run, the peer's start and stop included.
    pub wall: Duration,
    /// Anything that makes the count less than exact (the system's auditd
    /// rotating its log during the run).
    pub note: Option<String>,
}

/// Installs the missing peers (`apt-get install -y --no-install-recommends`)
/// and checks each: one status per peer, in [`Peer::ALL`]'s order. A peer
/// that cannot be installed or cannot run here has its reason in
/// [`PeerStatus::problem`]. Needs root.
pub fn install() -> Vec<PeerStatus> {
    let missing: Vec<&str> = Peer::ALL
        .iter()
        .filter(|p| !on_path(p.program()))
        .map(|p| p.package())
        .collect();
    let install_error = if missing.is_empty() {
        None
    } else {
        apt_install(&missing).err()
    };
    Peer::ALL
        .iter()
        .map(|&peer| {
            let mut status = check(peer);
            if let (Some(problem), Some(error)) = (&mut status.problem, &install_error)
                && missing.contains(&peer.package())
            {
                *problem = format!("{problem} (installing it failed: {error:#})");
            }
            status
        })
        .collect()
}

/// Installs Debian packages with apt-get, non-interactively and without
/// recommends; `apt-get update` runs only when the install fails, which
/// stale or missing package lists cause. No service is started by the
/// install (auditd's would be): a `policy-rc.d` that denies it is in
/// place meanwhile, unless the system has one of its own.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let _no_services = NoServiceStarts::new();
    let install = || {
        let mut command = Command::new("apt-get");
        command
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive");
        crate::sh(&mut command)
    };
    eprintln!(
        "bench: installing {} from Debian's packages",
        packages.join(" ")
    );
    if install().is_ok() {
        return Ok(());
    }
    eprintln!("bench: the install failed; updating the package lists and trying again");
    crate::sh(Command::new("apt-get").args(["update", "-qq"]))?;
    install()
}

/// `/usr/sbin/policy-rc.d` answering 101 (action forbidden) to every
/// service start during a package install, removed on drop; nothing when
/// the system has one already.
struct NoServiceStarts(Option<PathBuf>);

impl NoServiceStarts {
    fn new() -> NoServiceStarts {
        use std::os::unix::fs::PermissionsExt as _;
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return NoServiceStarts(None);
        }
        let written = fs::write(
            &path,
            "#!/bin/sh\n# cargo xtask bench: no service starts while it installs.\nexit 101\n",
        )
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)));
        NoServiceStarts(written.is_ok().then_some(path))
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// Checks that `peer` is installed and works on this kernel.
pub fn check(peer: Peer) -> PeerStatus {
    let version = version(peer);
    let problem = if !on_path(peer.program()) {
        Some(format!("{} is not installed", peer.program()))
    } else {
        match peer {
            Peer::Strace => strace::check_strace(),
            Peer::Auditd => auditd::check_auditd(),
            Peer::Bpftrace => bpftrace::check_bpftrace(),
        }
        .err()
        .map(|e| format!("{e:#}"))
    };
    PeerStatus {
        peer,
        version,
        problem,
    }
}

fn version(peer: Peer) -> Option<String> {
    let (program, arg) = match peer {
        Peer::Strace => ("strace", "-V"),
        Peer::Auditd => ("auditctl", "-v"),
        Peer::Bpftrace => ("bpftrace", "--version"),
    };
    let out = Command::new(program).arg(arg).output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().next().map(|l| l.trim().to_string())
}

/// Runs `argv` (a [`Workload::argv`]) under `peer`, with its output file in
/// `out_dir` (created if missing; the file is deleted once counted).
pub fn run_under(
    peer: Peer,
    workload: &Workload,
    argv: &[OsString],
    out_dir: &Path,
) -> Result<PeerSample> {
    fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let out = out_dir.join(format!("{}-{}.out", peer.name(), workload.name));
    let start = Instant::now();
    let sample = match peer {
        Peer::Strace => strace::run_strace(workload, argv, &out),
        Peer::Auditd => auditd::run_auditd(workload, argv, &out, out_dir),
        Peer::Bpftrace => bpftrace::run_bpftrace(workload, argv, &out, out_dir),
    }
    .with_context(|| {
        format!(
            "running the {} workload under {}",
            workload.name,
            peer.name()
        )
    });
    let _ = fs::remove_file(&out);
    let sample = sample?;
    Ok(PeerSample {
        measured: sample.measured,
        events: sample.events,
        lost: sample.lost,
        output_bytes: sample.bytes,
        note: sample.note,
        wall: start.elapsed(),
    })
}

/// What a peer's run gives [`run_under`].
struct Counted {
    measured: Measured,
    events: u64,
    lost: Option<u64>,
    bytes: u64,
    note: Option<String>,
}

// Shared ---------------------------------------------------------------

/// Runs a wrapped workload, stdout captured, and reads its `ns=` line.
fn workload_output(command: &mut Command) -> Result<Measured> {
    let out = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!(
            "the workload failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    parse_measured(&out.stdout)
}

/// Lines of `path` for which `event` holds, and the file's size.
fn count_lines(path: &Path, event: impl Fn(&str) -> bool) -> Result<(u64, u64)> {
    let mut count = 0;
    let bytes = scan_lines(path, 0, |line| count += u64::from(event(line)))?;
    Ok((count, bytes))
}

/// Calls `visit` with each line of `path` from `offset` on (without its
/// line end); returns the number of bytes read.
fn scan_lines(path: &Path, offset: u64, mut visit: impl FnMut(&str)) -> Result<u64> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file.metadata()?.len();
    let offset = offset.min(size);
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        visit(String::from_utf8_lossy(&line).trim_end());
    }
    Ok(size - offset)
}

/// Runs a command to completion, failing with its stderr when it fails.
fn run_ok(command: &mut Command) -> Result<Output> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {}", show(command)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            show(command),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn show(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child, which has not been reaped yet.
    unsafe {
        kill(child.id() as i32, signal);
    }
}
