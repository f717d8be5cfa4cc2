//! Steady write load for the fault tests: clients that send reports one at a time
//! until told to stop, each retried (same `report_id`) until ACKed, every attempt
//! timed; and the check that every ACKed report is stored exactly once, at the seq
//! its ACK gave, the same on every server.

use super::{http, metric, wait_until, within};
use perfstats::client::{Client, RetryPolicy, is_retryable};
use perfstats::{Event, PerformanceData};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long one write attempt may take before it counts as hung: a server answers
/// within its 3 s publish timeout (plus queueing on a loaded machine).
pub const ATTEMPT_DEADLINE: Duration = Duration::from_secs(10);
/// How long the load may take in all, faults included.
pub const LOAD_DEADLINE: Duration = Duration::from_secs(180);
/// How long a server may take to apply every ACKed report: seconds here; 60 s
/// only trips on a real hang.
const APPLY_DEADLINE: Duration = Duration::from_secs(60);
/// The pause between a refused attempt and the next.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// The pause between one client's reports: a steady load that leaves the 2 cores
/// room for 3 NATS servers and 2 perfstats.
const REPORT_GAP: Duration = Duration::from_millis(5);

/// One write attempt: when it started, how long it took, whether it was ACKed.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// When it was sent.
    pub started: Instant,
    /// How long its answer took.
    pub took: Duration,
    /// Whether it was ACKed (else refused, retryably, or hung).
    pub acked: bool,
}

/// What one load client got: each report's ACKed seq by id, and every attempt.
#[derive(Debug, Default)]
pub struct Sent {
    /// Each report's ACKed seq, by `report_id`.
    pub acks: HashMap<String, u64>,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Attempts that did not answer within [`ATTEMPT_DEADLINE`].
    pub hung: usize,
}

/// Sends reports from `sender` to `url` one at a time until `stop`, each retried
/// (same `report_id`) until ACKed: refusals must be retryable, and every attempt is
/// timed against [`ATTEMPT_DEADLINE`].
async fn load(url: String, sender: String, stop: Arc<AtomicBool>, acked: Arc<AtomicUsize>) -> Sent {
    let client = Client::connect_lazy(&url)
        .unwrap()
        .with_policy(RetryPolicy {
            attempt_timeout: None,
            ..RetryPolicy::never()
        });
    let mut sent = Sent::default();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let report = PerformanceData::new(
            0,
            sender.clone(),
            Event::TransactionReceived,
            format!("tx {i}"),
        );
        i += 1;
        loop {
            let started = Instant::now();
            let answer = tokio::time::timeout(
                ATTEMPT_DEADLINE,
                client.send_performance_stat(report.clone()),
            )
            .await;
            let took = started.elapsed();
            let acked = match answer {
                Err(_) => {
                    sent.hung += 1;
                    false
                }
                Ok(Ok(ack)) => {
                    sent.acks.insert(report.report_id.clone(), ack.seq);
                    acked.fetch_add(1, Ordering::SeqCst);
                    true
                }
                Ok(Err(status)) => {
                    assert!(is_retryable(&status), "{sender} report {i}: {status:?}");
                    false
                }
            };
            sent.attempts.push(Attempt {
                started,
                took,
                acked,
            });
            if acked {
                break;
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        tokio::time::sleep(REPORT_GAP).await;
    }
    sent
}

/// Load from `clients` clients to `url` (client `k` sends as `<prefix>k`).
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Sent>>,
}

impl Load {
    /// Starts the clients.
    pub fn start(url: &str, prefix: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let tasks = (0..clients)
            .map(|k| {
                tokio::spawn(load(
                    url.to_string(),
                    format!("{prefix}{k}"),
                    stop.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        Load { stop, acked, tasks }
    }

    /// Reports ACKed so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until `more` further reports are ACKed.
    pub async fn more_acks(&self, more: usize, what: &str) {
        let target = self.acked() + more;
        wait_until(LOAD_DEADLINE, what, async || self.acked() >= target).await;
    }

    /// Stops the clients and gathers what they got.
    pub async fn finish(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for task in self.tasks {
            all.push(
                within(LOAD_DEADLINE, "the load clients to finish", task)
                    .await
                    .unwrap(),
            );
        }
        all
    }
}

/// Waits until the servers at `urls` each hold every report of `acks` and have
/// applied the whole stream, then checks that each stores every one exactly once,
/// at the seq its ACK gave, and that their exports are the same.
pub async fn stored_once_everywhere(urls: &[&str], acks: &HashMap<String, u64>) {
    let mut exports = Vec::new();
    for url in urls {
        let mut export = String::new();
        wait_until(
            APPLY_DEADLINE,
            &format!("{url} to apply every ACKed report (lag 0)"),
            async || {
                let lag = metric(url, None, "perfstats_stream_lag").await;
                export = export_ndjson(url).await;
                lag == Some(0.0) && export.lines().count() >= acks.len()
            },
        )
        .await;
        let stored = seqs_by_id(url, &export);
        assert_eq!(
            stored.len(),
            acks.len(),
            "{url}: exactly the ACKed reports are stored"
        );
        for (id, seq) in acks {
            assert_eq!(
                stored.get(id),
                Some(seq),
                "{url}: {id} at the seq its ACK gave"
            );
        }
        exports.push(export);
    }
    assert!(
        exports.windows(2).all(|pair| pair[0] == pair[1]),
        "the servers' exports differ"
    );
}

/// The server at `url`'s export of its current run, as NDJSON.
async fn export_ndjson(url: &str) -> String {
    http()
        .get(format!("{url}/api/export?format=ndjson"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The seq of every report of `export` (from `url`), by id, asserting no id twice.
fn seqs_by_id(url: &str, export: &str) -> HashMap<String, u64> {
    let mut stored = HashMap::new();
    for line in export.lines() {
        let report: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = report["report_id"].as_str().unwrap().to_string();
        let seq = report["seq"].as_u64().unwrap();
        assert!(
            stored.insert(id.clone(), seq).is_none(),
            "{url}: {id} stored twice"
        );
    }
    stored
}

/// The reports the server at `url` stores in its current run: their seqs by id
/// (asserting no id is stored twice).
pub async fn stored_seqs(url: &str) -> HashMap<String, u64> {
    seqs_by_id(url, &export_ndjson(url).await)
}

/// Every ACKed report of `sent`, by id.
pub fn all_acks(sent: &[Sent]) -> HashMap<String, u64> {
    let mut acks = HashMap::new();
    for one in sent {
        for (id, seq) in &one.acks {
            assert!(acks.insert(id.clone(), *seq).is_none(), "{id} sent twice");
        }
    }
    acks
}

/// Asserts that no attempt of `sent` hung past [`ATTEMPT_DEADLINE`]; the longest.
pub fn no_write_hung(sent: &[Sent]) -> Duration {
    let hung: usize = sent.iter().map(|one| one.hung).sum();
    assert_eq!(hung, 0, "writes hung past {ATTEMPT_DEADLINE:?}");
    sent.iter()
        .flat_map(|one| &one.attempts)
        .map(|attempt| attempt.took)
        .max()
        .unwrap_or_default()
}
