//! An ACK means "counted everywhere": a client that reads the API right after its
//! ACK sees its report in `/api/runs`, `/api/nodes`, `/api/reports` and `/metrics`.
//! On SQLite the committer is its own thread, so this only holds because the store
//! updates counts, analysis and metrics before it answers anyone.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// The current run's `reports` in `/api/runs`.
async fn current_count(http: &reqwest::Client, url: &str) -> u64 {
    let runs: Vec<serde_json::Value> = http
        .get(format!("{url}/api/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let current = runs
        .iter()
        .find(|run| run["current"] == true)
        .expect("a current run");
    current["reports"].as_u64().unwrap()
}

/// `sender`'s report count in `/api/nodes` (0 when it is not listed yet; the
/// test has far fewer senders than one page holds).
async fn node_count(http: &reqwest::Client, url: &str, sender: &str) -> u64 {
    let page: serde_json::Value = http
        .get(format!("{url}/api/nodes?order=sender&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|node| node["sender"] == sender)
        .map_or(0, |node| node["reports"].as_u64().unwrap())
}

/// The sum of `perfstats_reports_stored_total` over events in `/metrics`.
async fn metrics_stored(url: &str) -> u64 {
    support::metrics_text(url, None)
        .await
        .lines()
        .filter(|line| line.starts_with("perfstats_reports_stored_total{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Eight clients each send 200 reports one after another; after each ACK the client
/// reads the API and must find at least every report ACKed so far (its own and the
/// others' ACKs it knows of) counted, and its own node's count exactly its own ACKs.
/// Meanwhile two clients send streams of 2,500 reports: a unary report queued in the
/// same commit as such a stream is answered while the committer still builds the
/// stream's 2,500 receipts (about a millisecond), so a store that answered before it
/// updated its counts (the old order) shows a stale count well within that window.
/// Any count below the ACKs fails: that is where the regression shows. And the
/// overlap this relies on is checked, not assumed: unary ACKs arrived while streams
/// were in flight, and some commits held a stream and unary reports together (the
/// store's commits, recorded on their way to the metrics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_each_ack_the_api_counts_the_report_on_sqlite() {
    const TASKS: usize = 8;
    const EACH: u64 = 200;
    const BATCH: usize = 2_500;
    const MAX_BATCHES: usize = 60;
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = perfstats::server::Options::default();
    let log = support::CommitLog::new(options.metrics.clone());
    let server = support::serve_observed(
        listener,
        Backend::Sqlite(dir.path().join("acks.db")),
        options,
        log.clone(),
    )
    .await;
    let url = server.url();
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let mut batchers = Vec::new();
    for b in 0..2 {
        let (url, acked, done) = (url.clone(), acked.clone(), done.clone());
        batchers.push(tokio::spawn(async move {
            let client = Client::connect_lazy(&url)
                .unwrap()
                .with_policy(RetryPolicy::never());
            let http = support::http();
            let mut calls = Vec::new();
            while !done.load(Ordering::SeqCst) && calls.len() < MAX_BATCHES {
                let batch = (0..BATCH)
                    .map(|i| {
                        PerformanceData::new(
                            0,
                            format!("bulk{b}"),
                            Event::TransactionReceived,
                            format!("tx {i}"),
                        )
                    })
                    .collect();
                let started = Instant::now();
                client.send_batch_with_retries(batch).await.unwrap();
                calls.push((started, Instant::now()));
                let known = acked.fetch_add(BATCH as u64, Ordering::SeqCst) + BATCH as u64;
                let counted = current_count(&http, &url).await;
                assert!(
                    counted >= known,
                    "after a stream's ACK: {counted} counted, {known} ACKed"
                );
            }
            calls
        }));
    }

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (url, acked) = (url.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            // Its own connection, as each node has.
            let client = Client::connect_lazy(&url)
                .unwrap()
                .with_policy(RetryPolicy::never());
            let http = support::http();
            let sender = format!("n{task}");
            let mut acks = Vec::new();
            for mine in 1..=EACH {
                let ack = client
                    .send_performance_stat(PerformanceData::new(
                        0,
                        &sender,
                        Event::NewBlockReceived,
                        format!("block {mine}"),
                    ))
                    .await
                    .unwrap();
                acks.push(Instant::now());
                // Every ACK counted in `known` arrived before the reads below start.
                let known = acked.fetch_add(1, Ordering::SeqCst) + 1;
                let counted = current_count(&http, &url).await;
                assert!(
                    counted >= known,
                    "{sender} after its ACK #{mine} (seq {}): /api/runs counts {counted}, {known} ACKed",
                    ack.seq
                );
                assert_eq!(
                    node_count(&http, &url, &sender).await,
                    mine,
                    "{sender}: /api/nodes counts every ACKed report of this node"
                );
                let page: serde_json::Value = http
                    .get(format!("{url}/api/reports?after={}&limit=1", ack.seq - 1))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(page["reports"][0]["seq"], ack.seq, "the ACKed report is readable");
                if mine % 20 == 0 {
                    let stored = metrics_stored(&url).await;
                    assert!(stored >= known, "/metrics: {stored} stored, {known} ACKed");
                }
            }
            acks
        }));
    }
    let mut unary_acks = Vec::new();
    for task in tasks {
        unary_acks.extend(
            support::within(
                Duration::from_secs(120),
                "a client's 200 reports and reads",
                task,
            )
            .await
            .unwrap(),
        );
    }
    done.store(true, Ordering::SeqCst);
    let mut streams = Vec::new();
    for batcher in batchers {
        streams.extend(
            support::within(
                Duration::from_secs(120),
                "a stream sender to finish",
                batcher,
            )
            .await
            .unwrap(),
        );
    }
    let batches = streams.len();
    let total = acked.load(Ordering::SeqCst);

    // The overlap the test exists for. Unary ACKs that came while a stream call was
    // in flight: the two kinds of call were concurrent, not one after the other.
    let during_streams = unary_acks
        .iter()
        .filter(|ack| {
            streams
                .iter()
                .any(|(start, end)| start < *ack && *ack < end)
        })
        .count();
    // Commits that stored a stream's reports and unary reports together: what the
    // stale-count window above needs. The log saw every commit /metrics counted.
    let commits = log.commits();
    let has = |commit: &BTreeMap<String, usize>, prefix: &str| {
        commit.keys().any(|sender| sender.starts_with(prefix))
    };
    let shared = commits
        .iter()
        .filter(|commit| has(commit, "bulk") && has(commit, "n"))
        .count();
    let with_streams = commits.iter().filter(|commit| has(commit, "bulk")).count();
    println!(
        "acks: {} unary reports from {TASKS} clients and {batches} streams of {BATCH}, each ACK checked against /api/runs; \
         {total} ACKed in {} commits; {during_streams} unary ACKs came while a stream was in flight; \
         {shared} of the {with_streams} commits holding a stream also held unary reports",
        TASKS as u64 * EACH,
        commits.len()
    );
    assert_eq!(
        support::metric(&url, None, "perfstats_commit_latency_seconds_count").await,
        Some(commits.len() as f64),
        "every commit recorded"
    );
    let recorded: usize = commits.iter().flat_map(|commit| commit.values()).sum();
    assert_eq!(recorded as u64, total, "every stored report recorded once");
    assert!(
        during_streams > 0,
        "no unary ACK arrived while a stream was in flight: the calls ran one after the other"
    );
    assert!(
        shared > 0,
        "no commit held a stream and unary reports together ({with_streams} commits held streams)"
    );
    assert_eq!(server.store.current_run().reports, total);
    server.stop().await;
}
