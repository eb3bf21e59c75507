//! The stdio relay: the proxy stands where the MCP server's command stood,
//! starts the server as its child, and passes bytes between its own stdin
//! and stdout and the server's, unchanged. Each direction is one task
//! that writes in the order it reads; the proxy only reads a copy of each
//! line.

use std::{
    ffi::OsString,
    os::fd::{AsFd, BorrowedFd},
    process::{ExitStatus, Stdio},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    process::{Child, Command},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use super::{
    McpError, PREFIX,
    framing::{LineFramer, Piece},
    gate::{Admission, Gate},
    jsonrpc,
};

/// The scope of stdio calls in the gate: one client, one id space.
const SCOPE: &str = "";

/// How long the server's output may stay open after the server exited (a
/// process it left behind may hold it) before the relay stops reading it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// The proxy's own answers on their way from the client side to the
/// client's stdout.
pub(super) const ANSWERS_IN_FLIGHT: usize = 16;

/// The answers held while the server is in the middle of a line. When
/// that many wait, the channel fills, and the proxy stops reading the
/// client until the server's line ends: memory stays bounded, and the
/// client is slowed, never answered out of turn.
pub(super) const MAX_QUEUED_ANSWERS: usize = 64;

/// Starts `command` and relays until it exits; returns its status.
pub async fn relay(gate: Arc<Gate>, command: &[OsString]) -> Result<ExitStatus, McpError> {
    let (program, args) = command.split_first().ok_or(McpError::NoCommand)?;
    let stdin = own_stream(std::io::stdin().as_fd()).map_err(|source| McpError::Stdio {
        what: "reading stdin",
        source,
    })?;
    let stdout = own_stream(std::io::stdout().as_fd()).map_err(|source| McpError::Stdio {
        what: "writing stdout",
        source,
    })?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| McpError::Spawn {
            command: program.to_string_lossy().into_owned(),
            source,
        })?;
    // All three are there right after a spawn with piped stdin and stdout.
    let missing = |what: &str| McpError::Spawn {
        command: program.to_string_lossy().into_owned(),
        source: std::io::Error::other(format!("the started server has no {what}")),
    };
    let pid = child.id().ok_or_else(|| missing("pid"))?;
    let server_in = child.stdin.take().ok_or_else(|| missing("stdin pipe"))?;
    let server_out = child.stdout.take().ok_or_else(|| missing("stdout pipe"))?;
    // Answers the proxy gives itself, to put between the server's lines.
    let (answers, answer_queue) = mpsc::channel(ANSWERS_IN_FLIGHT);
    let to_server = tokio::spawn(client_to_server(
        gate.clone(),
        stdin,
        server_in,
        pid,
        answers,
    ));
    let mut to_client = tokio::spawn(server_to_client(
        gate.clone(),
        server_out,
        stdout,
        answer_queue,
    ));

    let status = wait_forwarding_signals(&mut child, pid).await?;
    // What the server wrote before it exited is still in the pipe.
    if tokio::time::timeout(DRAIN_AFTER_EXIT, &mut to_client)
        .await
        .is_err()
    {
        to_client.abort();
        eprintln!("{PREFIX}: the server's output stayed open after it exited; stopped reading it");
    }
    to_server.abort();
    gate.end_all("the server exited before answering");
    Ok(status)
}

async fn wait_forwarding_signals(child: &mut Child, pid: u32) -> Result<ExitStatus, McpError> {
    let mut term = signal(SignalKind::terminate()).map_err(McpError::Io)?;
    let mut int = signal(SignalKind::interrupt()).map_err(McpError::Io)?;
    loop {
        let forward = tokio::select! {
            status = child.wait() => return status.map_err(McpError::Io),
            _ = term.recv() => libc::SIGTERM,
            _ = int.recv() => libc::SIGINT,
        };
        // SAFETY: kill(2) with the pid of our own child, not yet reaped
        // (we reap it only in `child.wait()` above), so it is not reused.
        unsafe { libc::kill(pid as libc::pid_t, forward) };
    }
}

/// Relays the client's bytes to the server, a line at a time: each line
/// is admitted by the gate (its `tools/call`s declared) before a byte of
/// it is written.
pub(super) async fn client_to_server<R, W>(
    gate: Arc<Gate>,
    mut client: R,
    mut server_in: W,
    pid: u32,
    answers: mpsc::Sender<Vec<u8>>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut framer = LineFramer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut overlong_reported = false;
    loop {
        let (pieces, done) = match client.read(&mut buf).await {
            Ok(0) | Err(_) => (framer.finish().into_iter().collect::<Vec<_>>(), true),
            Ok(n) => (framer.push(&buf[..n]), false),
        };
        for piece in pieces {
            let (line, admission) = match piece {
                Piece::Line(line) => {
                    let scanned = jsonrpc::scan(&line);
                    let admission = gate.admit(SCOPE, &scanned, Some(pid)).await;
                    (line, admission)
                }
                // Too long to hold for a look: relayed unread only when
                // the proxy is not declaring anyway.
                Piece::Overlong(bytes) if !gate.strict() => (bytes, Admission::Relay(Vec::new())),
                Piece::Overlong(_) => {
                    if !std::mem::replace(&mut overlong_reported, true) {
                        eprintln!(
                            "{PREFIX}: dropped a client message longer than {} bytes: it cannot be checked for tools/call",
                            super::framing::MAX_LINE
                        );
                    }
                    continue;
                }
            };
            let answer = match admission {
                Admission::Relay(_) => {
                    if write_all(&mut server_in, &line).await.is_err() {
                        // The server closed its input: it is going away,
                        // and its exit ends the relay.
                        return;
                    }
                    continue;
                }
                Admission::Answer(Some(answer)) | Admission::NotJson(answer) => answer,
                Admission::Answer(None) => continue,
            };
            let mut bytes = answer.to_string().into_bytes();
            bytes.push(b'\n');
            // Waits while the answers are held back (see
            // MAX_QUEUED_ANSWERS); fails only once the server's output is
            // closed, when no answer can go out between its lines anyway.
            let _ = answers.send(bytes).await;
        }
        if done {
            // The client is done: so is the server's input.
            drop(server_in);
            return;
        }
    }
}

/// Relays the server's output to the client as it comes, ending calls as
/// their responses go by, and puts the proxy's own answers between lines.
pub(super) async fn server_to_client<R, W>(
    gate: Arc<Gate>,
    mut server_out: R,
    client: W,
    mut answers: mpsc::Receiver<Vec<u8>>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = ClientOut::new(client);
    let mut framer = LineFramer::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut answers_open = true;
    loop {
        tokio::select! {
            read = server_out.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                // Ended before the client sees the response: the call's
                // `tool.end` is queued first.
                for piece in framer.push(&buf[..n]) {
                    if let Piece::Line(line) = piece {
                        observe(&gate, &line);
                    }
                }
                out.server_bytes(&buf[..n]).await;
            }
            // Not taken while the queue is full: the channel fills behind it.
            answer = answers.recv(), if answers_open && !out.full() => match answer {
                Some(bytes) => out.answer(bytes, framer.mid_line()).await,
                None => answers_open = false,
            },
        }
    }
    if let Some(Piece::Line(line)) = framer.finish() {
        observe(&gate, &line);
    }
    // The server is gone: answers still waiting go out after its last
    // bytes, even if it left a line unfinished.
    out.release_queued().await;
    while let Ok(bytes) = answers.try_recv() {
        out.answer(bytes, false).await;
    }
}

fn observe(gate: &Gate, line: &[u8]) {
    if let Some(scan) = jsonrpc::responses(line) {
        gate.observe(SCOPE, &scan);
    }
}

/// Our stdout: the server's bytes as they are, and the proxy's answers
/// only where a line of the server's has ended.
struct ClientOut<W> {
    out: W,
    /// Answers waiting for the server's current line to end: at most
    /// [`MAX_QUEUED_ANSWERS`].
    queued: Vec<Vec<u8>>,
    /// The client closed its end: bytes are dropped from then on.
    broken: bool,
}

impl<W: AsyncWrite + Unpin> ClientOut<W> {
    fn new(out: W) -> ClientOut<W> {
        ClientOut {
            out,
            queued: Vec::new(),
            broken: false,
        }
    }

    /// Whether no more answers may wait for the server's line to end.
    fn full(&self) -> bool {
        self.queued.len() >= MAX_QUEUED_ANSWERS
    }

    /// Writes a chunk of the server's output; queued answers go right
    /// after its first line ending.
    async fn server_bytes(&mut self, chunk: &[u8]) {
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) if !self.queued.is_empty() => {
                self.write(&chunk[..=at]).await;
                for answer in std::mem::take(&mut self.queued) {
                    self.write(&answer).await;
                }
                self.write(&chunk[at + 1..]).await;
            }
            _ => self.write(chunk).await,
        }
        self.flush().await;
    }

    /// Writes one of the proxy's answers now, or after the server's
    /// current line when it is in the middle of one.
    async fn answer(&mut self, bytes: Vec<u8>, mid_line: bool) {
        if mid_line {
            self.queued.push(bytes);
        } else {
            self.write(&bytes).await;
            self.flush().await;
        }
    }

    async fn release_queued(&mut self) {
        for answer in std::mem::take(&mut self.queued) {
            self.write(&answer).await;
        }
        self.flush().await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        if !self.broken && !bytes.is_empty() && self.out.write_all(bytes).await.is_err() {
            self.broken = true;
        }
    }

    async fn flush(&mut self) {
        if !self.broken && self.out.flush().await.is_err() {
            self.broken = true;
        }
    }
}

/// Our stdin or stdout as an async stream. The file's blocking reads and
/// writes run on the runtime's blocking threads, as tokio's own stdio does;
/// a duplicate descriptor keeps the process's fd 0 and 1 as they are.
fn own_stream(fd: BorrowedFd<'_>) -> std::io::Result<tokio::fs::File> {
    Ok(tokio::fs::File::from_std(std::fs::File::from(
        fd.try_clone_to_owned()?,
    )))
}

async fn write_all<W: AsyncWrite + Unpin>(server_in: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    server_in.write_all(bytes).await?;
    server_in.flush().await
}
