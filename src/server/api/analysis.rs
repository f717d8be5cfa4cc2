//! The analysis as the API serves it: node summaries, `/api/analysis`, paged
//! rounds and winner rounds. Every read costs O(what it returns): the store keeps
//! the analysis current.

use super::{RunParam, read_analysis};
use crate::analysis::live::Page;
use crate::analysis::{self, RoundKind};
use crate::error::Error;
use crate::server::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{self, State};
use serde::{Deserialize, Serialize};

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
) -> Result<Json<PageAnswer<analysis::Round>>, Error> {
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
    Ok(Json(PageAnswer {
        key: "rounds",
        page,
    }))
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
) -> Result<Json<PageAnswer<analysis::WinnerRound>>, Error> {
    let params = params?.0;
    let limit = check_count("limit", params.limit.unwrap_or(DEFAULT_ROUNDS_PAGE), 1)?;
    let page = read_analysis(&state, params.run.as_deref(), move |live| {
        Ok(live.winners_page(params.disagreeing, params.before, limit))
    })
    .await?;
    Ok(Json(PageAnswer {
        key: "winners",
        page,
    }))
}
