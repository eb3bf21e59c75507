//! The streamable-HTTP reverse proxy: clients talk to the proxy's address
//! as they would to the server's; every request goes to the upstream with
//! its method, path, query, headers and body, and every response comes
//! back as it streams (server-sent events chunk by chunk). A POST's body
//! is read first, so its `tools/call`s are declared before the upstream
//! gets it.

mod tap;
pub mod upstream;

#[cfg(test)]
mod tap_tests;
#[cfg(test)]
mod upstream_tests;

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::{
    HeaderMap, Method, Request, Response, StatusCode, Uri, Version,
    body::{Bytes, Incoming},
    header::{self, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::Value;
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

use super::{
    gate::{Admission, Gate},
    jsonrpc::{self, Message},
};
use tap::{Reader, TapBody};
use upstream::{ServerPid, Upstream};

const PREFIX: &str = "agent-monitor mcp-proxy";

/// The largest POST body the proxy reads (it must read a body whole to
/// declare its calls before relaying it).
pub const MAX_BODY: usize = 64 << 20;

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

struct Proxy {
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
    let proxy = Arc::new(Proxy {
        gate: gate.clone(),
        client: Client::builder(TokioExecutor::new()).build_http(),
        server_pid: Arc::new(ServerPid::new(options.server_pid, &options.upstream)),
        upstream: options.upstream,
        requests: AtomicU64::new(0),
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let proxy = proxy.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request| {
                            let proxy = proxy.clone();
                            async move { Ok::<_, Infallible>(proxy.handle(request).await) }
                        });
                        // A client that breaks off its connection is its
                        // own business: nothing to report.
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(err) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    eprintln!("{PREFIX}: accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    gate.end_all("the proxy stopped");
    Ok(())
}

impl Proxy {
    async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let (parts, body) = request.into_parts();
        // Calls are keyed by MCP session; a request outside one (a
        // stateless server) is a scope of its own, answered on its own
        // response.
        let (scope, own_scope) = match parts
            .headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            Some(session) => (format!("session {session}"), false),
            None => (
                format!("request {}", self.requests.fetch_add(1, Ordering::Relaxed)),
                true,
            ),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = match self.upstream.uri(path).parse() {
            Ok(uri) => uri,
            Err(err) => return plain(StatusCode::BAD_REQUEST, &format!("bad request path: {err}")),
        };
        let mut opened = Vec::new();
        let body = if parts.method == Method::POST {
            let bytes = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "the request body could not be read whole (at most {MAX_BODY} bytes): {err}"
                        ),
                    );
                }
            };
            let scan = jsonrpc::scan(&bytes);
            let pid = match &scan {
                // The lookup may read all of /proc: off the relay's thread.
                Some(scan) if scan.has_tool_calls() => {
                    let server_pid = self.server_pid.clone();
                    tokio::task::spawn_blocking(move || server_pid.get())
                        .await
                        .unwrap_or(None)
                }
                _ => None,
            };
            match self.gate.admit(&scope, scan.as_ref(), pid).await {
                Admission::Relay => {}
                Admission::Answer(Some(answer)) => return json(&answer),
                // Nothing to answer (a message without an id): as a server
                // does for a notification.
                Admission::Answer(None) => return empty(StatusCode::ACCEPTED),
            }
            if let Some(scan) = &scan {
                opened = scan
                    .messages
                    .iter()
                    .filter_map(|m| match m {
                        Message::ToolCall(call) => Some(call.id.clone()),
                        _ => None,
                    })
                    .collect();
            }
            Full::new(bytes)
                .map_err(|never| match never {})
                .boxed_unsync()
        } else {
            body.boxed_unsync()
        };

        // A DELETE ends the session (MCP's session termination): its
        // calls will not be answered once the server agrees.
        let ends_session = parts.method == Method::DELETE && !own_scope;
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
                self.gate.abandon(&scope, &opened, &why);
                return plain(StatusCode::BAD_GATEWAY, &why);
            }
        };
        let (parts, body) = response.into_parts();
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
            TapBody::new(body, reader, self.gate.clone(), scope, own_scope).boxed_unsync(),
        );
        *relayed.status_mut() = parts.status;
        copy_headers(&parts.headers, relayed.headers_mut());
        relayed
    }
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

fn json(value: &Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(value.to_string()));
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
