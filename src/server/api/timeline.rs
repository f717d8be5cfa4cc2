//! `/api/timeline`: a window of a run, counted per sender and event per bucket,
//! with the reports themselves when the window holds few.

use super::{answer, read_analysis};
use crate::analysis::live::SenderCounts;
use crate::error::Error;
use crate::report::Report;
use crate::server::AppState;
use crate::store::Query;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Buckets a timeline answer has when `buckets` is not given.
pub const DEFAULT_BUCKETS: usize = 200;
/// The most buckets a timeline answer has.
pub const MAX_BUCKETS: usize = 2_000;
/// A window with at most this many reports comes with the reports themselves.
pub const TIMELINE_REPORTS: u64 = 2_000;

/// The parameters of `/api/timeline`.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineParams {
    run: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    buckets: Option<usize>,
}

/// `/api/timeline`: a window of the run, counts per sender and event per bucket.
#[derive(Debug, Serialize)]
pub struct Timeline {
    /// The run's earliest report time (null: no reports).
    pub run_from: Option<i64>,
    /// The run's latest report time.
    pub run_to: Option<i64>,
    /// The window's start (snapped to the aggregation grid).
    pub from: i64,
    /// The window's end.
    pub to: i64,
    /// Each bucket's width, ns.
    pub bucket_ns: i64,
    /// How many buckets.
    pub buckets: usize,
    /// Per sender (in name order), counts per event per bucket.
    pub senders: Vec<SenderCounts>,
    /// The window's reports, oldest first, when they are at most 2,000; else null.
    pub reports: Option<Vec<Arc<Report>>>,
}

/// `GET /api/timeline?run=&from=&to=&buckets=`.
pub async fn timeline(
    State(state): State<AppState>,
    params: Result<extract::Query<TimelineParams>, QueryRejection>,
) -> Result<Response, Error> {
    let params = params?.0;
    let buckets = params.buckets.unwrap_or(DEFAULT_BUCKETS);
    if buckets == 0 || buckets > MAX_BUCKETS {
        return Err(Error::BadRequest(format!(
            "buckets: must be from 1 to {MAX_BUCKETS} (got {buckets})"
        )));
    }
    /// Times a window may name (ns): report times are never negative, and half
    /// the range leaves room for the grid arithmetic.
    const LATEST: i64 = i64::MAX / 2;
    for (field, value) in [("from", params.from), ("to", params.to)] {
        if value.is_some_and(|time| !(0..=LATEST).contains(&time)) {
            return Err(Error::BadRequest(format!(
                "{field}: must be a time in ns from 0 to {LATEST}"
            )));
        }
    }
    if let (Some(from), Some(to)) = (params.from, params.to)
        && from >= to
    {
        return Err(Error::BadRequest(format!(
            "to: must be after from (got from={from}, to={to})"
        )));
    }
    let run = state.store.resolve_run(params.run.as_deref())?;
    let (mut answer, seqs) = read_analysis(&state, Some(&run.id.to_string()), move |live| {
        let span = live.span();
        let from = params.from.or(span.map(|(low, _)| low)).unwrap_or(0);
        let to = params
            .to
            .or(span.map(|(_, high)| high.saturating_add(1)))
            .unwrap_or(from + 1)
            .max(from + 1);
        let (window, senders) = live.timeline(from, to, buckets);
        let seqs = (window.total <= TIMELINE_REPORTS)
            .then(|| live.timeline_seqs(window.from, window.to))
            .flatten();
        Ok((
            Timeline {
                run_from: span.map(|(low, _)| low),
                run_to: span.map(|(_, high)| high),
                from: window.from,
                to: window.to,
                bucket_ns: window.bucket_ns,
                buckets: window.buckets,
                senders,
                reports: (window.total == 0).then(Vec::new),
            },
            seqs,
        ))
    })
    .await?;
    if let Some((first, last)) = seqs {
        let reports = state
            .store
            .query(Query {
                run: run.id,
                after: first - 1,
                before: Some(last + 1),
                time: Some((answer.from, answer.to)),
                limit: TIMELINE_REPORTS as usize,
                ..Query::default()
            })
            .await?;
        answer.reports = Some(reports);
    }
    answer::json(&state, &answer)
}
