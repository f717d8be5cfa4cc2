//! Bearer tokens for writes and reads; the embedded files are all that is served.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::server::{Options, Tokens};
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::metadata::MetadataValue;

async fn guarded(write: Option<&str>, read: Option<&str>) -> support::TestServer {
    let options = Options {
        tokens: Tokens {
            write: write.map(str::to_string),
            read: read.map(str::to_string),
        },
        ..Options::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_with(listener, Backend::Memory { max_reports: 100 }, options).await
}

async fn report_with(
    server: &support::TestServer,
    token: Option<&str>,
) -> Result<u64, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut stub = perfstats::pb::performance_stats_client::PerformanceStatsClient::new(channel);
    let mut request =
        tonic::Request::new(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b"));
    if let Some(token) = token {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    Ok(stub.report_stat(request).await?.into_inner().seq)
}

#[tokio::test]
async fn writes_need_the_token_and_refusals_store_nothing() {
    let server = guarded(Some("s3cret"), None).await;
    for token in [None, Some("wrong"), Some("s3cret ")] {
        let status = report_with(&server, token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        assert!(status.message().contains("Bearer"), "{}", status.message());
    }
    // The retrying client does not retry a refusal.
    let refused = Client::connect_lazy(&server.url())
        .unwrap()
        .with_policy(RetryPolicy::default())
        .send_performance_stat_with_retries(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "b",
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(server.store.current_run().reports, 0);
    assert_eq!(report_with(&server, Some("s3cret")).await.unwrap(), 1);

    let http = reqwest::Client::new();
    let form = [
        ("time", "1"),
        ("sender", "old"),
        ("eventtype", "83"),
        ("message", "m"),
    ];
    let refused = http
        .post(format!("{}/send", server.url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["www-authenticate"], "Bearer");
    let refused = http
        .post(format!("{}/api/runs", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = http
        .post(format!("{}/send", server.url()))
        .bearer_auth("s3cret")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.text().await.unwrap(), "ACK");
    assert_eq!(server.store.current_run().reports, 2);
    // Reads stay open without a read token.
    assert_eq!(server.get_json("/api/runs").await[0]["reports"], 2);
    server.stop().await;
}

#[tokio::test]
async fn a_token_in_the_query_string_is_percent_decoded() {
    let server = guarded(Some("w"), Some("a+b/c=")).await;
    let status = |query: &'static str| {
        let url = format!("{}/api/runs?{query}", server.url());
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(status("token=a%2Bb%2Fc%3D").await, 200);
    assert_eq!(status("token=a+b/c=").await, 401, "a raw '+' is a space");
    server.stop().await;
}

#[tokio::test]
async fn a_read_token_guards_the_api_but_not_the_page_or_health() {
    let server = guarded(Some("w"), Some("r")).await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = reqwest::Client::new().get(format!("{}{path}", server.url()));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/api/reports", None).await, 401);
    assert_eq!(get("/messages", None).await, 401);
    assert_eq!(get("/api/reports", Some("r")).await, 200);
    assert_eq!(
        get("/api/reports", Some("w")).await,
        200,
        "the write token reads too"
    );
    assert_eq!(
        get("/api/reports?token=r", None).await,
        200,
        "for EventSource and downloads"
    );
    assert_eq!(get("/", None).await, 200);
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "health stays open: {health:?}");
    assert_eq!(
        report_with(&server, Some("r")).await.unwrap_err().code(),
        Code::Unauthenticated,
        "a read token cannot write"
    );
    server.stop().await;
}

#[tokio::test]
async fn nothing_outside_the_embedded_files_is_served() {
    let server = support::spawn_server().await;
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/static/../../Cargo.toml",
        "/..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "/src/lib.rs",
        "/perfstats.db",
    ] {
        let response = reqwest::get(format!("{}{path}", server.url()))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path}: {body}"
        );
    }
    server.stop().await;
}
