//! The receiver over real TCP, against a fake kernel and a stage that
//! logs what it is asked and answers as the correlator would.

use std::{
    collections::{HashMap, HashSet},
    io::{Read, Write},
    sync::{Arc, Mutex},
};

use serde_json::json;

use super::*;
use crate::{
    api::Answer,
    declare::{Decision, Reply, Request as Declared},
};

const PROTOBUF: &[u8] = include_bytes!("testdata/export.pb");
const JSON: &[u8] = include_bytes!("testdata/export.json");

#[derive(Clone, Default)]
struct FakeKernel {
    agents: Arc<Mutex<HashMap<u32, u32>>>,
}

impl Kernel for FakeKernel {
    fn agent_of(&self, pid: u32) -> Option<(u32, u64)> {
        self.agents.lock().unwrap().get(&pid).map(|a| (*a, 7))
    }

    fn tool_call_of(&self, _pid: u32) -> u64 {
        0
    }

    fn set_tool_call(&self, _pid: u32, _slot: u64, _start_ns: u64) -> io::Result<()> {
        panic!("calls declared after the fact bind no slot")
    }
}

/// A stage that logs every message, and refuses a `tool.start` of the tool
/// `forbidden` as the correlator refuses one. It keeps each connection's
/// session as the correlator does, so that an ended session cannot be
/// entered again.
fn stage(log: Arc<Mutex<Vec<String>>>) -> mpsc::Sender<ApiMessage> {
    let (tx, mut rx) = mpsc::channel::<ApiMessage>(8);
    let mut current: HashMap<u64, String> = HashMap::new();
    let mut ended: HashSet<String> = HashSet::new();
    let mut opened: HashSet<String> = HashSet::new();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            match message {
                ApiMessage::Connect { conn, peer } => {
                    assert_ne!(
                        conn & 1 << 63,
                        0,
                        "the receiver's conn ids have the top bit"
                    );
                    log.lock().unwrap().push(format!(
                        "connect pid={} agent={:?}",
                        peer.pid == std::process::id(),
                        peer.agent_slot
                    ));
                }
                ApiMessage::Request {
                    conn,
                    envelope,
                    answer,
                    ..
                } => {
                    let line = serde_json::to_string(&envelope).unwrap();
                    log.lock().unwrap().push(line);
                    let reply = match envelope.request {
                        Declared::ToolStart(start) if start.tool == "forbidden" => {
                            Reply::not_permitted(None, "the session has ended")
                        }
                        Declared::ToolStart(_) => {
                            Reply::decision(None, Decision::Allow, "ok", None)
                        }
                        Declared::SessionStart(start) => {
                            let id = start.session_id.unwrap();
                            if ended.contains(&id) {
                                Reply::not_permitted(None, &format!("session `{id}` has ended"))
                            } else {
                                current.insert(conn, id.clone());
                                if opened.insert(id.clone()) {
                                    Reply::session_created(None, id)
                                } else {
                                    Reply::session_started(None, id)
                                }
                            }
                        }
                        Declared::SessionEnd => match current.remove(&conn) {
                            Some(id) => {
                                ended.insert(id);
                                Reply::accepted(None)
                            }
                            None => Reply::no_session(None),
                        },
                        _ => Reply::accepted(None),
                    };
                    let _ = answer.send(Answer {
                        reply,
                        slots: Vec::new(),
                    });
                }
                ApiMessage::Refused { .. } => panic!("the receiver refuses nothing itself"),
                ApiMessage::Disconnect { answer, .. } => {
                    log.lock().unwrap().push("disconnect".into());
                    let _ = answer.send(Vec::new());
                }
            }
        }
    });
    tx
}

struct Harness {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
    served: tokio::task::JoinHandle<Counts>,
}

async fn start(tracked: bool) -> Harness {
    start_with(tracked, DEFAULT_QUIET).await
}

/// A receiver that ends a conversation's session after `quiet`.
async fn start_with(tracked: bool, quiet: Duration) -> Harness {
    let kernel = FakeKernel::default();
    if tracked {
        kernel.agents.lock().unwrap().insert(std::process::id(), 1);
    }
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (stop, stop_rx) = watch::channel(false);
    let shared = Shared {
        kernel,
        to_stage: stage(log.clone()),
        clock: WallClock::with_offset(0),
        counts: Mutex::new(Counts::default()),
        next_conn: AtomicU64::new(0),
        conversations: Mutex::new(Conversations::new(quiet)),
    };
    let served = tokio::spawn(serve_shared(listener, Arc::new(shared), stop_rx));
    Harness {
        addr,
        log,
        stop,
        served,
    }
}

impl Harness {
    /// The log, once `done` holds for it: what the receiver does when a
    /// conversation has been quiet long enough happens on its own time,
    /// later on a loaded machine. Panics after 20 s.
    async fn log_when(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log.lock().unwrap().clone();
            if done(&log) {
                return log;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 20 s for {what}: {log:#?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the receiver and returns its counts and the stage's log.
    async fn finish(self) -> (Counts, Vec<String>) {
        self.stop.send(true).unwrap();
        let counts = self.served.await.unwrap();
        let log = self.log.lock().unwrap().clone();
        (counts, log)
    }
}

/// One HTTP/1.1 request on its own connection, from a blocking thread of
/// this process (the process the receiver must find): status, content
/// type and body.
async fn post(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let request = [
        format!(
            "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes(),
        body.to_vec(),
    ]
    .concat();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&request).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head[9..12].parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or("")
            .to_string();
        (status, content_type, response[split + 4..].to_vec())
    })
    .await
    .unwrap()
}

fn traces(content_type: &str) -> String {
    format!("POST /v1/traces HTTP/1.1\r\nContent-Type: {content_type}")
}

#[tokio::test]
async fn an_agent_s_protobuf_export_becomes_declarations_in_order() {
    let harness = start(true).await;
    let (status, content_type, body) =
        post(harness.addr, &traces("application/x-protobuf"), PROTOBUF).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/x-protobuf")
    );
    // Everything taken: an empty ExportTraceServiceResponse.
    assert_eq!(body, b"");
    let (counts, log) = harness.finish().await;
    assert_eq!(
        counts,
        Counts {
            spans: 6,
            declared: 4,
            ignored: 2,
            refused: 0,
            first_refusal: None
        }
    );
    let types: Vec<String> = log
        .iter()
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(request) => format!(
                    "{} {}",
                    request["type"].as_str().unwrap(),
                    request["session_id"]
                        .as_str()
                        .or(request["call_id"].as_str())
                        .unwrap_or("")
                ),
                Err(_) => line.clone(),
            },
        )
        .map(|line| line.trim_end().to_string())
        .collect();
    // The conversation's spans on a connection that entered its session;
    // the span without one on another, left in the agent's current
    // session. Both end with the TCP connection.
    assert_eq!(
        types,
        [
            "connect pid=true agent=Some(1)",
            "session.start conv-1",
            "prompt",
            "model.output",
            "tool.start otel-1000000000000003",
            "tool.end otel-1000000000000003",
            "connect pid=true agent=Some(1)",
            "tool.start otel-1000000000000004",
            "tool.end otel-1000000000000004",
            "prompt",
            "model.output",
            "disconnect",
            "disconnect",
        ]
    );
    assert!(log[4].contains(r#""source":"otel""#), "{}", log[4]);
}

#[tokio::test]
async fn a_json_export_gets_a_json_answer() {
    let harness = start(true).await;
    let (status, content_type, body) = post(
        harness.addr,
        &traces("application/json; charset=utf-8"),
        JSON,
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(body, b"{}");
    let (counts, _) = harness.finish().await;
    assert_eq!((counts.declared, counts.ignored), (4, 2));
}

#[tokio::test]
async fn spans_from_a_process_of_no_agent_are_refused_in_a_partial_success() {
    let harness = start(false).await;
    let (status, _, body) = post(harness.addr, &traces("application/x-protobuf"), PROTOBUF).await;
    assert_eq!(status, 200);
    let response = proto::ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let partial = response.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 4);
    assert_eq!(
        partial.error_message,
        format!(
            "4 of 6 spans refused: the sender, pid {}, belongs to no monitored agent",
            std::process::id()
        )
    );
    let (counts, log) = harness.finish().await;
    assert_eq!((counts.refused, counts.ignored), (4, 2));
    assert!(log.is_empty(), "nothing reaches the stage: {log:?}");
}

#[tokio::test]
async fn a_span_the_stage_refuses_is_counted_with_its_reason() {
    let harness = start(true).await;
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"spanId": "00f067aa0ba902b7", "name": "execute_tool forbidden",
         "startTimeUnixNano": "1", "endTimeUnixNano": "2",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}]},
        {"spanId": "00f067aa0ba902b8", "name": "execute_tool",
         "startTimeUnixNano": "3", "endTimeUnixNano": "4",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}]},
        {"spanId": "00f067aa0ba902b9", "name": "execute_tool ls",
         "startTimeUnixNano": "5", "endTimeUnixNano": "6",
         "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}}]}
    ]}]}]});
    let (status, _, response) = post(
        harness.addr,
        &traces("application/json"),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(
        response,
        json!({"partialSuccess": {
            "rejectedSpans": 2,
            "errorMessage": "2 of 3 spans refused: span 00f067aa0ba902b7: not permitted: the session has ended; \
                             span 00f067aa0ba902b8: an execute_tool span needs gen_ai.tool.name or a name `execute_tool TOOL`"
        }})
    );
    let (counts, log) = harness.finish().await;
    assert_eq!((counts.declared, counts.refused), (1, 2));
    assert_eq!(
        counts.first_refusal.as_deref(),
        Some("span 00f067aa0ba902b7: not permitted: the session has ended")
    );
    // The refused start is not followed by its end.
    assert_eq!(
        log.iter().filter(|l| l.contains("tool.end")).count(),
        1,
        "{log:?}"
    );
}

#[tokio::test]
async fn what_is_not_an_export_gets_the_status_otlp_gives_it() {
    let harness = start(true).await;
    let addr = harness.addr;

    let (status, _, body) = post(
        addr,
        "POST /v1/metrics HTTP/1.1\r\nContent-Type: application/json",
        b"{}",
    )
    .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("POST /v1/traces"));
    let (status, _, _) = post(addr, "GET /v1/traces HTTP/1.1", b"").await;
    assert_eq!(status, 405);

    let (status, _, body) = post(addr, &traces("text/plain"), b"spans").await;
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("application/x-protobuf or application/json"));
    let gzip = format!(
        "{}\r\nContent-Encoding: gzip",
        traces("application/x-protobuf")
    );
    let (status, _, body) = post(addr, &gzip, PROTOBUF).await;
    assert_eq!(status, 415);
    assert!(
        String::from_utf8_lossy(&body).contains("export without compression"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    // A malformed body: 400 with a google.rpc.Status in its encoding.
    let (status, content_type, body) = post(
        addr,
        &traces("application/x-protobuf"),
        &PROTOBUF[..PROTOBUF.len() - 7],
    )
    .await;
    assert_eq!(
        (status, content_type.as_str()),
        (400, "application/x-protobuf")
    );
    let rpc = proto::RpcStatus::decode(&body[..]).unwrap();
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message
            .starts_with("not a protobuf ExportTraceServiceRequest"),
        "{}",
        rpc.message
    );
    let (status, _, body) = post(addr, &traces("application/json"), b"[1]").await;
    assert_eq!(status, 400);
    let rpc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rpc["code"], 3);
    assert!(
        rpc["message"].as_str().unwrap().contains("OTLP/JSON"),
        "{rpc}"
    );

    // Too large, by its declared length: refused before it is read.
    let big = format!(
        "{}\r\nContent-Length: {}",
        traces("application/json"),
        MAX_BODY + 1
    );
    let (status, _, body) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(format!("{big}\r\n\r\n").as_bytes())
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status: u16 = response[9..12].parse().unwrap();
        (status, (), response)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than 16777216 bytes"), "{body}");

    let (counts, log) = harness.finish().await;
    assert_eq!(counts.spans, 0);
    assert!(log.is_empty(), "{log:?}");
}

#[tokio::test]
async fn a_body_over_the_limit_without_a_length_is_cut_off() {
    let harness = start(true).await;
    let addr = harness.addr;
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .write_all(
                format!(
                    "{}\r\nTransfer-Encoding: chunked\r\n\r\n",
                    traces("application/json")
                )
                .as_bytes(),
            )
            .unwrap();
        // One byte over, and nothing after it: the receiver has read all
        // that was sent when it answers, so its close loses no response.
        let over = MAX_BODY + 1;
        stream
            .write_all(format!("{over:x}\r\n").as_bytes())
            .unwrap();
        stream.write_all(&vec![b' '; over]).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8_lossy(&response).into_owned();
        (response[9..12].parse::<u16>().unwrap(), response)
    })
    .await
    .unwrap();
    assert_eq!(status, 413, "{body}");
    harness.finish().await;
}

#[tokio::test]
async fn the_listen_address_must_be_loopback() {
    let err = bind("0.0.0.0:0".parse().unwrap()).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loopback only"), "{err}");
}

#[path = "server_sessions_tests.rs"]
mod sessions;
