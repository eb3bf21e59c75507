use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use agent_monitor::{
    alerts::{AlertConfig, WebhookConfig},
    api::client::Client,
    capture::Policy,
    evidence::{
        signing::{self, LinkSigner, LinkVerifier},
        store::{StoreOptions, recover},
        verify::verify,
    },
    kernel::LoadOptions,
    run::{RunOptions, run},
    summary,
};
use clap::{Args, Parser, Subcommand};

/// Where the capture key lives unless `--capture-key` says otherwise: with
/// the monitor's state, not with the evidence it protects.
const DEFAULT_CAPTURE_KEY: &str = "/var/lib/agent-monitor/capture.key";

/// `run --fail-on-undeclared`'s status when an action was undeclared: far
/// from the statuses commands and shells usually use.
const UNDECLARED_EXIT: u8 = 86;

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
    /// Declare to the monitor from a shell agent: sessions, prompts, model
    /// outputs, and tool calls that run a command.
    Declare(DeclareArgs),
    /// Create an Ed25519 key pair for signing the chain: FILE (private,
    /// mode 0600) and FILE.pub.
    Keygen {
        /// Where to write the private key; never overwritten.
        file: PathBuf,
    },
}

#[derive(Args)]
struct DeclareArgs {
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
enum Declaration {
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

#[derive(Args)]
struct RunArgs {
    /// Name of the agent in the evidence [default: CMD's file name].
    #[arg(long)]
    agent: Option<String>,
    /// Write one JSON object per event to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// Write the evidence store (Parquet files in a hash chain) to DIR.
    #[arg(long, value_name = "DIR")]
    evidence: Option<PathBuf>,
    /// Sign every link of the evidence chain with this Ed25519 private key
    /// (PKCS#8 PEM, mode 0600).
    #[arg(long, value_name = "FILE", requires = "evidence")]
    signing_key: Option<PathBuf>,
    /// What to keep of argv and other text: full, redact (secrets replaced
    /// by keyed tags), hash (a keyed commitment) or none.
    #[arg(long, value_name = "POLICY", default_value = "redact")]
    capture: Policy,
    /// The key of the capture tags (64 hex digits, mode 0600), created if
    /// missing. Keep it apart from the evidence.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CAPTURE_KEY)]
    capture_key: PathBuf,
    /// After CMD exits, keep recording its descendants for at most this
    /// many seconds (0: stop at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    linger: f64,
    /// Judge tool calls and actions by this policy (TOML, see
    /// docs/policy.md) [default: the embedded policy].
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Exit with status 86 when any action was undeclared or unverifiable,
    /// whatever CMD's own status (for CI pipelines that run agents).
    #[arg(long)]
    fail_on_undeclared: bool,
    /// Append every alert as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    alerts: Option<PathBuf>,
    /// POST every alert as JSON to URL (retried with backoff).
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// A header for the webhook requests, `Name: value` (repeatable).
    #[arg(long, value_name = "HEADER", requires = "webhook")]
    webhook_header: Vec<String>,
    /// Do not print alerts on stderr.
    #[arg(long)]
    quiet_alerts: bool,
    /// Where the run's private declaration socket is created
    /// [default: the temporary directory].
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// Size of the kernel event ring in MiB (a power of two).
    #[arg(long, value_name = "MIB")]
    ring_mib: Option<u32>,
    /// Print what each kernel program cost (runs and average run time)
    /// in the summary.
    #[arg(long)]
    probe_stats: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run_command(*args),
        Command::Verify { dir, pubkey } => verify_command(&dir, pubkey.as_deref()),
        Command::Recover { dir, signing_key } => recover_command(&dir, signing_key.as_deref()),
        Command::Keygen { file } => keygen_command(&file),
        Command::Declare(args) => match declare_command(args) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("agent-monitor: declare: {err:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn run_command(args: RunArgs) -> ExitCode {
    let fail_on_undeclared = args.fail_on_undeclared;
    let options = match run_options(args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("agent-monitor: {err:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("agent-monitor: starting the runtime: {err}");
            return ExitCode::from(125);
        }
    };
    match runtime.block_on(run(options)) {
        Ok(report) => {
            eprintln!("{}", summary::render(&report));
            let correlation = &report.stats.correlation;
            if fail_on_undeclared && correlation.undeclared + correlation.unverifiable > 0 {
                eprintln!(
                    "agent-monitor: failing the run: {} undeclared and {} unverifiable actions (--fail-on-undeclared)",
                    correlation.undeclared, correlation.unverifiable
                );
                return ExitCode::from(UNDECLARED_EXIT);
            }
            ExitCode::from(report.status.shell_status().clamp(0, 255) as u8)
        }
        Err(err) => {
            eprintln!("agent-monitor: {err}");
            ExitCode::from(err.exit_status().clamp(0, 255) as u8)
        }
    }
}

fn run_options(args: RunArgs) -> anyhow::Result<RunOptions> {
    anyhow::ensure!(
        args.linger.is_finite() && args.linger >= 0.0,
        "--linger must be a number of seconds, 0 or more"
    );
    let ring_bytes = args
        .ring_mib
        .map(|mib| {
            anyhow::ensure!(
                mib.is_power_of_two() && mib <= 1024,
                "--ring-mib must be a power of two up to 1024, not {mib}"
            );
            Ok(mib << 20)
        })
        .transpose()?;
    let agent = args.agent.unwrap_or_else(|| {
        std::path::Path::new(&args.command[0])
            .file_name()
            .map_or_else(|| "agent".into(), |n| n.to_string_lossy().into_owned())
    });
    let signer = args
        .signing_key
        .as_deref()
        .map(LinkSigner::load)
        .transpose()?;
    Ok(RunOptions {
        agent,
        events: args.events,
        evidence: args.evidence,
        store: StoreOptions {
            signer,
            ..StoreOptions::default()
        },
        capture: args.capture,
        capture_key: args.capture_key,
        protect: args
            .signing_key
            .iter()
            .chain(&args.policy)
            .chain(&args.alerts)
            .cloned()
            .collect(),
        policy: args.policy,
        alerts: AlertConfig {
            stderr: !args.quiet_alerts,
            jsonl: args.alerts,
            webhook: args
                .webhook
                .map(|url| -> anyhow::Result<WebhookConfig> {
                    let mut webhook = WebhookConfig::new(url);
                    for header in &args.webhook_header {
                        let (name, value) = header.split_once(':').ok_or_else(|| {
                            anyhow::anyhow!(
                                "--webhook-header must be `Name: value`, not {header:?}"
                            )
                        })?;
                        webhook
                            .headers
                            .push((name.trim().to_string(), value.trim().to_string()));
                    }
                    Ok(webhook)
                })
                .transpose()?,
            ..AlertConfig::default()
        },
        socket_parent: args.socket_dir.unwrap_or_else(std::env::temp_dir),
        command: args.command,
        linger: Duration::from_secs_f64(args.linger),
        load: LoadOptions {
            ring_bytes,
            probe_stats: args.probe_stats,
        },
    })
}

/// Exit status 0: intact; 1: problems, each named on stdout; 2: the store
/// could not be read.
fn verify_command(dir: &std::path::Path, pubkey: Option<&std::path::Path>) -> ExitCode {
    let key = match pubkey.map(LinkVerifier::load).transpose() {
        Ok(key) => key,
        Err(err) => {
            eprintln!("agent-monitor: verify: {err}");
            return ExitCode::from(2);
        }
    };
    let report = verify(dir, key.as_ref());
    if let Ok(report) = &report {
        if report.pending_segments > 0 {
            println!(
                "note: {} journal segment(s) not yet published; `agent-monitor recover {}` publishes them",
                report.pending_segments,
                dir.display()
            );
        }
        match &key {
            Some(key) => println!(
                "signatures checked with key {}: {} of {} entries signed",
                key.key_id(),
                report.signed,
                report.files
            ),
            None if report.signed > 0 => println!(
                "note: {} entries are signed; pass --pubkey to check the signatures",
                report.signed
            ),
            None => {}
        }
    }
    match report {
        Ok(report) if report.intact() => {
            println!("intact: {} files, chain head {}", report.files, report.head);
            ExitCode::SUCCESS
        }
        Ok(report) => {
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "NOT intact: {} problems in {} chained files",
                report.problems.len(),
                report.files
            );
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("agent-monitor: verify: {err}");
            ExitCode::from(2)
        }
    }
}

fn recover_command(dir: &std::path::Path, signing_key: Option<&std::path::Path>) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "agent-monitor: recover: {} is not a directory",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let signer = match signing_key.map(LinkSigner::load).transpose() {
        Ok(signer) => signer,
        Err(err) => {
            eprintln!("agent-monitor: recover: {err}");
            return ExitCode::from(2);
        }
    };
    match recover(dir, signer) {
        Ok(recovered) => {
            println!(
                "recovered {} rows from {} journal segment(s) into {} file(s)",
                recovered.published.rows,
                recovered.segments,
                recovered.published.files.len()
            );
            for file in &recovered.published.files {
                println!("  {file}");
            }
            if recovered.published.torn_tails > 0 {
                println!(
                    "{} stream(s) ended inside a batch that was never synced; that batch is not included",
                    recovered.published.torn_tails
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agent-monitor: recover: {err}");
            ExitCode::from(1)
        }
    }
}

fn keygen_command(file: &std::path::Path) -> ExitCode {
    match signing::generate(file) {
        Ok(signer) => {
            println!(
                "private key: {}\npublic key:  {}\nkey id:      {}",
                file.display(),
                signing::public_path(file).display(),
                signer.key_id()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("agent-monitor: keygen: {err}");
            ExitCode::from(1)
        }
    }
}

/// `declare tool`'s status when the policy denied the call.
const DENIED_EXIT: u8 = 77;

fn declare_command(args: DeclareArgs) -> anyhow::Result<ExitCode> {
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
