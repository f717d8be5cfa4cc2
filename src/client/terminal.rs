//! The terminal commands' work, over the HTTP API: `tail` follows the live stream
//! (resuming after a server restart), `export` writes a run out, `compare` puts two
//! runs side by side (`runs` are in [`super::runs`]).
//! Progress and reconnection notes go to stderr only when it is a terminal.

use super::http::{HttpClient, encode_query};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// How long `tail` waits before reconnecting.
const RECONNECT: Duration = Duration::from_secs(1);

/// `HH:MM:SS.mmm` (UTC) of a Unix time in nanoseconds.
pub fn clock(unix_nano: i64) -> String {
    let millis = unix_nano.div_euclid(1_000_000);
    let day_millis = millis.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_millis / 3_600_000,
        day_millis / 60_000 % 60,
        day_millis / 1_000 % 60,
        day_millis % 1_000
    )
}

/// One report (as the API's JSON) as one line: `seq time sender event message`.
pub fn report_line(report: &serde_json::Value) -> String {
    format!(
        "{:>7} {} {} {} {}",
        report["seq"].to_string(),
        clock(report["time_unix_nano"].as_i64().unwrap_or_default()),
        report["sender"].as_str().unwrap_or_default(),
        report["event"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("EVENT_"),
        report["message"].as_str().unwrap_or_default(),
    )
}

/// Writes `bytes` to `out`; `Ok(false)` when the reader went away (a closed pipe,
/// as with `| head`), which ends the command quietly.
pub(super) fn emit(out: &mut impl Write, bytes: &[u8]) -> Result<bool, String> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(format!("stdout: {error}")),
    }
}

pub(super) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| Some(format!("{name}={}", encode_query((*value)?))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// What `tail` follows.
#[derive(Debug, Clone, Default)]
pub struct TailFilter {
    /// The run (id or name); default the current one.
    pub run: Option<String>,
    /// Only this sender.
    pub sender: Option<String>,
    /// Only this event (any accepted spelling).
    pub event: Option<String>,
    /// Stop after this many reports.
    pub count: Option<u64>,
}

/// Prints each new report as a line to `out`, from now on, reconnecting (and
/// resuming where it left off) whenever the connection drops.
pub async fn tail(
    http: &HttpClient,
    filter: &TailFilter,
    out: &mut impl Write,
) -> Result<(), String> {
    let chatty = std::io::stderr().is_terminal();
    let path = format!(
        "/api/stream{}",
        query(&[
            ("run", filter.run.as_deref()),
            ("sender", filter.sender.as_deref()),
            ("event", filter.event.as_deref()),
        ])
    );
    let mut last: Option<u64> = None;
    let mut printed = 0;
    loop {
        let resume: Vec<(&str, String)> = last
            .map(|seq| ("last-event-id", seq.to_string()))
            .into_iter()
            .collect();
        match http.get(&path, &resume).await {
            Ok(mut body) => {
                if chatty {
                    eprintln!("following {path} (Ctrl-C to stop)");
                }
                let mut pending: Vec<u8> = Vec::new();
                loop {
                    let chunk = match body.chunk().await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(error) => {
                            if chatty {
                                eprintln!("{error}");
                            }
                            break;
                        }
                    };
                    // Bytes until a whole event is in: a character may span chunks.
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.windows(2).position(|pair| pair == b"\n\n") {
                        let event: Vec<u8> = pending.drain(..end + 2).collect();
                        let event = String::from_utf8_lossy(&event);
                        for line in event.lines() {
                            if let Some(id) = line.strip_prefix("id: ") {
                                last = id.trim().parse().ok().or(last);
                            }
                        }
                        let data = event.lines().find_map(|line| line.strip_prefix("data: "));
                        let Some(report) = data
                            .and_then(|data| serde_json::from_str::<serde_json::Value>(data).ok())
                        else {
                            continue;
                        };
                        if !emit(out, format!("{}\n", report_line(&report)).as_bytes())? {
                            return Ok(());
                        }
                        printed += 1;
                        if filter.count.is_some_and(|count| printed >= count) {
                            return Ok(());
                        }
                    }
                }
            }
            // A refusal (bad filter, unknown run, missing token) will not change.
            Err(error) if error.status.is_some_and(|status| status < 500) => {
                return Err(error.into());
            }
            Err(error) => {
                if chatty {
                    eprintln!("{error}; reconnecting");
                }
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Writes the run (default: current) in `format` (`csv` or `ndjson`) to `out`,
/// with a running count on stderr when it is a terminal. Returns the lines written.
pub async fn export(
    http: &HttpClient,
    run: Option<&str>,
    format: &str,
    out: &mut impl Write,
) -> Result<u64, String> {
    let chatty = std::io::stderr().is_terminal();
    let path = format!(
        "/api/export{}",
        query(&[("run", run), ("format", Some(format))])
    );
    let mut body = http.get(&path, &[]).await.map_err(String::from)?;
    let mut lines = 0u64;
    while let Some(chunk) = body.chunk().await? {
        if !emit(out, &chunk)? {
            return Ok(lines);
        }
        lines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        if chatty {
            eprint!("\rexported {lines} lines");
        }
    }
    if chatty {
        eprintln!();
    }
    Ok(lines)
}

/// How `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    /// A table to paste into a paper.
    Table,
    /// The API's JSON answer.
    Json,
}

/// Writes runs `a` and `b` compared (`/api/compare`) to `out`.
pub async fn compare(
    http: &HttpClient,
    a: &str,
    b: &str,
    format: CompareFormat,
    out: &mut impl Write,
) -> Result<(), String> {
    let path = format!("/api/compare{}", query(&[("a", Some(a)), ("b", Some(b))]));
    let text = http
        .get(&path, &[])
        .await
        .map_err(String::from)?
        .text()
        .await?;
    let answer: serde_json::Value =
        serde_json::from_str(&text).map_err(|error| format!("/api/compare: {error}"))?;
    let text = match format {
        CompareFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&answer).map_err(|error| error.to_string())?
        ),
        CompareFormat::Table => compare_table(&answer),
    };
    emit(out, text.as_bytes()).map(drop)
}

/// The comparison as a table: per round kind, counts, medians, the difference with
/// its 95% interval (`*` where it excludes 0), 99th percentiles.
pub fn compare_table(answer: &serde_json::Value) -> String {
    let ms = |value: &serde_json::Value| match value.as_f64() {
        Some(ms) => format!("{ms:.2}"),
        None => "-".into(),
    };
    let mut table = format!(
        "a = {} ({} reports), b = {} ({} reports); deltas are b - a, 95% bootstrap intervals\n",
        answer["a"]["name"].as_str().unwrap_or_default(),
        answer["a"]["reports"],
        answer["b"]["name"].as_str().unwrap_or_default(),
        answer["b"]["reports"],
    );
    table.push_str(&format!(
        "{:<8} {:>9} {:>9} {:>10} {:>10} {:>30} {:>10} {:>10}\n",
        "kind",
        "count a",
        "count b",
        "p50 a ms",
        "p50 b ms",
        "delta p50 ms [95% CI]",
        "p99 a ms",
        "p99 b ms"
    ));
    for kind in ["problem", "block", "reveal"] {
        let row = &answer["kinds"][kind];
        let delta = match (
            row["p50_delta_ms"].as_f64(),
            row["p50_delta_ci95_ms"].as_array(),
        ) {
            (Some(delta), Some(interval)) => format!(
                "{delta:+.2} [{:+.2}, {:+.2}]{}",
                interval[0].as_f64().unwrap_or_default(),
                interval[1].as_f64().unwrap_or_default(),
                if row["real"] == true { " *" } else { "  " }
            ),
            (Some(delta), None) => format!("{delta:+.2} [too few]  "),
            _ => "-  ".into(),
        };
        table.push_str(&format!(
            "{:<8} {:>9} {:>9} {:>10} {:>10} {:>30} {:>10} {:>10}\n",
            kind,
            row["a"]["count"].to_string(),
            row["b"]["count"].to_string(),
            ms(&row["a"]["p50_ms"]),
            ms(&row["b"]["p50_ms"]),
            delta,
            ms(&row["a"]["p99_ms"]),
            ms(&row["b"]["p99_ms"]),
        ));
    }
    table.push_str("* the interval excludes 0: a difference beyond noise\n");
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_shows_utc_time_of_day() {
        assert_eq!(clock(0), "00:00:00.000");
        assert_eq!(clock(1_700_000_000_123_456_789), "22:13:20.123");
    }

    #[test]
    fn queries_skip_empty_values_and_encode_the_rest() {
        assert_eq!(
            query(&[("run", None), ("sender", Some("1 f&x"))]),
            "?sender=1%20f%26x"
        );
        assert_eq!(query(&[("run", None)]), "");
    }
}
