//! The JetStream cluster harness itself (`tests/support/nats.rs`), checked against
//! the real `nats-server` before the multi-server tests rely on it: the nodes agree
//! on a meta leader, a killed leader is replaced, a restarted node (same ports and
//! store) is healthy again and a replicated stream survives it all. Only plain HTTP
//! on the monitoring ports and, to create a stream, one JetStream API request in
//! the NATS text protocol; perfstats' own NATS client is not used here.
//! `scripts/test.sh` installs nats-server into `target/tools/nats`; without it this fails.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::nats::NatsCluster;
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

/// Creates a file-backed stream `name` on subjects `name.>` with `replicas`
/// replicas through node `i`: one `$JS.API.STREAM.CREATE` request in the NATS text
/// protocol. Panics on an error response.
async fn create_stream(cluster: &NatsCluster, i: usize, name: &str, replicas: usize) {
    let addr = cluster.client_addr(i);
    let name = name.to_string();
    let response = within(
        REQUEST_DEADLINE,
        &format!("the reply to creating stream {name:?} through {addr}"),
        tokio::task::spawn_blocking(move || {
            let config = serde_json::json!({
                "name": name,
                "subjects": [format!("{name}.>")],
                "num_replicas": replicas,
                "storage": "file",
            })
            .to_string();
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(REQUEST_DEADLINE)).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("INFO "), "greeting: {line:?}");
            write!(
                stream,
                "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\n\
                 SUB _INBOX.create 1\r\n\
                 PUB $JS.API.STREAM.CREATE.{name} _INBOX.create {}\r\n{config}\r\n",
                config.len()
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
    .unwrap();
    assert!(response.get("error").is_none(), "create stream: {response}");
    assert_eq!(response["config"]["num_replicas"], replicas, "{response}");
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

    // A stream replicated on all three; every node agrees on its leader.
    create_stream(&cluster, 0, "harness", 3).await;
    let stream_leader = cluster.stream_leader("harness").await;
    for i in 0..3 {
        let jsz = get_json(&cluster.monitor_url(i), "/jsz?accounts=true&streams=true").await;
        let detail = jsz["account_details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|account| account["stream_detail"].as_array())
            .flatten()
            .find(|detail| detail["name"] == "harness")
            .unwrap_or_else(|| panic!("stream not on {}: {jsz}", cluster.name(i)));
        assert_eq!(detail["cluster"]["leader"], cluster.name(stream_leader));
    }

    // Killing the meta leader: the other two elect one of themselves.
    cluster.kill(leader);
    assert!(!cluster.is_running(leader));
    let new_leader = cluster.meta_leader().await;
    assert_ne!(new_leader, leader);
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let leaders = meta_leaders(&cluster, &others).await;
    assert!(
        leaders.iter().all(|name| name == cluster.name(new_leader)),
        "{leaders:?}"
    );
    // The stream keeps a quorum (2 of 3) and so a running leader.
    assert_ne!(cluster.stream_leader("harness").await, leader);

    // Back on the same ports and store: healthy, and the stream still there.
    cluster.restart(leader).await;
    let healthz = get_json(&cluster.monitor_url(leader), "/healthz").await;
    assert_eq!(healthz["status"], "ok", "{healthz}");
    let leaders = meta_leaders(&cluster, &[0, 1, 2]).await;
    assert!(
        leaders.iter().all(|name| name == &leaders[0]),
        "{leaders:?}"
    );
    cluster.stream_leader("harness").await;

    // The whole cluster down and up again: the stream survives in the stores.
    cluster.kill_all();
    assert!((0..3).all(|i| !cluster.is_running(i)));
    cluster.restart_all().await;
    cluster.meta_leader().await;
    cluster.stream_leader("harness").await;
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
    assert_eq!(cluster.meta_leader().await, 0);
    create_stream(&cluster, 0, "single", 1).await;
    assert_eq!(cluster.stream_leader("single").await, 0);
    cluster.kill(0);
    cluster.restart(0).await;
    assert_eq!(cluster.stream_leader("single").await, 0);
}
