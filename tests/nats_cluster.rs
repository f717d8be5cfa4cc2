//! The JetStream cluster harness itself (`tests/support/nats.rs`), checked against
//! the real `nats-server` before the multi-server tests rely on it: the nodes agree
//! on a meta leader, a killed leader stops answering and is replaced (the survivors
//! say so themselves), a replicated stream keeps ACKing messages through it, a
//! restarted node (same ports and store) is healthy and caught up, and the stream's
//! messages survive it all. Only plain HTTP on the monitoring ports and JetStream
//! API requests and publishes in the NATS text protocol; perfstats' own NATS
//! client is not used here.
//! `scripts/test.sh` installs nats-server into `target/tools/nats`; without it this fails.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::nats::{NATS_READY_DEADLINE, NatsCluster};
use support::{http, within};

/// How long one JetStream API request over raw TCP may take.
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// GETs `path` on the monitoring endpoint `monitor` and parses the JSON body,
/// asserting a 200.
async fn get_json(monitor: &str, path: &str) -> serde_json::Value {
    let response = http()
        .get(format!("{monitor}{path}"))
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {monitor}{path}: {error}"));
    assert_eq!(response.status(), 200, "GET {monitor}{path}");
    response.json().await.unwrap()
}

/// The meta leader's name as each node's `/jsz` reports it.
async fn meta_leaders(cluster: &NatsCluster, nodes: &[usize]) -> Vec<String> {
    let mut leaders = Vec::new();
    for &i in nodes {
        let jsz = get_json(&cluster.monitor_url(i), "/jsz").await;
        assert_eq!(jsz["meta_cluster"]["cluster_size"], 3, "{jsz}");
        leaders.push(jsz["meta_cluster"]["leader"].as_str().unwrap().to_string());
    }
    leaders
}

/// One request to `subject` with `body` through node `i`, in the NATS text
/// protocol over raw TCP: the JSON of its first reply. Panics on an error or when
/// no reply comes within [`REQUEST_DEADLINE`].
async fn request(cluster: &NatsCluster, i: usize, subject: &str, body: &str) -> serde_json::Value {
    let addr = cluster.client_addr(i);
    let (subject, body) = (subject.to_string(), body.to_string());
    within(
        REQUEST_DEADLINE,
        &format!("the reply to {subject} through {addr}"),
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(REQUEST_DEADLINE)).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("INFO "), "greeting: {line:?}");
            write!(
                stream,
                "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\n\
                 SUB _INBOX.reply 1\r\n\
                 PUB {subject} _INBOX.reply {}\r\n{body}\r\n",
                body.len()
            )
            .unwrap();
            loop {
                line.clear();
                assert!(
                    reader.read_line(&mut line).unwrap() > 0,
                    "connection closed"
                );
                if line.starts_with("PING") {
                    stream.write_all(b"PONG\r\n").unwrap();
                } else if line.starts_with("-ERR") {
                    panic!("nats-server: {line}");
                } else if line.starts_with("MSG ") {
                    let size: usize = line.split_whitespace().last().unwrap().parse().unwrap();
                    let mut payload = vec![0; size + 2];
                    reader.read_exact(&mut payload).unwrap();
                    payload.truncate(size);
                    return serde_json::from_slice::<serde_json::Value>(&payload).unwrap();
                }
            }
        }),
    )
    .await
    .unwrap()
}

/// Creates a file-backed stream `name` on subjects `name.>` with `replicas`
/// replicas through node `i`: one `$JS.API.STREAM.CREATE` request. Panics on an
/// error response.
async fn create_stream(cluster: &NatsCluster, i: usize, name: &str, replicas: usize) {
    let config = serde_json::json!({
        "name": name,
        "subjects": [format!("{name}.>")],
        "num_replicas": replicas,
        "storage": "file",
    })
    .to_string();
    let response = request(
        cluster,
        i,
        &format!("$JS.API.STREAM.CREATE.{name}"),
        &config,
    )
    .await;
    assert!(response.get("error").is_none(), "create stream: {response}");
    assert_eq!(response["config"]["num_replicas"], replicas, "{response}");
}

/// Publishes `count` messages to stream `name` through node `i`, each waiting for
/// JetStream's ACK: the sequences the ACKs give, which must follow one another.
async fn publish(cluster: &NatsCluster, i: usize, name: &str, count: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    for n in 0..count {
        let ack = request(cluster, i, &format!("{name}.m"), &format!("message {n}")).await;
        assert!(ack.get("error").is_none(), "publish: {ack}");
        assert_eq!(ack["stream"], name, "{ack}");
        seqs.push(
            ack["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("no seq: {ack}")),
        );
    }
    assert!(
        seqs.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "{seqs:?}"
    );
    seqs
}

/// Stream `name` as node `i` hosts it (`/jsz` `stream_detail`): its leader and
/// replicas, and how many messages it holds.
async fn stream_detail(cluster: &NatsCluster, i: usize, name: &str) -> serde_json::Value {
    let jsz = get_json(&cluster.monitor_url(i), "/jsz?accounts=true&streams=true").await;
    jsz["account_details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|account| account["stream_detail"].as_array())
        .flatten()
        .find(|detail| detail["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("stream {name} not on {}: {jsz}", cluster.name(i)))
}

/// Asserts that node `i` no longer answers on its monitoring or client port.
async fn assert_gone(cluster: &NatsCluster, i: usize) {
    let probe = http()
        .get(format!("{}/healthz", cluster.monitor_url(i)))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        probe.is_err(),
        "killed node {} still answers: {probe:?}",
        cluster.name(i)
    );
    assert!(
        TcpStream::connect(cluster.client_addr(i)).is_err(),
        "killed node {} still accepts clients",
        cluster.name(i)
    );
}

/// Waits until each of `nodes` holds `count` messages of stream `name` (a
/// follower applies what the quorum ACKed a moment later).
async fn wait_for_messages(cluster: &NatsCluster, nodes: &[usize], name: &str, count: u64) {
    for &i in nodes {
        support::wait_until(
            NATS_READY_DEADLINE,
            &format!("{count} messages of {name} on {}", cluster.name(i)),
            async || stream_detail(cluster, i, name).await["state"]["messages"] == count,
        )
        .await;
    }
}

#[tokio::test]
async fn three_nodes_elect_fail_over_and_restart() {
    let mut cluster = NatsCluster::start(3).await;
    assert_eq!(cluster.urls().split(',').count(), 3);
    assert!(
        cluster.urls().starts_with("nats://127.0.0.1:"),
        "{}",
        cluster.urls()
    );

    // Ready means every node names the same meta leader, one of the three.
    let leaders = meta_leaders(&cluster, &[0, 1, 2]).await;
    assert!(
        leaders.iter().all(|leader| leader == &leaders[0]),
        "{leaders:?}"
    );
    let leader = cluster.meta_leader().await;
    assert_eq!(cluster.name(leader), leaders[0]);

    // A stream replicated on all three, holding 5 ACKed messages; every node names
    // the same leader for it and holds the 5.
    create_stream(&cluster, 0, "harness", 3).await;
    let stream_leader = cluster.stream_leader("harness").await;
    assert_eq!(publish(&cluster, 0, "harness", 5).await, [1, 2, 3, 4, 5]);
    for i in 0..3 {
        let detail = stream_detail(&cluster, i, "harness").await;
        assert_eq!(
            detail["cluster"]["leader"],
            cluster.name(stream_leader),
            "{detail}"
        );
    }
    wait_for_messages(&cluster, &[0, 1, 2], "harness", 5).await;

    // Killing the meta leader: it stops answering, and the other two elect one of
    // themselves. What the survivors' own /jsz says is checked, not only what the
    // helper returns (it returns running nodes only).
    let killed = cluster.name(leader).to_string();
    cluster.kill(leader);
    assert_gone(&cluster, leader).await;
    let new_leader = cluster.meta_leader().await;
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let leaders = meta_leaders(&cluster, &others).await;
    assert!(
        leaders.iter().all(|name| name == cluster.name(new_leader)),
        "{leaders:?}"
    );
    assert!(
        leaders.iter().all(|name| *name != killed),
        "the survivors still name the killed {killed}: {leaders:?}"
    );
    // The stream keeps a quorum (2 of 3): the survivors name a leader among
    // themselves, and it still ACKs messages after the kill.
    let stream_leader = cluster.stream_leader("harness").await;
    for &i in &others {
        let detail = stream_detail(&cluster, i, "harness").await;
        assert_eq!(
            detail["cluster"]["leader"],
            cluster.name(stream_leader),
            "{detail}"
        );
        assert_ne!(detail["cluster"]["leader"], killed.as_str(), "{detail}");
    }
    assert_eq!(
        publish(&cluster, others[0], "harness", 5).await,
        [6, 7, 8, 9, 10],
        "ACKs after the kill, continuing the sequence"
    );
    wait_for_messages(&cluster, &others, "harness", 10).await;

    // Back on the same ports and store: healthy, in the meta group again, and
    // caught up with the 5 messages ACKed while it was down.
    cluster.restart(leader).await;
    let healthz = get_json(&cluster.monitor_url(leader), "/healthz").await;
    assert_eq!(healthz["status"], "ok", "{healthz}");
    let leaders = meta_leaders(&cluster, &[0, 1, 2]).await;
    assert!(
        leaders.iter().all(|name| name == &leaders[0]),
        "{leaders:?}"
    );
    wait_for_messages(&cluster, &[leader], "harness", 10).await;

    // The whole cluster down and up again: the stream's 10 messages survive in the
    // stores, and it takes more.
    cluster.kill_all();
    for i in 0..3 {
        assert_gone(&cluster, i).await;
    }
    cluster.restart_all().await;
    cluster.meta_leader().await;
    cluster.stream_leader("harness").await;
    wait_for_messages(&cluster, &[0, 1, 2], "harness", 10).await;
    assert_eq!(publish(&cluster, 1, "harness", 1).await, [11]);
    assert!(
        cluster.log(0).contains("Server is ready"),
        "{}",
        cluster.log(0)
    );
}

#[tokio::test]
async fn one_node_is_a_standalone_jetstream_server() {
    let mut cluster = NatsCluster::start(1).await;
    assert_eq!(cluster.urls(), cluster.url(0));
    let jsz = get_json(&cluster.monitor_url(0), "/jsz").await;
    assert!(
        jsz["meta_cluster"].is_null(),
        "standalone: no meta group: {jsz}"
    );
    create_stream(&cluster, 0, "single", 1).await;
    assert_eq!(publish(&cluster, 0, "single", 3).await, [1, 2, 3]);
    cluster.kill(0);
    assert_gone(&cluster, 0).await;
    cluster.restart(0).await;
    // Its file store kept the stream and its messages across SIGKILL.
    assert_eq!(
        stream_detail(&cluster, 0, "single").await["state"]["messages"],
        3
    );
    assert_eq!(publish(&cluster, 0, "single", 1).await, [4]);
}
