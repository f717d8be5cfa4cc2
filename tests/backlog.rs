//! A node replaying its queue after a partition: its old reports, newest first,
//! after a long run of its in-order ones (issue 22's third attack, scaled down).
//! They are stored as fast as in-order ones would be (the analysis takes an old
//! receipt in O(log n); `cargo bench --bench attacks` prints the rates), no
//! transaction holds more than [`MAX_COMMIT_REPORTS`], another node's reports are
//! committed between the pieces of one long call, and nothing is lost.

mod support;

use perfstats::Event;
use perfstats::pb::PerformanceData;
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::store::{Backend, MAX_COMMIT_REPORTS};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tonic::transport::Channel;

const IN_ORDER: usize = 100_000;
const OLD_IN_CALLS: usize = 10_000;
const ONE_CALL: usize = 30_000;
const CALL: usize = 1_000;
const NOW: i64 = 1_800_000_000_000_000_000;
const DAY: i64 = 86_400_000_000_000;

fn receipt(time: i64, n: usize) -> PerformanceData {
    PerformanceData {
        time_unix_nano: time,
        sender: "replaying-node".into(),
        event: Event::NewBlockReceived as i32,
        message: format!("block {n} received"),
        report_id: format!("replay-{n}"),
    }
}

async fn send(
    stub: &mut PerformanceStatsClient<Channel>,
    reports: Vec<PerformanceData>,
    call: usize,
) {
    let mut reports = reports.into_iter().peekable();
    while reports.peek().is_some() {
        let batch: Vec<_> = reports.by_ref().take(call).collect();
        let len = batch.len() as u64;
        let ack = support::within(
            Duration::from_secs(60),
            "a ReportStats call of the backlog",
            stub.report_stats(tokio_stream::iter(batch)),
        )
        .await
        .unwrap();
        assert_eq!(
            ack.get_ref().accepted,
            len,
            "every report of the call stored"
        );
        assert_eq!(ack.get_ref().duplicates, 0);
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_backlog_is_stored_in_pieces_beside_other_writers() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = perfstats::server::Options::default();
    let log = support::CommitLog::new(options.metrics.clone());
    let server = support::serve_observed(
        listener,
        Backend::Sqlite(dir.path().join("backlog.db")),
        options,
        log.clone(),
    )
    .await;
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let mut stub = PerformanceStatsClient::new(channel.clone());
    let fill = (0..IN_ORDER).map(|n| receipt(NOW - (IN_ORDER - n) as i64 * 1_000_000, n));
    send(&mut stub, fill.collect(), CALL).await;

    // Another node reports one at a time throughout on a connection of its own,
    // timing its ACKs.
    let stop = Arc::new(AtomicBool::new(false));
    let own = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let honest = tokio::spawn({
        let (mut stub, stop) = (PerformanceStatsClient::new(own), stop.clone());
        async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = latencies.len();
                let report = PerformanceData {
                    time_unix_nano: NOW + n as i64,
                    sender: "honest-node".into(),
                    event: Event::TransactionReceived as i32,
                    message: format!("transaction {n}"),
                    report_id: format!("honest-{n}"),
                };
                let call = Instant::now();
                support::within(
                    Duration::from_secs(30),
                    "an honest ACK",
                    stub.report_stat(report),
                )
                .await
                .unwrap();
                latencies.push(call.elapsed());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies
        }
    });
    // The backlog: a day older than the run, newest first.
    let old = |k: usize| receipt(NOW - DAY - k as i64 * 1_000_000, IN_ORDER + k);
    send(&mut stub, (0..OLD_IN_CALLS).map(old).collect(), CALL).await;
    let before_long_call = log.commits().len();
    let long_call = (OLD_IN_CALLS..OLD_IN_CALLS + ONE_CALL).map(old).collect();
    send(&mut stub, long_call, ONE_CALL).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = support::within(Duration::from_secs(30), "the honest client", honest)
        .await
        .unwrap();
    latencies.sort();

    // Nothing lost: the run holds every report, the analysis counts them all.
    let honest_reports = latencies.len();
    let total = IN_ORDER + OLD_IN_CALLS + ONE_CALL + honest_reports;
    let runs = server.get_json("/api/runs").await;
    assert_eq!(runs[0]["reports"], total as u64, "{runs}");
    let run = runs[0]["id"].as_u64().unwrap();
    let analysis = server.store.analysis(run).await.unwrap();
    let nodes = analysis.read().unwrap().nodes();
    let counts: Vec<(&str, u64)> = nodes
        .iter()
        .map(|node| (node.sender.as_str(), node.reports))
        .collect();
    let replayed = (IN_ORDER + OLD_IN_CALLS + ONE_CALL) as u64;
    assert_eq!(
        counts,
        [
            ("honest-node", honest_reports as u64),
            ("replaying-node", replayed)
        ]
    );

    // No transaction held more than its budget; the long call went in pieces,
    // with the other node's reports committed between them.
    let commits = log.commits();
    let sizes = commits.iter().map(|commit| commit.values().sum::<usize>());
    let largest = sizes.max().unwrap();
    assert!(
        largest <= MAX_COMMIT_REPORTS,
        "a commit of {largest} reports"
    );
    let pieces: Vec<usize> = (before_long_call..commits.len())
        .filter(|index| commits[*index].contains_key("replaying-node"))
        .collect();
    assert!(
        pieces.len() >= ONE_CALL.div_ceil(MAX_COMMIT_REPORTS),
        "the long call in {} commits",
        pieces.len()
    );
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    let between = (first..last)
        .filter(|index| commits[*index].contains_key("honest-node"))
        .count();
    println!(
        "honest client: {honest_reports} ACKs, p50 {:?}, p99 {:?}, max {:?}; \
         {between} of its commits between the long call's {} pieces",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        pieces.len()
    );
    assert!(between > 0, "the other node waited for the whole long call");
    // Stored one report at a time into one sorted vector, the long call took
    // over a second here, and the other node waited for all of it.
    let worst = percentile(&latencies, 1.0);
    assert!(
        worst < Duration::from_millis(300),
        "the other node waited {worst:?} for an ACK"
    );
    server.stop().await;
}
