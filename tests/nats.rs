//! Past one machine, with real processes on loopback: perfstats servers sharing a
//! replicated JetStream stream of a real NATS cluster (`tests/support/nats.rs`).
//! Killing the stream's leader and a perfstats server mid-load loses nothing
//! ACKed and stores nothing twice; a restarted server catches up; every server
//! answers the same; runs are shared; with NATS down writes are refused
//! retryably, reads go on, and ingest resumes by itself.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::{Event, PerformanceData};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::nats::{NatsCluster, writable};
use support::{BinaryServer, http, metric, wait_until, within};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a server may take to reach the stream, or to apply all of it: a
/// second or two here; 60 s only trips on a real hang.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long the load may take in all, failovers included (about 15 s here).
const LOAD_DEADLINE: Duration = Duration::from_secs(240);
/// The gRPC service whose health says whether writes are served.
const INGEST_SERVICE: &str = "perfstats.v1.PerformanceStats";

/// `perfstats serve STORE… --nats URLS` on 127.0.0.1:0.
fn serve(cluster: &NatsCluster, store: &[&str]) -> BinaryServer {
    let urls = cluster.urls();
    let mut args = store.to_vec();
    args.extend(["--nats", urls.as_str()]);
    BinaryServer::start(&args)
}

async fn stream_metric(url: &str, name: &str) -> Option<f64> {
    metric(url, None, name).await
}

/// Waits until the server at `url` can write to the stream.
async fn reaches_the_stream(url: &str) {
    support::nats::reaches_the_stream(url, CATCH_UP_DEADLINE).await
}

async fn get_text(url: &str) -> String {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.text().await.unwrap()
}

/// The body of `url` when it answers 200 (a server still catching up may not know
/// the run yet: 404), else an empty string.
async fn text_if_ok(url: &str) -> String {
    let response = http().get(url).send().await.unwrap();
    if response.status() == 200 {
        response.text().await.unwrap()
    } else {
        String::new()
    }
}

async fn health(url: &str) -> ServingStatus {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect_lazy();
    let mut client = HealthClient::new(channel);
    let check = client.check(HealthCheckRequest {
        service: INGEST_SERVICE.into(),
    });
    let answer = within(CATCH_UP_DEADLINE, "a health check's answer", check)
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(answer.status).unwrap()
}

/// The stream sequence applied and the lag of the server at `url`.
async fn progress(url: &str) -> (u64, u64) {
    let applied = stream_metric(url, "perfstats_stream_applied_seq")
        .await
        .unwrap_or(0.0) as u64;
    let lag = stream_metric(url, "perfstats_stream_lag")
        .await
        .unwrap_or(f64::MAX) as u64;
    (applied, lag)
}

/// A policy patient enough to ride out a leader election and a dead server.
fn patient() -> RetryPolicy {
    RetryPolicy {
        attempt_timeout: Some(Duration::from_secs(5)),
        ..RetryPolicy::exponential(200, Duration::from_millis(20), Duration::from_millis(500))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_and_a_server_loses_nothing_acked() {
    const CLIENTS: usize = 8;
    const PER_CLIENT: usize = 2_000;
    let mut cluster = NatsCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let db_a = dir.path().join("a.db");
    let db_a = db_a.to_str().unwrap().to_string();
    let a = serve(&cluster, &["--db", &db_a]);
    let b = serve(&cluster, &["--memory"]);
    for url in [&a.url, &b.url] {
        reaches_the_stream(url).await;
    }

    // Half the clients prefer A, half B; each fails over to the other. Each counts
    // the ACKs it gets once the kills are done, and notes when it finished.
    let acked = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for node in 0..CLIENTS {
        let addrs = if node % 2 == 0 {
            format!("{},{}", a.url, b.url)
        } else {
            format!("{},{}", b.url, a.url)
        };
        let client = Client::connect_lazy(&addrs).unwrap().with_policy(patient());
        let (acked, killed) = (acked.clone(), killed.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = HashMap::new();
            let mut after_kill = 0;
            for i in 0..PER_CLIENT {
                let report = PerformanceData::new(
                    0,
                    format!("{node}f"),
                    Event::TransactionReceived,
                    format!("tx {i}"),
                );
                let id = report.report_id.clone();
                let ack = client
                    .send_performance_stat_with_retries(report)
                    .await
                    .unwrap_or_else(|status| panic!("client {node} report {i}: {status}"));
                mine.insert(id, ack.seq);
                acked.fetch_add(1, Ordering::Relaxed);
                if killed.load(Ordering::SeqCst) {
                    after_kill += 1;
                }
            }
            (mine, after_kill, Instant::now())
        }));
    }

    // A third of the way in: SIGKILL the stream's leader and server A.
    wait_until(
        LOAD_DEADLINE,
        "a third of the reports to be ACKed",
        async || acked.load(Ordering::Relaxed) >= CLIENTS * PER_CLIENT / 3,
    )
    .await;
    let leader = cluster.stream_leader("PERFSTATS").await;
    cluster.kill(leader);
    a.kill9();
    let killed_at = (Instant::now(), acked.load(Ordering::SeqCst));
    killed.store(true, Ordering::SeqCst);

    let mut acks: HashMap<String, u64> = HashMap::new();
    let mut clients = Vec::new();
    for task in tasks {
        let (mine, after_kill, finished) = within(LOAD_DEADLINE, "the clients to finish", task)
            .await
            .unwrap();
        acks.extend(mine);
        clients.push((after_kill, finished));
    }
    assert_eq!(acks.len(), CLIENTS * PER_CLIENT, "every report was ACKed");
    let after: Vec<usize> = clients.iter().map(|(after_kill, _)| *after_kill).collect();
    println!(
        "killed NATS node {} (the stream leader) and server A after {} ACKs; ACKs each client got after the kills: {after:?}",
        cluster.name(leader),
        killed_at.1
    );
    // The faults happened under load: when both processes were dead every client
    // still had reports to send, and each went on getting ACKs (those preferring
    // A from B), finishing after the kills.
    assert!(
        killed_at.1 < CLIENTS * PER_CLIENT,
        "the load was over before the kills"
    );
    for (node, (after_kill, finished)) in clients.iter().enumerate() {
        assert!(
            *after_kill > 0 && *finished > killed_at.0,
            "client {node} got no ACK after the kills (it had finished): {after:?}"
        );
    }

    // Server A again, on the same database: it catches up from where it stopped.
    let a = serve(&cluster, &["--db", &db_a]);
    let total = (CLIENTS * PER_CLIENT) as u64;
    for url in [&a.url, &b.url] {
        wait_until(
            CATCH_UP_DEADLINE,
            "both servers to apply every report (lag 0, all stored)",
            async || {
                let runs: serde_json::Value =
                    serde_json::from_str(&get_text(&format!("{url}/api/runs")).await).unwrap();
                let stored: u64 = runs
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|run| run["reports"].as_u64().unwrap())
                    .sum();
                progress(url).await.1 == 0 && stored >= total
            },
        )
        .await;
    }
    assert_eq!(
        progress(&a.url).await.0,
        progress(&b.url).await.0,
        "both applied the stream to the same sequence"
    );

    // Every ACKed report is on the surviving server once, at the seq its ACK gave.
    let export_b = get_text(&format!("{}/api/export?format=ndjson", b.url)).await;
    let mut seen: HashMap<String, u64> = HashMap::new();
    for line in export_b.lines() {
        let report: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = report["report_id"].as_str().unwrap().to_string();
        let seq = report["seq"].as_u64().unwrap();
        assert!(seen.insert(id.clone(), seq).is_none(), "{id} stored twice");
    }
    assert_eq!(
        seen.len(),
        acks.len(),
        "exactly the ACKed reports are stored"
    );
    for (id, seq) in &acks {
        assert_eq!(
            seen.get(id),
            Some(seq),
            "report {id} at the seq its ACK gave"
        );
    }

    // Both servers answer the same.
    let export_a = get_text(&format!("{}/api/export?format=ndjson", a.url)).await;
    assert!(export_a == export_b, "the two servers' exports differ");
    let runs = |url: &str| format!("{url}/api/runs");
    let (runs_a, runs_b) = (get_text(&runs(&a.url)).await, get_text(&runs(&b.url)).await);
    assert_eq!(runs_a, runs_b, "the servers' runs differ");
    let analysis_a = get_text(&format!("{}/api/analysis", a.url)).await;
    let analysis_b = get_text(&format!("{}/api/analysis", b.url)).await;
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(parse(&analysis_a), parse(&analysis_b), "analyses differ");
    a.terminate();
    b.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_shared_and_an_outage_refuses_writes_but_not_reads() {
    let mut cluster = NatsCluster::start(1).await;
    let a = serve(&cluster, &["--memory"]);
    let b = serve(&cluster, &["--memory"]);
    for url in [&a.url, &b.url] {
        reaches_the_stream(url).await;
        assert_eq!(health(url).await, ServingStatus::Serving);
    }

    // A run started on B is A's current run too, with its labels, and A's
    // reports land in it.
    let started: serde_json::Value = http()
        .post(format!("{}/api/runs", b.url))
        .json(&serde_json::json!({"name": "shared-run", "labels": {"netem_ms": "40"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["name"], "shared-run");
    wait_until(
        CATCH_UP_DEADLINE,
        "A to see B's run as current",
        async || {
            let runs: serde_json::Value =
                serde_json::from_str(&get_text(&format!("{}/api/runs", a.url)).await).unwrap();
            runs.as_array().unwrap().iter().any(|run| {
                run["name"] == "shared-run"
                    && run["current"] == true
                    && run["labels"] == serde_json::json!({"netem_ms": "40"})
            })
        },
    )
    .await;
    // Labels replaced on A are B's too.
    let relabelled = http()
        .put(format!("{}/api/runs/shared-run/labels", a.url))
        .json(&serde_json::json!({"netem_ms": "80", "seed": "7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(relabelled.status(), 200);
    wait_until(
        CATCH_UP_DEADLINE,
        "B to see the labels A gave the run",
        async || {
            let runs: serde_json::Value =
                serde_json::from_str(&get_text(&format!("{}/api/runs?label=seed=7", b.url)).await)
                    .unwrap();
            runs[0]["labels"] == serde_json::json!({"netem_ms": "80", "seed": "7"})
        },
    )
    .await;
    let to_a = Client::connect_lazy(&a.url)
        .unwrap()
        .with_policy(RetryPolicy::never());
    let ack = to_a
        .send_performance_stat(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b1"))
        .await
        .unwrap();
    assert_eq!(ack.run, "shared-run");
    let reports_b = format!("{}/api/reports?run=shared-run", b.url);
    wait_until(
        CATCH_UP_DEADLINE,
        "B to show A's report in the run",
        async || text_if_ok(&reports_b).await.contains("\"b1\""),
    )
    .await;

    // NATS down: writes UNAVAILABLE (retryable), health NOT_SERVING, reads served.
    cluster.kill_all();
    wait_until(CATCH_UP_DEADLINE, "A to notice NATS is gone", async || {
        !writable(&a.url).await
    })
    .await;
    let refused = to_a
        .send_performance_stat(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(perfstats::client::is_retryable(&refused));
    wait_until(
        CATCH_UP_DEADLINE,
        "A's health to say NOT_SERVING",
        async || health(&a.url).await == ServingStatus::NotServing,
    )
    .await;
    let read = get_text(&format!("{}/api/reports?run=shared-run", a.url)).await;
    assert!(
        read.contains("\"b1\"") && !read.contains("\"b2\""),
        "{read}"
    );
    // A server started while NATS is down serves reads and refuses writes.
    let c = serve(&cluster, &["--memory"]);
    get_text(&format!("{}/api/runs", c.url)).await;
    let to_c = Client::connect_lazy(&c.url)
        .unwrap()
        .with_policy(RetryPolicy::never());
    let refused = to_c
        .send_performance_stat(PerformanceData::new(0, "1f", Event::NewBlockReceived, "c1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");

    // NATS back: ingest resumes by itself, and B sees the new report.
    cluster.restart_all().await;
    let patient = Client::connect_lazy(&a.url).unwrap().with_policy(patient());
    let ack = within(
        CATCH_UP_DEADLINE,
        "a write to succeed once NATS is back",
        patient.send_performance_stat_with_retries(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "b3",
        )),
    )
    .await
    .unwrap();
    assert!(!ack.duplicate);
    wait_until(
        CATCH_UP_DEADLINE,
        "B to show the report sent after the outage",
        async || text_if_ok(&reports_b).await.contains("\"b3\""),
    )
    .await;
    wait_until(
        CATCH_UP_DEADLINE,
        "A's health to say SERVING again",
        async || health(&a.url).await == ServingStatus::Serving,
    )
    .await;
    // The server that started without NATS has caught up with everything.
    let reports_c = format!("{}/api/reports?run=shared-run", c.url);
    wait_until(
        CATCH_UP_DEADLINE,
        "C to catch up once NATS is back",
        async || {
            let read = text_if_ok(&reports_c).await;
            read.contains("\"b1\"") && read.contains("\"b3\"")
        },
    )
    .await;
    a.terminate();
    b.terminate();
    c.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_deleted_and_made_again_is_not_mixed_into_a_store() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    // A database of a server of its own is refused, and makes no stream.
    let own = dir.path().join("own.db");
    let own = own.to_str().unwrap();
    let alone = BinaryServer::start(&["--db", own]);
    Client::connect_lazy(&alone.url)
        .unwrap()
        .send_performance_stat(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "own",
        ))
        .await
        .unwrap();
    assert!(alone.terminate().success());
    let refused = refuse_to_serve(&cluster, own);
    assert!(refused.contains("of its own"), "{refused}");
    let nats = async_nats::connect(cluster.url(0)).await.unwrap();
    let jetstream = async_nats::jetstream::new(nats);
    assert!(
        jetstream.get_stream("PERFSTATS").await.is_err(),
        "a refused server made the stream"
    );

    let db = dir.path().join("old.db");
    let db = db.to_str().unwrap();
    let old = serve(&cluster, &["--db", db]);
    reaches_the_stream(&old.url).await;
    let client = Client::connect_lazy(&old.url)
        .unwrap()
        .with_policy(RetryPolicy::never());
    client
        .send_performance_stat(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "old",
        ))
        .await
        .unwrap();
    // The ACK comes once the stream holds it; this server applies it just after.
    wait_until(
        CATCH_UP_DEADLINE,
        "the old server to apply its report",
        async || {
            get_text(&format!("{}/api/reports", old.url))
                .await
                .contains("\"old\"")
        },
    )
    .await;

    // Someone deletes the stream: the server does not make it again (it would
    // restart at seq 1, below what this store applied), so writes stop.
    jetstream.delete_stream("PERFSTATS").await.unwrap();
    wait_until(
        CATCH_UP_DEADLINE,
        "writes to stop without the stream",
        async || !writable(&old.url).await,
    )
    .await;
    assert!(
        jetstream.get_stream("PERFSTATS").await.is_err(),
        "the server made the stream again"
    );

    // A new server makes a new stream; the old one still refuses to mix it in.
    let new = serve(&cluster, &["--memory"]);
    reaches_the_stream(&new.url).await;
    let refused = client
        .send_performance_stat(PerformanceData::new(0, "1f", Event::NewBlockReceived, "x"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    let old_reports = get_text(&format!("{}/api/reports", old.url)).await;
    assert!(old_reports.contains("\"old\""), "{old_reports}");
    // Restarted on the same database, it says why it cannot serve the stream.
    old.kill9();
    let said = refuse_to_serve(&cluster, db);
    assert!(said.contains("NATS stream PERFSTATS (id "), "{said}");
    new.terminate();
}

/// Runs `perfstats serve --db DB --nats …`, which must exit 1 at once saying to use
/// another database file; returns what it said.
fn refuse_to_serve(cluster: &NatsCluster, db: &str) -> String {
    let output = support::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_perfstats")).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db,
            "--nats",
            &cluster.urls(),
        ]),
        CATCH_UP_DEADLINE,
        "perfstats to refuse a database of something else",
    );
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "{said}");
    assert!(said.contains("another database file"), "{said}");
    said
}
