//! The JSON API: runs, paged reports, whole-run export, node summaries, the
//! analysis (kept current by the store, so every read costs O(what it returns)),
//! paged rounds and winner rounds, the timeline, and the metrics exposition.

use super::AppState;
use crate::analysis::live::{LiveAnalysis, SenderCounts};
use crate::analysis::{self, RoundKind};
use crate::error::Error;
use crate::pb::Event;
use crate::report::Report;
use crate::store::{Query, RunInfo};
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
const EXPORT_PAGE: usize = 500;
/// How long an export waits for its client to take a chunk before giving up.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);
/// Text an export hands to the connection at a time (with two chunks queued, an
/// export holds a few MiB however large its reports are).
const EXPORT_CHUNK: usize = 1 << 20;
/// The largest seq a cursor may name (SQLite's rowids are signed 64-bit).
pub const MAX_SEQ: u64 = i64::MAX as u64;
/// Bytes of JSON one `/api/reports` page holds at most (at least one report);
/// `next` continues after the last report that fit.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

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

/// The filters shared by `/api/reports`, `/api/export` and `/api/stream`.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    pub(super) run: Option<String>,
    sender: Option<String>,
    event: Option<String>,
    q: Option<String>,
    pub(super) after: Option<u64>,
    before: Option<u64>,
    order: Option<Order>,
    limit: Option<usize>,
    format: Option<Format>,
}

/// The order of `/api/reports`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Oldest first, after `after`.
    #[default]
    Asc,
    /// Newest first, before `before`.
    Desc,
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
        for (field, value) in [("after", self.after), ("before", self.before)] {
            if value.is_some_and(|seq| seq > MAX_SEQ) {
                return Err(Error::BadRequest(format!(
                    "{field}: must be a seq up to {MAX_SEQ}"
                )));
            }
        }
        Ok(Query {
            run: run.id,
            sender: nonempty(&self.sender),
            event,
            text: nonempty(&self.q),
            after: self.after.unwrap_or(0),
            before: self.before,
            time: None,
            descending: self.order == Some(Order::Desc),
            limit,
        })
    }
}

/// Runs `read` on run `run`'s live analysis (default: the current run), on the
/// blocking pool: a read takes at most milliseconds, but it must not stall the
/// tasks sharing a worker thread.
async fn read_analysis<T: Send + 'static>(
    state: &AppState,
    run: Option<&str>,
    read: impl FnOnce(&LiveAnalysis) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let run = state.store.resolve_run(run)?;
    let analysis = state.store.analysis(run.id).await?;
    tokio::task::spawn_blocking(move || read(&analysis.read().expect("analysis lock")))
        .await
        .map_err(|error| Error::Unavailable(format!("analysis failed: {error}")))?
}

/// The `run` parameter alone.
#[derive(Debug, Default, Deserialize)]
pub struct RunParam {
    run: Option<String>,
}

/// `GET /api/nodes?run=`: one summary per sender.
pub async fn nodes(
    State(state): State<AppState>,
    params: Result<extract::Query<RunParam>, QueryRejection>,
) -> Result<Json<Vec<analysis::NodeSummary>>, Error> {
    let run = params?.0.run;
    Ok(Json(
        read_analysis(&state, run.as_deref(), |live| Ok(live.nodes())).await?,
    ))
}

/// Rounds and winner rounds `/api/analysis` shows when `recent` is not given.
pub const DEFAULT_RECENT: usize = 60;
/// The most rounds and winner rounds one answer holds.
pub const MAX_ROUNDS: usize = 200;

/// The parameters of `/api/analysis`.
#[derive(Debug, Default, Deserialize)]
pub struct AnalysisParams {
    run: Option<String>,
    /// Only the newest this many rounds and winner rounds.
    recent: Option<usize>,
}

fn check_count(field: &str, value: usize, low: usize) -> Result<usize, Error> {
    if value < low || value > MAX_ROUNDS {
        return Err(Error::BadRequest(format!(
            "{field}: must be from {low} to {MAX_ROUNDS} (got {value})"
        )));
    }
    Ok(value)
}

/// `GET /api/analysis?run=&recent=`: nodes and sync phases, the newest rounds and
/// winner rounds, the totals and the whole-run distributions.
pub async fn analysis(
    State(state): State<AppState>,
    params: Result<extract::Query<AnalysisParams>, QueryRejection>,
) -> Result<Json<analysis::Analysis>, Error> {
    let params = params?.0;
    let recent = check_count("recent", params.recent.unwrap_or(DEFAULT_RECENT), 0)?;
    Ok(Json(
        read_analysis(&state, params.run.as_deref(), move |live| {
            Ok(live.summary(recent))
        })
        .await?,
    ))
}

/// Rounds one `/api/rounds` or `/api/winners` page holds when `limit` is not given.
pub const DEFAULT_ROUNDS_PAGE: usize = 20;

/// The parameters of `/api/rounds`.
#[derive(Debug, Default, Deserialize)]
pub struct RoundsParams {
    run: Option<String>,
    kind: Option<RoundKind>,
    #[serde(default)]
    flagged: bool,
    before: Option<usize>,
    limit: Option<usize>,
    /// One round of `kind`, with every missing receiver listed.
    number: Option<usize>,
}

/// One page of `/api/rounds`.
#[derive(Debug, Serialize)]
pub struct RoundsPage {
    /// Newest first.
    pub rounds: Vec<analysis::Round>,
    /// The `before` of the following page; null on the last one.
    pub next: Option<usize>,
}

/// `GET /api/rounds?run=&kind=&flagged=&before=&limit=` (or `kind=&number=`).
pub async fn rounds(
    State(state): State<AppState>,
    params: Result<extract::Query<RoundsParams>, QueryRejection>,
) -> Result<Json<RoundsPage>, Error> {
    let params = params?.0;
    let limit = check_count("limit", params.limit.unwrap_or(DEFAULT_ROUNDS_PAGE), 1)?;
    let page = read_analysis(&state, params.run.as_deref(), move |live| {
        if let Some(number) = params.number {
            let kind = params.kind.ok_or_else(|| {
                Error::BadRequest("kind: required with number (problem, block or reveal)".into())
            })?;
            let round = live.round(kind, number, usize::MAX).ok_or_else(|| {
                Error::NotFound(format!("number: no {kind:?} round {number} in this run"))
            })?;
            return Ok(RoundsPage {
                rounds: vec![round],
                next: None,
            });
        }
        let page = live.rounds_page(params.kind, params.flagged, params.before, limit);
        Ok(RoundsPage {
            rounds: page.items,
            next: page.next,
        })
    })
    .await?;
    Ok(Json(page))
}

/// The parameters of `/api/winners`.
#[derive(Debug, Default, Deserialize)]
pub struct WinnersParams {
    run: Option<String>,
    #[serde(default)]
    disagreeing: bool,
    before: Option<usize>,
    limit: Option<usize>,
}

/// One page of `/api/winners`.
#[derive(Debug, Serialize)]
pub struct WinnersPage {
    /// Newest first.
    pub winners: Vec<analysis::WinnerRound>,
    /// The `before` of the following page; null on the last one.
    pub next: Option<usize>,
}

/// `GET /api/winners?run=&disagreeing=&before=&limit=`.
pub async fn winners(
    State(state): State<AppState>,
    params: Result<extract::Query<WinnersParams>, QueryRejection>,
) -> Result<Json<WinnersPage>, Error> {
    let params = params?.0;
    let limit = check_count("limit", params.limit.unwrap_or(DEFAULT_ROUNDS_PAGE), 1)?;
    let page = read_analysis(&state, params.run.as_deref(), move |live| {
        let page = live.winners_page(params.disagreeing, params.before, limit);
        Ok(WinnersPage {
            winners: page.items,
            next: page.next,
        })
    })
    .await?;
    Ok(Json(page))
}

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
) -> Result<Json<Timeline>, Error> {
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
    Ok(Json(answer))
}

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
) -> Result<Json<Compared>, Error> {
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
    Ok(Json(Compared { a, b, comparison }))
}

/// `GET /metrics`: the Prometheus exposition (OpenMetrics text), with the current
/// run's propagation latencies from its whole-run distributions.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    let metrics = state.metrics.clone();
    let now = crate::metrics::Now {
        subscribers: state.store.subscribers(),
        stream_text_bytes: state.limits.stream_text_held(),
        stream: match &state.writes {
            crate::writes::Writes::Shared(cluster) => Some(cluster.status()),
            crate::writes::Writes::Local(_) => None,
        },
    };
    let text = read_analysis(&state, None, move |live| {
        let propagation: Vec<_> = [RoundKind::Problem, RoundKind::Block, RoundKind::Reveal]
            .into_iter()
            .map(|kind| (kind, live.distribution(kind)))
            .collect();
        Ok(metrics.encode(now, &propagation))
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
/// `after` (or with `order=desc`, newest first before `before`); `next` is the
/// `after` (or `before`) of the following page, null on the last one.
pub async fn reports(
    State(state): State<AppState>,
    filters: Result<extract::Query<Filters>, QueryRejection>,
) -> Result<Response, Error> {
    /// Reports read from the store per step.
    const STEP: usize = 500;
    let mut query = filters?.query(&state)?;
    let limit = query.limit;
    let mut body = b"{\"reports\":[".to_vec();
    let (mut count, mut last, mut more) = (0, None, false);
    'pages: loop {
        // One more than needed tells whether another page follows.
        query.limit = (limit - count).min(STEP) + 1;
        let page = state.store.query(query.clone()).await?;
        for report in &page {
            let json = serde_json::to_vec(report)
                .map_err(|error| Error::Unavailable(format!("reports: {error}")))?;
            if count == limit || (count > 0 && body.len() + json.len() > MAX_PAGE_BYTES) {
                more = true;
                break 'pages;
            }
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&json);
            count += 1;
            last = Some(report.seq);
        }
        match last {
            Some(seq) if page.len() == query.limit => {
                if query.descending {
                    query.before = Some(seq);
                } else {
                    query.after = seq;
                }
            }
            _ => break,
        }
    }
    let next = match last.filter(|_| more) {
        Some(seq) => seq.to_string(),
        None => "null".into(),
    };
    body.extend_from_slice(format!("],\"next\":{next}}}").as_bytes());
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
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
        order: None,
        ..filters
    }
    .query(&state)?;
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson => ("application/x-ndjson", "ndjson"),
    };
    let share = state.limits.export()?;
    let (pages, body) = mpsc::channel::<Result<String, std::io::Error>>(2);
    let store = state.store.clone();
    // Set when the whole export was handed over; otherwise the body ends with an
    // error, so a client never takes a cut-off export for a whole one.
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = finished.clone();
    tokio::spawn(async move {
        let _share = share; // given back when the export ends, however it ends
        // A client that reads nothing for this long loses the export (and its share).
        let deliver = |text: String| {
            let pages = pages.clone();
            async move {
                matches!(
                    tokio::time::timeout(EXPORT_STALL, pages.send(Ok(text))).await,
                    Ok(Ok(()))
                )
            }
        };
        if format == Format::Csv && !deliver(CSV_HEADER.to_string()).await {
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
            let mut text = String::new();
            for report in &page {
                match format {
                    Format::Csv => csv_row(report, &mut text),
                    Format::Ndjson => {
                        text.push_str(&serde_json::to_string(report).unwrap_or_default());
                        text.push('\n');
                    }
                }
                if text.len() >= EXPORT_CHUNK && !deliver(std::mem::take(&mut text)).await {
                    return;
                }
            }
            if !text.is_empty() && !deliver(text).await {
                return;
            }
            match page.last() {
                Some(last) if page.len() == query.limit => query.after = last.seq,
                _ => {
                    done.store(true, std::sync::atomic::Ordering::Release);
                    return;
                }
            }
        }
    });
    let mut checked = false;
    let ending = tokio_stream::iter(std::iter::from_fn(move || {
        if std::mem::replace(&mut checked, true)
            || finished.load(std::sync::atomic::Ordering::Acquire)
        {
            return None;
        }
        Some(Err(std::io::Error::other(
            "export: abandoned before its end (the client read nothing for 60 s)",
        )))
    }));
    let body = tokio_stream::StreamExt::chain(ReceiverStream::new(body), ending);
    let disposition = format!(
        "attachment; filename=\"perfstats-{}.{extension}\"",
        run.name
    );
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
