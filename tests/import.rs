//! `perfstats import` through the real binary: a run with rounds, winners and
//! awkward text exported from one server (CSV and NDJSON, by `perfstats export`)
//! and imported into another has the same analysis and the same reports (ids, times,
//! text) in the same order; importing it again stores nothing; a name taken, a
//! malformed file and a missing file exit 1 saying why, and store nothing.

mod support;

use perfstats::report::now_unix_nano;
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use serde_json::Value;
use std::path::{Path, PathBuf};
use support::TestServer;

const MS: i64 = 1_000_000;
const NODES: [&str; 5] = ["1f", "2f", "3f", "4l", "5l"];
/// More reports than one import batch holds, so the order is kept across batches.
const FILLER: usize = 12_000;

/// A run of 20 problem, block and reveal rounds among `ra` and five nodes, with
/// winners (disagreeing in round 7), a missed block, text that CSV must quote
/// (commas, quotes, line breaks, non-ASCII), a report stamped by the server (time
/// 0), a few sent late, and enough transactions for several import batches.
fn network() -> Vec<PerformanceData> {
    let start = now_unix_nano() - 200_000 * MS;
    let at = |ms: i64| start + ms * MS;
    let mut reports = Vec::new();
    for (index, node) in NODES.iter().enumerate() {
        let phases = [
            Event::Libp2pNodeIdKnown,
            Event::FirstPeerConnected,
            Event::RaConnected,
            Event::InitialSyncChaindbReceived,
            Event::InitialSyncChaindbVerified,
            Event::InitialSyncCompleted,
        ];
        for (step, event) in phases.into_iter().enumerate() {
            let ms = (index * 10 + step * 37) as i64;
            reports.push(PerformanceData::new(
                at(ms),
                *node,
                event,
                format!("{node} step {step}"),
            ));
        }
    }
    for round in 0..20i64 {
        let base = 1_000 + round * 1_000;
        let kinds = [
            (Event::RaNewProblemSent, Event::SimtaskReceived, 0),
            (Event::RaNewBlockSent, Event::NewBlockReceived, 400),
            (Event::RaCommitRevealSent, Event::RaCommitRevealed, 700),
        ];
        for (sent, received, offset) in kinds {
            let message = format!("{sent:?} {round}, \"hash\"\nab\r\ncd ü🦀");
            reports.push(PerformanceData::new(at(base + offset), "ra", sent, message));
            for (index, node) in NODES.iter().enumerate() {
                if round == 3 && received == Event::NewBlockReceived && *node == "5l" {
                    continue;
                }
                let latency = 10 + 7 * index as i64 + (round * 13 + index as i64 * 5) % 11;
                let text = format!("{round}, {node}: \"got it\"");
                reports.push(PerformanceData::new(
                    at(base + offset + latency),
                    *node,
                    received,
                    text,
                ));
            }
        }
        for node in NODES {
            let winner = if round == 7 && node == "3f" {
                "3f"
            } else {
                "winner \"4l\", by a nose"
            };
            reports.push(PerformanceData::new(
                at(base + 300),
                node,
                Event::BlockWinnerFound,
                winner,
            ));
        }
    }
    // A few late: arrival order is not time order.
    let late = reports.remove(40);
    reports.push(late);
    reports.swap(100, 200);
    reports.push(PerformanceData::new(
        0,
        "2f",
        Event::NewPeerConnected,
        "stamped, by \"the server\"",
    ));
    for i in 0..FILLER {
        let node = NODES[i % NODES.len()];
        let message = if i % 1000 == 0 {
            format!("tx {i}\r")
        } else {
            format!("tx {i}")
        };
        reports.push(PerformanceData::new(
            at(i as i64),
            node,
            Event::TransactionReceived,
            message,
        ));
    }
    reports
}

/// Runs `perfstats ARGS…` off the runtime (the servers are in this process).
async fn run(args: &[&str]) -> std::process::Output {
    support::perfstats_off_runtime(args).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `perfstats export` of `run` in `format` into `dir`; the file's path.
async fn export(server: &TestServer, run: &str, format: &str, dir: &Path) -> PathBuf {
    let path = dir.join(format!("exported.{format}"));
    let output = run_export(server, run, format).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "export: {}",
        text(&output.stderr)
    );
    std::fs::write(&path, output.stdout).unwrap();
    path
}

async fn run_export(server: &TestServer, run: &str, format: &str) -> std::process::Output {
    let url = server.url();
    self::run(&["export", "--addr", &url, "--run", run, "--format", format]).await
}

/// `perfstats import FILE --run RUN` into `server`.
async fn import(server: &TestServer, file: &Path, run: &str) -> std::process::Output {
    let url = server.url();
    let file = file.to_str().unwrap();
    self::run(&["import", "--addr", &url, file, "--run", run]).await
}

/// The run's reports in seq order, without what a server assigns (seq, run, receive time).
async fn reports(server: &TestServer, run: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get_json(&format!("/api/reports?run={run}&after={after}&limit=10000"))
            .await;
        for report in page["reports"].as_array().unwrap() {
            let mut report = report.clone();
            let object = report.as_object_mut().unwrap();
            for assigned in ["seq", "run", "received_unix_nano"] {
                object.remove(assigned);
            }
            all.push(report);
        }
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

/// What must be the same on both servers: the analysis, the timeline, the reports.
async fn everything(server: &TestServer, run: &str) -> (Value, Value, Vec<Value>) {
    (
        server
            .get_json(&format!("/api/analysis?run={run}&recent=200"))
            .await,
        server
            .get_json(&format!("/api/timeline?run={run}&buckets=300"))
            .await,
        reports(server, run).await,
    )
}

/// A run's report count, from `/api/runs` (`None`: no such run).
async fn count(server: &TestServer, run: &str) -> Option<u64> {
    let runs = server.get_json("/api/runs").await;
    let found = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|info| info["name"] == run)?;
    found["reports"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_run_imports_into_another_server_as_it_was_and_only_once() {
    let source = support::spawn_server().await;
    source.new_run(Some("night-1")).await;
    let sent = network();
    let total = sent.len() as u64;
    source.client().send_batch_with_retries(sent).await.unwrap();
    let original = everything(&source, "night-1").await;
    let analysis = &original.0;
    assert_eq!(analysis["rounds_total"], 60, "20 rounds of each kind");
    assert_eq!(analysis["rounds_flagged"], 1, "5l missed block 3");
    assert_eq!(analysis["winners_disagreeing"], 1, "round 7");
    assert_eq!(original.2.len() as u64, total);

    let dir = tempfile::tempdir().unwrap();
    let csv = export(&source, "night-1", "csv", dir.path()).await;
    let ndjson = export(&source, "night-1", "ndjson", dir.path()).await;
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .contains("\"winner \"\"4l\"\", by a nose\"")
    );

    // Each format into a server of its own, then the other format again into it.
    for (name, first, second) in [("csv", &csv, &ndjson), ("ndjson", &ndjson, &csv)] {
        let target =
            support::spawn_with(Backend::Sqlite(dir.path().join(format!("{name}.db")))).await;
        let imported = import(&target, first, "night-1 copy").await;
        assert_eq!(
            imported.status.code(),
            Some(0),
            "{name}: {}",
            text(&imported.stderr)
        );
        assert_eq!(
            text(&imported.stdout),
            format!(
                "imported {total} reports into run night-1 copy (0 already stored: duplicates)\n"
            ),
            "{name}"
        );
        assert_eq!(
            text(&imported.stderr),
            "",
            "{name}: no progress line when stderr is not a terminal"
        );
        let copy = everything(&target, "night-1%20copy").await;
        assert_eq!(copy.0, original.0, "{name}: the same analysis");
        assert_eq!(copy.1, original.1, "{name}: the same timeline");
        assert_eq!(copy.2.len(), original.2.len(), "{name}: as many reports");
        for (i, (copied, was)) in copy.2.iter().zip(&original.2).enumerate() {
            assert_eq!(
                copied, was,
                "{name}: report {i} (ids, times and text in the same order)"
            );
        }

        // Again, under another name: every report is a duplicate, nothing is stored.
        let again = import(&target, second, "again").await;
        assert_eq!(
            again.status.code(),
            Some(0),
            "{name}: {}",
            text(&again.stderr)
        );
        assert_eq!(
            text(&again.stdout),
            format!("imported 0 reports into run again ({total} already stored: duplicates)\n")
        );
        assert_eq!(count(&target, "again").await, Some(0));
        assert_eq!(count(&target, "night-1 copy").await, Some(total));

        // The same name again: refused before anything is sent.
        let taken = import(&target, first, "again").await;
        assert_eq!(taken.status.code(), Some(1));
        assert_eq!(
            text(&taken.stderr),
            "perfstats: a run named \"again\" exists already on the server (imported before?): \
             name another with --run\n"
        );
        target.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_missing_file_exits_1_naming_the_line_and_stores_nothing() {
    let target = support::spawn_server().await;
    let dir = tempfile::tempdir().unwrap();
    let header = "seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id\r\n";
    let good = "1,1,1723700000000000000,1723700000000000001,1f,EVENT_NEW_BLOCK_RECEIVED,\"block 1,\r\n2\",id-1\r\n";
    let bad = "2,1,1723700000000000002,1723700000000000003,2f,EVENT_NEW_BLOCK_RECEIVED,block 2,id-2\r\n\
               3,1,17237x,1723700000000000005,3f,EVENT_NEW_BLOCK_RECEIVED,block 3,id-3\r\n";
    let csv = dir.path().join("broken.csv");
    std::fs::write(&csv, format!("{header}{good}{bad}")).unwrap();
    let output = import(&target, &csv, "broken").await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "perfstats: {}: line 5: time_unix_nano: expected an integer (got \"17237x\")\n",
            csv.display()
        )
    );
    assert_eq!(count(&target, "broken").await, None, "no run was started");

    let ndjson = dir.path().join("broken.ndjson");
    std::fs::write(
        &ndjson,
        "{\"time_unix_nano\":5,\"sender\":\"1f\",\"event\":\"EVENT_NEW_BLOCK_RECEIVED\",\"message\":\"m\",\"report_id\":\"a\"}\n\
         {\"time_unix_nano\":6,\"sender\":\"1f\",\"event\":\"EVENT_NOPE\",\"message\":\"m\",\"report_id\":\"b\"}\n",
    )
    .unwrap();
    let output = import(&target, &ndjson, "broken").await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).ends_with(": line 2: event: not an event name (got \"EVENT_NOPE\")\n"),
        "{}",
        text(&output.stderr)
    );

    // The run's name defaults to the file's stem; a file that is not there fails.
    let missing = dir.path().join("nowhere.csv");
    let output = run(&["import", "--addr", &target.url(), missing.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("nowhere.csv: No such file"),
        "{}",
        text(&output.stderr)
    );
    let empty = dir.path().join("empty-run.ndjson");
    std::fs::write(&empty, "").unwrap();
    let output = run(&["import", "--addr", &target.url(), empty.to_str().unwrap()]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "imported 0 reports into run empty-run (0 already stored: duplicates)\n"
    );
    assert_eq!(count(&target, "empty-run").await, Some(0));
    assert_eq!(count(&target, "broken").await, None);
    // No file given: bad usage.
    assert_eq!(
        run(&["import", "--addr", &target.url()])
            .await
            .status
            .code(),
        Some(2)
    );
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_sends_the_write_token_over_http_and_grpc() {
    let server = support::BinaryServer::start(&["--memory", "--token", "w", "--read-token", "r"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("two.ndjson");
    std::fs::write(
        &file,
        "{\"time_unix_nano\":5,\"sender\":\"1f\",\"event\":\"EVENT_NEW_BLOCK_RECEIVED\",\"message\":\"m\",\"report_id\":\"a\"}\n\
         {\"time_unix_nano\":6,\"sender\":\"2f\",\"event\":\"EVENT_NEW_BLOCK_RECEIVED\",\"message\":\"m\",\"report_id\":\"b\"}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let without = run(&["import", "--addr", &server.url, path]).await;
    assert_eq!(without.status.code(), Some(1));
    assert!(
        text(&without.stderr).contains("401 Unauthorized"),
        "{}",
        text(&without.stderr)
    );
    let read_only = run(&["import", "--addr", &server.url, path, "--token", "r"]).await;
    assert_eq!(
        read_only.status.code(),
        Some(1),
        "a read token cannot start a run"
    );
    let with = run(&["import", "--addr", &server.url, path, "--token", "w"]).await;
    assert_eq!(with.status.code(), Some(0), "{}", text(&with.stderr));
    assert_eq!(
        text(&with.stdout),
        "imported 2 reports into run two (0 already stored: duplicates)\n"
    );
}
