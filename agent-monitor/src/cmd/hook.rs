//! `agent-monitor hook`: coding-agent hooks that declare tool calls and
//! block denied ones (docs/claude-code.md).

use std::{io::Read, path::PathBuf, process::ExitCode};

use agent_monitor::{
    api::client::Client,
    hooks::{
        ancestry,
        claude_code::{self, Context, HookInput, Outcome},
    },
};

#[derive(clap::Subcommand)]
pub enum HookCommand {
    /// Claude Code's command hook: reads the hook's JSON on stdin, declares
    /// the tool call (PreToolUse), its end (PostToolUse,
    /// PostToolUseFailure), the prompt (UserPromptSubmit) or the session's
    /// end (SessionEnd), and blocks a denied call with exit status 2.
    ClaudeCode(ClaudeCodeArgs),
}

#[derive(clap::Args)]
pub struct ClaudeCodeArgs {
    /// The declaration socket [default: $AGENT_MONITOR_SOCKET, else the
    /// daemon's].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Block the tool call (or the prompt) when the monitor cannot be
    /// reached or refuses the declaration. By default the hook fails
    /// open: it says why on stderr and lets Claude Code go on.
    #[arg(long)]
    fail_closed: bool,
    /// The process a tool call binds to [default: the hook's parent, or
    /// the first ancestor above it that is not a shell: Claude Code].
    #[arg(long, value_name = "PID")]
    agent_pid: Option<u32>,
}

/// Claude Code's statuses for a command hook: 0 goes on, 2 blocks the
/// tool call or the prompt (stderr goes to the model, or to the user), and
/// any other is a non-blocking error shown to the user.
const PROCEED: u8 = 0;
const NON_BLOCKING_ERROR: u8 = 1;
const BLOCK: u8 = 2;

pub fn hook_command(command: HookCommand) -> ExitCode {
    match command {
        HookCommand::ClaudeCode(args) => ExitCode::from(claude_code_hook(&args)),
    }
}

fn claude_code_hook(args: &ClaudeCodeArgs) -> u8 {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        eprintln!("agent-monitor hook claude-code: reading stdin: {e}");
        return NON_BLOCKING_ERROR;
    }
    let input = match claude_code::parse(&stdin) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("agent-monitor hook claude-code: {e}");
            return NON_BLOCKING_ERROR;
        }
    };
    if let HookInput::Other { .. } = input {
        return PROCEED;
    }
    let context = Context {
        pid: match input {
            HookInput::PreToolUse(_) => agent_pid(args.agent_pid),
            _ => None,
        },
        parent_session: std::env::var("AGENT_MONITOR_SESSION").ok(),
    };
    let declared = Client::connect(args.socket.as_deref())
        .map_err(claude_code::HookError::from)
        .and_then(|mut client| claude_code::declare(&input, &context, &mut client));
    match declared {
        Ok(Outcome::Recorded | Outcome::Ignored) => PROCEED,
        Ok(Outcome::Denied { rule, reason }) => {
            // Claude Code gives this to the model as the reason the tool
            // did not run.
            eprintln!(
                "agent-monitor denied this tool call ({}): {reason}",
                rule.as_deref().unwrap_or("policy")
            );
            BLOCK
        }
        Err(e) if args.fail_closed => {
            eprintln!(
                "agent-monitor could not record this {} ({e}); blocked by --fail-closed",
                what(&input)
            );
            if input.can_block() {
                BLOCK
            } else {
                NON_BLOCKING_ERROR
            }
        }
        Err(e) => {
            eprintln!(
                "agent-monitor: {} not recorded ({e}); going on without the monitor",
                what(&input)
            );
            PROCEED
        }
    }
}

fn what(input: &HookInput) -> &'static str {
    match input {
        HookInput::PreToolUse(_) => "tool call",
        HookInput::PostToolUse { .. } | HookInput::PostToolUseFailure { .. } => "tool call's end",
        HookInput::UserPromptSubmit { .. } => "prompt",
        HookInput::SessionEnd { .. } => "session's end",
        HookInput::Other { .. } => "event",
    }
}

/// `--agent-pid`, else Claude Code's process found from the hook's
/// parent. When /proc cannot tell, the call is declared unbound (it then
/// binds the hook process, which exits at once), and the hook says so.
fn agent_pid(given: Option<u32>) -> Option<u32> {
    if given.is_some() {
        return given;
    }
    let parent = std::os::unix::process::parent_id();
    match ancestry::agent_process(parent) {
        Ok(pid) => Some(pid),
        Err(e) => {
            eprintln!(
                "agent-monitor hook claude-code: finding Claude Code's process from pid {parent}: {e}; the call is declared without it"
            );
            None
        }
    }
}
