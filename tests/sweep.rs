//! Sweeps: runs labelled with the value they were run at (`netem_ms` = 5, 40,
//! 100…) are ordered by it (numerically when every value is a number, else
//! lexically), runs without the label are left out, each run carries its figures
//! and the slope of p50 against the value is found; an answer holds at most
//! `MAX_SWEEP_RUNS` runs (the newest); the CLI prints the table, JSON and CSV.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::server::MAX_SWEEP_RUNS;
use perfstats::{Event, PerformanceData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::TestServer;

const MS: i64 = 1_000_000;

/// 40 block rounds to 5 nodes, each synced; a receipt takes 10–12 ms plus
/// `delay_ms` (so p50 ≈ 11 ms + delay: one ms more a ms of delay).
fn network(seed: u64, delay_ms: f64) -> Vec<PerformanceData> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = now_unix_nano() - 100_000 * MS;
    let mut reports = Vec::new();
    for node in 0..5 {
        let name = format!("n{node}");
        reports.push(PerformanceData::new(
            start,
            &name,
            Event::Libp2pNodeIdKnown,
            "id",
        ));
        reports.push(PerformanceData::new(
            start + (200 + 100 * node) * MS,
            &name,
            Event::InitialSyncCompleted,
            "synced",
        ));
    }
    for round in 0..40 {
        let sent = start + (1_000 + round * 1_000) * MS;
        reports.push(PerformanceData::new(
            sent,
            "ra",
            Event::RaNewBlockSent,
            format!("b{round}"),
        ));
        for node in 0..5 {
            let latency = rng.random_range(10_000..12_000) * 1_000 + (delay_ms * 1e6) as i64;
            reports.push(PerformanceData::new(
                sent + latency,
                format!("n{node}"),
                Event::NewBlockReceived,
                "block",
            ));
        }
    }
    reports
}

/// Starts run `name` with `labels` and stores a network with `delay_ms` in it.
async fn run(server: &TestServer, name: &str, labels: Value, delay_ms: f64, seed: u64) {
    let started = support::http()
        .post(format!("{}/api/runs", server.url()))
        .json(&json!({"name": name, "labels": labels}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200, "start {name}");
    server
        .client()
        .send_batch_with_retries(network(seed, delay_ms))
        .await
        .unwrap();
}

fn names(sweep: &Value) -> Vec<&str> {
    sweep["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn numeric_values_order_as_numbers_and_give_the_slope() {
    let server = support::spawn_server().await;
    // Two runs a value, stored out of order, and two runs that are not in the sweep.
    for (index, delay) in [40, 5, 100, 20, 60, 100, 5, 40, 20, 60].iter().enumerate() {
        let labels = json!({"netem_ms": delay.to_string(), "client": "v1"});
        run(
            &server,
            &format!("d{delay}-{index}"),
            labels,
            f64::from(*delay),
            index as u64,
        )
        .await;
    }
    run(&server, "no-label", json!({"client": "v1"}), 0.0, 99).await;
    run(
        &server,
        "other-client",
        json!({"netem_ms": "0", "client": "v2"}),
        0.0,
        98,
    )
    .await;

    let sweep = server
        .get_json("/api/sweep?by=netem_ms&label=client=v1")
        .await;
    assert_eq!(sweep["by"], "netem_ms");
    assert_eq!(sweep["numeric"], true);
    assert_eq!(sweep["runs_matching"], 10);
    let values: Vec<&str> = sweep["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        ["5", "5", "20", "20", "40", "40", "60", "60", "100", "100"]
    );
    assert_eq!(&names(&sweep)[..2], ["d5-1", "d5-6"], "equal values by id");
    let first = &sweep["runs"][0];
    let block = &first["kinds"]["block"];
    assert_eq!(block["count"], 200);
    let p50 = block["p50_ms"].as_f64().unwrap();
    assert!((15.0..18.0).contains(&p50), "{block}");
    let [low, high] = [
        block["p50_ci95_ms"][0].as_f64().unwrap(),
        block["p50_ci95_ms"][1].as_f64().unwrap(),
    ];
    assert!(low <= p50 && p50 <= high && high - low < 1.5, "{block}");
    for field in ["p90_ms", "p99_ms", "max_ms"] {
        assert!(block[field].as_f64().unwrap() >= p50, "{field}: {block}");
    }
    assert_eq!(first["rounds_flagged"], 0);
    assert_eq!(first["winners_disagreeing"], 0);
    assert_eq!(first["nodes"], 6, "five nodes and the authority");
    assert_eq!(first["sync"]["nodes_synced"], 5);
    assert_eq!(first["sync"]["slowest_node"], "n4");
    assert_eq!(first["sync"]["slowest_ms"], 600.0);
    assert_eq!(first["sync"]["median_ms"], 400.0);
    assert_eq!(first["labels"], json!({"client": "v1", "netem_ms": "5"}));

    let slope = &sweep["slopes"]["block"];
    let per_ms = slope["per_unit_ms"].as_f64().unwrap();
    assert!((per_ms - 1.0).abs() < 0.02, "{slope}");
    let [low, high] = [
        slope["ci95_ms"][0].as_f64().unwrap(),
        slope["ci95_ms"][1].as_f64().unwrap(),
    ];
    assert!(
        low <= per_ms && per_ms <= high && low > 0.9 && high < 1.1,
        "{slope}"
    );
    assert_eq!(slope["runs"], 10);
    assert!(
        sweep["slopes"].get("problem").is_none(),
        "no problem rounds, no slope"
    );

    // Without the filter the other client's run is in; the unlabelled one never.
    let all = server.get_json("/api/sweep?by=netem_ms").await;
    assert_eq!(all["runs_matching"], 11);
    assert_eq!(names(&all)[0], "other-client");
    assert!(!names(&all).contains(&"no-label"));

    // The figures of finished runs are kept: asking again gives the same answer.
    assert_eq!(
        server
            .get_json("/api/sweep?by=netem_ms&label=client=v1")
            .await,
        sweep
    );
    server.stop().await;
}

#[tokio::test]
async fn other_values_order_lexically_without_slopes() {
    let server = support::spawn_server().await;
    for (index, client) in ["v1.9", "v1.10", "v1.2"].iter().enumerate() {
        run(
            &server,
            client,
            json!({"client": client}),
            0.0,
            index as u64,
        )
        .await;
    }
    let sweep = server.get_json("/api/sweep?by=client").await;
    assert_eq!(sweep["numeric"], false);
    assert_eq!(names(&sweep), ["v1.10", "v1.2", "v1.9"]);
    assert_eq!(sweep["slopes"], json!({}));
    let empty = server.get_json("/api/sweep?by=nobody_has_this").await;
    assert_eq!(
        (
            empty["runs_matching"].as_u64(),
            empty["runs"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    for (query, rule) in [
        ("", "by: the label to sweep is required"),
        ("?by=Netem", "a-z 0-9 _ . -"),
        ("?by=a&by=b", "one label"),
        ("?by=a&sort=desc", "sort: unknown parameter"),
        ("?by=a&label=X=1", "a-z 0-9 _ . -"),
    ] {
        let answer = support::http()
            .get(format!("{}/api/sweep{query}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 400, "{query}");
        let text = answer.text().await.unwrap();
        assert!(text.contains(rule), "{query}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_answer_holds_the_newest_runs_up_to_its_bound() {
    let server = support::spawn_server().await;
    let total = MAX_SWEEP_RUNS + 100;
    for index in 0..total {
        let labels =
            perfstats::labels::Labels::from([("step".to_string(), (index % 7).to_string())]);
        server
            .store
            .new_run(Some(format!("r{index}")), labels)
            .await
            .unwrap();
    }
    let sweep = server.get_json("/api/sweep?by=step").await;
    assert_eq!(sweep["runs_matching"], total);
    let runs = sweep["runs"].as_array().unwrap();
    assert_eq!(runs.len(), MAX_SWEEP_RUNS);
    let oldest_kept = total - MAX_SWEEP_RUNS;
    assert!(
        runs.iter()
            .all(|run| run["name"].as_str().unwrap()[1..].parse::<usize>().unwrap() >= oldest_kept),
        "only the newest runs"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_prints_the_sweep_as_a_table_json_and_csv() {
    let server = support::spawn_server().await;
    for (index, delay) in [0, 20, 40, 80, 0, 20, 40, 80].iter().enumerate() {
        run(
            &server,
            &format!("d{delay}-{index}"),
            json!({"netem_ms": delay.to_string()}),
            f64::from(*delay),
            index as u64,
        )
        .await;
    }
    let sweep = |format: &str| {
        let url = server.url();
        let output = support::perfstats(&[
            "sweep", "--by", "netem_ms", "--addr", &url, "--format", format,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let table = sweep("table");
    assert!(
        table.starts_with("sweep of netem_ms (numeric), 8 of 8 runs"),
        "{table}"
    );
    assert!(
        table.contains("block p50 [95%]") && !table.contains("problem p50"),
        "{table}"
    );
    assert!(table.contains("each unit of netem_ms adds 1.0"), "{table}");
    let json: Value = serde_json::from_str(&sweep("json")).unwrap();
    assert_eq!(json["runs"].as_array().unwrap().len(), 8);
    let csv = sweep("csv");
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("value,run_id,run,reports,kind,count,p50_ms")
    );
    let block_rows: Vec<&str> = lines.filter(|line| line.contains(",block,")).collect();
    assert_eq!(block_rows.len(), 8);
    assert!(block_rows[0].starts_with("0,"), "{csv}");
    assert!(block_rows[7].starts_with("80,"), "{csv}");
    server.stop().await;
}
