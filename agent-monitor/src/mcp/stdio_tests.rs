//! The stdio relay's two directions over in-memory pipes.

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, duplex},
    sync::mpsc::{self, error::TrySendError},
};

use super::{
    declarer::Declarer,
    fake_monitor::FakeMonitor,
    gate::{Gate, GateOptions},
    jsonrpc::PARSE_ERROR,
    stdio::{ANSWERS_IN_FLIGHT, MAX_QUEUED_ANSWERS, client_to_server, server_to_client},
};

#[tokio::test]
async fn answers_wait_for_the_servers_line_and_too_many_waiting_hold_the_client_back() {
    let gate = Arc::new(Gate::new(
        Arc::new(Declarer::unmonitored()),
        GateOptions::default(),
    ));
    let (mut server, server_out) = duplex(1 << 16);
    let (client_in, mut client) = duplex(1 << 20);
    let (answers, queue) = mpsc::channel(ANSWERS_IN_FLIGHT);
    let relay = tokio::spawn(server_to_client(gate, server_out, client_in, queue));

    let head = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"res";
    server.write_all(head).await.unwrap();
    let mut relayed = vec![0u8; head.len()];
    client.read_exact(&mut relayed).await.unwrap();
    assert_eq!(relayed, head, "the server's bytes go out as they come");

    let answer = |n: usize| format!("{{\"id\":\"a{n}\"}}\n").into_bytes();
    let held = MAX_QUEUED_ANSWERS + ANSWERS_IN_FLIGHT;
    for n in 0..held {
        answers.send(answer(n)).await.unwrap();
    }
    // Given the time, a relay without a bound would take this one too.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        matches!(answers.try_send(answer(held)), Err(TrySendError::Full(_))),
        "the answers fill the queue and then the channel"
    );
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), client.read(&mut byte))
            .await
            .is_err(),
        "nothing goes inside the server's line"
    );

    let tail = b"ult\":{}}\n";
    server.write_all(tail).await.unwrap();
    answers.send(answer(held)).await.unwrap();
    drop(answers);
    drop(server);
    relay.await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    let expected: Vec<u8> = tail
        .iter()
        .copied()
        .chain((0..=held).flat_map(answer))
        .collect();
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&expected),
        "the line ends, then every answer in order"
    );
}

/// Runs the client side over `input`: what the server got, and the
/// proxy's answers.
async fn client_side(gate: Arc<Gate>, input: &[u8]) -> (Vec<u8>, Vec<Value>) {
    let (mut client, client_out) = duplex(1 << 16);
    let (server_in, mut server) = duplex(1 << 16);
    let (answers, mut queue) = mpsc::channel(ANSWERS_IN_FLIGHT);
    let relay = tokio::spawn(client_to_server(gate, client_out, server_in, 77, answers));
    client.write_all(input).await.unwrap();
    drop(client);
    relay.await.unwrap();
    let mut got = Vec::new();
    server.read_to_end(&mut got).await.unwrap();
    let mut answered = Vec::new();
    while let Some(bytes) = queue.recv().await {
        answered.push(serde_json::from_slice(&bytes).unwrap());
    }
    (got, answered)
}

#[tokio::test]
async fn a_client_line_that_is_not_json_is_answered_with_a_parse_error_not_relayed() {
    let nan = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"write_file\",\"arguments\":{\"x\":NaN}}}\n";
    let ping = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n";
    let input = format!("{nan}\r\n{ping}");

    let monitor = FakeMonitor::start(None);
    let gate = Arc::new(monitor.gate(GateOptions::default()));
    let (got, answered) = client_side(gate.clone(), input.as_bytes()).await;
    assert_eq!(String::from_utf8_lossy(&got), format!("\r\n{ping}"));
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["error"]["code"], PARSE_ERROR);
    assert_eq!(answered[0]["id"], Value::Null);
    assert!(monitor.sent(&gate, "tool.start").is_empty());

    // Only observing, the proxy relays it as it is.
    let monitor = FakeMonitor::start(None);
    let gate = Arc::new(monitor.gate(GateOptions {
        observe_only: true,
        ..GateOptions::default()
    }));
    let (got, answered) = client_side(gate, input.as_bytes()).await;
    assert_eq!(String::from_utf8_lossy(&got), input);
    assert!(answered.is_empty());
}
