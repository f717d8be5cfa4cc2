//! Shared test helpers: a server on `127.0.0.1:0` (in-process or the real binary),
//! and small HTTP helpers. Traffic stays on loopback.
#![allow(dead_code)]

use perfstats::client::{Client, RetryPolicy};
use perfstats::server;
use perfstats::store::{Backend, Store, StoreConfig};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

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
        let response = reqwest::get(format!("{}{path}", self.url())).await.unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Shuts the server down gracefully and waits until the store is drained.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.take().unwrap().await.unwrap();
    }
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
    let addr = listener.local_addr().unwrap();
    let store = Store::open(StoreConfig {
        backend,
        new_run: None,
        observer: options.metrics.clone(),
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

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.child.wait().unwrap()
    }
}

/// The `http://…` address a server child prints on its first line of stdout.
pub fn announced_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.split_whitespace()
        .find(|word| word.starts_with("http://"))
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
