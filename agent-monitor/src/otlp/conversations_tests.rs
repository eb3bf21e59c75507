use std::time::{Duration, Instant};

use super::*;

const QUIET: Duration = Duration::from_secs(60);

fn peer(pid: u32) -> Peer {
    Peer {
        pid,
        start_ns: 7,
        uid: 0,
        agent_slot: Some(1),
    }
}

fn key(id: &str) -> Key {
    (Some(1), id.to_string())
}

fn prompt(text: &str, position: usize) -> Prompt {
    Prompt {
        text: text.into(),
        at: 1,
        position,
    }
}

#[test]
fn a_session_is_ended_once_no_connection_holds_it_and_it_is_quiet() {
    let t0 = Instant::now();
    let mut c = Conversations::new(QUIET);
    c.hold(&key("a"), &peer(10), t0).unwrap();
    c.opened(&key("a"));
    c.hold(&key("a"), &peer(11), t0).unwrap();
    c.named(&key("a"), &peer(11), t0 + QUIET / 2);
    // Held: never due, however quiet.
    assert!(c.due(t0 + 10 * QUIET).is_empty());
    c.release(&key("a"));
    assert!(c.due(t0 + 10 * QUIET).is_empty(), "one still holds it");
    c.release(&key("a"));
    // Let go of, but a span named it lately: not yet.
    assert!(c.due(t0 + QUIET).is_empty());
    assert!(!c.is_quiet(&key("a"), t0 + QUIET));
    // Quiet since: ended as the process that named it last.
    let due = c.due(t0 + QUIET + QUIET / 2);
    assert_eq!(due, vec![(key("a"), peer(11))]);
    // Being ended: no connection may enter it meanwhile, and it is not
    // due twice.
    assert_eq!(c.hold(&key("a"), &peer(10), t0 + 2 * QUIET), Err(Ending));
    assert!(c.due(t0 + 3 * QUIET).is_empty());
    c.ended(&key("a"));
    assert_eq!(c.len(), 0);
    // Named again later: a new entry (whose session.start the stage
    // refuses, the session having ended).
    c.hold(&key("a"), &peer(10), t0 + 4 * QUIET).unwrap();
    assert_eq!(c.len(), 1);
}

#[test]
fn a_session_never_opened_is_forgotten_and_never_ended() {
    let t0 = Instant::now();
    let mut c = Conversations::new(QUIET);
    c.hold(&key("refused"), &peer(10), t0).unwrap();
    c.release(&key("refused"));
    assert_eq!(c.len(), 0);
    assert!(c.due(t0 + 2 * QUIET).is_empty());
    // The same conversation of another agent is another session.
    c.hold(&key("a"), &peer(10), t0).unwrap();
    c.opened(&key("a"));
    c.release(&key("a"));
    let other = (Some(2), "a".to_string());
    c.hold(&other, &peer(10), t0).unwrap();
    c.opened(&other);
    assert_eq!(c.due(t0 + QUIET), vec![(key("a"), peer(10))]);
}

#[test]
fn the_last_prompt_of_each_conversation_is_remembered() {
    let mut c = Conversations::new(QUIET);
    let conv: PromptKey = (Some(1), Some("a".into()));
    let current: PromptKey = (Some(1), None);
    assert!(!c.is_last_prompt(&conv, &prompt("List /srv.", 1)));
    c.prompt_declared(conv.clone(), &prompt("List /srv.", 1));
    assert!(c.is_last_prompt(&conv, &prompt("List /srv.", 1)));
    // The same words said again, later in the conversation, are a prompt.
    assert!(!c.is_last_prompt(&conv, &prompt("List /srv.", 5)));
    // Another text, another conversation, the agent's current session.
    assert!(!c.is_last_prompt(&conv, &prompt("List /tmp.", 1)));
    assert!(!c.is_last_prompt(&current, &prompt("List /srv.", 1)));
    c.prompt_declared(conv.clone(), &prompt("List /tmp.", 3));
    assert!(!c.is_last_prompt(&conv, &prompt("List /srv.", 1)));
    // Its session ended, the conversation's prompt is forgotten.
    c.hold(&key("a"), &peer(10), Instant::now()).unwrap();
    c.ended(&key("a"));
    assert!(!c.is_last_prompt(&conv, &prompt("List /tmp.", 3)));
}

#[test]
fn prompts_are_remembered_for_a_bounded_number_of_conversations() {
    let mut c = Conversations::new(QUIET);
    let conv = |i: usize| -> PromptKey { (Some(1), Some(format!("c{i}"))) };
    for i in 0..MAX_PROMPTS + 10 {
        c.prompt_declared(conv(i), &prompt("hi", 0));
        // Remembering one again does not make it count twice.
        c.prompt_declared(conv(i), &prompt("hi", 0));
    }
    assert_eq!(c.prompts.last.len(), MAX_PROMPTS);
    assert_eq!(c.prompts.order.len(), MAX_PROMPTS);
    // The oldest went first.
    assert!(!c.is_last_prompt(&conv(0), &prompt("hi", 0)));
    assert!(c.is_last_prompt(&conv(MAX_PROMPTS + 9), &prompt("hi", 0)));
}
