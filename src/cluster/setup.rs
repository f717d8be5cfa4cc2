//! Finding the stream (making it when it is missing and this store is new) and
//! checking that this store holds it, not another stream or a history of its own.

use super::{Cluster, SetupError};
use crate::error::Error;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, stream};
use std::sync::atomic::Ordering;

/// Setups in a row that must find the stream ending below what this store applied
/// before it is refused for good.
const SHORT_READINGS_TO_REFUSE: u32 = 3;
/// The stream metadata key holding the id a perfstats server gave the stream when
/// it made it: what a store records as the stream it holds.
const STREAM_ID_KEY: &str = "perfstats-stream-id";

impl Cluster {
    /// Finds the stream (making it when missing and this store is new) and checks
    /// the store holds it. On failure writes stop until it succeeds again.
    pub(super) async fn setup(&self) -> Result<stream::Stream, SetupError> {
        let outcome = self.find_stream().await;
        self.ready.store(outcome.is_ok(), Ordering::Release);
        outcome
    }

    async fn find_stream(&self) -> Result<stream::Stream, SetupError> {
        let name = &self.config.stream;
        let unreachable = |error: &dyn std::fmt::Display| {
            SetupError::Unreachable(format!("stream {name}: {error}"))
        };
        let stream = match self.jetstream.get_stream(name).await {
            Ok(stream) => stream,
            Err(error) if is_not_found(&error.kind()) => {
                // Only a store that holds nothing yet may make the stream: one that
                // applied a stream would mix two histories (a stream made again
                // starts at seq 1), one of a server of its own has its own seqs.
                match self.applier.source().await.map_err(SetupError::Refused)? {
                    (None, false) => {}
                    (None, true) => {
                        return Err(SetupError::Refused(Error::Unavailable(format!(
                            "--db: this database holds reports of a server of its own, not \
                             of NATS stream {name}: use another database file"
                        ))));
                    }
                    (Some(held), _) => {
                        return Err(SetupError::Unreachable(format!(
                            "stream {name} does not exist, but this store holds {held}: \
                             restore the stream, or start with another --db"
                        )));
                    }
                }
                let made = self
                    .jetstream
                    .create_stream(stream::Config {
                        name: name.clone(),
                        subjects: self.subjects.all(),
                        num_replicas: self.config.replicas,
                        duplicate_window: self.config.dedupe_window,
                        storage: stream::StorageType::File,
                        metadata: [(STREAM_ID_KEY.to_string(), uuid::Uuid::now_v7().to_string())]
                            .into(),
                        ..Default::default()
                    })
                    .await;
                // Another server may have made it meanwhile: look again next time.
                made.map_err(|error| unreachable(&error))?;
                self.jetstream
                    .get_stream(name)
                    .await
                    .map_err(|error| unreachable(&error))?
            }
            Err(error) => return Err(unreachable(&error)),
        };
        let info = stream.cached_info();
        if let Some(missing) = self
            .subjects
            .all()
            .into_iter()
            .find(|subject| !info.config.subjects.contains(subject))
        {
            return Err(SetupError::Refused(Error::BadRequest(format!(
                "--nats-stream: stream {name} exists without subject {missing}"
            ))));
        }
        if info.config.num_replicas != self.config.replicas
            || info.config.duplicate_window != self.config.dedupe_window
        {
            tracing::warn!(
                replicas = info.config.num_replicas,
                dedupe_window = ?info.config.duplicate_window,
                "stream {name} exists with its own replicas and duplicate window; the flags apply \
                 only to a stream this server makes"
            );
        }
        // Which stream this is: the id its maker gave it, else when it was made. A
        // stream deleted and made again restarts its sequences, which a store that
        // applied the old one must not mix in.
        let identity = match info.config.metadata.get(STREAM_ID_KEY) {
            Some(id) => format!("id {id}"),
            None => format!("created at {} ns", info.created.unix_timestamp_nanos()),
        };
        self.applier
            .claim(Some(format!("NATS stream {name} ({identity})")))
            .await
            .map_err(SetupError::Refused)?;
        // The run a store makes when it opens empty is dated by the stream, the
        // same on every server (each store made it at its own start).
        self.applier
            .date_first_run(info.created.unix_timestamp_nanos() as i64)
            .await
            .map_err(|error| unreachable(&error))?;
        let applied = *self.applied_message.borrow();
        if info.state.last_sequence < applied {
            // Refused only when it stays so: one reading from a leader just elected
            // is not proof that the stream lost messages.
            let readings = self.short_readings.fetch_add(1, Ordering::AcqRel) + 1;
            let why = format!(
                "stream {name} ends at seq {}, but this store applied it up to seq {applied}",
                info.state.last_sequence
            );
            return Err(if readings >= SHORT_READINGS_TO_REFUSE {
                SetupError::Refused(Error::Unavailable(format!(
                    "{why}: the stream lost messages; start with another --db"
                )))
            } else {
                SetupError::Unreachable(why)
            });
        }
        self.short_readings.store(0, Ordering::Release);
        self.note_stream_seq(info.state.last_sequence);
        self.answering.store(true, Ordering::Release);
        Ok(stream)
    }
}

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(error)
        if error.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}
