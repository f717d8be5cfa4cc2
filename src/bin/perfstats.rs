//! The `perfstats` command: `serve` runs the server; `report`, `tail`, `export`,
//! `import`, `runs`, `compare`, `sweep` and `check` talk to one. Exit codes: 0 done,
//! 1 failed (refused, unreachable, I/O; for `check`, a check failed), 2 bad usage
//! (for `check`, a bad check or an unknown run).

use clap::{Args, Parser, Subcommand};
use perfstats::client::check::{self, CheckError, CheckFormat, CheckRequest};
use perfstats::client::http::HttpClient;
use perfstats::client::import;
use perfstats::client::runs;
use perfstats::client::terminal::{self, TailFilter};
use perfstats::client::{Client, ClientTls, DEFAULT_ADDR};
use perfstats::cluster::{self as cluster, ClusterConfig};
use perfstats::labels;
use perfstats::metrics::DEFAULT_MAX_SENDER_LABELS;
use perfstats::serve::{ServeConfig, Service, TlsFiles};
use perfstats::server::connections::DEFAULT_MAX_CONNECTIONS;
use perfstats::server::{
    DEFAULT_MAX_EXPORTS, DEFAULT_MAX_STREAM_TEXT, DEFAULT_MAX_SUBSCRIBERS, LimitsConfig, Tokens,
};
use perfstats::store::Backend;
use perfstats::{Event, PerformanceData};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpListener;

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
    /// Store a file written by `export` (CSV or NDJSON) as a new run, keeping its
    /// report ids and times; reports already stored are not stored twice.
    Import(Import),
    /// List the runs (`runs --label k=v`), start one (`runs new`), label one
    /// (`runs label`).
    Runs(Runs),
    /// Compare two runs: per round kind, the medians and their difference with a
    /// 95% interval (b - a), and the 99th percentiles.
    Compare(Compare),
    /// A series of runs against one label's value: per run and round kind p50
    /// with its 95% interval and p99, flags and sync; with numeric values, how p50
    /// moves per unit.
    Sweep(Sweep),
    /// A CI gate: check a run against expectations (and a baseline); exit 0 when
    /// all pass, 1 when one fails or the server cannot answer, 2 for a bad
    /// expectation or an unknown run.
    Check(Check),
}

#[derive(Args)]
struct Sweep {
    #[command(flatten)]
    remote: Remote,
    /// The label whose value the runs differ in (e.g. netem_ms).
    #[arg(long, value_name = "LABEL")]
    by: String,
    /// Only runs with this label: k=v, or k for any value (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    /// `table`, `json` (the API's answer) or `csv` (one row a run and kind).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    format: String,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct Runs {
    #[command(subcommand)]
    action: Option<RunsAction>,
    #[command(flatten)]
    remote: Remote,
    /// Only runs with this label: k=v, or k for any value (repeatable; all must hold).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
    #[command(flatten)]
    format: RunsFormatArg,
}

#[derive(Subcommand)]
enum RunsAction {
    /// Start a new run, which becomes current, and print it.
    New {
        #[command(flatten)]
        remote: Remote,
        /// Its name (unique; not all digits).
        name: String,
        /// A label, k=v (repeatable): what was changed for this run.
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        #[command(flatten)]
        format: RunsFormatArg,
    },
    /// Add labels to a run (a key it has takes the new value) and print it.
    Label {
        #[command(flatten)]
        remote: Remote,
        /// The run (id or name).
        run: String,
        /// The labels, k=v each.
        #[arg(value_name = "K=V", required = true)]
        labels: Vec<String>,
        /// Replace all its labels with these instead of adding them.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        format: RunsFormatArg,
    },
}

#[derive(Args)]
struct RunsFormatArg {
    /// `table` or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

impl RunsFormatArg {
    fn get(&self) -> runs::RunsFormat {
        match self.format.as_str() {
            "json" => runs::RunsFormat::Json,
            _ => runs::RunsFormat::Table,
        }
    }
}

#[derive(Args)]
struct Check {
    #[command(flatten)]
    remote: Remote,
    /// The run to check (id or name).
    run: String,
    /// The run --max-regression measures against (id or name).
    #[arg(long)]
    baseline: Option<String>,
    /// METRIC OP VALUE, e.g. "block.p99 < 200ms" (repeatable; the grammar is in
    /// the README, "CI gate").
    #[arg(long, value_name = "EXPR")]
    expect: Vec<String>,
    /// KIND.STAT=P%, e.g. block.p50=10%: fails when the 95% interval of the rise
    /// lies wholly above P% of the baseline's value (repeatable; needs --baseline).
    #[arg(long, value_name = "METRIC=P%")]
    max_regression: Vec<String>,
    /// `table` (a line per check) or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Also write the outcomes as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
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

/// Where the server is, or the servers are (every client command).
#[derive(Args)]
struct Remote {
    /// The server's URL, or several servers' URLs separated by commas: `report`
    /// moves to the next after a failure worth retrying, the other commands use the
    /// first that answers.
    #[arg(long, env = "PERFSTATS_ADDR", default_value = DEFAULT_ADDR, value_name = "URL[,URL...]")]
    addr: String,
    /// Bearer token, for a server started with --token or --read-token.
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For an https:// address: the CA certificate (PEM) that signed the server's.
    #[arg(long, env = "PERFSTATS_CA")]
    ca: Option<PathBuf>,
    /// For a server with --client-ca: this client's certificate (PEM; with --key).
    #[arg(long, env = "PERFSTATS_CERT", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, env = "PERFSTATS_KEY", requires = "cert")]
    key: Option<PathBuf>,
}

impl Remote {
    fn tls(&self) -> Result<ClientTls, String> {
        ClientTls::from_files(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
    }

    fn http(&self) -> Result<HttpClient, String> {
        HttpClient::with_tls(&self.addr, self.token.clone(), &self.tls()?)
    }

    /// The gRPC client of these servers, with the token.
    fn grpc(&self) -> Result<Client, String> {
        let client = Client::connect_lazy_with_tls(&self.addr, &self.tls()?)
            .map_err(|error| format!("--addr {error}"))?;
        match &self.token {
            Some(token) => client
                .with_token(token)
                .map_err(|status| status.message().to_string()),
            None => Ok(client),
        }
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
struct Import {
    #[command(flatten)]
    remote: Remote,
    /// The file `perfstats export` wrote (CSV or NDJSON, told apart by content).
    file: PathBuf,
    /// The new run's name (default: the file's name without its extension); it
    /// must not be taken.
    #[arg(long)]
    run: Option<String>,
    /// A label of the new run, k=v (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    labels: Vec<String>,
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
    /// A label of the --new-run, k=v (repeatable; the variable takes a
    /// comma-separated list).
    #[arg(
        long = "label",
        env = "PERFSTATS_LABEL",
        value_name = "K=V",
        value_delimiter = ',',
        requires = "new_run"
    )]
    labels: Vec<String>,
    /// Require `authorization: Bearer <TOKEN>` for writes (gRPC reports, POST /send,
    /// POST /api/runs).
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Require a bearer token (this one or --token) for reads of the API too.
    #[arg(long, env = "PERFSTATS_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Label at most this many senders by name in /metrics; the rest count under sender="".
    #[arg(long, env = "PERFSTATS_METRICS_MAX_SENDERS", default_value_t = DEFAULT_MAX_SENDER_LABELS)]
    metrics_max_senders: usize,
    /// Connections at once (lowered to fit the descriptor limit, which is raised to
    /// its hard limit at start); past it, connections that have not sent a whole
    /// request yet are closed first.
    #[arg(long, env = "PERFSTATS_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Live-stream (SSE) subscribers at once; more get 503 with Retry-After.
    #[arg(long, env = "PERFSTATS_MAX_SUBSCRIBERS", default_value_t = DEFAULT_MAX_SUBSCRIBERS)]
    max_subscribers: usize,
    /// Exports being written at once; more get 503 with Retry-After.
    #[arg(long, env = "PERFSTATS_MAX_EXPORTS", default_value_t = DEFAULT_MAX_EXPORTS)]
    max_exports: usize,
    /// Bytes of text (senders and messages) all open ReportStats calls may hold
    /// together; a call past it gets RESOURCE_EXHAUSTED and stores nothing.
    #[arg(long, env = "PERFSTATS_MAX_STREAM_TEXT", default_value_t = DEFAULT_MAX_STREAM_TEXT)]
    max_stream_text: usize,
    /// A DNS name browsers may use to reach the server, besides IP addresses and
    /// localhost (repeatable; the variable takes a comma-separated list; * for any).
    #[arg(
        long,
        env = "PERFSTATS_ALLOW_HOST",
        value_name = "NAME",
        value_delimiter = ','
    )]
    allow_host: Vec<String>,
    /// Serve TLS (gRPC and HTTPS on the one port) with this certificate chain (PEM).
    #[arg(
        long,
        env = "PERFSTATS_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "PERFSTATS_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Share one replicated NATS JetStream stream with other perfstats servers,
    /// through these NATS servers (comma-separated nats://host:port). Writes go to
    /// the stream; this server applies the stream to its own --db or --memory store.
    #[arg(
        long,
        env = "PERFSTATS_NATS",
        value_name = "URLS",
        value_delimiter = ','
    )]
    nats: Vec<String>,
    /// With --nats: the stream's name (its subjects are NAME.reports and NAME.runs).
    #[arg(long, env = "PERFSTATS_NATS_STREAM", value_name = "NAME", default_value = cluster::DEFAULT_STREAM)]
    nats_stream: String,
    /// With --nats: replicas of the stream when this server makes it (default 3, or
    /// one per URL when fewer are given).
    #[arg(long, env = "PERFSTATS_NATS_REPLICAS", value_name = "N")]
    nats_replicas: Option<usize>,
    /// With --nats: how long JetStream drops a second copy of a report_id, for a
    /// stream made here (e.g. 2h, 30m, 90s).
    #[arg(long, env = "PERFSTATS_NATS_DEDUPE_WINDOW", value_name = "DURATION", default_value = "2h", value_parser = parse_duration)]
    nats_dedupe_window: Duration,
    /// With TLS: require a client certificate signed by this CA (PEM) for writes.
    #[arg(
        long,
        env = "PERFSTATS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    client_ca: Option<PathBuf>,
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
        Command::Check(check) => return run_check(check).await,
        command => run(command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("perfstats: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Carries out one command; the error is the line printed before exiting 1.
async fn run(command: Command) -> Result<(), String> {
    let out = &mut std::io::stdout();
    match command {
        Command::Serve(serve) => run_server(serve).await,
        Command::Report(report) => send_report(report).await,
        Command::Tail(tail) => {
            let filter = TailFilter {
                run: tail.run,
                sender: tail.sender,
                event: tail.event.map(|event| event.as_str_name().to_string()),
                count: tail.count,
            };
            terminal::tail(&tail.remote.http()?, &filter, out).await
        }
        Command::Export(export) => {
            let http = export.remote.http()?;
            terminal::export(&http, export.run.as_deref(), &export.format, out)
                .await
                .map(drop)
        }
        Command::Import(import) => {
            let run = import
                .run
                .or_else(|| import::default_run_name(&import.file));
            let options = import::ImportOptions {
                run: run.ok_or("--run: the file's name gives none: name the run")?,
                labels: labels::parse_all(import.labels.iter().map(String::as_str))
                    .map_err(|error| format!("--label: {error}"))?,
            };
            let (http, grpc) = (import.remote.http()?, import.remote.grpc()?);
            let progress = import::progress_wanted();
            let imported =
                import::import_file(&http, &grpc, &import.file, &options, progress).await?;
            println!("{imported}");
            Ok(())
        }
        Command::Runs(list) => match list.action {
            None => runs::list(&list.remote.http()?, &list.labels, list.format.get(), out).await,
            Some(RunsAction::New {
                remote,
                name,
                labels,
                format,
            }) => runs::start(&remote.http()?, &name, &labels, format.get(), out).await,
            Some(RunsAction::Label {
                remote,
                run,
                labels,
                replace,
                format,
            }) => runs::label(&remote.http()?, &run, &labels, replace, format.get(), out).await,
        },
        Command::Sweep(sweep) => {
            let format = match sweep.format.as_str() {
                "json" => perfstats::client::sweep::SweepFormat::Json,
                "csv" => perfstats::client::sweep::SweepFormat::Csv,
                _ => perfstats::client::sweep::SweepFormat::Table,
            };
            let http = sweep.remote.http()?;
            perfstats::client::sweep::sweep(&http, &sweep.by, &sweep.labels, format, out).await
        }
        Command::Compare(compare) => {
            let format = match compare.format.as_str() {
                "json" => terminal::CompareFormat::Json,
                _ => terminal::CompareFormat::Table,
            };
            let http = compare.remote.http()?;
            terminal::compare(&http, &compare.a, &compare.b, format, out).await
        }
        Command::Check(_) => unreachable!("main runs check, for its own exit codes"),
    }
}

/// `check`: exits 0 when every check passed, 1 when one failed (or the server
/// could not answer), 2 for a bad check or an unknown run.
async fn run_check(check: Check) -> ExitCode {
    let request = CheckRequest {
        run: check.run,
        baseline: check.baseline,
        expect: check.expect,
        max_regression: check.max_regression,
    };
    let format = match check.format.as_str() {
        "json" => CheckFormat::Json,
        _ => CheckFormat::Table,
    };
    let outcome = match check.remote.http() {
        Ok(http) => {
            let junit = check.junit.as_deref();
            check::check(&http, &request, format, junit, &mut std::io::stdout()).await
        }
        Err(message) => Err(CheckError {
            exit_code: 1,
            message,
        }),
    };
    match outcome {
        Ok(passed) => ExitCode::from(u8::from(!passed)),
        Err(error) => {
            eprintln!("perfstats: {}", error.message);
            ExitCode::from(error.exit_code)
        }
    }
}

/// `serve`: the library assembles the server; this binds and waits for a signal.
async fn run_server(serve: Serve) -> Result<(), String> {
    let listen = serve.listen;
    let service = Service::open(serve.into_config()?).await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|error| format!("cannot listen on {listen}: {error}"))?;
    let address = listener.local_addr().map_err(|error| error.to_string())?;
    println!(
        "perfstats listening on {}://{address} (run {:?})",
        service.scheme(),
        service.current_run().name
    );
    service.run(listener, shutdown_signal()).await
}

impl Serve {
    /// What the library needs to assemble the server.
    fn into_config(self) -> Result<ServeConfig, String> {
        let new_run_labels = labels::parse_all(self.labels.iter().map(String::as_str))
            .map_err(|error| format!("--label: {error}"))?;
        let backend = if self.memory {
            Backend::Memory {
                max_reports: self.max_reports,
            }
        } else {
            Backend::Sqlite(self.db)
        };
        let cluster = (!self.nats.is_empty()).then(|| {
            let mut config = ClusterConfig::new(self.nats);
            config.stream = self.nats_stream;
            config.dedupe_window = self.nats_dedupe_window;
            if let Some(replicas) = self.nats_replicas {
                config.replicas = replicas;
            }
            config
        });
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate,
                key,
                client_ca: self.client_ca,
            }),
            _ => None,
        };
        Ok(ServeConfig {
            backend,
            new_run: self.new_run,
            new_run_labels,
            tokens: Tokens {
                write: self.token,
                read: self.read_token,
            },
            metrics_max_senders: self.metrics_max_senders,
            limits: LimitsConfig {
                max_subscribers: self.max_subscribers,
                max_exports: self.max_exports,
                max_stream_text: self.max_stream_text,
                max_connections: self.max_connections,
            },
            allow_hosts: self.allow_host,
            tls,
            cluster,
        })
    }
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
    let client = report.remote.grpc()?;
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

/// A duration as `90s`, `30m`, `2h` or `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: give a unit: ms, s, m or h"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number then ms, s, m or h"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m or h")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?}: too long"))
}
