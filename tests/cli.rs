//! The command line: help, version, exit codes, and the terminal tools against the
//! real binary.

mod support;

use perfstats::client::Client;
use perfstats::{Event, PerformanceData};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::BinaryServer;

use support::{perfstats, perfstats_env};

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn help_and_version_are_complete() {
    let help = text(&perfstats(&["--help"]).stdout);
    for command in [
        "serve", "report", "tail", "export", "runs", "compare", "check",
    ] {
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
        let stdout = tail.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map(Result::unwrap)
                .collect::<Vec<String>>()
        });
        // tail exits after its third report; 60 s only trips on a tail that hangs.
        let status = support::wait_child(
            &mut tail,
            support::COMMAND_DEADLINE,
            "tail --count 3 to print 3 reports and exit",
        );
        assert!(status.success(), "{status:?}");
        reader.join().unwrap()
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
    let row: Vec<&str> = runs.lines().nth(1).unwrap().split_whitespace().collect();
    // id, name, reports, evicted, started, "(current)": the count is its own column.
    assert_eq!(
        (row[0], row[1], row[2], row[3], row.last().copied()),
        ("1", "exp-1", "25", "0", Some("(current)")),
        "{runs}"
    );
    server.kill9();
}

/// `(reports, evicted, name)` of the current run, read over HTTP.
async fn current_run(url: &str, token: Option<&str>) -> (u64, u64, String) {
    let mut request = support::http().get(format!("{url}/api/runs"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let runs: Vec<serde_json::Value> = request.send().await.unwrap().json().await.unwrap();
    let run = runs.iter().find(|run| run["current"] == true).unwrap();
    (
        run["reports"].as_u64().unwrap(),
        run["evicted"].as_u64().unwrap(),
        run["name"].as_str().unwrap().to_string(),
    )
}

async fn send_from(url: &str, senders: &[&str]) {
    let client = Client::connect_lazy(url).unwrap();
    for sender in senders {
        client
            .send_performance_stat_with_retries(PerformanceData::new(
                0,
                *sender,
                Event::NewBlockReceived,
                "b",
            ))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_every_setting_from_the_environment_and_flags_beat_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-env.db");
    // From the environment alone: where to listen, the database, the run, the
    // sender labels.
    let server = BinaryServer::start_with_env(
        &[],
        &[
            ("PERFSTATS_LISTEN", "127.0.0.1:0"),
            ("PERFSTATS_DB", db.to_str().unwrap()),
            ("PERFSTATS_NEW_RUN", "from-env"),
            ("PERFSTATS_METRICS_MAX_SENDERS", "2"),
        ],
    );
    send_from(&server.url, &["a", "b", "c"]).await;
    assert_eq!(
        current_run(&server.url, None).await,
        (3, 0, "from-env".into())
    );
    let metrics = support::http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("perfstats_reports_stored_by_sender_total{sender=\"\"} 1"),
        "PERFSTATS_METRICS_MAX_SENDERS=2 took effect: {metrics}"
    );
    server.kill9();
    assert_eq!(support::stored_ids(&db).len(), 3, "stored in PERFSTATS_DB");

    // RAM only with a bound, from the environment.
    let server = BinaryServer::start_with_env(
        &[],
        &[
            ("PERFSTATS_LISTEN", "127.0.0.1:0"),
            ("PERFSTATS_MEMORY", "true"),
            ("PERFSTATS_MAX_REPORTS", "5"),
        ],
    );
    send_from(&server.url, &["a"; 8]).await;
    assert_eq!(current_run(&server.url, None).await, (5, 3, "run-1".into()));
    server.kill9();

    // Flags beat the environment: the listen address (the variable's port 1 would
    // fail), the bound, the run name, the sender labels.
    let server = BinaryServer::start_with_env(
        &[
            "--listen",
            "127.0.0.1:0",
            "--memory",
            "--max-reports",
            "3",
            "--new-run",
            "from-flag",
            "--metrics-max-senders",
            "1",
        ],
        &[
            ("PERFSTATS_LISTEN", "127.0.0.1:1"),
            ("PERFSTATS_MAX_REPORTS", "5"),
            ("PERFSTATS_NEW_RUN", "from-env"),
            ("PERFSTATS_METRICS_MAX_SENDERS", "100"),
        ],
    );
    send_from(&server.url, &["a", "b", "a", "b", "a", "b", "a", "b"]).await;
    assert_eq!(
        current_run(&server.url, None).await,
        (3, 5, "from-flag".into())
    );
    let metrics = support::http()
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("perfstats_reports_stored_by_sender_total{sender=\"\"} 4"),
        "--metrics-max-senders 1 beat the variable: {metrics}"
    );
    server.kill9();

    // The defaults, where a test cannot observe them without 12345 or a million reports.
    let help = text(&perfstats(&["serve", "--help"]).stdout);
    for default in [
        "[default: 127.0.0.1:12345]",
        "[default: perfstats.db]",
        "[default: 1000000]",
        "[default: 100]",
    ] {
        assert!(help.contains(default), "{default} in {help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_command_sends_the_token_from_the_flag_or_the_environment() {
    let server = BinaryServer::start(&["--memory", "--token", "w", "--read-token", "r"]);
    let url = server.url.clone();
    let report = |token: &[&'static str], envs: &[(&'static str, &'static str)]| {
        let mut args = vec![
            "report",
            "--addr",
            &url,
            "--sender",
            "1f",
            "--event",
            "83",
            "--message",
            "m",
        ];
        args.extend_from_slice(token);
        perfstats_env(&args, envs)
    };
    let refused = report(&[], &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("Unauthenticated"),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(
        report(&["--token", "r"], &[]).status.code(),
        Some(1),
        "a read token cannot write"
    );
    assert_eq!(
        text(&report(&["--token", "w"], &[]).stdout).trim(),
        "seq=1 run=run-1 duplicate=false"
    );
    assert_eq!(
        text(&report(&[], &[("PERFSTATS_TOKEN", "w")]).stdout).trim(),
        "seq=2 run=run-1 duplicate=false"
    );
    assert_eq!(
        report(&["--token", "w"], &[("PERFSTATS_TOKEN", "bad")])
            .status
            .code(),
        Some(0),
        "the flag beats the variable"
    );

    for command in ["runs", "export"] {
        let without = perfstats(&[command, "--addr", &url]);
        assert_eq!(without.status.code(), Some(1), "{command} without a token");
        assert!(
            text(&without.stderr).contains("401 Unauthorized"),
            "{command}: {}",
            text(&without.stderr)
        );
        let with = perfstats(&[command, "--addr", &url, "--token", "r"]);
        assert_eq!(
            with.status.code(),
            Some(0),
            "{command} --token r: {}",
            text(&with.stderr)
        );
        let from_env = perfstats_env(&[command, "--addr", &url], &[("PERFSTATS_TOKEN", "r")]);
        assert_eq!(
            from_env.stdout, with.stdout,
            "{command} with PERFSTATS_TOKEN"
        );
    }
    let csv = text(&perfstats(&["export", "--addr", &url, "--token", "r"]).stdout);
    assert_eq!(csv.lines().count(), 4, "header and the 3 reports: {csv}");
    // The address from the environment too, and the flag beats it.
    let runs = perfstats_env(
        &["runs"],
        &[("PERFSTATS_ADDR", &url), ("PERFSTATS_TOKEN", "r")],
    );
    assert_eq!(runs.status.code(), Some(0), "{}", text(&runs.stderr));
    let runs = perfstats_env(
        &["runs", "--addr", &url],
        &[
            ("PERFSTATS_ADDR", "http://127.0.0.1:1"),
            ("PERFSTATS_TOKEN", "r"),
        ],
    );
    assert_eq!(
        runs.status.code(),
        Some(0),
        "--addr beats PERFSTATS_ADDR: {}",
        text(&runs.stderr)
    );

    // tail: refused at once without a token (not retried forever), follows with it.
    let refused = perfstats(&["tail", "--addr", &url, "--count", "1"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let tail_url = url.clone();
    let tail = std::thread::spawn(move || {
        perfstats_env(
            &["tail", "--addr", &tail_url, "--count", "1"],
            &[("PERFSTATS_TOKEN", "r")],
        )
    });
    let metrics = format!("{url}/metrics");
    support::eventually(std::time::Duration::from_secs(30), async || {
        let response = support::http()
            .get(&metrics)
            .bearer_auth("r")
            .send()
            .await
            .unwrap();
        response
            .text()
            .await
            .unwrap()
            .contains("perfstats_sse_subscribers 1")
    })
    .await;
    let client = Client::connect_lazy(&url).unwrap().with_token("w").unwrap();
    client
        .send_performance_stat(PerformanceData::new(
            0,
            "9f",
            Event::NewBlockReceived,
            "for tail",
        ))
        .await
        .unwrap();
    let tailed = tokio::task::spawn_blocking(move || tail.join().unwrap())
        .await
        .unwrap();
    assert_eq!(tailed.status.code(), Some(0), "{}", text(&tailed.stderr));
    assert!(
        text(&tailed.stdout)
            .trim_end()
            .ends_with(" 9f NEW_BLOCK_RECEIVED for tail"),
        "{}",
        text(&tailed.stdout)
    );
    server.kill9();
}

/// SIGINT (Ctrl-C) and SIGTERM stop the server the same way: with a live stream
/// open (which never ends by itself), it still exits 0 within its 5 s grace, and
/// everything ACKed is stored. The exit code is the check: past the grace the
/// server exits 1, and `signal` fails the test if it has not exited within 15 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_and_sigterm_with_a_stream_open_exit_zero_with_reports_stored() {
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("signal.db");
        let server = BinaryServer::start(&["--db", db.to_str().unwrap()]);
        send_from(&server.url, &["a", "b", "c"]).await;
        let stream = support::http()
            .get(format!("{}/api/stream?after=0", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), 200);
        let started = std::time::Instant::now();
        let status = tokio::task::spawn_blocking(move || server.signal(signal))
            .await
            .unwrap();
        println!(
            "SIG{signal} with a stream open: exited {status:?} after {:?}",
            started.elapsed()
        );
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: exit 0 (1 means the 5 s grace ran out)"
        );
        assert_eq!(support::stored_ids(&db).len(), 3);
        drop(stream);
    }
}
