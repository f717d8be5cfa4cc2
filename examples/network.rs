//! A simulated test network reporting to perfstats: a root authority `ra`, full
//! nodes `1f`–`3f` and light nodes `4l`–`6l` sync, then go through block rounds
//! (problem → commits → reveal → winner → block). Node `5l` misses block 2, and in
//! round 3 node `3f` names another winner, so the dashboard has something to find.
//!
//! `cargo run --release --example network -- [URL] [ROUNDS] [PACE_MS] [SEED] [LIGHT_DELAY_MS]`
//! (defaults: http://127.0.0.1:12345, 6 rounds, 300 ms between rounds, seed 7, no
//! delay). `LIGHT_DELAY_MS` is added to the light nodes' block latency, as a netem
//! delay on their links would: two runs, with and without, are something to compare.
//!
//! The same seed gives the same network (latencies, winners, messages). With a pace
//! of 0 the run is generated as fast as the server stores it: its simulated clock
//! ends about now, and many rounds go in one `ReportStats` call (at most
//! `BATCH` reports each), so a run of a million reports takes seconds.

use perfstats::client::Client;
use perfstats::{Event, PerformanceData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const NODES: [&str; 6] = ["1f", "2f", "3f", "4l", "5l", "6l"];
const MS: i64 = 1_000_000;
/// Reports sent in one `ReportStats` call at most when the pace is 0.
const BATCH: usize = 40_000;
/// Simulated time from the start to the first round, and from a round to the next.
const STARTUP_MS: i64 = 3_000;
const ROUND_MS: i64 = 1_000;

/// Reports of one step, stamped with simulated times from `clock`.
struct Step {
    clock: i64,
    reports: Vec<PerformanceData>,
}

impl Step {
    fn add(
        &mut self,
        after_ms: f64,
        sender: &str,
        event: Event,
        message: impl Into<String>,
    ) -> i64 {
        let time = self.clock + (after_ms * MS as f64) as i64;
        self.reports
            .push(PerformanceData::new(time, sender, event, message));
        time
    }
}

/// Sends one step's reports, in time order, as one `ReportStats` stream.
async fn send(client: &Client, step: &mut Step) -> Result<(), tonic::Status> {
    step.reports.sort_by_key(|report| report.time_unix_nano);
    client
        .send_batch_with_retries(std::mem::take(&mut step.reports))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:12345".into());
    let rounds: u32 = args.next().map_or(Ok(6), |text| text.parse())?;
    let pace = Duration::from_millis(args.next().map_or(Ok(300), |text| text.parse())?);
    let seed: u64 = args.next().map_or(Ok(7), |text| text.parse())?;
    let light_delay: f64 = args.next().map_or(Ok(0.0), |text| text.parse())?;
    let client = Client::connect_lazy(&addr)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let batched = pace.is_zero();
    let now = perfstats::report::now_unix_nano();
    // Paced, the run unfolds from now; batched, it is generated at once and ends now.
    let start = if batched {
        now - (STARTUP_MS + i64::from(rounds) * ROUND_MS) * MS
    } else {
        now
    };
    let mut step = Step {
        clock: start,
        reports: Vec::new(),
    };

    // Start-up and initial sync: full nodes rebuild state and take longer.
    step.add(0.0, "ra", Event::Libp2pNodeIdKnown, "12D3KooWRa");
    for (i, node) in NODES.iter().enumerate() {
        let start = 40.0 + 15.0 * i as f64;
        let full = node.ends_with('f');
        let mut at = start;
        step.add(
            at,
            node,
            Event::Libp2pNodeIdKnown,
            format!("12D3KooW{node}"),
        );
        at += rng.random_range(20.0..60.0);
        step.add(at, node, Event::FirstPeerConnected, "12D3KooWRa");
        step.add(at, node, Event::RaConnected, "12D3KooWRa");
        at += rng.random_range(100.0..300.0) * if full { 3.0 } else { 1.0 };
        step.add(
            at,
            node,
            Event::InitialSyncChaindbReceived,
            "chaindb 48 MiB",
        );
        at += rng.random_range(50.0..150.0) * if full { 4.0 } else { 1.0 };
        step.add(at, node, Event::InitialSyncChaindbVerified, "height 120");
        at += rng.random_range(30.0..80.0) + if *node == "3f" { 900.0 } else { 0.0 };
        step.add(at, node, Event::InitialSyncCompleted, "synced");
    }
    send(&client, &mut step).await?;
    step.clock += STARTUP_MS * MS;

    for round in 1..=rounds {
        if !batched {
            tokio::time::sleep(pace).await;
        }
        let height = 120 + round;
        step.add(
            0.0,
            "ra",
            Event::RaNewProblemSent,
            format!("problem {height}"),
        );
        for node in NODES {
            step.add(
                rng.random_range(5.0..40.0),
                node,
                Event::SimtaskReceived,
                format!("problem {height}"),
            );
            step.add(
                rng.random_range(40.0..200.0),
                node,
                Event::TransactionReceived,
                format!("tx {:08x}", rng.random::<u32>()),
            );
        }
        let miner_index = rng.random_range(0..3);
        let miner = NODES[miner_index];
        step.add(
            250.0,
            "ra",
            Event::RaReceivedSimulationData,
            format!("solution from {miner}"),
        );
        for node in NODES {
            step.add(
                rng.random_range(260.0..320.0),
                node,
                Event::MinerCommitReceived,
                format!("commit by {miner}"),
            );
        }
        step.add(
            400.0,
            "ra",
            Event::RaCommitRevealSent,
            format!("reveal {height}"),
        );
        for node in NODES {
            let revealed = 400.0 + rng.random_range(5.0..35.0);
            step.add(
                revealed,
                node,
                Event::RaCommitRevealed,
                format!("reveal {height}"),
            );
            let winner = if round == 3 && node == "3f" {
                NODES[(miner_index + 1) % 3]
            } else {
                miner
            };
            step.add(revealed + 5.0, node, Event::BlockWinnerFound, winner);
        }
        step.add(
            600.0,
            "ra",
            Event::RaNewBlockSent,
            format!("block {height}"),
        );
        for (i, node) in NODES.iter().enumerate() {
            if round == 2 && *node == "5l" {
                continue;
            }
            let delay = if node.ends_with('l') {
                light_delay
            } else {
                0.0
            };
            let latency = rng.random_range(10.0..30.0) + 8.0 * i as f64 + delay;
            step.add(
                600.0 + latency,
                node,
                Event::NewBlockReceived,
                format!("block {height}"),
            );
        }
        if !batched || step.reports.len() + 40 > BATCH || round == rounds {
            send(&client, &mut step).await?;
        }
        step.clock += ROUND_MS * MS;
    }
    println!("network: 7 nodes reported startup and {rounds} block rounds to {addr} (seed {seed})");
    Ok(())
}
