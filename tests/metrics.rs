//! `/metrics` read directly (no Prometheus): every refusal reason the README lists
//! is counted, `--metrics-max-senders` folds the rest into `sender=""`, and a read token
//! guards `/metrics` and `/api/stream` like the rest of the API.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::metrics::Metrics;
use perfstats::server::{Options, Tokens};
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use std::sync::Arc;
use tokio::net::TcpListener;

async fn server_with(backend: Backend, options: Options) -> support::TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_with(listener, backend, options).await
}

fn memory() -> Backend {
    Backend::Memory { max_reports: 1_000 }
}

async fn series(server: &support::TestServer, token: Option<&str>, name: &str) -> Option<f64> {
    support::metric(&server.url(), token, name).await
}

fn one(sender: &str) -> PerformanceData {
    PerformanceData::new(0, sender, Event::NewBlockReceived, "b")
}

#[tokio::test]
async fn refusals_are_counted_by_reason_unauthenticated_bad_request_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("metrics.db");
    let server = server_with(
        Backend::Sqlite(db.clone()),
        Options {
            tokens: Tokens {
                write: Some("w".into()),
                read: None,
            },
            ..Options::default()
        },
    )
    .await;
    let reason = |reason: &str| format!("perfstats_rejected_total{{reason=\"{reason}\"}}");
    let http = support::http();

    // unauthenticated: a gRPC report and a POST /send without the token.
    let status = server
        .client()
        .send_performance_stat(one("1f"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let form = "time=1&sender=a&eventtype=83&message=m";
    let response = http
        .post(format!("{}/send", server.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        series(&server, None, &reason("unauthenticated")).await,
        Some(2.0)
    );

    // bad_request: a legacy form whose time or event type is not one.
    for form in [
        "time=soon&sender=a&eventtype=83&message=m",
        "time=1&sender=a&eventtype=Event_Nope&message=m",
    ] {
        let response = http
            .post(format!("{}/send", server.url()))
            .bearer_auth("w")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{form}");
    }
    assert_eq!(
        series(&server, None, &reason("bad_request")).await,
        Some(2.0)
    );

    // unavailable: the database is locked by another connection.
    let client = Client::connect_lazy(&server.url())
        .unwrap()
        .with_policy(RetryPolicy::never())
        .with_token("w")
        .unwrap();
    client.send_performance_stat(one("1f")).await.unwrap();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let status = client.send_performance_stat(one("1f")).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        series(&server, None, &reason("unavailable")).await,
        Some(1.0)
    );

    // Each refusal was counted once, under its own reason only.
    assert_eq!(
        series(&server, None, &reason("unauthenticated")).await,
        Some(2.0)
    );
    assert_eq!(
        series(&server, None, &reason("bad_request")).await,
        Some(2.0)
    );
    assert_eq!(
        server.store.current_run().reports,
        1,
        "nothing refused was stored"
    );
    server.stop().await;
}

#[tokio::test]
async fn senders_past_metrics_max_senders_count_as_other() {
    let server = server_with(
        memory(),
        Options {
            metrics: Arc::new(Metrics::new(2)),
            ..Options::default()
        },
    )
    .await;
    let client = server.client();
    for sender in ["a", "b", "c", "a", "d", "c"] {
        client.send_performance_stat(one(sender)).await.unwrap();
    }
    let by =
        |sender: &str| format!("perfstats_reports_stored_by_sender_total{{sender=\"{sender}\"}}");
    assert_eq!(series(&server, None, &by("a")).await, Some(2.0));
    assert_eq!(series(&server, None, &by("b")).await, Some(1.0));
    assert_eq!(
        series(&server, None, &by("c")).await,
        None,
        "the third sender has no label"
    );
    assert_eq!(series(&server, None, &by("d")).await, None);
    assert_eq!(series(&server, None, &by("")).await, Some(3.0), "c, d, c");
    server.stop().await;
}

#[tokio::test]
async fn a_read_token_guards_metrics_and_the_stream() {
    let server = server_with(
        memory(),
        Options {
            tokens: Tokens {
                write: Some("w".into()),
                read: Some("r".into()),
            },
            ..Options::default()
        },
    )
    .await;
    let http = support::http();
    for path in ["/metrics", "/api/stream", "/api/stream?after=0"] {
        let url = format!("{}{path}", server.url());
        let status = |request: reqwest::RequestBuilder| async move {
            request.send().await.unwrap().status().as_u16()
        };
        assert_eq!(status(http.get(&url)).await, 401, "{path} without a token");
        assert_eq!(
            status(http.get(&url).bearer_auth("x")).await,
            401,
            "{path} wrong token"
        );
        assert_eq!(
            status(http.get(&url).bearer_auth("r")).await,
            200,
            "{path} read token"
        );
        assert_eq!(
            status(http.get(&url).bearer_auth("w")).await,
            200,
            "{path} write token"
        );
        let sep = if path.contains('?') { '&' } else { '?' };
        assert_eq!(
            status(http.get(format!("{url}{sep}token=r"))).await,
            200,
            "{path} ?token= (EventSource)"
        );
    }
    assert_eq!(
        series(
            &server,
            Some("r"),
            "perfstats_rejected_total{reason=\"unauthenticated\"}"
        )
        .await,
        Some(6.0),
        "each refused read counted"
    );
    server.stop().await;
}
