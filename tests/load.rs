//! Load and memory: the memory bound evicts and says so; a soak of 1,000,000
//! reports from 64 concurrent clients is all readable with the server's RSS bounded.

mod support;

use perfstats::client::Client;
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use std::collections::HashSet;
use std::time::Instant;
use support::{BinaryServer, stored_ids};
use tokio::net::TcpListener;

#[tokio::test]
async fn the_memory_bound_evicts_the_oldest_and_says_so() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Memory { max_reports: 10 }).await;
    let batch = (0..15)
        .map(|i| PerformanceData::new(0, "1f", Event::TransactionReceived, format!("tx {i}")))
        .collect();
    server
        .client()
        .send_batch_with_retries(batch)
        .await
        .unwrap();
    let runs = server.get_json("/api/runs").await;
    assert_eq!(
        (runs[0]["reports"].as_u64(), runs[0]["evicted"].as_u64()),
        (Some(10), Some(5))
    );
    let page = server.get_json("/api/reports").await;
    let first = &page["reports"][0];
    assert_eq!(
        (first["seq"].as_u64(), first["message"].as_str()),
        (Some(6), Some("tx 5"))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/test.sh"]
async fn a_million_reports_from_64_clients_are_all_readable_in_bounded_memory() {
    const CLIENTS: usize = 64;
    const TOTAL: usize = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("soak.db");
    let server = BinaryServer::start(&["--db", db.to_str().unwrap()]);
    let started = Instant::now();
    let mut clients = Vec::new();
    for node in 0..CLIENTS {
        // Each client its own connection, as each node would have.
        let client = Client::connect_lazy(&server.url).unwrap();
        clients.push(tokio::spawn(async move {
            // One report per call, as nodes report events.
            for i in 0..TOTAL / CLIENTS {
                let report = PerformanceData::new(
                    0,
                    format!("node{node}"),
                    Event::TransactionReceived,
                    format!("tx {i}"),
                );
                client
                    .send_performance_stat_with_retries(report)
                    .await
                    .unwrap();
            }
            TOTAL / CLIENTS
        }));
    }
    let mut sent = 0;
    for client in clients {
        sent += client.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let runs: serde_json::Value = reqwest::get(format!("{}/api/runs", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ndjson = reqwest::get(format!(
        "{}/api/export?format=ndjson&sender=node63",
        server.url
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    server.kill9();
    let ids = stored_ids(&db);
    let unique: HashSet<&String> = ids.iter().collect();
    println!(
        "soak: {sent} reports from {CLIENTS} clients in {elapsed:.1} s ({:.0}/s); {} stored, {} unique; \
         server peak RSS {:.1} MiB (SQLite mode)",
        sent as f64 / elapsed,
        ids.len(),
        unique.len(),
        peak_kib as f64 / 1024.0
    );
    assert_eq!(sent, TOTAL);
    assert_eq!(runs[0]["reports"], TOTAL);
    assert_eq!(ids.len(), TOTAL);
    assert_eq!(unique.len(), TOTAL);
    assert_eq!(
        ndjson.lines().count(),
        TOTAL / CLIENTS,
        "one client's reports read back"
    );
    // The README's goal for SQLite mode is 64 MiB after 1,000,000 reports (it
    // measures ~15 MiB); `--memory` holds the same million in ~178 MiB, so a SQLite
    // mode that kept reports in RAM would show here, well past 64 MiB.
    assert!(
        peak_kib < 64 * 1024,
        "SQLite mode peak RSS within the 64 MiB goal: {peak_kib} KiB"
    );
}
