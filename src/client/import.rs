//! `perfstats import`: a run written by `perfstats export` (CSV or NDJSON) stored
//! as a new run on a server. The file is read twice: once to check every report
//! (a bad file fails naming its line and field before anything is stored) and count
//! them, then to send them. The run is started with `POST /api/runs` (a name taken
//! fails: it may have been imported before), then the reports go through
//! `ReportStats` in bounded batches, one after another so they keep their order,
//! with their original times and report ids: the imported run's analysis is the
//! original's, and a report already stored (a second import) is acknowledged as a
//! duplicate and not stored again.
//!
//! The server puts reports into its current run: reports other nodes send to it
//! during an import go into the imported run too, so import into a quiet server.
//! After the last batch the run's report count is checked against what was stored.

mod parse;

pub use parse::{CSV_HEADER, ExportFormat, ExportReader, ParseError};

use super::http::HttpClient;
use super::{Backoff, Client, RetryPolicy};
use crate::labels::Labels;
use crate::pb::PerformanceData;
use hyper::Method;
use std::fs::File;
use std::io::{BufReader, IsTerminal};
use std::path::Path;
use std::time::{Duration, Instant};

/// Reports sent in one `ReportStats` call at most.
pub const BATCH_REPORTS: usize = 10_000;
/// Bytes of text (senders, messages, ids) sent in one call at most.
pub const BATCH_TEXT_BYTES: usize = 4 << 20;

/// How a batch is retried: patiently (the same report ids make retries safe), each
/// attempt allowed a minute to be stored.
fn import_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 10,
        backoff: Backoff::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        },
        attempt_timeout: Some(Duration::from_secs(60)),
    }
}

/// What to import and as what.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The new run's name.
    pub run: String,
    /// The new run's labels (`--label k=v`).
    pub labels: Labels,
}

/// What an import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The run started for it.
    pub run: String,
    /// The format the file was in.
    pub format: ExportFormat,
    /// Reports in the file.
    pub read: u64,
    /// Reports newly stored.
    pub stored: u64,
    /// Reports the server held already (their ids were stored): not stored again.
    pub duplicates: u64,
}

impl std::fmt::Display for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} reports into run {} ({} already stored: duplicates)",
            self.stored, self.run, self.duplicates
        )
    }
}

/// The default run name for a file: its name without the extension.
pub fn default_run_name(path: &Path) -> Option<String> {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.trim().is_empty())
}

/// The reports of the export at `path`, one by one.
fn open(path: &Path) -> Result<ExportReader<BufReader<File>>, String> {
    let file = File::open(path).map_err(|error| format!("{}: {error}", path.display()))?;
    ExportReader::new(BufReader::with_capacity(1 << 20, file))
        .map_err(|error| format!("{}: {error}", path.display()))
}

/// Reads the whole export at `path`, checking every report; its format and count.
pub fn check_file(path: &Path) -> Result<(ExportFormat, u64), String> {
    let mut reader = open(path)?;
    let format = reader.format();
    let mut count = 0;
    for report in &mut reader {
        report.map_err(|error| format!("{}: {error}", path.display()))?;
        count += 1;
    }
    Ok((format, count))
}

/// The body of `POST /api/runs` that starts the imported run.
fn new_run_body(options: &ImportOptions) -> serde_json::Value {
    serde_json::json!({ "name": options.run, "labels": options.labels })
}

/// Imports the export at `path` into a new run on the server `http` and `grpc`
/// reach (the same server, or the same list of servers): checks the file, starts
/// the run, sends the reports in batches and checks the run holds what was stored.
/// With `progress`, a line on stderr tells how far it is. Errors are one line
/// (naming the file's line and field for a malformed file).
pub async fn import_file(
    http: &HttpClient,
    grpc: &Client,
    path: &Path,
    options: &ImportOptions,
    progress: bool,
) -> Result<Imported, String> {
    let (format, total) = check_file(path)?;
    start_run(http, options).await?;
    let grpc = grpc.clone().with_policy(import_policy());
    let mut imported = Imported {
        run: options.run.clone(),
        format,
        read: 0,
        stored: 0,
        duplicates: 0,
    };
    let started = Instant::now();
    let mut reports = open(path)?;
    let read_failed = |error: ParseError| format!("{}: {error}", path.display());
    let mut batch = next_batch(&mut reports).map_err(read_failed)?;
    while !batch.is_empty() {
        let sent = batch.len() as u64;
        // The next batch is read while this one is sent (the calls stay one at a time).
        let (ack, next) = tokio::join!(grpc.send_batch_with_retries(batch), async {
            next_batch(&mut reports)
        });
        let ack = ack.map_err(|status| {
            format!(
                "after {} of {total} reports: {:?}: {}",
                imported.read,
                status.code(),
                status.message()
            )
        })?;
        batch = next.map_err(read_failed)?;
        // A batch with no duplicate names the run its first report went into.
        if ack.duplicates == 0 && ack.run != options.run {
            return Err(format!(
                "the server stored the reports {} to {} in run {:?}, not {:?}: another run \
                 was started during the import",
                imported.read + 1,
                imported.read + sent,
                ack.run,
                options.run,
            ));
        }
        imported.read += sent;
        imported.stored += ack.accepted;
        imported.duplicates += ack.duplicates;
        if progress {
            let rate = imported.read as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\rimported {} of {total} reports ({rate:.0} reports/s)",
                imported.read
            );
        }
    }
    if progress {
        eprintln!();
    }
    check_run(http, &imported).await?;
    Ok(imported)
}

/// The next batch: up to [`BATCH_REPORTS`] reports and [`BATCH_TEXT_BYTES`] of text.
fn next_batch(
    reports: &mut impl Iterator<Item = Result<PerformanceData, ParseError>>,
) -> Result<Vec<PerformanceData>, ParseError> {
    let mut batch = Vec::new();
    let mut text = 0;
    while batch.len() < BATCH_REPORTS && text < BATCH_TEXT_BYTES {
        let Some(report) = reports.next().transpose()? else {
            break;
        };
        text += report.sender.len() + report.message.len() + report.report_id.len();
        batch.push(report);
    }
    Ok(batch)
}

/// Starts the run; a name taken says so.
async fn start_run(http: &HttpClient, options: &ImportOptions) -> Result<(), String> {
    match http
        .send_json(Method::POST, "/api/runs", &new_run_body(options))
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if error.status == Some(409) => Err(format!(
            "a run named {:?} exists already on the server (imported before?): \
             name another with --run",
            options.run
        )),
        Err(error) => Err(format!("starting run {:?}: {error}", options.run)),
    }
}

/// Checks the run holds exactly what this import stored (another client reporting
/// to the server meanwhile would have added to it). A server sharing a stream
/// shows its reports a moment after acknowledging them: it is asked a few times.
async fn check_run(http: &HttpClient, imported: &Imported) -> Result<(), String> {
    let mut held = 0;
    for attempt in 0..10 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let text = http
            .get("/api/runs", &[])
            .await
            .map_err(String::from)?
            .text()
            .await?;
        let runs: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|error| format!("/api/runs: {error}"))?;
        // A memory server past its bound counts what it evicted apart.
        held = runs
            .iter()
            .find(|run| run["name"] == imported.run.as_str())
            .and_then(|run| Some(run["reports"].as_u64()? + run["evicted"].as_u64().unwrap_or(0)))
            .ok_or_else(|| format!("/api/runs does not list run {:?}", imported.run))?;
        if held >= imported.stored {
            break;
        }
    }
    // A batch sent again after its answer was lost gets its own reports back as
    // duplicates, though they are in this run: up to that many more is no stranger's.
    if (imported.stored..=imported.stored + imported.duplicates).contains(&held) {
        return Ok(());
    }
    Err(format!(
        "{imported}, but the run holds {held}: other reports reached the server during the \
         import (import into a quiet server)"
    ))
}

/// Whether to show progress: when stderr is a terminal.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}
