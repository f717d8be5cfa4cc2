//! perfstats: nodes of peer-to-peer test networks report discrete events ("first
//! peer connected", "initial sync completed", "new block received") over gRPC to one
//! server, which stores them durably and shows them on a dashboard on the same port.
//!
//! # Layout
//! - [`pb`]: the generated `perfstats.v1` protobuf types, client and server stubs.
//! - [`event`]: event names in every accepted spelling, and report validation.
//! - [`error`]: the service's error type and its mapping to gRPC and HTTP.
//! - [`report`]: the stored report type and time helpers (shared by all below).
//! - [`analysis`]: sync phases, propagation rounds, winner agreement, whole-run
//!   distributions, timeline counts: the definitions as a fold, and the same kept
//!   current at ingest (`analysis::live`).
//! - [`store`]: the group-committing writer, SQLite and memory backends, runs, reads,
//!   each run's live analysis; tells a `CommitObserver` what it commits.
//! - [`metrics`]: Prometheus counters and histograms behind `GET /metrics` (the
//!   store's observer).
//! - [`server`]: `run(listener, store, options, shutdown)`: gRPC, reflection, health,
//!   the HTTP API, the embedded dashboard, tokens.
//! - [`writes`]: where accepted writes go: the store, or the shared stream.
//! - [`cluster`]: servers sharing one replicated NATS JetStream stream: publishing
//!   writes to it, applying it to the local store in order.
//! - [`client`]: `Client`, `RetryPolicy` and the non-blocking `Reporter` for nodes.
//! - `src/bin/perfstats.rs`: the command line (`serve`, `report`, `tail`, `export`, `runs`).

pub mod analysis;
pub mod client;
pub mod cluster;
pub mod error;
pub mod event;
pub mod metrics;
pub mod pb;
pub mod report;
pub mod server;
pub mod store;
pub mod writes;

pub use error::Error;
pub use pb::{Ack, BatchAck, Event, PerformanceData};

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
