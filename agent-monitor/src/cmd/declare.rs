//! `agent-monitor declare`: shell agents declare through the socket.

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use agent_monitor::api::client::Client;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct DeclareArgs {
    /// The declaration socket [default: $AGENT_MONITOR_SOCKET].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Declare into this session (joined, or opened, before the request)
    /// [default: the run's, $AGENT_MONITOR_SESSION].
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Declare for this agent (root only).
    #[arg(long)]
    agent: Option<String>,
    #[command(subcommand)]
    what: Declaration,
}

#[derive(Subcommand)]
pub enum Declaration {
    /// Open or join a session, with what it is for.
    Session {
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// The session that delegated this work.
        #[arg(long, value_name = "ID")]
        parent: Option<String>,
    },
    /// A prompt given to the model.
    Prompt { text: String },
    /// What the model answered, and the tool calls it asked for.
    Output {
        text: String,
        /// A call the model asked for (repeatable).
        #[arg(long = "call", value_name = "CALL_ID")]
        calls: Vec<String>,
    },
    /// Declare a tool call, run CMD as it, and end the call with CMD's
    /// status. A denied call is not run: the exit status is then 77.
    Tool {
        /// The tool's name, as the policy knows it (`bash`, `read_file`).
        tool: String,
        /// [default: a fresh UUID]
        #[arg(long, value_name = "ID")]
        call_id: Option<String>,
        /// The call's arguments, a JSON object.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        args: String,
        /// What the call will do, a JSON object of effect kinds to
        /// patterns (docs/protocol.md).
        #[arg(long, value_name = "JSON")]
        effects: Option<String>,
        /// The command that is the tool call.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// End the current session.
    End,
    /// Send one raw request line (JSON) and print the reply.
    Send { json: String },
}

/// `declare tool`'s status when the policy denied the call.
const DENIED_EXIT: u8 = 77;

pub fn declare_command(args: DeclareArgs) -> anyhow::Result<ExitCode> {
    use serde_json::{Value, json};

    let mut client = Client::connect(args.socket.as_deref())?;
    let with_agent = |mut request: Value| {
        if let Some(agent) = &args.agent {
            request["agent"] = json!(agent);
        }
        request
    };
    if let Some(session) = &args.session
        && !matches!(
            args.what,
            Declaration::Session { .. } | Declaration::Send { .. }
        )
    {
        client.request(&with_agent(
            json!({"type": "session.start", "session_id": session}),
        ))?;
    }
    let request = match args.what {
        Declaration::Session { task, user, parent } => {
            let session = args
                .session
                .clone()
                .or_else(|| std::env::var("AGENT_MONITOR_SESSION").ok());
            let reply = client.request(&with_agent(json!({
                "type": "session.start",
                "session_id": session,
                "task": task,
                "user": user,
                "parent_session_id": parent,
            })))?;
            println!("{}", reply["session_id"].as_str().unwrap_or_default());
            return Ok(ExitCode::SUCCESS);
        }
        Declaration::Prompt { text } => json!({"type": "prompt", "text": text}),
        Declaration::Output { text, calls } => {
            json!({"type": "model.output", "text": text, "tool_calls": calls})
        }
        Declaration::End => json!({"type": "session.end"}),
        Declaration::Send { json } => {
            let request: Value = serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("the request is not JSON: {e}"))?;
            let reply = client.exchange(&request)?;
            println!("{reply}");
            return Ok(if reply["ok"] == true {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Declaration::Tool {
            tool,
            call_id,
            args: call_args,
            effects,
            command,
        } => {
            return declare_tool(
                &mut client,
                &with_agent,
                tool,
                call_id,
                &call_args,
                effects,
                command,
            );
        }
    };
    client.request(&with_agent(request))?;
    Ok(ExitCode::SUCCESS)
}

/// Declares a tool call, runs it as a child (which inherits the call's
/// kernel slot), and ends it with the child's status.
fn declare_tool(
    client: &mut Client,
    with_agent: &dyn Fn(serde_json::Value) -> serde_json::Value,
    tool: String,
    call_id: Option<String>,
    call_args: &str,
    effects: Option<String>,
    command: Vec<OsString>,
) -> anyhow::Result<ExitCode> {
    use serde_json::{Value, json};

    let parse = |what: &str, text: &str| -> anyhow::Result<Value> {
        match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => anyhow::bail!("--{what} must be a JSON object"),
            Err(e) => anyhow::bail!("--{what} is not JSON: {e}"),
        }
    };
    let call_id = match call_id {
        Some(id) => id,
        None => agent_monitor::random::uuid_v4()?,
    };
    let mut start = json!({
        "type": "tool.start",
        "call_id": call_id,
        "tool": tool,
        "args": parse("args", call_args)?,
    });
    if let Some(effects) = effects {
        start["effects"] = parse("effects", &effects)?;
    }
    let reply = client.request(&with_agent(start))?;
    let end = |status: &str, result: Value| {
        with_agent(
            json!({"type": "tool.end", "call_id": call_id, "status": status, "result": result}),
        )
    };
    if reply["decision"] == "deny" {
        eprintln!(
            "agent-monitor: tool call `{call_id}` denied by {}: {}",
            reply["rule"].as_str().unwrap_or("the policy"),
            reply["reason"].as_str().unwrap_or_default()
        );
        client.request(&end("error", json!({"denied": true})))?;
        return Ok(ExitCode::from(DENIED_EXIT));
    }
    let status = std::process::Command::new(&command[0])
        .args(&command[1..])
        .status();
    let status = match status {
        Ok(status) => status,
        Err(err) => {
            client.request(&end("error", json!({"error": err.to_string()})))?;
            anyhow::bail!("starting {}: {err}", command[0].to_string_lossy());
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let outcome = if status.success() { "ok" } else { "error" };
    client.request(&end(outcome, json!({"exit_code": code})))?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
