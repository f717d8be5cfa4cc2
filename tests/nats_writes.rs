//! Writes over `--nats`, with real processes on loopback (one NATS server is
//! enough: these are about what an ACK says, not about NATS failing): the same
//! report id sent through two servers at once is stored once and both ACKs name
//! its seq; a `ReportStats` call cut by a killed server is made whole by its retry
//! through another; `POST /send` goes through the stream; past the budget of
//! reports awaiting a write is refused `RESOURCE_EXHAUSTED`; and a store from a
//! release before batched messages goes on applying the stream at the right seqs.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::{Event, PerformanceData};
use std::collections::HashMap;
use std::time::Duration;
use support::load::{stored_once_everywhere, stored_seqs as stored};
use support::nats::NatsCluster;
use support::{BinaryServer, http, metric, wait_until, within};
use tonic::Code;

/// How long a server may take to reach the stream or apply what it holds: a
/// second or two here; 60 s only trips on a hang.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long one write may take (an ACK comes in milliseconds here).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// `perfstats serve STORE… --nats URLS …` on 127.0.0.1:0, once it reaches the stream.
async fn serve(cluster: &NatsCluster, args: &[&str]) -> BinaryServer {
    let urls = cluster.urls();
    let mut all = args.to_vec();
    all.extend(["--nats", urls.as_str()]);
    let server = BinaryServer::start(&all);
    support::nats::reaches_the_stream(&server.url, CATCH_UP_DEADLINE).await;
    server
}

fn report(sender: &str, id: &str) -> PerformanceData {
    PerformanceData {
        time_unix_nano: 1_700_000_000_000_000_000,
        sender: sender.into(),
        event: Event::NewBlockReceived as i32,
        message: format!("block of {id}"),
        report_id: id.into(),
    }
}

fn client(url: &str) -> Client {
    Client::connect_lazy(url).unwrap().with_policy(RetryPolicy {
        attempt_timeout: Some(WRITE_DEADLINE),
        ..RetryPolicy::exponential(50, Duration::from_millis(20), Duration::from_millis(500))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_report_id_through_two_servers_at_once_is_stored_once_and_both_acks_name_its_seq() {
    let cluster = NatsCluster::start(1).await;
    let a = serve(&cluster, &["--memory"]).await;
    let b = serve(&cluster, &["--memory"]).await;
    let (to_a, to_b) = (client(&a.url), client(&b.url));
    let mut acks = HashMap::new();
    let mut duplicates_on = [0, 0];
    for i in 0..300 {
        let id = format!("both-{i}");
        let (from_a, from_b) = tokio::join!(
            to_a.send_performance_stat_with_retries(report("2f", &id)),
            to_b.send_performance_stat_with_retries(report("2f", &id)),
        );
        let (from_a, from_b) = (from_a.unwrap(), from_b.unwrap());
        assert_eq!(
            from_a.seq, from_b.seq,
            "{id}: both ACKs name the seq it is stored at"
        );
        assert!(
            from_a.duplicate != from_b.duplicate,
            "{id}: one copy is stored, the other is its duplicate (a {}, b {})",
            from_a.duplicate,
            from_b.duplicate
        );
        duplicates_on[usize::from(from_b.duplicate)] += 1;
        acks.insert(id, from_a.seq);
    }
    // Both servers took both roles: the copies did race (neither always won).
    println!(
        "copies answered as duplicates: a {}, b {}",
        duplicates_on[0], duplicates_on[1]
    );
    assert!(
        duplicates_on.iter().all(|&count| count > 0),
        "one server always won: the copies did not race ({duplicates_on:?})"
    );
    stored_once_everywhere(&[&a.url, &b.url], &acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_stats_call_cut_by_a_killed_server_is_made_whole_by_its_retry() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let db_a = dir.path().join("a.db").to_string_lossy().to_string();
    let a = serve(&cluster, &["--db", &db_a]).await;
    let b = serve(&cluster, &["--memory"]).await;
    let reports: Vec<PerformanceData> = (0..perfstats::server::MAX_STREAM_REPORTS)
        .map(|i| report(&format!("n{}", i % 40), &format!("call-{i}")))
        .collect();
    let mut stub = PerformanceStatsClient::connect(a.url.clone())
        .await
        .unwrap();
    let call = {
        let reports = reports.clone();
        tokio::spawn(async move { stub.report_stats(tokio_stream::iter(reports)).await })
    };
    // Cut once part of the call is in the stream (the other server has applied some).
    wait_until(
        CATCH_UP_DEADLINE,
        "part of the call to be applied by the other server",
        async || {
            metric(&b.url, None, "perfstats_stream_applied_seq")
                .await
                .is_some_and(|stored| stored > 0.0)
        },
    )
    .await;
    a.kill9();
    let cut = within(WRITE_DEADLINE, "the cut call to end", call)
        .await
        .unwrap();
    assert!(
        cut.is_err(),
        "the call ended before the server was killed: make it longer"
    );
    let retried = within(
        WRITE_DEADLINE * 4,
        "the retried call's answer",
        client(&b.url).send_batch_with_retries(reports.clone()),
    )
    .await
    .unwrap();
    println!(
        "retry: {} stored now, {} duplicates",
        retried.accepted, retried.duplicates
    );
    assert!(
        retried.duplicates > 0 && retried.duplicates < reports.len() as u64,
        "part of the call was stored before the cut ({} duplicates)",
        retried.duplicates
    );
    assert_eq!(
        retried.accepted + retried.duplicates,
        reports.len() as u64,
        "every report answered"
    );
    // The killed server, back on its database, catches up to the same reports at
    // the same seqs.
    let a = serve(&cluster, &["--db", &db_a]).await;
    let on_b = stored(&b.url).await;
    assert_eq!(on_b.len(), reports.len(), "each report stored once");
    stored_once_everywhere(&[&a.url, &b.url], &on_b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sends_go_through_the_stream() {
    let cluster = NatsCluster::start(1).await;
    let a = serve(&cluster, &["--memory"]).await;
    let b = serve(&cluster, &["--memory"]).await;
    let sends = (0..50).map(|i| {
        let url = if i % 2 == 0 {
            a.url.clone()
        } else {
            b.url.clone()
        };
        async move {
            let response = http()
                .post(format!("{url}/send"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!(
                    "time={i}&sender=legacy&eventtype=new-block-received&message=b{i}"
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "POST /send {i}");
            assert_eq!(response.text().await.unwrap(), "ACK");
        }
    });
    within(
        WRITE_DEADLINE,
        "50 sends",
        futures_util::future::join_all(sends),
    )
    .await;
    let on_a = stored(&a.url).await;
    assert_eq!(on_a.len(), 50, "every send stored once");
    stored_once_everywhere(&[&a.url, &b.url], &on_a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_budget_of_reports_awaiting_a_write_is_refused_resource_exhausted() {
    let cluster = NatsCluster::start(1).await;
    let a = serve(&cluster, &["--memory", "--nats-max-awaiting", "100"]).await;
    let batch = |prefix: &str| -> Vec<PerformanceData> {
        (0..100)
            .map(|i| report("budget", &format!("{prefix}-{i}")))
            .collect()
    };
    // NATS paused: the first call's 100 reports await JetStream's ack (up to its
    // 3 s timeout), the whole budget.
    cluster.pause(0);
    let first = {
        let mut stub = PerformanceStatsClient::connect(a.url.clone())
            .await
            .unwrap();
        let reports = batch("first");
        tokio::spawn(async move { stub.report_stats(tokio_stream::iter(reports)).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut stub = PerformanceStatsClient::connect(a.url.clone())
        .await
        .unwrap();
    let refused = within(
        WRITE_DEADLINE,
        "the second call's answer",
        stub.report_stats(tokio_stream::iter(batch("second"))),
    )
    .await
    .unwrap_err();
    cluster.resume(0);
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("budget of 100 reports awaiting"),
        "the answer names the budget: {}",
        refused.message()
    );
    let first = within(WRITE_DEADLINE, "the first call's answer", first)
        .await
        .unwrap();
    // Its publish went out once NATS resumed: stored, or timed out meanwhile.
    match first {
        Ok(ack) => assert_eq!(ack.into_inner().accepted, 100),
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
    }
    // The budget is free again: writes go on once the stream answers.
    support::nats::reaches_the_stream(&a.url, CATCH_UP_DEADLINE).await;
    let ack = within(
        WRITE_DEADLINE * 2,
        "a write after the pause",
        client(&a.url).send_batch_with_retries(batch("third")),
    )
    .await
    .unwrap();
    assert_eq!(ack.accepted, 100);
    let on_a = stored(&a.url).await;
    assert!(
        on_a.keys().all(|id| !id.starts_with("second-")),
        "nothing of the refused call is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_a_release_before_batches_goes_on_at_the_right_seqs() {
    let cluster = NatsCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let db_text = db.to_string_lossy().to_string();
    // Reports in the stream one a message, as the release before batches wrote
    // them, applied by a server whose store then has no recorded position (that
    // release recorded none: its messages' seqs were its seqs).
    let client_nats = async_nats::connect(cluster.url(0)).await.unwrap();
    let jetstream = async_nats::jetstream::new(client_nats);
    let first = serve(&cluster, &["--memory"]).await;
    for i in 0..20 {
        let body = format!(
            r#"{{"time_unix_nano":{i},"received_unix_nano":{i},"sender":"old","event":"EVENT_NEW_BLOCK_RECEIVED","message":"m","report_id":"old-{i}"}}"#
        );
        jetstream
            .publish("PERFSTATS.reports", body.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let old = serve(&cluster, &["--db", &db_text]).await;
    wait_until(
        CATCH_UP_DEADLINE,
        "the old messages to be applied",
        async || stored(&old.url).await.len() == 20,
    )
    .await;
    old.terminate();
    let connection = rusqlite::Connection::open(&db).unwrap();
    let removed = connection
        .execute("DELETE FROM meta WHERE key = 'stream_position'", [])
        .unwrap();
    assert_eq!(removed, 1, "the new release records its position");
    drop(connection);
    // Batches meanwhile, through the other server.
    let batch: Vec<PerformanceData> = (0..500)
        .map(|i| report("new", &format!("new-{i}")))
        .collect();
    client(&first.url)
        .send_batch_with_retries(batch)
        .await
        .unwrap();
    let old = serve(&cluster, &["--db", &db_text]).await;
    let on_first = stored(&first.url).await;
    assert_eq!(on_first.len(), 520);
    assert_eq!(on_first["old-0"], 1);
    assert_eq!(
        on_first["new-0"], 21,
        "a batch's reports take the next seqs"
    );
    assert_eq!(on_first["new-499"], 520);
    stored_once_everywhere(&[&first.url, &old.url], &on_first).await;
}
