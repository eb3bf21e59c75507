//! What the proxy does with each client message, whatever the transport:
//! declares its `tools/call`s, relays it or answers in the server's place,
//! and ends each call when the server's response (or a cancellation, or
//! the server's end) comes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use serde_json::{Value, json};

use super::{
    declarer::{Declarer, OpenCall, StartOutcome, StartRequest},
    jsonrpc::{self, Message, RequestId, Scan, ToolCall},
};

const PREFIX: &str = "agent-monitor mcp-proxy";

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
    /// Relay them, unchanged.
    Relay,
    /// Do not relay them. Answer the client with this, when there is
    /// anything to answer (a message without a request id gets nothing).
    Answer(Option<Value>),
}

/// The proxy's decisions and the calls open on the server.
pub struct Gate {
    declarer: Arc<Declarer>,
    options: GateOptions,
    /// Calls relayed and not answered yet, by scope (the HTTP session; one
    /// scope for stdio) and JSON-RPC id.
    open: Mutex<HashMap<(String, RequestId), OpenCall>>,
}

/// A `tools/call` the proxy will not relay.
struct Refusal {
    id: Option<RequestId>,
    answer: Option<Value>,
    /// Declared, so it must be ended.
    declared: Option<OpenCall>,
}

impl Gate {
    pub fn new(declarer: Arc<Declarer>, options: GateOptions) -> Gate {
        Gate {
            declarer,
            options,
            open: Mutex::new(HashMap::new()),
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

    /// Decides about one client line or body (`None`: not JSON). Every
    /// `tools/call` in it is declared, in order, before this returns, with
    /// `pid` as the process to bind. A batch is relayed whole or not at
    /// all: when a call in it is refused, the proxy answers every request
    /// in it.
    pub async fn admit(&self, scope: &str, scan: Option<&Scan>, pid: Option<u32>) -> Admission {
        let Some(scan) = scan else {
            return Admission::Relay;
        };
        let mut relayed: Vec<(RequestId, OpenCall)> = Vec::new();
        let mut refusal = None;
        for message in &scan.messages {
            match message {
                Message::ToolCall(call) => match self.declare(call, pid).await {
                    Ok(Some(open)) => relayed.push((call.id.clone(), open)),
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
        let Some(refusal) = refusal else {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            for (id, call) in relayed {
                if let Some(old) = open.insert((scope.to_string(), id), call) {
                    self.declarer.end(
                        old,
                        "error",
                        json!({"unanswered": "the client reused its request id"}),
                    );
                }
            }
            drop(open);
            for message in &scan.messages {
                if let Message::Cancelled { request_id } = message {
                    self.finish(scope, request_id, "error", json!({"cancelled": true}));
                }
            }
            return Admission::Relay;
        };
        if let Some(call) = refusal.declared.clone() {
            self.declarer.end(call, "error", json!({"denied": true}));
        }
        for (_, call) in relayed {
            self.declarer.end(
                call,
                "error",
                json!({"not_relayed": "another call in its batch was refused"}),
            );
        }
        if scan.batch {
            Admission::Answer(batch_answer(scan, &refusal))
        } else {
            Admission::Answer(refusal.answer)
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
                self.finish(scope, id, status.as_str(), result.clone());
            }
        }
    }

    fn finish(&self, scope: &str, id: &RequestId, status: &str, result: Value) {
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
        for (_, call) in open {
            self.declarer.end(call, "error", json!({"unanswered": why}));
        }
    }

    /// Ends the calls still open in one scope, as `error` with `why`: an
    /// HTTP response that ended without answering them.
    pub fn end_scope(&self, scope: &str, why: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let ids: Vec<(String, RequestId)> =
            open.keys().filter(|(s, _)| s == scope).cloned().collect();
        let calls: Vec<OpenCall> = ids.iter().filter_map(|key| open.remove(key)).collect();
        drop(open);
        for call in calls {
            self.declarer.end(call, "error", json!({"unanswered": why}));
        }
    }

    /// Ends calls of one scope that will not be answered, as `error` with
    /// `why`: the request that carried them never reached the server.
    pub fn abandon(&self, scope: &str, ids: &[RequestId], why: &str) {
        for id in ids {
            self.finish(scope, id, "error", json!({"unanswered": why}));
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
