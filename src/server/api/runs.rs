//! `/api/runs`: list the runs (filtered by label), start a new one, replace a
//! run's labels.

use super::{answer, query_pairs};
use crate::error::Error;
use crate::labels::{self, Filter, Labels};
use crate::server::AppState;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// `GET /api/runs[?label=k=v|label=k…]`: every run, oldest first; with `label`
/// filters, the runs having every label asked for (`k=v`: that value; `k`: any).
pub async fn runs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let filter = label_filter(query.as_deref())?;
    let mut runs = state.store.runs();
    runs.retain(|run| filter.matches(&run.labels));
    answer::json(&state, &runs)
}

/// The `label=` filters of a query string; any other parameter is refused.
pub(super) fn label_filter(query: Option<&str>) -> Result<Filter, Error> {
    let pairs = query_pairs(query)?;
    if let Some((name, _)) = pairs.iter().find(|(name, _)| name != "label") {
        return Err(Error::BadRequest(format!(
            "{name}: unknown parameter (runs are filtered by label=k=v or label=k)"
        )));
    }
    Filter::parse(pairs.iter().map(|(_, value)| value.as_str()))
}

/// The body of `POST /api/runs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    name: Option<String>,
    #[serde(default)]
    labels: LabelsJson,
}

/// Labels as sent: a JSON object whose values are checked one by one, so that a
/// value that is not a string is refused naming its label.
type LabelsJson = serde_json::Map<String, serde_json::Value>;

/// The labels of `json`, each value a string, every rule checked.
fn labels_of(json: LabelsJson) -> Result<Labels, Error> {
    let labels = json
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(value) => Ok((key, value)),
            other => Err(Error::BadRequest(format!(
                "labels.{key}: a value must be a string (got {other})"
            ))),
        })
        .collect::<Result<Labels, Error>>()?;
    labels::check(&labels)?;
    Ok(labels)
}

/// `POST /api/runs {"name", "labels": {"k": "v"}}`: starts a new run, which
/// becomes current. The body must be sent as `application/json`, which a page on
/// another site cannot do without the CORS preflight this server never grants.
pub async fn new_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let NewRun { name, labels } = if body.iter().all(u8::is_ascii_whitespace) {
        check_json(&headers)?;
        NewRun::default()
    } else {
        json_body(
            &headers,
            &body,
            r#"{"name": "…", "labels": {"key": "value"}}"#,
        )?
    };
    let labels = labels_of(labels)?;
    let run = state.writes.new_run(name, labels).await?;
    // Not within the answer budget: the run is started, and a 503 would invite a
    // retry that starts another. The answer is small.
    Ok(axum::Json(run).into_response())
}

/// `PUT /api/runs/{run}/labels {"k": "v", …}`: replaces the run's labels (by id
/// or name; `{}` removes them all) and answers the run.
pub async fn set_labels(
    State(state): State<AppState>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Error> {
    let labels = labels_of(json_body(&headers, &body, r#"{"key": "value", …}"#)?)?;
    let run = state.store.resolve_run(Some(&run))?;
    let run = state.writes.set_labels(&run, labels).await?;
    Ok(axum::Json(run).into_response()) // small, and the write is done: no budget
}

/// Refuses a body not sent as `application/json`.
fn check_json(headers: &HeaderMap) -> Result<(), Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if json {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "content-type: must be application/json".into(),
        ))
    }
}

/// Reads an `application/json` body shaped as `expected` says.
fn json_body<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    expected: &str,
) -> Result<T, Error> {
    check_json(headers)?;
    serde_json::from_slice(body)
        .map_err(|error| Error::BadRequest(format!("body: expected {expected}: {error}")))
}
