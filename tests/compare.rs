//! Comparing runs: a simulated network run twice, the second time with +40 ms on the
//! light nodes' block latency. The comparison finds the shift (beyond noise) on the
//! light nodes and none on the full nodes; a run compared with itself differs by
//! nothing; the CLI prints the table and names an unknown run.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::store::Backend;
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
        let (sent, send) = support::block_sent(start, round);
        reports.push(send);
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

/// A kind's `p50_delta_ci95_ms` as `[low, high]`, asserting it is there.
fn interval_of(kind: &serde_json::Value) -> [f64; 2] {
    let interval = kind["p50_delta_ci95_ms"]
        .as_array()
        .unwrap_or_else(|| panic!("an interval: {kind}"));
    assert_eq!(interval.len(), 2, "{kind}");
    [interval[0].as_f64().unwrap(), interval[1].as_f64().unwrap()]
}

#[tokio::test]
async fn forty_ms_on_the_light_nodes_is_found_and_nothing_else() {
    let server = support::spawn_server().await;
    let client = server.client();
    client.send_batch_with_retries(network(1, 0)).await.unwrap();
    server.new_run(Some("slow-light")).await;
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
    let interval = interval_of(block);
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

    // run-1 against itself: the medians are the same number, so the difference is
    // exactly 0; the interval must hold 0 and be as narrow as 600 receipts make it.
    // Its width follows from the data: node i's latencies are uniform on 10–30 ms
    // + 8i ms (i = 0..5), so the density at the median (40 ms) is 2 nodes × 1/6 ×
    // 1/20 ms = 1/60 per ms, flat over 38–42 ms. The median of n = 600 then has a
    // standard error of 1/(2f√n) ≈ 1.22 ms; the bootstrap resamples the two sides
    // independently, so the difference's is √2 times that, and a 95% interval is
    // 2 × 1.96 × 1.73 ≈ 6.8 ms wide. Half to one and a half times that allows for
    // the bootstrap's own noise; an interval from a broken resampler (all draws from
    // one side, the sides' draws shared, a different rank) lands outside.
    let same = server.get_json("/api/compare?a=run-1&b=run-1").await;
    let same_block = &same["kinds"]["block"];
    assert_eq!(same_block["p50_delta_ms"], 0.0, "{same_block}");
    let [low, high] = interval_of(same_block);
    let expected_width = 2.0 * 1.96 * 2f64.sqrt() * 30.0 / 600f64.sqrt();
    println!(
        "run-1 against itself: [{low:.2}, {high:.2}] ms, {:.2} ms wide (expected about {expected_width:.2})",
        high - low
    );
    assert!(low <= 0.0 && 0.0 <= high, "[{low}, {high}] holds 0");
    assert!(
        (0.5 * expected_width..=1.5 * expected_width).contains(&(high - low)),
        "[{low}, {high}]: width {} ms, expected about {expected_width:.1} ms",
        high - low
    );
    assert_eq!(same_block["real"], false);
    assert!(
        same["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|node| node["a"] == node["b"] && node["a"].is_object()),
        "every node the same on both sides: {}",
        same["nodes"]
    );

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

/// The bootstrap is seeded by what is compared: the same two runs give the same
/// interval on every call, and after a restart (SQLite rebuilds both runs'
/// analyses from their reports), the whole answer is the same.
#[tokio::test]
async fn the_same_comparison_gives_the_same_interval_twice_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("compare.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Sqlite(db.clone())).await;
    server
        .client()
        .send_batch_with_retries(network(3, 0))
        .await
        .unwrap();
    server.new_run(Some("slower")).await;
    server
        .client()
        .send_batch_with_retries(network(4, 5))
        .await
        .unwrap();
    let path = "/api/compare?a=run-1&b=slower";
    let first = server.get_json(path).await;
    let [low, high] = interval_of(&first["kinds"]["block"]);
    assert!(low < high, "an interval of spread data: [{low}, {high}]");
    assert_eq!(server.get_json(path).await, first, "the same call again");
    server.stop().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Sqlite(db)).await;
    let again = server.get_json(path).await;
    assert_eq!(
        again["kinds"]["block"]["p50_delta_ci95_ms"],
        first["kinds"]["block"]["p50_delta_ci95_ms"]
    );
    assert_eq!(again, first, "the whole comparison after a restart");
    server.stop().await;
}

/// A run of `rounds` block rounds sent by `ra` that `receiver` receives after
/// `base_ms` + 1 ms per round (so `rounds` receipts of spread latencies), and a
/// node `only` that reports only its start.
fn receipts(rounds: i64, base_ms: i64, receiver: &str, only: &str) -> Vec<PerformanceData> {
    let start = now_unix_nano() - 100_000 * MS;
    let mut reports = vec![
        PerformanceData::new(start, receiver, Event::Libp2pNodeIdKnown, "id"),
        PerformanceData::new(start, only, Event::Libp2pNodeIdKnown, "id"),
    ];
    for round in 0..rounds {
        let (sent, send) = support::block_sent(start, round);
        reports.push(send);
        reports.push(PerformanceData::new(
            sent + (base_ms + round) * MS,
            receiver,
            Event::NewBlockReceived,
            "block",
        ));
    }
    reports
}

/// An interval needs MIN_FOR_INTERVAL (10) receipts on each side: 9 against 10
/// gives none (either way round) though both medians exist, 10 against 10 gives
/// one. A node that reported in one run only has null for the other side.
#[tokio::test]
async fn an_interval_needs_ten_receipts_a_side_and_a_node_of_one_run_gets_null() {
    let server = support::spawn_server().await;
    let client = server.client();
    server.new_run(Some("nine")).await;
    client
        .send_batch_with_retries(receipts(9, 10, "1f", "only-nine"))
        .await
        .unwrap();
    server.new_run(Some("ten")).await;
    client
        .send_batch_with_retries(receipts(10, 10, "1f", "only-ten"))
        .await
        .unwrap();
    server.new_run(Some("ten-later")).await;
    client
        .send_batch_with_retries(receipts(10, 14, "1f", "only-ten-later"))
        .await
        .unwrap();

    for (a, b) in [("nine", "ten"), ("ten", "nine")] {
        let compared = server.get_json(&format!("/api/compare?a={a}&b={b}")).await;
        let block = &compared["kinds"]["block"];
        let counts = (block["a"]["count"].as_u64(), block["b"]["count"].as_u64());
        let expected = if a == "nine" { (9, 10) } else { (10, 9) };
        assert_eq!(counts, (Some(expected.0), Some(expected.1)), "{block}");
        assert!(
            block["p50_delta_ms"].is_f64(),
            "both medians exist: {block}"
        );
        assert_eq!(
            block["p50_delta_ci95_ms"],
            serde_json::Value::Null,
            "{a} vs {b}: 9 receipts are too few for an interval"
        );
        assert_eq!(block["real"], false);
    }

    let compared = server.get_json("/api/compare?a=ten&b=ten-later").await;
    let block = &compared["kinds"]["block"];
    assert_eq!(
        (block["a"]["count"].as_u64(), block["b"]["count"].as_u64()),
        (Some(10), Some(10))
    );
    // 1f's latencies are 10–19 ms against 14–23 ms: medians 14 and 18 ms.
    let delta = block["p50_delta_ms"].as_f64().unwrap();
    assert!((delta - 4.0).abs() < 0.2, "{delta}");
    let [low, high] = interval_of(block);
    assert!(low <= delta && delta <= high, "{delta} in [{low}, {high}]");

    // Nodes: 1f and ra in both; each run's own node only on its side.
    let nodes: Vec<&serde_json::Value> = compared["nodes"].as_array().unwrap().iter().collect();
    let senders: Vec<&str> = nodes
        .iter()
        .map(|node| node["sender"].as_str().unwrap())
        .collect();
    assert_eq!(senders, ["1f", "only-ten", "only-ten-later", "ra"]);
    let node = |name: &str| nodes.iter().find(|node| node["sender"] == name).unwrap();
    assert!(node("1f")["a"].is_object() && node("1f")["b"].is_object());
    let median = node("1f")["a"]["block_p50_ms"].as_f64().unwrap();
    assert!(
        (median - 14.0).abs() <= 14.0 * 0.004,
        "within the buckets' 0.4%: {median}"
    );
    for (name, present, absent) in [("only-ten", "a", "b"), ("only-ten-later", "b", "a")] {
        let node = node(name);
        assert!(node[present].is_object(), "{node}");
        assert_eq!(
            node[absent],
            serde_json::Value::Null,
            "{name} reported in one run only: {node}"
        );
        assert_eq!(node["synced_delta_ms"], serde_json::Value::Null, "{node}");
    }
    server.stop().await;
}
