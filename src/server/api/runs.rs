//! `/api/runs`: list the runs, start a new one.

use crate::error::Error;
use crate::server::AppState;
use crate::store::RunInfo;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use serde::Deserialize;

/// `GET /api/runs`: every run, oldest first.
pub async fn runs(State(state): State<AppState>) -> Json<Vec<RunInfo>> {
    Json(state.store.runs())
}

/// The body of `POST /api/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    name: Option<String>,
}

/// `POST /api/runs {"name"}`: starts a new run, which becomes current. The body must
/// be sent as `application/json`, which a page on another site cannot do without
/// the CORS preflight this server never grants.
pub async fn new_run(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Json<RunInfo>, Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        return Err(Error::BadRequest(
            "content-type: must be application/json".into(),
        ));
    }
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<NewRun>(&body)
            .map_err(|error| {
                Error::BadRequest(format!("body: expected {{\"name\": \"…\"}}: {error}"))
            })?
            .name
    };
    Ok(Json(state.writes.new_run(name).await?))
}
