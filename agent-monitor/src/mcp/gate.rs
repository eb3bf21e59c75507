//! What the proxy does with each client message, whatever the transport:
//! declares its `tools/call`s, relays it or answers in the server's place,
//! and ends each call when the server's response (or a cancellation, or
//! the server's end) comes.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};

use super::{
    PREFIX,
    declarer::{Declarer, GAVE_UP, OpenCall, StartOutcome, StartRequest},
    jsonrpc::{self, Message, NotJson, RequestId, Scan, ToolCall},
};
use crate::declare::Status;

/// How strict the proxy is.
#[derive(Clone, Copy, Debug, Default)]
pub struct GateOptions {
    /// Declare, but relay every call, denied or not.
    pub observe_only: bool,
    /// Relay calls undeclared while no monitor answers, instead of
    /// refusing them.
    pub allow_unmonitored: bool,
}

/// What to do with the bytes of a client message.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Relay them, unchanged. The calls declared in them are open until
    /// the server answers them; a transport that learns they will never
    /// be answered ends them ([`Gate::abandon`]).
    Relay(Vec<Relayed>),
    /// Do not relay them. Answer the client with this, when there is
    /// anything to answer (a message without a request id gets nothing).
    Answer(Option<Value>),
    /// They are not JSON: do not relay them, answer this parse error.
    NotJson(Value),
}

/// A declared call the proxy relayed: the client's id for it and the
/// monitor's.
#[derive(Clone, Debug, PartialEq)]
pub struct Relayed {
    pub id: RequestId,
    pub call_id: String,
}

/// The proxy's decisions and the calls open on the server.
pub struct Gate {
    declarer: Arc<Declarer>,
    options: GateOptions,
    /// Calls relayed and not answered yet, by scope (the HTTP session; one
    /// scope for stdio) and JSON-RPC id.
    open: Mutex<HashMap<(String, RequestId), OpenCall>>,
    /// A client message that is not JSON was reported on stderr.
    not_json_reported: AtomicBool,
}

/// A `tools/call` the proxy will not relay.
struct Refusal {
    id: Option<RequestId>,
    answer: Option<Value>,
    /// Declared, so it must be ended.
    declared: Option<OpenCall>,
}

/// Calls declared for a message not yet relayed. If the message is given
/// up on before it is (the admitting future dropped: the client went
/// away, the relay stopped), they are ended, since nothing will answer
/// them.
struct Declared<'a> {
    declarer: &'a Declarer,
    calls: Vec<(RequestId, OpenCall)>,
}

impl Drop for Declared<'_> {
    fn drop(&mut self) {
        for (_, call) in self.calls.drain(..) {
            self.declarer
                .end(call, Status::Error, json!({"unanswered": GAVE_UP}));
        }
    }
}

impl Gate {
    pub fn new(declarer: Arc<Declarer>, options: GateOptions) -> Gate {
        Gate {
            declarer,
            options,
            open: Mutex::new(HashMap::new()),
            not_json_reported: AtomicBool::new(false),
        }
    }

    pub fn declarer(&self) -> &Declarer {
        &self.declarer
    }

    /// Whether the proxy holds back what it cannot check: it declares, and
    /// does not merely observe.
    pub fn strict(&self) -> bool {
        !self.options.observe_only && self.declarer.monitored()
    }

    /// Decides about one client line or body, as [`jsonrpc::scan`] read
    /// it. Every `tools/call` in it is declared, in order, before this
    /// returns, with `pid` as the process to bind. A batch is relayed
    /// whole or not at all: when a call in it is refused, the proxy
    /// answers every request in it. What is not JSON is refused while the
    /// proxy is [`strict`](Gate::strict): the server's parser may find a
    /// `tools/call` in it that the proxy could not declare.
    pub async fn admit(
        &self,
        scope: &str,
        scanned: &Result<Option<Scan>, NotJson>,
        pid: Option<u32>,
    ) -> Admission {
        let scan = match scanned {
            Ok(Some(scan)) => scan,
            Ok(None) => return Admission::Relay(Vec::new()),
            Err(not_json) => return self.not_json(not_json),
        };
        let mut declared = Declared {
            declarer: &self.declarer,
            calls: Vec::new(),
        };
        let mut refusal = None;
        for message in &scan.messages {
            match message {
                Message::ToolCall(call) => match self.declare(call, pid).await {
                    Ok(Some(open)) => declared.calls.push((call.id.clone(), open)),
                    Ok(None) => {}
                    Err(refused) => {
                        refusal = Some(refused);
                        break;
                    }
                },
                Message::BadToolCall { id, problem } => {
                    if self.options.observe_only {
                        eprintln!("{PREFIX}: relaying an invalid tools/call undeclared: {problem}");
                        continue;
                    }
                    let message = format!("agent-monitor: invalid tools/call: {problem}");
                    if id.is_none() {
                        eprintln!(
                            "{PREFIX}: dropped a tools/call that cannot be answered: {problem}"
                        );
                    }
                    refusal = Some(Refusal {
                        answer: id.as_ref().map(|id| {
                            jsonrpc::error_response(id, jsonrpc::INVALID_PARAMS, &message)
                        }),
                        id: id.clone(),
                        declared: None,
                    });
                    break;
                }
                _ => {}
            }
        }
        // Past the last await: what happens to them is decided here.
        let calls = std::mem::take(&mut declared.calls);
        let Some(refusal) = refusal else {
            let mut relayed = Vec::with_capacity(calls.len());
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            for (id, call) in calls {
                relayed.push(Relayed {
                    id: id.clone(),
                    call_id: call.call_id.clone(),
                });
                if let Some(old) = open.insert((scope.to_string(), id), call) {
                    self.declarer.end(
                        old,
                        Status::Error,
                        json!({"unanswered": "the client reused its request id"}),
                    );
                }
            }
            drop(open);
            for message in &scan.messages {
                if let Message::Cancelled { request_id } = message {
                    self.finish(scope, request_id, Status::Error, json!({"cancelled": true}));
                }
            }
            return Admission::Relay(relayed);
        };
        if let Some(call) = refusal.declared.clone() {
            self.declarer
                .end(call, Status::Error, json!({"denied": true}));
        }
        for (_, call) in calls {
            self.declarer.end(
                call,
                Status::Error,
                json!({"not_relayed": "another call in its batch was refused"}),
            );
        }
        if scan.batch {
            Admission::Answer(batch_answer(scan, &refusal))
        } else {
            Admission::Answer(refusal.answer)
        }
    }

    /// A client message that is not JSON: refused while strict, relayed
    /// unread otherwise; said once on stderr either way.
    fn not_json(&self, not_json: &NotJson) -> Admission {
        let strict = self.strict();
        if !self.not_json_reported.swap(true, Ordering::Relaxed) {
            if strict {
                eprintln!(
                    "{PREFIX}: refused a client message that is not JSON ({}): it was answered with a \
                     JSON-RPC parse error; later ones are refused without a word",
                    not_json.0
                );
            } else {
                eprintln!(
                    "{PREFIX}: relaying a client message that is not JSON ({}) unread: a tools/call \
                     the server finds in it is not declared; later ones are relayed without a word",
                    not_json.0
                );
            }
        }
        if strict {
            Admission::NotJson(jsonrpc::parse_error(not_json))
        } else {
            Admission::Relay(Vec::new())
        }
    }

    /// Declares one call: `Ok(Some)` to relay and end later, `Ok(None)` to
    /// relay undeclared, `Err` to refuse.
    async fn declare(
        &self,
        call: &ToolCall,
        pid: Option<u32>,
    ) -> Result<Option<OpenCall>, Refusal> {
        let outcome = self
            .declarer
            .start(StartRequest {
                tool: call.name.clone(),
                args: call.arguments.clone(),
                mcp_request_id: call.id.value().clone(),
                pid,
            })
            .await;
        let refuse = |reason: &str, declared: Option<OpenCall>| Refusal {
            id: Some(call.id.clone()),
            answer: Some(jsonrpc::denial(&call.id, reason)),
            declared,
        };
        match outcome {
            StartOutcome::Allowed(open) => Ok(Some(open)),
            StartOutcome::Denied { call: open, reason } if self.options.observe_only => {
                eprintln!(
                    "{PREFIX}: relaying tools/call `{}` (id {}) although the policy denied it: {reason}",
                    call.name, call.id
                );
                Ok(Some(open))
            }
            StartOutcome::Denied { call: open, reason } => Err(refuse(&reason, Some(open))),
            StartOutcome::Refused(why) if self.options.observe_only => {
                eprintln!(
                    "{PREFIX}: relaying tools/call `{}` (id {}) undeclared: the monitor refused it ({why})",
                    call.name, call.id
                );
                Ok(None)
            }
            StartOutcome::Refused(why) => {
                eprintln!(
                    "{PREFIX}: refused tools/call `{}` (id {}): the monitor refused to declare it ({why})",
                    call.name, call.id
                );
                Err(refuse(
                    &format!("the monitor refused to declare it ({why})"),
                    None,
                ))
            }
            StartOutcome::Unreachable
                if self.options.allow_unmonitored || self.options.observe_only =>
            {
                Ok(None)
            }
            StartOutcome::Unreachable => Err(refuse(
                "the monitor cannot be reached, and the proxy fails closed \
                 (run it with --allow-unmonitored to relay calls undeclared)",
                None,
            )),
        }
    }

    /// Ends the calls that server messages answer.
    pub fn observe(&self, scope: &str, scan: &Scan) {
        for message in &scan.messages {
            if let Message::Response { id, status, result } = message {
                self.finish(scope, id, *status, result.clone());
            }
        }
    }

    fn finish(&self, scope: &str, id: &RequestId, status: Status, result: Value) {
        let call = self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(scope.to_string(), id.clone()));
        if let Some(call) = call {
            self.declarer.end(call, status, result);
        }
    }

    /// Ends every call still open, as `error` with `why`: the server went
    /// away, or the proxy is stopping.
    pub fn end_all(&self, why: &str) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for call in by_call_id(open.into_values()) {
            self.declarer
                .end(call, Status::Error, json!({"unanswered": why}));
        }
    }

    /// Ends the calls still open in one scope, as `error` with `why`: an
    /// HTTP response that ended without answering them.
    pub fn end_scope(&self, scope: &str, why: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<(String, RequestId)> =
            open.keys().filter(|(s, _)| s == scope).cloned().collect();
        let calls = by_call_id(ids.iter().filter_map(|key| open.remove(key)));
        drop(open);
        for call in calls {
            self.declarer
                .end(call, Status::Error, json!({"unanswered": why}));
        }
    }

    /// Ends relayed calls of one scope that will not be answered, as
    /// `error` with `result`: the request that carried them never reached
    /// the server, or the response that was to answer them broke off.
    /// Each is ended only if it is the same call still open under its id.
    pub fn abandon(&self, scope: &str, calls: &[Relayed], result: &Value) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let ended: Vec<OpenCall> = calls
            .iter()
            .filter_map(|relayed| {
                let key = (scope.to_string(), relayed.id.clone());
                match open.get(&key) {
                    Some(call) if call.call_id == relayed.call_id => open.remove(&key),
                    _ => None,
                }
            })
            .collect();
        drop(open);
        for call in ended {
            self.declarer.end(call, Status::Error, result.clone());
        }
    }

    /// How many calls are open: for tests and the end-of-run note.
    pub fn open_calls(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The proxy's answer to a batch it does not relay: the refused call's
/// answer, and an error for every other request in it; `None` when the
/// batch has no request to answer.
fn batch_answer(scan: &Scan, refusal: &Refusal) -> Option<Value> {
    let not_relayed = "agent-monitor did not relay this batch: a tools/call in it was refused";
    let answers: Vec<Value> = scan
        .messages
        .iter()
        .filter_map(|message| match message {
            Message::ToolCall(ToolCall { id, .. }) => Some(id),
            Message::BadToolCall { id, .. } | Message::Other { request_id: id } => id.as_ref(),
            _ => None,
        })
        .map(|id| match (&refusal.answer, &refusal.id) {
            (Some(answer), Some(refused)) if refused == id => answer.clone(),
            _ => jsonrpc::error_response(id, jsonrpc::NOT_RELAYED, not_relayed),
        })
        .collect();
    (!answers.is_empty()).then_some(Value::Array(answers))
}

/// Calls in the order they were declared rather than a map's, so that the
/// calls one event ends are ended in the same order every time. One
/// proxy's call ids differ only in a counter at their end
/// (`mcp-PID-TAG-N`), so the shorter id is the earlier one.
fn by_call_id(calls: impl Iterator<Item = OpenCall>) -> Vec<OpenCall> {
    let mut calls: Vec<OpenCall> = calls.collect();
    calls.sort_by(|a, b| (a.call_id.len(), &a.call_id).cmp(&(b.call_id.len(), &b.call_id)));
    calls
}
