//! `GET /api/stream`: the live feed as Server-Sent Events, resumable.
//!
//! Each subscriber gets its own task that first replays from the store what came
//! after its cursor (`Last-Event-ID`, or `?after=`), then forwards the live feed. A
//! subscriber that reads too slowly falls behind the feed's bounded buffer; it is
//! then caught up again from the store, so it never slows ingest, never makes the
//! server buffer without bound, and never silently misses a report.
//!
//! What a subscriber costs is bounded: at most `--max-subscribers` of them (the rest
//! get 503 with `Retry-After`), a small queue each, and catch-up reads of the store
//! go through one shared path of two readers at a time (not a blocking thread
//! each), a small page at a time.

use super::AppState;
use super::api::{Filters, MAX_SEQ};
use super::limits::Limits;
use crate::error::Error;
use crate::report::Report;
use crate::store::{Query, Store};
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

/// Events queued per subscriber before its task waits for the client to read.
const SUBSCRIBER_BUFFER: usize = 16;
/// How soon a browser's EventSource reconnects after losing the server.
const RECONNECT: std::time::Duration = std::time::Duration::from_secs(1);
/// Reports read from the store per catch-up step.
const CATCH_UP_PAGE: usize = 200;

/// `GET /api/stream?run=&sender=&event=&q=&after=`: `id: <seq>`, `event: report`,
/// `data: <Report>` for each matching report after the cursor. The cursor is the
/// `Last-Event-ID` header, else `after`, else "from now on".
pub async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    filters: Result<extract::Query<Filters>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Error> {
    let filters = filters?.0;
    let mut query = filters.query(&state)?;
    query.limit = CATCH_UP_PAGE;
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .filter(|seq| *seq <= MAX_SEQ)
                .ok_or_else(|| {
                    Error::BadRequest(format!(
                        "Last-Event-ID: must be a report seq (a whole number up to {MAX_SEQ})"
                    ))
                })?,
        ),
        None => None,
    };
    let share = state.limits.subscriber()?;
    let live = state.store.subscribe();
    let cursor = resume
        .or(filters.after)
        .unwrap_or_else(|| state.store.last_seq());
    query.after = cursor;
    let (events, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
    // The cursor as the first id, so a client that reconnects before any report
    // arrived resumes from here, not from "now"; and browsers reconnect after a
    // second (not the default three) when the server goes.
    let hello = Event::default()
        .id(cursor.to_string())
        .retry(RECONNECT)
        .comment("perfstats");
    events
        .try_send(Ok(hello))
        .expect("an empty channel has room");
    let store = state.store.clone();
    let limits = state.limits.clone();
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let _share = share; // given back when the subscriber goes
        tokio::select! {
            () = forward(store, &limits, query, live, events) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    });
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::default()))
}

type Events = mpsc::Sender<Result<Event, Infallible>>;

/// Replays from the store after `query.after`, then forwards the live feed,
/// catching up from the store again whenever the feed lagged. Ends when the client
/// goes away or the feed closes.
async fn forward(
    store: Store,
    limits: &Limits,
    mut query: Query,
    mut live: tokio::sync::broadcast::Receiver<Arc<Report>>,
    events: Events,
) {
    let mut catching_up = true;
    loop {
        if catching_up {
            match catch_up(&store, limits, &mut query, &events).await {
                Ok(done) => catching_up = !done,
                Err(()) => return,
            }
            continue;
        }
        let received = tokio::select! {
            received = live.recv() => received,
            () = events.closed() => return,
        };
        match received {
            Ok(report) => {
                if report.seq <= query.after {
                    continue;
                }
                query.after = report.seq;
                if query.matches(&report) && send(&events, &report).await.is_err() {
                    return;
                }
            }
            Err(RecvError::Lagged(skipped)) => {
                tracing::debug!(skipped, "slow SSE subscriber; catching up from the store");
                catching_up = true;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Sends one page of stored reports after the cursor; `Ok(true)` when the store had
/// no more, `Err` when the client is gone.
async fn catch_up(
    store: &Store,
    limits: &Limits,
    query: &mut Query,
    events: &Events,
) -> Result<bool, ()> {
    let page = {
        let _turn = limits.catch_up().await;
        store.query(query.clone()).await.map_err(|_| ())?
    };
    for report in &page {
        send(events, report).await?;
        query.after = report.seq;
    }
    Ok(page.len() < query.limit)
}

async fn send(events: &Events, report: &Report) -> Result<(), ()> {
    let event = Event::default()
        .id(report.seq.to_string())
        .event("report")
        .json_data(report)
        .map_err(|_| ())?;
    events.send(Ok(event)).await.map_err(|_| ())
}
