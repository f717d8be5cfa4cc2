//! The capped retry policy against servers that are late, refuse, or always fail.

mod support;

use perfstats::Event;
use perfstats::client::{Backoff, Client, RetryPolicy};
use perfstats::pb::performance_stats_server::{PerformanceStats, PerformanceStatsServer};
use perfstats::pb::{Ack, BatchAck, PerformanceData};
use perfstats::store::Backend;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::{Code, Request, Response, Status, Streaming};

/// A server that counts attempts, records the report ids it saw, and answers the
/// first `failures` attempts with `code` (then acks).
struct Refusing {
    attempts: Arc<AtomicU32>,
    ids: Arc<Mutex<Vec<String>>>,
    code: Code,
    failures: u32,
}

#[tonic::async_trait]
impl PerformanceStats for Refusing {
    async fn report_stat(
        &self,
        request: Request<PerformanceData>,
    ) -> Result<Response<Ack>, Status> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
        self.ids
            .lock()
            .unwrap()
            .push(request.into_inner().report_id);
        if attempt < self.failures {
            return Err(Status::new(self.code, "refused by the test"));
        }
        Ok(Response::new(Ack {
            seq: 1,
            duplicate: false,
            run: "test".into(),
        }))
    }
    async fn report_stats(
        &self,
        _: Request<Streaming<PerformanceData>>,
    ) -> Result<Response<BatchAck>, Status> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(Status::new(self.code, "refused by the test"))
    }
}

async fn refusing_server(code: Code) -> (String, Arc<AtomicU32>) {
    let (url, attempts, _) = scripted_server(code, u32::MAX).await;
    (url, attempts)
}

type Ids = Arc<Mutex<Vec<String>>>;

async fn scripted_server(code: Code, failures: u32) -> (String, Arc<AtomicU32>, Ids) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let attempts = Arc::new(AtomicU32::new(0));
    let ids = Ids::default();
    let service = PerformanceStatsServer::new(Refusing {
        attempts: attempts.clone(),
        ids: ids.clone(),
        code,
        failures,
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (url, attempts, ids)
}

/// Sends one report through `policy` to a refusing server; returns the refusal.
async fn refused_report(url: &str, policy: RetryPolicy) -> Status {
    Client::connect_lazy(url)
        .unwrap()
        .with_policy(policy)
        .send_performance_stat_with_retries(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "m",
        ))
        .await
        .unwrap_err()
}

fn quick(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        backoff: Backoff::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(2),
        },
        attempt_timeout: Some(Duration::from_secs(2)),
    }
}

#[tokio::test]
async fn a_server_that_comes_up_late_gets_the_report_exactly_once() {
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);
    let client = Client::connect_lazy(&format!("http://{addr}")).unwrap();
    assert_eq!(
        client.policy(),
        &RetryPolicy::default(),
        "the seed's policy"
    );
    let report = PerformanceData::new(0, "1f", Event::InitialSyncCompleted, "late server");
    let sending =
        tokio::spawn(async move { client.send_performance_stat_with_retries(report).await });

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !sending.is_finished(),
        "still retrying while the server is down"
    );
    let listener = TcpListener::bind(addr).await.unwrap();
    let server = support::serve_on(listener, Backend::Memory { max_reports: 10 }).await;
    let ack = sending
        .await
        .unwrap()
        .expect("delivered after the server came up");
    assert_eq!((ack.seq, ack.duplicate), (1, false));
    assert_eq!(server.store.current_run().reports, 1);
    server.stop().await;
}

#[tokio::test]
async fn invalid_argument_is_tried_once_only() {
    let (url, attempts) = refusing_server(Code::InvalidArgument).await;
    let status = refused_report(&url, quick(10)).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_retry_cap_is_honoured() {
    let (url, attempts) = refusing_server(Code::Unavailable).await;
    let client = Client::connect_lazy(&url).unwrap().with_policy(quick(7));
    let status = refused_report(&url, quick(7)).await;
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        8,
        "the first attempt and 7 retries"
    );

    let before = attempts.load(Ordering::SeqCst);
    let batch = vec![PerformanceData::new(0, "1f", Event::NewBlockReceived, "m"); 3];
    client.send_batch_with_retries(batch).await.unwrap_err();
    assert_eq!(
        attempts.load(Ordering::SeqCst) - before,
        8,
        "streams obey the same cap"
    );
}

#[tokio::test]
async fn every_attempt_carries_the_same_report_id() {
    let (url, attempts, ids) = scripted_server(Code::Unavailable, 3).await;
    let client = Client::connect_lazy(&url).unwrap().with_policy(quick(5));
    let mut report = PerformanceData::new(0, "1f", Event::NewBlockReceived, "m");
    report.report_id.clear();
    client
        .send_performance_stat_with_retries(report)
        .await
        .unwrap();
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        4,
        "three refusals, then the ack"
    );
    let ids = ids.lock().unwrap();
    assert!(
        !ids[0].is_empty(),
        "an id is chosen before the first attempt"
    );
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

/// A server that takes every report and never answers.
struct Hanging {
    attempts: Arc<AtomicU32>,
}

#[tonic::async_trait]
impl PerformanceStats for Hanging {
    async fn report_stat(&self, _: Request<PerformanceData>) -> Result<Response<Ack>, Status> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
    async fn report_stats(
        &self,
        _: Request<Streaming<PerformanceData>>,
    ) -> Result<Response<BatchAck>, Status> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

#[tokio::test]
async fn each_attempt_gives_up_at_its_timeout_against_a_server_that_hangs() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let attempts = Arc::new(AtomicU32::new(0));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PerformanceStatsServer::new(Hanging {
                attempts: attempts.clone(),
            }))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let policy = RetryPolicy {
        attempt_timeout: Some(Duration::from_millis(200)),
        ..quick(2)
    };
    let started = std::time::Instant::now();
    // Without the per-attempt timeout the call would wait forever: the deadline
    // here (far above 3 × 200 ms) turns that into a failure.
    let status = support::within(
        Duration::from_secs(20),
        "the report to give up after 3 attempts of 200 ms",
        refused_report(&url, policy),
    )
    .await;
    let elapsed = started.elapsed();
    println!(
        "hanging server: gave up after {elapsed:?} and {} attempts",
        attempts.load(Ordering::SeqCst)
    );
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "the first attempt and 2 retries, each timed out"
    );
    assert!(
        elapsed >= Duration::from_millis(600),
        "each attempt waited its full 200 ms: {elapsed:?}"
    );

    let before = attempts.load(Ordering::SeqCst);
    let batch = vec![PerformanceData::new(0, "1f", Event::NewBlockReceived, "m"); 3];
    let status = support::within(
        Duration::from_secs(20),
        "the stream to give up after 3 attempts of 200 ms",
        Client::connect_lazy(&url)
            .unwrap()
            .with_policy(policy)
            .send_batch_with_retries(batch),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst) - before,
        3,
        "streams time out alike"
    );
}
