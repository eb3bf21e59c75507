//! The README's demonstration: an example agent under the monitor, then the
//! process tree the monitor recorded, read back from its JSONL events.

use std::{collections::BTreeMap, fs, process::Command};

use anyhow::{Context as _, Result};
use serde_json::Value;

use crate::{release_binary, root, sh};

pub fn run() -> Result<()> {
    let out = root().join("target/demo");
    fs::create_dir_all(&out)?;
    let events = out.join("events.jsonl");
    let agent = root().join("examples/demo_agent.py");
    let python = real_python()?;
    sh(Command::new(release_binary())
        .args(["run", "--agent", "demo-agent", "--events"])
        .arg(&events)
        .arg("--")
        .arg(python)
        .arg(&agent))?;

    let text =
        fs::read_to_string(&events).with_context(|| format!("reading {}", events.display()))?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("the events file is not JSONL")?;
    // The run's session line is not an event.
    let events: Vec<Value> = lines
        .into_iter()
        .filter(|line| line["kind"] != "session")
        .collect();
    println!();
    println!(
        "What the monitor saw ({} events, all in target/demo/events.jsonl):",
        events.len()
    );
    print!("{}", Tree::from_events(&events).render());
    print!("{}", highlights(&events));
    Ok(())
}

/// Files the agent wrote or removed and the connections it made: what an
/// auditor asks first. Reads of libraries and locale files stay in the
/// JSONL.
fn highlights(events: &[Value]) -> String {
    let field = |e: &Value, name: &str| e[name].as_str().unwrap_or("?").to_string();
    let outcome = |e: &Value| e["error"].as_str().unwrap_or("ok").to_string();
    let mut out = String::from("\nFiles opened for writing:\n");
    for e in events.iter().filter(|e| {
        e["kind"] == "file.open"
            && e["access"] != "read"
            && e["result"].as_i64().is_some_and(|r| r >= 0)
            && !e["path"].as_str().is_some_and(|p| p.starts_with("/dev/"))
    }) {
        let created = if e["created"] == true {
            ", created"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {}  (pid {}, {}{created})\n",
            field(e, "path"),
            e["pid"],
            field(e, "access")
        ));
    }
    out.push_str("Files removed:\n");
    for e in events.iter().filter(|e| e["kind"] == "file.unlink") {
        out.push_str(&format!(
            "  {}  (pid {}, {})\n",
            field(e, "path"),
            e["pid"],
            outcome(e)
        ));
    }
    out.push_str("Network:\n");
    for e in events.iter().filter(|e| {
        e["kind"]
            .as_str()
            .is_some_and(|k| k.starts_with("net.") || k.starts_with("dns."))
    }) {
        let addr = e["addr"].as_str().or(e["local_addr"].as_str());
        let port = e["port"].as_u64().or(e["local_port"].as_u64()).unwrap_or(0);
        let end = match (e["unix_path"].as_str(), addr) {
            (Some(path), _) => format!("unix:{path}"),
            (None, Some(addr)) => format!("{addr}:{port}"),
            (None, None) => "?".to_string(),
        };
        out.push_str(&format!(
            "  {} {end}  (pid {}, {})\n",
            field(e, "kind"),
            e["pid"],
            outcome(e)
        ));
    }
    out
}

/// The interpreter behind `python3`, so that version-manager shims (pyenv
/// runs a dozen shell scripts per start) do not crowd the demonstration.
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
