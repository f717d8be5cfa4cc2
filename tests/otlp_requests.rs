//! OTLP logs requests at their edges, over both transports (tonic's OTLP client from
//! `opentelemetry-proto`, and HTTP): mixed valid and invalid records answer exactly
//! the partial success and store exactly the valid ones; a resend stores nothing
//! twice; gzip bodies; oversized requests and gzip bombs get the status exporters
//! do not retry (gRPC `INVALID_ARGUMENT`, HTTP 413); a spent budget answers
//! `UNAVAILABLE` / 503 storing nothing; the HTTP handler's refusals, without a socket.

mod support;

use axum::body::Body;
use axum::http::Request;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use perfstats::otlp::{
    AnyValue, ExportLogsServiceRequest, ExportLogsServiceResponse, KeyValue, LogRecord, Resource,
    ResourceLogs, ScopeLogs, any_value::Value,
};
use prost::Message;
use std::io::Write;
use tonic::codec::CompressionEncoding;

fn text(value: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(value.into())),
    })
}

fn record(time: u64, event_name: &str, body: &str) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        event_name: event_name.into(),
        body: text(body),
        ..Default::default()
    }
}

fn request(sender: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.instance.id".into(),
                    value: text(sender),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Four records: two valid, one without an event, one with a message over 4 KiB.
fn mixed(sender: &str) -> ExportLogsServiceRequest {
    request(
        sender,
        vec![
            record(1_000, "initial-sync-completed", "synced"),
            record(2_000, "", "no event"),
            record(3_000, "new-block-received", &"m".repeat(4097)),
            record(4_000, "83", "block 1"),
        ],
    )
}

const MIXED_MESSAGE: &str = "2 of 4 log records refused, the first: log record 1 (counting from \
    0 across the request): event: missing: set the log record's event_name or the attribute \
    perfstats.event";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn post(url: &str, body: Vec<u8>, gzipped: bool) -> reqwest::Response {
    let mut post = support::http()
        .post(format!("{url}/v1/logs"))
        .header("content-type", "application/x-protobuf");
    if gzipped {
        post = post.header("content-encoding", "gzip");
    }
    post.body(body).send().await.unwrap()
}

async fn grpc(url: &str) -> LogsServiceClient<tonic::transport::Channel> {
    LogsServiceClient::connect(url.to_string())
        .await
        .unwrap()
        .max_encoding_message_size(64 << 20)
}

/// The reports stored in the current run.
async fn count(server: &support::TestServer) -> usize {
    server.get_json("/api/reports?limit=10000").await["reports"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_requests_store_the_valid_records_and_answer_the_partial_success() {
    let server = support::spawn_server().await;
    let url = server.url();
    let answer = grpc(&url)
        .await
        .export(mixed("1f"))
        .await
        .unwrap()
        .into_inner();
    let partial = answer.partial_success.unwrap();
    assert_eq!(
        (partial.rejected_log_records, partial.error_message.as_str()),
        (2, MIXED_MESSAGE)
    );
    let response = post(&url, mixed("2f").encode_to_vec(), false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let answer = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 2);
    assert_eq!(count(&server).await, 4);
    let text = support::metrics_text(&url, None).await;
    for reason in ["event", "message"] {
        let series = format!("perfstats_otlp_refused_log_records_total{{reason=\"{reason}\"}} 2");
        assert!(
            text.lines().any(|line| line == series),
            "{series} in {text}"
        );
    }

    // Nothing of which can be stored is still a success, everything rejected.
    let hopeless = request("3f", vec![record(1, "", "x"), record(2, "nope", "y")]);
    let answer = grpc(&url)
        .await
        .export(hopeless)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.partial_success.unwrap().rejected_log_records, 2);
    assert_eq!(count(&server).await, 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_request_stores_nothing_twice_and_gzip_works_on_both_transports() {
    let server = support::spawn_server().await;
    let url = server.url();
    let sent = request(
        "1f",
        vec![record(1_000, "83", "a"), record(2_000, "83", "b")],
    );
    let mut client = grpc(&url).await.send_compressed(CompressionEncoding::Gzip);
    for _ in 0..2 {
        let answer = client.export(sent.clone()).await.unwrap().into_inner();
        assert_eq!(answer.partial_success, None);
    }
    for _ in 0..2 {
        let response = post(&url, gzip(&sent.encode_to_vec()), true).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(count(&server).await, 2, "one exporter retry is a duplicate");
    let duplicates = support::metric(&url, None, "perfstats_duplicates_total").await;
    assert_eq!(duplicates, Some(6.0));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_and_gzip_bombs_get_statuses_exporters_do_not_retry() {
    let server = support::spawn_server().await;
    let url = server.url();
    // 1,100 records of 4 KiB: about 4.5 MiB of protobuf, over the 4 MiB limit.
    let records = (0..1_100)
        .map(|index| record(index + 1, "83", &"m".repeat(4096)))
        .collect();
    let big = request("1f", records);
    let status = grpc(&url).await.export(big.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("larger than 4194304 bytes"),
        "{status:?}"
    );
    let status = grpc(&url)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .export(big.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let response = post(&url, big.encode_to_vec(), false).await;
    assert_eq!(response.status(), 413);
    // A gzip bomb: small on the wire, past the limit once inflated.
    let bomb = gzip(&big.encode_to_vec());
    assert!(bomb.len() < 1 << 20, "{}", bomb.len());
    let response = post(&url, bomb, true).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    assert_eq!(count(&server).await, 0);
    let refused =
        support::metric(&url, None, "perfstats_rejected_total{reason=\"too_large\"}").await;
    assert_eq!(refused, Some(4.0));
    server.stop().await;
}

#[tokio::test]
async fn a_spent_budget_answers_unavailable_and_stores_nothing() {
    let server = support::spawn_with_limits(perfstats::server::LimitsConfig {
        max_stream_text: 1_000,
        ..Default::default()
    })
    .await;
    let url = server.url();
    let sent = request("1f", vec![record(1_000, "83", &"m".repeat(500))]);
    let status = grpc(&url).await.export(sent.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let response = post(&url, sent.encode_to_vec(), false).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(count(&server).await, 0);
    server.stop().await;
}

fn logs_request(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/logs")
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn the_http_handler_answers_in_the_requests_encoding_and_refuses_what_is_not_otlp() {
    let state = support::app_state();
    let json = r#"{"resourceLogs":[{"resource":{"attributes":[{"key":"host.name","value":{"stringValue":"h1"}}]},
        "scopeLogs":[{"logRecords":[{"timeUnixNano":"5","eventName":"83","body":{"stringValue":"b"}},
                                    {"timeUnixNano":"6","body":{"stringValue":"no event"}}]}]}]}"#;
    let answered = support::oneshot(
        &state,
        logs_request("application/json; charset=utf-8", json),
    )
    .await;
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(answered.body()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], "1", "{body}");

    let refused = support::oneshot(&state, logs_request("text/plain", "hello")).await;
    assert_eq!(refused.status(), 400);
    assert!(
        refused
            .body()
            .starts_with("content-type: OTLP/HTTP bodies are"),
        "{}",
        refused.body()
    );

    let broken = support::oneshot(&state, logs_request("application/json", "{")).await;
    assert_eq!(broken.status(), 400);
    let status: serde_json::Value = serde_json::from_str(broken.body()).unwrap();
    assert_eq!(
        status["code"], 3,
        "INVALID_ARGUMENT in a google.rpc.Status: {status}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("body: not JSON")
    );

    let get = Request::get("/v1/logs").body(Body::empty()).unwrap();
    assert_eq!(support::oneshot(&state, get).await.status(), 405);

    // A page on another origin cannot write through a visitor's browser.
    let cross = Request::post("/v1/logs")
        .header("content-type", "application/json")
        .header("origin", "http://evil.example")
        .header("host", "127.0.0.1:1")
        .body(Body::from(json))
        .unwrap();
    assert_eq!(support::oneshot(&state, cross).await.status(), 403);
    let reports = Request::get("/api/reports").body(Body::empty()).unwrap();
    let reports: serde_json::Value =
        serde_json::from_str(support::oneshot(&state, reports).await.body()).unwrap();
    assert_eq!(reports["reports"].as_array().unwrap().len(), 1, "{reports}");
}
