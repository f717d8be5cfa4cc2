//! The HTTP side: legacy endpoints, the page, the JSON API, export and SSE.

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use perfstats::server::AppState;
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use std::time::Duration;
use support::spawn_server;
use tokio_stream::StreamExt;

async fn send_some(server: &support::TestServer, reports: &[(&str, Event, &str)]) {
    let client = server.client();
    for (sender, event, message) in reports {
        client
            .send_performance_stat(PerformanceData::new(0, *sender, *event, *message))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn legacy_send_and_messages_round_trip() {
    let server = spawn_server().await;
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("{}/send", server.url()))
        .form(&[
            ("time", "1723700000000000000"),
            ("sender", "1f"),
            ("eventtype", "Event_NewBlockReceived"),
            ("message", "hash=ab & more"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "ACK");

    for (field, form) in [
        (
            "sender",
            "time=1&sender=&eventtype=Event_NewBlockReceived&message=m",
        ),
        (
            "message",
            "time=1&sender=a&eventtype=Event_NewBlockReceived",
        ),
        (
            "eventtype",
            "time=1&sender=a&eventtype=Event_Nope&message=m",
        ),
        ("time", "time=soon&sender=a&eventtype=83&message=m"),
        ("message", "time=1&sender=a&eventtype=83&message=%FF%FE"),
    ] {
        let refused = http
            .post(format!("{}/send", server.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{form}");
        let text = refused.text().await.unwrap();
        assert!(text.starts_with(&format!("{field}: ")), "{form}: {text}");
    }

    let messages = server.get_json("/messages").await;
    assert_eq!(
        messages,
        serde_json::json!({"messages": [{
            "time": "1723700000000000000",
            "sender": "1f",
            "eventtype": "Event_NewBlockReceived",
            "message": "hash=ab & more",
        }]})
    );
    server.stop().await;
}

#[tokio::test]
async fn the_page_is_html_on_the_grpc_port_and_unknown_paths_are_404() {
    let server = spawn_server().await;
    let page = reqwest::get(server.url()).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("<html"));
    let missing = reqwest::get(format!("{}/no/such/page", server.url()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    server.stop().await;
}

/// The seqs of a `/api/reports` page.
fn seqs(page: &serde_json::Value) -> Vec<u64> {
    page["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

/// A SQLite-backed in-process server in `dir`.
async fn sqlite_server(dir: &tempfile::TempDir) -> support::TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    support::serve_on(listener, Backend::Sqlite(dir.path().join("reports.db"))).await
}

/// The same filters and pages against either backend: the memory backend filters
/// in Rust, SQLite in its own SQL, and both must answer alike.
async fn reports_filter_and_page(server: support::TestServer) {
    send_some(
        &server,
        &[
            ("ra", Event::RaNewBlockSent, "block 1"),
            ("1f", Event::NewBlockReceived, "block 1"),
            ("2f", Event::NewBlockReceived, "block 1"),
            ("1f", Event::BlockWinnerFound, "winner 2f"),
            ("1f", Event::NewBlockReceived, "block 2"),
            ("10f", Event::NewBlockReceived, "Block 3"),
        ],
    )
    .await;
    let get = async |path: &str| seqs(&server.get_json(path).await);
    assert_eq!(
        get("/api/reports?sender=1f").await,
        [2, 4, 5],
        "sender is exact, not a prefix"
    );
    assert_eq!(
        get("/api/reports?event=new-block-received").await,
        [2, 3, 5, 6]
    );
    assert_eq!(get("/api/reports?event=EVENT_RA_NEW_BLOCK_SENT").await, [1]);
    assert_eq!(get("/api/reports?q=winner").await, [4]);
    assert_eq!(
        get("/api/reports?q=2f").await,
        [3, 4],
        "q matches the sender or the message"
    );
    assert_eq!(
        get("/api/reports?q=block%203").await,
        Vec::<u64>::new(),
        "q is case-sensitive"
    );
    assert_eq!(
        get("/api/reports?q=nothing%20like%20it").await,
        Vec::<u64>::new()
    );
    assert_eq!(
        get("/api/reports?sender=1f&event=83&q=block%202").await,
        [5]
    );
    assert_eq!(
        get("/api/reports?sender=&event=&q=").await,
        [1, 2, 3, 4, 5, 6],
        "empty means no filter"
    );

    // Oldest first, `next` is the following page's `after`.
    let first = server.get_json("/api/reports?limit=2").await;
    assert_eq!(
        (seqs(&first), first["next"].as_u64()),
        (vec![1, 2], Some(2))
    );
    let second = server.get_json("/api/reports?limit=2&after=2").await;
    assert_eq!(
        (seqs(&second), second["next"].as_u64()),
        (vec![3, 4], Some(4))
    );
    let last = server.get_json("/api/reports?limit=2&after=4").await;
    assert_eq!(
        (seqs(&last), last["next"].clone()),
        (vec![5, 6], serde_json::Value::Null)
    );
    // Filters and pages together: `next` is the last matching seq.
    let filtered = server.get_json("/api/reports?event=83&limit=2").await;
    assert_eq!(
        (seqs(&filtered), filtered["next"].as_u64()),
        (vec![2, 3], Some(3))
    );
    let filtered = server
        .get_json("/api/reports?event=83&limit=2&after=3")
        .await;
    assert_eq!(
        (seqs(&filtered), filtered["next"].clone()),
        (vec![5, 6], serde_json::Value::Null)
    );

    // Newest first, `next` is the following page's `before`.
    let newest = server.get_json("/api/reports?order=desc&limit=4").await;
    assert_eq!(
        (seqs(&newest), newest["next"].as_u64()),
        (vec![6, 5, 4, 3], Some(3))
    );
    let older = server
        .get_json("/api/reports?order=desc&limit=4&before=3")
        .await;
    assert_eq!(
        (seqs(&older), older["next"].clone()),
        (vec![2, 1], serde_json::Value::Null)
    );
    let mine = server
        .get_json("/api/reports?order=desc&sender=1f&limit=2")
        .await;
    assert_eq!((seqs(&mine), mine["next"].as_u64()), (vec![5, 4], Some(4)));
    let mine = server
        .get_json("/api/reports?order=desc&sender=1f&limit=2&before=4")
        .await;
    assert_eq!(
        (seqs(&mine), mine["next"].clone()),
        (vec![2], serde_json::Value::Null)
    );

    assert_eq!(get("/api/reports?run=run-1&after=3").await, [4, 5, 6]);
    assert_eq!(get("/api/reports?run=1&q=block%201").await, [1, 2, 3]);
    server.stop().await;
}

#[tokio::test]
async fn reports_filter_and_page_in_memory() {
    reports_filter_and_page(spawn_server().await).await;
}

#[tokio::test]
async fn reports_filter_and_page_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    reports_filter_and_page(sqlite_server(&dir).await).await;
}

#[tokio::test]
async fn runs_are_listed_created_and_selectable_in_memory() {
    runs_are_listed_created_and_selectable(spawn_server().await).await;
}

#[tokio::test]
async fn runs_are_listed_created_and_selectable_in_sqlite_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    runs_are_listed_created_and_selectable(
        support::serve_on(listener, Backend::Sqlite(db.clone())).await,
    )
    .await;
    // Reopened, each run still holds exactly its own reports.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = support::serve_on(listener, Backend::Sqlite(db)).await;
    let runs = server.get_json("/api/runs").await;
    assert_eq!(
        (runs[0]["reports"].as_u64(), runs[1]["reports"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(runs[1]["current"], true);
    let old = server.get_json("/api/reports?run=run-1").await;
    let messages: Vec<&str> = old["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["old run", "old run again"]);
    server.stop().await;
}

async fn runs_are_listed_created_and_selectable(server: support::TestServer) {
    send_some(
        &server,
        &[
            ("1f", Event::NewBlockReceived, "old run"),
            ("2f", Event::NewBlockReceived, "old run again"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("{}/api/runs", server.url()))
        .json(&serde_json::json!({"name": "experiment 2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["name"], "experiment 2");
    assert_eq!(created["current"], true);
    let conflict = http
        .post(format!("{}/api/runs", server.url()))
        .json(&serde_json::json!({"name": "experiment 2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), 409);
    send_some(&server, &[("1f", Event::NewBlockReceived, "new run")]).await;

    let runs = server.get_json("/api/runs").await;
    assert_eq!(runs[0]["name"], "run-1");
    assert_eq!(runs[0]["reports"], 2);
    assert_eq!(runs[0]["current"], false);
    assert_eq!(runs[1]["reports"], 1);
    let current = server.get_json("/api/reports").await;
    assert_eq!(current["reports"][0]["message"], "new run");
    let old = server.get_json("/api/reports?run=1").await;
    assert_eq!(old["reports"][0]["message"], "old run");
    server.stop().await;
}

#[tokio::test]
async fn export_writes_csv_and_ndjson_matching_the_reports() {
    let server = spawn_server().await;
    send_some(
        &server,
        &[
            ("1f", Event::NewBlockReceived, "plain"),
            (
                "2f",
                Event::BlockWinnerFound,
                "quote \" and, comma\nnewline",
            ),
        ],
    )
    .await;
    let csv = reqwest::get(format!("{}/api/export?format=csv", server.url()))
        .await
        .unwrap();
    assert!(
        csv.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("perfstats-run-1.csv")
    );
    let csv = csv.text().await.unwrap();
    let reports = server.get_json("/api/reports").await;
    let second = &reports["reports"][1];
    assert!(csv.starts_with(
        "seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id\r\n"
    ));
    assert!(
        csv.contains(&format!(
            "2,1,{},{},2f,EVENT_BLOCK_WINNER_FOUND,\"quote \"\" and, comma\nnewline\",{}\r\n",
            second["time_unix_nano"],
            second["received_unix_nano"],
            second["report_id"].as_str().unwrap()
        )),
        "{csv}"
    );

    let ndjson = reqwest::get(format!("{}/api/export?format=ndjson", server.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines, reports["reports"].as_array().unwrap().clone());
    server.stop().await;
}

/// Reads SSE `report` events from `response` until `count` arrived; returns their ids.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<u64> {
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let mut ids = Vec::new();
    while ids.len() < count {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("SSE event in time")
            .expect("stream open")
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            // The first event only carries the cursor (and the retry delay).
            if !event.contains("event: report") {
                continue;
            }
            let id = event
                .lines()
                .find_map(|line| line.strip_prefix("id: "))
                .expect("an id");
            ids.push(id.parse().unwrap());
        }
    }
    ids
}

/// Waits until the store has `count` live subscribers: a stream's response
/// arrives once the handler subscribed, but waiting on the store says so plainly.
async fn subscribed(server: &support::TestServer, count: usize) {
    support::eventually(Duration::from_secs(10), async || {
        server.store.subscribers() >= count
    })
    .await;
}

async fn open_stream(server: &support::TestServer, query: &str) -> reqwest::Response {
    let response = support::http()
        .get(format!("{}/api/stream{query}", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/api/stream{query}");
    response
}

#[tokio::test]
async fn the_stream_filters_by_run_event_and_q_in_replay_and_live() {
    let server = spawn_server().await;
    send_some(
        &server,
        &[
            ("1f", Event::NewBlockReceived, "block 1"),
            ("2f", Event::FirstPeerConnected, "peer"),
            ("1f", Event::NewBlockReceived, "other"),
        ],
    )
    .await;
    let filtered = open_stream(&server, "?after=0&event=new-block-received&q=block").await;
    let reader = tokio::spawn(read_events(filtered, 3));
    subscribed(&server, 1).await;
    send_some(
        &server,
        &[
            ("2f", Event::NewBlockReceived, "block 2"),
            ("2f", Event::NewBlockReceived, "nope"),
            ("1f", Event::TransactionReceived, "block tx"),
            ("3f", Event::NewBlockReceived, "block 3"),
        ],
    )
    .await;
    assert_eq!(
        support::within(Duration::from_secs(10), "the filtered stream", reader)
            .await
            .unwrap(),
        [1, 4, 7],
        "replayed then live, only new-block-received with 'block'"
    );

    // An older run's stream replays that run only.
    let older = open_stream(&server, "?run=run-1&after=5").await;
    assert_eq!(read_events(older, 2).await, [6, 7]);

    // A new run's stream from its start holds none of run-1's reports.
    support::http()
        .post(format!("{}/api/runs", server.url()))
        .json(&serde_json::json!({"name": "second"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let second = open_stream(&server, "?run=second&after=0").await;
    let reader = tokio::spawn(read_events(second, 1));
    subscribed(&server, 1).await;
    send_some(
        &server,
        &[("1f", Event::NewBlockReceived, "block in second")],
    )
    .await;
    assert_eq!(
        support::within(Duration::from_secs(10), "the second run's stream", reader)
            .await
            .unwrap(),
        [8]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_stream_refuses_a_bad_last_event_id_and_an_unknown_run() {
    let server = spawn_server().await;
    let http = support::http();
    for bad in ["abc", "-1", "1.5", ""] {
        let response = http
            .get(format!("{}/api/stream", server.url()))
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "Last-Event-ID {bad:?}");
        let body = response.text().await.unwrap();
        assert!(body.starts_with("Last-Event-ID: "), "{bad:?}: {body}");
    }
    let response = http
        .get(format!("{}/api/stream?run=nope", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().starts_with("run: no run"));
    let response = http
        .get(format!("{}/api/stream?event=bogus", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .starts_with("event: unknown event")
    );
    assert_eq!(
        server.store.subscribers(),
        0,
        "a refused stream holds no subscription"
    );
    server.stop().await;
}

/// Export's filters against either backend; an unknown run is 404.
async fn export_filters(server: support::TestServer) {
    send_some(
        &server,
        &[
            ("1f", Event::NewBlockReceived, "block 1"),
            ("2f", Event::NewBlockReceived, "block 1"),
            ("1f", Event::TransactionReceived, "tx block"),
            ("1f", Event::NewBlockReceived, "block 2"),
        ],
    )
    .await;
    let http = support::http();
    let export = async |query: &str| -> Vec<u64> {
        let response = http
            .get(format!("{}/api/export?format=ndjson{query}", server.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{query}");
        response
            .text()
            .await
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(export("").await, [1, 2, 3, 4]);
    assert_eq!(export("&sender=1f").await, [1, 3, 4]);
    assert_eq!(export("&event=new-block-received").await, [1, 2, 4]);
    assert_eq!(export("&sender=1f&event=83&q=block").await, [1, 4]);
    assert_eq!(export("&q=tx").await, [3]);
    assert_eq!(export("&after=2").await, [3, 4]);
    assert_eq!(
        export("&limit=1").await,
        [1, 2, 3, 4],
        "export is the whole run, not a page"
    );
    let csv = http
        .get(format!("{}/api/export?format=csv&sender=2f", server.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 2, "header and 2f's one row: {csv}");
    assert!(csv.lines().nth(1).unwrap().starts_with("2,1,"), "{csv}");
    for format in ["csv", "ndjson"] {
        let response = http
            .get(format!(
                "{}/api/export?format={format}&run=nope",
                server.url()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{format}");
        assert!(response.text().await.unwrap().starts_with("run: no run"));
    }
    server.stop().await;
}

#[tokio::test]
async fn export_filters_and_refuses_an_unknown_run_in_memory() {
    export_filters(spawn_server().await).await;
}

#[tokio::test]
async fn export_filters_and_refuses_an_unknown_run_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    export_filters(sqlite_server(&dir).await).await;
}

#[tokio::test]
async fn the_stream_goes_live_and_resumes_from_last_event_id() {
    let server = spawn_server().await;
    send_some(
        &server,
        &[
            ("1f", Event::FirstPeerConnected, "p1"),
            ("2f", Event::FirstPeerConnected, "p2"),
        ],
    )
    .await;

    let live = reqwest::get(format!("{}/api/stream", server.url()))
        .await
        .unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    let reader = tokio::spawn(read_events(live, 1));
    subscribed(&server, 1).await;
    send_some(&server, &[("3f", Event::FirstPeerConnected, "p3")]).await;
    assert_eq!(
        reader.await.unwrap(),
        [3],
        "live: only what came after subscribing"
    );

    let resumed = reqwest::Client::new()
        .get(format!("{}/api/stream?sender=2f", server.url()))
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(read_events(resumed, 2));
    subscribed(&server, 1).await;
    send_some(
        &server,
        &[
            ("1f", Event::NewPeerConnected, "x"),
            ("2f", Event::NewPeerConnected, "y"),
        ],
    )
    .await;
    assert_eq!(
        reader.await.unwrap(),
        [2, 5],
        "replayed after 1, then live, filtered to 2f"
    );

    let from_start = reqwest::get(format!("{}/api/stream?after=0", server.url()))
        .await
        .unwrap();
    assert_eq!(read_events(from_start, 5).await, [1, 2, 3, 4, 5]);
    server.stop().await;
}

/// Through the whole router without a listener: the status and the body.
async fn oneshot(state: &AppState, request: Request<Body>) -> (StatusCode, String) {
    let response = support::oneshot(state, request).await;
    (response.status(), response.into_body())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn bad_parameters_get_400_naming_the_parameter() {
    let state = support::app_state();
    for (uri, starts) in [
        (
            "/api/reports?after=-1",
            "Failed to deserialize query string: after",
        ),
        (
            "/api/reports?limit=100000",
            "limit: must be from 1 to 10000",
        ),
        ("/api/reports?limit=0", "limit: must be from 1 to 10000"),
        ("/api/reports?event=EVENT_BOGUS", "event: unknown event"),
        (
            "/api/export?format=xml",
            "Failed to deserialize query string: format",
        ),
    ] {
        let (status, body) = oneshot(&state, get(uri)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(body.starts_with(starts), "{uri}: {body}");
    }
    let (status, body) = oneshot(&state, get("/api/reports?run=nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.starts_with("run: no run"), "{body}");
    let (status, body) = oneshot(
        &state,
        Request::post("/api/runs")
            .header("content-type", "application/json")
            .body(Body::from("{\"nmae\": 1}"))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.starts_with("body: "), "{body}");
    // A cross-site form or no-cors post cannot start a run.
    let (status, body) = oneshot(
        &state,
        Request::post("/api/runs")
            .header("content-type", "text/plain")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "content-type: must be application/json"
        )
    );
    for name in ["42", "a\"b", "tab\there", ""] {
        let (status, body) = oneshot(
            &state,
            Request::post("/api/runs")
                .header("content-type", "application/json")
                .body(Body::from(serde_json::json!({ "name": name }).to_string()))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name:?}");
        assert!(body.starts_with("name: "), "{name:?}: {body}");
    }
}

#[tokio::test]
async fn legacy_send_stores_through_the_router() {
    let state = support::app_state();
    let (status, body) = oneshot(
        &state,
        Request::post("/send")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(
                "time=5&sender=4l&eventtype=new-block-received&message=b%2B1",
            ))
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ACK"));
    let (status, body) = oneshot(&state, get("/api/reports")).await;
    assert_eq!(status, StatusCode::OK);
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["reports"][0]["message"], "b+1");
    assert_eq!(page["reports"][0]["time_unix_nano"], 5);
    assert_eq!(page["reports"][0]["sender"], "4l");
}

/// A gRPC write sent with another method than POST (tonic dispatches on the path
/// alone) is refused before it is decoded, whatever its headers, and stores
/// nothing; the same call as POST is stored, so the frame itself is a valid write.
#[tokio::test]
async fn grpc_methods_are_refused_unless_posted() {
    use prost::Message;
    let state = support::app_state();
    let report = PerformanceData::new(0, "1f", Event::NewBlockReceived, "sent as GET");
    let mut frame = vec![0u8];
    frame.extend((report.encoded_len() as u32).to_be_bytes());
    report.encode(&mut frame).unwrap();
    let call = |method: &str, browser: bool| {
        let mut request = Request::builder()
            .method(method)
            .uri("http://127.0.0.1/perfstats.v1.PerformanceStats/ReportStat")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if browser {
            request = request
                .header("origin", "http://evil.example")
                .header("sec-fetch-site", "cross-site");
        }
        request.body(Body::from(frame.clone())).unwrap()
    };
    for (method, browser) in [
        ("GET", false),
        ("OPTIONS", false),
        ("OPTIONS", true),
        ("PUT", false),
    ] {
        let response = support::oneshot(&state, call(method, browser)).await;
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method}"
        );
        assert_eq!(response.headers()["allow"], "POST", "{method}");
        assert!(
            response.body().contains("called with POST"),
            "{}",
            response.body()
        );
    }
    let get_health = Request::get("http://127.0.0.1/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .unwrap();
    let refused = support::oneshot(&state, get_health).await;
    assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(state.store.current_run().reports, 0, "nothing was stored");

    let posted = support::oneshot(&state, call("POST", false)).await;
    assert_eq!(posted.status(), StatusCode::OK);
    assert_eq!(
        posted.headers().get("grpc-status").map(|v| v.as_bytes()),
        None,
        "no trailers-only error"
    );
    assert_eq!(
        state.store.current_run().reports,
        1,
        "the same frame as POST is stored"
    );
}
