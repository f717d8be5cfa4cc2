//! `GET /api/cluster` through the whole router without a listener (`oneshot`): a
//! server without `--nats` answers health `none` saying it has no cluster; one whose NATS was
//! never reached answers `"stream": null`, not writable, unreachable. (With a real
//! NATS cluster: `tests/nats_faults.rs`.)

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use perfstats::cluster::{Cluster, ClusterConfig};
use perfstats::writes::Writes;

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_server_without_nats_has_no_cluster_to_show() {
    let state = support::app_state();
    let response = support::oneshot(&state, get("/api/cluster")).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.body());
    let overview: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(overview["health"], "none", "{overview}");
    assert_eq!(overview["stream"], serde_json::Value::Null, "{overview}");
    assert_eq!(overview["server"], serde_json::Value::Null, "{overview}");
    let why = overview["why"][0].as_str().unwrap();
    assert!(
        why.contains("no cluster") && why.contains("--nats"),
        "{why}"
    );
}

#[tokio::test]
async fn a_stream_never_reached_shows_as_null_and_unreachable() {
    // A port nothing listens on: NATS is never reached (the start waits 5 s for it).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut state = support::app_state();
    let cluster = Cluster::start(ClusterConfig::new(vec![url]), state.store.clone())
        .await
        .unwrap();
    state.writes = Writes::Shared(cluster);
    let response = support::oneshot(&state, get("/api/cluster")).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.body());
    let overview: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(overview["stream"], serde_json::Value::Null, "{overview}");
    assert_eq!(overview["server"]["writable"], false, "{overview}");
    assert_eq!(
        overview["server"]["lag"],
        serde_json::Value::Null,
        "{overview}"
    );
    assert_eq!(
        overview["server"]["nats_server"],
        serde_json::Value::Null,
        "{overview}"
    );
    assert_eq!(overview["health"], "unreachable", "{overview}");
    assert!(
        overview["why"][0]
            .as_str()
            .unwrap()
            .contains("never reached"),
        "{overview}"
    );
}
