//! The gRPC contract: acks, validation, duplicates, streams, unknown methods.

mod support;

use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::{Event, PerformanceData};
use support::spawn_server;
use tonic::Code;

fn report(sender: &str, event: Event, message: &str) -> PerformanceData {
    PerformanceData::new(1_700_000_000_000_000_000, sender, event, message)
}

#[tokio::test]
async fn a_report_is_acked_and_readable_with_every_field() {
    let server = spawn_server().await;
    let sent = report("1f", Event::NewBlockReceived, "block 17");
    let ack = server
        .client()
        .send_performance_stat(sent.clone())
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    assert!(!ack.duplicate);
    assert_eq!(ack.run, "run-1");

    let page = server.get_json("/api/reports").await;
    let stored = &page["reports"][0];
    assert_eq!(stored["seq"], 1);
    assert_eq!(stored["run"], 1);
    assert_eq!(stored["time_unix_nano"], 1_700_000_000_000_000_000i64);
    assert!(stored["received_unix_nano"].as_i64().unwrap() > 1_700_000_000_000_000_000);
    assert_eq!(stored["sender"], "1f");
    assert_eq!(stored["event"], "EVENT_NEW_BLOCK_RECEIVED");
    assert_eq!(stored["message"], "block 17");
    assert_eq!(stored["report_id"], sent.report_id.as_str());
    assert_eq!(page["next"], serde_json::Value::Null);
    server.stop().await;
}

#[tokio::test]
async fn time_zero_is_stamped_with_the_receive_time() {
    let server = spawn_server().await;
    let mut sent = report("1f", Event::InitialSyncCompleted, "done");
    sent.time_unix_nano = 0;
    let before = perfstats::report::now_unix_nano();
    server.client().send_performance_stat(sent).await.unwrap();
    let after = perfstats::report::now_unix_nano();
    let stored = &server.get_json("/api/reports").await["reports"][0];
    let time = stored["time_unix_nano"].as_i64().unwrap();
    assert_eq!(time, stored["received_unix_nano"].as_i64().unwrap());
    assert!(
        before <= time && time <= after,
        "{before} <= {time} <= {after}"
    );
    server.stop().await;
}

#[tokio::test]
async fn every_validation_rule_is_refused_naming_the_field() {
    let server = spawn_server().await;
    let client = server.client();
    let cases: Vec<(PerformanceData, &str)> = vec![
        (
            report("", Event::NewBlockReceived, "m"),
            "sender: must not be empty",
        ),
        (
            report(&"s".repeat(257), Event::NewBlockReceived, "m"),
            "sender: must be at most 256 bytes",
        ),
        (
            report("s", Event::NewBlockReceived, ""),
            "message: must not be empty",
        ),
        (
            report("s", Event::NewBlockReceived, &"m".repeat(4097)),
            "message: must be at most 4096 bytes",
        ),
        (
            PerformanceData {
                event: 0,
                ..report("s", Event::NewBlockReceived, "m")
            },
            "event: must be a defined event",
        ),
        (
            PerformanceData {
                event: 99,
                ..report("s", Event::NewBlockReceived, "m")
            },
            "event: must be a defined event",
        ),
        (
            PerformanceData {
                time_unix_nano: -5,
                ..report("s", Event::NewBlockReceived, "m")
            },
            "time_unix_nano: must not be negative",
        ),
        (
            PerformanceData {
                report_id: "r".repeat(65),
                ..report("s", Event::NewBlockReceived, "m")
            },
            "report_id: must be at most 64 bytes",
        ),
    ];
    for (bad, expected) in cases {
        let status = client.send_performance_stat(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{expected}");
        assert!(
            status.message().starts_with(expected),
            "{:?} vs {expected}",
            status.message()
        );
    }
    assert_eq!(
        server.store.current_run().reports,
        0,
        "nothing refused was stored"
    );
    // The limits themselves are allowed.
    let at_the_limits = PerformanceData {
        report_id: "r".repeat(64),
        ..report(&"s".repeat(256), Event::NewBlockReceived, &"m".repeat(4096))
    };
    let ack = client.send_performance_stat(at_the_limits).await.unwrap();
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    assert_eq!(server.store.current_run().reports, 1);
    let stored = &server.get_json("/api/reports").await["reports"][0];
    assert_eq!(stored["report_id"], "r".repeat(64));
    server.stop().await;
}

#[tokio::test]
async fn a_repeated_report_id_stores_nothing_and_returns_the_first_seq() {
    let server = spawn_server().await;
    let client = server.client();
    let first = report("1f", Event::NewBlockReceived, "b1");
    client
        .send_performance_stat(report("2f", Event::NewBlockReceived, "other"))
        .await
        .unwrap();
    let original = client.send_performance_stat(first.clone()).await.unwrap();
    let again = client.send_performance_stat(first).await.unwrap();
    assert_eq!(original.seq, 2);
    assert!(!original.duplicate);
    assert_eq!(again.seq, 2);
    assert!(again.duplicate);
    assert_eq!(
        server.get_json("/api/reports").await["reports"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn report_stats_is_all_or_nothing() {
    let server = spawn_server().await;
    let mut stub = PerformanceStatsClient::connect(server.url()).await.unwrap();
    let mut batch: Vec<PerformanceData> = (0..10)
        .map(|i| report("1f", Event::TransactionReceived, &format!("tx {i}")))
        .collect();
    batch[7].sender.clear();
    let status = stub
        .report_stats(tokio_stream::iter(batch.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("report 7 (counting from 0): sender: must not be empty"),
        "{}",
        status.message()
    );
    assert_eq!(server.store.current_run().reports, 0);
    assert!(
        server.get_json("/api/reports").await["reports"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    batch[7].sender = "1f".into();
    let ack = stub
        .report_stats(tokio_stream::iter(batch.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ack.accepted, ack.duplicates, ack.run.as_str()),
        (10, 0, "run-1")
    );
    let again = stub
        .report_stats(tokio_stream::iter(batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, 10));
    assert_eq!(server.store.current_run().reports, 10);
    server.stop().await;
}

#[tokio::test]
async fn unknown_grpc_methods_are_unimplemented_and_health_is_serving() {
    let server = spawn_server().await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "perfstats.v1.PerformanceStats".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut grpc = tonic::client::Grpc::new(channel);
    for path in [
        "/perfstats.v1.PerformanceStats/NoSuchMethod",
        "/no.such.Service/Call",
    ] {
        grpc.ready().await.unwrap();
        let status = grpc
            .unary::<PerformanceData, perfstats::Ack, _>(
                tonic::Request::new(report("1f", Event::NewBlockReceived, "m")),
                path.parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_report_id_stored_in_an_earlier_run_is_a_duplicate() {
    let server = spawn_server().await;
    let client = server.client();
    let first = report("1f", Event::NewBlockReceived, "b1");
    let original = client.send_performance_stat(first.clone()).await.unwrap();
    assert_eq!((original.seq, original.run.as_str()), (1, "run-1"));
    server
        .store
        .new_run(Some("second".into()), Default::default())
        .await
        .unwrap();
    let again = client.send_performance_stat(first).await.unwrap();
    assert_eq!(
        (again.seq, again.duplicate, again.run.as_str()),
        (1, true, "run-1"),
        "answered with the original seq and run"
    );
    let runs = server.get_json("/api/runs").await;
    assert_eq!(
        (runs[0]["reports"].as_u64(), runs[1]["reports"].as_u64()),
        (Some(1), Some(0))
    );
    server.stop().await;
}

/// `ReportStats` takes at most `MAX_STREAM_REPORTS` reports and 64 MiB of text per
/// call: one report or one byte more is refused whole, nothing stored, naming the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_stats_refuses_streams_past_its_caps_and_stores_nothing() {
    use perfstats::server::MAX_STREAM_REPORTS;
    let server = spawn_server().await;
    let mut stub = PerformanceStatsClient::connect(server.url()).await.unwrap();
    let small = |i: usize| {
        let mut data = report("1f", Event::TransactionReceived, "t");
        data.report_id = format!("id{i}");
        data
    };
    let refused = stub
        .report_stats(tokio_stream::iter((0..=MAX_STREAM_REPORTS).map(small)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("stream: at most 100000 reports"),
        "{}",
        refused.message()
    );
    assert_eq!(server.store.current_run().reports, 0);

    // Reports of 4,097 bytes of text (a 1-byte sender, a 4,096-byte message): as
    // many as fit in 64 MiB, and one more, which crosses the cap.
    let big = |i: usize| {
        let mut data = report("1", Event::TransactionReceived, &"m".repeat(4096));
        data.report_id = format!("big{i}");
        data
    };
    let cap = 64usize << 20;
    let fits = cap / 4097;
    let refused = stub
        .report_stats(tokio_stream::iter((0..=fits).map(big)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("bytes of text"),
        "{}",
        refused.message()
    );
    assert_eq!(server.store.current_run().reports, 0);

    // Exactly at the report cap is taken whole.
    let ack = stub
        .report_stats(tokio_stream::iter((0..MAX_STREAM_REPORTS).map(small)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.accepted, MAX_STREAM_REPORTS as u64);
    assert_eq!(
        server.store.current_run().reports,
        MAX_STREAM_REPORTS as u64
    );
    server.stop().await;
}
