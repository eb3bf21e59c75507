//! Declaring what the payloads say, against a scripted monitor.

use super::*;

/// A monitor that records what it is sent and answers with `answer`.
struct Scripted<F: FnMut(&Value) -> Result<Value, ClientError>> {
    sent: Vec<Value>,
    answer: F,
}

impl<F: FnMut(&Value) -> Result<Value, ClientError>> Monitor for Scripted<F> {
    fn request(&mut self, request: &Request) -> Result<Value, ClientError> {
        // What the socket would get: the request's wire form.
        let line = serde_json::to_value(request).unwrap();
        self.sent.push(line.clone());
        (self.answer)(&line)
    }
}

fn scripted<F: FnMut(&Value) -> Result<Value, ClientError>>(answer: F) -> Scripted<F> {
    Scripted {
        sent: Vec::new(),
        answer,
    }
}

/// What agent-monitor answers when it accepts everything.
fn accepting(request: &Value) -> Result<Value, ClientError> {
    Ok(match request["type"].as_str() {
        Some("tool.start") => {
            json!({"ok": true, "decision": "allow", "reason": "r", "rule": "tools.bash"})
        }
        Some("session.start") => json!({"ok": true, "session_id": request["session_id"]}),
        _ => json!({"ok": true}),
    })
}

fn refused(code: &str) -> ClientError {
    ClientError::Refused {
        code: code.to_string(),
        message: format!("{code}: …"),
    }
}

fn context() -> Context {
    Context {
        pid: Some(4242),
        parent_session: Some("run-session".to_string()),
    }
}

#[test]
fn an_allowed_pre_tool_use_joins_the_session_and_declares_a_detached_bound_call() {
    let mut monitor = scripted(accepting);
    let input = parse(fixture!("pre_tool_use_read.json")).unwrap();
    assert_eq!(
        declare(&input, &context(), &mut monitor).unwrap(),
        Outcome::Recorded
    );
    assert_eq!(
        monitor.sent,
        vec![
            json!({"type": "session.start", "session_id": SESSION, "parent_session_id": "run-session"}),
            json!({
                "type": "tool.start",
                "call_id": "toolu_01Rd7QhVw3Kp9sXbN4mYt2Lc",
                "tool": "Read",
                "args": {"file_path": "/home/ana/project/notes.txt"},
                "source": "hook",
                "tool_use_id": "toolu_01Rd7QhVw3Kp9sXbN4mYt2Lc",
                "detached": true,
                "pid": 4242,
            }),
        ]
    );
}

#[test]
fn a_denied_pre_tool_use_is_ended_at_once_and_reported() {
    let mut monitor = scripted(|request: &Value| {
        if request["type"] == "tool.start" {
            return Ok(
                json!({"ok": true, "decision": "deny", "reason": "writes the forbidden file", "rule": "deny.forbidden"}),
            );
        }
        accepting(request)
    });
    let input = parse(fixture!("pre_tool_use_write_denied.json")).unwrap();
    assert_eq!(
        declare(&input, &Context::default(), &mut monitor).unwrap(),
        Outcome::Denied {
            rule: Some("deny.forbidden".into()),
            reason: "writes the forbidden file".into()
        }
    );
    // No parent session and no pid: neither is sent.
    assert_eq!(
        monitor.sent[0],
        json!({"type": "session.start", "session_id": SESSION})
    );
    assert_eq!(monitor.sent[1].get("pid"), None);
    assert_eq!(
        monitor.sent[2],
        json!({
            "type": "tool.end",
            "call_id": "toolu_01Dn6TsWq4Xm8pRkC3vLb7Ny",
            "status": "error",
            "result": {"denied": true, "reason": "writes the forbidden file"},
        })
    );
    assert_eq!(monitor.sent.len(), 3);
}

#[test]
fn a_repeated_call_without_tool_use_id_takes_the_next_derived_id() {
    let mut starts = 0;
    let mut monitor = scripted(|request: &Value| {
        if request["type"] == "tool.start" {
            starts += 1;
            if starts <= 2 {
                return Err(refused("duplicate_call_id"));
            }
        }
        accepting(request)
    });
    let input = parse(fixture!("pre_tool_use_bash_without_tool_use_id.json")).unwrap();
    let HookInput::PreToolUse(call) = &input else {
        panic!("not a PreToolUse")
    };
    let CallId::Derived(base) = CallId::of(call) else {
        panic!("derived")
    };
    assert_eq!(
        declare(&input, &context(), &mut monitor).unwrap(),
        Outcome::Recorded
    );
    let ids: Vec<&Value> = monitor.sent[1..].iter().map(|r| &r["call_id"]).collect();
    assert_eq!(
        ids,
        [
            &json!(base),
            &json!(format!("{base}-2")),
            &json!(format!("{base}-3"))
        ]
    );
    assert_eq!(monitor.sent[1].get("tool_use_id"), None);

    // Its PostToolUse ends the first of them still open.
    let mut ends = 0;
    let mut monitor = scripted(|request: &Value| {
        if request["type"] == "tool.end" {
            ends += 1;
            if ends == 1 {
                return Err(refused("unknown_call_id"));
            }
        }
        accepting(request)
    });
    let post = parse(fixture!("post_tool_use_bash_without_tool_use_id.json")).unwrap();
    assert_eq!(
        declare(&post, &context(), &mut monitor).unwrap(),
        Outcome::Recorded
    );
    assert_eq!(monitor.sent[2]["call_id"], json!(format!("{base}-2")));
    assert_eq!(monitor.sent[2]["status"], "ok");
}

#[test]
fn a_duplicate_tool_use_id_is_an_error_not_a_new_id() {
    let mut monitor = scripted(|request: &Value| {
        if request["type"] == "tool.start" {
            return Err(refused("duplicate_call_id"));
        }
        accepting(request)
    });
    let input = parse(fixture!("pre_tool_use_bash.json")).unwrap();
    let err = declare(&input, &context(), &mut monitor).unwrap_err();
    assert!(
        matches!(err, HookError::Monitor(ClientError::Refused { ref code, .. }) if code == "duplicate_call_id"),
        "{err}"
    );
    assert_eq!(monitor.sent.len(), 2);
}

#[test]
fn post_tool_use_ends_the_call_with_its_response() {
    let mut monitor = scripted(accepting);
    let input = parse(fixture!("post_tool_use_bash.json")).unwrap();
    assert_eq!(
        declare(&input, &context(), &mut monitor).unwrap(),
        Outcome::Recorded
    );
    assert_eq!(
        monitor.sent[1],
        json!({
            "type": "tool.end",
            "call_id": "toolu_01Bs4HxTn8Wq2eRzV6kPa9Jd",
            "status": "ok",
            "result": {"stdout": "the notes\n", "stderr": "", "interrupted": false, "isImage": false},
        })
    );

    let mut monitor = scripted(accepting);
    let input = parse(fixture!("post_tool_use_failure_bash.json")).unwrap();
    declare(&input, &context(), &mut monitor).unwrap();
    assert_eq!(
        monitor.sent[1],
        json!({
            "type": "tool.end",
            "call_id": "toolu_01Fx2MbQs7Yt5wLcR3nHe8Gv",
            "status": "error",
            "result": {"error": "Command exited with non-zero status code 1", "is_interrupt": false},
        })
    );
}

#[test]
fn prompts_session_ends_and_other_events() {
    let mut monitor = scripted(accepting);
    let input = parse(fixture!("user_prompt_submit.json")).unwrap();
    declare(&input, &context(), &mut monitor).unwrap();
    assert_eq!(
        monitor.sent[1],
        json!({"type": "prompt", "text": "Summarise notes.txt into summary.md"})
    );

    let mut monitor = scripted(accepting);
    let input = parse(fixture!("session_end.json")).unwrap();
    declare(&input, &context(), &mut monitor).unwrap();
    assert_eq!(monitor.sent[0]["session_id"], SESSION);
    assert_eq!(monitor.sent[1], json!({"type": "session.end"}));

    let mut monitor = scripted(accepting);
    let input = parse(fixture!("session_start.json")).unwrap();
    assert_eq!(
        declare(&input, &context(), &mut monitor).unwrap(),
        Outcome::Ignored
    );
    assert!(monitor.sent.is_empty());
}

#[test]
fn a_refusal_or_a_reply_without_decision_is_an_error() {
    let mut monitor = scripted(|_: &Value| Err(refused("not_permitted")));
    let input = parse(fixture!("pre_tool_use_bash.json")).unwrap();
    let err = declare(&input, &context(), &mut monitor).unwrap_err();
    assert_eq!(err.to_string(), "not_permitted: not_permitted: …");
    assert_eq!(monitor.sent.len(), 1, "nothing after the refused join");

    let mut monitor = scripted(|_: &Value| Ok(json!({"ok": true})));
    let err = declare(&input, &context(), &mut monitor).unwrap_err();
    assert!(matches!(err, HookError::NoDecision(_)), "{err}");
}

#[test]
fn a_result_too_long_for_one_line_is_cut_and_args_are_not() {
    let big = "x".repeat(MAX_LINE + 10);
    let small = "y".repeat(1000);
    let end = serde_json::to_value(tool_end(
        "c1",
        Status::Ok,
        json!({"file": {"content": big, "filePath": "/a"}, "other": small}),
    ))
    .unwrap();
    assert!(json_len(&end) <= MAX_LINE, "{}", json_len(&end));
    // The long string keeps what the line has room for, and says how much
    // was cut.
    let content = end["result"]["file"]["content"].as_str().unwrap();
    let kept = content.len() - content.trim_start_matches('x').len();
    assert!(kept > MAX_LINE - 2000, "kept {kept}");
    assert!(
        content.ends_with(&format!(
            "… [{} more bytes cut by agent-monitor hook]",
            big.len() - kept
        )),
        "{}",
        &content[kept..]
    );
    // Only what had to go: the shorter strings are whole.
    assert_eq!(end["result"]["other"], json!(small));
    assert_eq!(end["result"]["file"]["filePath"], "/a");

    // A call's arguments are what the policy decides on: never cut.
    let call = tool_use(
        "Write",
        json!({"file_path": "/a", "content": big}),
        Some("t"),
    );
    let start = serde_json::to_value(tool_start(&call, "t", None)).unwrap();
    assert_eq!(
        start["args"]["content"].as_str().unwrap().len(),
        MAX_LINE + 10
    );
}

#[test]
fn a_response_of_many_short_strings_is_replaced_so_that_the_call_still_ends() {
    // A Glob of 100,000 paths: no string worth cutting, more than a line.
    let paths: Vec<String> = (0..100_000)
        .map(|i| format!("/home/ana/project/src/{i}.rs"))
        .collect();
    let response = json!({"filenames": paths, "numFiles": 100_000});
    let bytes = json_len(&response);
    assert!(bytes > MAX_LINE);
    let mut monitor = scripted(accepting);
    let input = HookInput::PostToolUse {
        call: tool_use("Glob", json!({"pattern": "**/*.rs"}), None),
        response,
    };
    assert_eq!(
        declare(&input, &context(), &mut monitor).unwrap(),
        Outcome::Recorded
    );
    let end = &monitor.sent[1];
    assert_eq!(end["type"], "tool.end");
    assert_eq!(end["status"], "ok");
    assert_eq!(end["result"], json!({"cut": true, "bytes": bytes}));
}

#[test]
fn a_long_prompt_is_cut_to_the_line() {
    let mut monitor = scripted(accepting);
    // Multi-byte characters: the cut keeps whole ones.
    let prompt = format!("{}{}", "a".repeat(255), "é".repeat(MAX_LINE));
    let input = HookInput::UserPromptSubmit {
        session_id: SESSION.into(),
        prompt,
    };
    declare(&input, &context(), &mut monitor).unwrap();
    let sent = &monitor.sent[1];
    assert!(json_len(sent) <= MAX_LINE, "{}", json_len(sent));
    let text = sent["text"].as_str().unwrap();
    assert!(text.starts_with(&"a".repeat(255)), "{text:.300}");
    assert!(text.len() > MAX_LINE - 2000, "{}", text.len());
    assert!(text.ends_with(" more bytes cut by agent-monitor hook]"));
}
