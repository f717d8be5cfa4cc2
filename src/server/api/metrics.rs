//! `GET /metrics`: the Prometheus exposition, with the current run's latencies.

use super::read_analysis;
use crate::analysis::RoundKind;
use crate::error::Error;
use crate::server::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `GET /metrics`: the Prometheus exposition (OpenMetrics text), with the current
/// run's propagation latencies from its whole-run distributions.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, Error> {
    let metrics = state.metrics.clone();
    let gauges = crate::metrics::Gauges {
        subscribers: state.store.subscribers(),
        stream_text_bytes: state.limits.stream_text_held(),
        answer_bytes: state.limits.answer_bytes_held(),
        stream: match &state.writes {
            crate::writes::Writes::Shared(cluster) => Some(cluster.status()),
            crate::writes::Writes::Local(_) => None,
        },
        heap: crate::heap::last(),
    };
    let text = read_analysis(&state, None, move |live| {
        let propagation: Vec<_> = [RoundKind::Problem, RoundKind::Block, RoundKind::Reveal]
            .into_iter()
            .map(|kind| (kind, live.distribution(kind)))
            .collect();
        Ok(metrics.encode(gauges, &propagation))
    })
    .await?;
    // Not within the answer budget: a scrape must work while the budget is spent
    // (it shows what holds it), and the exposition does not grow with senders.
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
