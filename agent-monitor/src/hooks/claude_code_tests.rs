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

#[path = "claude_code_declare_tests.rs"]
mod declare;
