//! The async stage: batches in, the tree state published after each, the
//! sink flushed, the stage handed back when the input closes.

use super::*;

#[tokio::test]
async fn run_publishes_the_state_after_each_batch_and_returns_the_stage() {
    let mut p = processor(Capture::default());
    p.set_root(root_info(100));
    let (batches, input) = mpsc::channel(1);
    let (state_tx, mut state_rx) = watch::channel(p.state());
    let root = actor(100, 10, 1);
    let child = actor(101, 20, 100);

    let driver = async move {
        let mut seen = Vec::new();
        for batch in [
            vec![
                root.exec(1, "/usr/bin/agent", &["agent"]),
                root.fork(2, 101, 20),
            ],
            vec![loss(Counter::RingbufFull, 1, 3), root.exit(3, 0)],
            vec![],
            vec![child.exit(4, 0x80 | 11)],
        ] {
            batches.send(batch).await.expect("the stage is running");
            tokio::time::timeout(Duration::from_secs(5), state_rx.changed())
                .await
                .expect("the stage publishes the state after each batch")
                .expect("the stage is still running");
            seen.push(*state_rx.borrow_and_update());
        }
        drop(batches);
        (seen, state_rx)
    };
    let (p, (seen, state_rx)) = tokio::join!(p.run(input, state_tx), driver);

    assert_eq!(
        seen,
        vec![
            state(false, 2),
            state(true, 1),
            state(true, 1),
            state(true, 0)
        ]
    );
    // The sender is dropped with the stage; the last value stays readable.
    assert_eq!(*state_rx.borrow(), state(true, 0));

    let stats = p.stats();
    let by_kind: BTreeMap<&'static str, u64> = [
        ("process.exec", 1),
        ("process.exit", 2),
        ("process.fork", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(stats.events_by_kind, by_kind);
    assert_eq!(stats.lost(), 3);
    assert_eq!(stats.sink_errors, 0);
    assert_eq!(p.table().live_count(), 0);
    assert_eq!(p.table().seen_count(), 2);
    let (_, _, sink) = p.into_parts();
    assert_eq!(sink.seqs(), vec![1, 2, 3, 4]);
    assert_eq!(sink.losses.len(), 1);
    // At least one flush per batch, and one when the channel closes; the
    // 100 ms tick adds one whenever it fires in between.
    assert!(sink.flushes >= 5, "{} flushes", sink.flushes);
}

#[tokio::test]
async fn run_counts_flush_errors_and_keeps_going() {
    let p = processor(Capture {
        fail_flush: true,
        ..Capture::default()
    });
    let (batches, input) = mpsc::channel(4);
    let (state_tx, state_rx) = watch::channel(TreeState::default());
    let a = actor(100, 10, 1);
    batches
        .send(vec![a.fork(1, 101, 20)])
        .await
        .expect("queued");
    batches.send(vec![a.exit(2, 0)]).await.expect("queued");
    drop(batches);

    let p = p.run(input, state_tx).await;
    assert_eq!(*state_rx.borrow(), state(false, 1));
    // Two batch flushes and the final one failed; the events were written.
    assert_eq!(p.stats().sink_errors, 3);
    assert_eq!(p.stats().events(), 2);
    let (_, _, sink) = p.into_parts();
    assert_eq!(sink.seqs(), vec![1, 2]);
    assert_eq!(sink.flushes, 3);
}

#[tokio::test]
async fn run_on_a_closed_empty_channel_flushes_once_and_returns() {
    let mut p = processor(Capture::default());
    p.set_root(root_info(7));
    let (batches, input) = mpsc::channel::<Vec<Record>>(1);
    drop(batches);
    let (state_tx, state_rx) = watch::channel(p.state());
    let p = p.run(input, state_tx).await;
    assert_eq!(*state_rx.borrow(), state(false, 1));
    assert_eq!(p.stats(), &Stats::default());
    let (_, _, sink) = p.into_parts();
    assert_eq!(sink.flushes, 1);
    assert!(sink.events.is_empty());
}
