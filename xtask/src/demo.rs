//! The README's demonstration: the example coding agent under the monitor,
//! declaring three tool calls and doing one thing it never declared; then
//! what the monitor recorded, read back from its JSONL output.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::{release_binary, root, sh};

pub fn run() -> Result<()> {
    let out = root().join("target/demo");
    // A fresh layout each time: the agent and the SDK side by side, as an
    // agent is deployed, its data, and a HOME with a secret planted in it.
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    let (agent, data, home) = (out.join("agent"), out.join("data"), out.join("home"));
    for dir in [&agent, &data, &home.join(".config")] {
        fs::create_dir_all(dir)?;
    }
    fs::write(data.join("notes.txt"), "Ship the release on Friday.\n")?;
    fs::write(home.join(".config/secret-token"), "tok_live_4242\n")?;
    fs::copy(
        root().join("examples/coding_agent.py"),
        agent.join("coding_agent.py"),
    )?;
    fs::copy(
        root().join("sdk/python/agent_monitor.py"),
        agent.join("agent_monitor.py"),
    )?;
    let url = format!("http://127.0.0.1:{}/reference", http_server()?);

    let events = out.join("events.jsonl");
    let evidence = out.join("evidence");
    let python = real_python()?;
    sh(Command::new(release_binary())
        .args([
            "run",
            "--agent",
            "coding-agent",
            "--quiet-alerts",
            "--events",
        ])
        .arg(&events)
        .arg("--evidence")
        .arg(&evidence)
        .args(["--", &python, "coding_agent.py", "--data"])
        .arg(&data)
        .args(["--url", &url])
        .current_dir(&agent)
        .env("HOME", &home))?;

    let text =
        fs::read_to_string(&events).with_context(|| format!("reading {}", events.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("the events file is not JSONL")?;
    let (declared, events): (Vec<Value>, Vec<Value>) = lines.into_iter().partition(|line| {
        ["session", "message", "tool_call", "decision", "alert"]
            .contains(&line["kind"].as_str().unwrap_or(""))
    });
    println!();
    println!(
        "What the monitor saw ({} events, in target/demo/events.jsonl and target/demo/evidence):",
        events.len()
    );
    print!("{}", Tree::from_events(&events).render());
    print!("{}", calls(&declared, &events));
    println!(
        "\nQuery the evidence with DuckDB, from target/demo/evidence:\n  duckdb -c \".read {}\"",
        root().join("queries/undeclared_with_prompt.sql").display()
    );
    Ok(())
}

/// A server outside the agent's tree for its `http_get` call.
fn http_server() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.0 200 OK\r\nContent-Length: 23\r\n\r\nRelease notes: Friday.\n",
            );
        }
    });
    Ok(port)
}

/// Each declared tool call with the policy's decision and what its
/// processes were seen to do, then every action nothing covered.
fn calls(declared: &[Value], events: &[Value]) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::from("\nDeclared tool calls:\n");
    for call in declared.iter().filter(|r| r["kind"] == "tool_call") {
        out.push_str(&format!(
            "  {} {} {}: {} by {}, {} events\n",
            text(&call["call_id"]),
            text(&call["tool"]),
            text(&call["args"]),
            text(&call["decision"]),
            text(&call["rule"]),
            call["events"]
        ));
        for effect in call["effects_seen"]
            .as_array()
            .into_iter()
            .flatten()
            .take(4)
        {
            out.push_str(&format!("      {}\n", text(effect)));
        }
    }
    let mut verdicts: BTreeMap<String, u64> = BTreeMap::new();
    for event in events {
        *verdicts.entry(text(&event["verdict"])).or_default() += 1;
    }
    let counts: Vec<String> = verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
    out.push_str(&format!("Verdicts: {}\n", counts.join(", ")));
    out.push_str("Alerts:\n");
    for alert in declared.iter().filter(|r| r["kind"] == "alert") {
        out.push_str(&format!(
            "  [{}] {}: {}\n",
            text(&alert["severity"]),
            text(&alert["alert_kind"]),
            text(&alert["message"])
        ));
    }
    out
}

fn real_python() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .context("the demonstration agent needs python3")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An argument as a shell would need it written.
fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[derive(Default)]
struct Node {
    pid: u64,
    argv: Vec<String>,
    outcome: String,
    children: Vec<String>,
}

/// Processes by key, linked by the fork events.
#[derive(Default)]
struct Tree {
    nodes: BTreeMap<String, Node>,
    roots: Vec<String>,
}

impl Tree {
    fn from_events(events: &[Value]) -> Tree {
        let mut tree = Tree::default();
        for event in events {
            let Some(key) = event["process_key"].as_str() else {
                continue;
            };
            if !tree.nodes.contains_key(key) {
                tree.roots.push(key.to_string());
            }
            let node = tree.nodes.entry(key.to_string()).or_default();
            node.pid = event["pid"].as_u64().unwrap_or_default();
            match event["kind"].as_str() {
                Some("process.exec") => {
                    node.argv = event["argv"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default();
                }
                Some("process.exit") => {
                    node.outcome = match (event["exit_code"].as_i64(), event["signal"].as_i64()) {
                        (Some(code), _) => format!("exit {code}"),
                        (_, Some(signal)) => format!("killed by signal {signal}"),
                        _ => String::new(),
                    };
                }
                Some("process.fork") => {
                    let child = event["child_process_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let argv = node.argv.clone();
                    node.children.push(child.clone());
                    // A forked child runs its parent's program until it execs.
                    tree.nodes.entry(child).or_default().argv = argv;
                }
                _ => {}
            }
        }
        tree
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for root in &self.roots {
            self.render_node(root, "", "", &mut out);
        }
        out
    }

    fn render_node(&self, key: &str, first: &str, rest: &str, out: &mut String) {
        let Some(node) = self.nodes.get(key) else {
            return;
        };
        let command: Vec<String> = node.argv.iter().map(|a| quote(a)).collect();
        let command = command.join(" ");
        let outcome = if node.outcome.is_empty() {
            "still running"
        } else {
            &node.outcome
        };
        out.push_str(&format!(
            "{first}{command}  [pid {}, {outcome}]\n",
            node.pid
        ));
        for (i, child) in node.children.iter().enumerate() {
            let last = i + 1 == node.children.len();
            let (branch, indent) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            self.render_node(
                child,
                &format!("{rest}{branch}"),
                &format!("{rest}{indent}"),
                out,
            );
        }
    }
}
