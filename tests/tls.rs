//! TLS on the one port: gRPC and HTTPS on one listener, the Rust client, the CLI and
//! grpcurl over TLS, mutual TLS for writes, clear failures for plaintext clients, and
//! handshakes that never hold up the accept loop. Certificates are made here
//! (`examples/test_certs.rs`, rcgen).

#[path = "../examples/test_certs.rs"]
#[allow(dead_code)]
mod certs;
mod support;

use certs::{Pair, TestCerts};
use perfstats::client::http::HttpClient;
use perfstats::client::{Client, ClientTls, RetryPolicy};
use perfstats::server::{Options, ServerTls, Tokens};
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

async fn tls_server(
    certs: &TestCerts,
    client_ca: bool,
    token: Option<&str>,
) -> support::TestServer {
    let tls = ServerTls::from_pem(
        certs.server.cert.as_bytes(),
        certs.server.key.as_bytes(),
        client_ca.then_some(certs.ca.cert.as_bytes()),
    )
    .unwrap();
    let options = Options {
        tls: Some(tls),
        tokens: Tokens {
            write: token.map(str::to_string),
            read: None,
        },
        ..Options::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_with(
        listener,
        Backend::Memory {
            max_reports: 10_000,
        },
        options,
    )
    .await
}

fn https(server: &support::TestServer) -> String {
    format!("https://{}", server.addr)
}

fn trusting(certs: &TestCerts) -> ClientTls {
    ClientTls::with_ca(certs.ca.cert.clone())
}

fn with_identity(certs: &TestCerts, pair: &Pair) -> ClientTls {
    trusting(certs).with_identity(pair.cert.clone(), pair.key.clone())
}

fn report(message: &str) -> PerformanceData {
    PerformanceData::new(0, "1f", Event::NewBlockReceived, message)
}

fn client(addr: &str, tls: &ClientTls) -> Client {
    Client::connect_lazy_with_tls(addr, tls)
        .unwrap()
        .with_policy(RetryPolicy::never())
}

/// One HTTP/1.1 exchange over TLS by hand: the ALPN protocol agreed and the raw
/// response (or why the connection failed).
async fn raw_https(
    server: &support::TestServer,
    certs: &TestCerts,
    identity: Option<&Pair>,
    alpn: &[&[u8]],
    request: &str,
) -> Result<(String, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certs.ca.cert.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        Some(pair) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|error| error.to_string())?;
    let agreed = tls
        .get_ref()
        .1
        .alpn_protocol()
        .map(|protocol| String::from_utf8_lossy(protocol).into_owned())
        .unwrap_or_default();
    if agreed == "h2" {
        return Ok((agreed, String::new()));
    }
    tls.write_all(request.as_bytes())
        .await
        .map_err(|error| error.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response).await {
        Ok(_) => {}
        // A peer that closes without close_notify still sent its answer.
        Err(error) if !response.is_empty() => drop(error),
        Err(error) => return Err(error.to_string()),
    }
    Ok((agreed, String::from_utf8_lossy(&response).into_owned()))
}

/// An error and its causes, one after the other.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text = format!("{text}: {next}");
        cause = next.source();
    }
    text
}

fn post_send(server: &support::TestServer, sender: &str) -> String {
    let body = format!("time=1&sender={sender}&eventtype=83&message=m");
    format!(
        "POST /send HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    )
}

fn get(server: &support::TestServer, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
}

#[tokio::test]
async fn the_rust_client_the_api_sse_and_tokens_work_over_tls() {
    let certs = certs::make();
    let server = tls_server(&certs, false, Some("t0ken")).await;
    let addr = https(&server);
    let node = client(&addr, &trusting(&certs));
    let refused = node
        .send_performance_stat(report("no token"))
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Code::Unauthenticated,
        "tokens stay in force over TLS"
    );
    let ack = node
        .clone()
        .with_token("t0ken")
        .unwrap()
        .send_performance_stat(report("over tls"))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);

    let http = HttpClient::with_tls(&addr, None, &trusting(&certs)).unwrap();
    let runs: serde_json::Value = serde_json::from_str(
        &http
            .get("/api/runs", &[])
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(runs[0]["reports"], 1);
    let mut stream = http.get("/api/stream?after=0", &[]).await.unwrap();
    let mut seen = String::new();
    while !seen.contains("over tls") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .expect("the live stream over TLS")
            .unwrap()
            .expect("more of the stream");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("event: report"), "{seen}");

    // The dashboard's page, and /send with the token, over HTTP/1.1 + TLS.
    let (_, page) = raw_https(&server, &certs, None, &[b"http/1.1"], &get(&server, "/"))
        .await
        .unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let send = post_send(&server, "legacy").replace(
        "Connection: close\r\n",
        "Connection: close\r\nAuthorization: Bearer t0ken\r\n",
    );
    let (_, answer) = raw_https(&server, &certs, None, &[b"http/1.1"], &send)
        .await
        .unwrap();
    assert!(answer.ends_with("ACK"), "{answer}");
    assert_eq!(server.store.current_run().reports, 2);
    server.stop().await;
}

#[tokio::test]
async fn one_port_offers_h2_and_http1_by_alpn() {
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let (agreed, _) = raw_https(&server, &certs, None, &[b"h2", b"http/1.1"], "")
        .await
        .unwrap();
    assert_eq!(agreed, "h2", "gRPC clients and browsers get HTTP/2");
    let (agreed, answer) = raw_https(
        &server,
        &certs,
        None,
        &[b"http/1.1"],
        &post_send(&server, "a"),
    )
    .await
    .unwrap();
    assert_eq!(agreed, "http/1.1");
    assert!(answer.ends_with("ACK"), "{answer}");
    let (agreed, answer) = raw_https(&server, &certs, None, &[], &get(&server, "/api/runs"))
        .await
        .unwrap();
    assert_eq!(agreed, "", "no ALPN at all still works (HTTP/1.1)");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn plaintext_and_untrusting_clients_fail_clearly() {
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let plain = format!("http://{}", server.addr);

    let status = Client::connect_lazy(&plain)
        .unwrap()
        .with_policy(RetryPolicy::default())
        .send_performance_stat_with_retries(report("in the clear"))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "not retried: {status:?}"
    );
    assert!(
        status.message().contains("requires TLS") && status.message().contains("https://"),
        "{status:?}"
    );

    let error = HttpClient::new(&plain, None)
        .get("/api/runs", &[])
        .await
        .unwrap_err();
    assert_eq!(error.status, Some(400));
    assert!(error.message.contains("requires TLS"), "{error}");

    // A client trusting another CA: the certificate is named as the problem.
    let other = certs::make();
    let status = client(&https(&server), &trusting(&other))
        .send_performance_stat(report("wrong CA"))
        .await
        .unwrap_err();
    assert!(status.message().contains("certificate"), "{status:?}");
    let error = HttpClient::with_tls(&https(&server), None, &trusting(&other))
        .unwrap()
        .get("/api/runs", &[])
        .await
        .unwrap_err();
    assert!(
        error.message.contains("invalid peer certificate"),
        "{error}"
    );

    // Settings that cannot work are refused before any connection.
    let error = Client::connect_lazy_with_tls(&plain, &trusting(&certs)).unwrap_err();
    assert!(
        error.to_string().contains("need an https:// address"),
        "{error}"
    );
    let error = Client::connect_lazy_with_tls(&https(&server), &ClientTls::default()).unwrap_err();
    assert!(error.to_string().contains("--ca"), "{error}");
    assert!(HttpClient::with_tls(&plain, None, &trusting(&certs)).is_err());
    assert!(
        ServerTls::from_pem(b"nothing", certs.server.key.as_bytes(), None)
            .unwrap_err()
            .contains("--tls-cert")
    );

    assert_eq!(server.store.current_run().reports, 0);
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_for_writes_only() {
    let certs = certs::make();
    let server = tls_server(&certs, true, None).await;
    let addr = https(&server);

    let status = client(&addr, &trusting(&certs))
        .send_performance_stat(report("no certificate"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("client certificate"),
        "{status:?}"
    );
    let (_, answer) = raw_https(
        &server,
        &certs,
        None,
        &[b"http/1.1"],
        &post_send(&server, "x"),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("client certificate"), "{answer}");
    let new_run = "POST /api/runs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                   Content-Length: 2\r\nConnection: close\r\n\r\n{}";
    let (_, answer) = raw_https(&server, &certs, None, &[b"http/1.1"], new_run)
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");

    // A certificate of another CA does not get through the handshake.
    let stranger = client(&addr, &with_identity(&certs, &certs.stranger))
        .send_performance_stat(report("stranger"))
        .await
        .unwrap_err();
    // The server's alert ends the connection: tonic says "transport error" with
    // the alert as its cause.
    assert_eq!(stranger.code(), Code::Unknown, "{stranger:?}");
    assert!(
        causes(&stranger).contains("received fatal alert: UnknownCA"),
        "{stranger:?}"
    );
    let refused = raw_https(
        &server,
        &certs,
        Some(&certs.stranger),
        &[b"http/1.1"],
        &post_send(&server, "stranger"),
    )
    .await;
    assert_eq!(
        refused,
        Err("received fatal alert: UnknownCA".to_string()),
        "a handshake refused for the certificate"
    );
    assert_eq!(
        server.store.current_run().reports,
        0,
        "nothing stored so far"
    );

    // Reads need no certificate.
    let http = HttpClient::with_tls(&addr, None, &trusting(&certs)).unwrap();
    assert!(http.get("/api/reports", &[]).await.is_ok());

    // The CA's own client certificate writes, by gRPC and by /send.
    let ack = client(&addr, &with_identity(&certs, &certs.client))
        .send_performance_stat(report("with a certificate"))
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    let (_, answer) = raw_https(
        &server,
        &certs,
        Some(&certs.client),
        &[b"http/1.1"],
        &post_send(&server, "legacy"),
    )
    .await
    .unwrap();
    assert!(answer.ends_with("ACK"), "{answer}");
    assert_eq!(server.store.current_run().reports, 2);
    let metrics = http
        .get("/metrics", &[])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"reason="client_cert"} 3"#), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn a_silent_or_slow_handshake_does_not_hold_up_others() {
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let mut idle = Vec::new();
    for index in 0..50 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        if index % 2 == 0 {
            // The first byte of a TLS record, then nothing.
            tcp.write_all(&[0x16]).await.unwrap();
        }
        idle.push(tcp);
    }
    let started = Instant::now();
    let ack = tokio::time::timeout(
        Duration::from_secs(3),
        client(&https(&server), &trusting(&certs)).send_performance_stat(report("past the idle")),
    )
    .await
    .expect("a real client is served while 50 handshakes stall")
    .unwrap();
    assert_eq!(ack.seq, 1);
    println!(
        "served in {:?} beside 50 stalled handshakes",
        started.elapsed()
    );
    drop(idle);
    server.stop().await;
}

/// Runs `program ARGS` in a blocking task, at most [`support::COMMAND_DEADLINE`].
async fn run(program: PathBuf, args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let what = format!("{} {}", program.display(), args.join(" "));
        support::output_within(
            Command::new(program).args(&args).envs(envs),
            support::COMMAND_DEADLINE,
            &what,
        )
    })
    .await
    .unwrap()
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_and_calls_over_tls() {
    let certs = certs::make();
    let dir = tempfile::tempdir().unwrap();
    certs::write(&certs, dir.path()).unwrap();
    let ca = dir.path().join("ca.pem").display().to_string();
    let server = tls_server(&certs, false, None).await;
    let addr = server.addr.to_string();

    let listed = run(
        support::grpcurl(),
        strings(&["-cacert", &ca, &addr, "list"]),
        vec![],
    )
    .await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout)
            .lines()
            .any(|line| line == "perfstats.v1.PerformanceStats"),
        "{}",
        text(&listed.stdout)
    );
    let body =
        r#"{"sender": "1f", "event": "EVENT_NEW_BLOCK_RECEIVED", "message": "grpcurl over tls"}"#;
    let called = run(
        support::grpcurl(),
        strings(&[
            "-cacert",
            &ca,
            "-d",
            body,
            &addr,
            "perfstats.v1.PerformanceStats/ReportStat",
        ]),
        vec![],
    )
    .await;
    assert!(called.status.success(), "{}", text(&called.stderr));
    assert!(
        text(&called.stdout).contains(r#""seq": "1""#),
        "{}",
        text(&called.stdout)
    );

    let plain = run(
        support::grpcurl(),
        strings(&["-plaintext", &addr, "list"]),
        vec![],
    )
    .await;
    assert!(!plain.status.success());
    assert!(
        text(&plain.stderr).contains("requires TLS"),
        "{}",
        text(&plain.stderr)
    );
    assert_eq!(server.store.current_run().reports, 1);
    server.stop().await;
}

/// `perfstats serve --listen 127.0.0.1:0 --memory ARGS`.
fn start_binary(args: &[&str]) -> support::BinaryServer {
    support::BinaryServer::start(&[&["--memory"], args].concat())
}

/// `perfstats ARGS` (a client command, or a `serve` that fails at start), with the
/// address and token variables unset, at most [`support::COMMAND_DEADLINE`].
fn cli(args: &[&str]) -> Output {
    support::output_within(
        Command::new(env!("CARGO_BIN_EXE_perfstats"))
            .args(args)
            .env_remove("PERFSTATS_ADDR")
            .env_remove("PERFSTATS_TOKEN"),
        support::COMMAND_DEADLINE,
        &format!("perfstats {}", args.join(" ")),
    )
}

fn as_str(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

#[test]
fn the_cli_serves_and_reports_over_tls_with_client_certificates() {
    let certs = certs::make();
    let dir = tempfile::tempdir().unwrap();
    certs::write(&certs, dir.path()).unwrap();
    let file = |name: &str| path(dir.path(), name);
    let server = start_binary(&[
        "--tls-cert",
        &file("server.pem"),
        "--tls-key",
        &file("server.key"),
        "--client-ca",
        &file("ca.pem"),
    ]);
    let url = server.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let report_args = |extra: &[&str]| {
        let mut args = vec![
            "report",
            "--addr",
            &url,
            "--sender",
            "1f",
            "--event",
            "83",
            "--message",
            "m",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };

    let ca = file("ca.pem");
    let (cert, key) = (file("client.pem"), file("client.key"));
    let args = report_args(&["--ca", &ca, "--cert", &cert, "--key", &key]);
    let ok = cli(&as_str(&args));
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).starts_with("seq=1 "),
        "{}",
        text(&ok.stdout)
    );

    // The same through the environment.
    let args = report_args(&[]);
    let ok = support::output_within(
        Command::new(env!("CARGO_BIN_EXE_perfstats"))
            .args(as_str(&args))
            .env("PERFSTATS_CA", &ca)
            .env("PERFSTATS_CERT", &cert)
            .env("PERFSTATS_KEY", &key),
        support::COMMAND_DEADLINE,
        "perfstats report with PERFSTATS_CA, PERFSTATS_CERT and PERFSTATS_KEY",
    );
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    let args = report_args(&["--ca", &ca]);
    let refused = cli(&as_str(&args));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("client certificate"),
        "{}",
        text(&refused.stderr)
    );

    let plain = url.replace("https://", "http://");
    let refused = cli(&[
        "report",
        "--addr",
        &plain,
        "--sender",
        "1f",
        "--event",
        "83",
        "--message",
        "m",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("requires TLS"),
        "{}",
        text(&refused.stderr)
    );
    let refused = cli(&["runs", "--addr", &plain]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("requires TLS"),
        "{}",
        text(&refused.stderr)
    );

    let runs = cli(&["runs", "--addr", &url, "--ca", &ca]);
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    assert!(
        text(&runs.stdout).contains("run-1"),
        "{}",
        text(&runs.stdout)
    );
    let export = cli(&["export", "--addr", &url, "--ca", &ca, "--format", "ndjson"]);
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert_eq!(
        text(&export.stdout).lines().count(),
        2,
        "{}",
        text(&export.stdout)
    );
    let missing_ca = cli(&["runs", "--addr", &url]);
    assert_eq!(missing_ca.status.code(), Some(1));
    assert!(
        text(&missing_ca.stderr).contains("--ca"),
        "{}",
        text(&missing_ca.stderr)
    );
    assert!(server.terminate().success(), "SIGTERM ends it with 0");

    // Unusable files stop `serve` at start-up, naming the flag and the file.
    let failed = cli(&[
        "serve",
        "--memory",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &file("missing.pem"),
        "--tls-key",
        &file("server.key"),
    ]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        text(&failed.stderr).contains("--tls-cert") && text(&failed.stderr).contains("missing.pem"),
        "{}",
        text(&failed.stderr)
    );
    let usage = cli(&["serve", "--memory", "--tls-cert", &file("server.pem")]);
    assert_eq!(usage.status.code(), Some(2), "--tls-cert needs --tls-key");
}

/// Figures, not promises: the cost of a TLS handshake and of unary calls over TLS
/// against plaintext, on this machine, in-process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cost_figures() {
    const CALLS: u32 = 2_000;
    const CONNECTIONS: u32 = 100;
    let certs = certs::make();
    let tls = tls_server(&certs, false, None).await;
    let plain = support::spawn_server().await;
    for (name, addr, settings) in [
        ("plaintext", plain.url(), ClientTls::default()),
        ("tls", https(&tls), trusting(&certs)),
    ] {
        let node = client(&addr, &settings);
        node.send_performance_stat(report("warm-up")).await.unwrap();
        let started = Instant::now();
        for _ in 0..CALLS {
            node.send_performance_stat(report("m")).await.unwrap();
        }
        let unary = started.elapsed() / CALLS;
        let started = Instant::now();
        for _ in 0..CONNECTIONS {
            client(&addr, &settings)
                .send_performance_stat(report("fresh"))
                .await
                .unwrap();
        }
        let fresh = started.elapsed() / CONNECTIONS;
        println!(
            "{name}: {unary:?} per unary report on one connection; {fresh:?} per report on a new connection"
        );
    }
    // What was timed was stored: every call, on one connection and on fresh ones.
    for server in [&tls, &plain] {
        assert_eq!(
            server.store.current_run().reports,
            u64::from(1 + CALLS + CONNECTIONS)
        );
    }
    tls.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn an_https_address_without_a_ca_fails_on_use_not_at_construction() {
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let error = HttpClient::new(&https(&server), None)
        .get("/api/runs", &[])
        .await
        .unwrap_err();
    assert!(
        error.message.contains("invalid peer certificate"),
        "{error}"
    );
    server.stop().await;
}

/// A TLS server on 127.0.0.1:0 presenting `pair` (signed by `certs.ca`).
async fn tls_server_presenting(pair: &Pair) -> support::TestServer {
    let tls = ServerTls::from_pem(pair.cert.as_bytes(), pair.key.as_bytes(), None).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_with(
        listener,
        Backend::Memory { max_reports: 100 },
        Options {
            tls: Some(tls),
            ..Options::default()
        },
    )
    .await
}

/// `perfstats ARGS`, run from a blocking task (the server is in this process).
async fn cli_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || cli(&as_str(&args)))
        .await
        .unwrap()
}

/// A certificate the right CA signed for another name (`other.example`) is refused
/// on 127.0.0.1 by every client: the names are checked, not only the signature.
/// And a CA other than the one that signed the server's certificate is refused by
/// the CLI as it is by the Rust clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_check_the_name_and_the_ca_of_the_certificate() {
    let certs = certs::make();
    let dir = tempfile::tempdir().unwrap();
    certs::write(&certs, dir.path()).unwrap();
    let other = certs::make();
    std::fs::write(dir.path().join("other-ca.pem"), &other.ca.cert).unwrap();
    let ca = path(dir.path(), "ca.pem");
    let other_ca = path(dir.path(), "other-ca.pem");
    let elsewhere = tls_server_presenting(&certs.elsewhere).await;
    let addr = https(&elsewhere);

    let status = client(&addr, &trusting(&certs))
        .send_performance_stat(report("to the wrong name"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let wrong_name = |text: &str| {
        text.contains("certificate not valid for name \"127.0.0.1\"")
            && text.contains("other.example")
    };
    assert!(wrong_name(status.message()), "{status:?}");
    let error = HttpClient::with_tls(&addr, None, &trusting(&certs))
        .unwrap()
        .get("/api/runs", &[])
        .await
        .unwrap_err();
    assert_eq!(error.status, None, "{error}");
    assert!(wrong_name(&error.message), "{error}");

    let report_to = |addr: &str, ca: &str| {
        strings(&[
            "report",
            "--addr",
            addr,
            "--ca",
            ca,
            "--sender",
            "1f",
            "--event",
            "83",
            "--message",
            "m",
        ])
    };
    for args in [
        report_to(&addr, &ca),
        strings(&["runs", "--addr", &addr, "--ca", &ca]),
    ] {
        let refused = cli_async(args.clone()).await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            wrong_name(&text(&refused.stderr)),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }
    assert_eq!(elsewhere.store.current_run().reports, 0);

    // The right name, but --ca names another CA (another `certs::make()`: the same
    // name, another key, so the server's certificate's signature does not verify).
    let server = tls_server(&certs, false, None).await;
    let addr = https(&server);
    for args in [
        report_to(&addr, &other_ca),
        strings(&["runs", "--addr", &addr, "--ca", &other_ca]),
    ] {
        let refused = cli_async(args.clone()).await;
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert!(
            text(&refused.stderr).contains("invalid peer certificate: BadSignature"),
            "{args:?}: {}",
            text(&refused.stderr)
        );
    }
    // And the right one works, so what failed above was the certificate.
    let ok = cli_async(report_to(&addr, &ca)).await;
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert_eq!(server.store.current_run().reports, 1);
    elsewhere.stop().await;
    server.stop().await;
}

/// The handshake deadline, on a frozen clock (`support::FrozenClock`): a client that
/// connects and sends nothing, and one that sends the first byte of a TLS record and
/// then nothing, are closed by the server at 10 s, not before.
#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_is_closed_at_10_s() {
    const REAL: Duration = Duration::from_secs(30);
    const JUST: Duration = Duration::from_millis(100);
    let clock = support::FrozenClock::new();
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut started = TcpStream::connect(server.addr).await.unwrap();
    started.write_all(&[0x16]).await.unwrap();
    // A whole exchange after them: both were accepted, their deadlines set, before
    // the clock moves (and the server answers while they stall).
    let barrier = || async {
        let (_, answer) = clock
            .within(
                REAL,
                "a TLS exchange beside the stalled ones",
                raw_https(
                    &server,
                    &certs,
                    None,
                    &[b"http/1.1"],
                    &get(&server, "/api/runs"),
                ),
            )
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    };
    barrier().await;
    clock.advance(HANDSHAKE_DEADLINE - JUST).await;
    barrier().await;
    let mut byte = [0u8; 1];
    for (name, stream) in [("silent", &silent), ("started", &started)] {
        let open = stream.try_read(&mut byte);
        assert!(
            open.as_ref()
                .is_err_and(|error| error.kind() == std::io::ErrorKind::WouldBlock),
            "{name}: not open before 10 s: {open:?}"
        );
    }
    clock.advance(2 * JUST).await;
    for (name, mut stream) in [("silent", silent), ("started", started)] {
        let read = clock
            .within(
                REAL,
                &format!("the {name} handshake's connection to close"),
                stream.read(&mut byte),
            )
            .await;
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "{name}: {read:?} instead of the connection's end"
        );
    }
    clock
        .within(REAL, "the server to stop", server.stop())
        .await;
}

/// How long a TLS handshake may take (`src/server/tls.rs`, README: 10 s).
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// The TLS accept loop takes connections before their handshakes (outside the
/// connection cap), so it can run out of descriptors: the real binary under a
/// descriptor limit of 96, with 150 connections that never handshake, holds every
/// descriptor, backs off instead of spinning (CPU measured over 2 s), and serves a
/// real client again once they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_tls_accept_loop_backs_off_and_recovers() {
    const LIMIT: u64 = 96;
    let certs = certs::make();
    let dir = tempfile::tempdir().unwrap();
    certs::write(&certs, dir.path()).unwrap();
    let file = |name: &str| path(dir.path(), name);
    let server = support::BinaryServer::start_with_descriptors(
        &[
            "--memory",
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server.key"),
        ],
        LIMIT,
        LIMIT,
    );
    let pid = server.child.id();
    let (idle, _) = support::cpu_share(pid, async {
        tokio::time::sleep(Duration::from_secs(1)).await
    })
    .await;
    let mut attackers = Vec::new();
    for _ in 0..150 {
        attackers.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    support::wait_until(
        Duration::from_secs(30),
        "the server to hold every descriptor it may",
        async || support::descriptors(pid) as u64 >= LIMIT,
    )
    .await;
    let (busy, _) = support::cpu_share(pid, async {
        tokio::time::sleep(Duration::from_secs(2)).await
    })
    .await;
    let held = support::descriptors(pid);
    println!(
        "out of descriptors ({held} of {LIMIT} held): server CPU {:.1}% of a core (idle: {:.1}%)",
        busy * 100.0,
        idle * 100.0
    );
    // Backing off 20 ms between failed accepts costs a few hundred wake-ups a
    // second, near an idle server's ~0%; a loop retrying at once takes a whole core.
    assert!(
        busy < 0.2,
        "{:.0}% of a core while out of descriptors",
        busy * 100.0
    );
    drop(attackers);
    let ack = support::within(
        Duration::from_secs(30),
        "a real client served once the descriptors are free",
        client(&server.url, &trusting(&certs)).send_performance_stat(report("after")),
    )
    .await
    .unwrap();
    assert_eq!(ack.seq, 1);
    drop(server); // killed
}

/// Over TLS a page's origin is `https://`: a browser write (`Origin` sent) from the
/// same host and port over `http://`, or from the default port 443, is refused 403
/// and stores nothing; the server's own `https://` origin writes.
#[tokio::test]
async fn over_tls_only_the_https_origin_of_the_server_writes() {
    let certs = certs::make();
    let server = tls_server(&certs, false, None).await;
    let with_origin = |origin: String| {
        post_send(&server, "page").replace(
            "Connection: close\r\n",
            &format!("Connection: close\r\nOrigin: {origin}\r\n"),
        )
    };
    let port = server.addr.port();
    for origin in [
        format!("http://127.0.0.1:{port}"),
        "https://127.0.0.1".to_string(),
    ] {
        let (_, answer) = raw_https(
            &server,
            &certs,
            None,
            &[b"http/1.1"],
            &with_origin(origin.clone()),
        )
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 403"), "{origin}: {answer}");
        assert!(answer.contains("cross-origin"), "{origin}: {answer}");
    }
    assert_eq!(server.store.current_run().reports, 0);
    let own = format!("https://127.0.0.1:{port}");
    let (_, answer) = raw_https(&server, &certs, None, &[b"http/1.1"], &with_origin(own))
        .await
        .unwrap();
    assert!(answer.ends_with("ACK"), "{answer}");
    assert_eq!(server.store.current_run().reports, 1);
    server.stop().await;
}
