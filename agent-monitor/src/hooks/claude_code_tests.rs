use serde_json::{Value, json};

use super::{
    CallId, Context, HookError, HookInput, MAX_SAME_DERIVED, Outcome, PayloadError, ToolUse,
    declare, parse, post_status, tool_end, tool_start,
};
use crate::{
    api::client::ClientError,
    declare::{MAX_LINE, Request, Status},
    hooks::{Monitor, fit::json_len},
};

const SESSION: &str = "2f1c6a0e-7b3d-4c59-9a8e-5d4b3c2a1f0e";

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/claude-code/",
            $name
        ))
        .as_slice()
    };
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn tool_use(tool: &str, input: Value, id: Option<&str>) -> ToolUse {
    ToolUse {
        session_id: SESSION.to_string(),
        tool_name: tool.to_string(),
        tool_input: object(input),
        tool_use_id: id.map(str::to_string),
    }
}

#[test]
fn every_fixture_parses_into_its_event() {
    let events: Vec<(&str, &[u8])> = vec![
        ("PreToolUse", fixture!("pre_tool_use_bash.json")),
        ("PreToolUse", fixture!("pre_tool_use_read.json")),
        ("PreToolUse", fixture!("pre_tool_use_write.json")),
        ("PreToolUse", fixture!("pre_tool_use_write_denied.json")),
        ("PreToolUse", fixture!("pre_tool_use_mcp.json")),
        (
            "PreToolUse",
            fixture!("pre_tool_use_bash_without_tool_use_id.json"),
        ),
        ("PostToolUse", fixture!("post_tool_use_bash.json")),
        ("PostToolUse", fixture!("post_tool_use_read.json")),
        ("PostToolUse", fixture!("post_tool_use_write.json")),
        ("PostToolUse", fixture!("post_tool_use_mcp.json")),
        (
            "PostToolUse",
            fixture!("post_tool_use_bash_without_tool_use_id.json"),
        ),
        (
            "PostToolUseFailure",
            fixture!("post_tool_use_failure_bash.json"),
        ),
        ("UserPromptSubmit", fixture!("user_prompt_submit.json")),
        ("SessionEnd", fixture!("session_end.json")),
        ("SessionStart", fixture!("session_start.json")),
    ];
    for (event, bytes) in events {
        let input = parse(bytes).unwrap_or_else(|e| panic!("{event}: {e}"));
        assert_eq!(input.event(), event);
    }
}

#[test]
fn a_pre_tool_use_payload_gives_the_call() {
    let input = parse(fixture!("pre_tool_use_bash.json")).unwrap();
    assert_eq!(
        input,
        HookInput::PreToolUse(tool_use(
            "Bash",
            json!({"command": "cat /home/ana/project/notes.txt", "description": "Show the notes"}),
            Some("toolu_01Bs4HxTn8Wq2eRzV6kPa9Jd"),
        ))
    );
    assert!(input.can_block());
    let HookInput::PreToolUse(call) = parse(fixture!("pre_tool_use_mcp.json")).unwrap() else {
        panic!("not a PreToolUse");
    };
    assert_eq!(call.tool_name, "mcp__fs__read_file");
    assert_eq!(
        Value::Object(call.tool_input),
        json!({"path": "/home/ana/project/notes.txt"})
    );
    let HookInput::PreToolUse(old) =
        parse(fixture!("pre_tool_use_bash_without_tool_use_id.json")).unwrap()
    else {
        panic!("not a PreToolUse");
    };
    assert_eq!(old.tool_use_id, None);
}

#[test]
fn post_tool_use_payloads_give_the_outcome() {
    let HookInput::PostToolUse { call, response } =
        parse(fixture!("post_tool_use_write.json")).unwrap()
    else {
        panic!("not a PostToolUse");
    };
    assert_eq!(
        call.tool_use_id.as_deref(),
        Some("toolu_01Wr9KcLp3Zx7vTnB2qMf5Hs")
    );
    assert_eq!(
        response,
        json!({"filePath": "/home/ana/project/summary.md", "success": true})
    );
    let failure = parse(fixture!("post_tool_use_failure_bash.json")).unwrap();
    let HookInput::PostToolUseFailure {
        error,
        is_interrupt,
        ..
    } = &failure
    else {
        panic!("not a PostToolUseFailure");
    };
    assert_eq!(
        error.as_deref(),
        Some("Command exited with non-zero status code 1")
    );
    assert!(!is_interrupt);
    assert!(!failure.can_block());
}

#[test]
fn prompts_and_session_ends_give_their_session() {
    assert_eq!(
        parse(fixture!("user_prompt_submit.json")).unwrap(),
        HookInput::UserPromptSubmit {
            session_id: SESSION.to_string(),
            prompt: "Summarise notes.txt into summary.md".to_string(),
        }
    );
    assert_eq!(
        parse(fixture!("session_end.json")).unwrap(),
        HookInput::SessionEnd {
            session_id: SESSION.to_string(),
            reason: Some("prompt_input_exit".to_string()),
        }
    );
    assert_eq!(
        parse(fixture!("session_start.json")).unwrap(),
        HookInput::Other {
            event: "SessionStart".to_string()
        }
    );
}

#[test]
fn bad_input_gets_an_error_naming_what_is_wrong() {
    let err = |text: &str| parse(text.as_bytes()).unwrap_err().to_string();
    assert!(
        err("{\"hook_event_name\":").starts_with("the hook input is not JSON: "),
        "{}",
        err("{")
    );
    assert_eq!(err("[1]"), "the hook input is not a JSON object");
    assert_eq!(err("{}"), "the hook input has no `hook_event_name`");
    assert_eq!(
        err(r#"{"hook_event_name":"PreToolUse","session_id":"s","tool_name":"Bash"}"#),
        "the hook input has no `tool_input`"
    );
    assert_eq!(
        err(
            r#"{"hook_event_name":"PreToolUse","session_id":"s","tool_name":"Bash","tool_input":"ls"}"#
        ),
        "`tool_input` in the hook input is not an object"
    );
    assert_eq!(
        err(
            r#"{"hook_event_name":"PreToolUse","session_id":"","tool_name":"Bash","tool_input":{}}"#
        ),
        "`session_id` in the hook input is not a non-empty string"
    );
    assert_eq!(
        err(r#"{"hook_event_name":"PreToolUse","session_id":"s","tool_name":7,"tool_input":{}}"#),
        "`tool_name` in the hook input is not a string"
    );
    assert_eq!(
        err(r#"{"hook_event_name":"UserPromptSubmit","session_id":"s"}"#),
        "the hook input has no `prompt`"
    );
    assert_eq!(
        err(
            r#"{"hook_event_name":"PostToolUseFailure","session_id":"s","tool_name":"Bash","tool_input":{},"is_interrupt":"no"}"#
        ),
        "`is_interrupt` in the hook input is not a boolean"
    );
    assert!(matches!(parse(b"").unwrap_err(), PayloadError::NotJson(_)));
}

#[test]
fn unknown_events_and_empty_ids_are_accepted() {
    // An event this adapter does not handle needs nothing but its name.
    assert_eq!(
        parse(br#"{"hook_event_name":"Stop"}"#).unwrap(),
        HookInput::Other {
            event: "Stop".to_string()
        }
    );
    let HookInput::PreToolUse(call) = parse(
        br#"{"hook_event_name":"PreToolUse","session_id":"s","tool_name":"Bash","tool_input":{},"tool_use_id":""}"#,
    )
    .unwrap() else {
        panic!("not a PreToolUse");
    };
    assert_eq!(call.tool_use_id, None);
}

#[test]
fn a_post_tool_use_is_an_error_only_when_its_response_says_so() {
    assert_eq!(
        post_status(&json!({"filePath": "/a", "success": true})),
        Status::Ok
    );
    assert_eq!(
        post_status(&json!({"stdout": "", "stderr": "", "interrupted": false, "isImage": false})),
        Status::Ok
    );
    assert_eq!(
        post_status(&json!([{"type": "text", "text": "x"}])),
        Status::Ok
    );
    assert_eq!(post_status(&json!("text")), Status::Ok);
    assert_eq!(post_status(&Value::Null), Status::Ok);
    assert_eq!(post_status(&json!({"success": false})), Status::Error);
    assert_eq!(post_status(&json!({"interrupted": true})), Status::Error);
    assert_eq!(
        post_status(&json!({"isError": true, "content": []})),
        Status::Error
    );
}

#[test]
fn the_call_id_is_the_tool_use_id_or_derived_from_what_both_hooks_see() {
    let with_id = tool_use("Bash", json!({"command": "ls"}), Some("toolu_1"));
    assert_eq!(CallId::of(&with_id), CallId::ToolUseId("toolu_1".into()));
    assert_eq!(CallId::of(&with_id).candidates(), vec!["toolu_1"]);

    let a = tool_use("Bash", json!({"command": "ls", "description": "d"}), None);
    let CallId::Derived(id) = CallId::of(&a) else {
        panic!("derived")
    };
    assert!(id.starts_with("hook-") && id.len() == 5 + 32, "{id}");
    // Key order does not matter: the input is hashed as canonical JSON.
    let reordered = ToolUse {
        tool_input: object(serde_json::from_str(r#"{"description":"d","command":"ls"}"#).unwrap()),
        ..a.clone()
    };
    assert_eq!(CallId::of(&reordered), CallId::of(&a));
    // The session, the tool and the input each change it.
    let other_session = ToolUse {
        session_id: "other".into(),
        ..a.clone()
    };
    let other_tool = ToolUse {
        tool_name: "Other".into(),
        ..a.clone()
    };
    let other_input = tool_use(
        "Bash",
        json!({"command": "ls -l", "description": "d"}),
        None,
    );
    for other in [other_session, other_tool, other_input] {
        assert_ne!(CallId::of(&other), CallId::of(&a));
    }
    let candidates = CallId::of(&a).candidates();
    assert_eq!(candidates.len(), MAX_SAME_DERIVED);
    assert_eq!(candidates[0], id);
    assert_eq!(candidates[1], format!("{id}-2"));
}

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
