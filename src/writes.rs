//! Where accepted writes go: this server's own store, or the stream it shares with
//! other servers ([`crate::cluster`]), which every server then applies to its store.

use crate::cluster::Cluster;
use crate::error::Error;
use crate::labels::Labels;
use crate::report::Report;
use crate::store::{Receipt, RunInfo, Store};
use std::sync::Arc;

/// The destination of reports and new runs. Cheap to clone.
#[derive(Clone)]
pub enum Writes {
    /// Stored here, answered once durable in this store.
    Local(Store),
    /// Published to the shared stream, answered once JetStream has them and this
    /// server has applied them.
    Shared(Arc<Cluster>),
}

impl Writes {
    /// Stores or publishes `reports` (validated): one receipt each, in order. A
    /// local store takes up to 1,024 all or none, more in pieces
    /// ([`Store::append`]).
    pub async fn append(&self, reports: Vec<Report>) -> Result<Vec<Receipt>, Error> {
        match self {
            Writes::Local(store) => store.append(reports).await,
            Writes::Shared(cluster) => cluster.append(reports).await,
        }
    }

    /// The run new reports go to, as this server knows it.
    pub fn current_run(&self) -> RunInfo {
        match self {
            Writes::Local(store) => store.current_run(),
            Writes::Shared(cluster) => cluster.store().current_run(),
        }
    }

    /// Starts a new run with `labels` (for every server, when shared).
    pub async fn new_run(&self, name: Option<String>, labels: Labels) -> Result<RunInfo, Error> {
        match self {
            Writes::Local(store) => store.new_run(name, labels).await,
            Writes::Shared(cluster) => cluster.new_run(name, labels).await,
        }
    }

    /// Replaces `run`'s labels (for every server, when shared).
    pub async fn set_labels(&self, run: &RunInfo, labels: Labels) -> Result<RunInfo, Error> {
        match self {
            Writes::Local(store) => store.set_labels(run.id, labels).await,
            Writes::Shared(cluster) => cluster.set_labels(run, labels).await,
        }
    }
}
