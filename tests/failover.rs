//! Clients of several servers: they stick to one while it works and move to the
//! next after a retryable failure (gRPC), or use the first that answers (HTTP).

mod support;

use perfstats::client::http::HttpClient;
use perfstats::client::{Backoff, Client, ClientTls, Reporter, RetryPolicy};
use perfstats::store::{Query, Store};
use perfstats::{Event, PerformanceData};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;
use tonic::Code;

/// An address nothing listens on: a port that was free a moment ago.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// `retries` retries 5–15 ms apart; attempts generous enough for a loaded machine,
/// so that only the failures a test causes move the client.
fn patient(retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries: retries,
        backoff: Backoff::Uniform {
            min: Duration::from_millis(5),
            max: Duration::from_millis(15),
        },
        attempt_timeout: Some(Duration::from_secs(30)),
    }
}

fn report(i: usize) -> PerformanceData {
    PerformanceData::new(0, "1f", Event::NewBlockReceived, format!("block {i}"))
}

/// The report ids of everything `store` holds in its current run, in seq order.
async fn stored_ids(store: &Store) -> Vec<String> {
    stored(store, |report| report.report_id.clone()).await
}

async fn stored(
    store: &Store,
    field: impl Fn(&perfstats::report::Report) -> String,
) -> Vec<String> {
    let query = Query {
        run: store.current_run().id,
        limit: 1_000_000,
        ..Query::default()
    };
    support::within(Duration::from_secs(30), "a store query", store.query(query))
        .await
        .unwrap()
        .iter()
        .map(|report| field(report))
        .collect()
}

/// Asserts that every one of `sent` is stored exactly once across `stores`.
fn assert_each_once(sent: &[String], stores: &[&[String]]) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in stores.iter().flat_map(|ids| ids.iter()) {
        *seen.entry(id).or_default() += 1;
    }
    let total: usize = stores.iter().map(|ids| ids.len()).sum();
    assert_eq!(total, sent.len(), "stored in all: {seen:?}");
    for id in sent {
        assert_eq!(seen.get(id.as_str()), Some(&1), "{id} stored once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_address_is_passed_over_and_every_report_reaches_the_live_one() {
    let live = support::spawn_server().await;
    // Spaces around entries are ignored.
    let client = Client::connect_lazy(&format!(" {} , {} ", dead_url(), live.url())).unwrap();
    // One retry only: the first report's second attempt must go to the live server.
    let first = report(0);
    let ack = support::within(
        Duration::from_secs(60),
        "the first report",
        client
            .clone()
            .with_policy(patient(1))
            .send_performance_stat_with_retries(first.clone()),
    )
    .await
    .expect("the second attempt went to the live server");
    assert_eq!(ack.seq, 1);
    // Clones share the choice: no attempt goes back to the dead address, so even
    // a client that never retries delivers everything now.
    let never = client.clone().with_policy(RetryPolicy::never());
    let mut sent = vec![first.report_id];
    for i in 1..50 {
        let report = report(i);
        sent.push(report.report_id.clone());
        support::within(
            Duration::from_secs(30),
            "a report",
            never.send_performance_stat_with_retries(report),
        )
        .await
        .unwrap_or_else(|status| panic!("report {i}: {status:?}"));
    }
    // A batch through the same rotation.
    let batch: Vec<PerformanceData> = (50..60).map(report).collect();
    sent.extend(batch.iter().map(|report| report.report_id.clone()));
    let acked = support::within(
        Duration::from_secs(30),
        "a batch",
        never.send_batch_with_retries(batch),
    )
    .await
    .unwrap();
    assert_eq!(acked.accepted, 10);
    assert_eq!(stored_ids(&live.store).await, sent);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_also_moves_past_a_dead_address() {
    let live = support::spawn_server().await;
    let client = Client::connect_lazy(&format!("{},{}", dead_url(), live.url()))
        .unwrap()
        .with_policy(patient(1));
    let batch: Vec<PerformanceData> = (0..20).map(report).collect();
    let sent: Vec<String> = batch.iter().map(|r| r.report_id.clone()).collect();
    support::within(
        Duration::from_secs(60),
        "a batch",
        client.send_batch_with_retries(batch),
    )
    .await
    .expect("the second attempt went to the live server");
    assert_eq!(stored_ids(&live.store).await, sent);
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_times_out_moves_the_next_one_on() {
    let (silent_url, holder) = silent_server().await;
    let live = support::spawn_server().await;
    let client = Client::connect_lazy(&format!("{silent_url},{}", live.url()))
        .unwrap()
        .with_policy(RetryPolicy {
            attempt_timeout: Some(Duration::from_millis(300)),
            ..patient(1)
        });
    let first = report(0);
    support::within(
        Duration::from_secs(60),
        "a report past a silent server",
        client.send_performance_stat_with_retries(first.clone()),
    )
    .await
    .expect("the attempt after the timeout went to the live server");
    assert_eq!(stored_ids(&live.store).await, vec![first.report_id]);
    holder.abort();
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stay_on_the_first_server_and_move_to_the_second_when_it_stops() {
    let first = support::spawn_server().await;
    let second = support::spawn_server().await;
    let first_store = first.store.clone();
    let client = Client::connect_lazy(&format!("{},{}", first.url(), second.url()))
        .unwrap()
        .with_policy(patient(50));
    let send = async |i: usize, sent: &mut Vec<String>| {
        let report = report(i);
        sent.push(report.report_id.clone());
        support::within(
            Duration::from_secs(60),
            "a report",
            client.send_performance_stat_with_retries(report),
        )
        .await
        .unwrap_or_else(|status| panic!("report {i}: {status:?}"));
    };
    let mut sent = Vec::new();
    for i in 0..30 {
        send(i, &mut sent).await;
    }
    assert_eq!(stored_ids(&first_store).await, sent, "all on the first");
    assert!(stored_ids(&second.store).await.is_empty());
    first.stop().await;
    for i in 30..60 {
        send(i, &mut sent).await;
    }
    let on_first = stored_ids(&first_store).await;
    let on_second = stored_ids(&second.store).await;
    assert_eq!(on_first, sent[..30], "the first kept what it had");
    assert_eq!(on_second, sent[30..], "the rest on the second, in order");
    assert_each_once(&sent, &[&on_first, &on_second]);
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_does_not_move_the_client() {
    let first = support::spawn_server().await;
    let second = support::spawn_server().await;
    let client = Client::connect_lazy(&format!("{},{}", first.url(), second.url()))
        .unwrap()
        .with_policy(patient(5));
    let bad = PerformanceData::new(0, "1f", Event::NewBlockReceived, "");
    for outcome in [
        client.send_performance_stat_with_retries(bad.clone()).await,
        client.send_performance_stat(bad.clone()).await,
    ] {
        assert_eq!(outcome.unwrap_err().code(), Code::InvalidArgument);
    }
    let refused = client.send_batch_with_retries(vec![report(0), bad]).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);
    let good = report(1);
    support::within(
        Duration::from_secs(30),
        "a good report",
        client.send_performance_stat(good.clone()),
    )
    .await
    .unwrap();
    assert_eq!(stored_ids(&first.store).await, vec![good.report_id]);
    assert!(stored_ids(&second.store).await.is_empty());
    first.stop().await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reporter_delivers_everything_when_its_server_stops_midway() {
    let first = support::spawn_server().await;
    let second = support::spawn_server().await;
    let first_store = first.store.clone();
    let client = Client::connect_lazy(&format!("{},{}", first.url(), second.url())).unwrap();
    let reporter = Reporter::spawn(client, "1f", 10_000);
    let messages: Vec<String> = (0..2_000).map(|i| format!("tx {i}")).collect();
    for message in &messages[..1_000] {
        reporter
            .report(Event::TransactionReceived, message.clone())
            .unwrap();
    }
    // Stop the first while the reporter is delivering to it.
    support::eventually(Duration::from_secs(30), async || {
        first_store.current_run().reports > 0
    })
    .await;
    first.stop().await;
    for message in &messages[1_000..] {
        reporter
            .report(Event::TransactionReceived, message.clone())
            .unwrap();
    }
    let stats = reporter
        .flush(Duration::from_secs(60))
        .await
        .unwrap_or_else(|stats| panic!("not flushed within 60 s: {stats:?}"));
    assert_eq!(
        (stats.accepted, stats.delivered, stats.dropped, stats.failed),
        (2_000, 2_000, 0, 0)
    );
    let message = |report: &perfstats::report::Report| report.message.clone();
    let on_first = stored(&first_store, message).await;
    let on_second = stored(&second.store, message).await;
    assert!(!on_second.is_empty(), "the second took over");
    assert_each_once(&messages, &[&on_first, &on_second]);
    second.stop().await;
}

/// A server that accepts connections and never answers: its URL, and the task
/// holding its connections (abort it to let them go).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    (url, holder)
}

/// Runs `perfstats ARGS…` with only the given PERFSTATS_* variables set, in a
/// blocking task, at most [`support::COMMAND_DEADLINE`].
async fn perfstats(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    let envs: Vec<(String, String)> = envs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
        command.args(&args);
        for (name, _) in std::env::vars() {
            if name.starts_with("PERFSTATS_") {
                command.env_remove(name);
            }
        }
        command.envs(envs);
        support::output_within(
            &mut command,
            support::COMMAND_DEADLINE,
            &format!("perfstats {}", args.join(" ")),
        )
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_take_a_list_of_addresses() {
    let live = support::spawn_server().await;
    let other = support::spawn_server().await;
    let addrs = format!("{},{}", dead_url(), live.url());
    let report = [
        "report",
        "--addr",
        &addrs,
        "--sender",
        "1f",
        "--event",
        "new-block-received",
        "--message",
        "through the list",
    ];
    let sent = perfstats(&report, &[]).await;
    assert_eq!(
        text(&sent.stdout).trim(),
        "seq=1 run=run-1 duplicate=false",
        "{}",
        text(&sent.stderr)
    );
    let without_addr: Vec<&str> = [&report[..1], &report[3..]].concat();
    let sent = perfstats(&without_addr, &[("PERFSTATS_ADDR", &addrs)]).await;
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert_eq!(live.store.current_run().reports, 2);

    let runs = perfstats(&["runs", "--addr", &addrs], &[]).await;
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    let row: Vec<String> = text(&runs.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(row[..3], ["1", "run-1", "2"], "{}", text(&runs.stdout));
    let export = perfstats(
        &["export", "--format", "ndjson"],
        &[("PERFSTATS_ADDR", &addrs)],
    )
    .await;
    assert!(export.status.success(), "{}", text(&export.stderr));
    assert_eq!(text(&export.stdout).lines().count(), 2);

    // An HTTP error from a server that answered is the answer: no move to the next.
    other
        .store
        .new_run(Some("only-on-other".into()), Default::default())
        .await
        .unwrap();
    let both = format!("{},{}", live.url(), other.url());
    let refused = perfstats(&["export", "--addr", &both, "--run", "only-on-other"], &[]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("404"),
        "{}",
        text(&refused.stderr)
    );
    let reversed = format!("{},{}", other.url(), live.url());
    let found = perfstats(
        &["export", "--addr", &reversed, "--run", "only-on-other"],
        &[],
    )
    .await;
    assert!(found.status.success(), "{}", text(&found.stderr));

    // Nobody answering: every address is named.
    let (one, two) = (dead_url(), dead_url());
    let unreachable = perfstats(&["runs", "--addr", &format!("{one},{two}")], &[]).await;
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = text(&unreachable.stderr);
    assert!(stderr.contains(&one) && stderr.contains(&two), "{stderr}");
    live.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn an_empty_entry_is_refused_naming_it() {
    let list = "http://127.0.0.1:1,,http://127.0.0.1:2";
    let errors = [
        Client::connect_lazy(list).unwrap_err().to_string(),
        Client::connect_lazy_with_tls(list, &ClientTls::default())
            .unwrap_err()
            .to_string(),
        HttpClient::with_tls(list, None, &ClientTls::default()).unwrap_err(),
    ];
    for error in errors {
        assert!(
            error.contains("entry 2 of 3 is empty") && error.contains(list),
            "{error}"
        );
    }
    let trailing = Client::connect_lazy("http://127.0.0.1:1,").unwrap_err();
    assert!(
        trailing.to_string().contains("entry 2 of 2 is empty"),
        "{trailing}"
    );
    let refused = perfstats(
        &[
            "report",
            "--addr",
            list,
            "--sender",
            "1f",
            "--event",
            "83",
            "--message",
            "m",
        ],
        &[],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("entry 2 of 3 is empty"),
        "{}",
        text(&refused.stderr)
    );
    let refused = perfstats(&["runs", "--addr", list], &[]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("entry 2 of 3 is empty"),
        "{}",
        text(&refused.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_commands_pass_over_a_server_that_never_answers() {
    let (silent_url, holder) = silent_server().await;
    let live = support::spawn_server().await;
    let addrs = format!("{silent_url},{}", live.url());
    let started = std::time::Instant::now();
    let runs = perfstats(&["runs", "--addr", &addrs], &[]).await;
    assert!(runs.status.success(), "{}", text(&runs.stderr));
    assert!(
        text(&runs.stdout).contains("run-1"),
        "{}",
        text(&runs.stdout)
    );
    let took = started.elapsed();
    println!("runs past a silent server took {took:?}");
    // The silent server is asked first and given its 5 s (so not less), then the
    // live one answers at once: a process start and one loopback request, well
    // under 2 s. 7 s catches a second 5 s wait or no timeout at all (the command's
    // own deadline, 60 s).
    assert!(
        took >= Duration::from_secs(5),
        "{took:?}: the silent server was not waited for"
    );
    assert!(
        took < Duration::from_secs(7),
        "{took:?}: not passed over within the promised 5 s"
    );
    holder.abort();
    live.stop().await;
}
