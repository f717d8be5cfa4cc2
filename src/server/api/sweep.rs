//! `GET /api/sweep?by=LABEL[&label=k=v…]`: a series of runs against one label's
//! value: every run having the label (and the `label` filters), each with its
//! headline figures, ordered by the value, and with numeric values the slope of
//! each kind's p50 against it.

use super::{answer, query_pairs};
use crate::analysis::RoundKind;
use crate::analysis::sweep::{RunFigures, Slope, number, order, theil_sen};
use crate::error::Error;
use crate::labels::{self, Filter, Labels};
use crate::server::AppState;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs one answer holds at most: the newest of those matching.
pub const MAX_SWEEP_RUNS: usize = 200;

/// The answer of `/api/sweep`.
#[derive(Debug, Serialize)]
pub struct Sweep {
    /// The label swept.
    pub by: String,
    /// Whether every value is a number (then ordered as numbers, and slopes given).
    pub numeric: bool,
    /// Runs having the label and the filters; the answer holds the newest
    /// [`MAX_SWEEP_RUNS`] of them.
    pub runs_matching: usize,
    /// The runs, ordered by the value (then by id).
    pub runs: Vec<SweepRun>,
    /// Per round kind, how p50 moves with the value (numeric values only; kinds
    /// with p50s at two values at least).
    pub slopes: BTreeMap<RoundKind, Slope>,
}

/// One run of a sweep.
#[derive(Debug, Serialize)]
pub struct SweepRun {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: Arc<str>,
    /// Its value of the label swept.
    pub value: String,
    /// All its labels.
    pub labels: Labels,
    /// How many reports it holds.
    pub reports: u64,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Arc<RunFigures>,
}

/// `GET /api/sweep?by=LABEL[&label=k=v…]`.
pub async fn sweep(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, Error> {
    let mut by = None;
    let mut filters = Vec::new();
    for (name, value) in query_pairs(query.as_deref())? {
        match name.as_str() {
            "by" if by.is_none() => by = Some(value),
            "by" => return Err(Error::BadRequest("by: give one label to sweep".into())),
            "label" => filters.push(value),
            _ => {
                return Err(Error::BadRequest(format!(
                    "{name}: unknown parameter (by=LABEL, label=k=v)"
                )));
            }
        }
    }
    let by = by.ok_or_else(|| Error::BadRequest("by: the label to sweep is required".into()))?;
    labels::check_key(&by).map_err(|error| Error::BadRequest(format!("by: {error}")))?;
    let filter = Filter::parse(filters.iter().map(String::as_str))?;
    let mut matching: Vec<_> = state
        .store
        .runs()
        .into_iter()
        .filter(|run| run.labels.contains_key(&by) && filter.matches(&run.labels))
        .collect();
    let runs_matching = matching.len();
    matching.drain(..runs_matching.saturating_sub(MAX_SWEEP_RUNS));
    let mut runs = Vec::with_capacity(matching.len());
    for run in matching {
        runs.push(SweepRun {
            figures: state.store.figures(run.id).await?,
            value: run.labels[&by].clone(),
            id: run.id,
            name: run.name,
            labels: run.labels,
            reports: run.reports,
        });
    }
    let values: Vec<&str> = runs.iter().map(|run| run.value.as_str()).collect();
    let (sorted, numeric) = order(&values);
    let mut slots: Vec<Option<SweepRun>> = runs.into_iter().map(Some).collect();
    let runs: Vec<SweepRun> = sorted
        .into_iter()
        .filter_map(|index| slots[index].take())
        .collect();
    let slopes = if numeric {
        slopes(&runs)
    } else {
        BTreeMap::new()
    };
    answer::json(
        &state,
        &Sweep {
            by,
            numeric,
            runs_matching,
            runs,
            slopes,
        },
    )
}

/// Per kind, the Theil–Sen slope of p50 against the (numeric) value.
fn slopes(runs: &[SweepRun]) -> BTreeMap<RoundKind, Slope> {
    let mut points: BTreeMap<RoundKind, Vec<(f64, f64)>> = BTreeMap::new();
    for run in runs {
        let Some(x) = number(&run.value) else {
            continue;
        };
        for (kind, figures) in &run.figures.kinds {
            if let Some(p50) = figures.p50_ms {
                points.entry(*kind).or_default().push((x, p50));
            }
        }
    }
    points
        .into_iter()
        .filter_map(|(kind, points)| Some((kind, theil_sen(&points)?)))
        .collect()
}
