use super::*;

#[test]
fn long_lists_are_cut_in_the_text() {
    let mut report = ReplayReport {
        changes_total: 250,
        ..ReplayReport::default()
    };
    for seq in 0..250 {
        report.changes.push(Change {
            seq,
            ts: 0,
            session_id: None,
            tool_call_id: None,
            kind: "file.open".into(),
            effect: format!("file.read /x/{seq}"),
            old_verdict: None,
            old_rule: None,
            new_verdict: "undeclared".into(),
            new_rule: None,
        });
    }
    let text = render(&report);
    assert!(text.contains("file.read /x/199"));
    assert!(!text.contains("file.read /x/200"));
    assert!(text.ends_with("… and 50 more"), "{text}");
}
