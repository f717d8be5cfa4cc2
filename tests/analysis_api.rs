//! The analysis over HTTP, on both backends: `/api/analysis`, `/api/nodes`,
//! `/api/rounds`, `/api/winners`, `/api/timeline`, newest-first report pages, the
//! parameters' rules, and the same answers after a restart (SQLite rebuilds the
//! current run's analysis from its reports) and for an older run.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use serde_json::Value;

const MS: i64 = 1_000_000;

/// Three block rounds among ra, 1f, 2f, 3f, sent out of order: 3f misses round 2;
/// 2f's receipt of round 3 arrives before ra's send of it; winners disagree in
/// problem round 1. Returns the time of the first send.
async fn network(server: &support::TestServer) -> i64 {
    let t0 = now_unix_nano() - 60_000 * MS;
    let at = |ms: i64| t0 + ms * MS;
    let mut reports = vec![
        PerformanceData::new(at(-5), "ra", Event::Libp2pNodeIdKnown, "ra"),
        PerformanceData::new(at(-4), "1f", Event::Libp2pNodeIdKnown, "1f"),
        PerformanceData::new(at(-3), "2f", Event::Libp2pNodeIdKnown, "2f"),
        PerformanceData::new(at(-2), "3f", Event::Libp2pNodeIdKnown, "3f"),
        PerformanceData::new(at(2_030), "2f", Event::NewBlockReceived, "block 3"),
        PerformanceData::new(at(-1), "ra", Event::RaNewProblemSent, "problem 1"),
        PerformanceData::new(at(50), "1f", Event::BlockWinnerFound, "1f"),
        PerformanceData::new(at(50), "2f", Event::BlockWinnerFound, "2f"),
    ];
    for round in 0..3 {
        let base = round * 1_000;
        reports.push(PerformanceData::new(
            at(base),
            "ra",
            Event::RaNewBlockSent,
            format!("block {}", round + 1),
        ));
        reports.push(PerformanceData::new(
            at(base + 10),
            "1f",
            Event::NewBlockReceived,
            "b",
        ));
        if round != 2 {
            reports.push(PerformanceData::new(
                at(base + 20),
                "2f",
                Event::NewBlockReceived,
                "b",
            ));
        }
        if round != 1 {
            reports.push(PerformanceData::new(
                at(base + 40),
                "3f",
                Event::NewBlockReceived,
                "b",
            ));
        }
    }
    server
        .client()
        .send_batch_with_retries(reports)
        .await
        .unwrap();
    t0
}

fn numbers(rounds: &Value) -> Vec<u64> {
    rounds
        .as_array()
        .unwrap()
        .iter()
        .map(|round| round["number"].as_u64().unwrap())
        .collect()
}

async fn check_analysis(server: &support::TestServer, run: &str) {
    let analysis = server
        .get_json(&format!("/api/analysis?run={run}&recent=2"))
        .await;
    assert_eq!(analysis["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(analysis["nodes_total"], 4);
    // Three block rounds and one problem round that nobody reported receiving: no
    // node receives problems, so none is missing from it; 3f's block round 2 is
    // the one flagged.
    assert_eq!(analysis["rounds_total"], 4);
    assert_eq!(analysis["rounds_flagged"], 1);
    assert_eq!(numbers(&analysis["rounds"]), [2, 3], "the newest two");
    let third = &analysis["rounds"][1];
    assert_eq!(third["latency_ms"]["2f"], 30.0, "its receipt came first");
    assert_eq!(third["missing_count"], 0);
    assert_eq!(analysis["winners_total"], 1);
    assert_eq!(analysis["winners_disagreeing"], 1);
    let block = &analysis["distributions"]["block"];
    assert_eq!(block["count"], 8);
    assert_eq!(block["max_ms"], 40.0);
    let p50 = block["p50_ms"].as_f64().unwrap();
    assert!(
        (p50 - 20.0).abs() < 20.0 * 0.005,
        "p50 {p50} within 0.5% of 20"
    );
    assert_eq!(analysis["distributions"]["reveal"]["count"], 0);
    let binned: u64 = block["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bin| bin["count"].as_u64().unwrap())
        .sum();
    assert_eq!(binned, 8);

    let flagged = server
        .get_json(&format!("/api/rounds?run={run}&kind=block&flagged=true"))
        .await;
    assert_eq!(numbers(&flagged["rounds"]), [2]);
    assert_eq!(flagged["rounds"][0]["missing"], serde_json::json!(["3f"]));
    assert_eq!(flagged["next"], Value::Null);
    let paged = server
        .get_json(&format!("/api/rounds?run={run}&kind=block&limit=2"))
        .await;
    assert_eq!(numbers(&paged["rounds"]), [3, 2]);
    let rest = server
        .get_json(&format!(
            "/api/rounds?run={run}&kind=block&limit=2&before={}",
            paged["next"]
        ))
        .await;
    assert_eq!(numbers(&rest["rounds"]), [1]);
    assert_eq!(rest["next"], Value::Null);
    let one = server
        .get_json(&format!("/api/rounds?run={run}&kind=block&number=1"))
        .await;
    assert_eq!(one["rounds"][0]["latency_ms"]["3f"], 40.0);
    let winners = server
        .get_json(&format!("/api/winners?run={run}&disagreeing=true"))
        .await;
    assert_eq!(winners["winners"][0]["round"], 1);
    assert_eq!(winners["winners"][0]["agree"], false);
    let page = server
        .get_json(&format!("/api/nodes?run={run}&order=sender"))
        .await;
    assert_eq!(
        (page["nodes_total"].as_u64(), &page["next"]),
        (Some(4), &Value::Null)
    );
    let nodes = &page["nodes"];
    assert_eq!(nodes[3]["sender"], "ra");
    assert_eq!(nodes[3]["counts"]["EVENT_RA_NEW_BLOCK_SENT"], 3);
}

async fn analysis_answers(server: support::TestServer) -> support::TestServer {
    let t0 = network(&server).await;
    check_analysis(&server, "run-1").await;

    // The whole run in one window; then a narrow one comes with its reports.
    let whole = server.get_json("/api/timeline?buckets=10").await;
    let total: u64 = whole["senders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sender| sender["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 18);
    assert_eq!(whole["run_from"], t0 - 5 * MS);
    let narrow = server
        .get_json(&format!(
            "/api/timeline?from={}&to={}&buckets=4",
            t0 + 900 * MS,
            t0 + 1_100 * MS
        ))
        .await;
    let reports = narrow["reports"].as_array().unwrap();
    assert!(
        reports.iter().any(|r| r["message"] == "block 2"),
        "{narrow}"
    );
    let from = narrow["from"].as_i64().unwrap();
    let to = narrow["to"].as_i64().unwrap();
    assert!(reports.iter().all(|r| {
        let time = r["time_unix_nano"].as_i64().unwrap();
        from <= time && time < to
    }));

    // Newest-first pages of reports.
    let page = server.get_json("/api/reports?order=desc&limit=5").await;
    let seqs: Vec<u64> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [18, 17, 16, 15, 14]);
    assert_eq!(page["next"], 14);
    let last = server
        .get_json("/api/reports?order=desc&limit=5&before=3&sender=ra")
        .await;
    assert_eq!(last["reports"][0]["seq"], 1);
    assert_eq!(last["next"], Value::Null);
    server
}

/// Only a node expected in a round can flag it: a probe that sends 20 transaction
/// reports mid-run and a node that joins after block round 1 (and receives rounds 2
/// and 3) leave all three block rounds unflagged.
#[tokio::test]
async fn probes_and_late_joiners_flag_no_round() {
    let server = support::spawn_server().await;
    let t0 = now_unix_nano() - 60_000 * MS;
    let report = |ms: i64, sender: &str, event: Event| {
        PerformanceData::new(t0 + ms * MS, sender, event, "m")
    };
    let mut reports = vec![
        report(0, "ra", Event::Libp2pNodeIdKnown),
        report(1, "1f", Event::Libp2pNodeIdKnown),
        report(1, "2f", Event::Libp2pNodeIdKnown),
        report(1_500, "late", Event::Libp2pNodeIdKnown),
    ];
    for round in 1..=3 {
        let sent = round * 1_000;
        reports.push(report(sent, "ra", Event::RaNewBlockSent));
        reports.push(report(sent + 10, "1f", Event::NewBlockReceived));
        reports.push(report(sent + 20, "2f", Event::NewBlockReceived));
        if round > 1 {
            reports.push(report(sent + 30, "late", Event::NewBlockReceived));
        }
    }
    for sent in 0..20 {
        reports.push(report(
            1_200 + sent * 50,
            "probe",
            Event::TransactionReceived,
        ));
    }
    server
        .client()
        .send_batch_with_retries(reports)
        .await
        .unwrap();
    let analysis = server.get_json("/api/analysis").await;
    assert_eq!(analysis["rounds_total"], 3, "{analysis}");
    assert_eq!(analysis["rounds_flagged"], 0, "{analysis}");
    let flagged = server.get_json("/api/rounds?flagged=true").await;
    assert_eq!(flagged["rounds"], serde_json::json!([]), "{flagged}");
    server.stop().await;
}

#[tokio::test]
async fn the_analysis_answers_in_memory() {
    analysis_answers(support::spawn_server().await)
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn the_analysis_answers_in_sqlite_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("analysis.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Sqlite(db.clone())).await;
    let server = analysis_answers(server).await;
    let before = server.get_json("/api/analysis?recent=200").await;
    server.stop().await;
    // Rebuilt from the database at start: the same answer.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Sqlite(db)).await;
    assert_eq!(server.get_json("/api/analysis?recent=200").await, before);
    // Once another run is current, the first is built from its reports on demand.
    server.new_run(None).await;
    check_analysis(&server, "1").await;
    let fresh = server.get_json("/api/analysis").await;
    assert_eq!(fresh["rounds_total"], 0);
    server.stop().await;
}

#[tokio::test]
async fn bad_analysis_parameters_get_400_or_404_naming_the_parameter() {
    let server = support::spawn_server().await;
    network(&server).await;
    for (path, status, names) in [
        ("/api/analysis?recent=201", 400, "recent"),
        ("/api/analysis?run=nope", 404, "run"),
        ("/api/nodes?run=nope", 404, "run"),
        ("/api/rounds?kind=sideways", 400, "kind"),
        ("/api/rounds?limit=0", 400, "limit"),
        ("/api/rounds?number=1", 400, "kind"),
        ("/api/rounds?kind=block&number=9", 404, "number"),
        ("/api/winners?limit=500", 400, "limit"),
        ("/api/timeline?buckets=0", 400, "buckets"),
        ("/api/timeline?from=10&to=5", 400, "to"),
        ("/api/timeline?from=-5", 400, "from"),
        ("/api/timeline?from=0&to=9223372036854775807", 400, "to"),
        ("/api/reports?order=sideways", 400, "order"),
    ] {
        let response = reqwest::get(format!("{}{path}", server.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        let text = response.text().await.unwrap();
        assert!(text.contains(names), "{path}: {text}");
    }
    server.stop().await;
}

/// With `--memory` and a small `max_reports`, the analysis covers every report the
/// run received, including those later evicted (README, "Performance"), while
/// `/api/runs` says how many were evicted and the report pages hold only the kept
/// ones: the network's 18 reports in a store that keeps 10.
#[tokio::test]
async fn in_memory_the_analysis_counts_evicted_reports_too() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Memory { max_reports: 10 }).await;
    let t0 = network(&server).await;
    let runs = server.get_json("/api/runs").await;
    assert_eq!(
        (runs[0]["reports"].as_u64(), runs[0]["evicted"].as_u64()),
        (Some(10), Some(8)),
        "{runs}"
    );
    let page = server.get_json("/api/reports?limit=100").await;
    let seqs: Vec<u64> = page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (9..=18).collect::<Vec<_>>(),
        "only the newest 10 kept"
    );

    // The analysis is that of all 18: the same answers as with nothing evicted,
    // though the first sends and receipts (seqs 1–8) are gone from the store.
    check_analysis(&server, "run-1").await;
    let nodes = &server.get_json("/api/nodes?order=sender").await["nodes"];
    let reports: u64 = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["reports"].as_u64().unwrap())
        .sum();
    assert_eq!(reports, 18, "{nodes}");
    assert_eq!(
        nodes[0]["start_unix_nano"],
        t0 - 4 * MS,
        "1f's evicted start"
    );
    let whole = server.get_json("/api/timeline?buckets=10").await;
    let total: u64 = whole["senders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sender| sender["total"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 18);
    assert_eq!(
        whole["run_from"],
        t0 - 5 * MS,
        "the run began with an evicted report"
    );

    // Once another run is current, the first one's analysis is still of all 18.
    server.new_run(None).await;
    check_analysis(&server, "1").await;
    let runs = server.get_json("/api/runs").await;
    let first = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["id"] == 1)
        .unwrap();
    assert_eq!(first["evicted"], 8, "{runs}");
    server.stop().await;
}
