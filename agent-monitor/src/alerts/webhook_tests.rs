//! Against a tiny HTTP server on the loopback interface, scripted per
//! connection. Waits are for events (a request seen, the queue drained),
//! never fixed sleeps; backoffs are milliseconds.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::*;

/// How the server answers one connection.
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    /// Holds the request until the test says, then answers 200.
    Hold,
}

struct Request {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Server {
    url: String,
    /// Each request, as soon as it is read.
    seen: mpsc::Receiver<Request>,
    release: mpsc::Sender<()>,
}

/// Serves one connection per entry of `script`, in order, then stops; it
/// also stops after 10 s without a connection, so no test leaves it behind.
fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!(
        "http://{}/hooks/T0/secret-token",
        listener.local_addr().unwrap()
    );
    let (seen_tx, seen) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        for reply in script {
            let Some(stream) = accept(&listener, Duration::from_secs(10)) else {
                return;
            };
            let Some(request) = read_request(&stream) else {
                return;
            };
            if seen_tx.send(request).is_err() {
                return;
            }
            let status = match reply {
                Reply::Status(status) => status,
                Reply::Hold => {
                    let _ = release_rx.recv_timeout(Duration::from_secs(10));
                    200
                }
            };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    Server { url, seen, release }
}

fn accept(listener: &TcpListener, patience: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .ok()?;
                return Some(stream);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    None
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    assert!(line.starts_with("POST /hooks/T0/secret-token "), "{line:?}");
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { headers, body })
}

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        headers: vec![("Authorization".into(), "Bearer t0ken".into())],
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        drain_timeout: Duration::from_secs(10),
        ..WebhookConfig::new(url)
    }
}

fn alert(id: &str) -> AlertRow {
    AlertRow {
        ts: 1_795_730_726_000_000_000,
        alert_id: id.into(),
        kind: "undeclared".into(),
        severity: "high".into(),
        agent: Some("claude".into()),
        message: "connected to 203.0.113.9:443".into(),
        ..AlertRow::default()
    }
}

fn requests(server: &Server) -> Vec<Request> {
    server.seen.try_iter().collect()
}

#[test]
fn server_errors_are_retried_until_delivered() {
    let server = serve(vec![
        Reply::Status(500),
        Reply::Status(500),
        Reply::Status(200),
    ]);
    let mut sink = WebhookAlerts::start(config(&server.url)).unwrap();
    sink.send(&alert("a1")).unwrap();
    sink.flush().unwrap();
    assert_eq!(
        sink.stats(),
        WebhookStats {
            delivered: 1,
            dropped: 0,
            failed: 0,
            pending: 0
        }
    );
    assert_eq!(sink.lost(), 0);
    let seen = requests(&server);
    assert_eq!(seen.len(), 3, "two 500s, then the 200");
    for request in &seen {
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(request.body, seen[0].body, "every try sends the same body");
    }
    let body: Value = serde_json::from_slice(&seen[2].body).unwrap();
    assert_eq!(body["alert_id"], "a1");
    assert_eq!(body["ts"], "2026-11-26T22:05:26.000000000Z");
    assert_eq!(body["message"], "connected to 203.0.113.9:443");
    assert_eq!(body["session_id"], Value::Null);
}

#[test]
fn too_many_requests_is_retried() {
    let server = serve(vec![Reply::Status(429), Reply::Status(204)]);
    let mut sink = WebhookAlerts::start(config(&server.url)).unwrap();
    sink.send(&alert("a1")).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.stats().delivered, 1);
    assert_eq!(requests(&server).len(), 2);
}

#[test]
fn a_client_error_is_not_retried() {
    let server = serve(vec![Reply::Status(400), Reply::Status(200)]);
    let mut sink = WebhookAlerts::start(config(&server.url)).unwrap();
    sink.send(&alert("a1")).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.stats().failed, 1);
    assert_eq!(sink.stats().delivered, 0);
    assert_eq!(sink.lost(), 1);
    assert_eq!(requests(&server).len(), 1, "a 400 is final");
}

#[test]
fn tries_are_bounded() {
    let server = serve(vec![Reply::Status(503); 4]);
    let mut sink = WebhookAlerts::start(WebhookConfig {
        attempts: 3,
        ..config(&server.url)
    })
    .unwrap();
    sink.send(&alert("a1")).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.stats().failed, 1);
    assert_eq!(requests(&server).len(), 3);
}

#[test]
fn a_refused_connection_is_retried() {
    // A port nobody listens on: bound, then closed.
    let url = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let mut sink = WebhookAlerts::start(WebhookConfig {
        attempts: 2,
        ..config(&url)
    })
    .unwrap();
    sink.send(&alert("a1")).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.stats().failed, 1);
}

/// Waits for the server to have read a request: the sender thread then has
/// that alert in flight.
fn wait_for_request(server: &Server) -> Request {
    server
        .seen
        .recv_timeout(Duration::from_secs(10))
        .expect("the webhook thread never connected")
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let server = serve(vec![Reply::Hold, Reply::Status(200)]);
    let mut sink = WebhookAlerts::start(WebhookConfig {
        queue: 1,
        ..config(&server.url)
    })
    .unwrap();
    sink.send(&alert("in-flight")).unwrap();
    wait_for_request(&server);
    sink.send(&alert("queued")).unwrap();
    sink.send(&alert("dropped-1")).unwrap();
    sink.send(&alert("dropped-2")).unwrap();
    assert_eq!(
        sink.stats(),
        WebhookStats {
            delivered: 0,
            dropped: 2,
            failed: 0,
            pending: 2
        }
    );
    server.release.send(()).unwrap();
    sink.flush().unwrap();
    assert_eq!(sink.stats().delivered, 2);
    assert_eq!(sink.lost(), 2, "the two dropped");
    let second: Value = serde_json::from_slice(&wait_for_request(&server).body).unwrap();
    assert_eq!(second["alert_id"], "queued");
}

#[test]
fn shutdown_waits_a_bounded_time_and_reports_the_rest() {
    let server = serve(vec![Reply::Hold]);
    let mut sink = WebhookAlerts::start(WebhookConfig {
        drain_timeout: Duration::from_millis(50),
        ..config(&server.url)
    })
    .unwrap();
    sink.send(&alert("stuck")).unwrap();
    sink.send(&alert("behind-it")).unwrap();
    wait_for_request(&server);
    sink.flush().unwrap();
    assert_eq!(sink.stats().pending, 2);
    assert_eq!(sink.lost(), 2);
    drop(sink);
    // Lets the held request finish so the server thread ends.
    server.release.send(()).unwrap();
}

#[test]
fn start_rejects_what_could_never_be_delivered() {
    let error = |config: WebhookConfig| match WebhookAlerts::start(config) {
        Ok(_) => panic!("accepted"),
        Err(error) => error.to_string(),
    };
    assert!(error(WebhookConfig::new("ftp://example.com/x")).contains("http or https"));
    let mut bad_value = WebhookConfig::new("https://example.com/x");
    bad_value.headers = vec![("Authorization".into(), "Bearer a\nb".into())];
    let text = error(bad_value);
    assert!(text.contains("\"Authorization\""), "{text}");
    assert!(
        !text.contains("Bearer"),
        "the value is a credential: {text}"
    );
    let mut content_type = WebhookConfig::new("https://example.com/x");
    content_type.headers = vec![("Content-Type".into(), "text/plain".into())];
    assert!(error(content_type).contains("set by the sink"));
    let empty_queue = WebhookConfig {
        queue: 0,
        ..WebhookConfig::new("https://example.com/x")
    };
    assert!(error(empty_queue).contains("queue"));
}

#[test]
fn debug_hides_secrets() {
    let config = config("https://user:pw@hooks.example.com:8443/T0/secret-token?k=v");
    let text = format!("{config:?}");
    assert!(text.contains("https://hooks.example.com:8443"), "{text}");
    assert!(text.contains("Authorization"), "{text}");
    for secret in ["secret-token", "t0ken", "pw", "k=v"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let sink_name = WebhookAlerts::start(config).unwrap().name();
    assert_eq!(sink_name, "webhook https://hooks.example.com:8443");
}
