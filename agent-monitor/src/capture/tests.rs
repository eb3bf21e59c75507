//! The policies, the tags, the key file. Detector-by-detector tests live in
//! detector_tests.rs.

use std::{fs, os::unix::fs::PermissionsExt};

use super::{detector_tests::fake, *};

fn key(byte: u8) -> CaptureKey {
    CaptureKey::from_bytes([byte; 32])
}

fn capture(policy: Policy) -> Capture {
    Capture::new(policy, key(7))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Whether `tag` is `[REDACTED:<kind>:<8 lowercase hex>]`.
fn is_redaction_of(tag: &str, kind: &str) -> bool {
    tag.strip_prefix(&format!("[REDACTED:{kind}:"))
        .and_then(|t| t.strip_suffix(']'))
        .is_some_and(|h| {
            h.len() == 8
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

#[test]
fn policy_names_round_trip() {
    for policy in Policy::ALL {
        assert_eq!(policy.to_string().parse::<Policy>().unwrap(), policy);
    }
    assert_eq!("REDACT".parse::<Policy>().unwrap(), Policy::Redact);
    assert_eq!(" none ".parse::<Policy>().unwrap(), Policy::None);
    assert_eq!(Policy::default(), Policy::Redact);
    assert_eq!(Policy::Hash.to_string(), "hash");
}

#[test]
fn an_unknown_policy_lists_the_valid_names() {
    let err = "secret".parse::<Policy>().unwrap_err().to_string();
    assert_eq!(
        err,
        "unknown capture policy `secret`: expected one of full, redact, hash, none"
    );
    assert!("".parse::<Policy>().is_err());
}

#[test]
fn policy_serde_names_match_display() {
    assert_eq!(serde_json::to_string(&Policy::Full).unwrap(), r#""full""#);
    let parsed: Policy = serde_json::from_str(r#""hash""#).unwrap();
    assert_eq!(parsed, Policy::Hash);
}

#[test]
fn full_keeps_the_text_borrowed() {
    let text = format!("password={}", fake(12));
    let kept = capture(Policy::Full).apply(&text).unwrap();
    assert!(matches!(kept, Cow::Borrowed(t) if t == text));
}

#[test]
fn none_keeps_nothing() {
    assert_eq!(capture(Policy::None).apply("anything"), None);
    assert_eq!(capture(Policy::None).apply_all(&strings(&["a"])), None);
}

#[test]
fn redact_borrows_text_without_secrets() {
    let c = capture(Policy::Redact);
    for text in [
        "",
        "/usr/bin/git",
        "status --short",
        "a very ordinary prompt",
    ] {
        assert!(matches!(c.apply(text), Some(Cow::Borrowed(t)) if t == text));
    }
}

#[test]
fn redact_replaces_only_the_secret() {
    let c = capture(Policy::Redact);
    let token = format!("ghp_{}", fake(36));
    let text = format!("git push https://{token}@github.com/o/r main");
    let out = c.apply(&text).unwrap();
    let tag = c.redact_tag("github_token", &token);
    assert_eq!(out, format!("git push https://{tag}@github.com/o/r main"));
    assert!(is_redaction_of(&tag, "github_token"), "{tag}");
}

#[test]
fn redaction_tags_are_keyed_and_deterministic() {
    let (a, b) = (
        capture(Policy::Redact),
        Capture::new(Policy::Redact, key(8)),
    );
    assert_eq!(a.redact_tag("jwt", "x"), a.redact_tag("jwt", "x"));
    assert_ne!(a.redact_tag("jwt", "x"), a.redact_tag("jwt", "y"));
    assert_ne!(a.redact_tag("jwt", "x"), b.redact_tag("jwt", "x"));
    // HMAC-SHA256 with a key of 32 bytes 0x07 over "x", first four bytes.
    let mac = a.mac("x");
    assert_eq!(
        a.redact_tag("jwt", "x"),
        format!("[REDACTED:jwt:{}]", hex(&mac[..4]))
    );
}

#[test]
fn hmac_matches_the_rfc_4231_vector() {
    // RFC 4231 test case 2: key "Jefe", which CaptureKey cannot hold, so the
    // HMAC here runs on the same type with that key to check the wiring.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    assert_eq!(
        hex(&digest),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn hash_commits_to_the_text() {
    let c = capture(Policy::Hash);
    let text = "a prompt with password=hunter2";
    let tag = c.apply(text).unwrap().into_owned();
    let digest = tag
        .strip_prefix("[HASH:hmac-sha256:")
        .and_then(|t| t.strip_suffix(']'))
        .unwrap();
    assert_eq!(digest.len(), 64);
    assert!(!tag.contains("hunter2"));
    assert!(c.verify_hash(text, &tag));
    assert!(c.verify_hash(
        text,
        &tag.to_uppercase().replace("HMAC-SHA256", "hmac-sha256")
    ));
    assert!(!c.verify_hash("a prompt with password=hunter3", &tag));
    assert!(!Capture::new(Policy::Hash, key(8)).verify_hash(text, &tag));
    for bad in [
        "",
        "[HASH:hmac-sha256:]",
        &tag[..tag.len() - 1],
        &tag.replace("sha256", "sha1"),
    ] {
        assert!(!c.verify_hash(text, bad), "{bad}");
    }
}

#[test]
fn hash_and_full_apply_to_each_argv_element() {
    let argv = strings(&["curl", "-u", "a:b"]);
    let hashed = capture(Policy::Hash).apply_all(&argv).unwrap();
    assert_eq!(hashed.len(), 3);
    assert!(capture(Policy::Hash).verify_hash("a:b", &hashed[2]));
    assert_eq!(capture(Policy::Full).apply_all(&argv).unwrap(), argv);
}

#[test]
fn argv_secrets_in_one_element_and_after_a_flag() {
    let c = capture(Policy::Redact);
    let argv = strings(&[
        "tool",
        "--token=abc123",
        "--password",
        "hunter2",
        "--api-key",
        "--verbose",
        "-u",
        "admin:pw",
    ]);
    let out = c.apply_all(&argv).unwrap();
    assert_eq!(out[0], "tool");
    assert_eq!(
        out[1],
        format!("--token={}", c.redact_tag("env_assignment", "abc123"))
    );
    assert_eq!(out[2], "--password");
    assert_eq!(out[3], c.redact_tag("flag_value", "hunter2"));
    assert_eq!(out[4..7], ["--api-key", "--verbose", "-u"]);
    assert_eq!(
        out[7],
        format!("admin:{}", c.redact_tag("flag_value", "pw"))
    );
    assert_eq!(
        c.apply_all(&out).unwrap(),
        out,
        "redacting twice changed the argv"
    );
}

#[test]
fn json_stays_json_after_redaction() {
    let c = capture(Policy::Redact);
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n",
        fake(64)
    );
    let json = format!(
        r#"{{"cmd": "psql postgres://app:pw1@db/x", "headers": {{"Authorization": "Bearer {}"}}, "private_key": "{key}", "max_tokens": 50, "password": "a\"b"}}"#,
        fake(30)
    );
    let out = c.apply(&json).unwrap();
    let value: serde_json::Value = serde_json::from_str(&out).expect("still JSON");
    assert!(
        value["cmd"]
            .as_str()
            .unwrap()
            .starts_with("psql postgres://app:[REDACTED:url_password:")
    );
    assert!(
        value["headers"]["Authorization"]
            .as_str()
            .unwrap()
            .starts_with("Bearer [REDACTED:bearer_token:")
    );
    // The value with its trailing `\n` is longer than the key block alone.
    assert!(is_redaction_of(
        value["private_key"].as_str().unwrap(),
        "env_assignment"
    ));
    assert!(is_redaction_of(
        value["password"].as_str().unwrap(),
        "env_assignment"
    ));
    assert_eq!(value["max_tokens"], 50);
}

#[test]
fn redacting_twice_changes_nothing() {
    let c = capture(Policy::Redact);
    let text = format!(
        "export AWS_SECRET_ACCESS_KEY={} && curl https://u:pw@h -H 'Authorization: Bearer {}'",
        fake(40),
        fake(32)
    );
    let once = c.apply(&text).unwrap().into_owned();
    assert_ne!(once, text);
    assert!(matches!(c.apply(&once), Some(Cow::Borrowed(_))), "{once}");
}

/// Each secret, in several surroundings: no eight characters of it in a row
/// may survive redaction.
#[test]
fn no_part_of_a_secret_survives() {
    let c = capture(Policy::Redact);
    let secrets = [
        format!("AKIA{}", fake(16).to_ascii_uppercase()),
        format!("ghp_{}", fake(36)),
        format!("glpat-{}", fake(20)),
        format!("xoxp-1111-2222-{}", fake(24)),
        format!("sk-ant-api03-{}", fake(60)),
        format!("sk-proj-{}", fake(60)),
        format!("AIza{}", fake(35)),
        format!("sk_live_{}", fake(30)),
        format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx{}.{}", fake(20), fake(43)),
        format!("hf_{}", fake(34)),
    ];
    for secret in &secrets {
        for text in [
            secret.clone(),
            format!("key={secret}"),
            format!(r#"{{"value": "{secret}", "n": 1}}"#),
            format!("Authorization: Bearer {secret}\n"),
            format!("line one\n  {secret}\nline three"),
        ] {
            let out = c.apply(&text).unwrap();
            for window in secret.as_bytes().windows(8) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!out.contains(window), "{window:?} of {secret:?} in {out:?}");
            }
        }
    }
}

#[test]
fn a_new_key_file_is_private_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.key");
    let made = CaptureKey::load_or_create(&path).unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", hex(made.bytes())));
    assert_eq!(CaptureKey::load_or_create(&path).unwrap(), made);
    assert_eq!(CaptureKey::load(&path).unwrap(), made);
    let other = CaptureKey::load_or_create(&dir.path().join("other.key")).unwrap();
    assert_ne!(other, made, "two new keys are the same");
}

#[test]
fn a_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.key");
    fs::write(&path, "ab".repeat(32)).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let err = CaptureKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, CaptureError::Permissions { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains("chmod 600"),
            "{msg}"
        );
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(CaptureKey::load(&path).unwrap(), key(0xab));
}

#[test]
fn a_malformed_key_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.key");
    let hex64 = "0f".repeat(32);
    for bad in [
        String::new(),
        "0f".repeat(31),
        format!("{hex64}\n\n"),
        format!("{hex64}0"),
        format!(" {hex64}"),
        format!("{}zz", "0f".repeat(31)),
        format!("{hex64}\n{hex64}\n"),
    ] {
        fs::write(&path, &bad).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = CaptureKey::load_or_create(&path).unwrap_err();
        assert!(matches!(err, CaptureError::BadKey { .. }), "{bad:?}: {err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            bad,
            "the file was changed"
        );
    }
    for good in [
        format!("{hex64}\n"),
        format!("{hex64}\r\n"),
        hex64.to_uppercase(),
    ] {
        fs::write(&path, &good).unwrap();
        assert_eq!(CaptureKey::load(&path).unwrap(), key(0x0f), "{good:?}");
    }
}

#[test]
fn a_missing_directory_is_made_private_and_a_directory_is_not_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/capture.key");
    let made = CaptureKey::load_or_create(&path).unwrap();
    let mode = fs::metadata(dir.path().join("state"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(CaptureKey::load(&path).unwrap(), made);
    let err = CaptureKey::load(dir.path()).unwrap_err();
    assert!(matches!(err, CaptureError::BadKey { .. }), "{err}");
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let k = key(0xab);
    assert_eq!(format!("{k:?}"), "CaptureKey(..)");
    assert!(!format!("{:?}", Capture::new(Policy::Full, k.clone())).contains("ab"));
    assert_eq!(k.id().len(), 16);
    assert_ne!(k.id(), key(0xac).id());
}
