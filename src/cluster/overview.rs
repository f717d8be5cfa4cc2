//! The stream and this server as `GET /api/cluster` shows them: the stream's part
//! as JetStream last reported it to the 1 s probe (kept here, so no HTTP request
//! ever asks NATS anything), this server's from [`Cluster::status`], and a verdict
//! (healthy, degraded, unreachable) with the reasons, for the page's badge. A server
//! without `--nats` answers [`ClusterOverview::without_cluster`] (a 200, so that the
//! page asking for it logs no failed request).

use super::Cluster;
use async_nats::connection::State;
use async_nats::jetstream::stream;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long this server may stay below what the stream held before it counts as
/// falling behind (a moment's lag under load is normal: applying follows the ACK).
pub const BEHIND_GRACE: Duration = Duration::from_secs(10);

/// `GET /api/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterOverview {
    /// The stream as JetStream last reported it; `None` until it was reached once.
    pub stream: Option<StreamOverview>,
    /// Where this server stands against it; `None` without a cluster.
    pub server: Option<ServerOverview>,
    /// The verdict the page's badge shows.
    pub health: Health,
    /// Why it is not healthy (empty when it is).
    pub why: Vec<String>,
}

/// The stream's part of [`ClusterOverview`].
#[derive(Debug, Clone, Serialize)]
pub struct StreamOverview {
    /// The stream's name.
    pub name: String,
    /// Its replicas, as configured.
    pub replicas: usize,
    /// The NATS server leading it (`None`: no leader known).
    pub leader: Option<String>,
    /// Its replicas other than the leader, as JetStream lists them.
    pub peers: Vec<PeerOverview>,
    /// The stream's last sequence.
    pub last_seq: u64,
    /// Messages it holds.
    pub messages: u64,
    /// Bytes it holds.
    pub bytes: u64,
    /// How long ago JetStream reported this (the probe asks every second while
    /// the stream answers).
    pub age_ms: u64,
}

/// A replica of the stream other than its leader.
#[derive(Debug, Clone, Serialize)]
pub struct PeerOverview {
    /// The NATS server holding it.
    pub name: String,
    /// Whether it is up to date with the leader.
    pub current: bool,
    /// Operations it is behind the leader, when known.
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from it.
    pub active_ms: u64,
    /// Whether the group takes it for offline.
    pub offline: bool,
}

/// This server's part of [`ClusterOverview`].
#[derive(Debug, Clone, Serialize)]
pub struct ServerOverview {
    /// The highest stream sequence applied to this server's store.
    pub applied_seq: u64,
    /// The stream's last sequence as last seen minus `applied_seq` (`None`: the
    /// stream was never reached).
    pub lag: Option<u64>,
    /// Whether writes can reach the stream now.
    pub writable: bool,
    /// The NATS server this one is connected to now (`None`: none).
    pub nats_server: Option<String>,
}

/// The verdict on the stream as this server sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Writable, every replica current, this server keeping up.
    Healthy,
    /// Writable, but a replica is not current or this server is falling behind.
    Degraded,
    /// Writes cannot reach the stream.
    Unreachable,
    /// No cluster: the server was started without `--nats`.
    None,
}

/// What the probe last got of the stream, and recent last sequences to tell a
/// server that keeps up from one falling behind.
#[derive(Debug, Default)]
pub(super) struct Sighting {
    /// The stream's info and when it came.
    info: Option<(stream::Info, Instant)>,
    /// (when, the stream's last sequence then), oldest first: the newest one at
    /// least [`BEHIND_GRACE`] old and every one after it.
    last_seqs: VecDeque<(Instant, u64)>,
}

impl Sighting {
    /// Keeps `info`, got at `now`.
    fn note(&mut self, info: stream::Info, now: Instant) {
        self.note_last_seq(info.state.last_sequence, now);
        self.info = Some((info, now));
    }

    /// Keeps the stream's last sequence as of `now`.
    fn note_last_seq(&mut self, last_seq: u64, now: Instant) {
        self.last_seqs.push_back((now, last_seq));
        while self.last_seqs.len() > 1 && now - self.last_seqs[1].0 >= BEHIND_GRACE {
            self.last_seqs.pop_front();
        }
    }

    /// The stream's last sequence of at least [`BEHIND_GRACE`] ago when `applied`
    /// is still below it: this server is falling behind.
    fn behind(&self, applied: u64, now: Instant) -> Option<u64> {
        let &(at, last_seq) = self.last_seqs.front()?;
        (now - at >= BEHIND_GRACE && applied < last_seq).then_some(last_seq)
    }
}

impl StreamOverview {
    fn of(info: &stream::Info, age: Duration) -> StreamOverview {
        let cluster = info.cluster.as_ref();
        StreamOverview {
            name: info.config.name.clone(),
            replicas: info.config.num_replicas,
            leader: cluster.and_then(|cluster| cluster.leader.clone()),
            peers: cluster
                .map(|cluster| {
                    cluster
                        .replicas
                        .iter()
                        .map(|peer| PeerOverview {
                            name: peer.name.clone(),
                            current: peer.current,
                            lag: peer.lag,
                            active_ms: peer.active.as_millis() as u64,
                            offline: peer.offline,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            last_seq: info.state.last_sequence,
            messages: info.state.messages,
            bytes: info.state.bytes,
            age_ms: age.as_millis() as u64,
        }
    }
}

/// The verdict and its reasons: unreachable when writes cannot reach the stream,
/// degraded when a replica is not current, this server has not applied what the
/// stream held [`BEHIND_GRACE`] ago (`behind`), or the stream's state was not read
/// yet (a moment after the start), else healthy.
fn verdict(
    server: &ServerOverview,
    stream: Option<&StreamOverview>,
    behind: Option<u64>,
) -> (Health, Vec<String>) {
    if !server.writable {
        let why = match stream {
            None => "the stream was never reached (NATS unreachable, or the stream refused)",
            Some(_) => "writes cannot reach the stream (NATS unreachable, or no stream leader)",
        };
        return (Health::Unreachable, vec![why.to_string()]);
    }
    let mut why = Vec::new();
    if stream.is_none() {
        why.push("the stream's state was not read yet (the probe asks every second)".to_string());
    }
    for peer in stream.iter().flat_map(|stream| &stream.peers) {
        if !peer.current {
            let state = if peer.offline {
                "offline"
            } else {
                "not current"
            };
            why.push(format!("replica on {} is {state}", peer.name));
        }
    }
    if let Some(last_seq) = behind {
        why.push(format!(
            "this server has not applied the stream up to seq {last_seq}, where it was {} s ago \
             (applied: {})",
            BEHIND_GRACE.as_secs(),
            server.applied_seq
        ));
    }
    let health = if why.is_empty() {
        Health::Healthy
    } else {
        Health::Degraded
    };
    (health, why)
}

impl ClusterOverview {
    /// What a server without `--nats` answers: no stream, no standing, health
    /// `none`.
    pub fn without_cluster() -> ClusterOverview {
        ClusterOverview {
            stream: None,
            server: None,
            health: Health::None,
            why: vec![
                "no cluster: this server was started without --nats, so it shares no stream".into(),
            ],
        }
    }
}

impl Cluster {
    /// The stream as JetStream last reported it and where this server stands:
    /// `GET /api/cluster`. Asks NATS nothing.
    pub fn overview(&self) -> ClusterOverview {
        let status = self.status();
        let now = Instant::now();
        let (stream, behind) = {
            let sighting = self.sighting.lock().expect("sighting lock");
            let stream = sighting
                .info
                .as_ref()
                .map(|(info, at)| StreamOverview::of(info, now - *at));
            (stream, sighting.behind(status.applied, now))
        };
        let nats_server = (self.client.connection_state() == State::Connected)
            .then(|| self.client.server_info().server_name)
            .filter(|name| !name.is_empty());
        let server = ServerOverview {
            applied_seq: status.applied,
            lag: status.lag,
            writable: status.writable,
            nats_server,
        };
        let (health, why) = verdict(&server, stream.as_ref(), behind);
        ClusterOverview {
            stream,
            server: Some(server),
            health,
            why,
        }
    }

    /// Keeps the stream's info as the probe just got it.
    pub(super) fn saw_stream(&self, info: stream::Info) {
        self.sighting
            .lock()
            .expect("sighting lock")
            .note(info, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(writable: bool, applied_seq: u64) -> ServerOverview {
        ServerOverview {
            applied_seq,
            lag: Some(0),
            writable,
            nats_server: Some("n1".into()),
        }
    }

    fn stream(peers: &[(&str, bool)]) -> StreamOverview {
        StreamOverview {
            name: "PERFSTATS".into(),
            replicas: peers.len() + 1,
            leader: Some("n1".into()),
            peers: peers
                .iter()
                .map(|&(name, current)| PeerOverview {
                    name: name.into(),
                    current,
                    lag: Some(0),
                    active_ms: 100,
                    offline: false,
                })
                .collect(),
            last_seq: 10,
            messages: 10,
            bytes: 1000,
            age_ms: 500,
        }
    }

    #[test]
    fn the_verdict_follows_writability_replicas_and_falling_behind() {
        let healthy = stream(&[("n2", true), ("n3", true)]);
        assert_eq!(
            verdict(&server(true, 10), Some(&healthy), None),
            (Health::Healthy, vec![])
        );
        let (health, why) = verdict(&server(false, 10), Some(&healthy), None);
        assert_eq!(health, Health::Unreachable);
        assert!(why[0].contains("writes cannot reach"), "{why:?}");
        let (health, why) = verdict(&server(false, 0), None, None);
        assert_eq!(health, Health::Unreachable);
        assert!(why[0].contains("never reached"), "{why:?}");
        let lagging = stream(&[("n2", true), ("n3", false)]);
        let (health, why) = verdict(&server(true, 10), Some(&lagging), None);
        assert_eq!(health, Health::Degraded);
        assert_eq!(why, vec!["replica on n3 is not current".to_string()]);
        let (health, why) = verdict(&server(true, 4), Some(&healthy), Some(9));
        assert_eq!(health, Health::Degraded);
        assert!(why[0].contains("up to seq 9"), "{why:?}");
        let (health, why) = verdict(&server(true, 0), None, None);
        assert_eq!(health, Health::Degraded);
        assert!(why[0].contains("not read yet"), "{why:?}");
    }

    #[test]
    fn falling_behind_counts_only_what_the_stream_held_a_grace_ago() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut sighting = Sighting::default();
        for second in 0..=15 {
            sighting.note_last_seq(100 * second, at(second));
        }
        assert!(sighting.last_seqs.len() <= 11, "{:?}", sighting.last_seqs);
        let now = at(15);
        // The newest sequence at least 10 s old is that of second 5: 500.
        assert_eq!(sighting.behind(499, now), Some(500));
        assert_eq!(sighting.behind(500, now), None);
        // Lagging behind what came in the last 10 s is not falling behind.
        assert_eq!(sighting.behind(1400, now), None);
        // Too recent a first sighting says nothing yet.
        let mut young = Sighting::default();
        young.note_last_seq(100, at(0));
        assert_eq!(young.behind(0, at(3)), None);
    }
}
