//! The `runs` commands, over the HTTP API: list the runs (with their labels,
//! filtered by label), start one, label one.

use super::http::{HttpClient, encode_query};
use super::terminal::{clock, emit};
use crate::labels::{self, Labels};
use hyper::Method;
use std::io::Write;

/// How the `runs` commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunsFormat {
    /// A table (lists) or one line (a run).
    Table,
    /// The API's JSON answer.
    Json,
}

/// Writes the runs having every label of `filters` (`k=v` or `k`) to `out`.
pub async fn list(
    http: &HttpClient,
    filters: &[String],
    format: RunsFormat,
    out: &mut impl Write,
) -> Result<(), String> {
    labels::Filter::parse(filters.iter().map(String::as_str)).map_err(|error| error.to_string())?;
    let query: Vec<String> = filters
        .iter()
        .map(|filter| format!("label={}", encode_query(filter)))
        .collect();
    let path = match query.is_empty() {
        true => "/api/runs".to_string(),
        false => format!("/api/runs?{}", query.join("&")),
    };
    let text = http
        .get(&path, &[])
        .await
        .map_err(String::from)?
        .text()
        .await?;
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|error| format!("/api/runs: {error}"))?;
    if format == RunsFormat::Json {
        return emit(out, format!("{text}\n").as_bytes()).map(drop);
    }
    let mut table = format!(
        "{:>4}  {:<24} {:>9} {:>8}  {:<12}  labels\n",
        "id", "name", "reports", "evicted", "started"
    );
    for run in runs {
        table.push_str(&format!(
            "{:>4}  {:<24} {:>9} {:>8}  {:<12}  {}{}\n",
            run["id"].to_string(),
            run["name"].as_str().unwrap_or_default(),
            run["reports"].to_string(),
            run["evicted"].to_string(),
            clock(run["started_unix_nano"].as_i64().unwrap_or_default()),
            labels_text(&run["labels"]),
            if run["current"] == true {
                "  (current)"
            } else {
                ""
            },
        ));
    }
    emit(out, table.as_bytes()).map(drop)
}

/// Starts run `name` with `labels` (`k=v` each) and writes it to `out`.
pub async fn start(
    http: &HttpClient,
    name: &str,
    labels: &[String],
    format: RunsFormat,
    out: &mut impl Write,
) -> Result<(), String> {
    let labels = parse(labels)?;
    let body = serde_json::json!({ "name": name, "labels": labels });
    let answer = http
        .send_json(Method::POST, "/api/runs", &body)
        .await
        .map_err(String::from)?
        .text()
        .await?;
    write_run(&answer, format, out)
}

/// Gives run `run` (id or name) the labels `labels` (`k=v` each): added to the
/// ones it has (a key it has takes the new value), or instead of them all with
/// `replace`. Writes the run as it now is to `out`.
pub async fn label(
    http: &HttpClient,
    run: &str,
    labels: &[String],
    replace: bool,
    format: RunsFormat,
    out: &mut impl Write,
) -> Result<(), String> {
    let mut given = parse(labels)?;
    if !replace {
        let text = http
            .get("/api/runs", &[])
            .await
            .map_err(String::from)?
            .text()
            .await?;
        let runs: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|error| format!("/api/runs: {error}"))?;
        let found = runs
            .iter()
            .find(|info| {
                info["name"] == run || info["id"].as_u64().is_some_and(|id| run.parse() == Ok(id))
            })
            .ok_or_else(|| format!("run: no run with id or name {run:?}"))?;
        let mut merged: Labels = serde_json::from_value(found["labels"].clone())
            .map_err(|error| format!("/api/runs: labels: {error}"))?;
        merged.append(&mut given);
        given = merged;
    }
    let path = format!("/api/runs/{}/labels", encode_query(run));
    let answer = http
        .send_json(Method::PUT, &path, &serde_json::json!(given))
        .await
        .map_err(String::from)?
        .text()
        .await?;
    write_run(&answer, format, out)
}

fn parse(labels: &[String]) -> Result<Labels, String> {
    labels::parse_all(labels.iter().map(String::as_str)).map_err(|error| error.to_string())
}

/// One run (the API's JSON) as `id name labels`, or the JSON itself.
fn write_run(answer: &str, format: RunsFormat, out: &mut impl Write) -> Result<(), String> {
    let line = match format {
        RunsFormat::Json => format!("{answer}\n"),
        RunsFormat::Table => {
            let run: serde_json::Value =
                serde_json::from_str(answer).map_err(|error| format!("run: {error}"))?;
            format!(
                "{} {} {}\n",
                run["id"],
                run["name"].as_str().unwrap_or_default(),
                labels_text(&run["labels"])
            )
        }
    };
    emit(out, line.as_bytes()).map(drop)
}

/// Labels as `k=v k=v` (in key order, as the API gives them).
fn labels_text(labels: &serde_json::Value) -> String {
    let Some(labels) = labels.as_object() else {
        return String::new();
    };
    labels
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(" ")
}
