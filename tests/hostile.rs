//! Hostile load, each scenario bounded in count and time, on loopback: stalled live
//! subscribers, slow exports, huge pages, many open `ReportStats` streams, a store
//! of many runs, and cursors past the seq range. Real clients keep being served,
//! nothing is lost, and the server's memory stays under bounds that the old
//! behaviour (measured in the issue) broke by far. Figures are printed.

mod support;

use perfstats::pb::PerformanceData;
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::server::LimitsConfig;
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData as Data};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::StreamExt;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

fn report(sender: &str, message: &str) -> PerformanceData {
    Data::new(0, sender, Event::TransactionReceived, message)
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap()
}

/// 100 subscribers that never read, past them one refused; meanwhile 100,000
/// reports in 20 `ReportStats` calls all succeed, reads answer, threads stay few
/// and memory grows little. (Issue: 500 such subscribers took 279 MiB, 183–494
/// threads, and made 18 of 20 calls fail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/test.sh"]
async fn stalled_subscribers_are_capped_cheap_and_never_fail_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("subscribers.db");
    let server =
        support::BinaryServer::start(&["--db", db.to_str().unwrap(), "--max-subscribers", "100"]);
    let pid = server.child.id();
    let url = server.url.clone();
    let before = support::rss_kib(pid);
    let mut stalled = Vec::new();
    for _ in 0..100 {
        stalled.push(support::stalled_get(&url, "/api/stream?after=0").await);
    }
    support::within(WAIT, "100 subscribers counted", async {
        while support::metric(&url, None, "perfstats_sse_subscribers").await != Some(100.0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let refused = support::http()
        .get(format!("{url}/api/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "the 101st subscriber");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(refused.text().await.unwrap().contains("--max-subscribers"));

    let channel = tonic::transport::Endpoint::from_shared(url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for call in 0..20 {
        let mut client = PerformanceStatsClient::new(channel.clone());
        let batch: Vec<PerformanceData> = (0..5_000)
            .map(|i| report(&format!("n{}", i % 50), &format!("call {call} report {i}")))
            .collect();
        calls.spawn(async move { client.report_stats(tokio_stream::iter(batch)).await });
    }
    let mut worst_read = Duration::ZERO;
    while !calls.is_empty() {
        let read = Instant::now();
        let page = support::http()
            .get(format!("{url}/api/reports?order=desc&limit=10"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        worst_read = worst_read.max(read.elapsed());
        while let Some(call) = calls.try_join_next() {
            let ack = call
                .unwrap()
                .expect("no ingest call fails because of subscribers");
            assert_eq!(ack.into_inner().accepted, 5_000);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    // The subscribers were stalled all along: none left, so every read and call
    // above was served during the stall.
    assert_eq!(
        support::metric(&url, None, "perfstats_sse_subscribers").await,
        Some(100.0),
        "the stalled subscribers are still there"
    );
    // Reads go to the store, not behind the subscribers: measured 12 ms at worst
    // while 100,000 reports arrive; a second is a reader held up by the stall.
    assert!(
        worst_read < Duration::from_secs(1),
        "slowest /api/reports {worst_read:?}"
    );
    let runs = support::http()
        .get(format!("{url}/api/runs"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(runs[0]["reports"], 100_000, "nothing lost");
    let grown = (support::rss_kib(pid) - before) / 1024;
    let threads = threads(pid);
    println!(
        "100 stalled subscribers: 100,000 reports in {took:?}, slowest /api/reports {worst_read:?}, \
         server RSS +{grown} MiB, {threads} threads"
    );
    // Each stalled subscriber may hold its small queue and one page of catch-up
    // (~1 MiB at most with hyper's buffer): 100 of them stay under 64 MiB, where the
    // old ~550 KiB each plus buffered pages went far past it.
    assert!(grown < 64, "server RSS grew by {grown} MiB");
    // Workers, the committer, and at most a few blocking threads (catch-up reads
    // are two at a time): the old thread per lagging subscriber went to hundreds.
    assert!(threads < 40, "{threads} threads");
    // terminate() blocks this worker: the other one lets the gRPC connection
    // close, which the server's graceful shutdown waits for.
    drop((stalled, channel));
    assert!(server.terminate().success(), "SIGTERM ends it with 0");
}

/// Exports: past `--max-exports` refused with Retry-After; stalled exports of large,
/// escape-heavy reports hold little; their budget comes back when they go.
/// (Issue: one such export held 612 MB, four held 2.25 GB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/test.sh"]
async fn stalled_exports_are_capped_and_hold_little() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("exports.db");
    let server =
        support::BinaryServer::start(&["--db", db.to_str().unwrap(), "--max-exports", "4"]);
    let pid = server.child.id();
    let url = server.url.clone();
    let client = perfstats::client::Client::connect_lazy(&url).unwrap();
    let nul = "\0".repeat(4096); // 6 bytes each in JSON: ~24 KiB per report
    for _ in 0..4 {
        let batch = (0..1_000).map(|_| report("1f", &nul)).collect();
        client.send_batch_with_retries(batch).await.unwrap();
    }
    let before = support::rss_kib(pid);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = support::stalled_get(&url, "/api/export?format=ndjson").await;
        let mut first = [0u8; 1024];
        let read = support::within(WAIT, "an export's first bytes", stream.read(&mut first)).await;
        assert!(read.unwrap() > 0);
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = support::http()
        .get(format!("{url}/api/export?format=ndjson"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503, "the fifth export");
    assert!(refused.headers().contains_key("retry-after"));
    // During the stall, real clients are served at once: a page of reports, the runs
    // and a report sent over gRPC (measured in ms; a second is a client held up).
    let started = Instant::now();
    let page = support::http()
        .get(format!("{url}/api/reports?order=desc&limit=10"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(!page.bytes().await.unwrap().is_empty());
    let ack = client
        .send_performance_stat(report("real", "during the stall"))
        .await
        .unwrap();
    assert_eq!(ack.seq, 4_001);
    let served = started.elapsed();
    println!("  a page and a report served in {served:?} beside the 4 stalled exports");
    assert!(served < Duration::from_secs(1), "served in {served:?}");
    let still = support::http()
        .get(format!("{url}/api/export?format=ndjson"))
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), 503, "the exports were stalled throughout");
    let grown = (support::rss_kib(pid) as i64 - before as i64) / 1024;
    println!("4 stalled NDJSON exports of 4,000 × 24 KiB: server RSS +{grown} MiB");
    // Per export: one page of 500 reports (~2 MiB) and two 1 MiB chunks queued,
    // plus what hyper buffers: 4 stay well under 48 MiB; the old 612 MB each not.
    assert!(grown < 48, "server RSS grew by {grown} MiB");
    drop(stalled);
    support::within(WAIT, "an export admitted again", async {
        loop {
            let response = support::http()
                .get(format!("{url}/api/export?format=csv"))
                .send()
                .await
                .unwrap();
            if response.status() == 200 {
                let body = response.bytes().await.unwrap();
                // The header, the 4,000 reports and the one sent during the stall.
                assert_eq!(body.iter().filter(|byte| **byte == b'\n').count(), 4_002);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // terminate() blocks this worker: the other one lets the gRPC connection
    // close, which the server's graceful shutdown waits for.
    drop(client);
    assert!(server.terminate().success(), "SIGTERM ends it with 0");
}

/// A page of `/api/reports` is bounded by bytes as well as rows, and paging by
/// `next` still returns every report exactly once, in both orders. (Issue:
/// `limit=10000` of such reports answered 263 MB in one body.)
#[tokio::test]
async fn a_reports_page_is_bounded_by_bytes_and_paging_misses_nothing() {
    let server = support::spawn_server().await;
    let nul = "\0".repeat(4096);
    let batch: Vec<PerformanceData> = (0..600).map(|_| report("1f", &nul)).collect();
    server
        .client()
        .send_batch_with_retries(batch)
        .await
        .unwrap();
    for order in ["asc", "desc"] {
        let mut seen = Vec::new();
        let mut cursor: Option<u64> = None;
        let mut pages = 0;
        loop {
            let cursor_param = match (order, cursor) {
                ("asc", Some(seq)) => format!("&after={seq}"),
                (_, Some(seq)) => format!("&before={seq}"),
                _ => String::new(),
            };
            let response = support::http()
                .get(format!(
                    "{}/api/reports?limit=10000&order={order}{cursor_param}",
                    server.url()
                ))
                .send()
                .await
                .unwrap();
            let body = response.bytes().await.unwrap();
            // 4 MiB and the one report that crossed it at most.
            assert!(body.len() <= (4 << 20) + 30_000, "{} bytes", body.len());
            let page: serde_json::Value = serde_json::from_slice(&body).unwrap();
            pages += 1;
            seen.extend(
                page["reports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|report| report["seq"].as_u64().unwrap()),
            );
            match page["next"].as_u64() {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert!(
            pages >= 4,
            "600 × ~24 KiB take several 4 MiB pages: {pages}"
        );
        if order == "desc" {
            seen.reverse();
        }
        assert_eq!(seen, (1..=600).collect::<Vec<u64>>(), "{order}");
    }
    server.stop().await;
}

/// The budget counts what reports hold, not just their text: 40,000 reports of
/// two bytes of text each are 80 KB of text but about 10 MB held (structures, ids,
/// allocations), so with a budget of 4 MiB the stream is refused and nothing of it
/// stored. (Issue: 64 streams of tiny reports held 1.42 GB while 64 MiB of text
/// was counted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_reports_count_what_they_hold_not_their_text() {
    let server = support::spawn_with_limits(LimitsConfig {
        max_stream_text: 4 << 20,
        ..LimitsConfig::default()
    })
    .await;
    let mut client = PerformanceStatsClient::new(
        tonic::transport::Endpoint::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let tiny: Vec<PerformanceData> = (0..40_000).map(|_| report("n", "m")).collect();
    let status = support::within(WAIT, "the tiny stream's answer", async {
        client.report_stats(tokio_stream::iter(tiny)).await
    })
    .await
    .expect_err("40,000 held reports are past 4 MiB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        server.store.current_run().reports,
        0,
        "nothing of it stored"
    );
    // 10,000 of them (about 2 MB held) fit, and are stored.
    let fits: Vec<PerformanceData> = (0..10_000).map(|_| report("n", "m")).collect();
    let ack = client.report_stats(tokio_stream::iter(fits)).await.unwrap();
    assert_eq!(ack.into_inner().accepted, 10_000);
    server.stop().await;
}

/// All open `ReportStats` streams share one budget of text: past it a stream is
/// refused with RESOURCE_EXHAUSTED and nothing of it is stored; the budget comes
/// back when streams end. (Issue: 8 open streams reached 617 MB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_share_one_text_budget() {
    let server = support::spawn_with_limits(LimitsConfig {
        max_stream_text: 4 << 20,
        ..LimitsConfig::default()
    })
    .await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let text = "x".repeat(4000);
    // Stream 1 sends 3 MB of text and stays open.
    let (first, queued) = tokio::sync::mpsc::channel::<PerformanceData>(1_000);
    let mut client = PerformanceStatsClient::new(channel.clone());
    let open = tokio::spawn(async move {
        client
            .report_stats(tokio_stream::wrappers::ReceiverStream::new(queued))
            .await
    });
    for _ in 0..750 {
        first.send(report("held", &text)).await.unwrap();
    }
    // Once the server holds stream 1's 3 MB (its reservation shows in /metrics),
    // 2 MB more is past the 4 MiB budget.
    let url = server.url();
    support::within(WAIT, "stream 1's text reserved", async {
        while support::metric(&url, None, "perfstats_stream_text_bytes")
            .await
            .is_none_or(|held| held < 3_000_000.0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut client = PerformanceStatsClient::new(channel.clone());
    let batch: Vec<PerformanceData> = (0..500).map(|_| report("probe", &text)).collect();
    let call = client.report_stats(tokio_stream::iter(batch));
    let status = support::within(WAIT, "the refused stream's answer", call)
        .await
        .expect_err("a stream past the budget is refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("--max-stream-text"));
    // While stream 1 holds the budget, a unary report and a read are served at once
    // (in ms; a second is a client held up by the open stream).
    let started = Instant::now();
    let ack = support::within(
        WAIT,
        "a unary report beside the open stream",
        server
            .client()
            .send_performance_stat(report("unary", "beside")),
    )
    .await
    .unwrap();
    assert_eq!(ack.seq, 1, "stored first: stream 1 is still open");
    let runs = server.get_json("/api/runs").await;
    assert_eq!(runs[0]["reports"], 1);
    let served = started.elapsed();
    assert!(served < Duration::from_secs(1), "served in {served:?}");
    assert!(
        support::metric(&url, None, "perfstats_stream_text_bytes")
            .await
            .is_some_and(|held| held >= 3_000_000.0),
        "stream 1 still held its text meanwhile"
    );
    drop(first);
    let ack = support::within(WAIT, "the open stream's answer", open)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack.into_inner().accepted, 750);
    // The budget came back: the same stream now goes through.
    let mut client = PerformanceStatsClient::new(channel.clone());
    let batch: Vec<PerformanceData> = (0..500).map(|_| report("later", &text)).collect();
    let ack = client
        .report_stats(tokio_stream::iter(batch))
        .await
        .unwrap();
    assert_eq!(ack.into_inner().accepted, 500);
    let probes = server.get_json("/api/reports?sender=probe").await;
    assert_eq!(
        probes["reports"].as_array().unwrap().len(),
        0,
        "nothing of the refused stream"
    );
    assert_eq!(server.store.current_run().reports, 1_251);
    assert_eq!(
        support::metric(&url, None, "perfstats_stream_text_bytes").await,
        Some(0.0),
        "every share given back"
    );
    server.stop().await;
}

/// A store of 20,001 runs opens in O(runs): one index lookup per run, not a scan
/// of the runs per run. (Issue: 14.7 s for 20,001 runs, 55.3 s for 40,001.)
#[tokio::test]
async fn a_store_of_many_runs_opens_with_every_count_right() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = support::serve_on(listener, Backend::Sqlite(db.clone())).await;
        server.stop().await;
    }
    {
        let mut connection = rusqlite::Connection::open(&db).unwrap();
        let transaction = connection.transaction().unwrap();
        for run in 2..=20_001u64 {
            // Runs 2..: each holds (run % 3) reports.
            let first: u64 = transaction
                .query_row("SELECT coalesce(max(seq), 0) + 1 FROM reports", [], |row| {
                    row.get(0)
                })
                .unwrap();
            transaction
                .execute(
                    "INSERT INTO runs (id, name, started_unix_nano, first_seq) VALUES (?1, ?2, 0, ?3)",
                    rusqlite::params![run, format!("r{run}"), first],
                )
                .unwrap();
            for index in 0..run % 3 {
                transaction
                    .execute(
                        "INSERT INTO reports (run, time_unix_nano, received_unix_nano, sender, event, message, report_id)
                         VALUES (?1, 1, 1, 'n', 79, 'm', ?2)",
                        rusqlite::params![run, format!("{run}-{index}")],
                    )
                    .unwrap();
            }
        }
        transaction.commit().unwrap();
    }
    let started = Instant::now();
    let store = perfstats::store::Store::open(perfstats::store::StoreConfig {
        backend: Backend::Sqlite(db),
        new_run: None,
        new_run_labels: Default::default(),
        observer: std::sync::Arc::new(()),
    })
    .unwrap();
    let took = started.elapsed();
    println!("opened a store of 20,001 runs in {took:?}");
    // Measured 0.17-0.28 s on 2 busy cores; the quadratic start of the issue took
    // 14.7 s. 1 s leaves a loaded machine room and catches it 15 times over.
    assert!(took < Duration::from_secs(1), "opened in {took:?}");
    let runs = store.runs();
    assert_eq!(runs.len(), 20_001);
    assert!(runs.iter().skip(1).all(|run| run.reports == run.id % 3));
    assert!(runs[20_000].current);
}

/// Cursors past the seq range are refused with 400 naming them, not 503, and a
/// browser is not sent into a reconnect loop.
#[tokio::test]
async fn cursors_past_the_seq_range_are_refused_naming_them() {
    let server = support::spawn_server().await;
    server
        .client()
        .send_performance_stat(report("1f", "one"))
        .await
        .unwrap();
    for path in [
        "/api/reports?after=9223372036854775808",
        "/api/reports?order=desc&before=18446744073709551615",
        "/api/stream?after=9223372036854775808",
        "/api/export?after=9223372036854775808",
    ] {
        let response = support::http()
            .get(format!("{}{path}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("after") || text.contains("before"),
            "{path}: {text}"
        );
    }
    let response = support::http()
        .get(format!("{}/api/stream", server.url()))
        .header("last-event-id", "9223372036854775808")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("Last-Event-ID"));
    let last = server
        .get_json("/api/reports?after=9223372036854775807")
        .await;
    assert_eq!(
        last["reports"].as_array().unwrap().len(),
        0,
        "the largest seq is fine"
    );
    server.stop().await;
}

/// What the attackers of [`slow_and_idle_connections_do_not_crowd_out_real_clients`]
/// count, from their side.
#[derive(Default)]
struct Attack {
    /// Connections established now (held by the server or in its backlog).
    connected: AtomicUsize,
    /// Connections the server closed.
    closed: AtomicUsize,
    /// Attackers that have connected at least once.
    arrived: AtomicUsize,
}

/// One attacker until `stop`: connects, then sends nothing (idle) or a header byte
/// every 200 ms (slow) and never finishes a request; when the server closes it,
/// connects again after `pause`, as slowloris tools do.
async fn attacker(
    addr: String,
    slow: bool,
    pause: Duration,
    attack: Arc<Attack>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut arrived = false;
    while !*stop.borrow() {
        let connect = TcpStream::connect(&addr);
        let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
            continue; // the backlog is full: try again
        };
        attack.connected.fetch_add(1, Ordering::SeqCst);
        if !std::mem::replace(&mut arrived, true) {
            attack.arrived.fetch_add(1, Ordering::SeqCst);
        }
        if slow {
            let _ = stream
                .write_all(b"GET /api/runs HTTP/1.1\r\nX-Slow: ")
                .await;
        }
        let (mut reader, mut writer) = stream.split();
        let mut byte = [0u8; 64];
        let closed = loop {
            tokio::select! {
                _ = stop.changed() => break false,
                read = reader.read(&mut byte) => match read {
                    Ok(0) | Err(_) => break true,
                    Ok(_) => {}
                },
                () = tokio::time::sleep(Duration::from_millis(200)), if slow => {
                    if writer.write_all(b"a").await.is_err() {
                        break true;
                    }
                }
            }
        };
        attack.connected.fetch_sub(1, Ordering::SeqCst);
        if !closed {
            return;
        }
        attack.closed.fetch_add(1, Ordering::SeqCst);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// 1,500 attacking connections, slow (a header byte every 200 ms) or idle, that come
/// back when closed, against the real binary under a descriptor limit of 512 (so a
/// cap of 448 connections): the attackers reach the cap (the server closes their
/// connections long before any 10 s deadline could), the server never holds more
/// than the cap, and *during* the attack real HTTP and gRPC clients, each on a
/// fresh connection, are served in well under a second while the server's CPU stays
/// low. (Issue: 1,100 such connections under `ulimit -n 1024` held every
/// descriptor, the accept loop spun at 100% of a core and real calls timed out for
/// the whole attack.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/test.sh"]
async fn slow_and_idle_connections_do_not_crowd_out_real_clients() {
    const ATTACKERS: usize = 1_500;
    const CAP: usize = 512 - 64; // the descriptor limit less the server's spare
    // Real calls are made through this much of the attack: attackers come back 2 s
    // after the server closes them, so it spans two sweeps of the cap at least.
    const WINDOW: Duration = Duration::from_secs(4);
    perfstats::server::connections::raise_descriptor_limit().unwrap();
    let server = support::BinaryServer::start_with_descriptors(&["--memory"], 512, 512);
    let (pid, url, addr) = (server.child.id(), server.url.clone(), server.addr());
    let before = support::rss_kib(pid);
    let baseline = support::sockets(pid); // the listener and the runtime's own
    let (idle_cpu, _) = support::cpu_share(pid, tokio::time::sleep(Duration::from_secs(1))).await;

    let attack = Arc::new(Attack::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut attackers = tokio::task::JoinSet::new();
    let started = Instant::now();
    for index in 0..ATTACKERS {
        let pause = Duration::from_secs(2);
        attackers.spawn(attacker(
            addr.clone(),
            index % 2 == 0,
            pause,
            attack.clone(),
            stopped.clone(),
        ));
    }
    // The server's connection gauge, its open sockets, sampled through the attack.
    let most = Arc::new(AtomicUsize::new(0));
    let gauge = {
        let most = most.clone();
        tokio::spawn(async move {
            loop {
                most.fetch_max(
                    support::sockets(pid).saturating_sub(baseline),
                    Ordering::SeqCst,
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Every attacker connected (the kernel refused none), and the attackers reached
    // the cap: nothing but the cap closes a connection within its first 10 s (the
    // first request's deadline), so a cap's worth closed shows it.
    support::wait_until(
        Duration::from_secs(9),
        "every attacker to connect and the attackers to reach the connection cap \
         (the server closing their connections)",
        async || {
            attack.arrived.load(Ordering::SeqCst) == ATTACKERS
                && attack.closed.load(Ordering::SeqCst) >= CAP
        },
    )
    .await;
    let reached = started.elapsed();
    let connected = attack.connected.load(Ordering::SeqCst);

    let closed_before = attack.closed.load(Ordering::SeqCst);
    // Each real call on a fresh connection; a connection the cap closed before its
    // request was read (the cap's sweep takes any connection with no request being
    // handled yet) is retried on a new one, as nodes' clients and browsers do.
    let mut refused = Vec::new();
    let (cpu, (http_times, grpc_times)) = support::cpu_share(pid, async {
        let mut http_times = Vec::new();
        let mut grpc_times = Vec::new();
        let window = Instant::now();
        for index in 0.. {
            if window.elapsed() > WINDOW {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            loop {
                let fresh = reqwest::Client::builder()
                    .pool_max_idle_per_host(0)
                    .timeout(Duration::from_secs(15))
                    .build()
                    .unwrap();
                match fresh.get(format!("{url}/api/runs")).send().await {
                    Ok(response) => {
                        assert_eq!(response.status(), 200);
                        break;
                    }
                    Err(error) => refused.push(format!("HTTP: {error:?}")),
                }
            }
            http_times.push(started.elapsed());
            let started = Instant::now();
            loop {
                let client = perfstats::client::Client::connect_lazy(&url)
                    .unwrap()
                    .with_policy(perfstats::client::RetryPolicy::never());
                let call = client.send_performance_stat(report("real", &format!("real {index}")));
                match support::within(Duration::from_secs(15), "a real client's ACK", call).await {
                    Ok(_) => break,
                    Err(status) if perfstats::client::is_retryable(&status) => {
                        refused.push(format!("gRPC: {status:?}"));
                    }
                    Err(status) => panic!("{status:?}"),
                }
            }
            grpc_times.push(started.elapsed());
        }
        (http_times, grpc_times)
    })
    .await;
    for line in &refused {
        println!("  a real call's connection closed: {line}");
    }
    let closed_during = attack.closed.load(Ordering::SeqCst) - closed_before;
    let connected_after = attack.connected.load(Ordering::SeqCst);
    let grown = (support::rss_kib(pid) as i64 - before as i64) / 1024;
    gauge.abort();
    let most = most.load(Ordering::SeqCst);
    let worst_http = *http_times.iter().max().unwrap();
    let worst_grpc = *grpc_times.iter().max().unwrap();
    println!(
        "{ATTACKERS} slow and idle connections coming back, descriptor limit 512: cap reached \
         after {reached:?} ({connected} connected then); during {} + {} real calls in {WINDOW:?} \
         {closed_during} attacking connections closed at the cap, {connected_after} connected, \
         the server held at most {most} connections; real HTTP max {worst_http:?}, real gRPC \
         (new connection each) max {worst_grpc:?}, {} of their connections closed before \
         their request was read; server CPU {:.1}% of a core (idle {:.1}%), \
         RSS +{grown} MiB",
        http_times.len(),
        grpc_times.len(),
        refused.len(),
        cpu * 100.0,
        idle_cpu * 100.0
    );
    // The attack went on while the real clients were served: the cap was swept.
    assert!(
        closed_during >= CAP,
        "{closed_during} closed: the attack was over before the real clients"
    );
    // The sweep takes a fresh connection whose request is not read yet, a real
    // client's too, which then tries again; most get through at once.
    let calls = http_times.len() + grpc_times.len();
    assert!(
        refused.len() <= calls / 4,
        "{} of {calls} real connections closed before their request was read",
        refused.len()
    );
    // The cap holds: never more connections than it, whatever waits in the backlog.
    assert!(
        most <= CAP,
        "the server held {most} connections, past the cap of {CAP}"
    );
    // A real client waits behind the backlog's attackers while the server accepts
    // and closes them (a few ms per cap's worth); a second is a client crowded out.
    for (kind, worst) in [("HTTP", worst_http), ("gRPC", worst_grpc)] {
        assert!(
            worst < Duration::from_secs(1),
            "a real {kind} call took {worst:?}"
        );
    }
    // An idle server uses ~0%; accepting and closing the 1,500 attackers every 2 s
    // measured 4-6% (2 busy cores); the spinning accept loop of the issue took 100%.
    assert!(cpu < 0.2, "the server used {:.0}% of a core", cpu * 100.0);
    // 448 connections at most, each a few KiB of buffers: measured +6 MiB; 24 MiB
    // catches buffers that grow per connection.
    assert!(grown < 24, "server RSS grew by {grown} MiB");
    let _ = stop.send(true);
    support::within(WAIT, "the attackers to stop", async {
        while let Some(attacker) = attackers.join_next().await {
            attacker.unwrap();
        }
    })
    .await;
    assert!(server.terminate().success(), "SIGTERM ends it with 0");
}

/// Opens `cap - 1` idle connections to `server`: all are held (its socket count
/// shows them, none is closed); one more reaches the cap, which closes the idle
/// ones at once, long before the 10 s first-request deadline could.
async fn idle_connections_fill_exactly(server: &support::BinaryServer, cap: usize) {
    let pid = server.child.id();
    let baseline = support::sockets(pid);
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..cap - 1 {
        held.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    support::wait_until(
        Duration::from_secs(5),
        &format!("the server to hold {} idle connections", cap - 1),
        async || support::sockets(pid) >= baseline + cap - 1,
    )
    .await;
    // A cap reached closes idle connections within milliseconds: 200 ms without
    // any closed shows the cap is not cap - 1.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        support::sockets(pid),
        baseline + cap - 1,
        "connections held"
    );
    let mut byte = [0u8; 1];
    for stream in &held {
        let open = stream.try_read(&mut byte);
        assert!(
            open.as_ref()
                .is_err_and(|error| error.kind() == std::io::ErrorKind::WouldBlock),
            "an idle connection closed below the cap of {cap}: {open:?}"
        );
    }
    let _last = TcpStream::connect(server.addr()).await.unwrap();
    for mut stream in held {
        let read = support::within(
            Duration::from_secs(5),
            "the cap to close an idle connection",
            stream.read(&mut byte),
        )
        .await;
        assert!(matches!(read, Ok(0)) || read.is_err(), "{read:?}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "closed after {took:?}: by the deadline, not the cap"
    );
}

/// The descriptor limit is raised to the hard one at start, and the connection cap
/// fitted to it: started with a soft limit of 100 and a hard one of 200, the binary
/// runs with 200 (`/proc/PID/limits`) and serves 136 connections at once (200 less
/// 64 spare; unraised it would be 36, unfitted 4,096); `--max-connections 50`, below
/// that, is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_descriptor_limit_is_raised_and_the_connection_cap_fitted_to_it() {
    let server = support::BinaryServer::start_with_descriptors(&["--memory"], 100, 200);
    assert_eq!(support::descriptor_limits(server.child.id()), (200, 200));
    idle_connections_fill_exactly(&server, 200 - 64).await;
    assert!(server.terminate().success());
    let server = support::BinaryServer::start_with_descriptors(
        &["--memory", "--max-connections", "50"],
        100,
        200,
    );
    idle_connections_fill_exactly(&server, 50).await;
    assert!(server.terminate().success());
}

/// The accept loop driven directly (`connections::serve`, as `server::run` does) on
/// 20 accept errors (EMFILE, out of descriptors) and then a real listener: it backs
/// off 50 ms after each error instead of retrying at once, and then serves the
/// client that waited in the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_and_serving_resumes() {
    const ERRORS: u32 = 20;
    const BACKOFF: Duration = Duration::from_millis(50); // connections.rs
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let failures = Arc::new(AtomicUsize::new(0));
    let counted = failures.clone();
    let errors = tokio_stream::iter(0..ERRORS).map(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err::<TcpStream, _>(std::io::Error::from_raw_os_error(libc::EMFILE))
    });
    let incoming = errors.chain(tokio_stream::wrappers::TcpListenerStream::new(listener));
    let router = axum::Router::new().route("/", axum::routing::get(|| async { "served" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let serving = tokio::spawn(perfstats::server::connections::serve(
        incoming,
        router,
        16,
        async {
            let _ = stopped.await;
        },
    ));
    let body = support::within(WAIT, "the client waiting through the errors", async {
        support::http()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await;
    let took = started.elapsed();
    assert_eq!(body, "served");
    assert_eq!(failures.load(Ordering::SeqCst), ERRORS as usize);
    println!("{ERRORS} accept errors, then served after {took:?}");
    // Sleeps never end early: 20 back-offs take at least 1 s; without them the
    // errors pass in microseconds.
    assert!(
        took >= BACKOFF * ERRORS,
        "served after {took:?}: no back-off"
    );
    stop.send(()).unwrap();
    support::within(WAIT, "the accept loop to stop", serving)
        .await
        .unwrap();
}

/// A `ReportStats` call that sends its headers and then nothing (no message, no
/// end) is ended by the server 10 s later, naming why, instead of holding its
/// stream as long as the client likes; nothing is stored. (Issue: 100 connections
/// x 200 such streams held 261 MB and none was closed after 15 s.) Real time: the
/// lower bound is the mechanism's own (it cannot answer sooner), the upper one is
/// only a deadline for the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_sends_only_headers_is_ended_after_10_s() {
    let server = support::spawn_server().await;
    let mut client = PerformanceStatsClient::connect(server.url()).await.unwrap();
    let started = Instant::now();
    let never = futures_util::stream::pending::<PerformanceData>();
    let status = support::within(
        Duration::from_secs(30),
        "the server to end a call that sends only headers",
        client.report_stats(never),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= perfstats::server::FIRST_MESSAGE_TIMEOUT - Duration::from_millis(50),
        "ended after {took:?}, before the deadline"
    );
    assert!(
        status.message().contains("sent no body within 10s"),
        "{status:?}"
    );
    println!("a call sending only headers ended after {took:?}: {status:?}");
    assert_eq!(server.store.current_run().reports, 0);
    server.stop().await;
}
