//! Bearer tokens for writes and reads; the embedded files are all that is served;
//! browsers' cross-site writes and DNS rebinding are refused, nodes never are.
//! (TLS and mutual TLS: `tests/tls.rs`; in a real browser: `tests/browser/security.test.mjs`.)

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::server::{AllowedHosts, Options, Tokens};
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

    let http = support::http();
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
        async move {
            support::http()
                .get(url)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("token=a%2Bb%2Fc%3D").await, 200);
    assert_eq!(status("token=a+b/c=").await, 401, "a raw '+' is a space");
    server.stop().await;
}

#[tokio::test]
async fn a_read_token_guards_the_api_but_not_the_page_or_health() {
    let server = guarded(Some("w"), Some("r")).await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = support::http().get(format!("{}{path}", server.url()));
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
        let response = support::http()
            .get(format!("{}{path}", server.url()))
            .send()
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

// Browsers: cross-site writes and DNS rebinding (src/server/origin.rs).

async fn allowing(hosts: &[&str]) -> support::TestServer {
    let options = Options {
        allowed_hosts: AllowedHosts::new(hosts),
        ..Options::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_with(listener, Backend::Memory { max_reports: 100 }, options).await
}

const FORM: [(&str, &str); 4] = [
    ("time", "1"),
    ("sender", "web"),
    ("eventtype", "Event_NewBlockReceived"),
    ("message", "forged"),
];

async fn metrics_text(server: &support::TestServer) -> String {
    support::metrics_text(&server.url(), None).await
}

/// `(status, body)` of a request.
async fn answer(request: reqwest::RequestBuilder) -> (u16, String) {
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn cross_site_browser_writes_are_refused_and_store_nothing() {
    let server = allowing(&[]).await;
    let http = support::http();
    let send = || http.post(format!("{}/send", server.url())).form(&FORM);
    // The form POST of the finding: a page on another site, no preflight.
    let (status, body) = answer(send().header("origin", "http://evil.example")).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("cross-origin") && body.contains("evil.example"),
        "{body}"
    );
    // Another port of the same machine is another origin (though the same site).
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    for headers in [
        vec![
            ("origin", other_port.as_str()),
            ("sec-fetch-site", "same-site"),
        ],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        vec![("origin", "null")],
        vec![
            ("origin", "http://evil.example"),
            ("sec-fetch-mode", "navigate"),
        ],
    ] {
        let mut request = send();
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        assert_eq!(answer(request).await.0, 403, "{headers:?}");
    }
    let (status, _) = answer(
        http.post(format!("{}/api/runs", server.url()))
            .header("origin", "http://evil.example")
            .header("content-type", "application/json")
            .body("{\"name\": \"forged\"}"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(server.store.current_run().reports, 0);
    assert_eq!(&*server.store.current_run().name, "run-1");

    // The dashboard's own writes are same-origin and go through.
    let own = server.url();
    let (status, body) = answer(
        send()
            .header("origin", &own)
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ACK"));
    // Node's fetch marks itself with Sec-Fetch-Mode only: not a page, so it writes.
    let (status, body) = answer(send().header("sec-fetch-mode", "cors")).await;
    assert_eq!((status, body.as_str()), (200, "ACK"));
    // And a cross-site *read* is answered (the browser keeps it from the page: no CORS).
    let (status, _) = answer(
        http.get(format!("{}/api/runs", server.url()))
            .header("origin", "http://evil.example")
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(server.store.current_run().reports, 2);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains(r#"perfstats_rejected_total{reason="cross_origin"} 6"#),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn nodes_reaching_the_server_by_a_service_name_keep_working() {
    let server = allowing(&[]).await;
    let http = support::http();
    let (status, body) = answer(
        http.post(format!("{}/send", server.url()))
            .header("host", "perfstats:12345")
            .form(&FORM),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ACK"));
    // gRPC with the service name as its authority.
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .origin("http://perfstats:12345".parse().unwrap())
        .connect()
        .await
        .unwrap();
    let ack = perfstats::pb::performance_stats_client::PerformanceStatsClient::new(channel)
        .report_stat(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b"))
        .await
        .unwrap();
    assert_eq!(ack.into_inner().seq, 2);
    let (status, _) = answer(
        http.get(format!("{}/api/reports", server.url()))
            .header("host", "perfstats:12345"),
    )
    .await;
    assert_eq!(status, 200, "scripts read by service name too");
    server.stop().await;
}

#[tokio::test]
async fn browser_requests_naming_a_foreign_host_are_refused_unless_allowed() {
    let refused = allowing(&[]).await;
    let allowed = allowing(&["evil.example"]).await;
    let any = allowing(&["*"]).await;
    let http = support::http();
    let rebinding = |server: &support::TestServer, path: &str| {
        http.get(format!("{}{path}", server.url()))
            .header("host", format!("evil.example:{}", server.addr.port()))
            .header("sec-fetch-mode", "cors")
            .header("sec-fetch-site", "same-origin")
    };
    for path in ["/api/reports", "/", "/api/stream", "/metrics"] {
        let (status, body) = answer(rebinding(&refused, path)).await;
        assert_eq!(status, 403, "{path}");
        assert!(
            body.contains("evil.example") && body.contains("--allow-host evil.example"),
            "{body}"
        );
    }
    // Over plain HTTP a rebinding page's fetch() carries neither Origin nor
    // Sec-Fetch-*, only the browser's User-Agent (see origin.rs).
    let (status, _) = answer(
        http.get(format!("{}/api/reports", refused.url()))
            .header("host", format!("evil.example:{}", refused.addr.port()))
            .header(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0",
            ),
    )
    .await;
    assert_eq!(status, 403);
    // A same-origin write from the rebinding page is refused for its Host as well.
    let (status, _) = answer(
        http.post(format!("{}/send", refused.url()))
            .header("host", format!("evil.example:{}", refused.addr.port()))
            .header(
                "origin",
                format!("http://evil.example:{}", refused.addr.port()),
            )
            .form(&FORM),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(refused.store.current_run().reports, 0);
    for server in [&allowed, &any] {
        assert_eq!(answer(rebinding(server, "/api/reports")).await.0, 200);
    }
    assert_eq!(
        answer(
            http.get(format!("{}/api/reports", any.url()))
                .header("host", "other.example")
                .header("origin", "http://other.example")
        )
        .await
        .0,
        200
    );
    // IP literals and localhost always pass.
    for host in [
        "127.0.0.1",
        "127.0.0.1:1",
        "[::1]:12345",
        "[::1]",
        "localhost:5",
        "10.0.0.7",
    ] {
        let (status, _) = answer(
            http.get(format!("{}/api/reports", refused.url()))
                .header("host", host)
                .header("sec-fetch-mode", "cors"),
        )
        .await;
        assert_eq!(status, 200, "{host}");
    }
    let metrics = metrics_text(&refused).await;
    assert!(
        metrics.contains(r#"perfstats_rejected_total{reason="host"} 6"#),
        "{metrics}"
    );
    for server in [refused, allowed, any] {
        server.stop().await;
    }
}

#[test]
fn allow_host_comes_from_flags_or_the_environment() {
    use std::process::Command;
    let status = |url: &str, host: &str| {
        let output = support::output_within(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .args(["-H", &format!("Host: {host}"), "-H", "Sec-Fetch-Mode: cors"])
                .arg(format!("{url}/api/runs")),
            support::HTTP_DEADLINE,
            &format!("curl {url}/api/runs with Host {host}"),
        );
        String::from_utf8(output.stdout).unwrap()
    };
    for (args, env) in [
        (
            vec!["--allow-host", "a.example", "--allow-host", "evil.example"],
            vec![],
        ),
        (
            vec![],
            vec![("PERFSTATS_ALLOW_HOST", "a.example,evil.example")],
        ),
    ] {
        let args = [&["--memory", "--listen", "127.0.0.1:0"], &args[..]].concat();
        let server = support::BinaryServer::start_with_env(&args, &env);
        let url = &server.url;
        assert_eq!(status(url, "evil.example:12345"), "200", "{args:?} {env:?}");
        assert_eq!(status(url, "a.example"), "200", "{args:?} {env:?}");
        assert_eq!(status(url, "b.example"), "403", "{args:?} {env:?}");
        server.kill9();
    }
}

/// The origin rule's edges (`src/server/origin.rs`): an `Origin` is the server's
/// own when its scheme, host and port (the scheme's default when absent) equal the
/// server's and the `Host` it was sent to; a host's trailing root dot does not make
/// another host. Each refusal stores nothing. (An `http://` origin to the TLS
/// server: `tests/tls.rs`.)
#[tokio::test]
async fn browser_writes_match_origin_ports_ipv6_and_trailing_dots_exactly() {
    let server = allowing(&[]).await;
    let http = support::http();
    let port = server.addr.port();
    let write = |host: String, origin: String| {
        let request = http
            .post(format!("{}/send", server.url()))
            .header("host", host)
            .header("origin", origin)
            .form(&FORM);
        async move { answer(request).await.0 }
    };
    let cases = [
        // An Origin without a port means the scheme's default (80), not the Host's.
        (
            format!("127.0.0.1:{port}"),
            "http://127.0.0.1".to_string(),
            403,
        ),
        (
            format!("localhost:{port}"),
            "http://localhost".to_string(),
            403,
        ),
        (
            "127.0.0.1:80".to_string(),
            "http://127.0.0.1".to_string(),
            200,
        ),
        (
            "localhost".to_string(),
            "http://localhost:80".to_string(),
            200,
        ),
        // IPv6: the same address and port pass; another port, another address, or
        // the IPv4 loopback for the IPv6 one do not.
        (format!("[::1]:{port}"), format!("http://[::1]:{port}"), 200),
        (
            format!("[::1]:{port}"),
            format!("http://[::1]:{}", port ^ 1),
            403,
        ),
        (format!("[::1]:{port}"), format!("http://[::2]:{port}"), 403),
        (
            format!("127.0.0.1:{port}"),
            format!("http://[::1]:{port}"),
            403,
        ),
        (
            format!("[::1]:{port}"),
            format!("http://127.0.0.1:{port}"),
            403,
        ),
        // A trailing dot names the same host (the DNS root); it does not let another
        // host in.
        (
            format!("localhost:{port}"),
            format!("http://localhost.:{port}"),
            200,
        ),
        (
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1.:{port}"),
            200,
        ),
        (
            format!("localhost:{port}"),
            format!("http://evil.example.:{port}"),
            403,
        ),
        (
            format!("localhost:{port}"),
            format!("http://localhost.evil.example:{port}"),
            403,
        ),
    ];
    let mut stored = 0;
    for (host, origin, expected) in &cases {
        assert_eq!(
            write(host.clone(), origin.clone()).await,
            *expected,
            "Host {host}, Origin {origin}"
        );
        stored += u64::from(*expected == 200);
        assert_eq!(
            server.store.current_run().reports,
            stored,
            "after Host {host}, Origin {origin}"
        );
    }
    let refused = cases.iter().filter(|case| case.2 == 403).count();
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains(&format!(
            r#"perfstats_rejected_total{{reason="cross_origin"}} {refused}"#
        )),
        "{metrics}"
    );
    server.stop().await;
}

/// A page's gRPC-Web-style call carries the page's `Origin` (and a browser's
/// `Sec-Fetch-*`): a foreign one is refused `PERMISSION_DENIED` naming it, nothing is
/// stored, and a foreign `Host` (authority) is refused naming the flag.
#[tokio::test]
async fn cross_site_grpc_writes_are_permission_denied_and_store_nothing() {
    let server = allowing(&[]).await;
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let call = |pairs: &[(&'static str, &str)]| {
        let mut request =
            tonic::Request::new(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b"));
        for (name, value) in pairs {
            request.metadata_mut().insert(*name, value.parse().unwrap());
        }
        let mut stub =
            perfstats::pb::performance_stats_client::PerformanceStatsClient::new(channel.clone());
        async move { stub.report_stat(request).await }
    };
    let status = call(&[("origin", "http://evil.example")])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("cross-origin") && status.message().contains("evil.example"),
        "{status:?}"
    );
    let status = call(&[("sec-fetch-site", "cross-site")]).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(server.store.current_run().reports, 0, "nothing stored");
    let foreign = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .origin("http://evil.example:12345".parse().unwrap())
        .connect()
        .await
        .unwrap();
    let mut request =
        tonic::Request::new(PerformanceData::new(0, "1f", Event::NewBlockReceived, "b"));
    request
        .metadata_mut()
        .insert("sec-fetch-mode", "cors".parse().unwrap());
    let status = perfstats::pb::performance_stats_client::PerformanceStatsClient::new(foreign)
        .report_stat(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("--allow-host evil.example"),
        "{status:?}"
    );
    assert_eq!(server.store.current_run().reports, 0, "nothing stored");
    // The same call from the server's own origin goes through.
    let own = server.url();
    let ack = call(&[("origin", own.as_str())]).await.unwrap();
    assert_eq!(ack.into_inner().seq, 1);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains(r#"perfstats_rejected_total{reason="cross_origin"} 2"#)
            && metrics.contains(r#"perfstats_rejected_total{reason="host"} 1"#),
        "{metrics}"
    );
    server.stop().await;
}
