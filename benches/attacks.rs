//! Attack benchmark: what one cheap attack costs the server and its honest clients,
//! against the real binary (SQLite, 127.0.0.1:0), with figures measured in the same
//! run so every ratio compares like with like.
//!
//! Backlog (issue 22): one node's in-order receipts, then its old reports in reverse
//! time order (a node replaying its queue after a partition), in streams of 1,000
//! and then one stream of 30,000, while one honest client sends one report at a
//! time and times its ACKs. Printed: the in-order and the backlog rates and their
//! ratio, the server's CPU per report in each, and the honest client's ACK p50, p99
//! and max during the backlog.
//!
//! Held streams (issue 22's first attack): `ReportStats` calls of tiny reports that
//! never finish, as many as the budget of open calls (`--max-stream-text`, 256 MiB
//! by default) lets in, then all dropped. Printed: the server's RSS before, while
//! they are held (against the budget) and after they are gone, and an honest
//! client's ACKs meanwhile.
//!
//! `cargo bench --bench attacks` (1,000,000 in-order receipts, 50,000 + 30,000 old
//! ones, as measured in the issue) or `cargo bench --bench attacks -- --quick`
//! (100,000; 10,000 + 10,000). It prints figures and asserts nothing about speed.

#[path = "../tests/support/mod.rs"]
mod support;

use perfstats::Event;
use perfstats::pb::PerformanceData;
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::BinaryServer;
use tonic::transport::Channel;

/// Reports of one `ReportStats` call while filling and in the backlog's batches.
const BATCH: usize = 1_000;
/// The newest receipt's time; the in-order receipts end here, 1 ms apart.
const NOW: i64 = 1_800_000_000_000_000_000;
/// How far before the in-order receipts the backlog's times lie.
const FAR_PAST: i64 = 86_400_000_000_000;

fn receipt(time: i64, n: usize) -> PerformanceData {
    PerformanceData {
        time_unix_nano: time,
        sender: "replaying-node".into(),
        event: Event::NewBlockReceived as i32,
        message: format!("block {n} received"),
        report_id: format!("replay-{n}"),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Prints the honest client's ACK latencies (sorted) `when`.
fn print_honest(when: &str, latencies: &[Duration]) {
    println!(
        "  honest client {when:>18}: {:>4} ACKs, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0)
    );
}

/// Sends `reports` in calls of `batch`, one call at a time; the wall time and the
/// server's CPU time it took.
async fn send(
    stub: &mut PerformanceStatsClient<Channel>,
    pid: u32,
    reports: Vec<PerformanceData>,
    batch: usize,
) -> (Duration, Duration) {
    let (cpu, started) = (support::cpu_time(pid), Instant::now());
    let mut reports = reports.into_iter().peekable();
    while reports.peek().is_some() {
        let call: Vec<_> = reports.by_ref().take(batch).collect();
        let len = call.len() as u64;
        let ack = stub.report_stats(tokio_stream::iter(call)).await.unwrap();
        assert_eq!(ack.get_ref().accepted, len, "every report stored");
    }
    (started.elapsed(), support::cpu_time(pid) - cpu)
}

/// One report at a time from another node, on a connection of its own, until
/// `stop`; each ACK's latency.
async fn honest(channel: Channel, stop: Arc<AtomicBool>) -> Vec<Duration> {
    let mut stub = PerformanceStatsClient::new(channel);
    let mut latencies = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let report = PerformanceData {
            time_unix_nano: NOW + n,
            sender: "honest-node".into(),
            event: Event::TransactionReceived as i32,
            message: format!("transaction {n}"),
            report_id: format!("honest-{n}"),
        };
        let call = Instant::now();
        stub.report_stat(report).await.unwrap();
        latencies.push(call.elapsed());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    latencies
}

async fn backlog(in_order: usize, old: usize, one_call: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("attacks.db");
    let server = BinaryServer::start(&["--db", db.to_str().unwrap()]);
    let pid = server.child.id();
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stub = PerformanceStatsClient::new(channel.clone());

    let fill: Vec<_> = (0..in_order)
        .map(|n| receipt(NOW - (in_order - n) as i64 * 1_000_000, n))
        .collect();
    let (fill_wall, fill_cpu) = send(&mut stub, pid, fill, BATCH).await;
    let in_order_rate = in_order as f64 / fill_wall.as_secs_f64();

    // The backlog: far-past times, newest first, ids the fill did not use.
    let past = |k: usize| receipt(NOW - FAR_PAST - k as i64 * 1_000_000, in_order + k);
    let batches: Vec<_> = (0..old).map(past).collect();
    let single: Vec<_> = (old..old + one_call).map(past).collect();

    // The honest client alone first: its ACKs without the attack, for comparison.
    let own = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let stop = Arc::new(AtomicBool::new(false));
    let alone = tokio::spawn(honest(own.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut alone = alone.await.unwrap();
    alone.sort();

    let stop = Arc::new(AtomicBool::new(false));
    let honest = tokio::spawn(honest(own, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (batches_wall, batches_cpu) = send(&mut stub, pid, batches, BATCH).await;
    let (single_wall, single_cpu) = send(&mut stub, pid, single, one_call).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = honest.await.unwrap();
    latencies.sort();
    let (rss, peak) = support::rss_mib(pid);
    server.terminate();

    let backlog_rate = old as f64 / batches_wall.as_secs_f64();
    let us = |cpu: Duration, reports: usize| cpu.as_secs_f64() * 1e6 / reports as f64;
    println!("backlog: {in_order} in-order receipts of one node, then {old} of its old reports");
    println!("  newest first in calls of {BATCH}, then one call of {one_call}");
    println!(
        "  in-order   {in_order_rate:>9.0} reports/s  {:>5.1} µs CPU a report",
        us(fill_cpu, in_order)
    );
    println!(
        "  backlog    {backlog_rate:>9.0} reports/s  {:>5.1} µs CPU a report  ({:.2}× the in-order rate)",
        us(batches_cpu, old),
        backlog_rate / in_order_rate
    );
    println!(
        "  one call of {one_call}: {:.0} ms, {:.1} µs CPU a report",
        single_wall.as_secs_f64() * 1e3,
        us(single_cpu, one_call)
    );
    for (when, latencies) in [
        ("alone, before", &alone),
        ("during the backlog", &latencies),
    ] {
        print_honest(when, latencies);
    }
    println!("  server RSS {rss:.0} MiB (peak {peak:.0} MiB)");
}

/// An authority's `rounds` in-order rounds (each received by three nodes), then
/// `old` of its sends far older than the rest, newest first, in one call: each
/// moves every later round. The honest client's ACKs meanwhile.
async fn authority_replay(rounds: usize, old: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("replay.db");
    let server = BinaryServer::start(&["--db", db.to_str().unwrap()]);
    let pid = server.child.id();
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let mut stub = PerformanceStatsClient::new(channel);
    let report = |sender: &str, event: Event, time: i64, id: String| PerformanceData {
        time_unix_nano: time,
        sender: sender.into(),
        event: event as i32,
        message: "block".into(),
        report_id: id,
    };
    let mut fill = Vec::new();
    for round in 0..rounds {
        let sent = NOW - (rounds - round) as i64 * 100_000_000;
        fill.push(report(
            "ra",
            Event::RaNewBlockSent,
            sent,
            format!("s{round}"),
        ));
        for node in ["n1", "n2", "n3"] {
            let id = format!("{node}-{round}");
            fill.push(report(node, Event::NewBlockReceived, sent + 5_000_000, id));
        }
    }
    send(&mut stub, pid, fill, BATCH).await;
    let replay: Vec<_> = (0..old)
        .map(|k| {
            let time = NOW - FAR_PAST - k as i64 * 100_000_000;
            report("ra", Event::RaNewBlockSent, time, format!("old{k}"))
        })
        .collect();
    let own = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let stop = Arc::new(AtomicBool::new(false));
    let honest = tokio::spawn(honest(own, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (wall, cpu) = send(&mut stub, pid, replay, old).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = honest.await.unwrap();
    latencies.sort();
    server.terminate();
    println!(
        "authority replay: {rounds} in-order rounds, then {old} older sends newest first in one call"
    );
    println!(
        "  {:.0} sends/s, {:.0} µs CPU a send",
        old as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / old as f64
    );
    print_honest("meanwhile", &latencies);
}

/// Opens `streams` `ReportStats` calls, each sending `reports` tiny reports and
/// then holding the call open; honest ACKs and RSS while they are held and after.
async fn held_streams(streams: usize, reports: usize) {
    let server = BinaryServer::start(&["--memory"]);
    let pid = server.child.id();
    let before = support::rss_mib(pid).0;
    let own = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect_lazy();
    let stop = Arc::new(AtomicBool::new(false));
    let honest = tokio::spawn(honest(own, stop.clone()));
    // The attackers run on a runtime of their own, so that they can go away at
    // once, connections and all, as crashed clients do.
    let attackers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut held_count, mut refused) = (0, 0);
    for _ in 0..streams {
        let url = server.url.clone();
        let (held, sent) = tokio::sync::oneshot::channel();
        attackers.spawn(async move {
            let channel = Channel::from_shared(url).unwrap().connect_lazy();
            let (sender, receiver) = tokio::sync::mpsc::channel(1_024);
            let mut stub = PerformanceStatsClient::new(channel);
            let call = tokio::spawn(async move {
                stub.report_stats(tokio_stream::wrappers::ReceiverStream::new(receiver))
                    .await
            });
            for n in 0..reports {
                let report = PerformanceData {
                    time_unix_nano: NOW + n as i64,
                    sender: "n".into(),
                    event: Event::TransactionReceived as i32,
                    message: "m".into(),
                    report_id: String::new(),
                };
                if sender.send(report).await.is_err() {
                    let _ = call.await; // refused: the call ended
                    let _ = held.send(false);
                    return;
                }
            }
            let _ = held.send(true);
            std::future::pending::<()>().await; // holds the call open
            drop(sender);
        });
        match sent.await.unwrap() {
            true => held_count += 1,
            false => refused += 1,
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (holding, peak) = support::rss_mib(pid);
    attackers.shutdown_background();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = honest.await.unwrap();
    latencies.sort();
    let after = support::rss_mib(pid).0;
    let runs: serde_json::Value = reqwest::get(format!("{}/api/runs", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.terminate();
    println!("  reports stored: {}", runs[0]["reports"]);
    println!("held streams: {streams} ReportStats calls of {reports} tiny reports, never finished");
    println!("  {held_count} held, {refused} refused (budget: 256 MiB)");
    println!(
        "  server RSS before {before:.0} MiB, holding {holding:.0} MiB (peak {peak:.0}), after they closed {after:.0} MiB"
    );
    print_honest("meanwhile", &latencies);
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if quick {
            backlog(100_000, 10_000, 10_000).await;
            authority_replay(10_000, 2_000).await;
            held_streams(16, 99_990).await;
        } else {
            backlog(1_000_000, 50_000, 30_000).await;
            authority_replay(50_000, 5_000).await;
            held_streams(64, 99_990).await;
        }
    });
}
