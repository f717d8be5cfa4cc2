//! Ingest benchmark: the same tonic load generator against (a) a no-op
//! `PerformanceStats` server (the protocol's ceiling), (b) `perfstats serve --memory`,
//! (c) `perfstats serve` with SQLite and (d) `perfstats serve --nats` with SQLite,
//! publishing to a 3-replica JetStream stream of a 3-node NATS cluster on loopback
//! that writes every message to disk before its ack (`sync_interval: always`), and
//! (e) the same against a cluster with JetStream's default sync (every 2 min),
//! while a second `--nats` server applies each stream; each a separate process
//! on 127.0.0.1:0, interleaved a, b, c, d, a, b, c, d… so every ratio compares
//! figures of the same round. Then the time from a `--nats` ACK to the report
//! showing in the live stream of the other server (and of the same one).
//!
//! Then OTLP/gRPC logs against `ReportStats` into SQLite ([`otlp`]). Last, the
//! pinned comparison ([`pinned`]): no-op, `--memory` and SQLite each alone on one
//! CPU with the load generator alone on another (the first two this process may use).
//!
//! `cargo bench --bench ingest` (full: 3 rounds of 4 s per mode, RSS after 1,000,000
//! reports) or `cargo bench --bench ingest -- --quick` (a smoke run for CI); add
//! `--otlp` for only the OTLP section, `--pinned` for only the pinned one. It prints figures and ratios; it asserts
//! nothing about speed.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "ingest/otlp.rs"]
mod otlp;

use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::pb::performance_stats_server::{PerformanceStats, PerformanceStatsServer};
use perfstats::pb::{Ack, BatchAck, PerformanceData};
use perfstats::{Event, server};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::nats::{NatsCluster, NodeConfig};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

/// In-flight unary calls, spread over `CONNECTIONS` connections.
const UNARY_IN_FLIGHT: usize = 64;
const CONNECTIONS: usize = 4;
/// Client streams in flight, each of `STREAM_LEN` reports.
const STREAMS_IN_FLIGHT: usize = 4;
const STREAM_LEN: usize = 1_000;

struct Settings {
    rounds: usize,
    duration: Duration,
    rss_reports: usize,
}

/// The ceiling: acknowledges every report, stores nothing.
struct Noop;

#[tonic::async_trait]
impl PerformanceStats for Noop {
    async fn report_stat(&self, _: Request<PerformanceData>) -> Result<Response<Ack>, Status> {
        Ok(Response::new(Ack {
            seq: 1,
            duplicate: false,
            run: "noop".into(),
        }))
    }

    async fn report_stats(
        &self,
        request: Request<Streaming<PerformanceData>>,
    ) -> Result<Response<BatchAck>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while stream.message().await?.is_some() {
            accepted += 1;
        }
        Ok(Response::new(BatchAck {
            accepted,
            duplicates: 0,
            run: "noop".into(),
        }))
    }
}

/// Runs the no-op server in this process (the bench re-executes itself for it),
/// served the way perfstats serves (nodelay, HTTP/1 accepted).
fn noop_server_main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "noop listening on http://{}",
            listener.local_addr().unwrap()
        );
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_service(
                PerformanceStatsServer::new(Noop)
                    .max_decoding_message_size(server::MAX_GRPC_MESSAGE_BYTES),
            )
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
}

/// A server process under test; killed when dropped.
struct Target {
    name: &'static str,
    child: Child,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// `perfstats serve --db TMP --nats URLS` (its warnings about following the
    /// stream again are left out).
    fn replicated(name: &'static str, urls: &str) -> Target {
        Self::spawn(name, &["--nats", urls])
    }

    fn start(name: &'static str) -> Target {
        Self::spawn(name, &[])
    }

    /// The no-op server, `--memory`, or SQLite with `extra` arguments.
    fn spawn(name: &'static str, extra: &[&str]) -> Target {
        Self::spawn_on(name, extra, None)
    }

    /// As [`Target::spawn`], the process restricted to `cpu` if given.
    fn spawn_on(name: &'static str, extra: &[&str], cpu: Option<usize>) -> Target {
        let mut dir = None;
        let mut command = match name {
            "noop" => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.arg("--noop-server");
                command
            }
            _ => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
                command.args(["serve", "--listen", "127.0.0.1:0"]);
                if name == "memory" {
                    command.arg("--memory");
                } else {
                    let tmp = tempfile::tempdir().unwrap();
                    command.arg("--db").arg(tmp.path().join("bench.db"));
                    dir = Some(tmp);
                }
                command.args(extra);
                command
            }
        };
        if let Some(cpu) = cpu {
            // SAFETY: the closure only calls sched_setaffinity (async-signal-safe).
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || pin_to(cpu));
            }
        }
        let mut child = command
            .env("RUST_LOG", if extra.is_empty() { "warn" } else { "error" })
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let url = support::announced_url(&mut child);
        Target {
            name,
            child,
            url,
            _dir: dir,
        }
    }

    /// utime + stime of the server process, in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks_per_second()
    }

    /// (current RSS, peak RSS) in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        support::rss_mib(self.child.id())
    }

    async fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        for _ in 0..CONNECTIONS {
            let channel = Endpoint::from_shared(self.url.clone())
                .unwrap()
                .tcp_nodelay(true)
                .connect()
                .await
                .unwrap();
            channels.push(channel);
        }
        channels
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    let output = Command::new("getconf").arg("CLK_TCK").output();
    output
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One mode's figures against one server in one round.
#[derive(Clone, Copy, Default)]
struct Figures {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_report: f64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn report(sender: &str) -> PerformanceData {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    PerformanceData {
        time_unix_nano: 1_700_000_000_000_000_000 + id as i64,
        sender: sender.to_string(),
        event: Event::TransactionReceived as i32,
        message: format!("transaction {id:016x} received from peer 12D3KooW"),
        // What the Rust client sends: a UUIDv7.
        report_id: uuid::Uuid::now_v7().to_string(),
    }
}

fn percentile(sorted: &[Duration], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

/// Drives `target` for `duration` in one mode; returns its figures.
async fn drive(target: &Target, streaming: bool, duration: Duration) -> Figures {
    let channels = target.channels().await;
    let reports = Arc::new(AtomicU64::new(0));
    let cpu_before = target.cpu_seconds();
    let started = Instant::now();
    let deadline = started + duration;
    let workers = if streaming {
        STREAMS_IN_FLIGHT
    } else {
        UNARY_IN_FLIGHT
    };
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let mut stub = PerformanceStatsClient::new(channels[worker % CONNECTIONS].clone());
        let reports = reports.clone();
        let sender = format!("node{worker}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let call = Instant::now();
                if streaming {
                    let batch: Vec<_> = (0..STREAM_LEN).map(|_| report(&sender)).collect();
                    let ack = stub.report_stats(tokio_stream::iter(batch)).await.unwrap();
                    assert_eq!(ack.get_ref().accepted, STREAM_LEN as u64);
                    reports.fetch_add(STREAM_LEN as u64, Ordering::Relaxed);
                } else {
                    stub.report_stat(report(&sender)).await.unwrap();
                    reports.fetch_add(1, Ordering::Relaxed);
                }
                latencies.push(call.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = target.cpu_seconds() - cpu_before;
    latencies.sort();
    let count = reports.load(Ordering::Relaxed) as f64;
    Figures {
        per_second: count / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us_per_report: cpu * 1e6 / count.max(1.0),
    }
}

/// Sends `total` reports in streams, then returns the server's RSS (current, peak).
async fn fill(target: &Target, total: usize) -> (f64, f64) {
    let channels = target.channels().await;
    let per_worker = total / STREAMS_IN_FLIGHT;
    let mut tasks = Vec::new();
    for worker in 0..STREAMS_IN_FLIGHT {
        let mut stub = PerformanceStatsClient::new(channels[worker % CONNECTIONS].clone());
        tasks.push(tokio::spawn(async move {
            let sender = format!("node{worker}");
            let mut sent = 0;
            while sent < per_worker {
                let len = STREAM_LEN.min(per_worker - sent);
                let batch: Vec<_> = (0..len).map(|_| report(&sender)).collect();
                stub.report_stats(tokio_stream::iter(batch)).await.unwrap();
                sent += len;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    target.rss_mib()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn bench(settings: &Settings) {
    let nats = NatsCluster::start(3).await;
    let lazy_nats = NatsCluster::start_with(
        3,
        NodeConfig {
            default_sync: true,
            ..NodeConfig::default()
        },
    )
    .await;
    let targets = [
        Target::start("noop"),
        Target::start("memory"),
        Target::start("sqlite"),
        Target::replicated("nats", &nats.urls()),
        Target::replicated("nats2m", &lazy_nats.urls()),
    ];
    // The other server of each shared stream: it applies everything "nats" (or
    // "nats2m") takes.
    let other = Target::replicated("nats-b", &nats.urls());
    let lazy_other = Target::replicated("nats2m-b", &lazy_nats.urls());
    for target in [&targets[3], &targets[4], &other, &lazy_other] {
        wait_writable(&target.url).await;
    }
    println!(
        "ingest benchmark: {} round(s) of {:?} per mode; unary {UNARY_IN_FLIGHT} in flight over \
         {CONNECTIONS} connections; streams of {STREAM_LEN} reports, {STREAMS_IN_FLIGHT} in flight; \
         {} CPUs",
        settings.rounds,
        settings.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let results = compare(&targets, settings).await;
    println!(
        "\n--nats against single-node SQLite (medians of same-round ratios; nats: \
         sync_interval always, nats2m: JetStream's default sync every 2 min):"
    );
    for (mode_index, mode, index) in [
        (0, "unary", 3),
        (1, "stream", 3),
        (0, "unary", 4),
        (1, "stream", 4),
    ] {
        let (sqlite, nats) = (&results[mode_index][2], &results[mode_index][index]);
        let ratio = |get: fn(&Figures) -> f64| {
            median(
                &mut sqlite
                    .iter()
                    .zip(nats)
                    .map(|(sqlite, nats)| get(&nats.0) / get(&sqlite.0))
                    .collect::<Vec<_>>(),
            )
        };
        println!(
            "{:>6} {mode:>6}: ×{:.2} reports/s, ×{:.2} p99, ×{:.2} server CPU per report (the 3 NATS \
             servers' and the other perfstats' CPU not counted)",
            targets[index].name,
            ratio(|figures| figures.per_second),
            ratio(|figures| figures.p99_ms),
            ratio(|figures| figures.cpu_us_per_report),
        );
    }
    let samples = if settings.rounds == 1 { 200 } else { 2_000 };
    let [acked, same, elsewhere] = visibility(&targets[3].url, &other.url, samples).await;
    println!("\n{samples} reports one at a time to \"nats\", times from sending each (ms):");
    for (what, times) in [
        ("its ACK", &acked),
        ("in the other server's live stream", &elsewhere),
        ("in its own live stream", &same),
    ] {
        let times = sorted(times.clone());
        println!(
            "  {what:>34}: p50 {:.2}, p99 {:.2}",
            percentile(&times, 0.50),
            percentile(&times, 0.99)
        );
    }
    let later: Vec<Duration> = elsewhere
        .iter()
        .zip(&acked)
        .map(|(seen, acked)| seen.saturating_sub(*acked))
        .collect();
    println!(
        "  visible on the other server after the ACK (the same report): p50 {:.2}, p99 {:.2}; \
         before it in {:.0}% of reports",
        percentile(&sorted(later.clone()), 0.50),
        percentile(&sorted(later), 0.99),
        100.0
            * elsewhere
                .iter()
                .zip(&acked)
                .filter(|(seen, acked)| seen < acked)
                .count() as f64
            / samples as f64
    );
    let stream_end = support::metric(&other.url, None, "perfstats_stream_applied_seq")
        .await
        .unwrap_or(0.0) as u64;
    let reports = stored_reports(&other.url).await;
    // JetStream keeps each message id of the duplicate window (about 270 bytes an
    // id, measured on NATS 2.10–2.12 by the issue that asked for batches).
    println!(
        "\nthe \"nats\" stream holds {reports} reports in {stream_end} messages ({:.1} reports a \
         message): the duplicate window holds {:.0} ids ≈ {:.2} MB per NATS server per million \
         reports sent within it (one id a report before batches: 270 MB)",
        reports as f64 / stream_end.max(1) as f64,
        1e6 * stream_end as f64 / reports.max(1) as f64,
        270.0 * stream_end as f64 / reports.max(1) as f64,
    );
    let started = Instant::now();
    let late = Target::replicated("nats-c", &nats.urls());
    support::within(
        Duration::from_secs(600),
        "a new server to apply the whole stream",
        async {
            while (support::metric(&late.url, None, "perfstats_stream_applied_seq")
                .await
                .unwrap_or(0.0) as u64)
                < stream_end
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;
    let took = started.elapsed().as_secs_f64();
    println!(
        "\na new --nats server (SQLite) applied the whole stream, {stream_end} messages, in \
         {took:.2} s from its start: {:.0} messages/s, {:.0} reports/s",
        stream_end as f64 / took,
        stored_reports(&late.url).await as f64 / took
    );
    drop(nats);
    drop(lazy_nats);
    println!(
        "\nRSS after {} reports (fresh servers):",
        settings.rss_reports
    );
    for name in ["memory", "sqlite"] {
        let target = Target::start(name);
        let (rss, peak) = fill(&target, settings.rss_reports).await;
        println!("{name:>7}: RSS {rss:.1} MiB, peak {peak:.1} MiB");
    }
    otlp::compare(settings).await;
}

/// Drives every target in both modes, interleaved round by round, printing each
/// round's figures and then the medians; returns `results[mode][target]`: each
/// round's figures, speed and CPU a report as ratios to the first target's (the
/// no-op server) in the same round.
async fn compare(targets: &[Target], settings: &Settings) -> Vec<Vec<Vec<(Figures, f64, f64)>>> {
    println!(
        "{:>5} {:>6} {:>7} {:>12} {:>8} {:>8} {:>12} {:>9} {:>9}",
        "round",
        "mode",
        "server",
        "reports/s",
        "p50 ms",
        "p99 ms",
        "cpu µs/rep",
        "×noop/s",
        "×noop cpu"
    );
    let mut results = vec![vec![Vec::<(Figures, f64, f64)>::new(); targets.len()]; 2];
    for round in 1..=settings.rounds {
        for (mode_index, streaming) in [false, true].into_iter().enumerate() {
            let mode = if streaming { "stream" } else { "unary" };
            let mut noop = Figures::default();
            for (index, target) in targets.iter().enumerate() {
                let figures = drive(target, streaming, settings.duration).await;
                if index == 0 {
                    noop = figures;
                }
                let speed = figures.per_second / noop.per_second;
                let cpu = figures.cpu_us_per_report / noop.cpu_us_per_report.max(1e-9);
                println!(
                    "{round:>5} {mode:>6} {:>7} {:>12.0} {:>8.2} {:>8.2} {:>12.2} {:>9.2} {:>9.2}",
                    target.name,
                    figures.per_second,
                    figures.p50_ms,
                    figures.p99_ms,
                    figures.cpu_us_per_report,
                    speed,
                    cpu
                );
                results[mode_index][index].push((figures, speed, cpu));
            }
        }
    }
    println!("\nmedians over rounds (ratios are medians of same-round ratios):");
    println!(
        "{:>6} {:>7} {:>12} {:>8} {:>8} {:>12} {:>9} {:>9}",
        "mode", "server", "reports/s", "p50 ms", "p99 ms", "cpu µs/rep", "×noop/s", "×noop cpu"
    );
    for (mode_index, mode) in ["unary", "stream"].iter().enumerate() {
        for (index, target) in targets.iter().enumerate() {
            let rows = &results[mode_index][index];
            let pick = |get: fn(&(Figures, f64, f64)) -> f64| {
                median(&mut rows.iter().map(get).collect::<Vec<_>>())
            };
            println!(
                "{mode:>6} {:>7} {:>12.0} {:>8.2} {:>8.2} {:>12.2} {:>9.2} {:>9.2}",
                target.name,
                pick(|row| row.0.per_second),
                pick(|row| row.0.p50_ms),
                pick(|row| row.0.p99_ms),
                pick(|row| row.0.cpu_us_per_report),
                pick(|row| row.1),
                pick(|row| row.2),
            );
        }
    }
    results
}

/// The CPUs this process may run on (Linux), lowest first.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills the one
    // we own, CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

/// Restricts the calling thread, and every thread it starts from then on, to
/// `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and sched_setaffinity
    // only read and write the set we own (and are async-signal-safe, for pre_exec).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The same comparison (no-op, `--memory`, SQLite) with each server process alone
/// on the second CPU this process may use and the load generator alone on the
/// first (CPUs 1 and 0 on the machine of the README's figures), so that the load's CPU does not
/// compete with the server's: what a server on a host of its own would do with one
/// core.
fn pinned(settings: &Settings) {
    let cpus = allowed_cpus();
    let [load, server, ..] = cpus[..] else {
        return println!("\npinned: skipped, fewer than 2 CPUs allowed ({cpus:?})");
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            pin_to(load).expect("pin the load generator to its CPU");
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let targets = [
                    Target::spawn_on("noop", &[], Some(server)),
                    Target::spawn_on("memory", &[], Some(server)),
                    Target::spawn_on("sqlite", &[], Some(server)),
                ];
                println!(
                    "\npinned: each server alone on CPU {server}, the load generator on CPU {load}; \
                     {} round(s) of {:?} per mode",
                    settings.rounds, settings.duration
                );
                let results = compare(&targets, settings).await;
                let sqlite = &results[0][2];
                let stream = &results[1][2];
                let pick = |rows: &[(Figures, f64, f64)], get: fn(&(Figures, f64, f64)) -> f64| {
                    median(&mut rows.iter().map(get).collect::<Vec<_>>())
                };
                println!(
                    "pinned durable (SQLite) against the issue's goals: unary ×{:.2} the no-op \
                     (goal ≥ 0.7), p99 {:.2} ms (goal ≤ 5); streamed {:.2} M reports/s (goal ≥ 0.55)",
                    pick(sqlite, |row| row.1),
                    pick(sqlite, |row| row.0.p99_ms),
                    pick(stream, |row| row.0.per_second) / 1e6,
                );
            });
        });
    });
}

/// The reports the server at `url` stores, in all runs.
async fn stored_reports(url: &str) -> u64 {
    let runs: serde_json::Value = support::http()
        .get(format!("{url}/api/runs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    runs.as_array()
        .or_else(|| runs["runs"].as_array())
        .expect("/api/runs lists runs")
        .iter()
        .map(|run| run["reports"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until the `--nats` server at `url` can write to the stream.
async fn wait_writable(url: &str) {
    support::nats::reaches_the_stream(url, Duration::from_secs(60)).await
}

/// The seqs of the live stream (SSE) of the server at `url`, each with when it was
/// read, sent on `seen` from the moment `ready` fires.
async fn watch_stream(
    url: String,
    ready: tokio::sync::oneshot::Sender<()>,
    seen: tokio::sync::mpsc::UnboundedSender<(u64, Instant)>,
) {
    use futures_util::StreamExt;
    let response = support::http()
        .get(format!("{url}/api/stream"))
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = ready.send(());
    let mut body = response.bytes_stream();
    let mut pending = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(seq) = line
                .trim()
                .strip_prefix("id: ")
                .and_then(|id| id.parse().ok())
                && seen.send((seq, at)).is_err()
            {
                return;
            }
        }
    }
}

fn sorted(mut times: Vec<Duration>) -> Vec<Duration> {
    times.sort();
    times
}

/// Sends `samples` reports one at a time to `url` (a `--nats` server), timing each
/// from its sending to its ACK, to its seq showing in the live stream of `url`
/// itself and in that of `other`. Returns those three, per report in sending
/// order (sort before taking percentiles).
async fn visibility(url: &str, other: &str, samples: usize) -> [Vec<Duration>; 3] {
    let mut watchers = Vec::new();
    for server in [url, other] {
        let (ready, started) = tokio::sync::oneshot::channel();
        let (seen, receiver) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(watch_stream(server.to_string(), ready, seen));
        started.await.unwrap();
        watchers.push((receiver, task));
    }
    let mut stub = PerformanceStatsClient::connect(url.to_string())
        .await
        .unwrap();
    let mut sent = Vec::with_capacity(samples);
    let mut acked = Vec::with_capacity(samples);
    for _ in 0..samples {
        let at = Instant::now();
        let ack = stub
            .report_stat(report("visible"))
            .await
            .unwrap()
            .into_inner();
        acked.push(at.elapsed());
        sent.push((ack.seq, at));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let order: std::collections::HashMap<u64, usize> = sent
        .iter()
        .enumerate()
        .map(|(index, (seq, _))| (*seq, index))
        .collect();
    let mut seen = Vec::new();
    for (mut receiver, task) in watchers {
        let mut times = vec![None; samples];
        let mut missing = samples;
        support::within(
            Duration::from_secs(60),
            "every ACKed report to show in the live streams",
            async {
                while missing > 0 {
                    let (seq, at) = receiver.recv().await.expect("the live stream ended");
                    if let Some(index) = order.get(&seq)
                        && times[*index].is_none()
                    {
                        times[*index] = Some(at.saturating_duration_since(sent[*index].1));
                        missing -= 1;
                    }
                }
            },
        )
        .await;
        task.abort();
        seen.push(times.into_iter().map(Option::unwrap).collect::<Vec<_>>());
    }
    let elsewhere = seen.pop().unwrap();
    let same = seen.pop().unwrap();
    [acked, same, elsewhere]
}

/// `--drive URL MODE SECONDS`: only drive an already running server (for profiling
/// it with `perf record -p`), printing its figures.
async fn drive_only(url: String, mode: &str, seconds: u64) {
    let target = Target {
        name: "target",
        child: Command::new("sleep").arg("infinity").spawn().unwrap(),
        url,
        _dir: None,
    };
    let figures = drive(&target, mode == "stream", Duration::from_secs(seconds)).await;
    println!(
        "{mode}: {:.0} reports/s, p50 {:.2} ms, p99 {:.2} ms",
        figures.per_second, figures.p50_ms, figures.p99_ms
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|arg| arg == "--noop-server") {
        return noop_server_main();
    }
    if let Some(at) = args.iter().position(|arg| arg == "--drive") {
        let url = args[at + 1].clone();
        let seconds = args[at + 3].parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        return runtime.block_on(drive_only(url, &args[at + 2], seconds));
    }
    let settings = if args.iter().any(|arg| arg == "--quick") {
        Settings {
            rounds: 1,
            duration: Duration::from_millis(500),
            rss_reports: 20_000,
        }
    } else {
        Settings {
            rounds: 3,
            duration: Duration::from_secs(4),
            rss_reports: 1_000_000,
        }
    };
    if args.iter().any(|arg| arg == "--pinned") {
        return pinned(&settings);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if args.iter().any(|arg| arg == "--otlp") {
        return runtime.block_on(otlp::compare(&settings));
    }
    runtime.block_on(bench(&settings));
    drop(runtime);
    pinned(&settings);
}
