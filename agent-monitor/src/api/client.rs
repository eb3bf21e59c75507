//! A blocking client of the declaration socket, for `agent-monitor
//! declare`: agents written in shell declare through it.

use std::{
    io::{self, BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

/// How long a reply may take before the client gives up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no monitor to declare to: AGENT_MONITOR_SOCKET is not set (it is under `agent-monitor run`), \
         and no daemon listens at {daemon}; pass --socket"
    )]
    NoSocket { daemon: PathBuf },
    #[error("connecting to {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("talking to the monitor: {0}")]
    Io(#[from] io::Error),
    #[error("the monitor's reply is not JSON: {0}")]
    BadReply(String),
    /// The monitor answered `ok: false`.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
}

pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects to `path`; else to `$AGENT_MONITOR_SOCKET`, the run's
    /// socket; else to the daemon's, as its config names it.
    pub fn connect(path: Option<&Path>) -> Result<Client, ClientError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_socket()?,
        };
        let stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
            path: path.clone(),
            source,
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one request and returns its reply, an error when it is
    /// `ok: false`.
    pub fn request(&mut self, request: &Value) -> Result<Value, ClientError> {
        let reply = self.exchange(request)?;
        if reply["ok"] == Value::Bool(true) {
            return Ok(reply);
        }
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Err(ClientError::Refused {
            code: text(&reply["error"]["code"]),
            message: text(&reply["error"]["message"]),
        })
    }

    /// Sends one request and returns its reply as it came, `ok` or not.
    pub fn exchange(&mut self, request: &Value) -> Result<Value, ClientError> {
        let mut line = serde_json::to_vec(request).map_err(io::Error::from)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the monitor closed the connection",
            )));
        }
        serde_json::from_str(&reply).map_err(|_| ClientError::BadReply(reply.trim().to_string()))
    }
}

/// The socket a client declares to when none is named: the run's, which
/// `agent-monitor run` gives its command's tree, else the daemon's default
/// one. The daemon's config is not read: a client runs as a process of the
/// agent, and the monitor's files are none of its business (a daemon whose
/// socket is elsewhere is named with `--socket`).
pub fn default_socket() -> Result<PathBuf, ClientError> {
    if let Some(run) = std::env::var_os("AGENT_MONITOR_SOCKET").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(run));
    }
    let daemon = crate::config::Config::defaults().api.socket;
    if daemon.exists() {
        Ok(daemon)
    } else {
        Err(ClientError::NoSocket { daemon })
    }
}
