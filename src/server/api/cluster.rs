//! `/api/cluster`: the stream shared with other servers as JetStream last reported
//! it, and how far this server has applied it (`--nats` only).

use super::answer;
use crate::cluster::ClusterOverview;
use crate::error::Error;
use crate::server::AppState;
use crate::writes::Writes;
use axum::extract::State;
use axum::response::Response;

/// `GET /api/cluster`: the stream (name, replicas, leader, replicas other than the
/// leader, last seq, messages, bytes) as the 1 s probe last got it (`null` until it
/// was reached), this server's applied seq, lag and writability, and the verdict the
/// page's badge shows. Asks NATS nothing. A server without `--nats` answers
/// `"health": "none"` with `stream` and `server` null (not a 404: the page asks
/// every server, and a browser logs each failed request as an error).
pub async fn cluster(State(state): State<AppState>) -> Result<Response, Error> {
    let overview = match &state.writes {
        Writes::Shared(cluster) => cluster.overview(),
        Writes::Local(_) => ClusterOverview::without_cluster(),
    };
    answer::json(&state, &overview)
}
