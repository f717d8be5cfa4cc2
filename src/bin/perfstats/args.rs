//! The command line as clap parses it: every command's arguments, and what
//! `serve`'s become ([`Serve::into_config`]).

use clap::{Args, Parser, Subcommand};
use perfstats::Event;
use perfstats::client::http::HttpClient;
use perfstats::client::runs;
use perfstats::client::{Client, ClientTls, DEFAULT_ADDR};
use perfstats::cluster::{self as cluster, ClusterConfig, NatsAccess};
use perfstats::labels;
use perfstats::metrics::DEFAULT_MAX_SENDER_LABELS;
use perfstats::serve::{ServeConfig, TlsFiles};
use perfstats::server::DEFAULT_MAX_ANSWER_BYTES;
use perfstats::server::connections::DEFAULT_MAX_CONNECTIONS;
use perfstats::server::{
    DEFAULT_MAX_EXPORTS, DEFAULT_MAX_STREAM_TEXT, DEFAULT_MAX_SUBSCRIBERS, LimitsConfig, Tokens,
};
use perfstats::store::Backend;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Telemetry for peer-to-peer test networks: nodes report events over gRPC, people
/// watch them on a dashboard on the same port.
#[derive(Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
pub(crate) struct Sweep {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The label whose value the runs differ in (e.g. netem_ms).
    #[arg(long, value_name = "LABEL")]
    pub(crate) by: String,
    /// Only runs with this label: k=v, or k for any value (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub(crate) labels: Vec<String>,
    /// `table`, `json` (the API's answer) or `csv` (one row a run and kind).
    #[arg(long, default_value = "table", value_parser = ["table", "json", "csv"])]
    pub(crate) format: String,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Runs {
    #[command(subcommand)]
    pub(crate) action: Option<RunsAction>,
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// Only runs with this label: k=v, or k for any value (repeatable; all must hold).
    #[arg(long = "label", value_name = "K=V")]
    pub(crate) labels: Vec<String>,
    #[command(flatten)]
    pub(crate) format: RunsFormatArg,
}

#[derive(Subcommand)]
pub(crate) enum RunsAction {
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
pub(crate) struct RunsFormatArg {
    /// `table` or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub(crate) format: String,
}

impl RunsFormatArg {
    pub(crate) fn get(&self) -> runs::RunsFormat {
        match self.format.as_str() {
            "json" => runs::RunsFormat::Json,
            _ => runs::RunsFormat::Table,
        }
    }
}

#[derive(Args)]
pub(crate) struct Check {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The run to check (id or name).
    pub(crate) run: String,
    /// The run --max-regression measures against (id or name).
    #[arg(long)]
    pub(crate) baseline: Option<String>,
    /// METRIC OP VALUE, e.g. "block.p99 < 200ms" (repeatable; the grammar is in
    /// the README, "CI gate").
    #[arg(long, value_name = "EXPR")]
    pub(crate) expect: Vec<String>,
    /// KIND.STAT=P%, e.g. block.p50=10%: fails when the 95% interval of the rise
    /// lies wholly above P% of the baseline's value (repeatable; needs --baseline).
    #[arg(long, value_name = "METRIC=P%")]
    pub(crate) max_regression: Vec<String>,
    /// `table` (a line per check) or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub(crate) format: String,
    /// Also write the outcomes as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct Compare {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The first run (id or name).
    pub(crate) a: String,
    /// The second run (id or name): deltas are b - a.
    pub(crate) b: String,
    /// `table` (to paste into a paper) or `json` (the API's answer).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub(crate) format: String,
}

/// Where the server is, or the servers are (every client command).
#[derive(Args)]
pub(crate) struct Remote {
    /// The server's URL, or several servers' URLs separated by commas: `report`
    /// moves to the next after a failure worth retrying, the other commands use the
    /// first that answers.
    #[arg(long, env = "PERFSTATS_ADDR", default_value = DEFAULT_ADDR, value_name = "URL[,URL...]")]
    pub(crate) addr: String,
    /// Bearer token, for a server started with --token or --read-token.
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// For an https:// address: the CA certificate (PEM) that signed the server's.
    #[arg(long, env = "PERFSTATS_CA")]
    pub(crate) ca: Option<PathBuf>,
    /// For a server with --client-ca: this client's certificate (PEM; with --key).
    #[arg(long, env = "PERFSTATS_CERT", requires = "key")]
    pub(crate) cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(long, env = "PERFSTATS_KEY", requires = "cert")]
    pub(crate) key: Option<PathBuf>,
}

impl Remote {
    pub(crate) fn tls(&self) -> Result<ClientTls, String> {
        ClientTls::from_files(
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
    }

    pub(crate) fn http(&self) -> Result<HttpClient, String> {
        HttpClient::with_tls(&self.addr, self.token.clone(), &self.tls()?)
    }

    /// The gRPC client of these servers, with the token.
    pub(crate) fn grpc(&self) -> Result<Client, String> {
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
pub(crate) struct Tail {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The run (id or name); default: the current one.
    #[arg(long)]
    pub(crate) run: Option<String>,
    /// Only this sender's reports.
    #[arg(long)]
    pub(crate) sender: Option<String>,
    /// Only this event (e.g. new-block-received).
    #[arg(long)]
    pub(crate) event: Option<Event>,
    /// Stop after this many reports (default: follow until interrupted).
    #[arg(long)]
    pub(crate) count: Option<u64>,
}

#[derive(Args)]
pub(crate) struct Export {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The run (id or name); default: the current one.
    #[arg(long)]
    pub(crate) run: Option<String>,
    /// csv or ndjson.
    #[arg(long, default_value = "csv", value_parser = ["csv", "ndjson"])]
    pub(crate) format: String,
}

#[derive(Args)]
pub(crate) struct Import {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The file `perfstats export` wrote (CSV or NDJSON, told apart by content).
    pub(crate) file: PathBuf,
    /// The new run's name (default: the file's name without its extension); it
    /// must not be taken.
    #[arg(long)]
    pub(crate) run: Option<String>,
    /// A label of the new run, k=v (repeatable).
    #[arg(long = "label", value_name = "K=V")]
    pub(crate) labels: Vec<String>,
}

#[derive(Args)]
pub(crate) struct Serve {
    /// Address to listen on; use 0.0.0.0:12345 to accept other containers.
    #[arg(long, env = "PERFSTATS_LISTEN", default_value = "127.0.0.1:12345")]
    pub(crate) listen: SocketAddr,
    /// SQLite database file (created when missing).
    #[arg(long, env = "PERFSTATS_DB", default_value = "perfstats.db")]
    pub(crate) db: PathBuf,
    /// Keep reports in RAM only, instead of in the database.
    #[arg(long, env = "PERFSTATS_MEMORY", conflicts_with = "db")]
    pub(crate) memory: bool,
    /// With --memory: keep at most this many reports, evicting the oldest.
    #[arg(long, env = "PERFSTATS_MAX_REPORTS", default_value_t = 1_000_000)]
    pub(crate) max_reports: usize,
    /// Start a new run with this name instead of continuing the latest one.
    #[arg(long, env = "PERFSTATS_NEW_RUN")]
    pub(crate) new_run: Option<String>,
    /// A label of the --new-run, k=v (repeatable).
    #[arg(long = "label", value_name = "K=V", requires = "new_run")]
    pub(crate) labels: Vec<String>,
    /// Require `authorization: Bearer <TOKEN>` for writes (gRPC reports, POST /send,
    /// POST /api/runs).
    #[arg(long, env = "PERFSTATS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Require a bearer token (this one or --token) for reads of the API too.
    #[arg(long, env = "PERFSTATS_READ_TOKEN", hide_env_values = true)]
    pub(crate) read_token: Option<String>,
    /// Label at most this many senders by name in /metrics; the rest count under sender="".
    #[arg(long, env = "PERFSTATS_METRICS_MAX_SENDERS", default_value_t = DEFAULT_MAX_SENDER_LABELS)]
    pub(crate) metrics_max_senders: usize,
    /// Connections at once (lowered to fit the descriptor limit, which is raised to
    /// its hard limit at start); past it, connections that have not sent a whole
    /// request yet are closed first.
    #[arg(long, env = "PERFSTATS_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub(crate) max_connections: usize,
    /// Live-stream (SSE) subscribers at once; more get 503 with Retry-After.
    #[arg(long, env = "PERFSTATS_MAX_SUBSCRIBERS", default_value_t = DEFAULT_MAX_SUBSCRIBERS)]
    pub(crate) max_subscribers: usize,
    /// Exports being written at once; more get 503 with Retry-After.
    #[arg(long, env = "PERFSTATS_MAX_EXPORTS", default_value_t = DEFAULT_MAX_EXPORTS)]
    pub(crate) max_exports: usize,
    /// Bytes all open ReportStats calls may hold together for their reports (each
    /// report's structure, id, sender and message); a call past it gets
    /// RESOURCE_EXHAUSTED and stores nothing.
    #[arg(long, env = "PERFSTATS_MAX_STREAM_TEXT", default_value_t = DEFAULT_MAX_STREAM_TEXT)]
    pub(crate) max_stream_text: usize,
    /// Bytes of JSON answers (/api/…) being written at once, so that clients that
    /// do not read cannot make the server hold more; past it, 503 with Retry-After.
    #[arg(
        long,
        env = "PERFSTATS_MAX_ANSWER_BYTES",
        default_value_t = DEFAULT_MAX_ANSWER_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub(crate) max_answer_bytes: usize,
    /// A DNS name browsers may use to reach the server, besides IP addresses and
    /// localhost (repeatable; the variable takes a comma-separated list; * for any).
    #[arg(
        long,
        env = "PERFSTATS_ALLOW_HOST",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub(crate) allow_host: Vec<String>,
    /// Serve TLS (gRPC and HTTPS on the one port) with this certificate chain (PEM).
    #[arg(
        long,
        env = "PERFSTATS_TLS_CERT",
        value_name = "PEM",
        requires = "tls_key"
    )]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(
        long,
        env = "PERFSTATS_TLS_KEY",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub(crate) tls_key: Option<PathBuf>,
    /// Share one replicated NATS JetStream stream with other perfstats servers,
    /// through these NATS servers (comma-separated nats://host:port). Writes go to
    /// the stream; this server applies the stream to its own --db or --memory store.
    #[arg(
        long,
        env = "PERFSTATS_NATS",
        value_name = "URLS",
        value_delimiter = ','
    )]
    pub(crate) nats: Vec<String>,
    /// With --nats: the stream's name (its subjects are NAME.reports and NAME.runs).
    #[arg(long, env = "PERFSTATS_NATS_STREAM", value_name = "NAME", default_value = cluster::DEFAULT_STREAM)]
    pub(crate) nats_stream: String,
    /// With --nats: replicas of the stream when this server makes it (default 3, or
    /// one per URL when fewer are given).
    #[arg(long, env = "PERFSTATS_NATS_REPLICAS", value_name = "N")]
    pub(crate) nats_replicas: Option<usize>,
    /// With --nats: how long JetStream drops a second copy of a message (one
    /// holds many reports), for a stream made here (e.g. 2m, 90s). The store
    /// drops a second copy of a report_id whenever it comes.
    #[arg(long, env = "PERFSTATS_NATS_DEDUPE_WINDOW", value_name = "DURATION", default_value = "2m", value_parser = parse_duration)]
    pub(crate) nats_dedupe_window: Duration,
    /// With --nats: reports of all calls queued or awaiting being applied here at
    /// once; past it a write answers RESOURCE_EXHAUSTED (retryable).
    #[arg(long, env = "PERFSTATS_NATS_MAX_AWAITING", value_name = "REPORTS", default_value_t = cluster::DEFAULT_MAX_AWAITING, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 31))]
    pub(crate) nats_max_awaiting: usize,
    /// With --nats: connect to NATS over TLS, verifying its certificates against
    /// this CA (PEM); TLS is then required, never a fallback to plaintext.
    #[arg(long, env = "PERFSTATS_NATS_CA", requires = "nats", value_name = "PEM")]
    pub(crate) nats_ca: Option<PathBuf>,
    /// With --nats-ca: this server's client certificate (PEM), for NATS servers
    /// that verify clients' certificates (with --nats-key).
    #[arg(
        long,
        env = "PERFSTATS_NATS_CERT",
        requires = "nats",
        value_name = "PEM"
    )]
    pub(crate) nats_cert: Option<PathBuf>,
    /// The private key (PEM) of --nats-cert.
    #[arg(
        long,
        env = "PERFSTATS_NATS_KEY",
        requires = "nats",
        value_name = "PEM"
    )]
    pub(crate) nats_key: Option<PathBuf>,
    /// With --nats: a NATS credentials file (a user JWT and its NKey seed).
    #[arg(
        long,
        env = "PERFSTATS_NATS_CREDS",
        requires = "nats",
        value_name = "FILE"
    )]
    pub(crate) nats_creds: Option<PathBuf>,
    /// With --nats: the NATS user (with --nats-password).
    #[arg(
        long,
        env = "PERFSTATS_NATS_USER",
        requires = "nats",
        value_name = "USER"
    )]
    pub(crate) nats_user: Option<String>,
    /// The password of --nats-user. Prefer the variable: a flag's value shows in ps.
    #[arg(
        long,
        env = "PERFSTATS_NATS_PASSWORD",
        requires = "nats",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub(crate) nats_password: Option<String>,
    /// With --nats: a NATS authorization token. Prefer the variable: a flag's value
    /// shows in ps.
    #[arg(
        long,
        env = "PERFSTATS_NATS_TOKEN",
        requires = "nats",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub(crate) nats_token: Option<String>,
    /// With TLS: require a client certificate signed by this CA (PEM) for writes.
    #[arg(
        long,
        env = "PERFSTATS_CLIENT_CA",
        value_name = "PEM",
        requires = "tls_cert"
    )]
    pub(crate) client_ca: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct Report {
    #[command(flatten)]
    pub(crate) remote: Remote,
    /// The reporting node, e.g. its container name.
    #[arg(long)]
    pub(crate) sender: String,
    /// The event: new-block-received, NEW_BLOCK_RECEIVED, EVENT_NEW_BLOCK_RECEIVED,
    /// Event_NewBlockReceived or 83.
    #[arg(long)]
    pub(crate) event: Event,
    /// Free text about the event (required, at most 4 KiB).
    #[arg(long)]
    pub(crate) message: String,
    /// When it happened, in Unix nanoseconds (default: the server's receive time).
    #[arg(long, default_value_t = 0)]
    pub(crate) time: i64,
}

impl Serve {
    /// What the library needs to assemble the server.
    pub(crate) fn into_config(self) -> Result<ServeConfig, String> {
        let new_run_labels = labels::parse_all(self.labels.iter().map(String::as_str))
            .map_err(|error| format!("--label: {error}"))?;
        let backend = if self.memory {
            Backend::Memory {
                max_reports: self.max_reports,
            }
        } else {
            Backend::Sqlite(self.db)
        };
        let access = NatsAccess {
            ca: self.nats_ca,
            cert: self.nats_cert,
            key: self.nats_key,
            creds: self.nats_creds,
            user: self.nats_user,
            password: self.nats_password,
            token: self.nats_token,
        };
        access.check()?;
        let cluster = (!self.nats.is_empty()).then(|| {
            let mut config = ClusterConfig::new(self.nats);
            config.stream = self.nats_stream;
            config.dedupe_window = self.nats_dedupe_window;
            config.max_awaiting = self.nats_max_awaiting;
            if let Some(replicas) = self.nats_replicas {
                config.replicas = replicas;
            }
            config.access = access;
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
                max_answer_bytes: self.max_answer_bytes,
                max_connections: self.max_connections,
            },
            allow_hosts: self.allow_host,
            tls,
            cluster,
        })
    }
}

/// A duration as `90s`, `30m`, `2h` or `500ms`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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
