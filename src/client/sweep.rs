//! `perfstats sweep`: a series of runs against one label's value, over
//! `/api/sweep`, as a table, the API's JSON, or CSV (one row a run and round kind,
//! for a plotting tool).

use super::http::{HttpClient, encode_query};
use super::terminal::emit;
use serde_json::Value;
use std::io::Write;

/// How `sweep` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepFormat {
    /// A table, then each kind's slope.
    Table,
    /// The API's JSON answer.
    Json,
    /// One row a run and kind, with a header.
    Csv,
}

/// The round kinds, in the API's order.
const KINDS: [&str; 3] = ["problem", "block", "reveal"];

/// Writes the sweep of label `by` across the runs having every label of
/// `filters` to `out`.
pub async fn sweep(
    http: &HttpClient,
    by: &str,
    filters: &[String],
    format: SweepFormat,
    out: &mut impl Write,
) -> Result<(), String> {
    let mut query = format!("/api/sweep?by={}", encode_query(by));
    for filter in filters {
        query.push_str(&format!("&label={}", encode_query(filter)));
    }
    let text = http
        .get(&query, &[])
        .await
        .map_err(String::from)?
        .text()
        .await?;
    let answer: Value =
        serde_json::from_str(&text).map_err(|error| format!("/api/sweep: {error}"))?;
    let printed = match format {
        SweepFormat::Json => format!("{text}\n"),
        SweepFormat::Csv => csv(&answer),
        SweepFormat::Table => table(&answer),
    };
    emit(out, printed.as_bytes()).map(drop)
}

/// Milliseconds to two decimals ("–" for none; never "-0.00").
fn ms(value: &Value) -> String {
    value.as_f64().map_or("–".into(), |ms| {
        format!("{:.2}", if ms.abs() < 0.005 { 0.0 } else { ms })
    })
}

fn interval(value: &Value) -> String {
    match (value[0].as_f64(), value[1].as_f64()) {
        (Some(_), Some(_)) => format!("[{}, {}]", ms(&value[0]), ms(&value[1])),
        _ => "[–]".into(),
    }
}

/// The kinds some run of the sweep has receipts of.
fn kinds_seen(answer: &Value) -> Vec<&'static str> {
    let runs = answer["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    KINDS
        .into_iter()
        .filter(|kind| {
            runs.iter()
                .any(|run| run["kinds"][kind]["count"].as_u64() > Some(0))
        })
        .collect()
}

fn table(answer: &Value) -> String {
    let runs = answer["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let by = answer["by"].as_str().unwrap_or_default();
    let kinds = kinds_seen(answer);
    let mut text = format!(
        "sweep of {by} ({}), {} of {} runs\n{:<12} {:<20}",
        if answer["numeric"] == true {
            "numeric"
        } else {
            "lexical"
        },
        runs.len(),
        answer["runs_matching"],
        by,
        "run"
    );
    for kind in &kinds {
        text.push_str(&format!(
            " {:>28} {:>9}",
            format!("{kind} p50 [95%]"),
            "p99"
        ));
    }
    text.push_str(&format!(
        " {:>8} {:>9} {:>10} {:>10}\n",
        "flagged", "disagree", "sync p50", "sync max"
    ));
    for run in runs {
        text.push_str(&format!(
            "{:<12} {:<20}",
            run["value"].as_str().unwrap_or_default(),
            run["name"].as_str().unwrap_or_default()
        ));
        for kind in &kinds {
            let figures = &run["kinds"][kind];
            text.push_str(&format!(
                " {:>28} {:>9}",
                format!(
                    "{} {}",
                    ms(&figures["p50_ms"]),
                    interval(&figures["p50_ci95_ms"])
                ),
                ms(&figures["p99_ms"])
            ));
        }
        text.push_str(&format!(
            " {:>8} {:>9} {:>10} {:>10}\n",
            run["rounds_flagged"].to_string(),
            run["winners_disagreeing"].to_string(),
            ms(&run["sync"]["median_ms"]),
            ms(&run["sync"]["slowest_ms"])
        ));
    }
    if let Some(slopes) = answer["slopes"].as_object() {
        for (kind, slope) in slopes {
            let ci = match slope["ci95_ms"].is_array() {
                true => format!(" {}", interval(&slope["ci95_ms"])),
                false => " (too few runs for an interval)".into(),
            };
            text.push_str(&format!(
                "each unit of {by} adds {} ms{ci} to {kind} p50 (Theil–Sen over {} runs)\n",
                ms(&slope["per_unit_ms"]),
                slope["runs"]
            ));
        }
    }
    text
}

fn csv(answer: &Value) -> String {
    let mut text = String::from(
        "value,run_id,run,reports,kind,count,p50_ms,p50_ci95_low_ms,p50_ci95_high_ms,\
         p90_ms,p99_ms,max_ms,rounds_flagged,winners_disagreeing,nodes,sync_median_ms,\
         sync_slowest_ms\n",
    );
    let cell = |value: &Value| match value {
        Value::Null => String::new(),
        Value::String(text) => quote(text),
        other => other.to_string(),
    };
    for run in answer["runs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        for kind in KINDS {
            let figures = &run["kinds"][kind];
            let row = [
                cell(&run["value"]),
                cell(&run["id"]),
                cell(&run["name"]),
                cell(&run["reports"]),
                kind.to_string(),
                cell(&figures["count"]),
                cell(&figures["p50_ms"]),
                cell(&figures["p50_ci95_ms"][0]),
                cell(&figures["p50_ci95_ms"][1]),
                cell(&figures["p90_ms"]),
                cell(&figures["p99_ms"]),
                cell(&figures["max_ms"]),
                cell(&run["rounds_flagged"]),
                cell(&run["winners_disagreeing"]),
                cell(&run["nodes"]),
                cell(&run["sync"]["median_ms"]),
                cell(&run["sync"]["slowest_ms"]),
            ];
            text.push_str(&row.join(","));
            text.push('\n');
        }
    }
    text
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn quote(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}
