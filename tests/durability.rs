//! An acknowledged report survives SIGKILL of the real server process.

mod support;

use perfstats::client::Client;
use perfstats::{Event, PerformanceData};
use support::{BinaryServer, stored_ids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_reports_survive_sigkill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("perfstats.db");
    let db_arg = db.to_str().unwrap();
    let server = BinaryServer::start(&["--db", db_arg]);
    let client = Client::connect_lazy(&server.url).unwrap();

    let mut tasks = Vec::new();
    for node in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..50 {
                let report = PerformanceData::new(
                    0,
                    format!("{node}f"),
                    Event::TransactionReceived,
                    format!("tx {i}"),
                );
                let id = report.report_id.clone();
                client
                    .send_performance_stat_with_retries(report)
                    .await
                    .unwrap();
                acked.push(id);
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    let legacy = reqwest::Client::new()
        .post(format!("{}/send", server.url))
        .form(&[
            ("time", "7"),
            ("sender", "old"),
            ("eventtype", "Event_RAConnected"),
            ("message", "legacy"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.text().await.unwrap(), "ACK");
    server.kill9();

    let mut stored = stored_ids(&db);
    assert_eq!(stored.len(), 401, "every ACKed report, once");
    stored.sort();
    stored.dedup();
    assert_eq!(stored.len(), 401, "no report twice");
    for id in &acked {
        assert!(stored.binary_search(id).is_ok(), "ACKed {id} was lost");
    }

    let restarted = BinaryServer::start(&["--db", db_arg]);
    let runs: serde_json::Value = reqwest::get(format!("{}/api/runs", restarted.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "the latest run continues"
    );
    assert_eq!(runs[0]["reports"], 401);
    let page: serde_json::Value = reqwest::get(format!("{}/api/reports?sender=old", restarted.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["reports"][0]["message"], "legacy");
    // A retry of an already stored report after the restart is still a duplicate.
    let client = Client::connect_lazy(&restarted.url).unwrap();
    let mut again = PerformanceData::new(0, "0f", Event::TransactionReceived, "tx 0");
    again.report_id = acked[0].clone();
    let ack = client
        .send_performance_stat_with_retries(again)
        .await
        .unwrap();
    assert!(ack.duplicate);
    assert_eq!(restarted.terminate().code(), Some(0), "SIGTERM exits 0");
    assert_eq!(stored_ids(&db).len(), 401);
}

#[test]
fn an_unopenable_database_ends_serve_with_a_clear_error() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_perfstats"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            "/nonexistent-dir/sub/perfstats.db",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("/nonexistent-dir/sub/perfstats.db"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot open database"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}
