//! The proxy as a relay: what the server and the client receive is what
//! the other sent, byte for byte, apart from the requests it refuses.

use super::*;

/// What went through the proxy between a client that wrote `client_bytes`
/// and echo_server.py, under `run`.
struct Relayed {
    /// Holds the work directory until the checks are done.
    _work: Work,
    store: PathBuf,
    /// What the server read.
    received: Vec<u8>,
    /// What the server wrote.
    sent: Vec<u8>,
    /// What the client read.
    stdout: Vec<u8>,
    stderr: String,
}

fn relay_through_proxy(proxy_flags: &[&str], client_bytes: &[u8]) -> Relayed {
    let work = Work::new();
    let store = work.root.join("evidence");
    let received = work.root.join("received.bin");
    let sent = work.root.join("sent.bin");
    let python = real_python();
    let mut child = monitor_command()
        .args(["run", "--evidence", store.to_str().unwrap(), "--"])
        .args([BIN, "mcp-proxy"])
        .args(proxy_flags)
        .args(["--", &python, "echo_server.py"])
        .arg(&received)
        .arg(&sent)
        .current_dir(&work.agent)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent-monitor runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(client_bytes).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_privileged(&stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    Relayed {
        received: std::fs::read(&received).unwrap(),
        sent: std::fs::read(&sent).unwrap(),
        stdout: out.stdout,
        stderr,
        _work: work,
        store,
    }
}

/// The line of [`odd_client_bytes`] that is not JSON.
const NOT_JSON: &str = "not json at all \t\u{fffd}\r\n";

/// Odd on purpose: spaces inside and around JSON, CRLF, non-ASCII, a line
/// that is not JSON, an empty line, a batch, and a last line without a
/// newline; two of them are tools/calls to declare.
fn odd_client_bytes() -> Vec<u8> {
    [
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{}}\n",
        "  {\"jsonrpc\" : \"2.0\", \"id\":1, \"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"h\u{e9}llo \u{2603}\"}}}  \r\n",
        NOT_JSON,
        "\n",
        "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}]\n",
        "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}",
    ]
    .concat()
    .into_bytes()
}

/// The two tools/calls of [`odd_client_bytes`] as the store records them
/// (id, tool, arguments, status, source): the first answered, the second
/// ended as `error` when the server exited without answering it.
fn odd_calls() -> Vec<Value> {
    vec![
        json!([
            "1",
            "echo",
            "{\"text\":\"h\u{e9}llo \u{2603}\"}",
            "ok",
            "mcp"
        ]),
        json!(["two", "echo", "{}", "error", "mcp"]),
    ]
}

fn echo_calls(store: &Path) -> Vec<Value> {
    duckdb_in(
        store,
        &[],
        "select mcp_request_id, tool, args, status, source from read_parquet('tool_calls/**/*.parquet') order by started",
    )
}

#[test]
fn the_proxy_relays_bytes_unchanged_both_ways() {
    // Only observing, the proxy relays even the line that is not JSON.
    let client_bytes = odd_client_bytes();
    let relayed = relay_through_proxy(&["--observe-only"], &client_bytes);
    assert_eq!(
        relayed.received, client_bytes,
        "the server got the client's bytes"
    );
    // The server answered each of the six lines, the last one too.
    assert!(
        relayed.sent.ends_with(
            b"\"id\":\"two\",\"error\":{\"code\":-32602,\"message\":\"missing arguments\"}}\n"
        ),
        "{}",
        String::from_utf8_lossy(&relayed.sent)
    );
    assert_eq!(
        String::from_utf8_lossy(&relayed.stdout),
        String::from_utf8_lossy(&relayed.sent),
        "the client got the server's bytes"
    );
    assert_eq!(relayed.stdout, relayed.sent);
    assert!(
        relayed
            .stderr
            .contains("relaying a client message that is not JSON"),
        "{}",
        relayed.stderr
    );
    assert_eq!(echo_calls(&relayed.store), odd_calls());
}

#[test]
fn a_line_that_is_not_json_is_answered_with_a_parse_error_and_the_rest_relayed_unchanged() {
    let client_bytes = odd_client_bytes();
    let relayed = relay_through_proxy(&[], &client_bytes);
    let without_it: Vec<u8> = String::from_utf8(client_bytes)
        .unwrap()
        .replacen(NOT_JSON, "", 1)
        .into_bytes();
    assert_eq!(
        String::from_utf8_lossy(&relayed.received),
        String::from_utf8_lossy(&without_it),
        "the server got every byte but the line that is not JSON"
    );
    // The client got the server's bytes, and the proxy's answer as a line
    // of its own between the server's.
    let stdout = String::from_utf8(relayed.stdout.clone()).unwrap();
    let answers: Vec<&str> = stdout
        .split_inclusive('\n')
        .filter(|line| line.contains("\"id\":null"))
        .collect();
    assert_eq!(answers.len(), 1, "{stdout}");
    let answer: Value = serde_json::from_str(answers[0]).unwrap();
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Parse error: expected ident at line 1 column 2"),
        "{answer}"
    );
    assert_eq!(
        stdout.replacen(answers[0], "", 1),
        String::from_utf8_lossy(&relayed.sent),
        "the client got the server's bytes around it"
    );
    assert!(
        relayed
            .stderr
            .contains("refused a client message that is not JSON"),
        "{}",
        relayed.stderr
    );
    // The server answered five lines, so not call "two": it ended when the
    // server exited.
    assert_eq!(echo_calls(&relayed.store), odd_calls());
}

/// A client speaking raw JSON-RPC lines to the proxy in front of
/// server.py (the MCP SDK's server), under `run`.
struct RawClient {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl RawClient {
    fn start(work: &Work, store: &Path, proxy_flags: &[&str]) -> RawClient {
        let python = real_python();
        let mut child = monitor_command()
            .args(["run", "--evidence", store.to_str().unwrap(), "--"])
            .args([BIN, "mcp-proxy"])
            .args(proxy_flags)
            .args(["--", &python, "server.py"])
            .current_dir(&work.agent)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("agent-monitor runs");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        let mut client = RawClient {
            stdin: child.stdin.take(),
            child,
            lines,
        };
        client.send(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
        );
        client.answer_to(&json!(0));
        client.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        client
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// The next response with `id`, skipping the server's notifications.
    fn answer_to(&mut self, id: &Value) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("no answer to id {id} ({e})"));
            let message: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the client got a line that is not JSON ({e}): {line}"));
            if &message["id"] == id {
                return message;
            }
        }
    }

    /// Closes the client's side; returns the proxy's stderr.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let out = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        stderr
    }
}

#[test]
fn a_tools_call_with_nan_in_its_arguments_is_not_relayed_unless_only_observing() {
    // The MCP SDK parses NaN, which the proxy cannot: it would run this
    // call undeclared.
    let call = |work: &Work, id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"{}","content":"x","x":NaN}}}}}}"#,
            work.root.join("nan.txt").display()
        )
    };

    let work = Work::new();
    let store = work.root.join("evidence");
    let mut client = RawClient::start(&work, &store, &[]);
    client.send(&call(&work, 1));
    let refused = client.answer_to(&Value::Null);
    assert_eq!(refused["error"]["code"], -32700, "{refused}");
    // A request after it: the server has read all there was to read.
    client.send(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    assert_eq!(client.answer_to(&json!(2))["result"], json!({}));
    let stderr = client.finish();
    assert!(
        stderr.contains("refused a client message that is not JSON"),
        "{stderr}"
    );
    assert!(
        !work.root.join("nan.txt").exists(),
        "the call never reached the server"
    );
    assert_eq!(
        duckdb_in(
            &store,
            &[],
            "select count(*) from read_parquet('tool_calls/**/*.parquet', union_by_name=true)"
        ),
        vec![json!([0])]
    );

    // The control: relayed, the SDK's server runs it, and it is undeclared.
    let work = Work::new();
    let store = work.root.join("evidence");
    let mut client = RawClient::start(&work, &store, &["--observe-only"]);
    client.send(&call(&work, 1));
    let ran = client.answer_to(&json!(1));
    assert_eq!(ran["result"]["isError"], false, "{ran}");
    let stderr = client.finish();
    assert!(
        stderr.contains("relaying a client message that is not JSON"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(work.root.join("nan.txt")).unwrap(),
        "x"
    );
}
