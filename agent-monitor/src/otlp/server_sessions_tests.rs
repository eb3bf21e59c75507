//! The receiver's memory across connections, over real TCP: prompts
//! declared once, conversations let go of and their sessions ended.

use std::{
    io::{BufRead, BufReader, Read, Write},
    time::Duration,
};

use serde_json::json;

use super::{post, start, start_with, traces};

/// A `chat` span of `conversation` (none: the agent's current session)
/// whose input is `input`, in OTLP/JSON.
fn chat(
    span_id: &str,
    start: u64,
    conversation: Option<&str>,
    input: serde_json::Value,
) -> serde_json::Value {
    let text = |s: String| json!({"stringValue": s});
    let mut attributes = vec![
        json!({"key": "gen_ai.operation.name", "value": text("chat".into())}),
        json!({"key": "gen_ai.input.messages", "value": text(input.to_string())}),
        json!({"key": "gen_ai.output.messages", "value": text(
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "ok"}]}]).to_string()
        )}),
    ];
    if let Some(conversation) = conversation {
        attributes
            .push(json!({"key": "gen_ai.conversation.id", "value": text(conversation.into())}));
    }
    json!({"spanId": span_id, "name": "chat m", "startTimeUnixNano": start.to_string(),
           "endTimeUnixNano": (start + 1).to_string(), "attributes": attributes})
}

/// An `execute_tool` span of `conversation`, in OTLP/JSON.
fn tool(span_id: &str, start: u64, conversation: &str) -> serde_json::Value {
    json!({"spanId": span_id, "name": "execute_tool ls", "startTimeUnixNano": start.to_string(),
           "endTimeUnixNano": (start + 1).to_string(), "attributes": [
        {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
        {"key": "gen_ai.conversation.id", "value": {"stringValue": conversation}},
    ]})
}

fn export(spans: Vec<serde_json::Value>) -> Vec<u8> {
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
        .to_string()
        .into_bytes()
}

fn count(log: &[String], what: &str) -> usize {
    log.iter().filter(|l| l.contains(what)).count()
}

#[tokio::test]
async fn a_prompt_sent_again_is_declared_once() {
    let harness = start(true).await;
    let user = json!({"role": "user", "content": "List /srv."});
    let asked =
        json!({"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "ls"}]});
    let answered = json!({"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "a"}]});
    // A tool loop: the first round's input ends with the prompt, the next
    // one's with the tool's result; then the first round retried.
    let first = export(vec![
        chat("00000000000000a1", 10, Some("conv-9"), json!([user])),
        chat(
            "00000000000000a2",
            20,
            Some("conv-9"),
            json!([user, asked, answered]),
        ),
        chat("00000000000000a3", 30, Some("conv-9"), json!([user])),
    ]);
    let (status, _, _) = post(harness.addr, &traces("application/json"), &first).await;
    assert_eq!(status, 200);
    // On another connection: the user says the same again, later in the
    // conversation; and the same words outside it.
    let again = json!({"role": "user", "content": "List /srv."});
    let second = export(vec![
        chat(
            "00000000000000a4",
            40,
            Some("conv-9"),
            json!([user, asked, answered, {"role": "assistant", "content": "a"}, again]),
        ),
        chat("00000000000000a5", 50, None, json!([user])),
    ]);
    let (status, _, _) = post(harness.addr, &traces("application/json"), &second).await;
    assert_eq!(status, 200);
    let (counts, log) = harness.finish().await;
    assert_eq!((counts.declared, counts.refused), (5, 0));
    assert_eq!(count(&log, r#""type":"model.output""#), 5, "{log:#?}");
    let prompts: Vec<&String> = log
        .iter()
        .filter(|l| l.contains(r#""type":"prompt""#))
        .collect();
    assert_eq!(prompts.len(), 3, "{log:#?}");
    assert!(prompts.iter().all(|p| p.contains("List /srv.")));
    assert!(prompts[1].contains(r#""at":40"#), "{}", prompts[1]);
}

#[tokio::test]
async fn a_conversation_let_go_of_and_quiet_has_its_session_ended() {
    let harness = start_with(true, Duration::from_millis(300)).await;
    let body = export(vec![
        tool("00000000000000b1", 10, "conv-q"),
        chat(
            "00000000000000b2",
            20,
            None,
            json!([{"role": "user", "content": "hi"}]),
        ),
    ]);
    let (status, _, response) = post(harness.addr, &traces("application/json"), &body).await;
    assert_eq!((status, response.as_slice()), (200, b"{}".as_slice()));
    // The connection closed; the conversation's session is ended once it
    // is quiet, on a connection of its own. The agent's current session,
    // which no conversation names, is not.
    let log = harness
        .log_when("the session's end and its connection's close", |log| {
            log.iter()
                .position(|l| l.contains("session.end"))
                .is_some_and(|end| log[end..].iter().any(|l| l == "disconnect"))
        })
        .await;
    // Quiet for as long again: nothing more is ended.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let log_after = harness.log.lock().unwrap().clone();
    assert_eq!(
        count(&log_after, r#""type":"session.end""#),
        1,
        "{log_after:#?}"
    );
    let end = log.iter().position(|l| l.contains("session.end")).unwrap();
    assert_eq!(
        log[end - 2..=end + 1],
        [
            "connect pid=true agent=Some(1)".to_string(),
            r#"{"type":"session.start","session_id":"conv-q"}"#.to_string(),
            r#"{"type":"session.end"}"#.to_string(),
            "disconnect".to_string(),
        ]
    );
    // A span naming it afterwards is refused: an ended session is not
    // entered again.
    let late = export(vec![tool("00000000000000b3", 30, "conv-q")]);
    let (_, _, response) = post(harness.addr, &traces("application/json"), &late).await;
    let response: serde_json::Value = serde_json::from_slice(&response).unwrap();
    assert_eq!(
        response["partialSuccess"]["errorMessage"],
        "1 of 1 spans refused: span 00000000000000b3: not permitted: session `conv-q` has ended"
    );
    harness.finish().await;
}

/// Sends one request on a kept-alive connection, from a blocking thread,
/// and reads its response: the connection back, and the status.
async fn exchange(stream: std::net::TcpStream, body: Vec<u8>) -> (std::net::TcpStream, u16) {
    tokio::task::spawn_blocking(move || {
        let mut writer = stream;
        let addr = writer.peer_addr().unwrap();
        let head = format!(
            "{}\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
            traces("application/json"),
            body.len()
        );
        writer.write_all(head.as_bytes()).unwrap();
        writer.write_all(&body).unwrap();
        let mut reader = BufReader::new(writer.try_clone().unwrap());
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut response = vec![0; length];
        reader.read_exact(&mut response).unwrap();
        (writer, status[9..12].parse().unwrap())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_conversation_held_by_an_open_connection_is_ended_once_let_go_of() {
    let harness = start_with(true, Duration::from_millis(300)).await;
    let addr = harness.addr;
    let stream = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr).unwrap())
        .await
        .unwrap();
    let (stream, status) =
        exchange(stream, export(vec![tool("00000000000000c1", 10, "conv-a")])).await;
    assert_eq!(status, 200);
    // Quiet, but the connection still holds it: not ended.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(count(&harness.log.lock().unwrap(), "session.end"), 0);
    // The connection's next export lets go of what has been quiet.
    let (stream, status) =
        exchange(stream, export(vec![tool("00000000000000c2", 20, "conv-b")])).await;
    assert_eq!(status, 200);
    let log = harness
        .log_when("conv-a's end", |log| count(log, "session.end") == 1)
        .await;
    let end = log.iter().position(|l| l.contains("session.end")).unwrap();
    assert!(log[end - 1].contains("conv-a"), "{log:#?}");
    // conv-b, quiet as long again but held by the open connection, is not.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count(&harness.log.lock().unwrap(), "session.end"), 1);
    // Closed: the other is let go of too.
    drop(stream);
    harness
        .log_when("conv-b's end", |log| count(log, "session.end") == 2)
        .await;
    let (_, log) = harness.finish().await;
    assert_eq!(count(&log, "session.end"), 2, "{log:#?}");
    let last = log.iter().rposition(|l| l.contains("session.end")).unwrap();
    assert!(log[last - 1].contains("conv-b"), "{log:#?}");
}

#[tokio::test]
async fn a_connection_lets_go_of_the_conversation_it_used_least_recently() {
    let harness = start(true).await;
    // 64 conversations, the first named again, a 65th, then the second
    // again: the 65th takes the place of the second (used least
    // recently), not of the first, and the second is entered again.
    let mut spans: Vec<serde_json::Value> = (0..64)
        .map(|i| {
            tool(
                &format!("{:016x}", 0xd000 + i),
                10 + i,
                &format!("conv-{i}"),
            )
        })
        .collect();
    spans.push(tool("000000000000e001", 100, "conv-0"));
    spans.push(tool("000000000000e002", 101, "conv-64"));
    spans.push(tool("000000000000e003", 102, "conv-1"));
    let (status, _, response) =
        post(harness.addr, &traces("application/json"), &export(spans)).await;
    assert_eq!((status, response.as_slice()), (200, b"{}".as_slice()));
    let (counts, log) = harness.finish().await;
    assert_eq!(counts.declared, 67);
    let starts = |id: &str| count(&log, &format!(r#""session_id":"{id}""#));
    assert_eq!(
        (starts("conv-0"), starts("conv-1"), starts("conv-2")),
        (1, 2, 1)
    );
    // Two let go of before the connection closed, then the 64 it held.
    let last_start = log
        .iter()
        .rposition(|l| l.contains("session.start"))
        .unwrap();
    assert_eq!(count(&log[..last_start], "disconnect"), 2, "{log:#?}");
    assert_eq!(count(&log, "disconnect"), 66);
}
