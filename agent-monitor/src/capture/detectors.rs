//! The built-in secret detectors of [`Policy::Redact`](super::Policy): a
//! pattern for each shape of secret, and the refine step (in
//! [`refine`](super::refine)) that says which part of a match is the secret
//! or rejects the match. [`scan`](super::scan) runs them.

use super::refine::{Refine, assignment, bearer, flag, group1, header, openai, whole};

/// Every detector kind, as it appears in `[REDACTED:<kind>:…]` tags. The
/// names are stable: docs/capture.md documents each one.
pub const KINDS: &[&str] = &[
    "private_key",
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "anthropic_key",
    "openai_key",
    "google_api_key",
    "stripe_key",
    "huggingface_token",
    "npm_token",
    "pypi_token",
    "jwt",
    "url_password",
    "bearer_token",
    "env_assignment",
    "flag_value",
];

pub(super) struct Detector {
    pub kind: &'static str,
    pub pattern: &'static str,
    pub refine: Refine,
}

/// Names that mark a value as secret (`env_assignment`, in XML too).
macro_rules! secret_name {
    () => {
        r"(?:pass(?:word|wd)|pwd|secret|token|api[_.\-]?key|access[_.\-]?key|private[_.\-]?key|credential|auth)"
    };
}

/// Flags whose value is secret (`flag_value`).
macro_rules! secret_flag {
    () => {
        r"--?[A-Za-z0-9_\-]*(?:pass(?:word|wd|in|out)?|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key|credentials?)"
    };
}

/// Flags whose value is `user:password` (curl).
macro_rules! user_flag {
    () => {
        "(?:-u|--user|--proxy-user)"
    };
}

/// The end marker of a PEM private key.
macro_rules! pem_end {
    () => {
        r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    };
}

/// In order of precedence: when two detectors find the same span, the first
/// one names it.
pub(super) const DETECTORS: &[Detector] = &[
    Detector {
        kind: "private_key",
        // The whole block; without an END line, up to a quote or the end of
        // the text (a truncated capture).
        pattern: concat!(
            r#"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:[^"]*?"#,
            pem_end!(),
            r#"|[^"]*)"#
        ),
        refine: whole,
    },
    Detector {
        kind: "private_key",
        // The tail of a block whose BEGIN line is not in this text.
        pattern: concat!(
            r"(?:[A-Za-z0-9+/=]+[ \t]*(?:\r?\n|\\r?\\n)[ \t]*)+",
            pem_end!()
        ),
        refine: whole,
    },
    Detector {
        kind: "private_key",
        // A PEM private key in base64, as in kubeconfig `client-key-data`.
        pattern: concat!(
            "LS0tLS1CRUdJTiB(?:QUklWQVRFIEtF|SU0EgUFJJVkFURSBL|FQyBQUklWQVRFIEtF",
            "|EU0EgUFJJVkFURSBL|PUEVOU1NIIFBSSVZBVEUgS0VZ|FTkNSWVBURUQgUFJJVkFURSBL",
            "|QR1AgUFJJVkFURSBL)[A-Za-z0-9+/=]*"
        ),
        refine: whole,
    },
    Detector {
        kind: "aws_access_key",
        pattern: r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
        refine: whole,
    },
    Detector {
        kind: "aws_secret_key",
        pattern: concat!(
            r"(?i:aws[_.\-]?secret[_.\-]?(?:access[_.\-]?)?key|secret[_.\-]?access[_.\-]?key)",
            r#"(?:\\?["'])?(?:[ \t]*(?::=|=>|==?|:)[ \t]*|[ \t]+)(?:\\?["'])?"#,
            r"([A-Za-z0-9/+=]{40,})"
        ),
        refine: group1,
    },
    Detector {
        kind: "github_token",
        pattern: r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}",
        refine: whole,
    },
    Detector {
        kind: "gitlab_token",
        pattern: concat!(
            r"(?:gl(?:pat|dt|ptt|rt|cbt|imt|oas|soat|ft|agent|ffct|wt)-|GR1348941)",
            r"[A-Za-z0-9_\-]{20,}(?:\.[A-Za-z0-9_\-]+)*"
        ),
        refine: whole,
    },
    Detector {
        kind: "slack_token",
        pattern: r"(?:xox[abposre]|xoxe\.xox[bp]|xapp-[0-9]+)-[A-Za-z0-9\-]{10,}",
        refine: whole,
    },
    Detector {
        kind: "slack_webhook",
        pattern: r"hooks\.slack\.com/(?:services|workflows|triggers)/([A-Za-z0-9_/\-]{20,})",
        refine: group1,
    },
    Detector {
        kind: "anthropic_key",
        pattern: r"sk-ant-[A-Za-z0-9_\-]{20,}",
        refine: whole,
    },
    Detector {
        kind: "openai_key",
        pattern: r"(?-u:\b)sk-[A-Za-z0-9_\-]{20,}",
        refine: openai,
    },
    Detector {
        kind: "google_api_key",
        pattern: r"AIza[0-9A-Za-z_\-]{35}",
        refine: whole,
    },
    Detector {
        kind: "stripe_key",
        pattern: r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{20,}",
        refine: whole,
    },
    Detector {
        kind: "huggingface_token",
        pattern: r"(?-u:\b)hf_[A-Za-z0-9]{30,}",
        refine: whole,
    },
    Detector {
        kind: "npm_token",
        pattern: r"npm_[A-Za-z0-9]{36,}",
        refine: whole,
    },
    Detector {
        kind: "pypi_token",
        pattern: r"pypi-Ag[A-Za-z0-9_\-]{50,}",
        refine: whole,
    },
    Detector {
        kind: "jwt",
        pattern: r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-+/=]*(?:\.[A-Za-z0-9_\-+/=]+){0,2}",
        refine: whole,
    },
    Detector {
        kind: "url_password",
        // The password runs to the last `@` before the host.
        pattern: r#"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@"'<>]*:([^\s/"'<>]+)@"#,
        refine: group1,
    },
    Detector {
        kind: "bearer_token",
        // An Authorization header: its credential, after the scheme.
        pattern: concat!(
            r#"(?i)(?:proxy-)?authorization(?:\\?["'])?[ \t]*[:=][ \t]*(?:\\?["'])?"#,
            r"(?:(?:bearer|basic|digest|token|negotiate|ntlm|apikey|api-key|aws4-hmac-sha256",
            r"|dpop|hoba|mutual|gnap|sso-key|jwt|key|otp)[ \t]+)?",
            r#"([^\s"'\\,;]+)"#
        ),
        refine: header,
    },
    Detector {
        kind: "bearer_token",
        // `Bearer <token>` and `Basic <base64 of user:password>` anywhere.
        pattern: r"(?i)(?-u:\b)(bearer|basic)[ \t]+([A-Za-z0-9\-._~+/]+=*)",
        refine: bearer,
    },
    Detector {
        kind: "env_assignment",
        // `NAME=value`, `name: value`, `"name": "value"`, also in JSON that
        // is itself inside a JSON string (`\"name\": \"value\"`).
        pattern: concat!(
            r"(?i)(?P<name>[A-Za-z0-9_.\-]*",
            secret_name!(),
            r"[A-Za-z0-9_.\-]*)",
            r#"(?P<q>\\?["'])?[ \t]*(?::=|=>|==?|:)[ \t]*"#,
            r#"(?:"(?P<dq>(?:[^"\\\r\n]|\\.)+)"?"#,
            r#"|\\"(?P<eq>(?:[^"\\\r\n]|\\[^"])+)(?:\\")?"#,
            r#"|'(?P<sq>[^'\r\n]+)'?"#,
            r#"|\[[ \t]*"(?P<aq>(?:[^"\\\r\n]|\\.)+)"?"#,
            r#"|(?P<bare>[^\s"'\\]+))"#
        ),
        refine: assignment,
    },
    Detector {
        kind: "env_assignment",
        // `<password>value</password>`
        pattern: concat!(
            r"(?i)<(?P<name>[A-Za-z0-9_.:\-]*",
            secret_name!(),
            r"[A-Za-z0-9_.:\-]*)(?:[ \t][^>]*)?>(?P<x>[^<]+)</"
        ),
        refine: assignment,
    },
    Detector {
        kind: "flag_value",
        // `--password value` inside one string (a shell command line).
        pattern: concat!(
            r#"(?i)(?:^|[\s"'=])"#,
            secret_flag!(),
            r#"[ \t]+(?:"(?P<dq>(?:[^"\\\r\n]|\\.)+)"?|'(?P<sq>[^'\r\n]+)'?"#,
            r#"|(?P<bare>[^\s"'\\\-][^\s"'\\]*))"#
        ),
        refine: flag,
    },
    Detector {
        kind: "flag_value",
        // The password of `curl -u user:password`, `--user=user:password`.
        pattern: concat!(
            r#"(?:^|[\s"'=])"#,
            user_flag!(),
            r#"(?:[ \t]+|=)?["']?[^\s:"'\\]*:(?P<bare>[^\s"'\\]+)"#
        ),
        refine: flag,
    },
];

/// An argv element that is a secret-bearing flag on its own: the next
/// element is its value.
pub(super) const FLAG_ALONE: &str = concat!("(?i)^", secret_flag!(), "$");

/// An argv element that is a `user:password` flag on its own.
pub(super) const USER_FLAG_ALONE: &str = concat!("^", user_flag!(), "$");
