//! What every server of the monitor does with a connection it accepts (the
//! declaration socket, the OTLP receiver, the MCP proxy): a failed accept
//! pauses before the next, so that running out of descriptors cannot spin
//! a thread; past a limit of open connections a new one gets one refusal
//! and is closed, and the refusal is reported once.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How long accepting pauses after it fails (out of file descriptors, most
/// likely).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Admits the connections of one server.
pub struct Admission {
    /// Connections served at once.
    limit: usize,
    open: Arc<AtomicUsize>,
    /// The server, as the messages name it ("declaration socket").
    what: &'static str,
    refused_reported: bool,
}

/// One connection counted as open, until it is dropped.
#[must_use = "the connection counts as open while its slot lives"]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(what: &'static str, limit: usize) -> Admission {
        Admission {
            limit,
            open: Arc::new(AtomicUsize::new(0)),
            what,
            refused_reported: false,
        }
    }

    /// The connection `accepted` with its slot, when it may be served.
    /// Otherwise `None`: the accept failed (reported, and the call returns
    /// after [`ACCEPT_BACKOFF`]), or the limit is reached and the
    /// connection was sent `refusal(limit)` and closed.
    pub async fn admit<S: AsyncWrite + Unpin>(
        &mut self,
        accepted: io::Result<S>,
        refusal: impl FnOnce(usize) -> Vec<u8>,
    ) -> Option<(S, Slot)> {
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                eprintln!(
                    "agent-monitor: accepting a connection to the {} failed: {err}",
                    self.what
                );
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                return None;
            }
        };
        if self.open.load(Ordering::Relaxed) >= self.limit {
            if !std::mem::replace(&mut self.refused_reported, true) {
                eprintln!(
                    "agent-monitor: {} connections to the {} are open; refusing more until some close",
                    self.limit, self.what
                );
            }
            let _ = stream.write_all(&refusal(self.limit)).await;
            return None;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Some((stream, Slot(self.open.clone())))
    }
}

/// A refusal for an HTTP client: `503`, to be retried in a second.
pub fn http_unavailable(limit: usize) -> Vec<u8> {
    let body = format!("{limit} connections are open already\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_past_the_limit_are_refused_until_one_closes() {
        let mut admission = Admission::new("test", 1);
        let (first, _) = tokio::io::duplex(64);
        let (_, slot) = admission
            .admit(Ok(first), |_| b"no\n".to_vec())
            .await
            .expect("the first is admitted");

        let (second, mut peer) = tokio::io::duplex(64);
        assert!(
            admission
                .admit(Ok(second), |limit| format!("{limit} open\n").into_bytes())
                .await
                .is_none()
        );
        let mut refusal = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut peer, &mut refusal)
            .await
            .expect("the refusal is sent and the connection closed");
        assert_eq!(refusal, "1 open\n");

        drop(slot);
        let (third, _) = tokio::io::duplex(64);
        assert!(admission.admit(Ok(third), |_| Vec::new()).await.is_some());
    }

    #[tokio::test]
    async fn a_failed_accept_waits_before_the_next() {
        let mut admission = Admission::new("test", 1);
        let before = std::time::Instant::now();
        let failed: io::Result<tokio::io::DuplexStream> = Err(io::Error::other("out of fds"));
        assert!(admission.admit(failed, |_| Vec::new()).await.is_none());
        assert!(before.elapsed() >= ACCEPT_BACKOFF);
    }

    #[test]
    fn the_http_refusal_states_its_length() {
        let text = String::from_utf8(http_unavailable(64)).expect("text");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(body, "64 connections are open already\n");
    }
}
