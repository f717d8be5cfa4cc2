//! Bearer tokens: with a write token, every write (gRPC ingest, OTLP logs over gRPC
//! and `POST /v1/logs`, `POST /send`, `POST /api/runs`, `PUT /api/runs/{run}/labels`)
//! needs `authorization: Bearer <token>`; with a read token, so do
//! the reads of the API (the write token is accepted too, and `?token=` for the
//! browser's EventSource and downloads). The page itself, health and reflection
//! stay open. With TLS and a client CA (`--client-ca`), writes also need a client
//! certificate that verified against it (mutual TLS); reads do not.

use crate::error::Error;
use crate::metrics::Metrics;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
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

/// What the token check needs: the tokens, and where refusals are counted.
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
        || path.starts_with(crate::otlp::GRPC_PATH_PREFIX)
        || (method == Method::POST
            && (path == "/send" || path == "/api/runs" || path == crate::otlp::HTTP_PATH))
        || (method == Method::PUT && path.starts_with("/api/runs/"))
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
/// Takes the bytes as iterators so that a test can count every byte read.
fn same(
    given: impl ExactSizeIterator<Item = u8>,
    expected: impl ExactSizeIterator<Item = u8>,
) -> bool {
    given.len() == expected.len()
        && given.zip(expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
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

/// The answer to a request that needs a token it does not carry (counted):
/// `UNAUTHENTICATED` for gRPC and 401 for HTTP, so nothing reaches the store; or
/// `None` to let it through.
pub fn refusal(guard: &Guard, request: &Request) -> Option<Response> {
    let tokens = &guard.tokens;
    let access = access(request.method(), request.uri().path());
    if access == Access::Write
        && guard.client_certificates
        && !super::tls::has_client_certificate(request.extensions())
    {
        guard.metrics.rejected("client_cert");
        return Some(if super::http::is_grpc(request.headers()) {
            tonic::Status::unauthenticated(CLIENT_CERTIFICATE_REQUIRED).into_http()
        } else {
            (StatusCode::FORBIDDEN, CLIENT_CERTIFICATE_REQUIRED).into_response()
        });
    }
    let needed: Vec<&String> = match access {
        Access::Write => tokens.write.iter().collect(),
        Access::Read if tokens.read.is_some() => {
            tokens.read.iter().chain(tokens.write.iter()).collect()
        }
        Access::Read | Access::Open => Vec::new(),
    };
    if needed.is_empty()
        || presented(request).is_some_and(|given| {
            needed
                .iter()
                .any(|token| same(given.bytes(), token.bytes()))
        })
    {
        return None;
    }
    guard.metrics.rejected(Error::Unauthenticated.reason());
    Some(if super::http::is_grpc(request.headers()) {
        tonic::Status::from(Error::Unauthenticated).into_http()
    } else {
        let mut response = Error::Unauthenticated.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    })
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
        assert_eq!(access(&Method::POST, "/v1/logs"), Access::Write);
        assert_eq!(
            access(
                &Method::POST,
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
            ),
            Access::Write
        );
        assert_eq!(access(&Method::POST, "/api/runs"), Access::Write);
        assert_eq!(access(&Method::GET, "/api/runs"), Access::Read);
        assert_eq!(access(&Method::PUT, "/api/runs/3/labels"), Access::Write);
        assert_eq!(access(&Method::GET, "/messages"), Access::Read);
        assert_eq!(access(&Method::GET, "/"), Access::Open);
        assert_eq!(
            access(&Method::POST, "/grpc.health.v1.Health/Check"),
            Access::Open
        );
    }

    fn same_text(given: &str, expected: &str) -> bool {
        same(given.bytes(), expected.bytes())
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_text("secret", "secret"));
        assert!(!same_text("secreT", "secret"));
        assert!(!same_text("secret1", "secret"));
        assert!(!same_text("", "secret"));
    }

    /// The bytes of a slice, counting each one read.
    struct Counted<'a> {
        bytes: std::slice::Iter<'a, u8>,
        read: &'a std::cell::Cell<usize>,
    }

    impl Iterator for Counted<'_> {
        type Item = u8;
        fn next(&mut self) -> Option<u8> {
            let byte = self.bytes.next().copied();
            self.read.set(self.read.get() + usize::from(byte.is_some()));
            byte
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            self.bytes.size_hint()
        }
    }

    impl ExactSizeIterator for Counted<'_> {}

    /// Constant time, as far as a test can see it: a guess wrong in its first byte
    /// reads every byte of both tokens, as one wrong in its last byte and a right
    /// one do. A comparison that stops at the first difference (`==`,
    /// `Iterator::eq`) reads one byte of each for the first.
    #[test]
    fn every_byte_is_read_wherever_the_tokens_differ() {
        let expected = b"0123456789abcdef";
        for (given, equal) in [
            (b"X123456789abcdef", false),
            (b"01234567X9abcdef", false),
            (b"0123456789abcdeX", false),
            (b"0123456789abcdef", true),
        ] {
            let (read_given, read_expected) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
            let answer = same(
                Counted {
                    bytes: given.iter(),
                    read: &read_given,
                },
                Counted {
                    bytes: expected.iter(),
                    read: &read_expected,
                },
            );
            assert_eq!(answer, equal);
            assert_eq!(
                (read_given.get(), read_expected.get()),
                (16, 16),
                "{}",
                String::from_utf8_lossy(given)
            );
        }
    }
}
