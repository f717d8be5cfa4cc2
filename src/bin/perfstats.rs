//! The `perfstats` command: `serve` runs the server; `report`, `tail`, `export` and
//! `runs` talk to one. Exit codes: 0 done, 1 failed (refused, unreachable, I/O),
//! 2 bad usage.

use clap::{Args, Parser, Subcommand};
use perfstats::client::http::HttpClient;
use perfstats::client::terminal::{self, TailFilter};
use perfstats::client::{Client, DEFAULT_ADDR};
use perfstats::metrics::{DEFAULT_MAX_SENDER_LABELS, Metrics};
use perfstats::server::{Options, Tokens};
use perfstats::store::{Backend, Store, StoreConfig};
use perfstats::{Event, PerformanceData};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long shutdown may take before the process gives up on open connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Telemetry for peer-to-peer test networks: nodes report events over gRPC, people
/// watch them on a dashboard on the same port.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (gRPC, dashboard and HTTP API on one port).
    Serve(Serve),
    /// Send one report through the retry policy; exits non-zero with the server's
    /// error when it is refused.
    Report(Report),
    /// Follow the live stream, one line per report (resumes after a server restart).
    Tail(Tail),
    /// Write a run to stdout as CSV or NDJSON.
    Export(Export),
    /// List the runs.
    Runs(Remote),
    /// Compare two runs: per round kind, the medians and their difference with a
    /// 95% interval (b - a), and the 99th percentiles.
    Compare(Compare),
}

#[derive(Args)]
struct Compare {
    #[command(flatten)]
    remote: Remote,
    /// The first run (id or name).
    a: String,
    /// The second run (id or name): deltas are b - a.
    b: String,
    /// `table` (to paste into a paper) or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// Where the server is (every client command).
#[derive(Args)]
struct Remote {
    /// The server's URL.
    #[arg(long, env = "PERFSTATS_ADDR", default_value = DEFAULT_ADDR)]
    addr: String,
    /// Bearer token, for a server started with --token or --read-token.
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Remote {
    fn http(&self) -> HttpClient {
        HttpClient::new(&self.addr, self.token.clone())
    }
}

#[derive(Args)]
struct Tail {
    #[command(flatten)]
    remote: Remote,
    /// The run (id or name); default: the current one.
    #[arg(long)]
    run: Option<String>,
    /// Only this sender's reports.
    #[arg(long)]
    sender: Option<String>,
    /// Only this event (e.g. new-block-received).
    #[arg(long)]
    event: Option<Event>,
    /// Stop after this many reports (default: follow until interrupted).
    #[arg(long)]
    count: Option<u64>,
}

#[derive(Args)]
struct Export {
    #[command(flatten)]
    remote: Remote,
    /// The run (id or name); default: the current one.
    #[arg(long)]
    run: Option<String>,
    /// csv or ndjson.
    #[arg(long, default_value = "csv", value_parser = ["csv", "ndjson"])]
    format: String,
}

#[derive(Args)]
struct Serve {
    /// Address to listen on; use 0.0.0.0:12345 to accept other containers.
    #[arg(long, env = "PERFSTATS_LISTEN", default_value = "127.0.0.1:12345")]
    listen: SocketAddr,
    /// SQLite database file (created when missing).
    #[arg(long, env = "PERFSTATS_DB", default_value = "perfstats.db")]
    db: PathBuf,
    /// Keep reports in RAM only, instead of in the database.
    #[arg(long, env = "PERFSTATS_MEMORY", conflicts_with = "db")]
    memory: bool,
    /// With --memory: keep at most this many reports, evicting the oldest.
    #[arg(long, env = "PERFSTATS_MAX_REPORTS", default_value_t = 1_000_000)]
    max_reports: usize,
    /// Start a new run with this name instead of continuing the latest one.
    #[arg(long, env = "PERFSTATS_NEW_RUN")]
    new_run: Option<String>,
    /// Require `authorization: Bearer <TOKEN>` for writes (gRPC reports, POST /send,
    /// POST /api/runs).
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Require a bearer token (this one or --token) for reads of the API too.
    #[arg(long, env = "PERFSTATS_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Label at most this many senders by name in /metrics; the rest count as "other".
    #[arg(long, env = "PERFSTATS_METRICS_MAX_SENDERS", default_value_t = DEFAULT_MAX_SENDER_LABELS)]
    metrics_max_senders: usize,
}

#[derive(Args)]
struct Report {
    #[command(flatten)]
    remote: Remote,
    /// The reporting node, e.g. its container name.
    #[arg(long)]
    sender: String,
    /// The event: new-block-received, NEW_BLOCK_RECEIVED, EVENT_NEW_BLOCK_RECEIVED,
    /// Event_NewBlockReceived or 83.
    #[arg(long)]
    event: Event,
    /// Free text about the event (required, at most 4 KiB).
    #[arg(long)]
    message: String,
    /// When it happened, in Unix nanoseconds (default: the server's receive time).
    #[arg(long, default_value_t = 0)]
    time: i64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let outcome = match Cli::parse().command {
        Command::Serve(serve) => run_server(serve).await,
        Command::Report(report) => send_report(report).await,
        Command::Tail(tail) => {
            let filter = TailFilter {
                run: tail.run,
                sender: tail.sender,
                event: tail.event.map(|event| event.as_str_name().to_string()),
                count: tail.count,
            };
            terminal::tail(&tail.remote.http(), &filter, &mut std::io::stdout()).await
        }
        Command::Export(export) => {
            let out = &mut std::io::stdout();
            terminal::export(
                &export.remote.http(),
                export.run.as_deref(),
                &export.format,
                out,
            )
            .await
            .map(drop)
        }
        Command::Runs(remote) => terminal::runs(&remote.http(), &mut std::io::stdout()).await,
        Command::Compare(compare) => {
            let format = match compare.format.as_str() {
                "json" => terminal::CompareFormat::Json,
                _ => terminal::CompareFormat::Table,
            };
            let out = &mut std::io::stdout();
            terminal::compare(&compare.remote.http(), &compare.a, &compare.b, format, out).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("perfstats: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(serve: Serve) -> Result<(), String> {
    let backend = if serve.memory {
        Backend::Memory {
            max_reports: serve.max_reports,
        }
    } else {
        Backend::Sqlite(serve.db)
    };
    let metrics = Arc::new(Metrics::new(serve.metrics_max_senders));
    let store = Store::open(StoreConfig {
        backend,
        new_run: serve.new_run,
        observer: metrics.clone(),
    })
    .map_err(|error| error.to_string())?;
    let listener = TcpListener::bind(serve.listen)
        .await
        .map_err(|error| format!("cannot listen on {}: {error}", serve.listen))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    let run = store.current_run();
    println!(
        "perfstats listening on http://{address} (run {:?})",
        run.name
    );
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = Options {
        tokens: Tokens {
            write: serve.token.filter(|token| !token.is_empty()),
            read: serve.read_token.filter(|token| !token.is_empty()),
        },
        metrics,
    };
    let server = perfstats::server::run(listener, store, options, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served.map_err(|error| error.to_string()),
        () = shutdown_signal() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests and storing what is queued");
    let _ = stopping.send(());
    tokio::time::timeout(SHUTDOWN_GRACE, server)
        .await
        .map_err(|_| format!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting"))?
        .map_err(|error| error.to_string())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

async fn send_report(report: Report) -> Result<(), String> {
    let addr = &report.remote.addr;
    let mut client =
        Client::connect_lazy(addr).map_err(|error| format!("--addr {addr:?}: {error}"))?;
    if let Some(token) = &report.remote.token {
        client = client
            .with_token(token)
            .map_err(|status| status.message().to_string())?;
    }
    let data = PerformanceData::new(report.time, report.sender, report.event, report.message);
    let ack = client
        .send_performance_stat_with_retries(data)
        .await
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))?;
    println!(
        "seq={} run={} duplicate={}",
        ack.seq, ack.run, ack.duplicate
    );
    Ok(())
}
