//! The HTTP side's routes, the embedded page, and the fallback for unknown paths.

use super::{AppState, api, legacy, stream};
use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

/// The dashboard's files, embedded so the binary serves them from any directory
/// (and nothing else: no path ever reaches the file system).
const INDEX_HTML: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const STYLE_CSS: &str = include_str!("../../static/style.css");

/// Every HTTP route: the dashboard's files, the JSON API, metrics, legacy endpoints.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
        )
        .route("/api/runs", get(api::runs).post(api::new_run))
        .route("/api/reports", get(api::reports))
        .route("/api/export", get(api::export))
        .route("/api/nodes", get(api::nodes))
        .route("/api/analysis", get(api::analysis))
        .route("/api/rounds", get(api::rounds))
        .route("/api/winners", get(api::winners))
        .route("/api/timeline", get(api::timeline))
        .route("/api/compare", get(api::compare))
        .route("/api/stream", get(stream::stream))
        .route("/metrics", get(api::metrics))
        .route("/send", post(legacy::send))
        .route("/messages", get(legacy::messages))
        .with_state(state)
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
