//! `/api/compare`: two runs side by side, with intervals for the differences.

use super::answer;
use crate::analysis;
use crate::error::Error;
use crate::server::AppState;
use crate::store::RunInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The parameters of `/api/compare`.
#[derive(Debug, Default, Deserialize)]
pub struct CompareParams {
    a: Option<String>,
    b: Option<String>,
}

/// `/api/compare`: two runs side by side.
#[derive(Debug, Serialize)]
pub struct Compared {
    /// Run a.
    pub a: RunInfo,
    /// Run b.
    pub b: RunInfo,
    /// Per kind, per node, per run (deltas are b − a).
    #[serde(flatten)]
    pub comparison: analysis::compare::Comparison,
}

/// `GET /api/compare?a=RUN&b=RUN`: both runs' whole-run distributions per round
/// kind with the difference of medians and its 95% interval, per-node sync and
/// block latency, and each run's flags.
pub async fn compare(
    State(state): State<AppState>,
    params: Result<extract::Query<CompareParams>, QueryRejection>,
) -> Result<Response, Error> {
    let params = params?.0;
    let named = |field: &str, value: Option<String>| {
        value
            .filter(|value| !value.is_empty())
            .ok_or_else(|| Error::BadRequest(format!("{field}: required (a run's id or name)")))
    };
    let (a, b) = (named("a", params.a)?, named("b", params.b)?);
    let found = |field: &str, name: &str| {
        state
            .store
            .resolve_run(Some(name))
            .map_err(|_| Error::NotFound(format!("{field}: no run with id or name {name:?}")))
    };
    let (a, b) = (found("a", &a)?, found("b", &b)?);
    let (in_a, in_b) = (
        state.store.analysis(a.id).await?,
        state.store.analysis(b.id).await?,
    );
    let comparison = tokio::task::spawn_blocking(move || {
        // A run compared with itself: one lock (a second read lock on the same
        // RwLock could wait behind a writer waiting behind the first).
        if Arc::ptr_eq(&in_a, &in_b) {
            let both = in_a.read().expect("analysis lock");
            return analysis::compare::compare(&both, &both);
        }
        let in_a = in_a.read().expect("analysis lock");
        let in_b = in_b.read().expect("analysis lock");
        analysis::compare::compare(&in_a, &in_b)
    })
    .await
    .map_err(|error| Error::Unavailable(format!("compare failed: {error}")))?;
    answer::json(&state, &Compared { a, b, comparison })
}
