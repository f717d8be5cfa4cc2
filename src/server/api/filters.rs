//! [`Filters`]: the report filters shared by `/api/reports`, `/api/export` and
//! `/api/stream`, checked and turned into a store [`Query`].

use crate::error::Error;
use crate::pb::Event;
use crate::server::AppState;
use crate::store::Query;
use serde::Deserialize;

/// Reports one `/api/reports` page holds when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 500;
/// Reports one `/api/reports` page holds at most.
pub const MAX_LIMIT: usize = 10_000;
/// The largest seq a cursor may name (SQLite's rowids are signed 64-bit).
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// The filters shared by `/api/reports`, `/api/export` and `/api/stream`.
#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    pub(in crate::server) run: Option<String>,
    sender: Option<String>,
    event: Option<String>,
    q: Option<String>,
    pub(in crate::server) after: Option<u64>,
    before: Option<u64>,
    order: Option<Order>,
    limit: Option<usize>,
    pub(super) format: Option<Format>,
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
    /// The same filters read oldest first, `page` reports at a time.
    pub(super) fn paging_oldest_first(self, page: usize) -> Filters {
        Filters {
            limit: Some(page),
            order: None,
            ..self
        }
    }

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
