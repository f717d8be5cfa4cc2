//! Why NATS refuses this server, from the client's events: an authorization
//! violation names the credential flags to check; a failed attempt that may be
//! TLS's is looked into by [`diagnose`](super::diagnose). Each reason is logged
//! once, and again only when it changes; a connection clears it.

use super::NatsAccess;
use super::diagnose::{self, Finding};
use async_nats::{ClientError, ConnectErrorKind, Event, ServerAddr, ServerError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shortest pause between two looks into failed attempts (the client tries
/// again every 0.1–1 s).
const DIAGNOSE_EVERY: Duration = Duration::from_secs(1);

/// Why NATS refuses this server now, if it does: one line, naming the flag to
/// check, with no secret in it.
#[derive(Debug, Default)]
pub(in crate::cluster) struct Refusal {
    reason: Mutex<Option<String>>,
}

impl Refusal {
    /// The reason NATS refuses this server, while it does.
    pub(in crate::cluster) fn reason(&self) -> Option<String> {
        self.reason.lock().unwrap().clone()
    }
}

/// Follows the client's events and keeps the [`Refusal`] and the log current.
pub(super) struct Watcher {
    urls: Vec<ServerAddr>,
    /// What to say about an authorization violation.
    credentials: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// `--nats-ca FILE`, for the lines that name it.
    ca: String,
    /// `--nats-cert FILE`, if one is given.
    cert: Option<String>,
    refusal: Arc<Refusal>,
    /// A look into failed attempts is under way.
    diagnosing: AtomicBool,
    /// When the last one ended.
    diagnosed_at: Mutex<Option<Instant>>,
    /// Permission violations already logged (each once).
    violations: Mutex<Vec<String>>,
}

impl Watcher {
    pub(super) fn new(
        urls: Vec<ServerAddr>,
        access: &NatsAccess,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Arc<Watcher> {
        let flag = |name: &str, path: &Option<std::path::PathBuf>| {
            path.as_ref()
                .map(|path| format!("{name} {}", path.display()))
        };
        let credentials = if let Some(user) = &access.user {
            format!("for user {user}: check --nats-user/--nats-password")
        } else if access.token.is_some() {
            "with --nats-token: check the token".to_string()
        } else if let Some(creds) = flag("--nats-creds", &access.creds) {
            format!(
                "with the credentials of {creds}: check that the NATS servers trust its account and user"
            )
        } else if let Some(cert) = flag("--nats-cert", &access.cert) {
            format!(
                "for the client certificate {cert}: the NATS servers want credentials \
                 (--nats-user/--nats-password, --nats-token or --nats-creds) or map no user to it"
            )
        } else {
            "without credentials: the NATS servers require them: give --nats-user/--nats-password, \
             --nats-token or --nats-creds"
                .to_string()
        };
        Arc::new(Watcher {
            urls,
            credentials,
            tls,
            ca: flag("--nats-ca", &access.ca).unwrap_or_default(),
            cert: flag("--nats-cert", &access.cert),
            refusal: Arc::default(),
            diagnosing: AtomicBool::new(false),
            diagnosed_at: Mutex::new(None),
            violations: Mutex::new(Vec::new()),
        })
    }

    pub(super) fn refusal(&self) -> Arc<Refusal> {
        self.refusal.clone()
    }

    /// Notes one event of the client.
    pub(super) fn on_event(self: Arc<Self>, event: Event) {
        match event {
            Event::Connected => {
                if self.refusal.reason.lock().unwrap().take().is_some() {
                    tracing::info!("NATS: connected; the refusal above is resolved");
                } else {
                    tracing::info!("NATS: connected");
                }
            }
            Event::Disconnected => tracing::info!("NATS: disconnected; reconnecting"),
            Event::ServerError(ServerError::AuthorizationViolation) => self.refuse_credentials(),
            Event::ServerError(ServerError::Other(text)) => self.server_error(text),
            Event::ClientError(ClientError::Other(kind)) => {
                if kind == ConnectErrorKind::AuthorizationViolation.to_string() {
                    self.refuse_credentials();
                } else if kind == ConnectErrorKind::Authentication.to_string() {
                    self.refuse(format!(
                        "NATS: cannot sign the server's challenge {}",
                        self.credentials
                    ));
                } else if [
                    ConnectErrorKind::Io,
                    ConnectErrorKind::Tls,
                    ConnectErrorKind::TimedOut,
                ]
                .iter()
                .any(|failed| kind == failed.to_string())
                {
                    self.diagnose();
                } else {
                    tracing::debug!("NATS: {kind}");
                }
            }
            other => tracing::debug!("NATS: {other}"),
        }
    }

    fn refuse_credentials(&self) {
        self.refuse(format!(
            "NATS: authorization violation {}",
            self.credentials
        ));
    }

    /// Records `line` as the reason, logging it unless it is the one logged last.
    fn refuse(&self, line: String) {
        let mut reason = self.refusal.reason.lock().unwrap();
        if reason.as_deref() != Some(line.as_str()) {
            tracing::error!("{line}; writes answer UNAVAILABLE until this is fixed");
            *reason = Some(line);
        }
    }

    /// A `-ERR` on a connection: permission violations each logged once (they
    /// mean the NATS user lacks a permission perfstats needs), the rest at debug.
    fn server_error(&self, text: String) {
        if !text.to_lowercase().contains("permissions violation") {
            tracing::debug!("NATS: server error: {text}");
            return;
        }
        let mut logged = self.violations.lock().unwrap();
        if !logged.contains(&text) {
            tracing::error!(
                "NATS: {text}: the NATS user lacks a permission perfstats needs (see the \
                 README's NATS server config)"
            );
            logged.push(text);
        }
    }

    /// Looks into why attempts fail, in the background, at most once a
    /// [`DIAGNOSE_EVERY`]: a server that cannot be reached is no refusal, TLS that
    /// fails is.
    fn diagnose(self: Arc<Self>) {
        if self
            .diagnosed_at
            .lock()
            .unwrap()
            .is_some_and(|at| at.elapsed() < DIAGNOSE_EVERY)
            || self.diagnosing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tokio::spawn(async move {
            for url in &self.urls {
                let finding = diagnose::tls(url, self.tls.clone(), self.cert.is_some()).await;
                if let Some(line) = self.describe(url, finding) {
                    self.refuse(line);
                    break;
                }
            }
            *self.diagnosed_at.lock().unwrap() = Some(Instant::now());
            self.diagnosing.store(false, Ordering::Release);
        });
    }

    /// The line for what a look at `url` found, if it is a refusal.
    fn describe(&self, url: &ServerAddr, finding: Finding) -> Option<String> {
        let at = format!("{}:{}", url.host(), url.port());
        Some(match finding {
            Finding::Fine | Finding::Unreachable => return None,
            Finding::TlsRequired => format!(
                "NATS: {at} requires TLS, and without --nats-ca its certificate is checked \
                 against the system's roots only: give --nats-ca with the CA that signed it"
            ),
            Finding::NoTls => format!(
                "NATS: {at} does not offer TLS, and {} requires it: configure TLS on the NATS \
                 server (a tls block), or leave out --nats-ca",
                self.ca
            ),
            Finding::ClientCertificateRequired => {
                format!("NATS: {at} requires a client certificate: give --nats-cert and --nats-key")
            }
            Finding::ServerCertificate(why) => format!(
                "NATS: TLS certificate of {at} does not verify against {}: {why}",
                self.ca
            ),
            Finding::ClientCertificateRefused(why) => format!(
                "NATS: {at} refused the client certificate {}: {why}",
                self.cert.as_deref().unwrap_or("(none given)")
            ),
            Finding::Handshake(why) => format!("NATS: TLS with {at} failed: {why}"),
        })
    }
}
