//! The JSON API, one file a resource: runs, reports and exports (with the shared
//! filters and CSV rows), the analysis, the timeline, comparisons, sweeps across
//! labelled runs, the pass/fail check, the metrics exposition, and the shared
//! stream (`--nats`). Handlers
//! return [`Error`] for anything refused; it becomes
//! the HTTP answer in one place (`crate::error`). Answers are written within one
//! shared byte budget (`answer`).

mod analysis;
pub(super) mod answer;
mod check;
mod cluster;
mod compare;
mod csv;
mod filters;
mod metrics;
mod reports;
mod runs;
mod sweep;
mod timeline;

pub use analysis::{DEFAULT_NODES_PAGE, MAX_NODES_PAGE, analysis, nodes, rounds, winners};
pub use check::check;
pub use cluster::cluster;
pub use compare::compare;
pub use filters::{Filters, MAX_SEQ};
pub use metrics::metrics;
pub use reports::{export, reports};
pub use runs::{new_run, runs, set_labels};
pub use sweep::{MAX_SWEEP_RUNS, sweep};
pub use timeline::timeline;

use super::AppState;
use crate::analysis::live::LiveAnalysis;
use crate::error::Error;

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

/// A query string's parameters in order, repeated ones kept (`label=a&label=b`),
/// without `token` (the page's read token, which the token check has read).
fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, Error> {
    let mut pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|error| Error::BadRequest(format!("query: {error}")))?;
    pairs.retain(|(name, _)| name != "token");
    Ok(pairs)
}
