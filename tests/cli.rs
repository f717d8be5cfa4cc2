//! The command line: help, version, exit codes, and the terminal tools against the
//! real binary.

mod support;

use perfstats::client::Client;
use perfstats::{Event, PerformanceData};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::BinaryServer;

fn perfstats(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perfstats"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn help_and_version_are_complete() {
    let help = text(&perfstats(&["--help"]).stdout);
    for command in ["serve", "report", "tail", "export", "runs"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    let version = text(&perfstats(&["--version"]).stdout);
    assert_eq!(
        version.trim(),
        format!("perfstats {}", env!("CARGO_PKG_VERSION"))
    );
    let serve = text(&perfstats(&["serve", "--help"]).stdout);
    for flag in [
        "--listen",
        "--db",
        "--memory",
        "--max-reports",
        "--new-run",
        "--token",
        "--read-token",
        "--metrics-max-senders",
        "PERFSTATS_LISTEN",
        "[default: 127.0.0.1:12345]",
    ] {
        assert!(serve.contains(flag), "{flag} in {serve}");
    }
    for (command, flag) in [
        ("report", "--event"),
        ("tail", "--sender"),
        ("export", "--format"),
        ("runs", "--addr"),
    ] {
        let help = text(&perfstats(&[command, "--help"]).stdout);
        assert!(
            help.contains(flag) && help.contains("PERFSTATS_ADDR"),
            "{command}: {help}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    assert_eq!(perfstats(&["serve", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        perfstats(&["tail", "--event", "bogus"]).status.code(),
        Some(2)
    );
    assert_eq!(
        perfstats(&[
            "report",
            "--sender",
            "1f",
            "--event",
            "nope",
            "--message",
            "m"
        ])
        .status
        .code(),
        Some(2)
    );
    let unreachable = perfstats(&["runs", "--addr", "http://127.0.0.1:1"]);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(text(&unreachable.stderr).starts_with("perfstats: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_exits_1_with_the_servers_refusal() {
    let server = BinaryServer::start(&["--memory"]);
    let url = server.url.clone();
    let refused = tokio::task::spawn_blocking(move || {
        perfstats(&[
            "report",
            "--addr",
            &url,
            "--sender",
            "1f",
            "--event",
            "83",
            "--message",
            "",
        ])
    })
    .await
    .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("message: must not be empty"),
        "{stderr}"
    );
    let url = server.url.clone();
    let accepted = tokio::task::spawn_blocking(move || {
        perfstats(&[
            "report",
            "--addr",
            &url,
            "--sender",
            "1f",
            "--event",
            "Event_NewBlockReceived",
            "--message",
            "b",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        text(&accepted.stdout).trim(),
        "seq=1 run=run-1 duplicate=false"
    );
    server.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tail.db");
    let db_arg = db.to_str().unwrap().to_string();
    let server = BinaryServer::start(&["--db", &db_arg]);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_perfstats"))
        .args([
            "tail",
            "--addr",
            &server.url,
            "--sender",
            "1f",
            "--count",
            "3",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Report only once tail is subscribed (it follows from "now").
    let metrics = format!("{}/metrics", server.url);
    support::eventually(std::time::Duration::from_secs(30), async || {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        text.contains("perfstats_sse_subscribers 1")
    })
    .await;
    let send = async |url: &str, sender: &str, message: &str| {
        Client::connect_lazy(url)
            .unwrap()
            .send_performance_stat_with_retries(PerformanceData::new(
                0,
                sender,
                Event::NewBlockReceived,
                message,
            ))
            .await
            .unwrap();
    };
    send(&server.url, "1f", "before").await;
    send(&server.url, "2f", "filtered out").await;
    server.kill9();
    let restarted = BinaryServer::start_listening(&format!("127.0.0.1:{port}"), &["--db", &db_arg]);
    send(&restarted.url, "1f", "after one").await;
    send(&restarted.url, "1f", "after two").await;
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        let lines = BufReader::new(tail.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        assert!(tail.wait().unwrap().success());
        lines
    })
    .await
    .unwrap();
    let messages: Vec<&str> = lines
        .iter()
        .map(|line| line.rsplit(" NEW_BLOCK_RECEIVED ").next().unwrap())
        .collect();
    assert_eq!(messages, ["before", "after one", "after two"], "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|line| line.contains(" 1f NEW_BLOCK_RECEIVED ")),
        "{lines:?}"
    );
    restarted.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_runs_write_to_stdout() {
    let server = BinaryServer::start(&["--memory", "--new-run", "exp-1"]);
    let client = Client::connect_lazy(&server.url).unwrap();
    let batch = (0..25)
        .map(|i| PerformanceData::new(0, "3f", Event::TransactionReceived, format!("tx, \"{i}\"")))
        .collect();
    client.send_batch_with_retries(batch).await.unwrap();
    let url = server.url.clone();
    let (ndjson, csv, runs) = tokio::task::spawn_blocking(move || {
        (
            perfstats(&["export", "--addr", &url, "--format", "ndjson"]),
            perfstats(&["export", "--addr", &url, "--run", "exp-1"]),
            perfstats(&["runs", "--addr", &url]),
        )
    })
    .await
    .unwrap();
    let reports: Vec<serde_json::Value> = text(&ndjson.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(reports.len(), 25);
    assert_eq!(reports[24]["message"], "tx, \"24\"");
    assert!(ndjson.stderr.is_empty(), "quiet when not on a terminal");
    let csv = text(&csv.stdout);
    assert_eq!(csv.lines().count(), 26, "header and 25 rows");
    assert!(csv.contains(",\"tx, \"\"7\"\"\","), "{csv}");
    let runs = text(&runs.stdout);
    assert!(
        runs.lines().nth(1).unwrap().contains("exp-1")
            && runs.contains("25")
            && runs.contains("(current)"),
        "{runs}"
    );
    server.kill9();
}
