//! The one middleware every request passes, its checks in order: the browser rules
//! (`origin`), then tokens and client certificates (`auth`), then gRPC only as
//! `POST` (`grpc`); the request's body gets the first-frame deadline
//! (`first_message`); an OTLP gRPC answer meaning "oversized" becomes one its
//! exporters do not retry (`otlp`). One layer rather than one each: five `from_fn`
//! layers cost a unary call ~20 µs of the server's CPU (a quarter of it, pinned to
//! one core), each cloning and boxing the services inside it (issue 23).

use super::auth::{self, Guard};
use super::origin::{self, BrowserRules};
use super::{first_message, grpc, otlp};
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// What the checks need.
pub struct Gate {
    /// The browser rules.
    pub browsers: BrowserRules,
    /// The tokens and client certificates.
    pub guard: Guard,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// The middleware: refuses what a check refuses, else passes the request on.
pub async fn check(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    let refusal = origin::refusal(&gate.browsers, &request)
        .or_else(|| auth::refusal(&gate.guard, &request))
        .or_else(|| grpc::refusal_unless_post(&request));
    if let Some(refusal) = refusal {
        return refusal;
    }
    let otlp = otlp::is_grpc_path(request.uri().path());
    let response = next.run(first_message::with_deadline(request)).await;
    if otlp {
        otlp::oversized_not_retried(&gate.metrics, response)
    } else {
        response
    }
}
