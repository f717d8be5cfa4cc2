//! OTLP logs from real OpenTelemetry clients: the Python SDK (`LoggerProvider`,
//! `BatchLogRecordProcessor`, the OTLP exporters over gRPC and HTTP, configured by
//! the standard environment variables), grpcurl through reflection, and curl
//! posting OTLP/JSON. A seven-node run sent over OTLP gives the same analysis as
//! the same run sent with `ReportStats`. scripts/test.sh installs the SDK and the
//! exporters into target/tools/py; without them this fails.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::{Event, PerformanceData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const MS: i64 = 1_000_000;
/// How long the SDK script may take to emit, flush and shut down.
const EMIT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs tests/otlp/emit.py with `protocol` (`grpc` or `http`) and `env` (the
/// `OTEL_EXPORTER_OTLP_*` variables), `reports` as its records; its output.
async fn emit(
    protocol: &str,
    env: &[(&str, String)],
    reports: &[PerformanceData],
) -> std::process::Output {
    let lines: String = reports
        .iter()
        .map(|report| {
            let event = Event::try_from(report.event).unwrap();
            json!({
                "sender": report.sender,
                "event": event.as_str_name(),
                "message": report.message,
                "time_unix_nano": report.time_unix_nano,
            })
            .to_string()
                + "\n"
        })
        .collect();
    let mut command = Command::new(support::tools_python(
        "opentelemetry-sdk opentelemetry-exporter-otlp-proto-grpc opentelemetry-exporter-otlp-proto-http",
    ));
    command
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/emit.py"))
        .arg(protocol)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command.spawn().expect("spawn the Python SDK script");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(lines.as_bytes())
            .unwrap();
        let status = support::wait_child(&mut child, EMIT_DEADLINE, "emit.py to flush");
        let mut output = std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut output.stderr)
            .unwrap();
        output
    })
    .await
    .unwrap()
}

fn endpoint(server: &support::TestServer) -> (&'static str, String) {
    ("OTEL_EXPORTER_OTLP_ENDPOINT", server.url())
}

/// Every stored report as (sender, event, message, time), in time order.
async fn stored(server: &support::TestServer) -> Vec<(String, String, String, i64)> {
    let page = server.get_json("/api/reports?limit=10000").await;
    let mut reports: Vec<_> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|report| {
            (
                report["sender"].as_str().unwrap().to_string(),
                report["event"].as_str().unwrap().to_string(),
                report["message"].as_str().unwrap().to_string(),
                report["time_unix_nano"].as_i64().unwrap(),
            )
        })
        .collect();
    reports.sort_by_key(|report| (report.3, report.0.clone()));
    reports
}

fn expected(reports: &[PerformanceData]) -> Vec<(String, String, String, i64)> {
    let mut expected: Vec<_> = reports
        .iter()
        .map(|report| {
            (
                report.sender.clone(),
                Event::try_from(report.event)
                    .unwrap()
                    .as_str_name()
                    .to_string(),
                report.message.clone(),
                report.time_unix_nano,
            )
        })
        .collect();
    expected.sort_by_key(|report| (report.3, report.0.clone()));
    expected
}

fn assert_ran(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "emit.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_reports_over_grpc_and_http_with_gzip() {
    let server = support::spawn_server().await;
    let t0 = now_unix_nano() - 5_000 * MS;
    let over_grpc = vec![
        PerformanceData::new(t0, "1f", Event::Libp2pNodeIdKnown, "id known"),
        PerformanceData::new(t0 + MS, "1f", Event::InitialSyncCompleted, "synced"),
        PerformanceData::new(t0 + 2 * MS, "2f", Event::NewBlockReceived, "block 1"),
    ];
    let over_http = vec![
        PerformanceData::new(t0 + 3 * MS, "3f", Event::FirstPeerConnected, "peer"),
        PerformanceData::new(t0 + 4 * MS, "ra", Event::RaNewBlockSent, "block 2"),
    ];
    for (protocol, reports) in [("grpc", &over_grpc), ("http", &over_http)] {
        let gzip = ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_string());
        assert_ran(&emit(protocol, &[endpoint(&server), gzip], reports).await);
    }
    let all: Vec<PerformanceData> = over_grpc.into_iter().chain(over_http).collect();
    assert_eq!(stored(&server).await, expected(&all));
    let counted = support::metric(
        &server.url(),
        None,
        "perfstats_reports_stored_total{event=\"EVENT_NEW_BLOCK_RECEIVED\"}",
    )
    .await;
    assert_eq!(counted, Some(1.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protected_server_refuses_the_exporter_without_the_header() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = perfstats::server::Options {
        tokens: perfstats::server::Tokens {
            write: Some("s3cret".into()),
            read: None,
        },
        ..Default::default()
    };
    let backend = perfstats::store::Backend::Memory { max_reports: 100 };
    let server = support::serve_with(listener, backend, options).await;
    let report = [PerformanceData::new(
        now_unix_nano(),
        "1f",
        Event::InitialSyncCompleted,
        "synced",
    )];
    for protocol in ["grpc", "http"] {
        // The exporter drops a batch it was refused: the script still ends.
        emit(protocol, &[endpoint(&server)], &report).await;
    }
    assert_eq!(stored(&server).await, []);
    let refused = support::metric(
        &server.url(),
        None,
        "perfstats_rejected_total{reason=\"unauthenticated\"}",
    )
    .await;
    assert_eq!(refused, Some(2.0));
    let header = (
        "OTEL_EXPORTER_OTLP_HEADERS",
        "authorization=Bearer%20s3cret".to_string(),
    );
    assert_ran(&emit("grpc", &[endpoint(&server), header.clone()], &report).await);
    let mut second = report.clone();
    second[0].time_unix_nano += 1;
    assert_ran(&emit("http", &[endpoint(&server), header], &second).await);
    assert_eq!(stored(&server).await.len(), 2);
    server.stop().await;
}

/// A seven-node run: `ra` and six nodes start up, then 20 rounds of a problem,
/// winners and a block, with seeded latencies and one node naming another winner.
fn seven_nodes(start: i64) -> Vec<PerformanceData> {
    const NODES: [&str; 6] = ["1f", "2f", "3f", "4l", "5l", "6l"];
    let mut rng = StdRng::seed_from_u64(20);
    let mut reports = Vec::new();
    for (index, node) in ["ra"].iter().chain(NODES.iter()).enumerate() {
        let at = |ms: i64| start + (ms + index as i64 * 40) * MS;
        reports.push(PerformanceData::new(
            at(0),
            *node,
            Event::Libp2pNodeIdKnown,
            *node,
        ));
        reports.push(PerformanceData::new(
            at(100),
            *node,
            Event::FirstPeerConnected,
            "peer",
        ));
        let synced = 400 + rng.random_range(0..200);
        reports.push(PerformanceData::new(
            at(synced),
            *node,
            Event::InitialSyncCompleted,
            "synced",
        ));
    }
    for round in 0..20 {
        let problem = start + (2_000 + round * 1_000) * MS;
        reports.push(PerformanceData::new(
            problem,
            "ra",
            Event::RaNewProblemSent,
            format!("problem {round}"),
        ));
        for (index, node) in NODES.iter().enumerate() {
            let winner = if round == 7 && index == 2 { "5l" } else { "1f" };
            let at = problem + rng.random_range(100..300) * MS;
            reports.push(PerformanceData::new(
                at,
                *node,
                Event::BlockWinnerFound,
                winner,
            ));
        }
        let (sent, block) = support::block_sent(start + 1_500 * MS, round);
        reports.push(block);
        for (index, node) in NODES.iter().enumerate() {
            let latency = (rng.random_range(10..30) + 8 * index as i64) * MS;
            reports.push(PerformanceData::new(
                sent + latency,
                *node,
                Event::NewBlockReceived,
                format!("block {round}"),
            ));
        }
    }
    reports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seven_node_run_over_otlp_gives_the_same_analysis_as_over_report_stats() {
    let start = now_unix_nano() - 60_000 * MS;
    let run = seven_nodes(start);
    let (by_stubs, by_otlp) = (support::spawn_server().await, support::spawn_server().await);
    by_stubs
        .client()
        .send_batch_with_retries(run.clone())
        .await
        .unwrap();
    assert_ran(&emit("grpc", &[endpoint(&by_otlp)], &run).await);
    assert_eq!(stored(&by_otlp).await, expected(&run));
    let analysis = by_stubs.get_json("/api/analysis").await;
    assert_eq!(
        analysis["distributions"]["block"]["count"], 120,
        "{analysis}"
    );
    assert_eq!(
        analysis["nodes"].as_array().map(Vec::len),
        Some(7),
        "{analysis}"
    );
    assert_eq!(by_otlp.get_json("/api/analysis").await, analysis);
    by_stubs.stop().await;
    by_otlp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_describes_and_calls_export_through_reflection() {
    let server = support::spawn_server().await;
    let addr = server.addr.to_string();
    let grpcurl = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            support::output_within(
                Command::new(support::grpcurl()).args(args),
                Duration::from_secs(60),
                "grpcurl",
            )
        })
    };
    let args = |list: &[&str]| list.iter().map(|arg| arg.to_string()).collect::<Vec<_>>();
    let listed = grpcurl(args(&["-plaintext", &addr, "list"])).await.unwrap();
    let services = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        services
            .lines()
            .any(|line| line == "opentelemetry.proto.collector.logs.v1.LogsService"),
        "{services}"
    );
    assert!(!services.contains("TraceService"), "{services}");
    let described = grpcurl(args(&[
        "-plaintext",
        &addr,
        "describe",
        "opentelemetry.proto.logs.v1.LogRecord",
    ]))
    .await
    .unwrap();
    let description = String::from_utf8_lossy(&described.stdout);
    assert!(
        description.contains("string event_name = 12;"),
        "{description}"
    );
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [{"key": "service.instance.id", "value": {"stringValue": "grpcurl-node"}}]},
        "scopeLogs": [{"logRecords": [
            {"timeUnixNano": "1700000000000000000", "eventName": "EVENT_INITIAL_SYNC_COMPLETED", "body": {"stringValue": "synced"}},
            {"timeUnixNano": "1700000000000000001", "body": {"stringValue": "no event"}}
        ]}]
    }]});
    let called = grpcurl(args(&[
        "-plaintext",
        "-d",
        &body.to_string(),
        &addr,
        "opentelemetry.proto.collector.logs.v1.LogsService/Export",
    ]))
    .await
    .unwrap();
    assert!(
        called.status.success(),
        "{}",
        String::from_utf8_lossy(&called.stderr)
    );
    let answer: Value = serde_json::from_slice(&called.stdout).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    assert_eq!(
        stored(&server).await,
        [(
            "grpcurl-node".to_string(),
            "EVENT_INITIAL_SYNC_COMPLETED".to_string(),
            "synced".to_string(),
            1_700_000_000_000_000_000
        )]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_posts_otlp_json_with_hex_ids_string_integers_and_enum_names() {
    let server = support::spawn_server().await;
    let body = json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "curl-node"}},
            {"key": "pid", "value": {"intValue": "4242"}}
        ]},
        "scopeLogs": [{"scope": {"name": "shell"}, "logRecords": [
            {"timeUnixNano": "1700000000000000000", "severityNumber": "SEVERITY_NUMBER_INFO",
             "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
             "eventName": "first-peer-connected", "body": {"stringValue": "peer 1"}},
            {"observedTimeUnixNano": 1700000000000000001u64, "severityNumber": 9,
             "attributes": [{"key": "perfstats.event", "value": {"intValue": 83}},
                            {"key": "perfstats.sender", "value": {"stringValue": "other-node"}}],
             "body": {"kvlistValue": {"values": [{"key": "block", "value": {"intValue": "7"}}]}}}
        ]}]
    }]});
    let url = format!("{}/v1/logs", server.url());
    let output = tokio::task::spawn_blocking(move || {
        support::output_within(
            Command::new("curl").args([
                "-sS",
                "-H",
                "content-type: application/json",
                "--data-binary",
                &body.to_string(),
                "-w",
                "\n%{http_code} %{content_type}",
                &url,
            ]),
            Duration::from_secs(60),
            "curl",
        )
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        out,
        "{}\n200 application/json",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        stored(&server).await,
        [
            (
                "curl-node".to_string(),
                "EVENT_FIRST_PEER_CONNECTED".to_string(),
                "peer 1".to_string(),
                1_700_000_000_000_000_000
            ),
            (
                "other-node".to_string(),
                "EVENT_NEW_BLOCK_RECEIVED".to_string(),
                r#"{"block":7}"#.to_string(),
                1_700_000_000_000_000_001
            ),
        ]
    );
    server.stop().await;
}
