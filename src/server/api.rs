//! The JSON API: runs, paged reports, whole-run export, node summaries and the
//! analysis, and the metrics exposition.

use super::AppState;
use crate::analysis;
use crate::error::Error;
use crate::pb::Event;
use crate::store::{Query, Report, RunInfo};
use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Reports one `/api/reports` page holds when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 500;
/// Reports one `/api/reports` page holds at most.
pub const MAX_LIMIT: usize = 10_000;
/// Reports read per step while exporting.
const EXPORT_PAGE: usize = 5_000;

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
    Ok(Json(state.store.new_run(name).await?))
}

/// The filters shared by `/api/reports`, `/api/export` and `/api/stream`.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    pub(super) run: Option<String>,
    sender: Option<String>,
    event: Option<String>,
    q: Option<String>,
    pub(super) after: Option<u64>,
    limit: Option<usize>,
    format: Option<Format>,
}

impl Filters {
    /// The store query these filters name (`limit` checked against `MAX_LIMIT`).
    pub fn query(&self, state: &AppState) -> Result<Query, Error> {
        let run = state.store.resolve_run(self.run.as_deref())?;
        let event = match self.event.as_deref().filter(|text| !text.is_empty()) {
            Some(text) => Some(
                text.parse::<Event>()
                    .map_err(|unknown| Error::BadRequest(format!("event: {unknown}")))?,
            ),
            None => None,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::BadRequest(format!(
                "limit: must be from 1 to {MAX_LIMIT} (got {limit})"
            )));
        }
        let nonempty = |text: &Option<String>| text.clone().filter(|text| !text.is_empty());
        Ok(Query {
            run: run.id,
            sender: nonempty(&self.sender),
            event,
            text: nonempty(&self.q),
            after: self.after.unwrap_or(0),
            limit,
        })
    }
}

/// Reports read per step while analysing a run.
const ANALYSIS_PAGE: usize = 10_000;

/// The run named by `run` (default: current), folded page by page into an
/// [`analysis::Analyzer`], so the run is never held in memory whole.
async fn analyze_run(state: &AppState, run: Option<&str>) -> Result<analysis::Analyzer, Error> {
    let run = state.store.resolve_run(run)?;
    let mut query = Query {
        run: run.id,
        limit: ANALYSIS_PAGE,
        ..Query::default()
    };
    let mut analyzer = analysis::Analyzer::default();
    loop {
        let page = state.store.query(query.clone()).await?;
        for report in &page {
            analyzer.add(report);
        }
        match page.last() {
            Some(last) if page.len() == ANALYSIS_PAGE => query.after = last.seq,
            _ => return Ok(analyzer),
        }
    }
}

/// Runs `work` on the blocking pool: analysing a large run takes milliseconds of
/// CPU that must not stall the tasks sharing a worker thread.
async fn compute<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Unavailable(format!("analysis failed: {error}")))
}

/// `GET /api/nodes?run=`: one summary per sender.
pub async fn nodes(
    State(state): State<AppState>,
    filters: Result<extract::Query<Filters>, QueryRejection>,
) -> Result<Json<Vec<analysis::NodeSummary>>, Error> {
    let analyzer = analyze_run(&state, filters?.0.run.as_deref()).await?;
    Ok(Json(analyzer.nodes()))
}

/// The parameters of `/api/analysis`.
#[derive(Debug, Default, Deserialize)]
pub struct AnalysisParams {
    run: Option<String>,
    /// Only the newest this many rounds (and every flagged older one).
    recent: Option<usize>,
}

/// `GET /api/analysis?run=&recent=`: sync phases, propagation rounds, winner
/// agreement.
pub async fn analysis(
    State(state): State<AppState>,
    params: Result<extract::Query<AnalysisParams>, QueryRejection>,
) -> Result<Json<analysis::Analysis>, Error> {
    let params = params?.0;
    let analyzer = analyze_run(&state, params.run.as_deref()).await?;
    let analysed = compute(move || {
        let full = analyzer.finish();
        match params.recent {
            Some(count) => full.recent(count),
            None => full,
        }
    })
    .await?;
    Ok(Json(analysed))
}

/// `GET /metrics`: the Prometheus exposition (OpenMetrics text), with the current
/// run's propagation latencies computed at scrape time.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    let analyzer = analyze_run(&state, None).await?;
    let store = state.store.clone();
    let text = compute(move || {
        let rounds = analyzer.rounds();
        store.metrics().encode(store.subscribers(), &rounds)
    })
    .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// `GET /api/reports`: `{"reports": [...], "next": seq | null}`, oldest first after
/// `after`; `next` is the `after` of the following page, null on the last one.
pub async fn reports(
    State(state): State<AppState>,
    filters: Result<extract::Query<Filters>, QueryRejection>,
) -> Result<Json<Page>, Error> {
    let mut query = filters?.query(&state)?;
    let limit = query.limit;
    // One more than asked tells whether another page follows.
    query.limit += 1;
    let mut reports = state.store.query(query).await?;
    let more = reports.len() > limit;
    reports.truncate(limit);
    let next = more
        .then(|| reports.last().map(|report| report.seq))
        .flatten();
    Ok(Json(Page { reports, next }))
}

/// One page of `/api/reports`.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The reports, oldest first.
    pub reports: Vec<Arc<Report>>,
    /// The `after` of the next page; `None` on the last page.
    pub next: Option<u64>,
}

/// The formats `/api/export` writes.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row (RFC 4180 quoting).
    #[default]
    Csv,
    /// One JSON report per line.
    Ndjson,
}

/// The CSV header row, in the order of [`csv_row`].
pub const CSV_HEADER: &str =
    "seq,run,time_unix_nano,received_unix_nano,sender,event,message,report_id\r\n";

/// One report as a CSV row.
pub fn csv_row(report: &Report, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "{},{},{},{},{},{},{},{}\r\n",
        report.seq,
        report.run,
        report.time_unix_nano,
        report.received_unix_nano,
        csv_field(&report.sender),
        report.event.as_str_name(),
        csv_field(&report.message),
        csv_field(&report.report_id),
    );
}

fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// `GET /api/export?run=&format=csv|ndjson`: the whole run (filters apply) as a
/// download, streamed page by page so memory stays flat however large the run.
pub async fn export(
    State(state): State<AppState>,
    filters: Result<extract::Query<Filters>, QueryRejection>,
) -> Result<Response, Error> {
    let filters = filters?.0;
    let run = state.store.resolve_run(filters.run.as_deref())?;
    let format = filters.format.unwrap_or_default();
    let mut query = Filters {
        limit: Some(EXPORT_PAGE),
        ..filters
    }
    .query(&state)?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let (pages, body) = mpsc::channel::<Result<String, std::io::Error>>(2);
    let store = state.store.clone();
    tokio::spawn(async move {
        if format == Format::Csv && pages.send(Ok(CSV_HEADER.to_string())).await.is_err() {
            return;
        }
        loop {
            let page: Vec<Arc<Report>> = match store.query(query.clone()).await {
                Ok(page) => page,
                Err(error) => {
                    let _ = pages
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                    return;
                }
            };
            let mut text = String::with_capacity(page.len() * 160);
            for report in &page {
                match format {
                    Format::Csv => csv_row(report, &mut text),
                    Format::Ndjson => {
                        text.push_str(&serde_json::to_string(report).unwrap_or_default());
                        text.push('\n');
                    }
                }
            }
            if !text.is_empty() && pages.send(Ok(text)).await.is_err() {
                return;
            }
            match page.last() {
                Some(last) if page.len() == query.limit => query.after = last.seq,
                _ => return,
            }
        }
    });
    let disposition = format!(
        "attachment; filename=\"perfstats-{}.{extension}\"",
        run.name
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ReceiverStream::new(body)),
    )
        .into_response())
}
