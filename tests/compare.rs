//! Comparing runs: a simulated network run twice, the second time with +40 ms on the
//! light nodes' block latency. The comparison finds the shift (beyond noise) on the
//! light nodes and none on the full nodes; a run compared with itself differs by
//! nothing; the CLI prints the table and names an unknown run.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::{Event, PerformanceData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::process::Command;

const NODES: [&str; 6] = ["1f", "2f", "3f", "4l", "5l", "6l"];
const MS: i64 = 1_000_000;

/// 100 block rounds; a node's latency is 10–30 ms + 8 ms per node index, plus
/// `light_extra_ms` on the light nodes.
fn network(seed: u64, light_extra_ms: i64) -> Vec<PerformanceData> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = now_unix_nano() - 200_000 * MS;
    let mut reports = Vec::new();
    for (index, node) in NODES.iter().enumerate() {
        reports.push(PerformanceData::new(
            start,
            *node,
            Event::Libp2pNodeIdKnown,
            "id",
        ));
        let synced = 300 + index as i64 * 50 + rng.random_range(0..20);
        reports.push(PerformanceData::new(
            start + synced * MS,
            *node,
            Event::InitialSyncCompleted,
            "synced",
        ));
    }
    for round in 0..100 {
        let sent = start + (1_000 + round * 1_000) * MS;
        reports.push(PerformanceData::new(
            sent,
            "ra",
            Event::RaNewBlockSent,
            format!("block {round}"),
        ));
        for (index, node) in NODES.iter().enumerate() {
            let extra = if node.ends_with('l') {
                light_extra_ms
            } else {
                0
            };
            let latency =
                rng.random_range(10_000..30_000) * 1_000 + (8 * index as i64 + extra) * MS;
            reports.push(PerformanceData::new(
                sent + latency,
                *node,
                Event::NewBlockReceived,
                "block",
            ));
        }
    }
    reports
}

#[tokio::test]
async fn forty_ms_on_the_light_nodes_is_found_and_nothing_else() {
    let server = support::spawn_server().await;
    let client = server.client();
    client.send_batch_with_retries(network(1, 0)).await.unwrap();
    let started = reqwest::Client::new()
        .post(format!("{}/api/runs", server.url()))
        .header("content-type", "application/json")
        .body(r#"{"name": "slow-light"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    client
        .send_batch_with_retries(network(2, 40))
        .await
        .unwrap();

    let compared = server.get_json("/api/compare?a=run-1&b=slow-light").await;
    assert_eq!(compared["a"]["name"], "run-1");
    assert_eq!(compared["b"]["name"], "slow-light");
    let block = &compared["kinds"]["block"];
    assert_eq!(
        (block["a"]["count"].as_u64(), block["b"]["count"].as_u64()),
        (Some(600), Some(600))
    );
    let delta = block["p50_delta_ms"].as_f64().unwrap();
    let interval: Vec<f64> = block["p50_delta_ci95_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_f64().unwrap())
        .collect();
    assert!(
        interval[0] <= delta && delta <= interval[1],
        "{delta} in {interval:?}"
    );
    assert!(
        interval[0] > 0.0,
        "half the receipts 40 ms slower moves the median: {interval:?}"
    );
    assert_eq!(block["real"], true);
    assert_eq!(block["quantiles"]["a"].as_array().unwrap().len(), 99);
    let binned: u64 = block["histogram"]["b"]
        .as_array()
        .unwrap()
        .iter()
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!(binned, 600);
    // No problem rounds were sent: no interval, nothing real.
    assert_eq!(
        compared["kinds"]["problem"]["p50_delta_ci95_ms"],
        serde_json::Value::Null
    );
    assert_eq!(compared["kinds"]["problem"]["real"], false);

    let nodes = compared["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7, "six nodes and ra");
    for node in nodes.iter().filter(|node| node["sender"] != "ra") {
        let median = |side: &str| node[side]["block_p50_ms"].as_f64().unwrap();
        let shift = median("b") - median("a");
        let expected = if node["sender"].as_str().unwrap().ends_with('l') {
            40.0
        } else {
            0.0
        };
        // Medians of 100 uniform 10–30 ms draws differ by a few ms between runs.
        assert!(
            (shift - expected).abs() < 6.0,
            "{}: {shift} ms, expected about {expected}",
            node["sender"]
        );
        assert_eq!(node["a"]["blocks_missed"], 0);
        assert!(node["synced_delta_ms"].as_f64().unwrap().abs() < 20.0);
    }
    assert_eq!(nodes[6]["sender"], "ra");
    assert_eq!(nodes[6]["a"]["blocks_missed"], 0, "ra sent every block");

    let same = server
        .get_json("/api/compare?a=slow-light&b=slow-light")
        .await;
    let same_block = &same["kinds"]["block"];
    assert_eq!(same_block["p50_delta_ms"], 0.0);
    let interval = same_block["p50_delta_ci95_ms"].as_array().unwrap();
    assert!(interval[0].as_f64().unwrap() <= 0.0 && 0.0 <= interval[1].as_f64().unwrap());
    assert_eq!(same_block["real"], false);

    for (path, status, named) in [
        ("/api/compare?a=run-1&b=nope", 404, "b: no run"),
        ("/api/compare?a=nope&b=run-1", 404, "a: no run"),
        ("/api/compare?a=run-1", 400, "b: required"),
    ] {
        let response = reqwest::get(format!("{}{path}", server.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(named), "{path}: {text}");
    }

    // The CLI: the table, JSON, and an unknown run.
    let url = server.url();
    let cli = move |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_perfstats"))
            .arg("compare")
            .args(["--addr", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let table = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["run-1", "slow-light"])
    })
    .await
    .unwrap();
    assert!(table.status.success(), "{table:?}");
    let text = String::from_utf8(table.stdout).unwrap();
    let row = text
        .lines()
        .find(|line| line.starts_with("block"))
        .expect(&text);
    assert!(row.contains(" *"), "the block row is marked real: {row}");
    assert!(row.contains(" 600 "), "{row}");
    let json = tokio::task::spawn_blocking({
        let cli = cli.clone();
        move || cli(&["1", "2", "--format", "json"])
    })
    .await
    .unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["kinds"]["block"]["real"], true);
    let unknown = tokio::task::spawn_blocking(move || cli(&["run-1", "missing-run"]))
        .await
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let error = String::from_utf8(unknown.stderr).unwrap();
    assert!(error.contains("missing-run"), "{error}");
    server.stop().await;
}
