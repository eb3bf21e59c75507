//! Serving OTLP/HTTP: `POST /v1/traces`, one task per TCP connection.
//!
//! Who sent a span is the process holding the other end of the TCP
//! connection, found in the kernel's socket table when the connection is
//! accepted, and its agent is the kernel's tracked-process map's answer:
//! what the spans say of their service or process is not believed. The
//! connection's [`Declarer`] submits the spans' declarations.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prost::Message;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    task::JoinSet,
};

use super::{
    Encoding, check_listen,
    conversations::{Conversations, DEFAULT_QUIET},
    declarer::{Counts, Declarer, Export, Shared, StageGone, end_quiet},
    decode, proto,
};
use crate::{
    admission::{Admission, http_unavailable},
    api::{ApiMessage, Kernel},
    correlate::Peer,
    time::WallClock,
};

/// Largest request body taken. The Python SDK's exporter sends batches of
/// at most 512 spans; 16 MiB leaves room for long prompts in them.
pub const MAX_BODY: usize = 16 << 20;

/// Connections served at once; past it a connection gets a 503 and is
/// closed. An exporter keeps one or two open.
pub const MAX_CONNECTIONS: usize = 64;

/// A request's headers, and then its body, must arrive within these.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// At shutdown, how long a request being served may take to finish.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Distinct refusal reasons quoted in one response's `error_message`.
const REASONS_QUOTED: usize = 4;

/// Binds the receiver's address, loopback only.
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    check_listen(addr).map_err(|why| io::Error::new(io::ErrorKind::InvalidInput, why))?;
    TcpListener::bind(addr).await
}

/// Serves the receiver until `stop` turns true, then lets the requests
/// being served finish, and returns what it took.
pub async fn serve<K: Kernel>(
    listener: TcpListener,
    kernel: K,
    to_stage: mpsc::Sender<ApiMessage>,
    clock: WallClock,
    stop: watch::Receiver<bool>,
) -> Counts {
    let shared = Shared {
        kernel,
        to_stage,
        clock,
        counts: Mutex::new(Counts::default()),
        next_conn: AtomicU64::new(0),
        conversations: Mutex::new(Conversations::new(DEFAULT_QUIET)),
    };
    serve_shared(listener, Arc::new(shared), stop).await
}

/// How often the sessions of conversations that are over are looked for:
/// a tenth of the quiet period, at most a minute.
fn sweep_period(quiet: Duration) -> Duration {
    (quiet / 10).clamp(Duration::from_millis(10), Duration::from_secs(60))
}

async fn serve_shared<K: Kernel>(
    listener: TcpListener,
    shared: Arc<Shared<K>>,
    mut stop: watch::Receiver<bool>,
) -> Counts {
    let quiet = shared.conversations.lock().expect("never poisoned").quiet();
    let mut sweep = tokio::time::interval(sweep_period(quiet));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut admission = Admission::new("OTLP receiver", MAX_CONNECTIONS);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => Some(accepted),
            _ = sweep.tick() => None,
            _ = stop.wait_for(|s| *s) => break,
        };
        // Reap what has finished, so that the set does not grow.
        while connections.try_join_next().is_some() {}
        let Some(accepted) = accepted else {
            // Beside the connections, so that accepting does not wait for
            // the stage; the stage gone, the monitor is stopping and `stop`
            // follows.
            let shared = shared.clone();
            connections.spawn(async move {
                let _ = end_quiet(&shared).await;
            });
            continue;
        };
        let accepted = accepted.map(|(stream, _)| stream);
        let Some((stream, slot)) = admission.admit(accepted, http_unavailable).await else {
            continue;
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        connections.spawn(async move {
            serve_connection(stream, shared, stop).await;
            drop(slot);
        });
    }
    while connections.join_next().await.is_some() {}
    shared
        .counts
        .lock()
        .expect("counts are never poisoned")
        .clone()
}

async fn serve_connection<K: Kernel>(
    stream: TcpStream,
    shared: Arc<Shared<K>>,
    mut stop: watch::Receiver<bool>,
) {
    let sender = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(client), Ok(server)) => {
            let kernel = shared.kernel.clone();
            // Reading every process's descriptors takes a while: not on
            // the thread the processing stage shares.
            tokio::task::spawn_blocking(move || identify(&kernel, client, server))
                .await
                .unwrap_or_else(|err| Err(format!("identifying the sender failed: {err}")))
        }
        (Err(err), _) | (_, Err(err)) => {
            Err(format!("reading the connection's addresses failed: {err}"))
        }
    };
    let declarer = Arc::new(tokio::sync::Mutex::new(Declarer::new(sender, shared)));
    let service = {
        let declarer = declarer.clone();
        service_fn(move |request| {
            let declarer = declarer.clone();
            async move { Ok::<_, Infallible>(answer(request, &declarer).await) }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let stopping = tokio::select! {
        _ = connection.as_mut() => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    if stopping {
        connection.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(SHUTDOWN_WAIT, connection.as_mut()).await;
    }
    declarer.lock().await.disconnect_all().await;
}

/// The peer process of a TCP connection from `client` to `server`, and
/// its agent.
fn identify<K: Kernel>(kernel: &K, client: SocketAddr, server: SocketAddr) -> Result<Peer, String> {
    let pid = match crate::proc_net::tcp_socket_owner(client, Some(server)) {
        Ok(Some(pid)) => pid,
        Ok(None) => {
            return Err(format!(
                "no process holding the connection from {client} was found"
            ));
        }
        Err(err) => return Err(format!("reading the socket table failed: {err}")),
    };
    let Some((agent, start_ns)) = kernel.agent_of(pid) else {
        return Err(format!(
            "the sender, pid {pid}, belongs to no monitored agent"
        ));
    };
    let uid = effective_uid(pid)
        .ok_or_else(|| format!("the sender, pid {pid}, exited before it could be identified"))?;
    Ok(Peer {
        pid,
        start_ns,
        uid,
        agent_slot: Some(agent),
    })
}

/// The effective uid on the `Uid:` line of /proc/PID/status, as
/// `SO_PEERCRED` gives it for a Unix socket.
fn effective_uid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

type Body = Full<Bytes>;

/// One HTTP request's response.
async fn answer<K: Kernel>(
    request: Request<Incoming>,
    declarer: &tokio::sync::Mutex<Declarer<K>>,
) -> Response<Body> {
    if request.uri().path() != "/v1/traces" {
        return plain(
            StatusCode::NOT_FOUND,
            format!(
                "{} is not served: this receiver takes traces, at POST /v1/traces",
                request.uri().path()
            ),
        );
    }
    if request.method() != Method::POST {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "/v1/traces takes POST".into(),
        );
        response.headers_mut().insert(
            hyper::header::ALLOW,
            "POST".parse().expect("a valid header"),
        );
        return response;
    }
    let header = |name| {
        request
            .headers()
            .get(name)
            .map(|v: &hyper::header::HeaderValue| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            })
    };
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    let Some(encoding) = Encoding::from_content_type(&content_type) else {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {content_type:?} is not taken; send application/x-protobuf or application/json"
            ),
        );
    };
    if let Some(coding) =
        header(CONTENT_ENCODING).filter(|c| !c.trim().eq_ignore_ascii_case("identity"))
    {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding {coding:?} is not taken; export without compression (OTEL_EXPORTER_OTLP_COMPRESSION=none)"
            ),
        );
    }
    let too_large = || {
        status(
            encoding,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY} bytes; export smaller batches"),
        )
    };
    let declared_length = header(CONTENT_LENGTH).and_then(|l| l.trim().parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY as u64) {
        return too_large();
    }
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(request.into_body(), MAX_BODY).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            return status(
                encoding,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            );
        }
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(err)) => {
            return status(
                encoding,
                StatusCode::BAD_REQUEST,
                format!("reading the request body failed: {err}"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    // Decoding up to 16 MiB is no work for the stage's thread.
    let spans = match tokio::task::spawn_blocking(move || decode(encoding, &body)).await {
        Ok(Ok(spans)) => spans,
        Ok(Err(err)) => return status(encoding, StatusCode::BAD_REQUEST, err.to_string()),
        Err(err) => {
            return status(
                encoding,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding failed: {err}"),
            );
        }
    };
    match declarer.lock().await.export(spans).await {
        Ok(export) => exported(encoding, &export),
        Err(StageGone) => status(
            encoding,
            StatusCode::SERVICE_UNAVAILABLE,
            "the monitor is shutting down".into(),
        ),
    }
}

/// The 200 of an export: `ExportTraceServiceResponse`, with a partial
/// success when spans were refused.
fn exported(encoding: Encoding, export: &Export) -> Response<Body> {
    let partial = (export.counts.refused > 0).then(|| {
        let mut message = format!(
            "{} of {} spans refused: {}",
            export.counts.refused,
            export.counts.spans,
            export
                .reasons
                .iter()
                .take(REASONS_QUOTED)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        if export.reasons.len() > REASONS_QUOTED {
            message.push_str("; …");
        }
        proto::ExportTracePartialSuccess {
            rejected_spans: export.counts.refused as i64,
            error_message: message,
        }
    });
    let body = match encoding {
        Encoding::Protobuf => proto::ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let body = match partial {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans,
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            body.to_string().into_bytes()
        }
    };
    response(StatusCode::OK, encoding.content_type(), body)
}

/// An error as OTLP/HTTP answers one: a `google.rpc.Status` in the
/// request's encoding.
fn status(encoding: Encoding, code: StatusCode, message: String) -> Response<Body> {
    // The gRPC code that goes with the HTTP one.
    let rpc_code = match code {
        StatusCode::BAD_REQUEST => 3,
        StatusCode::REQUEST_TIMEOUT => 4,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 13,
    };
    let body = match encoding {
        Encoding::Protobuf => proto::RpcStatus {
            code: rpc_code,
            message,
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": rpc_code, "message": message})
            .to_string()
            .into_bytes(),
    };
    response(code, encoding.content_type(), body)
}

/// An error before the encoding is known: one line of text.
fn plain(code: StatusCode, mut message: String) -> Response<Body> {
    message.push('\n');
    response(code, "text/plain; charset=utf-8", message.into_bytes())
}

fn response(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
