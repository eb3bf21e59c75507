//! Requests that fit one line of the declaration protocol.

use serde_json::Value;

/// A request line may have at most [`crate::declare::MAX_LINE`] bytes.
/// A tool's result or a prompt can be longer (a Read of a large file), so
/// the longest strings under `field` are cut to a prefix and a note of
/// what was cut, until the line fits. A call's `args` are never cut: the
/// policy decides on them.
pub fn fit_line(request: &mut Value, field: &str) {
    const KEEP: usize = 256;
    loop {
        let size = serde_json::to_vec(request).map_or(0, |line| line.len());
        if size <= crate::declare::MAX_LINE {
            return;
        }
        let Some(longest) = longest_string(&mut request[field]) else {
            return;
        };
        if longest.len() <= KEEP + 64 {
            // Nothing left worth cutting: the monitor refuses the line.
            return;
        }
        let mut keep = KEEP;
        while !longest.is_char_boundary(keep) {
            keep -= 1;
        }
        let cut = longest.len() - keep;
        longest.truncate(keep);
        longest.push_str(&format!("… [{cut} more bytes cut by agent-monitor hook]"));
    }
}

fn longest_string(value: &mut Value) -> Option<&mut String> {
    match value {
        Value::String(s) => Some(s),
        Value::Array(items) => items
            .iter_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        Value::Object(map) => map
            .values_mut()
            .filter_map(longest_string)
            .max_by_key(|s| s.len()),
        _ => None,
    }
}
