//! End-to-end: under the default `redact` policy no secret in an agent's
//! argv reaches any file the monitor writes, checked on the raw bytes. A
//! `full` run of the same command shows that the check would find them.
//! Run as root (`cargo xtask test`).

#[path = "support/mod.rs"]
mod support;

use std::{
    fs,
    path::{Path, PathBuf},
};

use support::{duckdb, monitor_command};

/// `n` random letters and digits. Every secret is drawn fresh: a repeated
/// pattern would let zstd compress a secret into back-references, and the
/// raw-bytes check could then miss it.
fn fake(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    agent_monitor::random::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// One secret of each detector kind: (kind, the argv element, the secret
/// part of it that must not be written).
fn secrets() -> Vec<(&'static str, String, String)> {
    let whole = |kind, secret: String| (kind, secret.clone(), secret);
    let aws_secret = format!("{}/{}+", fake(20), fake(18));
    let bearer = fake(40);
    let password = fake(16);
    let env = fake(18);
    let pem_line = fake(64);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{pem_line}\n{}\n-----END PRIVATE KEY-----",
        fake(40)
    );
    let jwt_claims = format!("eyJ{}", fake(40));
    vec![
        whole(
            "aws_access_key",
            format!("AKIA{}", fake(16).to_ascii_uppercase()),
        ),
        (
            "aws_secret_key",
            format!("AWS_SECRET_ACCESS_KEY={aws_secret}"),
            aws_secret,
        ),
        whole("github_token", format!("ghp_{}", fake(36))),
        whole("gitlab_token", format!("glpat-{}", fake(20))),
        whole("slack_token", format!("xoxb-1234567890-{}", fake(24))),
        whole(
            "anthropic_key",
            format!("sk-ant-api03-{}-{}", fake(40), fake(20)),
        ),
        whole("openai_key", format!("sk-{}", fake(48))),
        whole("google_api_key", format!("AIza{}", fake(35))),
        whole("stripe_key", format!("sk_live_{}", fake(24))),
        (
            "jwt",
            format!("eyJhbGciOiJIUzI1NiJ9.{jwt_claims}.{}", fake(43)),
            jwt_claims,
        ),
        (
            "bearer_token",
            format!("Authorization: Bearer {bearer}"),
            bearer,
        ),
        ("private_key", pem, pem_line),
        (
            "url_password",
            format!("https://deploy:{password}@example.com/repo"),
            password,
        ),
        ("env_assignment", format!("DB_PASSWORD={env}"), env),
    ]
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The bytes of every page of a Parquet file, decompressed: what the file
/// holds below any decoding. Compression can hide a string from a grep of
/// the file itself; it cannot hide it from this.
fn parquet_pages(path: &Path) -> Vec<Vec<u8>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(fs::File::open(path).unwrap()).unwrap();
    let mut pages = Vec::new();
    for group in 0..reader.num_row_groups() {
        let group = reader.get_row_group(group).unwrap();
        for column in 0..group.num_columns() {
            for page in group.get_column_page_reader(column).unwrap() {
                pages.push(page.unwrap().buffer().to_vec());
            }
        }
    }
    pages
}

/// The files that hold `needle`: in their raw bytes, or for Parquet files
/// in their decompressed pages.
fn files_containing(files: &[PathBuf], needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| {
            contains(&fs::read(f).unwrap(), needle)
                || (f.extension().is_some_and(|e| e == "parquet")
                    && parquet_pages(f).iter().any(|p| contains(p, needle)))
        })
        .cloned()
        .collect()
}

/// Runs `/bin/true` with every secret as an argument under `policy`, and
/// returns the written files: the JSONL and everything in the store.
fn run_with(policy: &str, dir: &Path, args: &[String]) -> (PathBuf, Vec<PathBuf>) {
    let store = dir.join(format!("evidence-{policy}"));
    let events = dir.join(format!("events-{policy}.jsonl"));
    let out = monitor_command()
        .args([
            "run",
            "--agent",
            "secrets",
            "--capture",
            policy,
            "--capture-key",
        ])
        .arg(dir.join("capture.key"))
        .arg("--events")
        .arg(&events)
        .arg("--evidence")
        .arg(&store)
        .args(["--", "/bin/true"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = vec![events];
    files_under(&store, &mut files);
    assert!(files.len() > 4, "JSONL, chain log and tables: {files:?}");
    (store, files)
}

#[test]
fn redact_keeps_every_kind_of_secret_off_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets();
    let args: Vec<String> = secrets.iter().map(|(_, arg, _)| arg.clone()).collect();

    // The control: kept in full, each secret is found in the JSONL and in
    // the Parquet files, so the check below can see what it looks for.
    let (_, files) = run_with("full", dir.path(), &args);
    for (kind, _, secret) in &secrets {
        let found = files_containing(&files, secret);
        assert!(
            found
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "parquet")),
            "{kind}: the check must be able to see a secret in Parquet; found in {found:?}"
        );
    }

    let (store, files) = run_with("redact", dir.path(), &args);
    for (kind, _, secret) in &secrets {
        assert_eq!(
            files_containing(&files, secret),
            Vec::<PathBuf>::new(),
            "{kind}: the secret reached the disk"
        );
    }
    // Each secret left a tag of its kind instead, in the events table, the
    // processes table and the session's task.
    let s = store.display();
    let argv = duckdb(&format!(
        "select list_aggregate(argv, 'string_agg', ' ') from read_parquet('{s}/events/**/*.parquet') where kind = 'process.exec'"
    ));
    let argv = argv[0][0].as_str().unwrap().to_string();
    for (kind, _, _) in &secrets {
        assert!(
            argv.contains(&format!("[REDACTED:{kind}:")),
            "{kind} is not tagged in {argv}"
        );
    }
    let tagged = duckdb(&format!(
        "select (select count(*) from read_parquet('{s}/processes/**/*.parquet') where list_aggregate(argv, 'string_agg', ' ') like '%[REDACTED:github_token:%'), \
                (select count(*) from read_parquet('{s}/sessions/**/*.parquet') where task like '%[REDACTED:github_token:%')"
    ));
    assert_eq!(tagged, vec![serde_json::json!([1, 1])]);
}

#[test]
fn hash_and_none_keep_no_argument_text() {
    let dir = tempfile::tempdir().unwrap();
    let plain = format!("plain-{}", fake(12));
    let args = vec![plain.clone()];
    for policy in ["hash", "none"] {
        let (store, files) = run_with(policy, dir.path(), &args);
        assert_eq!(
            files_containing(&files, &plain),
            Vec::<PathBuf>::new(),
            "{policy}"
        );
        let argv = duckdb(&format!(
            "select argv from read_parquet('{}/processes/**/*.parquet')",
            store.display()
        ));
        match policy {
            "hash" => {
                let items = argv[0][0].as_array().unwrap();
                assert_eq!(items.len(), 2, "{argv:?}");
                assert!(
                    items
                        .iter()
                        .all(|a| a.as_str().unwrap().starts_with("[HASH:hmac-sha256:")),
                    "{argv:?}"
                );
            }
            _ => assert_eq!(argv, vec![serde_json::json!([[]])]),
        }
    }
}
