//! The detectors of secrets known by their shape, each with texts it must
//! find and texts it must leave alone. The fake secrets are built at run
//! time, so no secret-shaped literal sits in the source. The detectors that
//! go by context are in context_tests.rs.

use super::{
    detectors::{DETECTORS, KINDS},
    scan::find,
};

/// `n` mixed letters and digits, the same on every call.
pub(super) fn fake(n: usize) -> String {
    "Zq7Xk2Pm9Rt4Wv6Ny3Lb8Hc5Jd1Gf0Ss"
        .chars()
        .cycle()
        .take(n)
        .collect()
}

/// `n` capital letters and digits.
pub(super) fn upper(n: usize) -> String {
    fake(n).to_ascii_uppercase()
}

/// The kind and text of each secret found in `text`.
pub(super) fn found(text: &str) -> Vec<(&'static str, &str)> {
    find(text)
        .into_iter()
        .map(|s| (s.kind, &text[s.range]))
        .collect()
}

#[track_caller]
pub(super) fn assert_one(text: &str, kind: &str, secret: &str) {
    assert_eq!(found(text), [(kind, secret)], "in {text:?}");
}

#[track_caller]
pub(super) fn assert_none(text: &str) {
    assert_eq!(found(text), [], "in {text:?}");
}

fn pem(label: &str, lines: usize) -> String {
    let body: Vec<String> = (0..lines).map(|i| fake(60 + i)).collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----",
        body.join("\n")
    )
}

#[test]
fn kinds_list_every_detector_once_in_order() {
    let mut kinds: Vec<&str> = DETECTORS.iter().map(|d| d.kind).collect();
    kinds.dedup();
    assert_eq!(kinds, KINDS);
}

#[test]
fn private_key_blocks_of_every_type() {
    for label in [
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ] {
        let key = pem(label, 4);
        assert_one(&format!("key:\n{key}\nnext line"), "private_key", &key);
    }
}

#[test]
fn private_key_with_escaped_newlines_inside_json() {
    let key = pem("PRIVATE KEY", 3).replace('\n', "\\n");
    let json = format!(r#"{{"type": "service_account", "private_key": "{key}\n", "id": 1}}"#);
    let secrets = found(&json);
    assert_eq!(secrets.len(), 1, "{secrets:?}");
    assert!(secrets[0].1.contains(&key), "{secrets:?}");
    assert!(json.ends_with(r#"", "id": 1}"#));
}

#[test]
fn private_key_unterminated_runs_to_the_end_or_a_quote() {
    let cut = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n{}",
        fake(64),
        fake(20)
    );
    assert_one(&format!("cat: {cut}"), "private_key", &cut);
    let quoted = format!(r#"{{"k": "{}", "n": 2}}"#, cut.replace('\n', "\\n"));
    assert_one(&quoted, "private_key", &cut.replace('\n', "\\n"));
}

#[test]
fn private_key_tail_without_its_begin_line() {
    let tail = format!(
        "{}\n{}\n-----END OPENSSH PRIVATE KEY-----",
        fake(70),
        fake(33)
    );
    assert_one(&format!("lines 2-3:\n{tail}\n"), "private_key", &tail);
    let indented = format!("  {}\n  -----END PRIVATE KEY-----", fake(64));
    assert_one(
        &format!("key: |\n{indented}"),
        "private_key",
        indented.trim_start(),
    );
}

#[test]
fn private_key_in_base64() {
    let b64 = format!("LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo{}", fake(80));
    assert_one(&format!("client-key-data: {b64}\n"), "private_key", &b64);
}

#[test]
fn two_private_keys_are_two_secrets() {
    let (a, b) = (pem("EC PRIVATE KEY", 2), pem("PRIVATE KEY", 2));
    let text = format!("{a}\nthen\n{b}");
    assert_eq!(found(&text), [("private_key", &*a), ("private_key", &*b)]);
}

#[test]
fn certificates_and_public_keys_are_not_private_keys() {
    assert_none(&pem("CERTIFICATE", 3));
    assert_none(&pem("PUBLIC KEY", 2));
    assert_none("-----BEGIN OPENSSH PUBLIC KEY-----");
    assert_none(&format!("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t{}", fake(40)));
}

#[test]
fn aws_access_keys() {
    for prefix in ["AKIA", "ASIA"] {
        let key = format!("{prefix}{}", upper(16));
        assert_one(
            &format!("AWS_ACCESS_KEY_ID {key} set"),
            "aws_access_key",
            &key,
        );
    }
    assert_none(&format!(
        "AKIA{} and akia{}",
        upper(15),
        upper(16).to_lowercase()
    ));
}

#[test]
fn aws_secret_keys_after_their_name() {
    let secret = format!("{}/{}+", fake(20), fake(18));
    for text in [
        format!("aws_secret_access_key = {secret}"),
        format!("AWS_SECRET_ACCESS_KEY={secret}"),
        format!(r#"{{"SecretAccessKey": "{secret}"}}"#),
        format!("aws configure set aws_secret_access_key {secret}"),
    ] {
        assert_one(&text, "aws_secret_key", &secret);
    }
    // Forty characters alone say nothing.
    assert_none(&format!("digest {secret} ok"));
}

#[test]
fn github_tokens() {
    for token in [
        format!("ghp_{}", fake(36)),
        format!("gho_{}", fake(36)),
        format!("ghs_{}", fake(36)),
        format!("github_pat_{}_{}", fake(22), fake(59)),
    ] {
        assert_one(
            &format!("git clone https://{token}@github.com/o/r"),
            "github_token",
            &token,
        );
    }
    assert_none(&format!("ghp_{} ghx_{}", fake(20), fake(36)));
}

#[test]
fn gitlab_tokens() {
    let token = format!("glpat-{}", fake(20));
    assert_one(&format!("PRIVATE-TOKEN {token}."), "gitlab_token", &token);
    let routable = format!("glpat-{}.01.{}", fake(27), fake(9));
    assert_one(&format!("use {routable} now"), "gitlab_token", &routable);
    assert_none(&format!("glpat-{} glpatx-{}", fake(10), fake(20)));
}

#[test]
fn slack_tokens_and_webhooks() {
    let token = format!("xoxb-1234567890-{}", fake(24));
    assert_one(&format!("SLACK {token}"), "slack_token", &token);
    let app = format!("xapp-1-A0-{}", fake(20));
    assert_one(&app, "slack_token", &app);
    assert_none("xoxz-1234567890-abcdefghij xoxb-short");
    let path = format!("T0{}/B0{}/{}", upper(8), upper(8), fake(24));
    let url = format!("https://hooks.slack.com/services/{path}");
    assert_one(&url, "slack_webhook", &path);
    assert_none("see https://hooks.slack.com/ and https://api.slack.com/services/");
}

#[test]
fn anthropic_and_openai_keys() {
    let ant = format!("sk-ant-api03-{}-{}", fake(40), fake(20));
    assert_one(&format!("key {ant}"), "anthropic_key", &ant);
    for key in [
        format!("sk-proj-{}_{}", fake(30), fake(40)),
        format!("sk-{}", fake(48)),
        format!("sk-svcacct-{}", "abcdefghij".repeat(3)),
    ] {
        assert_one(&format!(r#"{{"key":"{key}"}}"#), "openai_key", &key);
    }
    assert_none("task-management-and-other-things-here");
    assert_none("use sk-learn-is-a-great-library-name here and sk-abc");
}

#[test]
fn google_stripe_huggingface_npm_pypi() {
    let google = format!("AIza{}", fake(35));
    assert_one(&format!("?key={google}&q=1"), "google_api_key", &google);
    assert_none(&format!("AIza{}", fake(20)));

    for key in [
        format!("sk_live_{}", fake(24)),
        format!("rk_live_{}", fake(24)),
        format!("sk_test_{}", fake(24)),
        format!("whsec_{}", fake(32)),
    ] {
        assert_one(&format!("stripe {key}"), "stripe_key", &key);
    }
    assert_none(&format!("pk_live_{}", fake(24)));

    let hf = format!("hf_{}", fake(34));
    assert_one(&format!("login {hf}"), "huggingface_token", &hf);
    assert_none("--hf_cache_dir /tmp/hf_models_are_cached_in_this_directory");

    let npm = format!("npm_{}", fake(36));
    assert_one(
        &format!("//registry.npmjs.org/:_x={npm}"),
        "npm_token",
        &npm,
    );
    assert_none("npm_install_dependencies_from_the_lockfile_now");

    let pypi = format!("pypi-AgEIcHlwaS5vcmc{}", fake(60));
    assert_one(&format!("twine -u __token__ {pypi}"), "pypi_token", &pypi);
    assert_none("pypi-package-name and pypi-Ag");
}

#[test]
fn jwts() {
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}", fake(40), fake(43));
    assert_one(&format!("cookie {jwt};"), "jwt", &jwt);
    assert_none("eyJhbGciOiJIUzI1NiJ9 alone, and eyJhbGci.eyJ.x");
}
