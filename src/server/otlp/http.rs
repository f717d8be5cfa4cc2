//! OTLP/HTTP logs: `POST /v1/logs` with an `application/x-protobuf` or
//! `application/json` (OTLP/JSON) body, plain or `Content-Encoding: gzip`, at most
//! [`MAX_REQUEST_BYTES`] before and after decompression (a gzip bomb stops there).
//! The answer is in the request's encoding: an `ExportLogsServiceResponse`, or for
//! a refusal a `google.rpc.Status` with the status the error maps to
//! ([`Error::http_status`]).

use super::LogsIngest;
use crate::error::{Error, RETRY_AFTER_SECONDS};
use crate::otlp::{ExportLogsServiceRequest, ExportLogsServiceResponse, MAX_REQUEST_BYTES, json};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;
use std::io::Read;

/// The body encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of an OTLP/HTTP refusal (its `details` unused).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `POST /v1/logs`.
pub async fn logs(State(ingest): State<LogsIngest>, request: Request) -> Response {
    let encoding = match media_type(request.headers()) {
        Some("application/x-protobuf") => Encoding::Protobuf,
        Some("application/json") => Encoding::Json,
        other => {
            let error = Error::BadRequest(format!(
                "content-type: OTLP/HTTP bodies are application/x-protobuf or application/json, \
                 not {:?}",
                other.unwrap_or_default()
            ));
            ingest.metrics.rejected(error.reason());
            return error.into_response();
        }
    };
    let decoded = match read(request).await.and_then(|body| decode(&body, encoding)) {
        Ok(decoded) => decoded,
        Err(error) => {
            ingest.metrics.rejected(error.reason());
            return refusal(encoding, error);
        }
    };
    // (`export` counts its own refusals.)
    match ingest.export(decoded).await {
        Ok(response) => answer_with(encoding, &response),
        Err(error) => refusal(encoding, error),
    }
}

/// The media type of `Content-Type`, without parameters (`; charset=utf-8`).
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or_default().trim())
}

fn too_large(what: &str) -> Error {
    Error::TooLarge(format!(
        "body: {what} is larger than {MAX_REQUEST_BYTES} bytes; nothing was stored: export \
         smaller batches"
    ))
}

/// The body, gunzipped when `Content-Encoding: gzip`, at most
/// [`MAX_REQUEST_BYTES`] either way.
async fn read(request: Request) -> Result<Vec<u8>, Error> {
    let gzip = match request.headers().get(header::CONTENT_ENCODING) {
        None => false,
        Some(value) if value == "identity" => false,
        Some(value) if value == "gzip" => true,
        Some(value) => {
            return Err(Error::BadRequest(format!(
                "content-encoding: gzip or none, not {value:?}"
            )));
        }
    };
    let body = Limited::new(request.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|error| match error.downcast_ref::<LengthLimitError>() {
            Some(_) => too_large("the request"),
            None => Error::BadRequest(format!("body: {error}")),
        })?
        .to_bytes();
    if !gzip {
        return Ok(body.to_vec());
    }
    gunzip(&body)
}

/// Undoes gzip, stopping one byte past [`MAX_REQUEST_BYTES`].
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, Error> {
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(compressed)
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|error| Error::BadRequest(format!("body: not valid gzip: {error}")))?;
    if plain.len() > MAX_REQUEST_BYTES {
        return Err(too_large("the decompressed request"));
    }
    Ok(plain)
}

fn decode(body: &[u8], encoding: Encoding) -> Result<ExportLogsServiceRequest, Error> {
    match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body).map_err(|error| {
            Error::BadRequest(format!(
                "body: not a protobuf ExportLogsServiceRequest: {error}"
            ))
        }),
        Encoding::Json => json::decode_request(body).map_err(Error::BadRequest),
    }
}

fn answer_with(encoding: Encoding, response: &ExportLogsServiceResponse) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => json::encode_response(response),
    };
    ([(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

/// A refusal as OTLP/HTTP answers one: the error's status, and a `google.rpc.Status`
/// with its gRPC code and message in the request's encoding; `Retry-After` on 503.
fn refusal(encoding: Encoding, error: Error) -> Response {
    let status = error.http_status();
    let retry = matches!(error, Error::Unavailable(_) | Error::Busy(_));
    let rpc = RpcStatus {
        code: tonic::Status::from(error.clone()).code() as i32,
        message: error.to_string(),
    };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": rpc.code, "message": rpc.message })
            .to_string()
            .into_bytes(),
    };
    let mut response = (status, Body::from(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if retry {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_undone_within_the_limit_and_a_bomb_stops_at_it() {
        assert_eq!(gunzip(&gzip(b"hello")).unwrap(), b"hello");
        let at_limit = vec![0u8; MAX_REQUEST_BYTES];
        assert_eq!(gunzip(&gzip(&at_limit)).unwrap().len(), MAX_REQUEST_BYTES);
        // 64 MiB of zeros compress to ~64 KiB; only the limit is ever inflated.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 256 << 10, "{} bytes", bomb.len());
        assert!(matches!(gunzip(&bomb), Err(Error::TooLarge(_))));
        assert!(matches!(gunzip(b"not gzip"), Err(Error::BadRequest(_))));
    }

    #[test]
    fn media_types_ignore_parameters() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(media_type(&headers), Some("application/json"));
    }
}
