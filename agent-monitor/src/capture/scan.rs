//! Running the detectors over a text.
//!
//! One [`RegexSet`] over every pattern answers, in a single pass, whether a
//! text holds any secret at all: the common case, argv without secrets, costs
//! that pass and nothing else. Only the patterns that hit are then run for
//! their positions. Overlapping secrets merge into one span, so no part of
//! any of them survives.

use std::{cmp::Reverse, ops::Range, sync::LazyLock};

use regex::{Regex, RegexSet};

use super::detectors::{DETECTORS, FLAG_ALONE, KINDS, USER_FLAG_ALONE};

/// A secret's place in the text and its detector's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub range: Range<usize>,
    pub kind: &'static str,
    /// The detector's place in [`DETECTORS`]: the lower, the more specific.
    pub(super) rank: usize,
}

struct Compiled {
    any: RegexSet,
    each: Vec<Regex>,
    /// A tag this module wrote, so that redacting twice changes nothing.
    tag: Regex,
    /// An argv element that is a secret-bearing flag on its own.
    flag_alone: Regex,
    /// An argv element that is a `user:password` flag on its own.
    user_flag_alone: Regex,
}

static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let patterns = DETECTORS.iter().map(|d| d.pattern);
    Compiled {
        any: RegexSet::new(patterns.clone()).expect("the detector patterns compile"),
        each: patterns
            .map(|p| Regex::new(p).expect("each detector pattern compiles"))
            .collect(),
        tag: Regex::new(&format!(
            r"\[REDACTED:(?:{}):[0-9a-f]{{8}}\]",
            KINDS.join("|")
        ))
        .expect("the tag pattern compiles"),
        flag_alone: Regex::new(FLAG_ALONE).expect("the flag pattern compiles"),
        user_flag_alone: Regex::new(USER_FLAG_ALONE).expect("the user flag pattern compiles"),
    }
});

/// Every secret in `text`, in order, merged where they overlap.
pub(super) fn find(text: &str) -> Vec<Span> {
    let compiled = &*COMPILED;
    let hits = compiled.any.matches(text);
    if !hits.matched_any() {
        return Vec::new();
    }
    // Tags this module wrote: a span inside one, or a match that starts
    // inside one (`private_key:…` in `[REDACTED:private_key:…]`), is no secret.
    let tags: Vec<Range<usize>> = if text.contains("[REDACTED:") {
        compiled.tag.find_iter(text).map(|m| m.range()).collect()
    } else {
        Vec::new()
    };
    // The tags are in order and apart: the one that could hold `at` is the
    // last to start at or before it.
    let tag_at = |at: usize| {
        let i = tags.partition_point(|t| t.start <= at);
        i.checked_sub(1).map(|i| &tags[i])
    };
    let in_tag = |range: &Range<usize>, start: usize| {
        tag_at(range.start).is_some_and(|t| range.end <= t.end)
            || tag_at(start).is_some_and(|t| t.start < start && start < t.end)
    };
    let mut spans = Vec::new();
    for rank in hits.iter() {
        let detector = &DETECTORS[rank];
        let mut at = 0;
        while let Some(caps) = compiled.each[rank].captures_at(text, at) {
            let start = caps.get(0).expect("group 0 is the match").start();
            let resume = match (detector.refine)(text, &caps) {
                Ok(range) if !range.is_empty() => {
                    let end = range.end;
                    if !in_tag(&range, start) {
                        spans.push(Span {
                            range,
                            kind: detector.kind,
                            rank,
                        });
                    }
                    end
                }
                Ok(_) => start,
                Err(resume) => resume,
            };
            at = resume.max(char_after(text, start));
            if at > text.len() {
                break;
            }
        }
    }
    merge(spans)
}

/// The secret in argv element `value` that follows element `flag`: all of
/// it after `--password` and the like (unless it is another long flag), the
/// password after `-u user:password`.
pub(super) fn after_flag(flag: &str, value: &str) -> Option<Range<usize>> {
    let secret = if COMPILED.flag_alone.is_match(flag) && !value.starts_with("--") {
        0..value.len()
    } else if COMPILED.user_flag_alone.is_match(flag) {
        value.find(':').map(|i| i + 1)?..value.len()
    } else {
        return None;
    };
    (!secret.is_empty() && !is_tag(&value[secret.clone()])).then_some(secret)
}

/// Whether `text` is one whole tag that this module wrote.
pub(super) fn is_tag(text: &str) -> bool {
    COMPILED
        .tag
        .find(text)
        .is_some_and(|m| m.range() == (0..text.len()))
}

/// Sorted, with overlapping spans merged into one named after the leftmost,
/// longest (then most specific) of them.
pub(super) fn merge(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.range.start, Reverse(s.range.end), s.rank));
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans {
        match out.last_mut() {
            Some(last) if span.range.start < last.range.end => {
                last.range.end = last.range.end.max(span.range.end);
            }
            _ => out.push(span),
        }
    }
    out
}

fn char_after(text: &str, i: usize) -> usize {
    i + text[i..].chars().next().map_or(1, char::len_utf8)
}
