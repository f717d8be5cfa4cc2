//! The non-blocking `Reporter`.

mod support;

use perfstats::Event;
use perfstats::client::{ReportError, Reporter};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_reports_queue_at_once_and_flush_delivers_them_all() {
    let server = support::spawn_server().await;
    let reporter = Reporter::spawn(server.client(), "1f", 10_000);
    for i in 0..10_000 {
        reporter
            .report(Event::TransactionReceived, format!("tx {i}"))
            .unwrap();
    }
    let stats = reporter
        .flush(Duration::from_secs(30))
        .await
        .expect("flushed in time");
    assert_eq!(
        (stats.accepted, stats.delivered, stats.dropped, stats.failed),
        (10_000, 10_000, 0, 0)
    );
    assert_eq!(server.store.current_run().reports, 10_000);
    let page = server.get_json("/api/reports?limit=1&after=9999").await;
    assert_eq!(page["reports"][0]["message"], "tx 9999");
    server.stop().await;
}

#[tokio::test]
async fn invalid_reports_are_refused_at_once_and_a_full_queue_counts_drops() {
    let server = support::spawn_server().await;
    let reporter = Reporter::spawn(server.client(), "1f", 2);
    assert!(matches!(
        reporter.report(Event::NewBlockReceived, ""),
        Err(ReportError::Invalid(_))
    ));
    assert!(matches!(
        reporter.report(Event::Unspecified, "x"),
        Err(ReportError::Invalid(_))
    ));
    let outcomes: Vec<_> = (0..50)
        .map(|i| reporter.report(Event::NewBlockReceived, format!("b{i}")))
        .collect();
    let dropped = outcomes
        .iter()
        .filter(|outcome| **outcome == Err(ReportError::QueueFull))
        .count();
    let stats = reporter.flush(Duration::from_secs(10)).await.unwrap();
    assert_eq!(stats.dropped as usize, dropped);
    assert_eq!(stats.accepted + stats.dropped, 50);
    assert!(
        stats.accepted >= 2,
        "the queue took what it had room for: {stats:?}"
    );
    // Everything the queue took was delivered: a Reporter failing its deliveries
    // would show here, not only in the server's count.
    assert_eq!(
        (stats.delivered, stats.failed),
        (stats.accepted, 0),
        "{stats:?}"
    );
    assert!(
        stats.dropped >= 48 - 2,
        "at most 2 undelivered at once: {stats:?}"
    );
    assert_eq!(server.store.current_run().reports, stats.delivered);
    server.stop().await;
}
