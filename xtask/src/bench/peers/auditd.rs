//! auditd: one rule limited to the workload's syscalls and login uid, our
//! own auditd or the system's, and the counting of the records in its log.

use std::{
    ffi::OsString,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use super::{Counted, SIGTERM, run_ok, scan_lines, signal, workload_output};
use crate::bench::workloads::{Workload, on_path};

/// The audit rules' key.
pub const AUDIT_KEY: &str = "agent-monitor-bench";

pub(super) fn check_auditd() -> Result<()> {
    AuditStatus::read().context("the kernel's audit status")?;
    if !on_path("auditd") {
        bail!("auditd is not installed");
    }
    if !Path::new("/proc/self/loginuid").exists() {
        bail!("no /proc/self/loginuid: the kernel has no audit syscall support");
    }
    // A rule that matches nothing: the kernel must take syscall rules.
    let rule = audit_rule(&["openat"], u32::MAX - 1);
    run_ok(Command::new("auditctl").arg("-a").args(&rule))
        .context("the kernel does not take a syscall audit rule")?;
    run_ok(Command::new("auditctl").arg("-d").args(&rule))?;
    Ok(())
}

/// The audit rule's arguments after `-a` or `-d`.
pub fn audit_rule(syscalls: &[&str], auid: u32) -> Vec<String> {
    let mut rule = vec!["always,exit".to_string(), "-F".into(), "arch=b64".into()];
    for syscall in syscalls {
        rule.push("-S".into());
        rule.push((*syscall).into());
    }
    rule.extend([
        "-F".into(),
        format!("auid={auid}"),
        "-k".into(),
        AUDIT_KEY.into(),
    ]);
    rule
}

/// Our auditd's configuration: Debian's defaults, with the log in `log`
/// and nothing done when the disk fills or the log grows.
pub fn auditd_conf(log: &Path, plugins: &Path) -> String {
    format!(
        "local_events = yes
write_logs = yes
log_file = {log}
log_group = root
log_format = ENRICHED
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 8
num_logs = 5
priority_boost = 4
name_format = NONE
max_log_file_action = IGNORE
space_left = 75
space_left_action = IGNORE
verify_email = no
action_mail_acct = root
admin_space_left = 50
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
use_libwrap = no
tcp_listen_queue = 5
tcp_max_per_addr = 1
tcp_client_max_idle = 0
transport = TCP
krb5_principal = auditd
distribute_network = no
q_depth = 2000
overflow_action = IGNORE
max_restarts = 10
plugin_dir = {plugins}
end_of_event_timeout = 2
",
        log = log.display(),
        plugins = plugins.display()
    )
}

/// The kernel's audit settings, from `auditctl -s`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditStatus {
    pub enabled: u64,
    pub pid: u64,
    pub backlog_limit: u64,
    pub lost: u64,
    pub backlog: u64,
    /// None on kernels without it.
    pub backlog_wait_time: Option<u64>,
}

impl AuditStatus {
    fn read() -> Result<AuditStatus> {
        let out = run_ok(Command::new("auditctl").arg("-s"))?;
        AuditStatus::parse(&String::from_utf8_lossy(&out.stdout))
    }

    pub fn parse(text: &str) -> Result<AuditStatus> {
        let mut status = AuditStatus::default();
        let mut seen = 0;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(value) = value.parse() else { continue };
            if key == "backlog_wait_time" {
                status.backlog_wait_time = Some(value);
                continue;
            }
            let field = match key {
                "enabled" => &mut status.enabled,
                "pid" => &mut status.pid,
                "backlog_limit" => &mut status.backlog_limit,
                "lost" => &mut status.lost,
                "backlog" => &mut status.backlog,
                _ => continue,
            };
            *field = value;
            seen += 1;
        }
        if seen < 5 {
            bail!("unexpected `auditctl -s` output: {text:?}");
        }
        Ok(status)
    }
}

/// Restores the kernel's audit settings, deletes the rule and stops the
/// auditd we started, whatever happens in between.
struct AuditSession {
    before: AuditStatus,
    rule: Option<Vec<String>>,
    daemon: Option<Child>,
}

impl AuditSession {
    fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            signal(&daemon, SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while daemon.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = daemon.kill();
                    let _ = daemon.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        if let Some(rule) = self.rule.take() {
            let _ = run_ok(Command::new("auditctl").arg("-d").args(&rule));
        }
        self.stop_daemon();
        let _ =
            run_ok(Command::new("auditctl").args(["-b", &self.before.backlog_limit.to_string()]));
        if let Some(wait) = self.before.backlog_wait_time {
            let _ =
                run_ok(Command::new("auditctl").args(["--backlog_wait_time", &wait.to_string()]));
        }
        let _ = run_ok(Command::new("auditctl").args(["-e", &self.before.enabled.to_string()]));
    }
}

pub(super) fn run_auditd(
    workload: &Workload,
    argv: &[OsString],
    out: &Path,
    out_dir: &Path,
) -> Result<Counted> {
    // Rules a run killed on its way left behind.
    let _ = run_ok(Command::new("auditctl").args(["-D", "-k", AUDIT_KEY]));
    let before = AuditStatus::read()?;
    let mut session = AuditSession {
        before,
        rule: None,
        daemon: None,
    };
    // Where the records go: our own auditd's log, or the new part of the
    // system's.
    let system_log = if before.pid == 0 {
        let conf_dir = out_dir.join("auditd-conf");
        let plugins = conf_dir.join("plugins.d");
        fs::create_dir_all(&plugins)?;
        let _ = fs::remove_file(out);
        write_private(&conf_dir.join("auditd.conf"), &auditd_conf(out, &plugins))?;
        let stderr_path = conf_dir.join("auditd.stderr");
        let daemon = Command::new("auditd")
            .arg("-n")
            .arg("-c")
            .arg(&conf_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path)?)
            .spawn()
            .context("starting auditd")?;
        let pid = u64::from(daemon.id());
        session.daemon = Some(daemon);
        let deadline = Instant::now() + Duration::from_secs(10);
        while AuditStatus::read()?.pid != pid {
            if let Some(daemon) = session.daemon.as_mut()
                && let Some(status) = daemon.try_wait()?
            {
                session.daemon = None;
                bail!(
                    "auditd exited at start ({status}): {}",
                    fs::read_to_string(&stderr_path).unwrap_or_default().trim()
                );
            }
            if Instant::now() > deadline {
                bail!("auditd did not register with the kernel within 10 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    } else {
        Some(SystemLog::now()?)
    };
    run_ok(Command::new("auditctl").args(["-b", "8192"]))?;
    if before.backlog_wait_time.is_some() {
        run_ok(Command::new("auditctl").args(["--backlog_wait_time", "60000"]))?;
    }
    let auid = audit_uid()?;
    let rule = audit_rule(workload.syscalls, auid);
    run_ok(Command::new("auditctl").arg("-a").args(&rule)).context("adding the audit rule")?;
    session.rule = Some(rule);

    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("echo {auid} > /proc/self/loginuid && exec \"$@\""))
        .arg("sh")
        .args(argv);
    let measured = workload_output(&mut command);
    // The rule goes first, then the kernel's queue drains into the log.
    if let Some(rule) = session.rule.take() {
        run_ok(Command::new("auditctl").arg("-d").args(&rule))?;
    }
    let measured = measured?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while AuditStatus::read()?.backlog > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let lost = AuditStatus::read()?.lost.saturating_sub(before.lost);
    if session.daemon.is_some() {
        // It writes out what it holds on the way.
        session.stop_daemon();
    } else {
        // The system's auditd flushes on its own schedule.
        thread::sleep(Duration::from_secs(1));
    }
    drop(session);
    let (events, bytes, note) = match system_log {
        None => {
            let mut events = 0;
            let bytes = scan_lines(out, 0, |line| events += u64::from(audit_event(line, auid)))?;
            (events, bytes, None)
        }
        Some(log) => log.count(auid)?,
    };
    Ok(Counted {
        measured,
        events,
        lost: Some(lost),
        bytes,
        note,
    })
}

/// The system's audit log as a run starts, to count the records the run
/// adds across the log's rotations.
struct SystemLog {
    path: PathBuf,
    /// Seconds since the epoch, as in the records' `msg=audit(SECONDS:N)`.
    start: f64,
}

impl SystemLog {
    fn now() -> Result<SystemLog> {
        Ok(SystemLog {
            path: system_audit_log(),
            start: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)?
                .as_secs_f64(),
        })
    }

    /// Our records (by key, login uid and time) in the log and its rotated
    /// files (`audit.log.N`), the bytes of every record since the start,
    /// and a note when rotation has already deleted some of them: when no
    /// remaining file goes back to the start.
    fn count(&self, auid: u32) -> Result<(u64, u64, Option<String>)> {
        let (mut events, mut bytes) = (0, 0);
        let mut oldest = f64::INFINITY;
        let rotated = (1..100).map(|n| PathBuf::from(format!("{}.{n}", self.path.display())));
        for path in std::iter::once(self.path.clone()).chain(rotated) {
            if !path.exists() {
                continue;
            }
            scan_lines(&path, 0, |line| {
                let Some(time) = audit_time(line) else {
                    return;
                };
                oldest = oldest.min(time);
                if time >= self.start {
                    bytes += line.len() as u64 + 1;
                    events += u64::from(audit_event(line, auid));
                }
            })?;
        }
        let note = (oldest > self.start).then(|| {
            format!(
                "the system's auditd rotated {} during the run and deleted the oldest part: the count is a lower bound",
                self.path.display()
            )
        });
        Ok((events, bytes, note))
    }
}

/// The time of an audit record, `msg=audit(SECONDS.MILLIS:SERIAL)`.
pub fn audit_time(line: &str) -> Option<f64> {
    let rest = line.split_once("msg=audit(")?.1;
    rest.split_once(':')?.0.parse().ok()
}

/// A uid for the workload's login uid: see [`pick_audit_uid`].
fn audit_uid() -> Result<u32> {
    let passwd = fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    let mut in_use = Vec::new();
    for entry in fs::read_dir("/proc")?.flatten() {
        if let Ok(uid) = fs::read_to_string(entry.path().join("loginuid"))
            && let Ok(uid) = uid.trim().parse()
        {
            in_use.push(uid);
        }
    }
    pick_audit_uid(&passwd, &in_use)
        .context("every account in /etc/passwd is some process's login uid")
}

/// The uid of an account in `passwd` (an `/etc/passwd`) that is none of
/// `in_use` (the processes' login uids): `nobody` (65534) when it can,
/// else the highest. Never 0 nor the unset 4294967295.
pub fn pick_audit_uid(passwd: &str, in_use: &[u32]) -> Option<u32> {
    let mut uids: Vec<u32> = passwd
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .filter(|&uid| uid != 0 && uid != u32::MAX && !in_use.contains(&uid))
        .collect();
    uids.sort_unstable_by_key(|&uid| (uid != 65534, std::cmp::Reverse(uid)));
    uids.first().copied()
}

/// Whether an audit log line is the SYSCALL record of one of our events:
/// our key, and the workload's login uid.
pub fn audit_event(line: &str, auid: u32) -> bool {
    line.starts_with("type=SYSCALL ")
        && line.contains(&format!(" auid={auid} "))
        && line.contains(&format!("key=\"{AUDIT_KEY}\""))
}

/// `log_file` of the system's auditd.conf.
fn system_audit_log() -> PathBuf {
    fs::read_to_string("/etc/audit/auditd.conf")
        .ok()
        .and_then(|conf| {
            conf.lines().find_map(|l| {
                let (key, value) = l.split_once('=')?;
                (key.trim() == "log_file").then(|| PathBuf::from(value.trim()))
            })
        })
        .unwrap_or_else(|| PathBuf::from("/var/log/audit/audit.log"))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o640))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_rule_is_limited_to_the_syscalls_and_the_login_uid() {
        assert_eq!(
            audit_rule(&["openat", "close"], 7).join(" "),
            "always,exit -F arch=b64 -S openat -S close -F auid=7 -k agent-monitor-bench"
        );
        let ours = "type=SYSCALL msg=audit(1795760346.365:336145): arch=c000003e syscall=257 success=yes exit=3 ppid=1 pid=2 auid=7 uid=0 comm=\"workload\" key=\"agent-monitor-bench\"\u{1d}ARCH=x86_64 AUID=\"nobody\"";
        assert!(audit_event(ours, 7));
        assert!(!audit_event(ours, 8));
        assert_eq!(audit_time(ours), Some(1_795_760_346.365));
        assert!(!audit_event(
            "type=PATH msg=audit(1.2:3): item=0 name=\"/x\" auid=7 key=\"agent-monitor-bench\"",
            7
        ));
        assert!(!audit_event(
            "type=SYSCALL msg=audit(1.2:3): auid=7 key=\"other\"",
            7
        ));
        assert_eq!(
            audit_time("type=DAEMON_START msg=audit(12.5:1): op=start"),
            Some(12.5)
        );
        assert_eq!(audit_time("garbage"), None);
    }

    #[test]
    fn audit_status_parses() {
        let text = "enabled 1\nfailure 1\npid 42\nrate_limit 0\nbacklog_limit 8192\nlost 3\nbacklog 0\nbacklog_wait_time 60000\nbacklog_wait_time_actual 0\nloginuid_immutable 0 unlocked\n";
        assert_eq!(
            AuditStatus::parse(text).unwrap(),
            AuditStatus {
                enabled: 1,
                pid: 42,
                backlog_limit: 8192,
                lost: 3,
                backlog: 0,
                backlog_wait_time: Some(60000),
            }
        );
        assert!(AuditStatus::parse("Error - audit support not in kernel").is_err());
    }

    #[test]
    fn audit_uid_is_an_unused_account() {
        let passwd = "root:x:0:0::/root:/bin/bash\nbin:x:2:2::/bin:/usr/sbin/nologin\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                      dev:x:1000:1000::/home/dev:/bin/bash\n";
        assert_eq!(pick_audit_uid(passwd, &[u32::MAX, 0]), Some(65534));
        assert_eq!(pick_audit_uid(passwd, &[65534]), Some(1000));
        assert_eq!(pick_audit_uid("root:x:0:0::/:/bin/sh\n", &[]), None);
    }

    #[test]
    fn auditd_conf_logs_where_asked() {
        let conf = auditd_conf(Path::new("/o/audit.log"), Path::new("/o/plugins.d"));
        assert!(conf.contains("\nlog_file = /o/audit.log\n"));
        assert!(conf.contains("\nplugin_dir = /o/plugins.d\n"));
        assert!(conf.contains("\nmax_log_file_action = IGNORE\n"));
    }
}
