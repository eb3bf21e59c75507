//! bpftrace: a generated script on the syscall exit tracepoints, filtered
//! by a cgroup v2 of the workload's own, and the counting of its lines.

use std::{
    ffi::OsString,
    fmt::Write as _,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::{Counted, SIGINT, run_ok, scan_lines, signal, workload_output};
use crate::bench::workloads::Workload;

pub(super) fn check_bpftrace() -> Result<()> {
    cgroup2_mount().context("bpftrace needs a cgroup v2 hierarchy to filter by")?;
    // Exits at the first openat on the host (bpftrace makes some itself).
    let mut child = Command::new("bpftrace")
        .args(["-e", "tracepoint:syscalls:sys_enter_openat { exit(); }"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting bpftrace")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .map(|mut e| e.read_to_string(&mut stderr));
            if !status.success() {
                bail!("bpftrace failed ({status}): {}", stderr.trim());
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("bpftrace did not attach to a tracepoint within 60 s");
        }
        let _ = fs::File::open("/proc/self/stat");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The bpftrace program recording `syscalls` of the processes in the cgroup
/// `cgroup` (a path under the cgroup v2 mount): one line per event, `nsecs
/// pid tid comm event …`, the path for openat and exec, the result for
/// the others; clone/fork/vfork become `sched_process_fork`, execve
/// `sched_process_exec`, exit and exit_group `sched_process_exit`.
///
/// BEGIN runs once every probe is attached, and creates the file `ready`
/// (with `system`, hence `--unsafe`): bpftrace buffers its `-o` output
/// until it exits, so no line can say it. `ready` is best relative to
/// bpftrace's working directory: bpftrace 0.17 takes no string over 64
/// bytes.
pub fn bpftrace_script(syscalls: &[&str], cgroup: &Path, ready: &Path) -> String {
    let filter = format!("/cgroup == cgroupid(\"{}\")/", cgroup.display());
    let head = "printf(\"%llu %d %d %s";
    let who = "nsecs, pid, tid, comm";
    let mut script = format!("BEGIN {{ system(\"touch {}\"); }}\n", ready.display());
    let mut sched = Vec::new();
    for &syscall in syscalls {
        let probe = match syscall {
            "clone" | "clone3" | "fork" | "vfork" => "fork",
            "execve" | "execveat" => "exec",
            "exit" | "exit_group" => "exit",
            _ => "",
        };
        if !probe.is_empty() {
            if !sched.contains(&probe) {
                sched.push(probe);
            }
            continue;
        }
        if syscall == "openat" {
            writeln!(
                script,
                "tracepoint:syscalls:sys_enter_openat {filter} {{ @path[tid] = args->filename; }}
tracepoint:syscalls:sys_exit_openat {filter} {{ {head} openat %s %d\\n\", {who}, str(@path[tid]), args->ret); delete(@path[tid]); }}"
            )
            .expect("writing to a String");
        } else {
            writeln!(
                script,
                "tracepoint:syscalls:sys_exit_{syscall} {filter} {{ {head} {syscall} %d\\n\", {who}, args->ret); }}"
            )
            .expect("writing to a String");
        }
    }
    for probe in sched {
        let (format, args) = match probe {
            "fork" => (" fork %d", ", args->child_pid"),
            "exec" => (" exec %s", ", str(args->filename)"),
            _ => (" exit", ""),
        };
        writeln!(
            script,
            "tracepoint:sched:sched_process_{probe} {filter} {{ {head}{format}\\n\", {who}{args}); }}"
        )
        .expect("writing to a String");
    }
    if syscalls.contains(&"openat") {
        // No map dump at the end: only event lines in the output.
        script.push_str("END { clear(@path); }\n");
    }
    script
}

/// A cgroup of our own under the cgroup v2 hierarchy, removed on drop.
struct Cgroup {
    path: PathBuf,
    /// The hierarchy we mounted because none was, unmounted on drop.
    mounted: Option<PathBuf>,
}

impl Cgroup {
    fn create(name: &str) -> Result<Cgroup> {
        let (root, mounted) = match cgroup2_mount() {
            Ok(root) => (root, None),
            Err(_) => {
                // A short path: bpftrace 0.17 takes no string over 64 bytes.
                let root = std::env::temp_dir().join("agent-monitor-cgroup2");
                fs::create_dir_all(&root)?;
                run_ok(
                    Command::new("mount")
                        .args(["-t", "cgroup2", "none"])
                        .arg(&root),
                )
                .context("no cgroup v2 hierarchy is mounted, and mounting one failed")?;
                (root.clone(), Some(root))
            }
        };
        let path = root.join(name);
        let cgroup = Cgroup { path, mounted };
        if !cgroup.path.exists() {
            fs::create_dir(&cgroup.path)
                .with_context(|| format!("creating the cgroup {}", cgroup.path.display()))?;
        }
        Ok(cgroup)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Its processes have all exited; the kernel may take a moment to
        // let go of the last one.
        for _ in 0..50 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        if let Some(root) = &self.mounted {
            let _ = Command::new("umount").arg(root).status();
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid system).
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    cgroup2_in_mountinfo(&mountinfo).context("no cgroup2 file system is mounted")
}

/// The first cgroup2 mount point in a `/proc/self/mountinfo`.
pub fn cgroup2_in_mountinfo(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
    })
}

/// Stops bpftrace with SIGINT (it then detaches and flushes its output).
struct Tracer(Option<Child>);

impl Tracer {
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        signal(&child, SIGINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("bpftrace exited with {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("bpftrace did not stop within 30 s of SIGINT");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

pub(super) fn run_bpftrace(
    workload: &Workload,
    argv: &[OsString],
    out: &Path,
    out_dir: &Path,
) -> Result<Counted> {
    let cgroup = Cgroup::create(&format!("agent-monitor-bench-{}", std::process::id()))?;
    let script_path = out_dir.join(format!("bpftrace-{}.bt", workload.name));
    let ready_name = format!("bpftrace-{}.ready", workload.name);
    let ready = out_dir.join(&ready_name);
    let _ = fs::remove_file(&ready);
    fs::write(
        &script_path,
        bpftrace_script(workload.syscalls, &cgroup.path, Path::new(&ready_name)),
    )?;
    let stderr_path = out_dir.join(format!("bpftrace-{}.stderr", workload.name));
    let _ = fs::remove_file(out);
    let child = Command::new("bpftrace")
        .current_dir(out_dir)
        .arg("--unsafe")
        .arg("-o")
        .arg(out)
        .arg(&script_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_path)?)
        .spawn()
        .context("starting bpftrace")?;
    let mut tracer = Tracer(Some(child));
    let stderr = || fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready.exists() {
        if let Some(child) = tracer.0.as_mut()
            && let Some(status) = child.try_wait()?
        {
            tracer.0 = None;
            bail!("bpftrace exited ({status}): {}", stderr().trim());
        }
        if Instant::now() > deadline {
            bail!("bpftrace did not attach within 120 s: {}", stderr().trim());
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$@\"",
            cgroup.path.display()
        ))
        .arg("sh")
        .args(argv);
    let measured = workload_output(&mut command);
    let stopped = tracer.stop();
    drop(cgroup);
    let measured = measured?;
    stopped?;
    let mut events = 0;
    let mut lost = bpftrace_lost(&stderr());
    let bytes = scan_lines(out, 0, |line| {
        if line.starts_with("Lost ") {
            lost += bpftrace_lost(line);
        } else if !line.is_empty() && !line.starts_with("Attaching ") {
            events += 1;
        }
    })?;
    for file in [&stderr_path, &script_path, &ready] {
        let _ = fs::remove_file(file);
    }
    Ok(Counted {
        measured,
        events,
        lost: Some(lost),
        bytes,
        note: None,
    })
}

/// The sum of bpftrace's "Lost N events" messages.
pub fn bpftrace_lost(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Lost ")?;
            let (n, tail) = rest.split_once(' ')?;
            tail.starts_with("events").then(|| n.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpftrace_script_per_syscall() {
        let script = bpftrace_script(
            &["openat", "read", "clone", "execve", "exit_group", "wait4"],
            Path::new("/sys/fs/cgroup/b"),
            Path::new("/o/ready"),
        );
        let filter = "/cgroup == cgroupid(\"/sys/fs/cgroup/b\")/";
        assert!(script.starts_with("BEGIN { system(\"touch /o/ready\"); }\n"));
        for probe in [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_exit_openat",
            "tracepoint:syscalls:sys_exit_read",
            "tracepoint:syscalls:sys_exit_wait4",
            "tracepoint:sched:sched_process_fork",
            "tracepoint:sched:sched_process_exec",
            "tracepoint:sched:sched_process_exit",
        ] {
            assert!(
                script.contains(&format!("{probe} {filter} {{")),
                "{probe} in\n{script}"
            );
        }
        assert!(!script.contains("sys_exit_clone"));
        assert!(!script.contains("sys_exit_exit_group"));
        assert!(script.ends_with("END { clear(@path); }\n"));
        // @path exists only with openat; bpftrace refuses an unknown map.
        let script = bpftrace_script(&["statx"], Path::new("/c"), Path::new("r"));
        assert!(!script.contains("@path"));
    }

    #[test]
    fn cgroup2_mount_points() {
        let hybrid = "30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_in_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = "35 24 0:30 / /sys/fs/cgroup rw shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_in_mountinfo(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            cgroup2_in_mountinfo("1 2 0:1 / / rw - ext4 /dev/vda rw\n"),
            None
        );
    }

    #[test]
    fn bpftrace_lost_messages() {
        assert_eq!(bpftrace_lost("Lost 12 events\nx\nLost 3 events\n"), 12 + 3);
        assert_eq!(bpftrace_lost("Attaching 3 probes...\n"), 0);
    }
}
