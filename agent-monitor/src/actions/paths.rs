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
/// trailing `/` (except the root itself). One pass over the bytes: this
/// runs for every path of every event.
fn is_normal(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    if bytes.len() == 1 {
        return true;
    }
    // Each component starts after a '/'; look at what it is.
    bytes
        .split(|b| *b == b'/')
        .skip(1)
        .all(|part| !matches!(part, b"" | b"." | b".."))
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
            "/a/.b", "/a/..b", "/a/b.", "/...", "a/b", "",
        ] {
            let normal = path.starts_with('/') && fold(path) == path;
            assert_eq!(is_normal(path), normal, "{path:?}");
        }
    }
}
