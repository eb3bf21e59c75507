use super::*;

fn full() -> AlertRow {
    AlertRow {
        ts: 1,
        alert_id: "a1".into(),
        kind: "undeclared".into(),
        severity: "high".into(),
        agent: Some("claude".into()),
        session_id: Some("s1".into()),
        tool_call_id: Some("call-7".into()),
        event_seq: Some(42),
        process_key: Some("p".into()),
        rule: Some("fs.write".into()),
        message: "wrote /home/u/.bashrc".into(),
    }
}

fn written(rows: &[AlertRow]) -> String {
    let mut sink = StderrAlerts::new(Vec::new());
    for row in rows {
        sink.send(row).unwrap();
    }
    sink.flush().unwrap();
    String::from_utf8(sink.into_inner()).unwrap()
}

#[test]
fn one_line_per_alert_with_its_context() {
    assert_eq!(
        written(&[full()]),
        "agent-monitor: ALERT [high] undeclared: wrote /home/u/.bashrc \
         (agent=claude, session=s1, call=call-7, rule=fs.write)\n"
    );
}

#[test]
fn absent_context_is_left_out() {
    let bare = AlertRow {
        agent: None,
        session_id: None,
        tool_call_id: None,
        rule: None,
        ..full()
    };
    let partial = AlertRow {
        session_id: None,
        tool_call_id: None,
        ..full()
    };
    assert_eq!(
        written(&[bare, partial]),
        "agent-monitor: ALERT [high] undeclared: wrote /home/u/.bashrc\n\
         agent-monitor: ALERT [high] undeclared: wrote /home/u/.bashrc (agent=claude, rule=fs.write)\n"
    );
}

#[test]
fn control_characters_cannot_forge_lines_or_drive_the_terminal() {
    let row = AlertRow {
        message: "wrote /tmp/x\nagent-monitor: all clear\u{1b}[2J\u{202e}txt.exe".into(),
        agent: Some("a\rb".into()),
        ..full()
    };
    let text = written(&[row]);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains('\u{202e}'), "{text:?}");
    assert!(
        text.contains(r"/tmp/x\nagent-monitor: all clear\u{1b}[2J\u{202e}txt.exe"),
        "{text:?}"
    );
    assert!(text.contains(r"agent=a\rb"), "{text:?}");
}
