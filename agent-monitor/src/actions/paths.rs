//! Making captured paths absolute.
//!
//! The kernel sends a path as the process passed it, and for a relative one
//! the directory it started from (the working directory or the dirfd's), as
//! components from leaf to root, walked at the time of the call. Joining
//! them here is lexical: `.` and `..` are folded without looking at the
//! filesystem, so a `..` after a symlink resolves against the link's parent
//! rather than the target's. The raw path is always kept beside it.

/// A directory from its components, leaf first, each NUL-terminated.
pub fn from_components(components: &[u8]) -> String {
    let mut parts: Vec<&[u8]> = components
        .split(|b| *b == 0)
        .filter(|c| !c.is_empty())
        .collect();
    parts.reverse();
    let mut path = String::new();
    for part in parts {
        path.push('/');
        path.push_str(&String::from_utf8_lossy(part));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// `raw` made absolute against `base` (when relative) and normalised.
pub fn absolute(raw: &str, base: Option<&str>) -> Option<String> {
    if raw.starts_with('/') {
        Some(normalize(raw))
    } else {
        base.map(|base| normalize(&format!("{base}/{raw}")))
    }
}

/// Folds `//`, `.` and `..` in an absolute path.
pub fn normalize(path: &str) -> String {
    // Most paths are already normal: check before taking them apart.
    if is_normal(path) {
        return path.to_string();
    }
    fold(path)
}

/// [`normalize`], the long way: component by component.
fn fold(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            part => out.push(part),
        }
    }
    format!("/{}", out.join("/"))
}

/// Whether `path` is absolute with no empty, `.` or `..` component and no
/// trailing `/` (except the root itself). This runs for every path of
/// every event, so it is one pass over the bytes that looks only at what
/// follows each `/`. Splitting into a slice per component cost 534
/// instructions per event for `normalize` on the sustained pipeline bench
/// (callgrind), this 464 with the copy; memchr to find the separators, 490.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    match bytes {
        [b'/'] => return true,
        [b'/', .., b'/'] => return false,
        [b'/', ..] => {}
        _ => return false,
    }
    // The byte after index `i`, or a '/' past the end: a component that
    // ends the path ends as one followed by a '/' does.
    let after = |i: usize| bytes.get(i).copied().unwrap_or(b'/');
    for (i, byte) in bytes.iter().enumerate() {
        if *byte != b'/' {
            continue;
        }
        let empty_or_dots = match after(i + 1) {
            b'/' => true,
            b'.' => match after(i + 2) {
                b'/' => true,
                b'.' => after(i + 3) == b'/',
                _ => false,
            },
            _ => false,
        };
        if empty_or_dots {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_reversed_and_joined() {
        assert_eq!(from_components(b"c\0b\0a\0"), "/a/b/c");
        assert_eq!(from_components(b""), "/");
    }

    #[test]
    fn relative_paths_join_their_base() {
        assert_eq!(absolute("x/y", Some("/tmp")).as_deref(), Some("/tmp/x/y"));
        assert_eq!(absolute("./x", Some("/tmp/")).as_deref(), Some("/tmp/x"));
        assert_eq!(absolute("../x", Some("/tmp/d")).as_deref(), Some("/tmp/x"));
        assert_eq!(
            absolute("/etc//hostname", None).as_deref(),
            Some("/etc/hostname")
        );
        assert_eq!(absolute("x", None), None);
        assert_eq!(normalize("/../.."), "/");
    }

    #[test]
    fn the_fast_check_agrees_with_folding() {
        for path in [
            "/", "/a", "/a/b", "/a/", "//a", "/a//b", "/.", "/./a", "/a/.", "/a/..", "/..",
            "/a/.b", "/a/..b", "/a/b.", "/...", "a/b", "", "/a/./b", "/a/../b", "/a/b/", "//",
            "/.a/", "/..a",
        ] {
            let normal = path.starts_with('/') && fold(path) == path;
            assert_eq!(is_normal(path), normal, "{path:?}");
        }
    }

    #[test]
    fn the_fast_check_agrees_with_folding_on_every_short_path() {
        // Every string of up to seven bytes of '/', '.' and 'a'.
        let mut generation = vec![String::new()];
        let mut paths = generation.clone();
        for _ in 0..7 {
            generation = generation
                .iter()
                .flat_map(|p| ["/", ".", "a"].map(|c| format!("{p}{c}")))
                .collect();
            paths.extend_from_slice(&generation);
        }
        assert_eq!(paths.len(), (0..=7).map(|n| 3usize.pow(n)).sum::<usize>());
        for path in &paths {
            let normal = path.starts_with('/') && fold(path) == *path;
            assert_eq!(is_normal(path), normal, "{path:?}");
        }
    }
}
