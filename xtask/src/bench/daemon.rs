//! The daemon of setup (a): with no rule it has nothing to track and its
//! syscall probes are detached; with an `exe` rule the exec gate holds
//! that program's execs and the probes stay detached; with a `comm` rule
//! they are attached all along, and every syscall on the host passes
//! their filter and stops there.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::overhead::Setup;

/// The daemon of setup (a), started and stopped around one workload run.
pub struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Daemon {
    /// Starts it with `setup`'s rules, and returns once its syscall
    /// probes are in the state that setup is about.
    pub fn start(monitor: &Path, work_dir: &Path, setup: Setup) -> Result<Daemon> {
        let dir = work_dir.join("daemon");
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let config = dir.join("config.toml");
        // An agent program that exists and never runs during the bench.
        let agent = dir.join("absent-agent");
        fs::copy("/bin/true", &agent)?;
        let (rule, expected) = match setup {
            Setup::Watching => (
                format!(
                    "[[agents]]\nname = \"absent\"\nexe = \"{}\"\n",
                    agent.display()
                ),
                "detached",
            ),
            Setup::WatchingAttached => (
                "[[agents]]\nname = \"absent\"\ncomm = \"absent-agent\"\n".to_string(),
                "attached",
            ),
            _ => (String::new(), "detached"),
        };
        fs::write(
            &config,
            format!(
                "[evidence]\ndir = \"{0}/evidence\"\n[api]\nsocket = \"{0}/api.sock\"\n\
                 [capture]\nkey = \"{0}/capture.key\"\n{rule}",
                dir.display()
            ),
        )?;
        let mut child = Command::new(monitor)
            .args(["daemon", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let socket = dir.join("api.sock");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait()? {
                bail!("the daemon exited with {status} before it listened");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the daemon did not listen within 60 s");
            }
            thread::sleep(Duration::from_millis(20));
        }
        // The daemon detaches its probes once it finds nothing to watch;
        // measuring before then would measure the wrong setup.
        loop {
            let state = probes_state(&socket)?;
            if state == expected {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the daemon's syscall probes stayed {state}, not {expected}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon { child, dir })
    }

    pub fn stop(mut self) -> Result<()> {
        // SIGTERM: the daemon flushes and exits on its own.
        Command::new("kill")
            .arg(self.child.id().to_string())
            .status()?;
        let status = self.child.wait()?;
        let _ = fs::remove_dir_all(&self.dir);
        if !status.success() {
            bail!("the daemon exited with {status}");
        }
        Ok(())
    }
}

/// The daemon's `syscall_probes.state`, from its status.
fn probes_state(socket: &Path) -> Result<String> {
    use std::io::{BufRead as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.write_all(b"{\"type\":\"status\"}\n")?;
    let mut line = String::new();
    std::io::BufReader::new(stream).read_line(&mut line)?;
    let reply: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("the daemon's status: {line}"))?;
    reply["status"]["syscall_probes"]["state"]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no syscall_probes in the daemon's status: {line}"))
}
