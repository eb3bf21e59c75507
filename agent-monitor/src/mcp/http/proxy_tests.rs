//! The HTTP proxy between a raw client and a fake upstream, declaring to
//! a fake monitor: what ends the calls whose answers never come.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};

use super::{Proxy, accept, upstream::Upstream};
use crate::mcp::{
    fake_monitor::FakeMonitor,
    gate::{Gate, GateOptions},
};

/// What the fake upstream does with a request.
enum Script {
    /// Writes this response and closes the connection.
    Answer(String),
    /// Writes this response's head and events, then keeps the stream
    /// going with comments until writing fails.
    Stream(String),
    /// Never answers.
    Silent,
}

/// A plain-HTTP upstream that answers each request as `script` says, and
/// sends each request it reads (head and body) on the returned channel.
async fn upstream(
    script: impl Fn(&str) -> Script + Send + Sync + 'static,
) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, requests) = mpsc::unbounded_channel();
    let script = Arc::new(script);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, script) = (seen.clone(), script.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let _ = seen.send(request.clone());
                match script(&request) {
                    Script::Answer(response) => {
                        let _ = stream.write_all(response.as_bytes()).await;
                    }
                    Script::Stream(head) => {
                        let mut next = head.into_bytes();
                        while stream.write_all(&next).await.is_ok() {
                            next = b": still here\n\n".to_vec();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    Script::Silent => {
                        let mut rest = Vec::new();
                        let _ = stream.read_to_end(&mut rest).await;
                    }
                }
            });
        }
    });
    (port, requests)
}

/// One request's head and `Content-Length` body, as text.
async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A response the upstream writes whole.
fn answer(status: &str, content_type: &str, body: &str) -> Script {
    Script::Answer(format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n{body}"
    ))
}

/// An event stream with these events, left open.
fn events(events: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n{events}"
    )
}

struct Setup {
    monitor: FakeMonitor,
    gate: Arc<Gate>,
    port: u16,
    upstream_requests: mpsc::UnboundedReceiver<String>,
    _stop: oneshot::Sender<()>,
}

/// The proxy in front of an upstream that follows `script`.
async fn setup(script: impl Fn(&str) -> Script + Send + Sync + 'static) -> Setup {
    let monitor = FakeMonitor::start(None);
    let gate = Arc::new(monitor.gate(GateOptions::default()));
    let (upstream_port, upstream_requests) = upstream(script).await;
    let upstream = Upstream::parse(&format!("http://127.0.0.1:{upstream_port}")).unwrap();
    let proxy = Arc::new(Proxy::new(gate.clone(), upstream, Some(std::process::id())));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(accept(listener, proxy, async move {
        let _ = stopped.await;
    }));
    Setup {
        monitor,
        gate,
        port,
        upstream_requests,
        _stop: stop,
    }
}

fn tools_call(id: u32) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "write_file", "arguments": {"n": id}}})
    .to_string()
}

/// Sends a request to the proxy; returns the connection, to read from.
async fn send(
    port: u16,
    method: &str,
    session: Option<&str>,
    extra: &str,
    body: &str,
) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let session = session.map_or(String::new(), |s| format!("Mcp-Session-Id: {s}\r\n"));
    let request = format!(
        "{method} /mcp HTTP/1.1\r\nHost: proxy\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{session}{extra}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// The whole response: the proxy closes the connection after it.
async fn response(mut stream: TcpStream) -> String {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Reads until the response head has come.
async fn response_head(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 1024];
    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the proxy closed the connection early");
        bytes.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits until no call is open.
async fn all_ended(gate: &Gate) {
    for _ in 0..500 {
        if gate.open_calls() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} calls are still open", gate.open_calls());
}

/// Every `tool.end`'s (status, result), in the order sent.
fn ends(setup: &Setup) -> Vec<(Value, Value)> {
    setup
        .monitor
        .sent(&setup.gate, "tool.end")
        .into_iter()
        .map(|end| (end["status"].clone(), end["result"].clone()))
        .collect()
}

fn error(result: Value) -> (Value, Value) {
    (json!("error"), result)
}

#[tokio::test]
async fn calls_whose_post_gets_a_status_other_than_2xx_end_with_it() {
    let setup = setup(|request| {
        let status = match () {
            () if request.contains("\"id\":1,") => "404 Not Found",
            () if request.contains("\"id\":2,") => "400 Bad Request",
            () => "503 Service Unavailable",
        };
        answer(status, "text/plain", "no\n")
    })
    .await;
    for (id, session, status) in [(1, Some("s1"), 404), (2, None, 400), (3, Some("s3"), 503)] {
        let got = response(send(setup.port, "POST", session, "", &tools_call(id)).await).await;
        assert!(got.starts_with(&format!("HTTP/1.1 {status} ")), "{got}");
    }
    assert_eq!(setup.gate.open_calls(), 0);
    assert_eq!(
        ends(&setup),
        [404, 400, 503].map(|status| error(json!({"http_status": status})))
    );
}

#[tokio::test]
async fn a_response_that_ends_unanswered_ends_its_calls_unless_the_session_can_resume_it() {
    let setup = setup(|request| {
        let sse = |body: &str| answer("200 OK", "text/event-stream", body);
        if request.starts_with("GET") {
            // The resumed stream answers call 2.
            return sse("id: e2\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n");
        }
        match () {
            // No event id: the client cannot resume this stream.
            () if request.contains("\"id\":1,") => {
                sse("data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n")
            }
            // A priming event with an id, and then the stream closes.
            () if request.contains("\"id\":2,") || request.contains("\"id\":3,") => {
                sse("id: p1\ndata:\n\n")
            }
            () => answer("404 Not Found", "text/plain", ""),
        }
    })
    .await;
    let post = |id| async move {
        response(send(setup.port, "POST", Some("s"), "", &tools_call(id)).await).await
    };
    post(1).await;
    assert_eq!(setup.gate.open_calls(), 0, "call 1 ended with its stream");
    post(2).await;
    assert_eq!(
        setup.gate.open_calls(),
        1,
        "call 2 waits for the resumed stream"
    );
    let resumed =
        response(send(setup.port, "GET", Some("s"), "Last-Event-ID: p1\r\n", "").await).await;
    assert!(resumed.contains("\"id\":2"), "{resumed}");
    assert_eq!(
        setup.gate.open_calls(),
        0,
        "the resumed stream answered call 2"
    );
    post(3).await;
    assert_eq!(setup.gate.open_calls(), 1);
    // The server ended the session: 404 for it.
    post(4).await;
    assert_eq!(
        setup.gate.open_calls(),
        0,
        "a 404 for the session ends its calls"
    );
    assert_eq!(
        ends(&setup),
        [
            error(json!({"unanswered": "the response ended without an answer"})),
            (json!("ok"), json!({})),
            error(json!({"http_status": 404})),
            error(json!({"unanswered": "the upstream ended the MCP session (404 for its id)"})),
        ]
    );
}

#[tokio::test]
async fn a_client_that_drops_the_event_stream_ends_the_calls_its_post_carried() {
    let setup = setup(|_| Script::Stream(events(": open\n\n"))).await;
    let mut stream = send(setup.port, "POST", Some("s"), "", &tools_call(1)).await;
    let head = response_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(setup.gate.open_calls(), 1);
    drop(stream);
    all_ended(&setup.gate).await;
    assert_eq!(
        ends(&setup),
        [error(
            json!({"unanswered": "the client stopped reading the response before it ended"})
        )]
    );
}

#[tokio::test]
async fn a_client_that_goes_away_before_the_upstream_answers_ends_the_calls() {
    let mut setup = setup(|_| Script::Silent).await;
    let stream = send(setup.port, "POST", None, "", &tools_call(1)).await;
    let relayed = setup.upstream_requests.recv().await.unwrap();
    assert!(relayed.contains("tools/call"), "{relayed}");
    assert_eq!(setup.gate.open_calls(), 1);
    drop(stream);
    all_ended(&setup.gate).await;
    assert_eq!(
        ends(&setup),
        [error(
            json!({"unanswered": "the client went away before the upstream answered"})
        )]
    );
}

#[tokio::test]
async fn bodies_the_proxy_cannot_read_are_refused_and_not_relayed() {
    let called = Arc::new(Mutex::new(0));
    let counter = called.clone();
    let mut setup = setup(move |_| {
        *counter.lock().unwrap() += 1;
        answer("200 OK", "application/json", "{}")
    })
    .await;
    let nan = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":{"x":NaN}}}"#;
    let got = response(send(setup.port, "POST", Some("s"), "", nan).await).await;
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    let body: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], Value::Null);

    let gzip = "Content-Encoding: gzip\r\n";
    let got = response(send(setup.port, "POST", Some("s"), gzip, &tools_call(2)).await).await;
    assert!(got.starts_with("HTTP/1.1 415 "), "{got}");

    // A body of the right size and encoding goes through.
    let identity = "Content-Encoding: identity\r\n";
    let got = response(
        send(
            setup.port,
            "POST",
            Some("s"),
            identity,
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}",
        )
        .await,
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    assert_eq!(
        *called.lock().unwrap(),
        1,
        "only the readable body was relayed"
    );
    assert!(
        setup
            .upstream_requests
            .recv()
            .await
            .unwrap()
            .contains("ping")
    );
    assert!(setup.monitor.sent(&setup.gate, "tool.start").is_empty());
}
