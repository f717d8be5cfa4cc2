//! Long-run benchmark: one run of many reports (10,000,000 by default; 1,000,000
//! with `--quick`, as CI runs it) in a real `perfstats serve` with SQLite, then the
//! figures that must not depend on the run's length: each read's p50/p95 over HTTP,
//! the server's RSS with the reads going on, the time a restart takes to serve the
//! dashboard again, and what keeping the analysis current costs per report at
//! commit (timed in this process over the same reports); then two such runs
//! compared, and a sweep across them and 48 short runs.
//!
//! The analysis's heap is measured exactly in this process, by a counting global
//! allocator, over the same reports and over reports of nodes with no authority
//! (`-- --analysis` prints only those in-process figures).
//!
//! `cargo bench --bench long_run [-- --quick | -- REPORTS] [-- --analysis]`. Prints
//! figures; asserts nothing about speed.

#[path = "../tests/support/mod.rs"]
mod support;

use perfstats::Event;
use perfstats::analysis::live::LiveAnalysis;
use perfstats::pb::PerformanceData;
use perfstats::pb::performance_stats_client::PerformanceStatsClient;
use perfstats::report::Report;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting the bytes allocated and not yet freed: as asked
/// (`LIVE_BYTES`), and as glibc's malloc takes them (`LIVE_CHUNK_BYTES`: an 8-byte
/// header, 16-byte granules, 32 bytes at least).
struct CountingAllocator;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_CHUNK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn chunk(size: usize) -> usize {
    ((size + 8).div_ceil(16) * 16).max(32)
}

fn counted(layout: Layout, sign: isize) {
    let size = layout.size() as isize * sign;
    LIVE_BYTES.fetch_add(size as usize, Ordering::Relaxed);
    LIVE_CHUNK_BYTES.fetch_add(
        (chunk(layout.size()) as isize * sign) as usize,
        Ordering::Relaxed,
    );
}

// SAFETY: every call is passed on to `System` unchanged; only counted beside.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            counted(layout, 1);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(pointer, layout) };
        counted(layout, -1);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        let moved = unsafe { System.realloc(pointer, layout, size) };
        if !moved.is_null() {
            counted(layout, -1);
            // SAFETY: `size` was a valid size for `layout`'s alignment (the caller's).
            counted(
                unsafe { Layout::from_size_align_unchecked(size, layout.align()) },
                1,
            );
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Live heap bytes now: (as asked, as malloc chunks).
fn live_bytes() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_CHUNK_BYTES.load(Ordering::Relaxed),
    )
}

/// Prints what `analysis` holds, built over `reports` reports since the heap held
/// `before`: exactly (the allocator's count), and by part (its own estimate).
fn print_heap(what: &str, analysis: &LiveAnalysis, reports: usize, before: (usize, usize)) {
    let now = live_bytes();
    let (asked, chunks) = (now.0 - before.0, now.1 - before.1);
    let per = |bytes: usize| bytes as f64 / reports as f64;
    println!(
        "  analysis heap, {what}: {:.2} B a report ({:.1} MiB; {:.2} B a report in malloc chunks)",
        per(asked),
        asked as f64 / 1048576.0,
        per(chunks)
    );
    let parts: Vec<String> = analysis
        .heap_parts()
        .into_iter()
        .filter(|(_, bytes)| *bytes > 0)
        .map(|(part, bytes)| format!("{part} {:.2}", per(bytes)))
        .collect();
    println!("    by part (estimated, B a report): {}", parts.join(", "));
}

/// Nodes besides the authority `ra`.
const NODES: usize = 20;
/// Reports per `ReportStats` call, and calls in flight.
const BATCH: usize = 50_000;
const IN_FLIGHT: usize = 2;
/// Calls per read whose latencies are summarised.
const CALLS: usize = 40;
const MS: i64 = 1_000_000;

/// The simulated network: `ra` and nodes `n00`–`n19` sync, then one round every
/// 100 ms (problem, reveal, winners, block: 83 reports). One round in 200 a node
/// misses the block; one in 50 a node names another winner; one in 100 a node's
/// block report arrives before the authority's send.
struct Network {
    rng: StdRng,
    clock: i64,
    round: u64,
}

impl Network {
    fn new() -> Network {
        Network {
            rng: StdRng::seed_from_u64(7),
            clock: 1_700_000_000_000_000_000,
            round: 0,
        }
    }

    fn node(index: usize) -> String {
        format!("n{index:02}")
    }

    fn start(&mut self, out: &mut Vec<PerformanceData>) {
        let phases = [
            Event::Libp2pNodeIdKnown,
            Event::FirstPeerConnected,
            Event::RaConnected,
            Event::InitialSyncChaindbReceived,
            Event::InitialSyncChaindbVerified,
            Event::InitialSyncCompleted,
        ];
        for index in 0..=NODES {
            let sender = if index == NODES {
                "ra".to_string()
            } else {
                Self::node(index)
            };
            let mut at = self.clock;
            for phase in phases {
                at += self.rng.random_range(10..300) * MS;
                out.push(PerformanceData::new(at, &sender, phase, "sync"));
            }
        }
        self.clock += 10_000 * MS;
    }

    fn round(&mut self, out: &mut Vec<PerformanceData>) {
        self.round += 1;
        let (round, t) = (self.round, self.clock);
        let early = round % 100 == 0;
        out.push(PerformanceData::new(
            t,
            "ra",
            Event::RaNewProblemSent,
            format!("problem {round}"),
        ));
        for node in 0..NODES {
            let at = t + self.rng.random_range(5..40) * MS;
            out.push(PerformanceData::new(
                at,
                Self::node(node),
                Event::SimtaskReceived,
                "task",
            ));
        }
        out.push(PerformanceData::new(
            t + 40 * MS,
            "ra",
            Event::RaCommitRevealSent,
            format!("reveal {round}"),
        ));
        for node in 0..NODES {
            let at = t + self.rng.random_range(45..78) * MS;
            out.push(PerformanceData::new(
                at,
                Self::node(node),
                Event::RaCommitRevealed,
                "reveal",
            ));
            let winner = if round % 50 == 0 && node == 3 {
                "n01"
            } else {
                "n00"
            };
            out.push(PerformanceData::new(
                at + 2 * MS,
                Self::node(node),
                Event::BlockWinnerFound,
                winner,
            ));
        }
        let block = PerformanceData::new(
            t + 80 * MS,
            "ra",
            Event::RaNewBlockSent,
            format!("block {round}"),
        );
        if !early {
            out.push(block.clone());
        }
        for node in 0..NODES {
            if round % 200 == 0 && node == (round / 200) as usize % NODES {
                continue;
            }
            let at = t + 80 * MS + self.rng.random_range(3_000..19_000) * 1_000;
            out.push(PerformanceData::new(
                at,
                Self::node(node),
                Event::NewBlockReceived,
                "block",
            ));
        }
        if early {
            out.push(block);
        }
        self.clock += 100 * MS;
    }

    /// The next `count` reports or so (whole rounds).
    fn batch(&mut self, count: usize) -> Vec<PerformanceData> {
        let mut out = Vec::with_capacity(count + 100);
        if self.round == 0 && self.clock == Network::new().clock {
            self.start(&mut out);
        }
        while out.len() + 83 <= count {
            self.round(&mut out);
        }
        out
    }
}

fn server(db: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_perfstats"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let url = support::announced_url(&mut child);
    (child, url)
}

async fn fill(url: &str, total: usize) -> (usize, Duration) {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut network = Network::new();
    let mut sent = 0;
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    while sent < total {
        let batch = network.batch(BATCH.min(total - sent).max(83));
        sent += batch.len();
        let mut client = PerformanceStatsClient::new(channel.clone());
        calls.spawn(async move {
            client
                .report_stats(tokio_stream::iter(batch))
                .await
                .expect("the batch is stored")
        });
        if calls.len() >= IN_FLIGHT {
            calls.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap();
    }
    (sent, started.elapsed())
}

/// ns per report that `LiveAnalysis::add` takes over the same reports, timed per
/// batch (building the reports is outside the clock); prints the analysis's heap.
fn analysis_cost(total: usize) -> f64 {
    let before = live_bytes();
    let mut network = Network::new();
    let mut analysis = LiveAnalysis::default();
    let (mut seq, mut spent) = (0u64, Duration::ZERO);
    while (seq as usize) < total {
        let reports: Vec<Report> = network
            .batch(BATCH.min(total - seq as usize).max(83))
            .into_iter()
            .map(|data| {
                seq += 1;
                let mut report = Report::accept(data, 1).unwrap();
                report.seq = seq;
                report
            })
            .collect();
        spent += add_timed(&mut analysis, &reports);
    }
    print_heap("the long-run network", &analysis, seq as usize, before);
    spent.as_nanos() as f64 / seq as f64
}

/// Adds `reports` to `analysis`; the time that took.
fn add_timed(analysis: &mut LiveAnalysis, reports: &[Report]) -> Duration {
    let started = Instant::now();
    for report in reports {
        analysis.add(report);
    }
    started.elapsed()
}

/// Senders of [`no_authority_heap`].
const RECEIVERS: usize = 7;

/// Prints the heap of an analysis of `total` `NEW_BLOCK_RECEIVED` reports from
/// [`RECEIVERS`] nodes and no authority send (what `cargo bench --bench ingest`
/// sends: times a nanosecond apart, the senders in turn), and the ns a report.
fn no_authority_heap(total: usize) {
    let before = live_bytes();
    let mut analysis = LiveAnalysis::default();
    let names: Vec<String> = (0..RECEIVERS).map(|node| format!("node{node}")).collect();
    let mut spent = Duration::ZERO;
    let mut seq = 0u64;
    while (seq as usize) < total {
        let reports: Vec<Report> = (0..BATCH.min(total - seq as usize))
            .map(|_| {
                seq += 1;
                let data = PerformanceData::new(
                    1_700_000_000_000_000_000 + seq as i64,
                    &names[seq as usize % RECEIVERS],
                    Event::NewBlockReceived,
                    "block",
                );
                let mut report = Report::accept(data, 1).unwrap();
                report.seq = seq;
                report
            })
            .collect();
        spent += add_timed(&mut analysis, &reports);
    }
    drop(names);
    print_heap(
        &format!("{total} NEW_BLOCK_RECEIVED of {RECEIVERS} senders, no authority"),
        &analysis,
        total,
        before,
    );
    println!(
        "    {:.0} ns a report",
        spent.as_nanos() as f64 / total as f64
    );
}

/// The in-process figures: the analysis's cost and heap over the long-run
/// network's `total` reports, and its heap with no authority.
fn in_process(total: usize) {
    let cost = analysis_cost(total);
    println!(
        "  keeping the analysis current: {cost:.0} ns of commit time per report (LiveAnalysis::add, in-process)"
    );
    no_authority_heap(if total < 3_000_000 { total } else { 3_000_000 });
}

/// GETs `path` on `url`, asserting a 200, and parses the JSON body.
async fn get_json(url: &str, path: &str) -> serde_json::Value {
    let response = reqwest::get(format!("{url}{path}")).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Asserts `before == after`, naming the first difference's path rather than
/// printing two answers of a hundred KiB.
fn assert_same(what: &str, before: &serde_json::Value, after: &serde_json::Value) {
    fn first_difference(
        at: String,
        a: &serde_json::Value,
        b: &serde_json::Value,
    ) -> Option<String> {
        use serde_json::Value;
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for key in a.keys().chain(b.keys()) {
                    let (x, y) = (&a.get(key), &b.get(key));
                    match (x, y) {
                        (Some(x), Some(y)) => {
                            if let Some(found) = first_difference(format!("{at}.{key}"), x, y) {
                                return Some(found);
                            }
                        }
                        _ => return Some(format!("{at}.{key}: {x:?} vs {y:?}")),
                    }
                }
                None
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
                .iter()
                .zip(b)
                .enumerate()
                .find_map(|(index, (x, y))| first_difference(format!("{at}[{index}]"), x, y)),
            _ => (a != b).then(|| format!("{at}: {a} vs {b}")),
        }
    }
    if let Some(difference) = first_difference(String::new(), before, after) {
        panic!("{what} differs: {difference}");
    }
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((fraction * sorted.len() as f64).ceil() as usize).max(1) - 1]
}

/// Each read's p50 and p95 (ms) and answer size; `middle` is a time in the run,
/// where a 1 s window shows single reports.
async fn reads(url: &str, middle: i64) -> Vec<(String, f64, f64, usize)> {
    let client = reqwest::Client::new();
    let narrow = format!(
        "/api/timeline?from={middle}&to={}&buckets=200",
        middle + 1_000 * MS
    );
    let paths = [
        "/api/analysis?recent=60".to_string(),
        "/api/nodes".to_string(),
        "/metrics".to_string(),
        "/api/rounds?kind=block&flagged=true&limit=20".to_string(),
        "/api/winners?disagreeing=true&limit=20".to_string(),
        "/api/timeline?buckets=200".to_string(),
        narrow,
        "/api/reports?order=desc&limit=100".to_string(),
        "/api/runs".to_string(),
    ];
    let mut figures = Vec::new();
    for path in paths {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..CALLS {
            let started = Instant::now();
            let response = client.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            bytes = response.bytes().await.unwrap().len();
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        figures.push((
            path,
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            bytes,
        ));
    }
    figures
}

async fn bench(total: usize) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("long.db");
    let (mut child, url) = server(&db);
    let (sent, took) = fill(&url, total).await;
    println!(
        "long-run benchmark: {sent} reports ({NODES} nodes + ra, {} rounds), SQLite, 2 cores",
        (sent - 126) / 83
    );
    println!(
        "  filled with ReportStats ({BATCH} per call, {IN_FLIGHT} in flight): {:.1} s, {:.0} reports/s (analysis kept current at commit)",
        took.as_secs_f64(),
        sent as f64 / took.as_secs_f64()
    );
    println!(
        "  server right after the fill: {}",
        support::memory_line(&url, child.id()).await
    );
    let timeline: serde_json::Value = reqwest::get(format!("{url}/api/timeline?buckets=1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let middle =
        (timeline["run_from"].as_i64().unwrap() / 2) + (timeline["run_to"].as_i64().unwrap() / 2);
    println!("  reads over HTTP, {CALLS} calls each, one after another:");
    for (path, p50, p95, bytes) in reads(&url, middle).await {
        println!("    {path:<60} p50 {p50:7.2} ms  p95 {p95:7.2} ms  {bytes:>8} bytes");
    }
    println!(
        "  server after the reads: {}",
        support::memory_line(&url, child.id()).await
    );

    // What the dashboard shows, to hold the restarted server's answers against.
    let analysis_path = "/api/analysis?recent=60";
    let before = (
        get_json(&url, analysis_path).await,
        get_json(&url, "/api/runs").await,
    );

    // Restart on the same database: the current run's analysis is rebuilt.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "SIGTERM ends the server with 0: {status}");
    let started = Instant::now();
    let (mut child, url) = server(&db);
    let listening = started.elapsed();
    let response = reqwest::get(format!("{url}{analysis_path}")).await.unwrap();
    assert_eq!(response.status(), 200);
    let served = started.elapsed();
    let (rss, peak) = support::rss_mib(child.id());
    println!(
        "  restart: listening after {:.2} s, dashboard's analysis served after {:.2} s; RSS {rss:.1} MiB (peak {peak:.1} MiB)",
        listening.as_secs_f64(),
        served.as_secs_f64()
    );
    // The rebuilt analysis is the one the server kept current: every field. None
    // legitimately differs: the analysis is a function of the run's reports alone
    // (the rebuild folds them in seq order, which is the order the live one took
    // them in), and its answer holds no clock time of the server's. The runs too:
    // ids, names, counts, start times and which is current are all stored.
    let after = (
        response.json::<serde_json::Value>().await.unwrap(),
        get_json(&url, "/api/runs").await,
    );
    assert_same("/api/analysis after the restart", &before.0, &after.0);
    assert_same("/api/runs after the restart", &before.1, &after.1);
    println!("  after the restart, {analysis_path} and /api/runs answer as before it");

    // A second run of the same size, then the two compared: the first call builds
    // the older run's analysis from SQLite; later ones reuse it.
    let started = reqwest::Client::new()
        .post(format!("{url}/api/runs"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    fill(&url, total).await;
    let mut times = Vec::new();
    for _ in 0..=CALLS {
        let started = Instant::now();
        let response = reqwest::get(format!("{url}/api/compare?a=1&b=2"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["kinds"]["block"]["p50_delta_ci95_ms"].is_array());
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let first = times.remove(0);
    times.sort_by(f64::total_cmp);
    println!(
        "  /api/compare of two {sent}-report runs: first call {first:.0} ms (builds the older run's analysis), then p50 {:.2} ms, p95 {:.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.95)
    );
    let (rss, peak) = support::rss_mib(child.id());
    println!("  RSS with both runs' analyses: {rss:.1} MiB (peak {peak:.1} MiB)");
    sweep(&url, sent).await;
    let (rss, peak) = support::rss_mib(child.id());
    println!("  RSS after the sweeps: {rss:.1} MiB (peak {peak:.1} MiB)");
    let _ = child.kill();
    let _ = child.wait();

    in_process(total);
}

/// Runs of a sweep besides the two long ones, and reports in each.
const SWEEP_SMALL_RUNS: usize = 48;
const SWEEP_SMALL_REPORTS: usize = 20_000;

/// A sweep across 50 runs: the two long runs and [`SWEEP_SMALL_RUNS`] short ones,
/// all labelled `series=s` with a `step`. The first call builds the figures of the
/// finished runs whose analysis is not kept (O(run) each, once); later calls read
/// the kept figures, so their time does not depend on the runs' lengths.
async fn sweep(url: &str, long: usize) {
    let http = reqwest::Client::new();
    let label = |run: &str, step: usize| {
        let http = http.clone();
        let path = format!("{url}/api/runs/{run}/labels");
        async move {
            let answer = http
                .put(path)
                .json(&serde_json::json!({"series": "s", "step": step.to_string()}))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    };
    label("1", 0).await;
    label("2", 1).await;
    for step in 2..2 + SWEEP_SMALL_RUNS {
        let started = http
            .post(format!("{url}/api/runs"))
            .json(&serde_json::json!({"labels": {"series": "s", "step": step.to_string()}}))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 200);
        fill(url, SWEEP_SMALL_REPORTS).await;
    }
    let path = format!("{url}/api/sweep?by=step&label=series=s");
    let mut times = Vec::new();
    for _ in 0..=CALLS {
        let started = Instant::now();
        let answer: serde_json::Value = reqwest::get(&path).await.unwrap().json().await.unwrap();
        assert_eq!(
            answer["runs"].as_array().map(Vec::len),
            Some(2 + SWEEP_SMALL_RUNS)
        );
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let first = times.remove(0);
    times.sort_by(f64::total_cmp);
    println!(
        "  /api/sweep of {} runs (2 of {long} reports, {SWEEP_SMALL_RUNS} of {SWEEP_SMALL_REPORTS}): first call {first:.0} ms (builds {SWEEP_SMALL_RUNS} runs' figures), then p50 {:.2} ms, p95 {:.2} ms",
        2 + SWEEP_SMALL_RUNS,
        percentile(&times, 0.5),
        percentile(&times, 0.95)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let total = if args.iter().any(|arg| arg == "--quick") {
        1_000_000
    } else {
        args.iter()
            .find_map(|arg| arg.parse().ok())
            .unwrap_or(10_000_000)
    };
    if args.iter().any(|arg| arg == "--analysis") {
        println!("long-run benchmark, in-process analysis only: {total} reports");
        return in_process(total);
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(bench(total));
}
