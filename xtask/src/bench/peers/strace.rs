//! strace: `strace -f --seccomp-bpf -e trace=<syscalls> -o FILE -- CMD`,
//! its command line and the counting of its output's lines.

use std::{ffi::OsString, path::Path, process::Command};

use anyhow::{Context as _, Result};

use super::{Counted, count_lines, run_ok, workload_output};
use crate::bench::workloads::Workload;

pub(super) fn check_strace() -> Result<()> {
    run_ok(Command::new("strace").args([
        "-f",
        "--seccomp-bpf",
        "-e",
        "trace=openat",
        "-o",
        "/dev/null",
        "--",
        "true",
    ]))
    .context("strace cannot trace `true`")?;
    Ok(())
}

/// The strace command line for a workload (without the command itself).
pub fn strace_args(syscalls: &[&str], out: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-f", "-qq", "--seccomp-bpf", "-e"]
        .iter()
        .map(OsString::from)
        .collect();
    args.push(format!("trace={}", syscalls.join(",")).into());
    args.push("-o".into());
    args.push(out.into());
    args.push("--".into());
    args
}

pub(super) fn run_strace(workload: &Workload, argv: &[OsString], out: &Path) -> Result<Counted> {
    let mut command = Command::new("strace");
    command.args(strace_args(workload.syscalls, out)).args(argv);
    let measured = workload_output(&mut command)?;
    let (events, bytes) = count_lines(out, strace_event)?;
    Ok(Counted {
        measured,
        events,
        lost: None,
        bytes,
        note: None,
    })
}

/// Whether a line of `strace -f -o` output is a syscall, counted once: not
/// the `<... resumed>` half of an interrupted one, not a signal (`---`) or
/// exit (`+++`) line.
pub fn strace_event(line: &str) -> bool {
    let rest = line
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    !(rest.is_empty()
        || rest.starts_with("<...")
        || rest.starts_with("---")
        || rest.starts_with("+++"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_lines_count_each_syscall_once() {
        let lines = [
            "123 openat(AT_FDCWD, \"/x\", O_RDONLY|O_CLOEXEC) = 3",
            "124 accept4(3,  <unfinished ...>",
            "123 connect(4, {sa_family=AF_INET, sin_port=htons(1)}, 16) = 0",
            "124 <... accept4 resumed>NULL, NULL, SOCK_CLOEXEC) = 5",
            "123 --- SIGCHLD {si_signo=SIGCHLD} ---",
            "123 +++ exited with 0 +++",
            "exit_group(0)                           = ?",
            "",
        ];
        assert_eq!(lines.iter().filter(|l| strace_event(l)).count(), 4);
    }

    #[test]
    fn strace_command_line() {
        let args = strace_args(&["openat", "read"], Path::new("/o/s.out"));
        assert_eq!(
            args,
            [
                "-f",
                "-qq",
                "--seccomp-bpf",
                "-e",
                "trace=openat,read",
                "-o",
                "/o/s.out",
                "--"
            ]
        );
    }
}
