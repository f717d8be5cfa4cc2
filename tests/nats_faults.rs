//! Faults of a `--nats` cluster, with real processes on loopback
//! (`tests/support/nats.rs`): a stream without quorum (2 of 3 NATS servers down)
//! refuses writes but serves reads, and writes come back with one server; the NATS
//! server a perfstats is connected to paused (SIGSTOP) under load, leading the
//! stream or not, is left for another within the stated bound, losing and doubling
//! nothing; a paused perfstats catches up once resumed. `GET /api/cluster` is checked along the way.

mod support;

use perfstats::client::{Client, RetryPolicy, is_retryable};
use perfstats::{Event, PerformanceData};
use std::time::{Duration, Instant};
use support::load::{
    ATTEMPT_DEADLINE, Attempt, Load, all_acks, no_write_hung, stored_once_everywhere,
};
use support::nats::{NatsCluster, reaches_the_stream, signal_process, writable};
use support::{BinaryServer, http, wait_until, within};

/// How long a server may take to reach the stream or apply all of it: seconds
/// here; 60 s only trips on a real hang.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// The README's bound: writes through a perfstats succeed again within 15 s of
/// the NATS server it is connected to freezing (when that server does not lead
/// the stream).
const FROZEN_SERVER_BOUND: Duration = Duration::from_secs(15);
/// The README's bound when the frozen node led the stream: writes succeed again
/// within 5 s of the others electing a new leader (or the 15 s, if later).
const AFTER_ELECTION_BOUND: Duration = Duration::from_secs(5);
/// How long a node is paused.
const PAUSE: Duration = Duration::from_secs(20);
const STREAM: &str = "PERFSTATS";

/// `perfstats serve --memory --nats URLS` on 127.0.0.1:0.
fn serve(cluster: &NatsCluster) -> BinaryServer {
    BinaryServer::start(&["--memory", "--nats", &cluster.urls()])
}

async fn get_json(url: &str) -> serde_json::Value {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

/// The node the perfstats `server` is connected to, once it is connected to one.
async fn connected_node(cluster: &NatsCluster, server: &BinaryServer) -> usize {
    let pid = server.child.id();
    let mut node = None;
    wait_until(
        CATCH_UP_DEADLINE,
        "the perfstats to hold a connection to a NATS node",
        async || {
            node = cluster.connected_node(pid);
            node.is_some()
        },
    )
    .await;
    node.unwrap()
}

/// `GET /api/cluster` of `url` once it shows the stream (as the probe read it)
/// healthy.
async fn healthy_overview(url: &str) -> serde_json::Value {
    let mut overview = serde_json::Value::Null;
    wait_until(
        CATCH_UP_DEADLINE,
        &format!("{url}/api/cluster to show the stream healthy"),
        async || {
            overview = get_json(&format!("{url}/api/cluster")).await;
            overview["stream"]["leader"].is_string() && overview["health"] == "healthy"
        },
    )
    .await;
    overview
}

/// Moves the stream's leadership off node `node` (a JetStream leader step-down)
/// when it has it, and waits until another node leads.
async fn lead_elsewhere(cluster: &NatsCluster, node: usize) {
    if cluster.stream_leader(STREAM).await != node {
        return;
    }
    let other = (node + 1) % cluster.len();
    let nats = async_nats::connect(cluster.url(other)).await.unwrap();
    let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}");
    within(
        CATCH_UP_DEADLINE,
        "the stream leader's step-down answer",
        nats.request(subject, "".into()),
    )
    .await
    .unwrap();
    wait_until(
        CATCH_UP_DEADLINE,
        "another node to lead the stream after the step-down",
        async || cluster.stream_leader(STREAM).await != node,
    )
    .await;
}

/// Moves the stream's leadership onto node `node` (step-downs until it has it).
async fn lead_here(cluster: &NatsCluster, node: usize) {
    let nats = async_nats::connect(cluster.url(node)).await.unwrap();
    let subject = format!("$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}");
    within(
        CATCH_UP_DEADLINE,
        &format!(
            "node {} to lead the stream after step-downs",
            cluster.name(node)
        ),
        async {
            loop {
                let leader = cluster.stream_leader(STREAM).await;
                if leader == node {
                    return;
                }
                nats.request(subject.clone(), "".into()).await.unwrap();
                wait_until(
                    CATCH_UP_DEADLINE,
                    "a new stream leader after a step-down",
                    async || cluster.stream_leader(STREAM).await != leader,
                )
                .await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_are_refused_reads_served_and_one_server_back_restores_them() {
    let mut cluster = NatsCluster::start(3).await;
    let a = serve(&cluster);
    reaches_the_stream(&a.url, CATCH_UP_DEADLINE).await;
    let client = Client::connect_lazy(&a.url)
        .unwrap()
        .with_policy(RetryPolicy {
            attempt_timeout: None,
            ..RetryPolicy::never()
        });
    client
        .send_performance_stat(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "before",
        ))
        .await
        .unwrap();

    // Kill the two nodes A is not connected to: the stream loses its quorum, and
    // the node A talks to still answers it (no reason to leave it).
    let kept = connected_node(&cluster, &a).await;
    healthy_overview(&a.url).await;
    let killed: Vec<usize> = (0..3).filter(|&i| i != kept).collect();
    for &i in &killed {
        cluster.kill(i);
    }
    let mut refusals = Vec::new();
    for k in 0..5 {
        let started = Instant::now();
        let refused = within(
            ATTEMPT_DEADLINE,
            "a write without quorum to be answered",
            client.send_performance_stat(PerformanceData::new(
                0,
                "1f",
                Event::NewBlockReceived,
                format!("no quorum {k}"),
            )),
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(is_retryable(&refused));
        refusals.push(started.elapsed());
    }
    println!("writes without quorum refused after {refusals:?}");
    wait_until(
        CATCH_UP_DEADLINE,
        "A to say it cannot write (perfstats_stream_writable 0)",
        async || !writable(&a.url).await,
    )
    .await;
    let overview = get_json(&format!("{}/api/cluster", a.url)).await;
    assert_eq!(overview["health"], "unreachable", "{overview}");
    assert_eq!(overview["server"]["writable"], false, "{overview}");
    assert_eq!(overview["stream"]["name"], STREAM, "{overview}");
    // Reads are served from A's own store.
    let reads = http()
        .get(format!("{}/api/reports", a.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reads.status(), 200);
    let reads = reads.text().await.unwrap();
    assert!(
        reads.contains("\"before\"") && !reads.contains("no quorum"),
        "{reads}"
    );
    // No reconnect storm: A stayed on the node that still answers.
    assert_eq!(cluster.connected_node(a.child.id()), Some(kept));

    // One node back: quorum again, and writes with it.
    let back_from = Instant::now();
    cluster.restart(killed[0]).await;
    let patient = Client::connect_lazy(&a.url)
        .unwrap()
        .with_policy(RetryPolicy {
            attempt_timeout: Some(ATTEMPT_DEADLINE),
            ..RetryPolicy::exponential(400, Duration::from_millis(20), Duration::from_millis(250))
        });
    let ack = within(
        CATCH_UP_DEADLINE,
        "a write to succeed once one node is back",
        patient.send_performance_stat_with_retries(PerformanceData::new(
            0,
            "1f",
            Event::NewBlockReceived,
            "after",
        )),
    )
    .await
    .unwrap();
    // An attempt that timed out without quorum may still have been stored once
    // quorum came back: then a retry is its duplicate, with the seq it is at.
    assert!(ack.seq > 0, "{ack:?}");
    println!(
        "writes back {:?} after node {} was restarted",
        back_from.elapsed(),
        cluster.name(killed[0])
    );
    wait_until(CATCH_UP_DEADLINE, "A to apply the write", async || {
        let reads = http()
            .get(format!("{}/api/reports", a.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        reads.contains("\"after\"")
    })
    .await;
    a.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_nats_server_is_left_for_another_under_load_losing_nothing() {
    freeze_under_load(Leads::No).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_stream_leader_is_left_within_5_s_of_the_election() {
    freeze_under_load(Leads::Yes).await;
}

/// Whether the NATS node that freezes leads the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leads {
    No,
    Yes,
}

/// Pauses (SIGSTOP) the NATS node perfstats A is connected to for [`PAUSE`] while
/// clients write through A, then resumes it: A leaves it within the README's
/// bound (15 s; with `Leads::Yes`, or 5 s after the others elect a new leader),
/// no write hangs, nothing is lost or doubled, and A and B store the same.
async fn freeze_under_load(leads: Leads) {
    let cluster = NatsCluster::start(3).await;
    let a = serve(&cluster);
    let b = serve(&cluster);
    for url in [&a.url, &b.url] {
        reaches_the_stream(url, CATCH_UP_DEADLINE).await;
    }
    let frozen = connected_node(&cluster, &a).await;
    match leads {
        Leads::No => lead_elsewhere(&cluster, frozen).await,
        Leads::Yes => lead_here(&cluster, frozen).await,
    }
    let overview = healthy_overview(&a.url).await;
    assert_eq!(overview["stream"]["name"], STREAM, "{overview}");
    assert_eq!(overview["stream"]["replicas"], 3, "{overview}");
    assert_eq!(
        overview["stream"]["peers"].as_array().map(Vec::len),
        Some(2),
        "{overview}"
    );
    assert_eq!(overview["server"]["writable"], true, "{overview}");
    assert_eq!(
        overview["server"]["nats_server"],
        cluster.name(frozen),
        "/api/cluster names the node the sockets show: {overview}"
    );

    let load = Load::start(&a.url, "f", 4);
    load.more_acks(300, "300 reports ACKed before the pause")
        .await;
    let paused_at = Instant::now();
    let acked_at_pause = load.acked();
    cluster.pause(frozen);
    // The load goes on: writes must come back while the node is still paused.
    let mut moved_to = None;
    let mut elected_at = None;
    let others: Vec<usize> = (0..cluster.len()).filter(|&i| i != frozen).collect();
    within(
        PAUSE,
        "A to leave the paused node and get ACKs again (while it is still paused)",
        async {
            loop {
                if let Some(node) = cluster.connected_node(a.child.id())
                    && node != frozen
                {
                    moved_to = Some(node);
                }
                if elected_at.is_none()
                    && cluster.stream_leader_among(STREAM, &others).await.is_some()
                {
                    elected_at = Some(Instant::now());
                }
                // When the paused node led the stream, also wait to see the others'
                // election (writes may come back before this poll sees it).
                if moved_to.is_some()
                    && load.acked() > acked_at_pause + 100
                    && (matches!(leads, Leads::No) || elected_at.is_some())
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    tokio::time::sleep(PAUSE.saturating_sub(paused_at.elapsed())).await;
    let resumed_at = Instant::now();
    cluster.resume(frozen);
    load.more_acks(300, "300 reports ACKed after the resume")
        .await;
    let sent = load.finish().await;

    // The fault happened under load: ACKs came while the node was paused, and
    // after it was resumed, before the load finished.
    let attempts: Vec<Attempt> = sent.iter().flat_map(|one| one.attempts.clone()).collect();
    let acked_between = |from: Instant, to: Instant| {
        attempts
            .iter()
            .filter(|attempt| attempt.acked && attempt.started > from && attempt.started < to)
            .count()
    };
    assert!(
        acked_between(paused_at, resumed_at) > 0,
        "no ACK while paused"
    );
    assert!(
        acked_between(resumed_at, Instant::now()) > 0,
        "no ACK after the resume"
    );
    // Writes came back within the bound: the first ACKed attempt started after the
    // pause began (none could go through the paused node).
    let recovered = attempts
        .iter()
        .filter(|attempt| attempt.acked && attempt.started > paused_at)
        .map(|attempt| attempt.started + attempt.took - paused_at)
        .min()
        .unwrap();
    let refused = attempts.iter().filter(|attempt| !attempt.acked).count();
    let longest = no_write_hung(&sent);
    let elected = elected_at.map(|at| at - paused_at);
    println!(
        "paused {} (A's node, stream leader: {leads:?}) under load: first ACK after the pause \
         {recovered:?} after it; a new leader known {elected:?} after it; A moved to {}; \
         {refused} refused attempts; longest attempt {longest:?}",
        cluster.name(frozen),
        cluster.name(moved_to.unwrap()),
    );
    let bound = match leads {
        Leads::No => FROZEN_SERVER_BOUND,
        Leads::Yes => {
            let elected = elected.expect("the others elected a leader while A's node was paused");
            FROZEN_SERVER_BOUND.max(elected + AFTER_ELECTION_BOUND)
        }
    };
    assert!(
        recovered < bound,
        "writes came back {recovered:?} after the freeze, past the bound {bound:?}"
    );
    let overview = get_json(&format!("{}/api/cluster", a.url)).await;
    assert_ne!(
        overview["server"]["nats_server"],
        cluster.name(frozen),
        "{overview}"
    );

    // Nothing lost or doubled, the same everywhere.
    let acks = all_acks(&sent);
    stored_once_everywhere(&[&a.url, &b.url], &acks).await;
    a.terminate();
    b.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_perfstats_catches_up_once_resumed() {
    let cluster = NatsCluster::start(3).await;
    let a = serve(&cluster);
    let b = serve(&cluster);
    for url in [&a.url, &b.url] {
        reaches_the_stream(url, CATCH_UP_DEADLINE).await;
    }
    let load = Load::start(&b.url, "p", 2);
    load.more_acks(200, "200 reports ACKed before A is paused")
        .await;
    let paused_at = Instant::now();
    signal_process(a.child.id(), libc::SIGSTOP);
    let acked_at_pause = load.acked();
    tokio::time::sleep(PAUSE).await;
    let acked_while_paused = load.acked() - acked_at_pause;
    let resumed_at = Instant::now();
    signal_process(a.child.id(), libc::SIGCONT);
    load.more_acks(200, "200 reports ACKed after A is resumed")
        .await;
    let sent = load.finish().await;
    assert!(
        acked_while_paused > 0,
        "B took no writes while A was paused"
    );
    let attempts: Vec<&Attempt> = sent.iter().flat_map(|one| &one.attempts).collect();
    assert!(
        attempts
            .iter()
            .any(|attempt| attempt.acked && attempt.started > resumed_at),
        "the load was over before A was resumed"
    );
    no_write_hung(&sent);

    // A applies what it missed: the same reports at the same seqs as B.
    let acks = all_acks(&sent);
    stored_once_everywhere(&[&b.url, &a.url], &acks).await;
    println!(
        "A paused {:?} while B took {acked_while_paused} reports; caught up {:?} after the resume",
        resumed_at - paused_at,
        resumed_at.elapsed()
    );
    reaches_the_stream(&a.url, CATCH_UP_DEADLINE).await;
    let overview = get_json(&format!("{}/api/cluster", a.url)).await;
    assert_eq!(overview["server"]["lag"], 0, "{overview}");
    a.terminate();
    b.terminate();
}
