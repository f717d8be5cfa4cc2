//! `perfstats serve` as one library call: [`ServeConfig`] is everything the command
//! takes; [`Service::open`] assembles the server from it (the store, its claim or
//! the shared stream, TLS, tokens, budgets), and [`Service::run`] serves a listener
//! until shutdown, then drains within [`SHUTDOWN_GRACE`]. The binary only parses
//! arguments, sets up tracing, binds and calls these.

use crate::cluster::{Cluster, ClusterConfig};
use crate::labels::Labels;
use crate::metrics::Metrics;
use crate::server::{self, AllowedHosts, LimitsConfig, Options, ServerTls, Tokens};
use crate::store::{Backend, RunInfo, Store, StoreConfig};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long shutdown may take before the process gives up on open connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything `perfstats serve` is told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where reports are kept (`--db`, or `--memory` with `--max-reports`).
    pub backend: Backend,
    /// Start a new run with this name instead of continuing the latest one.
    pub new_run: Option<String>,
    /// The labels of that new run (`--label`).
    pub new_run_labels: Labels,
    /// Bearer tokens for writes and reads; empty tokens count as none.
    pub tokens: Tokens,
    /// Senders labelled by name in `/metrics` at most.
    pub metrics_max_senders: usize,
    /// The budgets (connections, subscribers, exports, stream text).
    pub limits: LimitsConfig,
    /// DNS names browsers may use besides IP literals and `localhost`.
    pub allow_hosts: Vec<String>,
    /// TLS on the one port: the certificate chain and key files, and optionally
    /// the CA client certificates must chain to.
    pub tls: Option<TlsFiles>,
    /// The replicated stream to share with other servers (`--nats`).
    pub cluster: Option<ClusterConfig>,
}

/// The PEM files of `--tls-cert`, `--tls-key` and `--client-ca`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub certificate: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA client certificates must chain to, for writes.
    pub client_ca: Option<PathBuf>,
}

/// A server assembled from a [`ServeConfig`], ready to serve a listener.
pub struct Service {
    store: Store,
    options: Options,
}

impl Service {
    /// Opens the store and, with a cluster, joins the stream; loads TLS. Errors are
    /// the one line the command prints before exiting 1.
    pub async fn open(config: ServeConfig) -> Result<Service, String> {
        match server::connections::raise_descriptor_limit() {
            Ok(limit) => tracing::debug!(limit, "open descriptors allowed"),
            Err(error) => tracing::warn!("cannot read the descriptor limit: {error}"),
        }
        if config.cluster.is_some() && config.new_run.is_some() {
            return Err(
                "--new-run: with --nats, start runs with POST /api/runs (for every server)".into(),
            );
        }
        let metrics = Arc::new(Metrics::new(config.metrics_max_senders));
        // A stream's database refuses --new-run (Store::open) and serving without
        // --nats (the claim below): it gets runs from the stream only.
        let store = Store::open(StoreConfig {
            backend: config.backend,
            new_run: config.new_run,
            new_run_labels: config.new_run_labels,
            observer: metrics.clone(),
        })
        .map_err(|error| error.to_string())?;
        let cluster = match config.cluster {
            None => {
                store
                    .applier()
                    .claim(None)
                    .await
                    .map_err(|error| error.to_string())?;
                None
            }
            Some(cluster) => Some(
                Cluster::start(cluster, store.clone())
                    .await
                    .map_err(|error| error.to_string())?,
            ),
        };
        let tls = config
            .tls
            .map(|files| {
                ServerTls::from_files(&files.certificate, &files.key, files.client_ca.as_deref())
            })
            .transpose()?;
        let nonempty = |token: Option<String>| token.filter(|token| !token.is_empty());
        let options = Options {
            tokens: Tokens {
                write: nonempty(config.tokens.write),
                read: nonempty(config.tokens.read),
            },
            metrics,
            allowed_hosts: AllowedHosts::new(&config.allow_hosts),
            tls,
            limits: config.limits,
            cluster,
        };
        Ok(Service { store, options })
    }

    /// The run new reports go to now.
    pub fn current_run(&self) -> RunInfo {
        self.store.current_run()
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.options.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Serves `listener` until `shutdown` completes, then finishes in-flight
    /// requests and stores what is queued, giving up after [`SHUTDOWN_GRACE`].
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), String> {
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = server::run(listener, self.store, self.options, async {
            let _ = stopped.await;
        });
        tokio::pin!(server);
        tokio::select! {
            served = &mut server => return served.map_err(|error| error.to_string()),
            () = shutdown => {}
        }
        tracing::info!("shutting down: finishing in-flight requests and storing what is queued");
        let _ = stopping.send(());
        tokio::time::timeout(SHUTDOWN_GRACE, server)
            .await
            .map_err(|_| format!("shutdown took longer than {SHUTDOWN_GRACE:?}; exiting"))?
            .map_err(|error| error.to_string())
    }
}
