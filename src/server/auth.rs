//! Bearer tokens: with a write token, every write (gRPC ingest, `POST /send`,
//! `POST /api/runs`) needs `authorization: Bearer <token>`; with a read token, so do
//! the reads of the API (the write token is accepted too, and `?token=` for the
//! browser's EventSource and downloads). The page itself, health and reflection
//! stay open. With TLS and a client CA (`--client-ca`), writes also need a client
//! certificate that verified against it (mutual TLS); reads do not.

use crate::error::Error;
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The tokens in force; `None` leaves that kind of request open.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Required for writes.
    pub write: Option<String>,
    /// Required for API reads (the write token also works).
    pub read: Option<String>,
}

/// The middleware's state: the tokens, and where refusals are counted.
#[derive(Debug)]
pub struct Guard {
    /// The tokens in force.
    pub tokens: Tokens,
    /// Counts refusals as `rejected{reason="unauthenticated"}` (or `client_cert`).
    pub metrics: Arc<Metrics>,
    /// Whether writes need a verified client certificate (mutual TLS).
    pub client_certificates: bool,
}

/// What a write without a client certificate is told, when one is required.
pub const CLIENT_CERTIFICATE_REQUIRED: &str =
    "a client certificate signed by the server's --client-ca is required for writes (mutual TLS)";

/// What a request does, for the token check.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    Write,
    Read,
    Open,
}

fn access(method: &Method, path: &str) -> Access {
    if path.starts_with("/perfstats.v1.PerformanceStats/")
        || (method == Method::POST && (path == "/send" || path == "/api/runs"))
    {
        Access::Write
    } else if path.starts_with("/api/") || path == "/messages" || path == "/metrics" {
        Access::Read
    } else {
        Access::Open
    }
}

/// Compares without stopping at the first differing byte, so timing says nothing
/// about how much of a guess was right (a wrong length still answers at once).
fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn presented(request: &Request) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_string);
    bearer.or_else(|| {
        let value = request
            .uri()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))?;
        String::from_utf8(super::legacy::percent_decode(value.as_bytes())).ok()
    })
}

/// The middleware: refuses a request that needs a token it does not carry, with
/// `UNAUTHENTICATED` for gRPC and 401 for HTTP; nothing reaches the store.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let tokens = &guard.tokens;
    let access = access(request.method(), request.uri().path());
    if access == Access::Write
        && guard.client_certificates
        && !super::tls::has_client_certificate(request.extensions())
    {
        guard.metrics.rejected("client_cert");
        return if super::http::is_grpc(request.headers()) {
            tonic::Status::unauthenticated(CLIENT_CERTIFICATE_REQUIRED).into_http()
        } else {
            (StatusCode::FORBIDDEN, CLIENT_CERTIFICATE_REQUIRED).into_response()
        };
    }
    let needed: Vec<&String> = match access {
        Access::Write => tokens.write.iter().collect(),
        Access::Read if tokens.read.is_some() => {
            tokens.read.iter().chain(tokens.write.iter()).collect()
        }
        Access::Read | Access::Open => Vec::new(),
    };
    if needed.is_empty()
        || presented(&request).is_some_and(|given| needed.iter().any(|token| same(&given, token)))
    {
        return next.run(request).await;
    }
    guard.metrics.rejected(Error::Unauthenticated.reason());
    if super::http::is_grpc(request.headers()) {
        tonic::Status::from(Error::Unauthenticated).into_http()
    } else {
        let mut response = Error::Unauthenticated.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_what_they_do() {
        assert_eq!(
            access(&Method::POST, "/perfstats.v1.PerformanceStats/ReportStat"),
            Access::Write
        );
        assert_eq!(access(&Method::POST, "/send"), Access::Write);
        assert_eq!(access(&Method::POST, "/api/runs"), Access::Write);
        assert_eq!(access(&Method::GET, "/api/runs"), Access::Read);
        assert_eq!(access(&Method::GET, "/messages"), Access::Read);
        assert_eq!(access(&Method::GET, "/"), Access::Open);
        assert_eq!(
            access(&Method::POST, "/grpc.health.v1.Health/Check"),
            Access::Open
        );
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("secret", "secret"));
        assert!(!same("secreT", "secret"));
        assert!(!same("secret1", "secret"));
        assert!(!same("", "secret"));
    }
}
