//! The one error type of the service, and the one place where it becomes a gRPC
//! `Status` or an HTTP response.

use crate::event::InvalidReport;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::fmt;

/// What a client refused for a spent budget is told to wait before trying again,
/// seconds (HTTP `Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// Everything that can go wrong while serving a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A report broke a validation rule (gRPC `INVALID_ARGUMENT`, HTTP 400).
    Invalid(InvalidReport),
    /// A request parameter is malformed or out of range (`INVALID_ARGUMENT`, 400).
    BadRequest(String),
    /// The named thing (a run) does not exist (`NOT_FOUND`, 404).
    NotFound(String),
    /// The request conflicts with what exists (`ALREADY_EXISTS`, 409).
    Conflict(String),
    /// The store could not do it now; retrying later may work (`UNAVAILABLE`, 503).
    Unavailable(String),
    /// A write without the right bearer token (`UNAUTHENTICATED`, 401).
    Unauthenticated,
    /// A budget is spent (subscribers, exports, stream text): retry later
    /// (`RESOURCE_EXHAUSTED`, 503 with `Retry-After`).
    Busy(String),
    /// A request larger than its limit: retrying it cannot help, so it is a
    /// status that no OTLP exporter retries (`INVALID_ARGUMENT`, 413).
    TooLarge(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid(invalid) => invalid.fmt(f),
            Error::BadRequest(text)
            | Error::NotFound(text)
            | Error::Conflict(text)
            | Error::Unavailable(text)
            | Error::Busy(text)
            | Error::TooLarge(text) => f.write_str(text),
            Error::Unauthenticated => {
                f.write_str("authorization: a valid 'Bearer <token>' is required")
            }
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// A short label for metrics: the invalid field, or the kind of failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(invalid) => invalid.field,
            Error::BadRequest(_) => "bad_request",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unavailable(_) => "unavailable",
            Error::Unauthenticated => "unauthenticated",
            Error::Busy(_) => "busy",
            Error::TooLarge(_) => "too_large",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) | Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unavailable(_) | Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

impl From<InvalidReport> for Error {
    fn from(invalid: InvalidReport) -> Self {
        Error::Invalid(invalid)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(error: rusqlite::Error) -> Self {
        Error::Unavailable(format!("store: {error}"))
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::Invalid(_) | Error::BadRequest(_) | Error::TooLarge(_) => {
                tonic::Status::invalid_argument(message)
            }
            Error::NotFound(_) => tonic::Status::not_found(message),
            Error::Conflict(_) => tonic::Status::already_exists(message),
            Error::Unavailable(_) => tonic::Status::unavailable(message),
            Error::Unauthenticated => tonic::Status::unauthenticated(message),
            Error::Busy(_) => tonic::Status::resource_exhausted(message),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::Busy(text) = self {
            let retry = RETRY_AFTER_SECONDS.to_string();
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, retry)],
                text,
            )
                .into_response();
        }
        (self.http_status(), self.to_string()).into_response()
    }
}

/// Query-string and form rejections become a 400 that says which parameter and why.
impl From<axum::extract::rejection::QueryRejection> for Error {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Error::BadRequest(rejection.body_text())
    }
}
