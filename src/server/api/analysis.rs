//! The analysis as the API serves it: pages of node summaries, `/api/analysis`,
//! paged rounds and winner rounds. Every read costs O(what it returns): the store
//! keeps the analysis current; no answer grows with the senders or the rounds.

use super::{answer, read_analysis};
use crate::analysis::RoundKind;
use crate::analysis::live::{NodeOrder, NodesPage, Page};
use crate::error::Error;
use crate::server::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};

/// Nodes one `/api/nodes` page, and `/api/analysis`, hold when not told.
pub const DEFAULT_NODES_PAGE: usize = 100;
/// The most nodes one answer holds.
pub const MAX_NODES_PAGE: usize = 1_000;

/// The parameters of `/api/nodes`.
#[derive(Debug, Default, Deserialize)]
pub struct NodesParams {
    run: Option<String>,
    order: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The order named by `order` (default: slowest sync first).
fn node_order(order: Option<&str>) -> Result<NodeOrder, Error> {
    match order {
        None | Some("sync") => Ok(NodeOrder::Sync),
        Some("sender") => Ok(NodeOrder::Sender),
        Some(other) => Err(Error::BadRequest(format!(
            "order: must be sync (slowest sync first) or sender (by name) (got {other:?})"
        ))),
    }
}

/// `nodes`, or the default page of nodes, checked against the page rule.
fn nodes_count(field: &str, nodes: Option<usize>, low: usize) -> Result<usize, Error> {
    let nodes = nodes.unwrap_or(DEFAULT_NODES_PAGE);
    if nodes < low || nodes > MAX_NODES_PAGE {
        return Err(Error::BadRequest(format!(
            "{field}: must be from {low} to {MAX_NODES_PAGE} (got {nodes})"
        )));
    }
    Ok(nodes)
}

/// A page of nodes as answered: `nodes`, `nodes_total` (the run's senders) and
/// `next`, the `offset` of the following page (null on the last one).
struct NodesAnswer(NodesPage);

impl Serialize for NodesAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("nodes", &self.0.nodes)?;
        map.serialize_entry("nodes_total", &self.0.total)?;
        map.serialize_entry("next", &self.0.next)?;
        map.end()
    }
}

/// `GET /api/nodes?run=&order=sync|sender&offset=&limit=`: a page of node
/// summaries, slowest sync first (or by name), `limit` (1 to 1,000, default 100)
/// from the `offset`-th on.
pub async fn nodes(
    State(state): State<AppState>,
    params: Result<extract::Query<NodesParams>, QueryRejection>,
) -> Result<Response, Error> {
    let params = params?.0;
    let order = node_order(params.order.as_deref())?;
    let limit = nodes_count("limit", params.limit, 1)?;
    let offset = params.offset.unwrap_or(0);
    let page = read_analysis(&state, params.run.as_deref(), move |live| {
        Ok(live.nodes_page(order, offset, limit))
    })
    .await?;
    answer::json(&state, &NodesAnswer(page))
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
    /// Only the first this many nodes, slowest sync first.
    nodes: Option<usize>,
}

fn check_count(field: &str, value: usize, low: usize) -> Result<usize, Error> {
    if value < low || value > MAX_ROUNDS {
        return Err(Error::BadRequest(format!(
            "{field}: must be from {low} to {MAX_ROUNDS} (got {value})"
        )));
    }
    Ok(value)
}

/// `GET /api/analysis?run=&recent=&nodes=`: the first `nodes` nodes (0 to 1,000,
/// default 100; slowest sync first) with their sync phases and `nodes_total`, the
/// newest rounds and winner rounds, the totals and the whole-run distributions.
pub async fn analysis(
    State(state): State<AppState>,
    params: Result<extract::Query<AnalysisParams>, QueryRejection>,
) -> Result<Response, Error> {
    let params = params?.0;
    let recent = check_count("recent", params.recent.unwrap_or(DEFAULT_RECENT), 0)?;
    let nodes = nodes_count("nodes", params.nodes, 0)?;
    let summary = read_analysis(&state, params.run.as_deref(), move |live| {
        Ok(live.summary(recent, nodes))
    })
    .await?;
    answer::json(&state, &summary)
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

/// A page of rounds or winner rounds as answered: its items (newest first) under
/// `key` (`rounds`, `winners`), and `next`, the `before` of the following page
/// (null on the last one).
pub struct PageAnswer<T> {
    key: &'static str,
    page: Page<T>,
}

impl<T: Serialize> Serialize for PageAnswer<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(self.key, &self.page.items)?;
        map.serialize_entry("next", &self.page.next)?;
        map.end()
    }
}

/// `GET /api/rounds?run=&kind=&flagged=&before=&limit=` (or `kind=&number=`).
pub async fn rounds(
    State(state): State<AppState>,
    params: Result<extract::Query<RoundsParams>, QueryRejection>,
) -> Result<Response, Error> {
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
            return Ok(Page {
                items: vec![round],
                next: None,
            });
        }
        Ok(live.rounds_page(params.kind, params.flagged, params.before, limit))
    })
    .await?;
    answer::json(
        &state,
        &PageAnswer {
            key: "rounds",
            page,
        },
    )
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

/// `GET /api/winners?run=&disagreeing=&before=&limit=`.
pub async fn winners(
    State(state): State<AppState>,
    params: Result<extract::Query<WinnersParams>, QueryRejection>,
) -> Result<Response, Error> {
    let params = params?.0;
    let limit = check_count("limit", params.limit.unwrap_or(DEFAULT_ROUNDS_PAGE), 1)?;
    let page = read_analysis(&state, params.run.as_deref(), move |live| {
        Ok(live.winners_page(params.disagreeing, params.before, limit))
    })
    .await?;
    answer::json(
        &state,
        &PageAnswer {
            key: "winners",
            page,
        },
    )
}
