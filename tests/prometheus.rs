//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, installed by
//! scripts/test.sh) on loopback; the test asks Prometheus's HTTP API for the series.

mod support;

use perfstats::client::{Client, RetryPolicy};
use perfstats::{Event, PerformanceData};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::BinaryServer;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_was_reported() {
    let binary =
        std::env::var("PERFSTATS_PROMETHEUS").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    assert!(
        std::path::Path::new(&binary).exists(),
        "{binary} missing: run scripts/test.sh (apt prometheus)"
    );
    let server = BinaryServer::start(&["--memory"]);
    let client = Client::connect_lazy(&server.url)
        .unwrap()
        .with_policy(RetryPolicy::never());
    let at = perfstats::report::now_unix_nano();
    client
        .send_performance_stat(PerformanceData::new(
            at,
            "ra",
            Event::RaNewBlockSent,
            "block 1",
        ))
        .await
        .unwrap();
    for (i, node) in ["1f", "2f", "3f"].iter().enumerate() {
        let received = at + (10 + 10 * i as i64) * 1_000_000;
        client
            .send_performance_stat(PerformanceData::new(
                received,
                *node,
                Event::NewBlockReceived,
                "block 1",
            ))
            .await
            .unwrap();
    }
    let twice = PerformanceData::new(0, "2f", Event::SimtaskReceived, "task");
    client.send_performance_stat(twice.clone()).await.unwrap();
    assert!(client.send_performance_stat(twice).await.unwrap().duplicate);
    client
        .send_performance_stat(PerformanceData::new(
            0,
            "",
            Event::SimtaskReceived,
            "no sender",
        ))
        .await
        .unwrap_err();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let target = server.url.trim_start_matches("http://");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: perfstats\n    static_configs:\n      - targets: ['{target}']\n"),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_port());
    let mut prometheus = Command::new(&binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let query = async |promql: &str| -> Option<f64> {
        let response = reqwest::Client::new()
            .get(format!("http://{web}/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let expectations = [
        (
            r#"perfstats_reports_stored_total{job="perfstats",event="EVENT_NEW_BLOCK_RECEIVED"}"#,
            3.0,
        ),
        (
            r#"perfstats_reports_stored_by_sender_total{sender="2f"}"#,
            2.0,
        ),
        ("perfstats_duplicates_total", 1.0),
        (r#"perfstats_rejected_total{reason="sender"}"#, 1.0),
        (
            r#"perfstats_propagation_latency_seconds_count{kind="block"}"#,
            3.0,
        ),
        (
            r#"perfstats_propagation_latency_seconds_sum{kind="block"}"#,
            0.06,
        ),
        ("perfstats_ingest_latency_seconds_count", 7.0),
        ("perfstats_sse_subscribers", 0.0),
    ];
    let mut seen = Vec::new();
    for _ in 0..300 {
        seen.clear();
        for (promql, _) in &expectations {
            seen.push(query(promql).await);
        }
        let all = expectations
            .iter()
            .zip(&seen)
            .all(|((_, want), got)| got.is_some_and(|got| (got - want).abs() < 1e-3));
        if all {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    server.kill9();
    for ((promql, want), got) in expectations.iter().zip(&seen) {
        println!("prometheus: {promql} = {got:?}");
        assert!(
            got.is_some_and(|got| (got - want).abs() < 1e-3),
            "{promql}: want {want}, Prometheus has {got:?}"
        );
    }
}
