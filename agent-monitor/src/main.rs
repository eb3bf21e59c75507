//! The `agent-monitor` command: its subcommands, each in `cmd/`.

mod cmd;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use cmd::{declare::DeclareArgs, run::RunArgs};

/// Watches AI agents from the kernel and keeps the evidence of what they did.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run CMD as an agent and record its whole process tree.
    Run(Box<RunArgs>),
    /// Monitor the host: find agents by rules, adoption and registration,
    /// and keep one evidence store, until SIGTERM (SIGHUP reloads).
    Daemon(cmd::daemon::DaemonArgs),
    /// The daemon's configuration.
    #[command(subcommand)]
    Config(cmd::daemon::ConfigCommand),
    /// Show a running daemon's agents, sessions, rates, drops and chain.
    Status(cmd::daemon::StatusArgs),
    /// Install the daemon as a systemd service: the binary, the unit, the
    /// config (kept if there is one) and the directories it writes to;
    /// then enable and start it.
    Install(cmd::install::InstallArgs),
    /// Stop and remove the service and the binary. The evidence and the
    /// capture key are always kept.
    Uninstall(cmd::install::UninstallArgs),
    /// Check every file and every link of an evidence store; exits 0 only
    /// when it is intact.
    Verify {
        /// The evidence directory.
        dir: PathBuf,
        /// Also check that every link is signed by this Ed25519 public key
        /// (SPKI PEM, as `agent-monitor keygen` or `openssl pkey -pubout`
        /// writes it).
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
    },
    /// Publish the journal segments a stopped monitor left in an evidence
    /// store (after a crash, a kill or a full disk) into Parquet.
    Recover {
        /// The evidence directory.
        dir: PathBuf,
        /// The store's signing key, if its chain is signed.
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
    /// Judge a stored evidence directory again under another policy, and
    /// show what it would have alerted on.
    Replay(cmd::learn::ReplayArgs),
    /// Run CMD once as an agent and propose the baseline it needs: what
    /// its runtime did, outside tool calls, that the policy did not cover.
    Learn(Box<cmd::learn::LearnArgs>),
    /// Declare to the monitor from a shell agent: sessions, prompts, model
    /// outputs, and tool calls that run a command.
    Declare(DeclareArgs),
    /// Stand in for an MCP server's command (or, with --listen, its HTTP
    /// endpoint): relay its JSON-RPC byte for byte, and declare every
    /// `tools/call` as a tool call bound to the server's process tree.
    McpProxy(cmd::mcp_proxy::McpProxyArgs),
    /// Coding-agent hooks that declare tool calls (and block denied ones).
    #[command(subcommand)]
    Hook(cmd::hook::HookCommand),
    /// Create an Ed25519 key pair for signing the chain: FILE (private,
    /// mode 0600) and FILE.pub.
    Keygen {
        /// Where to write the private key; never overwritten.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => cmd::run::run_command(*args),
        Command::Daemon(args) => cmd::daemon::daemon_command(args),
        Command::Config(command) => cmd::daemon::config_command(command),
        Command::Status(args) => cmd::daemon::status_command(args),
        Command::Install(args) => cmd::install::install_command(args),
        Command::Uninstall(args) => cmd::install::uninstall_command(args),
        Command::Verify { dir, pubkey } => cmd::store::verify_command(&dir, pubkey.as_deref()),
        Command::Recover { dir, signing_key } => {
            cmd::store::recover_command(&dir, signing_key.as_deref())
        }
        Command::McpProxy(args) => cmd::mcp_proxy::mcp_proxy_command(args),
        Command::Hook(command) => cmd::hook::hook_command(command),
        Command::Keygen { file } => cmd::store::keygen_command(&file),
        Command::Replay(args) => cmd::learn::replay_command(args),
        Command::Learn(args) => cmd::learn::learn_command(*args),
        Command::Declare(args) => match cmd::declare::declare_command(args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("agent-monitor: declare: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}
