//! A small HTTP client for the terminal commands (`tail`, `export`, `runs`,
//! `compare`, `check`…): requests to the server's HTTP API (GETs, and JSON bodies
//! for the few writes), bodies read as a stream of chunks; `https://` addresses
//! over rustls with the CA (and client certificate) of a [`ClientTls`]. Given several servers, each request goes to the first that
//! answers.

use super::{ClientTls, addresses};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// How long connecting to one of several servers may take before the next is tried.
const FAILOVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one of several servers may take to answer (its status and headers;
/// a stream's body may follow for as long as it lasts) before the next is asked.
const FAILOVER_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks one server, or the first of several that answers, with an optional
/// bearer token.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The servers' base URLs, in the order they are tried (at least one).
    bases: Vec<String>,
    token: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// What happened, with the URL and the server's message.
    pub message: String,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<HttpError> for String {
    fn from(error: HttpError) -> String {
        error.message
    }
}

/// A response whose status was 2xx, read chunk by chunk.
#[derive(Debug)]
pub struct Body(Incoming);

impl Body {
    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, String> {
        loop {
            match self.0.frame().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(format!("reading the response: {error}")),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The rest of the body, as text.
    pub async fn text(mut self) -> Result<String, String> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes).map_err(|_| "the response is not UTF-8".to_string())
    }
}

impl HttpClient {
    /// A client for the one server at `base` (e.g. `http://127.0.0.1:12345`; not
    /// split at commas: a list of servers needs [`HttpClient::with_tls`]).
    /// An `https://` base needs [`HttpClient::with_tls`]: here it trusts no CA.
    pub fn new(base: &str, token: Option<String>) -> HttpClient {
        Self::build(vec![base], token, &ClientTls::default())
            .expect("no TLS settings: nothing to get wrong")
    }

    /// A client for `base`, one server's URL or several comma-separated (spaces
    /// around entries ignored, an empty entry refused), with TLS settings for
    /// `https://` ones (the CA, and optionally a client certificate); TLS settings
    /// with an `http://` base are refused rather than ignored.
    pub fn with_tls(
        base: &str,
        token: Option<String>,
        tls: &ClientTls,
    ) -> Result<HttpClient, String> {
        let bases = addresses(base)?;
        for base in &bases {
            if base.starts_with("https://") {
                tls.check().map_err(|error| format!("{base}: {error}"))?;
            } else if !tls.is_empty() {
                return Err(format!(
                    "{base}: TLS settings (--ca/--cert/--key) need an https:// address"
                ));
            }
        }
        Self::build(bases, token, tls)
    }

    fn build(
        bases: Vec<&str>,
        token: Option<String>,
        tls: &ClientTls,
    ) -> Result<HttpClient, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        if bases.len() > 1 {
            // A server that drops packets must not hold up the next one for the
            // system's connect timeout (minutes).
            http.set_connect_timeout(Some(FAILOVER_CONNECT_TIMEOUT));
        }
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls.rustls(&[])?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(connector),
            bases: bases
                .into_iter()
                .map(|base| base.trim_end_matches('/').to_string())
                .collect(),
            token,
        })
    }

    /// GETs `path_and_query`; any status but 2xx becomes an error with the
    /// server's message. With several servers it asks them in order and returns the
    /// first answer, whatever its status: a server that could not be reached (or
    /// broke the connection before answering) is passed over; when none answered,
    /// the error names each.
    pub async fn get(
        &self,
        path_and_query: &str,
        headers: &[(&str, String)],
    ) -> Result<Body, HttpError> {
        self.request(hyper::Method::GET, path_and_query, headers, Bytes::new())
            .await
    }

    /// Sends `json` with `method` (`POST`, `PUT`) to `path`, as [`HttpClient::get`]
    /// asks: the first server that answers gets it.
    pub async fn send_json(
        &self,
        method: hyper::Method,
        path: &str,
        json: &serde_json::Value,
    ) -> Result<Body, HttpError> {
        let headers = [("content-type", "application/json".to_string())];
        self.request(method, path, &headers, Bytes::from(json.to_string()))
            .await
    }

    async fn request(
        &self,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Body, HttpError> {
        let mut unanswered = Vec::new();
        for base in &self.bases {
            match self
                .request_from(base, method.clone(), path_and_query, headers, body.clone())
                .await
            {
                Err(error) if error.status.is_none() => {
                    tracing::debug!(%error, "no answer; trying the next server");
                    unanswered.push(error);
                }
                answered => return answered,
            }
        }
        if unanswered.len() == 1 {
            return Err(unanswered.remove(0));
        }
        let errors: Vec<String> = unanswered.into_iter().map(|error| error.message).collect();
        Err(HttpError {
            status: None,
            message: format!("no server answered: {}", errors.join("; ")),
        })
    }

    /// Asks the server at `base`.
    async fn request_from(
        &self,
        base: &str,
        method: hyper::Method,
        path_and_query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Body, HttpError> {
        let failed = |status: Option<u16>, message: String| HttpError { status, message };
        let url = format!("{base}{path_and_query}");
        let method_is_read = method == hyper::Method::GET;
        let mut request = hyper::Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| failed(None, format!("{url}: {error}")))?;
        let response = self.inner.request(request);
        // With others to ask, a server that accepts and never answers is passed over;
        // not for a write, which a slow server may still carry out (a second server
        // would then start a second run).
        let response = if self.bases.len() > 1 && method_is_read {
            tokio::time::timeout(FAILOVER_ANSWER_TIMEOUT, response)
                .await
                .map_err(|_| {
                    failed(
                        None,
                        format!("{url}: no answer within {FAILOVER_ANSWER_TIMEOUT:?}"),
                    )
                })?
        } else {
            response.await
        };
        let response =
            response.map_err(|error| failed(None, format!("{url}: {}", with_causes(&error))))?;
        let status = response.status();
        let body = Body(response.into_body());
        if status.is_success() {
            Ok(body)
        } else {
            let text = body.text().await.unwrap_or_default();
            Err(failed(
                Some(status.as_u16()),
                format!("{url}: {status}: {}", text.trim()),
            ))
        }
    }
}

/// An error and its causes, `a: b: c` (hyper's own says only "client error (Connect)";
/// the cause says which certificate or connection failed).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text = format!("{text}: {next_text}");
        }
        cause = next.source();
    }
    text
}

/// `text` percent-encoded for a query string.
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
