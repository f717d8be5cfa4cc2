//! Watching the stream from one server: a probe that asks for its state (the lag,
//! whether it answers at all, and what `/api/cluster` shows), and the writability
//! that health checks follow. A NATS server that stops answering is left by the
//! connection itself (`frozen`): the probe does not reconnect, so a stream without a
//! leader never makes this server hop between NATS servers.

use super::Cluster;
use async_nats::connection::State;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How often the stream's state is asked for (its last sequence, for the lag, and
/// whether it answers at all, for health).
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often whether the stream can take writes is looked at for health.
const STATUS_POLL: Duration = Duration::from_millis(200);

/// Asks for the stream's state every [`PROBE_EVERY`] until the cluster is gone:
/// its last sequence (so the lag shows even when nothing is applied here), whether
/// it answers (so writes and health follow a stream without a leader), and the
/// whole of it for [`Cluster::overview`].
pub(super) async fn probe(cluster: std::sync::Weak<Cluster>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if cluster.client.connection_state() != State::Connected {
            continue;
        }
        match cluster.jetstream.get_stream(&cluster.config.stream).await {
            Ok(stream) => {
                let info = stream.cached_info();
                cluster.note_stream_seq(info.state.last_sequence);
                cluster.answering.store(true, Ordering::Release);
                cluster.saw_stream(info.clone());
            }
            Err(error) => {
                tracing::debug!(%error, "the stream does not answer");
                cluster.answering.store(false, Ordering::Release);
            }
        }
    }
}

/// Keeps [`Cluster::writable`] current until the cluster is gone. A task of its
/// own, not part of [`probe`]: a probe of a stream without a leader waits up to
/// [`PUBLISH_TIMEOUT`](super::PUBLISH_TIMEOUT), and health must not lag what writes see meanwhile.
pub(super) async fn watch_writable(cluster: std::sync::Weak<Cluster>) {
    loop {
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let now = cluster.can_write();
        cluster.writable.send_if_modified(|was| {
            let changed = *was != now;
            *was = now;
            changed
        });
        drop(cluster);
        tokio::time::sleep(STATUS_POLL).await;
    }
}
