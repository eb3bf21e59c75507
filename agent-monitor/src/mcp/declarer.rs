//! The declaration side of the proxy: one connection to the monitor, on a
//! thread of its own, so that waiting for the monitor never blocks the
//! relay's runtime. Requests go to it in order; a `tool.start` waits for
//! its reply (the decision, and the kernel slot set on the server before
//! the request is relayed), a `tool.end` does not.

use std::{
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::PREFIX;
use crate::{
    api::client::{Client, ClientError},
    declare::{Envelope, Links, Register, Request, Source, Status, ToolEnd, ToolStart},
};

/// The result a call is ended with when the proxy stopped waiting for its
/// `tool.start` (the client went away, the relay stopped) before it could
/// relay the request.
pub(super) const GAVE_UP: &str = "the proxy stopped handling the request before relaying it";

/// Where and as whom to declare.
#[derive(Clone, Debug, Default)]
pub struct DeclarerOptions {
    /// The declaration socket; `None` for `Client::connect`'s default.
    pub socket: Option<PathBuf>,
    /// `--agent`: register the proxy as this agent when it belongs to none,
    /// else name it in every request.
    pub agent: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeclarerError {
    #[error("cannot reach the monitor: {0}")]
    Unreachable(#[source] ClientError),
    #[error("the monitor refused to register the proxy as agent `{agent}`: {source}")]
    Register {
        agent: String,
        #[source]
        source: ClientError,
    },
    #[error("starting the declaration thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A call the monitor knows of, to end with its `call_id`. `connection`
/// says which connection declared it: one that was lost took its calls
/// with it (the monitor ended them as `disconnected`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenCall {
    pub call_id: String,
    connection: u64,
}

/// What the monitor made of a `tool.start`.
#[derive(Debug)]
pub enum StartOutcome {
    Allowed(OpenCall),
    Denied {
        call: OpenCall,
        /// The policy's reason.
        reason: String,
    },
    /// The monitor answered `ok: false`: nothing was declared.
    Refused(String),
    /// No monitor to ask.
    Unreachable,
}

impl StartOutcome {
    /// The call the monitor now holds open, if it declared one.
    fn into_declared(self) -> Option<OpenCall> {
        match self {
            StartOutcome::Allowed(call) | StartOutcome::Denied { call, .. } => Some(call),
            StartOutcome::Refused(_) | StartOutcome::Unreachable => None,
        }
    }
}

/// A `tool.start` to send: what the proxy read in the `tools/call`.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub tool: String,
    pub args: Map<String, Value>,
    /// The `tools/call`'s JSON-RPC id.
    pub mcp_request_id: Value,
    /// The process the call binds to: the MCP server.
    pub pid: Option<u32>,
}

enum Job {
    Start {
        start: ToolStart,
        reply: oneshot::Sender<StartOutcome>,
    },
    End {
        call: OpenCall,
        end: ToolEnd,
    },
}

/// The handle the relay uses; shared by every task.
pub struct Declarer {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Makes call ids unique in the session beyond this process's life: a
    /// later proxy may get the same pid.
    call_prefix: String,
    calls: AtomicU64,
}

impl Declarer {
    /// Connects to the monitor and, with an agent name, registers the
    /// proxy or notes the name for every request. Call it before starting
    /// the server, so that a registered proxy's server is born tracked.
    pub fn connect(options: DeclarerOptions) -> Result<Declarer, DeclarerError> {
        let mut client =
            Client::connect(options.socket.as_deref()).map_err(DeclarerError::Unreachable)?;
        let mut stamp_agent = None;
        if let Some(agent) = &options.agent {
            let register = wire(Envelope::bare(Request::Register(Register {
                name: agent.clone(),
                ..Register::default()
            })));
            match client.request(&register) {
                Ok(reply) => eprintln!(
                    "{PREFIX}: registered as agent `{agent}` (session {})",
                    reply["session_id"].as_str().unwrap_or("?")
                ),
                // `run` answers `unsupported`, the daemon `not_registered`
                // for a process that is an agent's already: then the name
                // goes in each request, and the monitor refuses a mismatch.
                Err(ClientError::Refused { code, .. })
                    if code == "unsupported" || code == "not_registered" =>
                {
                    stamp_agent = Some(agent.clone());
                }
                Err(source @ ClientError::Refused { .. }) => {
                    return Err(DeclarerError::Register {
                        agent: agent.clone(),
                        source,
                    });
                }
                Err(other) => return Err(DeclarerError::Unreachable(other)),
            }
        }
        let (jobs, queue) = mpsc::channel();
        let mut worker = Worker {
            client: Some(client),
            socket: options.socket,
            agent: stamp_agent,
            connection: 0,
            refused_pid: None,
        };
        let thread = std::thread::Builder::new()
            .name("mcp-declare".into())
            .spawn(move || {
                for job in queue {
                    worker.run(job);
                }
            })
            .map_err(DeclarerError::Thread)?;
        Ok(Declarer::with(Some(jobs), Some(thread)))
    }

    /// A declarer with no monitor: every call is [`StartOutcome::Unreachable`].
    pub fn unmonitored() -> Declarer {
        Declarer::with(None, None)
    }

    fn with(jobs: Option<mpsc::Sender<Job>>, thread: Option<JoinHandle<()>>) -> Declarer {
        let mut tag = [0u8; 4];
        // Without kernel randomness the pid and counter still make ids
        // unique within this process, which is what matters most.
        let _ = crate::random::fill(&mut tag);
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        Declarer {
            jobs: Mutex::new(jobs),
            thread: Mutex::new(thread),
            call_prefix: format!("mcp-{}-{tag}", std::process::id()),
            calls: AtomicU64::new(0),
        }
    }

    pub fn monitored(&self) -> bool {
        self.jobs.lock().is_ok_and(|jobs| jobs.is_some())
    }

    /// Declares a tool call and waits for the monitor's decision. A call
    /// declared for a caller that stopped waiting (its future dropped) is
    /// ended at once, as `error`: nobody will relay it.
    pub async fn start(&self, start: StartRequest) -> StartOutcome {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let start = ToolStart {
            call_id: format!("{}-{n}", self.call_prefix),
            tool: start.tool,
            args: start.args,
            pid: start.pid,
            source: Source::Mcp,
            links: Links {
                mcp_request_id: Some(request_id_text(&start.mcp_request_id)),
                ..Links::default()
            },
            ..ToolStart::default()
        };
        let (reply, outcome) = oneshot::channel();
        if !self.send(Job::Start { start, reply }) {
            return StartOutcome::Unreachable;
        }
        let mut waiting = Waiting {
            declarer: self,
            outcome,
            done: false,
        };
        let decided = (&mut waiting.outcome)
            .await
            .unwrap_or(StartOutcome::Unreachable);
        waiting.done = true;
        decided
    }

    /// Ends a call; the reply is checked on the declaration thread.
    pub fn end(&self, call: OpenCall, status: Status, result: Value) {
        let end = tool_end(&call, status, result);
        self.send(Job::End { call, end });
    }

    fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Waits until everything sent is declared, then closes the
    /// connection. Blocks: call it off the runtime, or after it.
    pub fn finish(&self) {
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// A `tool.start` reply being waited for. Dropped while still waiting, it
/// ends the call if the reply came already; if it had not, the closed
/// channel tells the declaration thread to end it when it comes.
struct Waiting<'a> {
    declarer: &'a Declarer,
    outcome: oneshot::Receiver<StartOutcome>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.outcome.close();
        if let Some(call) = self
            .outcome
            .try_recv()
            .ok()
            .and_then(StartOutcome::into_declared)
        {
            self.declarer
                .end(call, Status::Error, json!({"unanswered": GAVE_UP}));
        }
    }
}

fn tool_end(call: &OpenCall, status: Status, result: Value) -> ToolEnd {
    ToolEnd {
        call_id: call.call_id.clone(),
        status,
        result: Some(result),
        at: None,
    }
}

/// A JSON-RPC id as `mcp_request_id` carries it: a string as it is, a
/// number as its JSON text.
fn request_id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A request in its wire form.
fn wire(envelope: Envelope) -> Value {
    serde_json::to_value(envelope)
        .expect("declarations serialise: their maps have string keys and no other failure")
}

/// The declaration thread's state.
struct Worker {
    /// `None` once the monitor went away; a new `tool.start` connects again.
    client: Option<Client>,
    socket: Option<PathBuf>,
    /// Set in every request, for a proxy that was an agent's already.
    agent: Option<String>,
    /// Counts connections, so that calls of a lost one are not ended on
    /// the next.
    connection: u64,
    /// A server pid the monitor refused to bind calls to (not a process
    /// of the proxy's agent): calls are declared without it from then on.
    refused_pid: Option<u32>,
}

impl Worker {
    fn run(&mut self, job: Job) {
        match job {
            Job::Start { start, reply } => {
                let outcome = self.start(start);
                // The caller stopped waiting: the call will not be relayed.
                if let Err(outcome) = reply.send(outcome)
                    && let Some(call) = outcome.into_declared()
                {
                    let end = tool_end(&call, Status::Error, json!({"unanswered": GAVE_UP}));
                    self.end(call, end);
                }
            }
            Job::End { call, end } => self.end(call, end),
        }
    }

    fn start(&mut self, mut start: ToolStart) -> StartOutcome {
        // Set once this call has connected: a monitor that restarted since
        // the last call gets one fresh connection, not more.
        let mut fresh = false;
        loop {
            if self.client.is_none() {
                match Client::connect(self.socket.as_deref()) {
                    Ok(client) => {
                        self.client = Some(client);
                        self.connection += 1;
                        fresh = true;
                        eprintln!("{PREFIX}: connected to the monitor again");
                    }
                    Err(_) => return StartOutcome::Unreachable,
                }
            }
            if start.pid.is_some() && start.pid == self.refused_pid {
                start.pid = None;
            }
            let Some(reply) = self.exchange(Request::ToolStart(start.clone())) else {
                if fresh {
                    return StartOutcome::Unreachable;
                }
                continue;
            };
            if reply["ok"] == true {
                return self.decided(&start.call_id, &reply);
            }
            let (code, message) = refusal(&reply);
            if code == "not_bound"
                && let Some(pid) = start.pid
            {
                eprintln!(
                    "{PREFIX}: the monitor will not bind calls to the server's process ({code}: {message}); \
                     declaring them without `pid`: they bind the proxy, and what the server does is not in them"
                );
                self.refused_pid = Some(pid);
                continue;
            }
            return StartOutcome::Refused(format!("{code}: {message}"));
        }
    }

    fn decided(&self, call_id: &str, reply: &Value) -> StartOutcome {
        let call = OpenCall {
            call_id: call_id.to_string(),
            connection: self.connection,
        };
        if reply["decision"] == "deny" {
            // The monitor's reasons name the rule that decided.
            let reason = match reply["reason"].as_str() {
                Some(reason) => reason.to_string(),
                None => format!(
                    "denied by {}",
                    reply["rule"].as_str().unwrap_or("the policy")
                ),
            };
            StartOutcome::Denied { call, reason }
        } else {
            StartOutcome::Allowed(call)
        }
    }

    fn end(&mut self, call: OpenCall, end: ToolEnd) {
        if call.connection != self.connection || self.client.is_none() {
            return;
        }
        if let Some(reply) = self.exchange(Request::ToolEnd(end))
            && reply["ok"] != true
        {
            let (code, message) = refusal(&reply);
            eprintln!(
                "{PREFIX}: the monitor refused to end call `{}`: {code}: {message}",
                call.call_id
            );
        }
    }

    /// Sends one request with the agent's name; `None`, said once on
    /// stderr, when the connection is lost.
    fn exchange(&mut self, request: Request) -> Option<Value> {
        let client = self.client.as_mut()?;
        let request = wire(Envelope {
            id: None,
            agent: self.agent.clone(),
            request,
        });
        match client.exchange(&request) {
            Ok(reply) => Some(reply),
            Err(err) => {
                eprintln!("{PREFIX}: lost the monitor ({err}); relaying on");
                self.client = None;
                None
            }
        }
    }
}

fn refusal(reply: &Value) -> (&str, &str) {
    (
        reply["error"]["code"].as_str().unwrap_or("refused"),
        reply["error"]["message"].as_str().unwrap_or_default(),
    )
}
