//! The streamable-HTTP reverse proxy: clients talk to the proxy's address
//! as they would to the server's; every request goes to the upstream with
//! its method, path, query, headers and body, and every response comes
//! back as it streams (server-sent events chunk by chunk). A POST's body
//! is read first, so its `tools/call`s are declared before the upstream
//! gets it.

mod pending;
mod tap;
pub mod upstream;

#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod tap_tests;
#[cfg(test)]
mod upstream_tests;

use std::{
    convert::Infallible,
    future::Future,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Full, LengthLimitError, Limited, combinators::UnsyncBoxBody};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode, Uri, Version,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
};

use super::{
    PREFIX,
    gate::{Admission, Gate, Relayed},
    jsonrpc,
};
use crate::admission::http_unavailable;
use pending::Pending;
use tap::{Reader, TapBody};
use upstream::{ServerPid, Upstream};

/// The largest POST body the proxy reads (it must read a body whole to
/// declare its calls before relaying it).
pub const MAX_BODY: usize = 64 << 20;

/// Connections served at once; past it a connection gets a 503 and is
/// closed. A client holds one for its session's GET stream and one per
/// request in flight.
pub const MAX_CONNECTIONS: usize = 256;

/// A request's headers, and then a POST's body, must arrive within these
/// (the body is read whole before it is relayed, so a client that stops
/// sending it would hold its connection for good).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers of one hop, never relayed (RFC 9110, section 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

const SESSION_HEADER: &str = "mcp-session-id";

#[derive(Debug)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    pub upstream: Upstream,
    /// `--server-pid`: the process calls bind to.
    pub server_pid: Option<u32>,
    /// Listen on an address other than loopback.
    pub allow_remote: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("--upstream {url}: {why}")]
    Upstream { url: String, why: String },
    #[error(
        "--upstream {0}: the proxy speaks plain HTTP only (it must read the traffic); \
         give the server's http:// endpoint"
    )]
    Tls(String),
    #[error(
        "--listen {0} is not a loopback address: whoever reaches it could call the server's tools; \
         pass --allow-remote to listen there anyway"
    )]
    NotLoopback(SocketAddr),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("setting up signal handling: {0}")]
    Signal(#[source] io::Error),
}

type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

pub(super) struct Proxy {
    gate: Arc<Gate>,
    client: Client<HttpConnector, ProxyBody>,
    upstream: Upstream,
    server_pid: Arc<ServerPid>,
    /// Numbers requests without an MCP session, each its own scope.
    requests: AtomicU64,
}

/// Checks the options, before anything else is started.
pub fn check(options: &HttpOptions) -> Result<(), HttpError> {
    if !options.allow_remote && !options.listen.ip().is_loopback() {
        return Err(HttpError::NotLoopback(options.listen));
    }
    Ok(())
}

/// Serves until SIGTERM or SIGINT.
pub async fn serve(gate: Arc<Gate>, options: HttpOptions) -> Result<(), HttpError> {
    check(&options)?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| HttpError::Listen {
            addr: options.listen,
            source,
        })?;
    let local = listener.local_addr().unwrap_or(options.listen);
    eprintln!(
        "{PREFIX}: listening on http://{local}, relaying to {}",
        options.upstream.uri("")
    );
    let mut term = signal(SignalKind::terminate()).map_err(HttpError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(HttpError::Signal)?;
    let proxy = Arc::new(Proxy::new(
        gate.clone(),
        options.upstream,
        options.server_pid,
    ));
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    accept(listener, proxy, stop).await;
    gate.end_all("the proxy stopped");
    Ok(())
}

/// Serves the connections `listener` accepts, each on a task of its own,
/// until `stop` completes.
pub(super) async fn accept(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut connections = crate::admission::Admission::new("MCP proxy", MAX_CONNECTIONS);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        let accepted = accepted.map(|(stream, _)| stream);
        let Some((stream, slot)) = connections.admit(accepted, http_unavailable).await else {
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            serve_connection(stream, proxy).await;
            drop(slot);
        });
    }
}

async fn serve_connection(stream: TcpStream, proxy: Arc<Proxy>) {
    let service = service_fn(move |request| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(request).await) }
    });
    // A client that breaks off its connection is its own business:
    // nothing to report (its calls are ended, see `Pending`).
    let _ = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

impl Proxy {
    pub(super) fn new(gate: Arc<Gate>, upstream: Upstream, server_pid: Option<u32>) -> Proxy {
        Proxy {
            gate,
            client: Client::builder(TokioExecutor::new()).build_http(),
            server_pid: Arc::new(ServerPid::new(server_pid, &upstream)),
            upstream,
            requests: AtomicU64::new(0),
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let (parts, body) = request.into_parts();
        // Calls are keyed by MCP session; a request outside one (a
        // stateless server) is a scope of its own, answered on its own
        // response.
        let (scope, session) = match parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(session) => (format!("session {session}"), true),
            None => (
                format!("request {}", self.requests.fetch_add(1, Ordering::Relaxed)),
                false,
            ),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = match self.upstream.uri(path).parse() {
            Ok(uri) => uri,
            Err(err) => return plain(StatusCode::BAD_REQUEST, &format!("bad request path: {err}")),
        };
        let (body, mut pending) = if parts.method == Method::POST {
            match self.admit_post(&parts.headers, body, &scope).await {
                Ok((bytes, relayed)) => (
                    Full::new(bytes)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                    // From here until the response ends, calls the
                    // upstream will not answer are ended.
                    Pending::new(self.gate.clone(), scope.clone(), relayed),
                ),
                Err(answered) => return answered,
            }
        } else {
            let none = Pending::new(self.gate.clone(), scope.clone(), Vec::new());
            (body.boxed_unsync(), none)
        };

        // A DELETE ends the session (MCP's session termination): its
        // calls will not be answered once the server agrees.
        let ends_session = parts.method == Method::DELETE && session;
        let mut forward = Request::new(body);
        *forward.method_mut() = parts.method;
        *forward.uri_mut() = uri;
        *forward.version_mut() = Version::HTTP_11;
        copy_headers(&parts.headers, forward.headers_mut());
        if let Ok(host) = HeaderValue::from_str(&self.upstream.authority) {
            forward.headers_mut().insert(header::HOST, host);
        }
        // The proxy must read what comes back: no compression.
        forward.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );

        let response = match self.client.request(forward).await {
            Ok(response) => response,
            Err(err) => {
                let why = format!("the upstream did not answer: {err}");
                pending.end(&json!({"unanswered": why}));
                return plain(StatusCode::BAD_GATEWAY, &why);
            }
        };
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            // The upstream did not take the request: nothing in it will
            // be answered.
            pending.end(&json!({"http_status": parts.status.as_u16()}));
            // MCP servers answer 404 to every request of a session they
            // ended: nothing open in it will be answered either.
            if parts.status == StatusCode::NOT_FOUND && session {
                self.gate.end_scope(
                    &scope,
                    "the upstream ended the MCP session (404 for its id)",
                );
            }
        }
        if ends_session && parts.status.is_success() {
            self.gate
                .end_scope(&scope, "the client ended the MCP session");
        }
        let reader = Reader::for_content_type(
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        );
        let mut relayed = Response::new(
            TapBody::new(body, reader, self.gate.clone(), scope, pending, session).boxed_unsync(),
        );
        *relayed.status_mut() = parts.status;
        copy_headers(&parts.headers, relayed.headers_mut());
        relayed
    }

    /// Reads a POST's body whole and admits it: the bytes to relay and
    /// the calls declared in them, or the response the proxy gives in the
    /// upstream's place.
    async fn admit_post(
        &self,
        headers: &HeaderMap,
        body: Incoming,
        scope: &str,
    ) -> Result<(Bytes, Vec<Relayed>), Response<ProxyBody>> {
        if let Some(coding) = unreadable_coding(headers)
            && self.gate.strict()
        {
            return Err(plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!(
                    "Content-Encoding {coding:?} is not taken: the proxy must read the body to declare \
                     its tool calls; send it uncompressed"
                ),
            ));
        }
        let too_large = || {
            plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "the request body is larger than {MAX_BODY} bytes, the most the proxy reads"
                ),
            )
        };
        let declared_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared_length.is_some_and(|length| length > MAX_BODY as u64) {
            return Err(too_large());
        }
        let collected =
            tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await;
        let bytes = match collected {
            Err(_) => {
                return Err(plain(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!(
                        "the request body did not arrive within {} s",
                        BODY_TIMEOUT.as_secs()
                    ),
                ));
            }
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(too_large());
            }
            Ok(Err(err)) => {
                return Err(plain(
                    StatusCode::BAD_REQUEST,
                    &format!("reading the request body failed: {err}"),
                ));
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let scanned = jsonrpc::scan(&bytes);
        let pid = match &scanned {
            // The lookup may read all of /proc: off the relay's thread.
            Ok(Some(scan)) if scan.has_tool_calls() => {
                let server_pid = self.server_pid.clone();
                tokio::task::spawn_blocking(move || server_pid.get())
                    .await
                    .unwrap_or(None)
            }
            _ => None,
        };
        match self.gate.admit(scope, &scanned, pid).await {
            Admission::Relay(relayed) => Ok((bytes, relayed)),
            Admission::Answer(Some(answer)) => Err(json_response(StatusCode::OK, &answer)),
            // Nothing to answer (a message without an id): as a server
            // does for a notification.
            Admission::Answer(None) => Err(empty(StatusCode::ACCEPTED)),
            // As MCP's own servers answer a body that is not JSON.
            Admission::NotJson(answer) => Err(json_response(StatusCode::BAD_REQUEST, &answer)),
        }
    }
}

/// A content coding of the request's other than `identity`: the proxy
/// could not read the body.
fn unreadable_coding(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|coding| coding.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"))
}

/// Copies end-to-end headers: all but the hop-by-hop ones, those the
/// `Connection` header names, and `Host` (the proxy sets its own).
fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower) || named.iter().any(|n| n == lower) || name == header::HOST {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn plain(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full(format!("{PREFIX}: {text}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(full(String::new()));
    *response.status_mut() = status;
    response
}

fn full(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}
