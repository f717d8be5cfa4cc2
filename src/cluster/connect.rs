//! How a server connects to NATS: TLS (`--nats-ca`, `--nats-cert`/`--nats-key`),
//! credentials (`--nats-creds`, `--nats-user`/`--nats-password`, `--nats-token`) and
//! the client's `ConnectOptions` (reconnecting by itself, forever).
//!
//! With `--nats-ca` TLS is required on every URL, verified against that CA only:
//! never a fallback to plaintext. Secrets never reach a log line or `Debug`. When
//! NATS refuses this server (`refusal`: wrong credentials, a certificate that does
//! not verify, plaintext to a TLS port) it is said once, in one line naming the
//! flag to check, and again only when the reason changes.

mod diagnose;
mod refusal;

pub(super) use refusal::Refusal;

use crate::error::Error;
use crate::pem::{certificates, private_key, provider, read, roots};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long one attempt to connect to one NATS server may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

/// How this server proves itself to NATS and checks NATS's certificate: at most
/// one kind of credentials (a creds file, a user and password, or a token), and
/// TLS with a CA of its own. `Debug` shows `<set>` for secrets.
#[derive(Clone, Default)]
pub struct NatsAccess {
    /// TLS to NATS, verified against this CA certificate (PEM); with it TLS is
    /// required on every URL.
    pub ca: Option<PathBuf>,
    /// This server's client certificate (PEM), for NATS servers that verify
    /// clients; with `key`, and needs `ca`.
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// A NATS credentials file (a user JWT and its NKey seed).
    pub creds: Option<PathBuf>,
    /// A NATS user name; with `password`.
    pub user: Option<String>,
    /// The password of `user`.
    pub password: Option<String>,
    /// A NATS authorization token.
    pub token: Option<String>,
}

impl std::fmt::Debug for NatsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<set>");
        f.debug_struct("NatsAccess")
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("creds", &self.creds)
            .field("user", &self.user)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .finish()
    }
}

impl NatsAccess {
    /// Refuses flags that go together given alone, and more than one kind of
    /// credentials; the error names the flags.
    pub fn check(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err("--nats-cert needs --nats-key (its private key)".into()),
            (None, Some(_)) => return Err("--nats-key needs --nats-cert".into()),
            (Some(_), Some(_)) if self.ca.is_none() => {
                return Err(
                    "--nats-cert needs --nats-ca (the CA that signed the NATS servers' certificates)"
                        .into(),
                );
            }
            _ => {}
        }
        match (&self.user, &self.password) {
            (Some(_), None) => return Err("--nats-user needs --nats-password".into()),
            (None, Some(_)) => return Err("--nats-password needs --nats-user".into()),
            _ => {}
        }
        let kinds: Vec<&str> = [
            (self.creds.is_some(), "--nats-creds"),
            (self.user.is_some(), "--nats-user/--nats-password"),
            (self.token.is_some(), "--nats-token"),
        ]
        .into_iter()
        .filter_map(|(given, flags)| given.then_some(flags))
        .collect();
        if kinds.len() > 1 {
            return Err(format!(
                "{}: give one kind of NATS credentials, not several",
                kinds.join(" and ")
            ));
        }
        Ok(())
    }

    /// The TLS configuration of `--nats-ca` (and the client certificate), if TLS
    /// is asked for; errors name the flag and the file.
    fn tls(&self) -> Result<Option<rustls::ClientConfig>, String> {
        let Some(ca) = &self.ca else {
            return Ok(None);
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS: {error}"))?
            .with_root_certificates(roots(&read(ca, "--nats-ca")?, "--nats-ca")?);
        Ok(Some(match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(
                    certificates(&read(cert, "--nats-cert")?, "--nats-cert")?,
                    private_key(&read(key, "--nats-key")?, "--nats-key")?,
                )
                .map_err(|error| format!("--nats-cert/--nats-key: {error}"))?,
            _ => builder.with_no_client_auth(),
        }))
    }

    /// The client's options: name, reconnection, TLS and credentials (secrets are
    /// handed to the client, never formatted).
    fn options(
        &self,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<async_nats::ConnectOptions, String> {
        let mut options = async_nats::ConnectOptions::new()
            .name("perfstats")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .ping_interval(super::frozen::PING_INTERVAL)
            // JetStream API requests (stream info, consumers) wait the client's
            // request timeout, not the context's: 10 s unless set.
            .request_timeout(Some(super::PUBLISH_TIMEOUT))
            .connection_timeout(CONNECTION_TIMEOUT)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(1000))
            });
        if let Some(tls) = tls {
            options = options.require_tls(true).tls_client_config(tls);
        }
        if let Some(creds) = &self.creds {
            let text = read(creds, "--nats-creds")?;
            let text = String::from_utf8(text)
                .map_err(|_| format!("--nats-creds {}: not a text file", creds.display()))?;
            options = options.credentials(&text).map_err(|error| {
                format!(
                    "--nats-creds {}: not a NATS credentials file (a user JWT and an NKey seed): {error}",
                    creds.display()
                )
            })?;
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        Ok(options)
    }
}

/// Connects to `urls` with `access`, reconnecting by itself from then on (the
/// client answers at once; it reaches NATS in the background). The [`Refusal`]
/// says why NATS refuses this server, while it does. An error here is a flag
/// that cannot work (a missing file, flags that do not go together).
pub(super) async fn connect(
    urls: &[String],
    access: &NatsAccess,
) -> Result<(async_nats::Client, Arc<Refusal>), Error> {
    let bad = |error: String| Error::BadRequest(error);
    access.check().map_err(bad)?;
    let tls = access.tls().map_err(bad)?;
    let addresses = urls
        .iter()
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|error| Error::BadRequest(format!("--nats {url}: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let watcher = refusal::Watcher::new(addresses.clone(), access, tls.clone().map(Arc::new));
    let refusal = watcher.refusal();
    let client = access
        .options(tls)
        .map_err(bad)?
        .event_callback(move |event| {
            watcher.clone().on_event(event);
            async {}
        })
        .connect(addresses)
        .await
        .map_err(|error| Error::BadRequest(format!("--nats: {error}")))?;
    Ok((client, refusal))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> NatsAccess {
        NatsAccess::default()
    }

    #[test]
    fn flags_that_go_together_are_refused_alone_naming_them() {
        let cert_alone = NatsAccess {
            cert: Some("c.pem".into()),
            ca: Some("ca.pem".into()),
            ..access()
        };
        assert!(cert_alone.check().unwrap_err().contains("--nats-key"));
        let key_alone = NatsAccess {
            key: Some("k.pem".into()),
            ..access()
        };
        assert!(key_alone.check().unwrap_err().contains("--nats-cert"));
        let no_ca = NatsAccess {
            cert: Some("c.pem".into()),
            key: Some("k.pem".into()),
            ..access()
        };
        assert!(no_ca.check().unwrap_err().contains("--nats-ca"));
        let user_alone = NatsAccess {
            user: Some("perfstats".into()),
            ..access()
        };
        assert!(user_alone.check().unwrap_err().contains("--nats-password"));
        let password_alone = NatsAccess {
            password: Some("secret".into()),
            ..access()
        };
        assert!(password_alone.check().unwrap_err().contains("--nats-user"));
    }

    #[test]
    fn two_kinds_of_credentials_are_refused_naming_both() {
        let both = NatsAccess {
            token: Some("t".into()),
            creds: Some("a.creds".into()),
            ..access()
        };
        let error = both.check().unwrap_err();
        assert!(
            error.contains("--nats-creds") && error.contains("--nats-token"),
            "{error}"
        );
        let fine = NatsAccess {
            user: Some("perfstats".into()),
            password: Some("secret".into()),
            ca: Some("ca.pem".into()),
            ..access()
        };
        assert_eq!(fine.check(), Ok(()));
    }

    #[test]
    fn debug_shows_no_secret() {
        let access = NatsAccess {
            user: Some("perfstats".into()),
            password: Some("hunter2-password".into()),
            token: Some("hunter2-token".into()),
            ..access()
        };
        let shown = format!("{access:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("<set>") && shown.contains("perfstats"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let access = NatsAccess {
            ca: Some("/nonexistent/ca.pem".into()),
            ..access()
        };
        let error = access.tls().unwrap_err();
        assert!(
            error.starts_with("--nats-ca /nonexistent/ca.pem"),
            "{error}"
        );
    }
}
