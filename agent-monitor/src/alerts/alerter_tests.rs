use std::{
    io,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::*;
use crate::alerts::WebhookConfig;

/// 2026-11-26T22:05:26Z in Unix-epoch nanoseconds.
const WALL: WallNs = 1_795_730_726_000_000_000;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn alert(kind: &str, severity: &str, message: &str) -> AlertRow {
    AlertRow {
        ts: WALL,
        alert_id: format!("id-{kind}-{message}"),
        kind: kind.into(),
        severity: severity.into(),
        agent: Some("claude".into()),
        session_id: Some("s1".into()),
        tool_call_id: Some("call-1".into()),
        rule: Some("r1".into()),
        message: message.into(),
        ..AlertRow::default()
    }
}

fn medium(message: &str) -> AlertRow {
    alert("undeclared", "medium", message)
}

/// Keeps what it is sent, for the test to look at.
#[derive(Clone, Default)]
struct Recorder {
    rows: Arc<Mutex<Vec<AlertRow>>>,
    flushes: Arc<Mutex<u32>>,
}

impl Recorder {
    fn kinds(&self) -> Vec<String> {
        self.rows
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.kind.clone())
            .collect()
    }
}

impl AlertSink for Recorder {
    fn send(&mut self, row: &AlertRow) -> io::Result<()> {
        self.rows.lock().unwrap().push(row.clone());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        *self.flushes.lock().unwrap() += 1;
        Ok(())
    }
    fn name(&self) -> String {
        "recorder".into()
    }
}

/// Fails every call.
struct Broken;

impl AlertSink for Broken {
    fn send(&mut self, _row: &AlertRow) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("still on fire"))
    }
    fn name(&self) -> String {
        "broken".into()
    }
}

fn quiet() -> AlertConfig {
    AlertConfig {
        stderr: false,
        ..AlertConfig::default()
    }
}

/// An alerter feeding a recorder, its wall clock anchored at `t0` = WALL.
fn alerter(config: AlertConfig) -> (Alerter, Recorder, Instant) {
    let recorder = Recorder::default();
    let mut alerter = Alerter::new(config, vec![Box::new(recorder.clone())]);
    let t0 = Instant::now();
    alerter.anchor_wall_clock(t0, WALL);
    (alerter, recorder, t0)
}

#[test]
fn a_repeat_within_the_window_is_a_duplicate() {
    let (mut alerter, recorder, t0) = alerter(quiet());
    let row = medium("wrote /etc/hosts");
    assert_eq!(alerter.raise(&row, t0), Admission::Sent);
    assert_eq!(alerter.raise(&row, t0 + secs(1)), Admission::Duplicate);
    assert_eq!(alerter.raise(&row, t0 + secs(59)), Admission::Duplicate);
    // Another tool call, same alert: still a repeat.
    let other_call = AlertRow {
        tool_call_id: Some("call-2".into()),
        ..row.clone()
    };
    assert_eq!(
        alerter.raise(&other_call, t0 + secs(30)),
        Admission::Duplicate
    );
    assert_eq!(recorder.rows.lock().unwrap().len(), 1);
    let stats = alerter.stats();
    assert_eq!((stats.sent, stats.duplicates), (1, 3));
}

#[test]
fn after_the_window_it_is_sent_again() {
    let (mut alerter, recorder, t0) = alerter(quiet());
    let row = medium("wrote /etc/hosts");
    assert_eq!(alerter.raise(&row, t0), Admission::Sent);
    assert_eq!(alerter.raise(&row, t0 + secs(30)), Admission::Duplicate);
    // The window runs from the last send, not the last repeat.
    assert_eq!(alerter.raise(&row, t0 + secs(60)), Admission::Sent);
    assert_eq!(alerter.raise(&row, t0 + secs(61)), Admission::Duplicate);
    assert_eq!(recorder.rows.lock().unwrap().len(), 2);
}

#[test]
fn different_keys_are_not_duplicates() {
    let (mut alerter, recorder, t0) = alerter(quiet());
    let base = medium("wrote /etc/hosts");
    let rows = [
        base.clone(),
        AlertRow {
            kind: "sensitive".into(),
            ..base.clone()
        },
        AlertRow {
            agent: Some("codex".into()),
            ..base.clone()
        },
        AlertRow {
            session_id: Some("s2".into()),
            ..base.clone()
        },
        AlertRow {
            rule: Some("r2".into()),
            ..base.clone()
        },
        AlertRow {
            message: "wrote /etc/passwd".into(),
            ..base.clone()
        },
    ];
    for row in &rows {
        assert_eq!(alerter.raise(row, t0), Admission::Sent, "{row:?}");
    }
    assert_eq!(recorder.rows.lock().unwrap().len(), rows.len());
}

#[test]
fn the_rate_limit_allows_a_burst_then_refills() {
    let config = AlertConfig {
        rate_per_sec: 10.0,
        burst: 5,
        ..quiet()
    };
    let (mut alerter, recorder, t0) = alerter(config);
    for i in 0..5 {
        assert_eq!(
            alerter.raise(&medium(&format!("burst {i}")), t0),
            Admission::Sent
        );
    }
    assert_eq!(alerter.raise(&medium("over"), t0), Admission::RateLimited);
    let later = t0 + Duration::from_millis(100);
    assert_eq!(alerter.raise(&medium("refilled"), later), Admission::Sent);
    assert_eq!(
        alerter.raise(&medium("over again"), later),
        Admission::RateLimited
    );
    // A rate-limited alert reached nobody, so its repeat is not a duplicate.
    let much_later = t0 + secs(1);
    assert_eq!(alerter.raise(&medium("over"), much_later), Admission::Sent);
    assert_eq!(recorder.rows.lock().unwrap().len(), 7);
    let stats = alerter.stats();
    assert_eq!(
        (stats.sent, stats.rate_limited, stats.duplicates),
        (7, 2, 0)
    );
}

#[test]
fn high_and_critical_alerts_are_never_rate_limited_but_are_deduplicated() {
    let config = AlertConfig {
        rate_per_sec: 0.0,
        burst: 1,
        ..quiet()
    };
    let (mut alerter, _, t0) = alerter(config);
    assert_eq!(alerter.raise(&medium("first"), t0), Admission::Sent);
    assert_eq!(alerter.raise(&medium("second"), t0), Admission::RateLimited);
    for i in 0..200 {
        let row = alert("tampering", "critical", &format!("probe {i} detached"));
        assert_eq!(alerter.raise(&row, t0), Admission::Sent, "{i}");
    }
    let sensitive = alert("sensitive", "high", "read ~/.ssh/id_rsa");
    assert_eq!(
        alerter.raise(&sensitive, t0),
        Admission::Sent,
        "high is exempt too"
    );
    let repeat = alert("tampering", "critical", "probe 0 detached");
    assert_eq!(alerter.raise(&repeat, t0 + secs(1)), Admission::Duplicate);
    // Critical alerts did not use up the budget either.
    assert_eq!(alerter.raise(&medium("third"), t0), Admission::RateLimited);
    let stats = alerter.stats();
    assert_eq!(stats.sent_by_kind["tampering"], 200);
    assert_eq!(stats.sent_by_kind["undeclared"], 1);
}

#[test]
fn the_report_counts_what_was_held_back_by_kind() {
    let config = AlertConfig {
        rate_per_sec: 1.0,
        burst: 2,
        ..quiet()
    };
    let (mut alerter, recorder, t0) = alerter(config);
    let raised = [
        (medium("u1"), Admission::Sent),
        (medium("u2"), Admission::Sent),
        (medium("u3"), Admission::RateLimited),
        (medium("u4"), Admission::RateLimited),
        (medium("u5"), Admission::RateLimited),
        (alert("sensitive", "medium", "s1"), Admission::RateLimited),
        (
            alert("denied_attempted", "medium", "d1"),
            Admission::RateLimited,
        ),
        (medium("u1"), Admission::Duplicate),
        (alert("tampering", "critical", "c1"), Admission::Sent),
        (alert("tampering", "critical", "c1"), Admission::Duplicate),
    ];
    for (row, expected) in &raised {
        assert_eq!(alerter.raise(row, t0), *expected, "{row:?}");
    }
    let (report, stats) = alerter.finish(t0 + Duration::from_millis(500));
    let report = report.expect("something was held back");
    assert_eq!(report.kind, "alerts_suppressed");
    assert_eq!(report.severity, "low");
    assert_eq!(report.ts, WALL + 500_000_000);
    assert_eq!(report.agent, None);
    assert!(!report.alert_id.is_empty());
    assert_eq!(
        report.message,
        "2 duplicate and 5 rate-limited alerts suppressed since 2026-11-26T22:05:26.000000000Z; \
         top: undeclared ×4, denied_attempted ×1, sensitive ×1, and 1 other kind"
    );
    // The report went to the sinks too, past the (exhausted) rate limit.
    assert_eq!(
        recorder.kinds(),
        ["undeclared", "undeclared", "tampering", "alerts_suppressed"]
    );
    assert_eq!(stats.sent, 3);
    assert_eq!(stats.duplicates, 2);
    assert_eq!(stats.rate_limited, 5);
    assert_eq!(stats.reports, 1);
    assert_eq!(*recorder.flushes.lock().unwrap(), 1);
    assert_eq!(
        stats.sinks,
        [SinkStats {
            name: "recorder".into(),
            errors: 0,
            lost: 0
        }]
    );
}

#[test]
fn reports_come_at_most_once_per_period_and_only_when_needed() {
    let (mut alerter, recorder, t0) = alerter(quiet());
    let row = medium("wrote /etc/hosts");
    assert_eq!(alerter.tick(t0 + secs(100)), None, "nothing held back");
    assert_eq!(alerter.raise(&row, t0), Admission::Sent);
    assert_eq!(alerter.raise(&row, t0 + secs(1)), Admission::Duplicate);
    assert_eq!(alerter.tick(t0 + secs(5)), None, "too early");
    let first = alerter
        .tick(t0 + secs(11))
        .expect("due 10 s after the first");
    assert_eq!(
        first.message,
        "1 duplicate and 0 rate-limited alerts suppressed since 2026-11-26T22:05:27.000000000Z; \
         top: undeclared ×1"
    );
    assert_eq!(first.ts, WALL + 11_000_000_000);
    assert_eq!(alerter.tick(t0 + secs(12)), None, "nothing new");
    assert_eq!(alerter.raise(&row, t0 + secs(13)), Admission::Duplicate);
    assert_eq!(alerter.raise(&row, t0 + secs(14)), Admission::Duplicate);
    assert_eq!(
        alerter.tick(t0 + secs(15)),
        None,
        "the last report is 4 s old"
    );
    let second = alerter
        .tick(t0 + secs(21))
        .expect("due 10 s after the last");
    assert_eq!(
        second.message,
        "2 duplicate and 0 rate-limited alerts suppressed since 2026-11-26T22:05:37.000000000Z; \
         top: undeclared ×2"
    );
    assert_ne!(first.alert_id, second.alert_id);
    let (last, stats) = alerter.finish(t0 + secs(22));
    assert_eq!(last, None, "everything was reported");
    assert_eq!(stats.reports, 2);
    assert_eq!(
        recorder.kinds(),
        ["undeclared", "alerts_suppressed", "alerts_suppressed"]
    );
}

#[test]
fn the_dedup_table_is_bounded() {
    let config = AlertConfig {
        max_keys: 2,
        ..quiet()
    };
    let (mut alerter, _, t0) = alerter(config);
    for message in ["a", "b", "c"] {
        assert_eq!(alerter.raise(&medium(message), t0), Admission::Sent);
    }
    assert_eq!(alerter.stats().evicted_keys, 1);
    // "a" was forgotten, so its repeat goes out; "c" is still known.
    assert_eq!(
        alerter.raise(&medium("c"), t0 + secs(1)),
        Admission::Duplicate
    );
    assert_eq!(alerter.raise(&medium("a"), t0 + secs(1)), Admission::Sent);
    assert_eq!(alerter.stats().evicted_keys, 2);
}

#[test]
fn a_failing_sink_does_not_stop_the_others() {
    let recorder = Recorder::default();
    let mut alerter = Alerter::new(quiet(), vec![Box::new(Broken), Box::new(recorder.clone())]);
    let t0 = Instant::now();
    for message in ["a", "b", "c"] {
        assert_eq!(alerter.raise(&medium(message), t0), Admission::Sent);
    }
    assert_eq!(recorder.rows.lock().unwrap().len(), 3);
    let (_, stats) = alerter.finish(t0);
    assert_eq!(stats.sent, 3);
    assert_eq!(
        stats.sinks,
        [
            SinkStats {
                name: "broken".into(),
                errors: 4, // three sends and the flush
                lost: 0
            },
            SinkStats {
                name: "recorder".into(),
                errors: 0,
                lost: 0
            },
        ]
    );
}

#[test]
fn after_finish_no_sink_is_fed() {
    let (mut alerter, recorder, t0) = alerter(quiet());
    alerter.finish(t0);
    assert_eq!(alerter.raise(&medium("late"), t0), Admission::Sent);
    assert!(recorder.rows.lock().unwrap().is_empty());
}

#[test]
fn from_config_opens_the_sinks_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    let config = AlertConfig {
        jsonl: Some(path.clone()),
        ..quiet()
    };
    let mut alerter = Alerter::from_config(config).unwrap();
    let t0 = Instant::now();
    assert_eq!(alerter.raise(&medium("a"), t0), Admission::Sent);
    let (_, stats) = alerter.finish(t0);
    assert_eq!(stats.sinks.len(), 1);
    assert_eq!(stats.sinks[0].name, format!("jsonl {}", path.display()));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
}

fn config_error(config: AlertConfig) -> String {
    match Alerter::from_config(config) {
        Ok(_) => panic!("the config was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn from_config_names_what_is_wrong() {
    let missing = PathBuf::from("/nonexistent-dir/alerts.jsonl");
    let error = config_error(AlertConfig {
        jsonl: Some(missing),
        ..quiet()
    });
    assert!(error.contains("/nonexistent-dir/alerts.jsonl"), "{error}");

    for (url, says) in [
        ("not a url", "relative URL"),
        ("ftp://example.com/hook", "http or https"),
        ("http://", "empty host"),
    ] {
        let error = config_error(AlertConfig {
            webhook: Some(WebhookConfig::new(url)),
            ..quiet()
        });
        assert!(
            error.contains(url) && error.contains(says),
            "{url}: {error}"
        );
    }

    let mut webhook = WebhookConfig::new("https://hooks.example.com/T000/secret-token");
    webhook.headers = vec![("Bad Header".into(), "x".into())];
    let error = config_error(AlertConfig {
        webhook: Some(webhook),
        ..quiet()
    });
    assert!(error.contains("\"Bad Header\""), "{error}");
    assert!(error.contains("https://hooks.example.com"), "{error}");
    assert!(
        !error.contains("secret-token"),
        "the path is a secret: {error}"
    );

    let error = config_error(AlertConfig {
        burst: 0,
        ..quiet()
    });
    assert!(error.contains("burst"), "{error}");
    let error = config_error(AlertConfig {
        rate_per_sec: f64::NAN,
        ..quiet()
    });
    assert!(error.contains("rate_per_sec"), "{error}");
}

#[test]
fn a_bad_webhook_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.jsonl");
    config_error(AlertConfig {
        jsonl: Some(path.clone()),
        webhook: Some(WebhookConfig::new("gopher://x")),
        ..quiet()
    });
    assert!(!path.exists());
}

#[test]
fn the_alerter_can_move_to_its_own_thread() {
    fn send<T: Send>() {}
    send::<Alerter>();
}
