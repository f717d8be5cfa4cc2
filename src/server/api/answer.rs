//! JSON answers written within one shared byte budget: an answer is serialized,
//! takes a share of `--max-answer-bytes` for its size (or is refused 503 with
//! `Retry-After`), and is handed to the connection a chunk at a time; the share
//! comes back when its last chunk was taken, when the connection closes, when
//! the client took nothing for [`ANSWER_STALL`], or when it took longer on the
//! whole than that plus the answer's size at [`ANSWER_MIN_RATE`]. So clients that never read hold
//! at most the budget (and what hyper and the kernel buffer per connection).

use crate::error::Error;
use crate::server::AppState;
use crate::server::limits::Share;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long an answer waits for its client to take a chunk before giving up (and
/// giving its share back).
pub const ANSWER_STALL: std::time::Duration = std::time::Duration::from_secs(30);
/// Bytes handed to the connection at a time: what an answer holds outside the
/// budget once its last chunk is taken is at most about this much.
const ANSWER_CHUNK: usize = 64 << 10;
/// The slowest a client may take an answer on the whole (bytes a second, beyond
/// [`ANSWER_STALL`]): one that takes a little now and then cannot keep its share
/// for ever.
const ANSWER_MIN_RATE: u64 = 64 << 10;

/// `value` as a JSON answer, within the answer budget.
pub fn json<T: Serialize>(state: &AppState, value: &T) -> Result<Response, Error> {
    let body = serde_json::to_vec(value)
        .map_err(|error| Error::Unavailable(format!("answer: {error}")))?;
    budgeted(state, "application/json", body)
}

/// `body` (of `content_type`) as an answer, within the answer budget.
pub fn budgeted(
    state: &AppState,
    content_type: &'static str,
    mut body: Vec<u8>,
) -> Result<Response, Error> {
    let share = state.limits.answer(body.len())?;
    // What is held is what is counted, not the room serializing grew it to.
    body.shrink_to_fit();
    let length = body.len();
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        chunked(share, body),
    )
        .into_response())
}

/// A body handing `body` over a chunk at a time, holding `share` until the last
/// chunk is taken, the connection closes or the client stalls.
fn chunked(share: Share, body: Vec<u8>) -> Body {
    let (chunks, taken) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let whole = ANSWER_STALL + std::time::Duration::from_secs(body.len() as u64 / ANSWER_MIN_RATE);
    let deadline = tokio::time::Instant::now() + whole;
    tokio::spawn(async move {
        let _share = share; // given back when this ends, however it ends
        for chunk in body.chunks(ANSWER_CHUNK) {
            let stall = (tokio::time::Instant::now() + ANSWER_STALL).min(deadline);
            let sent =
                tokio::time::timeout_at(stall, chunks.send(Ok(Bytes::copy_from_slice(chunk))))
                    .await;
            // Gone, or stalled: the body ends short of its Content-Length, which
            // hyper takes for an error, closing the connection.
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    });
    Body::from_stream(ReceiverStream::new(taken))
}
