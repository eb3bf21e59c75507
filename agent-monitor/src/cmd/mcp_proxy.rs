//! `agent-monitor mcp-proxy`: stands in for an MCP server (its command, or
//! its HTTP endpoint) and declares every `tools/call` that goes through.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use agent_monitor::mcp::{
    McpError, PREFIX,
    declarer::{Declarer, DeclarerError, DeclarerOptions},
    gate::{Gate, GateOptions},
    http::{self, HttpOptions, upstream::Upstream},
    stdio,
};

#[derive(clap::Args)]
pub struct McpProxyArgs {
    /// Register the proxy, and so the server it starts, as this agent when
    /// it belongs to none (a daemon is running); else name this agent in
    /// every declaration.
    #[arg(long)]
    agent: Option<String>,
    /// The declaration socket [default: $AGENT_MONITOR_SOCKET, else the
    /// daemon's].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Declare every call, but relay the ones the policy denies too, and
    /// client messages the proxy cannot read.
    #[arg(long)]
    observe_only: bool,
    /// Relay without declaring when no monitor answers (at start, or after
    /// it went away), instead of failing.
    #[arg(long)]
    allow_unmonitored: bool,
    /// HTTP mode: listen on ADDR (host:port) for MCP streamable-HTTP
    /// clients.
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    listen: Option<SocketAddr>,
    /// HTTP mode: the server's endpoint, an http:// URL; request paths are
    /// appended to its path.
    #[arg(long, value_name = "URL", requires = "listen")]
    upstream: Option<String>,
    /// HTTP mode: bind calls to this process [default: the owner of the
    /// upstream's listening socket, when it is on loopback].
    #[arg(long, value_name = "PID", requires = "listen")]
    server_pid: Option<u32>,
    /// HTTP mode: allow --listen on an address other than loopback.
    #[arg(long, requires = "listen")]
    allow_remote: bool,
    /// Stdio mode: the MCP server's command.
    #[arg(
        last = true,
        value_name = "CMD",
        required_unless_present = "listen",
        conflicts_with = "listen"
    )]
    command: Vec<OsString>,
}

/// The status for the proxy's own failures (bad flags, no monitor).
const PROXY_FAILED: u8 = 2;

pub fn mcp_proxy_command(args: McpProxyArgs) -> ExitCode {
    match proxy(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{PREFIX}: {err}");
            ExitCode::from(PROXY_FAILED)
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ProxyError {
    #[error(
        "{0}; the proxy does not relay unmonitored (pass --allow-unmonitored to relay without declaring)"
    )]
    NoMonitor(#[source] DeclarerError),
    #[error(transparent)]
    Declarer(DeclarerError),
    #[error(transparent)]
    Mcp(#[from] McpError),
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

fn proxy(args: McpProxyArgs) -> Result<ExitCode, ProxyError> {
    let http = match (args.listen, &args.upstream) {
        (Some(listen), Some(upstream)) => {
            let options = HttpOptions {
                listen,
                upstream: Upstream::parse(upstream).map_err(McpError::from)?,
                server_pid: args.server_pid,
                allow_remote: args.allow_remote,
            };
            http::check(&options).map_err(McpError::from)?;
            Some(options)
        }
        _ => None,
    };
    // Connected (and registered) before the server starts, so that a
    // server started by a registered proxy is born tracked.
    let declarer = match Declarer::connect(DeclarerOptions {
        socket: args.socket,
        agent: args.agent,
    }) {
        Ok(declarer) => declarer,
        Err(err @ DeclarerError::Unreachable(_)) if args.allow_unmonitored => {
            eprintln!("{PREFIX}: {err}; relaying without declaring (--allow-unmonitored)");
            Declarer::unmonitored()
        }
        Err(err @ DeclarerError::Unreachable(_)) => return Err(ProxyError::NoMonitor(err)),
        Err(err) => return Err(ProxyError::Declarer(err)),
    };
    let declarer = Arc::new(declarer);
    let gate = Arc::new(Gate::new(
        declarer.clone(),
        GateOptions {
            observe_only: args.observe_only,
            allow_unmonitored: args.allow_unmonitored,
        },
    ));
    let runtime = crate::cmd::runtime().map_err(ProxyError::Runtime)?;
    let outcome = match http {
        Some(options) => runtime
            .block_on(http::serve(gate, options))
            .map(|()| ExitCode::SUCCESS)
            .map_err(McpError::from),
        None => runtime
            .block_on(stdio::relay(gate, &args.command))
            .map(exit_code),
    };
    // Reading our stdin is a blocking read on the runtime's thread pool
    // that only the client's closing would end: do not wait for it.
    runtime.shutdown_background();
    // Every declaration is made before the proxy exits: the last calls'
    // ends are the evidence of how they went.
    declarer.finish();
    Ok(outcome?)
}

/// The server's status as ours: its code, or 128 + the signal that ended
/// it, as shells report it.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    ExitCode::from(code.clamp(0, 255) as u8)
}
