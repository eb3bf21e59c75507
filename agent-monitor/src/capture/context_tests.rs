//! The detectors that go by context (a URL, a header, a name, a flag), how
//! overlapping secrets merge, and the monitor's own tags.

use std::ops::Range;

use super::{
    detector_tests::{assert_none, assert_one, fake, found, upper},
    detectors::KINDS,
    scan::{Span, after_flag, merge},
};

#[test]
fn url_passwords_only_the_password() {
    assert_one("postgres://app:s3cr3t@db:5432/x", "url_password", "s3cr3t");
    assert_one("redis://:p4ss@cache:6379", "url_password", "p4ss");
    assert_one("https://u:p@ss:w@rd@host/a@b", "url_password", "p@ss:w@rd");
    assert_none("https://host:8080/path https://registry:443/@scope/pkg");
    assert_none("git@github.com:org/repo.git ssh://git@host:22/r");
}

#[test]
fn bearer_tokens_and_authorization_headers() {
    let token = format!("{}.{}-{}", fake(12), fake(10), fake(8));
    assert_one(
        &format!("Authorization: Bearer {token}"),
        "bearer_token",
        &token,
    );
    assert_one(
        &format!("curl -H 'authorization: bearer {token}' u"),
        "bearer_token",
        &token,
    );
    assert_one(
        "Authorization: Basic dXNlcjpwYXNz",
        "bearer_token",
        "dXNlcjpwYXNz",
    );
    assert_one(
        "Proxy-Authorization: abc123xyz",
        "bearer_token",
        "abc123xyz",
    );
    assert_one(
        &format!(r#"{{"Authorization": "Bearer {token}"}}"#),
        "bearer_token",
        &token,
    );
    assert_one(&format!("bearer {token} sent"), "bearer_token", &token);
    assert_one(
        "header: Basic dXNlcjpwYXNzd29yZA==",
        "bearer_token",
        "dXNlcjpwYXNzd29yZA==",
    );
    assert_none("the bearer of bad news; Authorization: Bearer");
    assert_none("basic dXNlcm5hbWU= and basic functionality_v2 and basic abc!");
    assert_none("Bearer tokens are described in RFC 6750.");
}

#[test]
fn env_assignments_of_every_shape() {
    for (text, secret) in [
        ("DB_PASSWORD=hunter2", "hunter2"),
        ("export API_KEY=\"two words\"", "two words"),
        ("password: s3cret # yaml", "s3cret"),
        (r#"{"client_secret": "a\"b"}"#, r#"a\"b"#),
        ("{'password': 'pw'}", "pw"),
        ("--db-password=x y", "x"),
        ("MY_TOKEN = abc", "abc"),
        ("token := \"go\"", "go"),
        (r#"{\"password\": \"hunter2\"}"#, "hunter2"),
        (r#"{"password": 1234, "u": 1}"#, "1234"),
        ("<password>xml pw</password>", "xml pw"),
        ("<db:Credential type=\"x\">pw</db:Credential>", "pw"),
        ("PASSWORD=\"unterminated", "unterminated"),
        ("X-Api-Key: k1", "k1"),
        ("pAsSwOrD=Mixed", "Mixed"),
        ("TOKEN=Bearer xyz1", "xyz1"),
        (r#"{"api_keys": ["k1", "k\"2"], "n": 1}"#, r#"k1", "k\"2"#),
        ("{\"api_keys\": [\"k1\", \"k2\nnext", "k1\", \"k2"),
        ("пароль password=секрет ok", "секрет"),
    ] {
        assert_one(text, "env_assignment", secret);
    }
}

#[test]
fn env_assignment_query_strings_end_at_the_next_parameter() {
    assert_eq!(
        found("/cb?access_token=abc&state=xyz&client_secret=def"),
        [("env_assignment", "abc"), ("env_assignment", "def")]
    );
    assert_one("PASSWORD=a&b", "env_assignment", "a&b");
}

#[test]
fn env_assignment_leaves_counts_authors_and_literals() {
    for text in [
        r#"{"max_tokens": 1024, "usage": {"input_tokens": 12}}"#,
        r#"{"author": "Jane", "authority": "x"}"#,
        "PWD=/home/u OLDPWD=/tmp",
        r#"{"token_count": 5, "auth": 0}"#,
        r#"{"password": null, "secret": true, "apiKey": ""}"#,
        r#"{"secrets": {"a": 1}, "credentials": [1]}"#,
        "tokenizer=fast",
    ] {
        assert_none(text);
    }
}

#[test]
fn a_url_user_name_is_not_an_assignment() {
    assert_one(
        "https://x-access-token:abc123@github.com/o/r",
        "url_password",
        "abc123",
    );
}

#[test]
fn flag_values_in_a_command_line() {
    assert_one("mysql --password hunter2 -h db", "flag_value", "hunter2");
    assert_one("tool --api-key 'a b' run", "flag_value", "a b");
    assert_one("openssl enc -pass pass:xyz", "flag_value", "pass:xyz");
    assert_none("docker login --password-stdin; tool --token --verbose");
    assert_one("curl -u admin:pw1 https://h", "flag_value", "pw1");
    assert_one("curl --user=admin:p:w https://h", "flag_value", "p:w");
    assert_one("curl -uadmin:pw1", "flag_value", "pw1");
    assert_none("sudo -u root ls; sort -u a");
}

#[test]
fn flag_values_in_the_next_argv_element() {
    assert_eq!(after_flag("--password", "hunter2"), Some(0..7));
    assert_eq!(after_flag("--API-KEY", "-x"), Some(0..2));
    assert_eq!(after_flag("-u", "admin:pw"), Some(6..8));
    assert_eq!(after_flag("--proxy-user", "u:"), None);
    assert_eq!(after_flag("--token", "--verbose"), None);
    assert_eq!(after_flag("--password-stdin", "x"), None);
    assert_eq!(after_flag("--passwd=x", "y"), None);
    assert_eq!(after_flag("-u", "root"), None);
    assert_eq!(
        after_flag("--token", "[REDACTED:flag_value:0badf00d]"),
        None
    );
}

#[test]
fn a_value_that_is_itself_a_known_secret_takes_the_specific_kind() {
    let key = format!("sk-proj-{}", fake(40));
    assert_one(&format!("OPENAI_API_KEY={key}"), "openai_key", &key);
    let gh = format!("ghp_{}", fake(36));
    assert_one(&format!("Authorization: token {gh}"), "github_token", &gh);
}

#[test]
fn overlapping_secrets_merge_into_one() {
    let aws = format!("AKIA{}", upper(16));
    let text = format!("SECRET=abc{aws}xyz tail");
    assert_eq!(found(&text), [("env_assignment", &text[7..text.len() - 5])]);

    let span = |range: Range<usize>, kind, rank| Span { range, kind, rank };
    let merged = merge(vec![
        span(10..20, "b", 2),
        span(0..5, "a", 1),
        span(15..30, "c", 0),
        span(3..8, "d", 3),
        span(30..31, "e", 4),
    ]);
    assert_eq!(
        merged,
        [
            span(0..8, "a", 1),
            span(10..30, "b", 2),
            span(30..31, "e", 4)
        ]
    );
}

#[test]
fn tags_are_not_redacted_again() {
    for kind in KINDS {
        let tag = format!("[REDACTED:{kind}:0badf00d]");
        assert_none(&format!("x={tag} https://u:{tag}@h password: {tag}"));
    }
    // A tag-like wrapper around a real secret does not hide it.
    let gh = format!("ghp_{}", fake(36));
    assert_one(&format!("[REDACTED:{gh}:0badf00d]"), "github_token", &gh);
}

#[test]
fn texts_without_secrets() {
    for text in [
        "",
        "ls -la /home/user",
        "cargo build --release --target x86_64-unknown-linux-gnu",
        "The quick brown fox 🦊 jumps over the lazy dog.",
        r#"{"model": "claude", "messages": [{"role": "user", "content": "hi"}]}"#,
        "https://example.com/path?q=1&page=2",
    ] {
        assert_none(text);
    }
}
