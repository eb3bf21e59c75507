//! Which part of a detector's match is the secret, or why the match is no
//! secret after all.

use std::ops::Range;

use regex::Captures;

/// The secret's place in a match (`Ok`), or, when the match is no secret
/// after all, where to search again (`Err`).
pub(super) type Refine = fn(&str, &Captures<'_>) -> Result<Range<usize>, usize>;

fn matched<'h>(c: &Captures<'h>) -> regex::Match<'h> {
    c.get(0).expect("group 0 is the match")
}

pub(super) fn whole(_: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    Ok(matched(c).range())
}

pub(super) fn group1(_: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    c.get(1).map(|m| m.range()).ok_or(matched(c).end())
}

/// A bare `sk-` must hold a digit or a capital, which hyphenated words such
/// as `sk-learn-…` lack; `sk-proj-` and the like need not.
pub(super) fn openai(_: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    let m = matched(c);
    let body = &m.as_str()["sk-".len()..];
    let typed = ["proj-", "svcacct-", "admin-"]
        .iter()
        .any(|p| body.starts_with(p));
    if typed
        || body
            .bytes()
            .any(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        Ok(m.range())
    } else {
        Err(m.end())
    }
}

/// Authorization schemes: a header that holds only one has no credential.
const SCHEMES: &[&str] = &["bearer", "basic", "digest", "token", "negotiate", "ntlm"];

pub(super) fn header(text: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    let value = group1(text, c)?;
    if SCHEMES
        .iter()
        .any(|s| text[value.clone()].eq_ignore_ascii_case(s))
    {
        return Err(matched(c).end());
    }
    Ok(value)
}

/// `bearer` in prose (`the bearer of`) is followed by a word, not a token;
/// `basic` in prose is not followed by base64 of `user:password`.
pub(super) fn bearer(_: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    let (scheme, token) = (&c[1], c.get(2).ok_or(matched(c).end())?);
    let t = token.as_str();
    let credential = if scheme.eq_ignore_ascii_case("basic") {
        is_basic_credential(t)
    } else {
        t.len() >= 20 || (t.len() >= 8 && t.bytes().any(|b| !b.is_ascii_alphabetic()))
    };
    if credential {
        Ok(token.range())
    } else {
        Err(matched(c).end())
    }
}

/// Whether `token` is base64 (either alphabet) of printable text with a `:`.
fn is_basic_credential(token: &str) -> bool {
    let (mut bits, mut held, mut text) = (0u32, 0u32, Vec::new());
    for b in token.trim_end_matches('=').bytes() {
        let sextet = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return false,
        };
        bits = (bits << 6) | u32::from(sextet);
        held += 6;
        if held >= 8 {
            held -= 8;
            text.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    text.contains(&b':') && !text.iter().any(u8::is_ascii_control)
}

pub(super) fn flag(_: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    ["dq", "sq", "bare"]
        .iter()
        .find_map(|g| c.name(g))
        .map(|m| m.range())
        .ok_or(matched(c).end())
}

/// How surely a name marks its value as secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strength {
    /// `max_tokens`, `author`, `PWD` (the shell's working directory).
    Not,
    /// `token`, `auth`: a number after them is a count or a flag.
    Weak,
    /// `password`, `secret`, `api_key`, …
    Strong,
}

fn name_strength(name: &str) -> Strength {
    if name == "PWD" || name == "OLDPWD" {
        return Strength::Not;
    }
    let lower: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const STRONG: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "apikey",
        "accesskey",
        "privatekey",
        "credential",
    ];
    let after = |word: &'static str| {
        let lower = lower.as_str();
        lower
            .match_indices(word)
            .map(move |(i, _)| &lower[i + word.len()..])
    };
    if STRONG.iter().any(|k| lower.contains(k)) {
        Strength::Strong
    } else if after("token").any(|r| !(r.starts_with('s') || r.starts_with("iz")))
        || after("auth")
            .any(|r| !r.starts_with("or") || r.starts_with("oriz") || r.starts_with("oris"))
    {
        Strength::Weak
    } else {
        Strength::Not
    }
}

pub(super) fn assignment(text: &str, c: &Captures<'_>) -> Result<Range<usize>, usize> {
    let name = c.name("name").expect("the pattern names its name group");
    let skip = name.end();
    let strength = name_strength(name.as_str());
    // `scheme://token:…@host` names a user; url_password has the password.
    if strength == Strength::Not || text[..name.start()].ends_with("://") {
        return Err(skip);
    }
    let value = match ["dq", "eq", "sq", "x"].iter().find_map(|g| c.name(g)) {
        Some(quoted) => quoted.range(),
        None => match c.name("aq") {
            // `"keys": ["a", "b"]`: every string of the array.
            Some(first) => first.start()..array_end(text, first.start()),
            None => bare_value(text, c).ok_or(skip)?,
        },
    };
    let v = &text[value.clone()];
    if strength == Strength::Weak && v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(skip);
    }
    // `"Authorization": "Bearer …"`: the scheme stays readable.
    let start = value.start + scheme_len(v);
    if start < value.end {
        Ok(start..value.end)
    } else {
        Err(skip)
    }
}

/// Where the last string of a JSON array ends (its closing quote), the
/// first string starting at `from`. An array cut short runs to the end of
/// its line.
fn array_end(text: &str, from: usize) -> usize {
    let (mut in_string, mut escaped, mut last_quote) = (true, false, None);
    for (i, b) in text.bytes().enumerate().skip(from) {
        match b {
            b'\n' => return i,
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => {
                in_string = !in_string;
                if !in_string {
                    last_quote = Some(i);
                }
            }
            b']' if !in_string => return last_quote.unwrap_or(i),
            _ => {}
        }
    }
    text.len()
}

/// An unquoted value, up to the next query parameter and without the
/// closing punctuation of JSON; after `Bearer` and the like, the credential.
fn bare_value(text: &str, c: &Captures<'_>) -> Option<Range<usize>> {
    let bare = c.name("bare")?;
    let json = c.name("q").is_some();
    let mut v = &bare.as_str()[..query_end(bare.as_str())];
    if json {
        // `"password": 1234,`
        v = v.trim_end_matches([',', '}', ']']);
    }
    if SCHEMES.iter().any(|s| v.eq_ignore_ascii_case(s)) {
        // `Authorization: Bearer <token>`
        let rest = &text[bare.end()..];
        let gap = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let len = rest[gap..]
            .find(|c: char| c.is_whitespace() || "\"'\\".contains(c))
            .unwrap_or(rest.len() - gap);
        let start = bare.end() + gap;
        return (gap > 0 && len > 0).then_some(start..start + len);
    }
    // `"secrets": {…}`, `"keys": [1, 2]`, `"password": null`
    let structure =
        v.bytes().all(|b| b == b'{' || b == b'[') || (json && v.starts_with(['{', '[']));
    let literal = ["true", "false", "null"]
        .iter()
        .any(|l| v.eq_ignore_ascii_case(l));
    (!structure && !literal).then_some(bare.start()..bare.start() + v.len())
}

/// Where a value in a query string ends: before `&name=`, the next
/// parameter.
fn query_end(value: &str) -> usize {
    let bytes = value.as_bytes();
    for (i, _) in value.match_indices('&') {
        let rest = &bytes[i + 1..];
        let name = rest
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || b"_.-[]".contains(b))
            .count();
        if name > 0 && rest.get(name) == Some(&b'=') {
            return i;
        }
    }
    value.len()
}

/// The length of a leading `Bearer ` (or another scheme) and its spaces.
fn scheme_len(value: &str) -> usize {
    for scheme in SCHEMES {
        let n = scheme.len();
        if value.len() > n
            && value
                .get(..n)
                .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
            && value.as_bytes()[n] == b' '
        {
            return n + value[n..].bytes().take_while(|&b| b == b' ').count();
        }
    }
    0
}
