//! Run labels: given when a run starts (`POST /api/runs`, `runs new`, `serve
//! --new-run --label`), replaced later (`PUT /api/runs/{run}/labels`, `runs
//! label`), listed and filtered (`GET /api/runs?label=`, `runs --label`); kept on
//! both backends and across a restart; every rule refused with a 400 naming it;
//! the write rules (tokens, browsers) apply to `PUT`. Between `--nats` servers:
//! tests/nats.rs.

mod support;

use axum::body::Body;
use axum::http::Request;
use perfstats::store::Backend;
use serde_json::{Value, json};
use support::{BinaryServer, TestServer, http, oneshot, perfstats, spawn_with};

/// Sends `body` as JSON with `method` to `path`; the status and the answer (JSON,
/// or its text as a string).
async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: String,
) -> (u16, Value) {
    let response = http()
        .request(method, format!("{}{path}", server.url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post_run(server: &TestServer, body: Value) -> (u16, Value) {
    send(server, reqwest::Method::POST, "/api/runs", body.to_string()).await
}

async fn put_labels(server: &TestServer, run: &str, body: &str) -> (u16, Value) {
    let path = format!("/api/runs/{run}/labels");
    send(server, reqwest::Method::PUT, &path, body.to_string()).await
}

/// The names of the runs `GET /api/runs?QUERY` lists.
async fn listed(server: &TestServer, query: &str) -> Vec<String> {
    let runs = server.get_json(&format!("/api/runs{query}")).await;
    runs.as_array()
        .unwrap()
        .iter()
        .map(|run| run["name"].as_str().unwrap().to_string())
        .collect()
}

async fn labels_of(server: &TestServer, name: &str) -> Value {
    let runs = server.get_json("/api/runs").await;
    runs.as_array()
        .unwrap()
        .iter()
        .find(|run| run["name"] == name)
        .unwrap_or_else(|| panic!("no run {name} in {runs}"))["labels"]
        .clone()
}

/// Starts, lists, filters and relabels runs on `server`.
async fn round_trip(server: &TestServer) {
    let (status, run) = post_run(
        server,
        json!({"name": "delay-40", "labels": {"netem_ms": "40", "client": "v1.4.2"}}),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["labels"], json!({"client": "v1.4.2", "netem_ms": "40"}));
    let (status, _) = post_run(
        server,
        json!({"name": "delay-0", "labels": {"netem_ms": "0"}}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = post_run(server, json!({"name": "plain"})).await;
    assert_eq!(status, 200);
    assert_eq!(labels_of(server, "plain").await, json!({}));

    assert_eq!(listed(server, "?label=netem_ms=40").await, ["delay-40"]);
    assert_eq!(
        listed(server, "?label=netem_ms").await,
        ["delay-40", "delay-0"]
    );
    assert_eq!(
        listed(server, "?label=netem_ms&label=client=v1.4.2").await,
        ["delay-40"]
    );
    assert!(listed(server, "?label=client=v9").await.is_empty());

    // A forgotten label, given later: PUT replaces them all.
    let (status, run) = put_labels(server, "plain", r#"{"netem_ms": "80"}"#).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["name"], "plain");
    assert_eq!(run["labels"], json!({"netem_ms": "80"}));
    let delay_0_id = server.get_json("/api/runs?label=netem_ms=0").await[0]["id"].to_string();
    let (status, run) = put_labels(server, &delay_0_id, r#"{"netem_ms": "0", "seed": "7"}"#).await;
    assert_eq!((status, &run["name"]), (200, &json!("delay-0")), "by id");
    assert_eq!(
        labels_of(server, "delay-0").await,
        json!({"netem_ms": "0", "seed": "7"})
    );
    assert_eq!(
        listed(server, "?label=netem_ms").await,
        ["delay-40", "delay-0", "plain"]
    );
}

#[tokio::test]
async fn labels_round_trip_in_memory() {
    let server = spawn_with(Backend::Memory { max_reports: 1000 }).await;
    round_trip(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn labels_round_trip_in_sqlite_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("labels.db");
    let server = spawn_with(Backend::Sqlite(db.clone())).await;
    round_trip(&server).await;
    let before = server.get_json("/api/runs").await;
    server.stop().await;
    let again = spawn_with(Backend::Sqlite(db)).await;
    assert_eq!(again.get_json("/api/runs").await, before);
    assert_eq!(labels_of(&again, "plain").await, json!({"netem_ms": "80"}));
    again.stop().await;
}

#[tokio::test]
async fn every_rule_is_a_400_naming_it() {
    let server = spawn_with(Backend::Memory { max_reports: 1000 }).await;
    let many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"labels": {"Netem": "1"}}), "a-z 0-9 _ . -"),
        (json!({"labels": {"": "1"}}), "1 to 64"),
        (json!({"labels": {"k".repeat(65): "1"}}), "1 to 64"),
        (
            json!({"labels": {"k": "v".repeat(257)}}),
            "labels.k: a value is at most 256 bytes",
        ),
        (
            json!({"labels": {"k": "a\u{7}b"}}),
            "labels.k: a value must not contain control",
        ),
        (json!({"labels": many}), "labels: at most 32 a run"),
        (
            json!({"labels": {"k": 40}}),
            "labels.k: a value must be a string",
        ),
        (json!({"labels": ["k=v"]}), "body: expected"),
        (json!({"name": "x", "tags": {}}), "unknown field"),
    ];
    let runs_before = server.get_json("/api/runs").await;
    for (body, rule) in &cases {
        let (status, answer) = post_run(&server, body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer.to_string().contains(rule), "{body} → {answer}");
        let (status, answer) = put_labels(&server, "1", &body["labels"].to_string()).await;
        if body.get("labels").is_some() {
            assert_eq!(status, 400, "PUT {body} → {answer}");
            assert!(answer.to_string().contains(rule), "PUT {body} → {answer}");
        }
    }
    assert_eq!(
        server.get_json("/api/runs").await,
        runs_before,
        "nothing changed"
    );
    let (status, answer) = put_labels(&server, "no-such-run", "{}").await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.to_string().contains("no-such-run"), "{answer}");
    for query in ["?label=Bad=1", "?label=", "?color=red"] {
        let response = http()
            .get(format!("{}/api/runs{query}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
    }
    let no_type = http()
        .put(format!("{}/api/runs/1/labels", server.url()))
        .body(r#"{"k": "v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_type.status(), 400);
    assert!(no_type.text().await.unwrap().contains("content-type"));
    server.stop().await;
}

#[tokio::test]
async fn put_is_a_write_for_browsers_and_tokens() {
    let state = support::app_state();
    let put = |headers: &[(&str, &str)]| {
        let mut request = Request::put("/api/runs/oneshot/labels")
            .header("host", "127.0.0.1:12345")
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::from(r#"{"k": "v"}"#)).unwrap()
    };
    let cross_site = oneshot(
        &state,
        put(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ]),
    )
    .await;
    assert_eq!(cross_site.status(), 403, "{}", cross_site.body());
    assert!(state.store.current_run().labels.is_empty());
    let same_site = oneshot(&state, put(&[("origin", "http://127.0.0.1:12345")])).await;
    assert_eq!(same_site.status(), 200, "{}", same_site.body());
    assert_eq!(state.store.current_run().labels["k"], "v");

    // The page passes its read token as ?token= on every read, filters too.
    let reader = BinaryServer::start(&["--memory", "--read-token", "peek"]);
    for path in [
        "/api/runs?token=peek&label=k",
        "/api/sweep?by=k&token=peek",
        "/api/check?run=1&token=peek&expect=nodes%20%3E=%200",
    ] {
        let answer = http()
            .get(format!("{}{path}", reader.url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            200,
            "{path}: {}",
            answer.text().await.unwrap()
        );
    }
    let locked = BinaryServer::start(&["--memory", "--token", "sesame"]);
    let unauthorised = http()
        .put(format!("{}/api/runs/1/labels", locked.url))
        .header("content-type", "application/json")
        .body(r#"{"k": "v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    let authorised = http()
        .put(format!("{}/api/runs/1/labels", locked.url))
        .header("content-type", "application/json")
        .bearer_auth("sesame")
        .body(r#"{"k": "v"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(authorised.status(), 200);
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[tokio::test]
async fn the_command_line_starts_labels_and_filters_runs() {
    let server = BinaryServer::start(&["--memory", "--new-run", "first", "--label", "netem_ms=0"]);
    let addr = server.url.clone();
    let first = stdout(&perfstats(&[
        "runs",
        "--addr",
        &addr,
        "--label",
        "netem_ms=0",
    ]));
    assert!(
        first.contains("first") && first.contains("netem_ms=0"),
        "{first}"
    );

    let started = stdout(&perfstats(&[
        "runs",
        "new",
        "second",
        "--addr",
        &addr,
        "--label",
        "netem_ms=40",
        "--label",
        "client=v1.4.2",
    ]));
    assert!(
        started.starts_with("2 second client=v1.4.2 netem_ms=40"),
        "{started}"
    );
    // `label` adds (a key it has takes the new value); --replace replaces.
    let added = stdout(&perfstats(&[
        "runs",
        "label",
        "second",
        "seed=7",
        "netem_ms=20",
        "--addr",
        &addr,
    ]));
    assert!(
        added.starts_with("2 second client=v1.4.2 netem_ms=20 seed=7"),
        "{added}"
    );
    let replaced = stdout(&perfstats(&[
        "runs",
        "label",
        "2",
        "netem_ms=80",
        "--replace",
        "--addr",
        &addr,
        "--format",
        "json",
    ]));
    let replaced: Value = serde_json::from_str(&replaced).unwrap();
    assert_eq!(replaced["labels"], json!({"netem_ms": "80"}));

    let listed = stdout(&perfstats(&[
        "runs",
        "--addr",
        &addr,
        "--label",
        "netem_ms=80",
    ]));
    assert!(
        listed.contains("second") && !listed.contains("first"),
        "{listed}"
    );

    let refused = perfstats(&["runs", "new", "third", "--addr", &addr, "--label", "BAD=1"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a-z 0-9 _ . -"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let taken = perfstats(&["runs", "new", "second", "--addr", &addr]);
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("exists already"));
    let unlabelled = perfstats(&["serve", "--memory", "--label", "k=v"]);
    assert_eq!(unlabelled.status.code(), Some(2), "--label needs --new-run");
}
