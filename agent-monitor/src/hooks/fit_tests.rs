use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{MIN_KEEP, NOTE_MAX, fit_prompt, fit_tool_end, json_len, plan};
use crate::declare::{MAX_LINE, Request, Status, ToolEnd};

fn end(result: Value) -> ToolEnd {
    ToolEnd {
        call_id: "toolu_01".into(),
        status: Status::Ok,
        result: Some(result),
        at: None,
    }
}

fn fitted(result: Value) -> (usize, Value) {
    let mut end = end(result);
    fit_tool_end(&mut end);
    let line = json_len(&Request::ToolEnd(end.clone()));
    (line, end.result.unwrap())
}

/// How many leading `c` a string keeps before its note.
fn kept(s: &str, c: char) -> usize {
    s.len() - s.trim_start_matches(c).len()
}

#[test]
fn what_fits_is_left_alone() {
    let result = json!({"stdout": "x".repeat(1000), "n": 3});
    assert_eq!(fitted(result.clone()).1, result);
    let mut none = ToolEnd {
        result: None,
        ..end(Value::Null)
    };
    fit_tool_end(&mut none);
    assert_eq!(none.result, None);
    // A line of exactly the limit fits.
    let rest = json_len(&Request::ToolEnd(end(json!("")))) - 2;
    let exact = json!("x".repeat(MAX_LINE - rest - 2));
    let (line, result) = fitted(exact.clone());
    assert_eq!((line, result), (MAX_LINE, exact));
}

#[test]
fn long_strings_are_cut_to_one_length_and_short_ones_kept() {
    let result = json!({
        "a": "a".repeat(900_000),
        "b": "b".repeat(700_000),
        "c": "c".repeat(100_000),
        "short": "s".repeat(300),
    });
    let (line, result) = fitted(result);
    assert!(line <= MAX_LINE, "{line}");
    // Not much room is wasted: the cut keeps nearly all a line can hold.
    assert!(line > MAX_LINE - 8 * NOTE_MAX, "{line}");
    let (a, b) = (result["a"].as_str().unwrap(), result["b"].as_str().unwrap());
    // The two longest cut to the same length; the rest whole.
    assert_eq!(kept(a, 'a'), kept(b, 'b'));
    assert!(a.ends_with(&format!(
        "… [{} more bytes cut by agent-monitor hook]",
        900_000 - kept(a, 'a')
    )));
    assert!(b.ends_with(&format!(
        "… [{} more bytes cut by agent-monitor hook]",
        700_000 - kept(b, 'b')
    )));
    assert_eq!(result["c"], json!("c".repeat(100_000)));
    assert_eq!(result["short"], json!("s".repeat(300)));
}

#[test]
fn escaped_characters_are_counted_as_the_line_has_them() {
    // A quote takes two bytes and a control character six on the line:
    // the cut counts those, not the string's own bytes.
    let (line, result) = fitted(json!({
        "quotes": "\"".repeat(MAX_LINE),
        "controls": "\u{1}".repeat(MAX_LINE / 2),
    }));
    assert!(line <= MAX_LINE, "{line}");
    assert!(result["quotes"].as_str().unwrap().contains("… ["));
    assert!(result["controls"].as_str().unwrap().contains("… ["));
    // Multi-byte characters are kept whole.
    let (line, result) = fitted(json!("é".repeat(MAX_LINE)));
    assert!(line <= MAX_LINE, "{line}");
    assert!(
        result
            .as_str()
            .unwrap()
            .trim_start_matches('é')
            .starts_with("… [")
    );
}

#[test]
fn many_short_strings_are_replaced_by_what_was_cut() {
    // No string worth cutting (each under the least a cut keeps), together
    // more than a line: the result is replaced, so that the call still
    // ends.
    let lines: Vec<String> = (0..60_000).map(|i| format!("line {i:>20}")).collect();
    let result = json!({"stdout_lines": lines});
    let bytes = json_len(&result);
    assert!(bytes > MAX_LINE);
    let (line, fitted) = fitted(result);
    assert_eq!(fitted, json!({"cut": true, "bytes": bytes}));
    assert!(line < 200, "{line}");
    // Strings just over the least kept, too many of them: cutting each to
    // MIN_KEEP would not make room either.
    let result = json!(vec!["z".repeat(MIN_KEEP + NOTE_MAX + 10); 5_000]);
    let bytes = json_len(&result);
    assert_eq!(fitted_result(result), json!({"cut": true, "bytes": bytes}));
}

fn fitted_result(result: Value) -> Value {
    fitted(result).1
}

#[test]
fn a_large_result_is_cut_in_one_pass() {
    // 40 MB in 2,000 strings: cutting one string per serialisation of the
    // whole line, as a loop would, takes minutes; sorting once does not.
    let result = Value::Array(
        (0..2_000)
            .map(|i| Value::String(format!("{i:05}{}", "r".repeat(20_000))))
            .collect(),
    );
    let started = Instant::now();
    let (line, result) = fitted(result);
    let took = started.elapsed();
    assert!(line <= MAX_LINE, "{line}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // All were equally long: all are cut to one length, which keeps more
    // than the least a cut keeps.
    let items = result.as_array().unwrap();
    assert_eq!(items.len(), 2_000);
    let lengths: Vec<usize> = items.iter().map(|s| s.as_str().unwrap().len()).collect();
    assert!(
        lengths.iter().all(|l| *l == lengths[0]),
        "{:?}",
        &lengths[..4]
    );
    assert!(lengths[0] > MIN_KEEP, "{}", lengths[0]);
    assert!(items[0].as_str().unwrap().starts_with("00000r"));
}

#[test]
fn the_plan_is_the_water_level() {
    // One string: cut by the excess (and room for its note).
    assert_eq!(
        plan([10_000].into_iter(), 1_000),
        Some((1, 9_000 - NOTE_MAX))
    );
    // Two equal strings share the cut.
    assert_eq!(
        plan([10_000, 10_000, 50].into_iter(), 2_000),
        Some((2, 9_000 - NOTE_MAX))
    );
    // A shorter string is left whole when the longer ones make room.
    assert_eq!(
        plan([10_000, 10_000, 1_000].into_iter(), 2_000),
        Some((2, 9_000 - NOTE_MAX))
    );
    // Nothing long enough: no plan.
    assert_eq!(plan([300, 300, 300].into_iter(), 500), None);
    assert_eq!(plan(std::iter::empty(), 1), None);
}

#[test]
fn a_prompt_keeps_what_the_line_has_room_for() {
    let text = fit_prompt("p".repeat(2 * MAX_LINE));
    let line = json_len(&Request::Prompt {
        text: text.clone(),
        at: None,
    });
    assert!(line <= MAX_LINE && line > MAX_LINE - NOTE_MAX, "{line}");
    assert!(text.ends_with(&format!(
        "… [{} more bytes cut by agent-monitor hook]",
        2 * MAX_LINE - kept(&text, 'p')
    )));
    assert_eq!(fit_prompt("short".into()), "short");
}
