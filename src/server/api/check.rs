//! `/api/check`: the pass/fail gate over the HTTP API. Parsing and evaluation are
//! [`crate::analysis::check`]'s; this reads the parameters, finds the runs and
//! answers with the outcomes.

use super::answer;
use crate::analysis::check::{Checked, Checks};
use crate::error::Error;
use crate::server::AppState;
use crate::store::RunInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::response::Response;
use serde::Serialize;
use std::sync::Arc;

/// `/api/check`: the runs and how every check came out.
#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    /// The run checked.
    pub run: RunInfo,
    /// The run regressions are measured against, if one was given.
    pub baseline: Option<RunInfo>,
    /// Whether all passed, the counts, and one outcome per check.
    #[serde(flatten)]
    pub checked: Checked,
}

/// The parameters, with `expect` and `max_regression` repeatable.
#[derive(Debug, Default)]
struct CheckParams {
    run: Option<String>,
    baseline: Option<String>,
    expect: Vec<String>,
    max_regression: Vec<String>,
}

impl CheckParams {
    /// Sorts the query's pairs; an unknown parameter or a second `run` or
    /// `baseline` is refused (a misspelt check must not pass unseen).
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<CheckParams, Error> {
        let mut params = CheckParams::default();
        for (name, value) in pairs {
            let once = |slot: &mut Option<String>| match slot {
                Some(_) => Err(Error::BadRequest(format!("{name}: given more than once"))),
                None => {
                    *slot = Some(value.clone());
                    Ok(())
                }
            };
            match name.as_str() {
                "run" => once(&mut params.run)?,
                "baseline" => once(&mut params.baseline)?,
                "expect" => params.expect.push(value),
                "max_regression" => params.max_regression.push(value),
                // The page's read token, which the token check has read.
                "token" => {}
                _ => {
                    return Err(Error::BadRequest(format!(
                        "{name}: unknown parameter (expected run, baseline, expect, max_regression)"
                    )));
                }
            }
        }
        Ok(params)
    }
}

/// `GET /api/check?run=RUN&baseline=RUN&expect=EXPR&…&max_regression=KIND.STAT=P%&…`:
/// each expectation evaluated on `run`, each regression of `run` against
/// `baseline`. A bad check is a 400 naming it and the rule, an unknown run a 404;
/// failed checks are a 200 with `passed: false`.
pub async fn check(
    State(state): State<AppState>,
    pairs: Result<extract::Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Error> {
    let params = CheckParams::from_pairs(pairs?.0)?;
    let run = params
        .run
        .filter(|run| !run.is_empty())
        .ok_or_else(|| Error::BadRequest("run: required (a run's id or name)".into()))?;
    let baseline = params.baseline.filter(|baseline| !baseline.is_empty());
    let checks = Checks::parse(&params.expect, &params.max_regression, baseline.is_some())?;
    let found = |field: &str, name: &str| {
        state
            .store
            .resolve_run(Some(name))
            .map_err(|_| Error::NotFound(format!("{field}: no run with id or name {name:?}")))
    };
    let run = found("run", &run)?;
    let baseline = baseline.map(|name| found("baseline", &name)).transpose()?;
    let in_run = state.store.analysis(run.id).await?;
    let in_baseline = match &baseline {
        Some(baseline) => Some(state.store.analysis(baseline.id).await?),
        None => None,
    };
    let checked = tokio::task::spawn_blocking(move || {
        let live = in_run.read().expect("analysis lock");
        match in_baseline {
            // A run checked against itself: one lock (a second read lock on the same
            // RwLock could wait behind a writer waiting behind the first).
            Some(other) if Arc::ptr_eq(&other, &in_run) => checks.evaluate(&live, Some(&live)),
            Some(other) => checks.evaluate(&live, Some(&other.read().expect("analysis lock"))),
            None => checks.evaluate(&live, None),
        }
    })
    .await
    .map_err(|error| Error::Unavailable(format!("check failed: {error}")))?;
    answer::json(
        &state,
        &CheckAnswer {
            run,
            baseline,
            checked,
        },
    )
}
