//! Requests that fit one line of the declaration protocol.
//!
//! A request line may have at most [`MAX_LINE`] bytes. A tool's result or
//! a prompt can be longer (a Read of a large file), so its strings are cut
//! to what the line has room for: the longest first, all of those cut to
//! the same length, each followed by a note of how much was cut. When even
//! that cannot make room (a result of many short strings), the result is
//! replaced by `{"cut": true, "bytes": N}`, N its size in JSON. A call's
//! `args` are never cut: the policy decides on them.
//!
//! The cut is planned in one pass over the strings, sorted by length, so
//! a result of any size costs a sort and two walks, never a serialisation
//! per string cut.

use std::{cmp::Reverse, io};

use serde_json::{Value, json};

use crate::declare::{MAX_LINE, Request, ToolEnd};

/// A cut string keeps at least this many bytes of JSON: shorter, it says
/// too little to be worth keeping, and the result is replaced instead.
pub const MIN_KEEP: usize = 256;

const NOTE_HEAD: &str = "… [";
const NOTE_TAIL: &str = " more bytes cut by agent-monitor hook]";
/// The longest note: the count has at most 20 digits.
const NOTE_MAX: usize = NOTE_HEAD.len() + 20 + NOTE_TAIL.len();

/// `end` with its `result` made to fit the line: its strings cut, or, when
/// that is not enough, `{"cut": true, "bytes": N}` in its place.
pub fn fit_tool_end(end: &mut ToolEnd) {
    let Some(mut result) = end.result.take() else {
        return;
    };
    // The line without the result: `null` stands where it goes.
    let rest = line_len(&Request::ToolEnd(ToolEnd {
        result: Some(Value::Null),
        ..end.clone()
    })) - "null".len();
    let budget = MAX_LINE.saturating_sub(rest);
    let bytes = json_len(&result);
    if bytes > budget && !cut_strings(&mut result, bytes - budget) {
        result = json!({"cut": true, "bytes": bytes});
    }
    end.result = Some(result);
}

/// A prompt's text made to fit the line (it is one string: cut to what
/// the line has room for).
pub fn fit_prompt(text: String) -> String {
    let rest = line_len(&Request::Prompt {
        text: String::new(),
        at: None,
    }) - "\"\"".len();
    let budget = MAX_LINE.saturating_sub(rest);
    let mut value = Value::String(text);
    let bytes = json_len(&value);
    if bytes > budget {
        // A line with nothing but the prompt always has room for more
        // than MIN_KEEP of it, so this cut does not fail.
        cut_strings(&mut value, bytes - budget);
    }
    match value {
        Value::String(text) => text,
        _ => unreachable!("a string stays a string"),
    }
}

/// Cuts strings of `value` so that its JSON shrinks by at least `excess`
/// bytes, keeping as much of each as it can: the `k` longest strings are
/// cut to one length `c`, the largest that saves enough, with `k` as small
/// as it can be (every string left whole is no longer than a cut one).
/// False, with `value` untouched, when `c` would be under [`MIN_KEEP`].
fn cut_strings(value: &mut Value, excess: usize) -> bool {
    let mut strings = Vec::new();
    collect_strings(value, &mut strings);
    // The JSON size of each string's content, quotes aside.
    let mut sized: Vec<(usize, &mut String)> = strings
        .into_iter()
        .map(|s| (s.chars().map(escaped_len).sum(), s))
        .collect();
    sized.sort_by_key(|(len, _)| Reverse(*len));
    let Some((cut, keep)) = plan(sized.iter().map(|(len, _)| *len), excess) else {
        return false;
    };
    for (_, string) in sized.into_iter().take(cut) {
        truncate_escaped(string, keep);
    }
    true
}

/// The water level: for lengths sorted longest first, how many to cut
/// and to how many bytes each (each cut one also gains a note of at most
/// [`NOTE_MAX`] bytes) so that they save at least `excess`.
fn plan(lengths: impl Iterator<Item = usize>, excess: usize) -> Option<(usize, usize)> {
    let mut lengths = lengths.peekable();
    let mut sum = 0usize;
    let mut k = 0usize;
    while let Some(len) = lengths.next() {
        sum += len;
        k += 1;
        // k strings of `sum` bytes cut to `level` bytes each, notes
        // included, save `sum - k * level`.
        let Some(level) = sum.checked_sub(excess).map(|room| room / k) else {
            continue;
        };
        let next = lengths.peek().copied().unwrap_or(0);
        if level >= next {
            // The next string is no longer than a cut one: it stays whole.
            let keep = level.checked_sub(NOTE_MAX)?;
            return (keep >= MIN_KEEP).then_some((k, keep));
        }
    }
    None
}

fn collect_strings<'a>(value: &'a mut Value, out: &mut Vec<&'a mut String>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter_mut().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values_mut().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Cuts `string` to its longest prefix whose JSON takes at most `keep`
/// bytes (whole characters only), followed by the note.
fn truncate_escaped(string: &mut String, keep: usize) {
    let mut taken = 0;
    let mut end = 0;
    for (at, c) in string.char_indices() {
        taken += escaped_len(c);
        if taken > keep {
            break;
        }
        end = at + c.len_utf8();
    }
    let cut = string.len() - end;
    string.truncate(end);
    string.push_str(&format!("{NOTE_HEAD}{cut}{NOTE_TAIL}"));
}

/// How many bytes `c` takes inside a JSON string as serde_json writes it:
/// `"`, `\` and the control characters escaped, everything else as UTF-8.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{08}' | '\u{0c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The JSON size of a value, counted without building it.
pub fn json_len(value: &impl serde::Serialize) -> usize {
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).expect("counting bytes does not fail");
    counter.0
}

fn line_len(request: &Request) -> usize {
    json_len(request)
}

struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;
