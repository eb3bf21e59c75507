//! Prometheus metrics over HTTP on a loopback address (opt-in:
//! `[metrics] listen`). The figures are the status snapshot the
//! processing stage publishes about once a second.

use std::{fmt::Write as _, io, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};

use crate::{kernel::syscall_hook::HookState, pipeline::StatusSnapshot};

/// Longest request head read; a metrics scrape is a few hundred bytes.
const MAX_REQUEST: usize = 8 << 10;
/// A client that sends nothing for this long is dropped.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `addr` and returns the server, to be spawned; it stops when
/// `stop` turns true.
pub async fn serve(
    addr: SocketAddr,
    status: watch::Receiver<StatusSnapshot>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr} is not a loopback address"),
        ));
    }
    let listener = TcpListener::bind(addr).await?;
    Ok(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|s| *s) => return,
            };
            let Ok((stream, _)) = accepted else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let snapshot = status.borrow().clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(READ_TIMEOUT, answer(stream, &snapshot)).await;
            });
        }
    })
}

async fn answer(mut stream: TcpStream, snapshot: &StatusSnapshot) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = if method == "GET" && target == "/metrics" {
        ("200 OK", "text/plain; version=0.0.4", render(snapshot))
    } else {
        (
            "404 Not Found",
            "text/plain",
            "only GET /metrics is served\n".to_string(),
        )
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// The snapshot in the Prometheus text format.
pub fn render(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP agent_monitor_{name} {help}");
        let _ = writeln!(out, "# TYPE agent_monitor_{name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "agent_monitor_{name}{labels} {value}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
        &one(s.uptime_seconds as f64),
    );
    metric(
        "agents",
        "gauge",
        "Agents being monitored now.",
        &one(s.agents.len() as f64),
    );
    metric(
        "processes",
        "gauge",
        "Tracked processes alive now.",
        &one(s.processes_live as f64),
    );
    if let Some(probes) = &s.syscall_probes {
        metric(
            "syscall_probes_attached",
            "gauge",
            "1 while the syscall probes are attached: only while a process is tracked or a rule could track one.",
            &one(f64::from(u8::from(probes.state == HookState::Attached))),
        );
        metric(
            "exec_gate_files",
            "gauge",
            "Files whose execs the exec gate holds until the syscall probes are attached.",
            &one(probes.gated as f64),
        );
    }
    metric(
        "events_total",
        "counter",
        "Events recorded.",
        &one(s.events as f64),
    );
    metric(
        "events_per_second",
        "gauge",
        "Events per second over the last 10 s.",
        &one(s.events_per_second),
    );
    metric(
        "events_lost_total",
        "counter",
        "Events the kernel could not deliver.",
        &one(s.events_lost as f64),
    );
    metric(
        "untracked_children_total",
        "counter",
        "Children left untracked because the kernel map was full.",
        &one(s.untracked_children as f64),
    );
    let verdicts: Vec<(String, f64)> = s
        .verdicts
        .iter()
        .map(|(v, n)| (format!("{{verdict=\"{v}\"}}"), *n as f64))
        .collect();
    metric(
        "verdicts_total",
        "counter",
        "Events judged, by verdict.",
        &verdicts,
    );
    let alerts: Vec<(String, f64)> = s
        .alerts
        .iter()
        .map(|(k, n)| (format!("{{kind=\"{}\"}}", escape(k)), *n as f64))
        .collect();
    metric(
        "alerts_total",
        "counter",
        "Alerts recorded, by kind.",
        &alerts,
    );
    metric(
        "alerts_suppressed_total",
        "counter",
        "Alerts held back as repeats or over the rate limit.",
        &one(s.alerts_suppressed as f64),
    );
    let d = &s.discovery;
    let found: Vec<(String, f64)> = [
        ("rule", d.by_rule),
        ("adopted", d.adopted),
        ("register", d.registered),
        ("delegated", d.delegated),
    ]
    .iter()
    .map(|(how, n)| (format!("{{source=\"{how}\"}}"), *n as f64))
    .collect();
    metric(
        "agents_discovered_total",
        "counter",
        "Agents found, by how.",
        &found,
    );
    metric(
        "pending_dismissed_total",
        "counter",
        "Processes a rule key caught at exec that the whole rule refused.",
        &one(d.dismissed as f64),
    );
    metric(
        "sink_errors_total",
        "counter",
        "Failed evidence writes.",
        &one(s.sink_errors as f64),
    );
    if let Some(evidence) = &s.evidence {
        metric(
            "evidence_files",
            "gauge",
            "Files in the evidence chain.",
            &one(evidence.files as f64),
        );
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let snapshot = StatusSnapshot {
            events: 42,
            alerts: BTreeMap::from([("undeclared".to_string(), 3)]),
            syscall_probes: Some(crate::kernel::syscall_hook::HookStatus {
                state: HookState::Detached,
                attaches: 2,
                detaches: 2,
                gated: 1,
            }),
            ..StatusSnapshot::default()
        };
        let text = render(&snapshot);
        assert!(text.contains("agent_monitor_syscall_probes_attached 0\n"));
        assert!(text.contains("agent_monitor_exec_gate_files 1\n"));
        assert!(text.contains(
            "# TYPE agent_monitor_events_total counter\nagent_monitor_events_total 42\n"
        ));
        assert!(text.contains("agent_monitor_alerts_total{kind=\"undeclared\"} 3\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("agent_monitor_"), "{line}");
            value.parse::<f64>().unwrap();
        }
    }

    #[tokio::test]
    async fn serves_metrics_on_loopback_and_nothing_else() {
        let (_status_tx, status_rx) = watch::channel(StatusSnapshot::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let err = serve(
            "0.0.0.0:0".parse().unwrap(),
            status_rx.clone(),
            stop_rx.clone(),
        )
        .await;
        assert!(err.is_err());
        // Bind to a free port first, to learn one.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = tokio::spawn(serve(addr, status_rx, stop_rx).await.unwrap());
        let fetch = |path: &'static str| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut reply = String::new();
            stream.read_to_string(&mut reply).await.unwrap();
            reply
        };
        let ok = fetch("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK"), "{ok}");
        assert!(ok.contains("agent_monitor_events_total 0"));
        assert!(fetch("/").await.starts_with("HTTP/1.1 404"));
        stop_tx.send(true).unwrap();
        server.await.unwrap();
    }
}
