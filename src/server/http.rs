//! The HTTP side's routes, the embedded page, and the fallback for unknown paths.

use super::{AppState, api, legacy, stream};
use crate::analysis::SYNC_PHASES;
use crate::pb::Event;
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post, put};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file of `static/`, served at its path there.
macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        (
            $path,
            $content_type,
            include_str!(concat!("../../static", $path)),
        )
    };
}

/// The dashboard's files, embedded so the binary serves them from any directory
/// (and nothing else: no path ever reaches the file system). The page is
/// `index.html`, which loads `app.js` as an ES module; every module it imports
/// must be listed here (`tests/browser/modules.test.mjs` checks that).
const INDEX_HTML: &str = include_str!("../../static/index.html");
const ASSETS: [(&str, &str, &str); 21] = [
    asset!("/style.css", CSS),
    asset!("/app.js", JS),
    asset!("/js/api.js", JS),
    asset!("/js/cdf.js", JS),
    asset!("/js/cluster.js", JS),
    asset!("/js/compare.js", JS),
    asset!("/js/draw.js", JS),
    asset!("/js/events.js", JS),
    asset!("/js/figure.js", JS),
    asset!("/js/flagged.js", JS),
    asset!("/js/histogram.js", JS),
    asset!("/js/live.js", JS),
    asset!("/js/log.js", JS),
    asset!("/js/nodes.js", JS),
    asset!("/js/picker.js", JS),
    asset!("/js/rounds.js", JS),
    asset!("/js/state.js", JS),
    asset!("/js/summary.js", JS),
    asset!("/js/sweep.js", JS),
    asset!("/js/timeline.js", JS),
    asset!("/js/winners.js", JS),
];

/// Every HTTP route: the dashboard's files, the JSON API, metrics, legacy endpoints.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new().route("/", get(index));
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || asset(content_type, body)));
    }
    router
        .route("/api/events", get(events))
        .route("/api/runs", get(api::runs).post(api::new_run))
        .route("/api/runs/{run}/labels", put(api::set_labels))
        .route("/api/reports", get(api::reports))
        .route("/api/export", get(api::export))
        .route("/api/nodes", get(api::nodes))
        .route("/api/analysis", get(api::analysis))
        .route("/api/rounds", get(api::rounds))
        .route("/api/winners", get(api::winners))
        .route("/api/timeline", get(api::timeline))
        .route("/api/compare", get(api::compare))
        .route("/api/sweep", get(api::sweep))
        .route("/api/check", get(api::check))
        .route("/api/cluster", get(api::cluster))
        .route("/api/stream", get(stream::stream))
        .route("/metrics", get(api::metrics))
        .route("/send", post(legacy::send))
        .route("/messages", get(legacy::messages))
        .with_state(state)
}

/// `GET /api/events`: every event in proto order and the sync phases in theirs,
/// from `src/event.rs` and [`SYNC_PHASES`], so the page keeps no list of its own.
async fn events() -> Json<serde_json::Value> {
    let events: Vec<_> = Event::all()
        .map(|event| {
            serde_json::json!({
                "name": event.as_str_name(),
                "number": event as i32,
                "seed_name": event.seed_name(),
                "phase": SYNC_PHASES.contains(&event),
            })
        })
        .collect();
    let phases: Vec<_> = SYNC_PHASES
        .iter()
        .map(|phase| {
            serde_json::json!({
                "name": phase.as_str_name(),
                "label": phase.phase_label().unwrap_or(phase.as_str_name()),
            })
        })
        .collect();
    Json(serde_json::json!({ "events": events, "phases": phases }))
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Whether a request speaks gRPC (so refusals must be gRPC statuses, not pages).
pub fn is_grpc(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Unknown gRPC methods get `UNIMPLEMENTED`; any other unknown path gets 404.
pub async fn fallback(request: Request) -> Response {
    let path = request.uri().path().to_string();
    if is_grpc(request.headers()) {
        tonic::Status::unimplemented(format!("{path} is not a method of this server")).into_http()
    } else {
        (StatusCode::NOT_FOUND, format!("not found: {path}")).into_response()
    }
}
