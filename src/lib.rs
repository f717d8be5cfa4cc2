//! perfstats: nodes of peer-to-peer test networks report discrete events ("first
//! peer connected", "initial sync completed", "new block received") over gRPC to one
//! server, which stores them durably and shows them on a dashboard on the same port.
//!
//! # Layout
//! Layers point one way: each part imports only parts listed before it.
//! - Foundations:
//!   - [`pb`]: the generated `perfstats.v1` protobuf types, client and server stubs.
//!   - [`event`]: event names in every accepted spelling, and report validation.
//!   - [`report`]: the stored report type and time helpers.
//!   - [`error`]: the service's error type and its mapping to gRPC and HTTP.
//!   - [`intern`]: names kept once and referred to by dense ids (senders, winners).
//!   - [`labels`]: run labels (`netem_ms=40`): their rules, `k=v` syntax and filters.
//!   - [`otlp`]: OpenTelemetry logs in: the OpenTelemetry project's generated OTLP
//!     types, a log record as a report (pure), partial success, OTLP/JSON.
//!   - `pem`: PEM files and the crypto provider, for server and client TLS alike.
//!   - [`heap`]: the allocator's in-use and kept-free bytes, and trimming.
//! - [`analysis`]: sync phases, propagation rounds, winner agreement, whole-run
//!   distributions, timeline counts, comparisons: the definitions as a fold, and the
//!   same kept current at ingest ([`analysis::live`]).
//! - [`store`]: runs of reports, group commit, SQLite and memory backends, reads,
//!   each run's live analysis; tells a [`store::CommitObserver`] what it commits;
//!   [`store::Applier`] for a server applying a shared stream.
//! - [`client`]: `Client`, `RetryPolicy` and the non-blocking `Reporter` for nodes;
//!   the terminal commands' HTTP client.
//! - [`cluster`]: servers sharing one replicated NATS JetStream stream: setting it up,
//!   publishing writes to it, applying it to the local store in order, health.
//! - [`metrics`]: Prometheus counters and histograms behind `GET /metrics` (the
//!   store's observer).
//! - [`writes`]: where accepted writes go: the store, or the shared stream.
//! - [`server`]: `run(listener, store, options, shutdown)`: gRPC, OTLP logs (gRPC
//!   and `POST /v1/logs`), reflection, health,
//!   the HTTP API (one file a resource), the embedded dashboard, tokens, browser
//!   rules, TLS, connection budgets.
//! - [`serve`]: `perfstats serve` as one call: a config in, the server assembled
//!   (store, stream, TLS, tokens, budgets) and run until shutdown.
//! - `src/bin/perfstats/`: the command line (`serve`, `report`, `tail`, `export`,
//!   `import`, `runs`, `compare`, `sweep`, `check`): parses, sets up tracing, binds,
//!   calls the library.

pub mod analysis;
pub mod client;
pub mod cluster;
pub mod error;
pub mod event;
pub mod heap;
pub mod intern;
pub mod labels;
pub mod metrics;
pub mod otlp;
pub mod pb;
pub(crate) mod pem;
pub mod report;
pub mod serve;
pub mod server;
pub mod store;
pub mod writes;

pub use error::Error;
pub use pb::{Ack, BatchAck, Event, PerformanceData};

/// The README's Rust examples, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
