//! `agent-monitor run` when a daemon is running: the daemon records the
//! command, and `run` only starts it. The command is forked, registered
//! with the daemon by pid, and only then lets itself exec, so the daemon
//! tracks it from its first instruction, as `run` does on its own.

use std::{
    ffi::{CString, OsString},
    io,
    os::unix::ffi::OsStrExt,
    path::Path,
    sync::atomic::{AtomicI32, Ordering},
};

use serde_json::json;

use crate::{
    api::client::{Client, ClientError},
    event::ExitStatus,
};

/// Bytes reserved for the session id in the child's environment: a UUID
/// is 36; an id the daemon gives is never longer than this.
const SESSION_ROOM: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum ClientRunError {
    #[error("the daemon at {socket}: {source}")]
    Daemon {
        socket: String,
        #[source]
        source: ClientError,
    },
    #[error("{0}: {1}")]
    Io(&'static str, #[source] io::Error),
    #[error("cannot run {command}: {source}")]
    Exec {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("a command or argument holds a NUL byte")]
    Nul,
}

/// What the daemon recorded the command as, and how it ended.
#[derive(Debug)]
pub struct ClientRun {
    pub session_id: String,
    pub status: ExitStatus,
}

/// The pid SIGINT and SIGTERM are passed on to.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Whether a daemon answers on `socket`.
pub fn daemon_listening(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// Runs `command` as agent `agent`, recorded by the daemon at `socket`.
/// Call it before any other thread exists: it forks.
pub fn run(socket: &Path, agent: &str, command: &[OsString]) -> Result<ClientRun, ClientRunError> {
    let daemon_error = |source| ClientRunError::Daemon {
        socket: socket.display().to_string(),
        source,
    };
    let mut client = Client::connect(Some(socket)).map_err(daemon_error)?;
    // Everything the child needs, made before the fork: after it, the
    // child may not allocate.
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| ClientRunError::Nul))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| k != "AGENT_MONITOR_SESSION" && k != "AGENT_MONITOR_SOCKET")
        .map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            entry
        })
        .filter(|e| !e.contains(&0))
        .collect();
    let mut socket_entry = b"AGENT_MONITOR_SOCKET=".to_vec();
    socket_entry.extend_from_slice(socket.as_os_str().as_bytes());
    env.push(socket_entry);
    // Filled in by the child with the id the daemon gives, NUL-padded.
    let session_prefix = b"AGENT_MONITOR_SESSION=";
    let mut session_entry = session_prefix.to_vec();
    session_entry.extend_from_slice(&[0; SESSION_ROOM + 1]);
    env.push(session_entry);
    for entry in &mut env {
        if entry.last() != Some(&0) {
            entry.push(0);
        }
    }
    let session_index = env.len() - 1;
    let mut env_ptrs: Vec<*mut libc::c_char> =
        env.iter_mut().map(|e| e.as_mut_ptr().cast()).collect();
    env_ptrs.push(std::ptr::null_mut());

    let (go_read, go_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    // SAFETY: this process has one thread (the caller's promise); the
    // child only makes async-signal-safe calls before exec or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(ClientRunError::Io("fork", io::Error::last_os_error()));
    }
    if pid == 0 {
        // The child: wait for the session id, put it in the environment,
        // exec. Any failure is reported through `err_write` as an errno.
        unsafe {
            libc::close(go_write);
            libc::close(err_read);
            let slot = env_ptrs[session_index]
                .cast::<u8>()
                .add(session_prefix.len());
            let mut got = 0usize;
            loop {
                let n = libc::read(go_read, slot.add(got).cast(), SESSION_ROOM - got);
                if n <= 0 {
                    break;
                }
                got += n as usize;
                if got == SESSION_ROOM {
                    break;
                }
            }
            if got == 0 {
                // Registration failed: the parent closed the pipe.
                libc::_exit(125);
            }
            libc::execvpe(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr().cast());
            let errno = *libc::__errno_location();
            libc::write(err_write, (&errno as *const i32).cast(), 4);
            libc::_exit(127);
        }
    }
    // SAFETY: our copies of the child's ends.
    unsafe {
        libc::close(go_read);
        libc::close(err_write);
    }
    CHILD.store(pid, Ordering::Relaxed);
    let registered = client.request(&json!({
        "type": "agent.register",
        "name": agent,
        "pid": pid,
        "task": command.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
    }));
    let session_id = match registered {
        Ok(reply) => reply["session_id"].as_str().unwrap_or_default().to_string(),
        Err(err) => {
            // SAFETY: closing our end lets the child see EOF and exit.
            unsafe { libc::close(go_write) };
            let _ = wait(pid);
            return Err(daemon_error(err));
        }
    };
    let id = session_id.as_bytes();
    let id = &id[..id.len().min(SESSION_ROOM)];
    // SAFETY: handlers that only call kill; installed once the child can
    // receive what they pass on.
    unsafe {
        libc::signal(libc::SIGINT, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t);
        libc::write(go_write, id.as_ptr().cast(), id.len());
        libc::close(go_write);
    }
    let mut errno = [0u8; 4];
    // SAFETY: reading into a 4-byte buffer; EOF means the exec succeeded.
    let n = unsafe { libc::read(err_read, errno.as_mut_ptr().cast(), 4) };
    unsafe { libc::close(err_read) };
    let status = wait(pid)?;
    if n == 4 {
        return Err(ClientRunError::Exec {
            command: command[0].to_string_lossy().into_owned(),
            source: io::Error::from_raw_os_error(i32::from_ne_bytes(errno)),
        });
    }
    Ok(ClientRun { session_id, status })
}

fn pipe() -> Result<(i32, i32), ClientRunError> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ClientRunError::Io("pipe", io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}

fn wait(pid: i32) -> Result<ExitStatus, ClientRunError> {
    let mut status = 0;
    loop {
        // SAFETY: our own child; `status` is a live int.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == pid {
            return Ok(ExitStatus::from_wait_status(status as u32));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(ClientRunError::Io("waiting for the command", err));
        }
    }
}
