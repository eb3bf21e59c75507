//! The daemon under test, and what the tests read of it from /proc.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::support::monitor_command;

/// A daemon with its own config, socket and evidence in a temp directory.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    pub evidence: PathBuf,
    pub config: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// A config for `dir` with `extra` appended (rules, identity).
    pub fn config_text(dir: &Path, extra: &str) -> String {
        format!(
            "[evidence]\ndir = \"{0}/evidence\"\nrotate_seconds = 1\n\
             [api]\nsocket = \"{0}/run/api.sock\"\n\
             [capture]\nkey = \"{0}/capture.key\"\n\
             [alerts]\njsonl = \"{0}/alerts.jsonl\"\n{extra}",
            dir.display()
        )
    }

    pub fn start(dir: &Path, extra: &str) -> Daemon {
        let config = dir.join("config.toml");
        std::fs::write(&config, Daemon::config_text(dir, extra)).unwrap();
        let mut daemon = Daemon {
            child: None,
            socket: dir.join("run/api.sock"),
            evidence: dir.join("evidence"),
            config,
            log: dir.join("daemon.log"),
        };
        daemon.spawn();
        daemon
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = monitor_command()
            .args(["daemon", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while UnixStream::connect(&self.socket).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the daemon exited ({status}) before it listened:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never listened:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn request(&self, request: Value) -> Value {
        let stream = UnixStream::connect(&self.socket).unwrap();
        let mut writer = stream.try_clone().unwrap();
        writer.write_all(format!("{request}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    pub fn status(&self) -> Value {
        let reply = self.request(json!({"type": "status"}));
        assert_eq!(reply["ok"], true, "{reply}");
        reply["status"].clone()
    }

    /// Polls the status until `done` holds, for at most 20 s.
    pub fn wait_for(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status();
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; status: {status:#}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `agent-monitor run` handing `sh -c script` to this daemon, as the
    /// agent `handed`.
    pub fn run_handed(&self, script: &str) -> Command {
        let mut run = monitor_command();
        run.args(["run", "--agent", "handed", "--daemon-socket"])
            .arg(&self.socket)
            .args(["--", "sh", "-c", script]);
        run
    }

    /// Rewrites the config for `dir` with `extra` and has the daemon
    /// reload it.
    pub fn reload(&self, dir: &Path, extra: &str) {
        std::fs::write(&self.config, Daemon::config_text(dir, extra)).unwrap();
        self.signal(libc::SIGHUP);
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions.
        assert_eq!(unsafe { libc::kill(self.pid() as i32, signal) }, 0);
    }

    /// SIGTERM, and the daemon's exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let status = self.child.take().unwrap().wait().unwrap();
        assert!(
            status.success(),
            "the daemon failed to stop:\n{}",
            self.log_text()
        );
        assert!(!self.socket.exists(), "the socket outlived the daemon");
        status
    }

    pub fn table(&self, table: &str) -> String {
        format!(
            "read_parquet('{}/{table}/**/*.parquet', hive_partitioning=true, union_by_name=true)",
            self.evidence.display()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A copy of /bin/sh named `name` in `dir`/bin: an agent program with an
/// executable path of its own.
pub fn agent_program(dir: &Path, name: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join(name);
    std::fs::copy("/bin/sh", &path).unwrap();
    path
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("am-daemon-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

pub fn run_ok(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The daemon's links to the `sys_exit` tracepoint, as the kernel lists
/// them in the fdinfo of its open files.
pub fn sys_exit_links(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .filter(|info| {
            info.contains("link_type:\traw_tracepoint") && info.contains("tp_name:\tsys_exit\n")
        })
        .count()
}

/// The inodes the daemon's exec gate has marked, as the kernel lists
/// them in the fdinfo of its fanotify group.
pub fn exec_gate_marks(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|line| line.strip_prefix("fanotify ino:"))
                .filter_map(|rest| u64::from_str_radix(rest.split(' ').next()?, 16).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Writes a line to the FIFO `fifo` once `reader` has opened it, without
/// waiting forever for a reader that died first.
pub fn release_reader(fifo: &Path, reader: &mut Child) {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // Without a reader, a non-blocking open for writing fails (ENXIO).
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
        {
            Ok(mut writer) => {
                writer.write_all(b"go\n").unwrap();
                return;
            }
            Err(err) => {
                if let Some(status) = reader.try_wait().unwrap() {
                    panic!("the FIFO's reader exited first ({status}): {err}");
                }
                assert!(
                    Instant::now() < deadline,
                    "no reader opened {}",
                    fifo.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// How many times the process's threads blocked over `span`: each is a
/// wait for a timer or for input, ended by one wakeup.
pub fn blocking_waits(pid: u32, span: Duration) -> u64 {
    let total = || -> u64 {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .filter_map(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|count| count.trim().parse::<u64>().ok())
            })
            .sum()
    };
    let before = total();
    std::thread::sleep(span);
    total().saturating_sub(before)
}
