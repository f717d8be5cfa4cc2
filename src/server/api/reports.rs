//! Reports themselves: `/api/reports` pages and `/api/export` downloads.

use super::answer;
use super::csv::{CSV_HEADER, csv_row};
use super::filters::{Filters, Format};
use crate::error::Error;
use crate::report::Report;
use crate::server::AppState;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Reports read per step while exporting.
const EXPORT_PAGE: usize = 500;
/// How long an export waits for its client to take a chunk before giving up.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);
/// Text an export hands to the connection at a time (with two chunks queued, an
/// export holds a few MiB however large its reports are).
const EXPORT_CHUNK: usize = 1 << 20;
/// Bytes of JSON one `/api/reports` page holds at most (at least one report);
/// `next` continues after the last report that fit.
pub const MAX_PAGE_BYTES: usize = 4 << 20;

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
    answer::budgeted(&state, "application/json", body)
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
    let mut query = filters.paging_oldest_first(EXPORT_PAGE).query(&state)?;
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
