//! The server: gRPC ingest, OTLP logs (gRPC and HTTP), reflection, health and the
//! HTTP dashboard and API, all on one listener (plain TCP, or TLS with [`ServerTls`]), behind the browser
//! checks ([`AllowedHosts`]) and an optional bearer-token check. [`run`] serves
//! until `shutdown` completes, then drains the store.

mod api;
mod auth;
pub mod connections;
mod first_message;
mod gate;
mod grpc;
mod http;
mod legacy;
mod limits;
mod origin;
mod otlp;
mod stream;
mod tls;
mod trim;

pub use api::MAX_SWEEP_RUNS;
pub use api::{DEFAULT_NODES_PAGE, MAX_NODES_PAGE};
pub use auth::Tokens;
pub use first_message::FIRST_MESSAGE_TIMEOUT;
pub use grpc::{Ingest, MAX_STREAM_REPORTS};
pub use limits::DEFAULT_MAX_ANSWER_BYTES;
pub use limits::{
    DEFAULT_MAX_EXPORTS, DEFAULT_MAX_STREAM_TEXT, DEFAULT_MAX_SUBSCRIBERS, Limits, LimitsConfig,
    RETRY_AFTER_SECONDS,
};
pub use origin::AllowedHosts;
pub use tls::ServerTls;

use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::pb::{self, performance_stats_server::PerformanceStatsServer};
use crate::store::Store;
use crate::writes::Writes;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;

/// Largest gRPC message accepted (a report is at most about 4.5 KiB).
pub const MAX_GRPC_MESSAGE_BYTES: usize = 64 * 1024;

/// What every HTTP handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store: what reads read.
    pub store: Store,
    /// Where writes go: the store, or the stream shared with other servers.
    pub writes: Writes,
    /// The metrics (the same the store's observer counts into).
    pub metrics: Arc<Metrics>,
    /// Flips to `true` when the server shuts down, ending long-lived responses (SSE).
    pub shutdown: watch::Receiver<bool>,
    /// The budgets for subscribers, exports and stream text.
    pub limits: Arc<Limits>,
}

/// How the server behaves, beyond where it stores.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Bearer tokens for writes and reads (none: open).
    pub tokens: Tokens,
    /// Where requests are counted; give the store the same as its observer.
    pub metrics: Arc<Metrics>,
    /// DNS names browsers may use besides IP literals and `localhost` (`--allow-host`).
    pub allowed_hosts: AllowedHosts,
    /// Serve TLS (gRPC and HTTPS on the one port) instead of plain TCP.
    pub tls: Option<ServerTls>,
    /// The sizes of the budgets for subscribers, exports and stream text.
    pub limits: LimitsConfig,
    /// The stream shared with other servers (`--nats`): writes go there, and the
    /// store is what this server applied of it.
    pub cluster: Option<Arc<Cluster>>,
}

/// Records an ingest answer's latency, and its reason if it was refused.
pub(crate) fn observe<T>(
    metrics: &Metrics,
    started: std::time::Instant,
    answer: &Result<T, crate::Error>,
) {
    metrics.ingest(started.elapsed());
    if let Err(error) = answer {
        metrics.rejected(error.reason());
    }
}

/// The whole service as one router: gRPC (ingest, OTLP logs, health, reflection v1
/// and v1alpha) merged with the HTTP side (and OTLP/HTTP logs), a fallback that answers unknown gRPC
/// methods `UNIMPLEMENTED` and unknown HTTP paths 404, and the token check.
pub async fn app(state: AppState, options: &Options) -> axum::Router {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PerformanceStatsServer<Ingest>>().await;
    if let Some(cluster) = &options.cluster {
        // Writes are served while the stream can take them; reads always are.
        let mut writable = cluster.writable();
        tokio::spawn(async move {
            loop {
                let now = *writable.borrow_and_update();
                if now {
                    health.set_serving::<PerformanceStatsServer<Ingest>>().await;
                } else {
                    health
                        .set_not_serving::<PerformanceStatsServer<Ingest>>()
                        .await;
                }
                if writable.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_file_descriptor_set(crate::otlp::logs_descriptor_set())
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    let guard = auth::Guard {
        tokens: options.tokens.clone(),
        metrics: state.metrics.clone(),
        client_certificates: options
            .tls
            .as_ref()
            .is_some_and(ServerTls::client_certificates),
    };
    let browsers = origin::BrowserRules {
        allowed: options.allowed_hosts.clone(),
        scheme: if options.tls.is_some() {
            "https"
        } else {
            "http"
        },
        metrics: state.metrics.clone(),
    };
    let ingest = PerformanceStatsServer::new(Ingest::new(
        state.writes.clone(),
        state.metrics.clone(),
        state.limits.clone(),
    ))
    .max_decoding_message_size(MAX_GRPC_MESSAGE_BYTES);
    let logs = otlp::LogsIngest::new(
        state.writes.clone(),
        state.metrics.clone(),
        state.limits.clone(),
    );
    let otlp_grpc = crate::otlp::LogsServiceServer::new(logs.clone())
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(crate::otlp::MAX_REQUEST_BYTES);
    let otlp_http = axum::Router::new()
        .route(
            crate::otlp::HTTP_PATH,
            axum::routing::post(otlp::http::logs),
        )
        .with_state(logs);
    let metrics = state.metrics.clone();
    Routes::new(ingest)
        .add_service(otlp_grpc)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .into_axum_router()
        .merge(http::router(state))
        .merge(otlp_http)
        .fallback(http::fallback)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(gate::Gate {
                browsers,
                guard,
                metrics,
            }),
            gate::check,
        ))
}

/// Serves gRPC and HTTP on `listener` until `shutdown` completes, then waits for
/// open connections to finish (the caller bounds how long), stores everything
/// queued and returns. Connections are budgeted as [`connections`] describes.
pub async fn run(
    listener: TcpListener,
    store: Store,
    options: Options,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let writes = match &options.cluster {
        Some(cluster) => Writes::Shared(cluster.clone()),
        None => Writes::Local(store.clone()),
    };
    let state = AppState {
        writes,
        store: store.clone(),
        metrics: options.metrics.clone(),
        shutdown: stopped.clone(),
        limits: Arc::new(Limits::new(options.limits)),
    };
    let trimming = tokio::spawn(trim::return_freed_memory(
        state.limits.clone(),
        stopped.clone(),
    ));
    let app = app(state, &options).await;
    let max_connections = connections::fit_max_connections(options.limits.max_connections);
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    match &options.tls {
        None => {
            let incoming = connections::tcp(listener);
            connections::serve(incoming, app, max_connections, signal).await;
        }
        Some(tls) => {
            let incoming = tls::incoming(listener, tls, stopped);
            connections::serve(incoming, app, max_connections, signal).await;
        }
    }
    trimming.abort();
    store.close().await;
    Ok(())
}
