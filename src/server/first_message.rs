//! A request's body must start within [`FIRST_MESSAGE_TIMEOUT`]: a request (an
//! HTTP/2 stream, above all) that sends its headers and then nothing holds the
//! server's per-stream state for as long as the client likes, and a few thousand
//! connections of such streams add up to gigabytes. Past the deadline the body
//! ends with an error, the handler answers (gRPC: the call fails) and the stream is
//! freed. Once the first frame has come, the deadline is gone: a `ReportStats`
//! stream may take its time between reports (its text is budgeted elsewhere). A
//! body that is complete with its headers (a `GET`) never starts a timer, and one
//! whose first frame is there when first read (most unary calls) never does either.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// How long a request's body may take to send its first frame.
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// `request` with the deadline on its body (unless it has none to wait for).
pub fn with_deadline(request: Request) -> Request {
    if request.body().is_end_stream() {
        return request;
    }
    request.map(|body| {
        Body::new(FirstFrameDeadline {
            inner: body,
            timer: Timer::NotStarted,
        })
    })
}

/// A body whose first frame must come within [`FIRST_MESSAGE_TIMEOUT`] of the
/// first time it is waited for.
struct FirstFrameDeadline {
    inner: Body,
    timer: Timer,
}

enum Timer {
    /// The body has not been waited for yet.
    NotStarted,
    Running(Pin<Box<tokio::time::Sleep>>),
    /// A frame came (or the deadline passed): nothing more to watch.
    Done,
}

impl HttpBody for FirstFrameDeadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.timer = Timer::Done;
            return Poll::Ready(frame);
        }
        if let Timer::NotStarted = this.timer {
            this.timer = Timer::Running(Box::pin(tokio::time::sleep(FIRST_MESSAGE_TIMEOUT)));
        }
        let expired = match &mut this.timer {
            Timer::Running(sleep) => sleep.as_mut().poll(cx).is_ready(),
            _ => false,
        };
        if !expired {
            return Poll::Pending;
        }
        this.timer = Timer::Done;
        Poll::Ready(Some(Err(axum::Error::new(format!(
            "the request sent no body within {FIRST_MESSAGE_TIMEOUT:?} of its headers"
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
