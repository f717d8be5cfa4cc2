//! Requests a browser makes on a web page's behalf. A request is from a browser when
//! it carries `Origin` or any `Sec-Fetch-*` header, or a `User-Agent` that starts
//! with `Mozilla/` (every browser's). The last matters: over plain HTTP to a DNS name
//! (not a "potentially trustworthy" origin) browsers send no `Sec-Fetch-*`, and a
//! same-origin `GET` (`fetch`, `EventSource`) sends no `Origin`, so a rebinding page
//! reading `/api/reports` carries only its `Host` and the browser's `User-Agent`
//! (checked in Chromium by `tests/browser/security.test.mjs`). Nodes, scripts,
//! grpcurl, Prometheus and the legacy Go nodes send none of these and are never
//! refused here. For browsers:
//!
//! - **Host** (against DNS rebinding): the `Host` must be an IP literal, `localhost`,
//!   or a name allowed with `--allow-host` (`*`: any). A page on a rebinding domain
//!   that now resolves to this server still names its own domain in `Host`.
//! - **Writes** (anything but `GET`, `HEAD`, `OPTIONS`) must be same-origin: `Origin`,
//!   when present, must be this server's own (its scheme, and the `Host` it was sent
//!   to), and `Sec-Fetch-Site`, when present, must be `same-origin`. Browsers send
//!   `Origin` with every `POST` (same-origin or not), so a cross-site form POST to
//!   `/send` never stores; a write with neither header (Node's `fetch` sends only
//!   `Sec-Fetch-Mode`) is not a page's and passes.
//!
//! Residual risk: a page in a browser that lets scripts set `User-Agent` (Firefox
//! does, for `fetch`) can hide a rebinding read; a `--read-token`, or the default
//! loopback address, covers that.
//!
//! Refusals are 403 (gRPC: `PERMISSION_DENIED`), counted as
//! `rejected{reason="host"}` or `rejected{reason="cross_origin"}`.

use crate::metrics::Metrics;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// The DNS names browsers may use to reach the server besides `localhost` and IP
/// literals (`--allow-host`). Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    names: Vec<String>,
    any: bool,
}

impl AllowedHosts {
    /// These names (case-insensitive, without port); `*` allows any name.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> AllowedHosts {
        let mut allowed = AllowedHosts::default();
        for name in names {
            let name = normalize(name.as_ref().trim());
            if name == "*" {
                allowed.any = true;
            } else if !name.is_empty() {
                allowed.names.push(name);
            }
        }
        allowed
    }

    /// Whether a browser may name `host` (the `Host` header, port included or not).
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        if is_ip_literal(name) {
            return true;
        }
        let name = normalize(name);
        name == "localhost" || self.any || self.names.contains(&name)
    }
}

/// Lower case, without the root's trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The name part of a `Host` value: without the port, IPv6 still in brackets.
fn host_name(host: &str) -> Option<&str> {
    if host.is_empty() {
        return None;
    }
    if host.starts_with('[') {
        let end = host.find(']')?;
        let rest = &host[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return Some(&host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if is_port(port) && !name.contains(':') => Some(name),
        Some(_) => None,
        None => Some(host),
    }
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_ip_literal(name: &str) -> bool {
    match name
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
        None => name.parse::<Ipv4Addr>().is_ok(),
    }
}

/// `(host, port)` of an authority, lower case, the scheme's default port filled in.
fn authority(text: &str, scheme: &str) -> Option<(String, u16)> {
    let name = host_name(text)?;
    let port = match &text[name.len()..] {
        "" => match scheme {
            "https" => 443,
            "http" => 80,
            _ => return None,
        },
        rest => rest.strip_prefix(':')?.parse().ok()?,
    };
    Some((normalize(name), port))
}

/// Whether a request was made by a browser (for a page, a form, a script).
pub fn from_browser(headers: &HeaderMap) -> bool {
    headers.contains_key(header::ORIGIN)
        || headers
            .keys()
            .any(|name| name.as_str().starts_with("sec-fetch-"))
        || headers
            .get(header::USER_AGENT)
            .is_some_and(|agent| agent.as_bytes().starts_with(b"Mozilla/"))
}

/// Why a browser request was refused: the metrics reason and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `host` or `cross_origin`.
    pub reason: &'static str,
    /// What was wrong and what to do about it.
    pub message: String,
}

/// The `Host` a request was sent to: the header, else (HTTP/2) the URI's authority.
fn requested_host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| uri.authority().map(|authority| authority.as_str()))
}

/// The whole rule, without I/O: `Ok` for a request that may proceed. `scheme` is the
/// server's (`http` or `https`).
pub fn apply_browser_rules(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    scheme: &str,
    allowed: &AllowedHosts,
) -> Result<(), Refusal> {
    if !from_browser(headers) {
        return Ok(());
    }
    let host = requested_host(headers, uri).unwrap_or_default();
    if !allowed.allows(host) {
        let name = host_name(host).unwrap_or(host);
        return Err(Refusal {
            reason: "host",
            message: format!(
                "Host {host:?} is not allowed for browser requests (DNS rebinding protection): \
                 open the server by IP address or localhost, or start it with \
                 --allow-host {name} (env PERFSTATS_ALLOW_HOST)"
            ),
        });
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let cross = |message: String| {
        Err(Refusal {
            reason: "cross_origin",
            message: format!("cross-origin write refused: {message}"),
        })
    };
    let origin = headers.get(header::ORIGIN).map(|value| value.to_str());
    let site = headers
        .get("sec-fetch-site")
        .map(|value| value.to_str().unwrap_or_default());
    if let Some(site) = site
        && site != "same-origin"
    {
        return cross(format!(
            "Sec-Fetch-Site is {site:?}; only pages served by this server may write"
        ));
    }
    if let Some(origin) = origin {
        let origin = origin.unwrap_or_default();
        let own = authority(host, scheme);
        let same = origin
            .split_once("://")
            .filter(|(origin_scheme, _)| origin_scheme.eq_ignore_ascii_case(scheme))
            .and_then(|(origin_scheme, rest)| authority(rest, &origin_scheme.to_ascii_lowercase()))
            .is_some_and(|theirs| Some(theirs) == own);
        if !same {
            return cross(format!(
                "Origin {origin:?} is not this server's ({scheme}://{host}); \
                 only pages served by this server may write"
            ));
        }
    }
    Ok(())
}

/// The middleware's state.
#[derive(Debug)]
pub struct BrowserRules {
    /// Names allowed besides IP literals and `localhost`.
    pub allowed: AllowedHosts,
    /// The server's scheme: `https` with TLS, else `http`.
    pub scheme: &'static str,
    /// Where refusals are counted.
    pub metrics: Arc<Metrics>,
}

/// The answer to a browser request to a foreign `Host` or a cross-origin browser
/// write (counted), or `None` to let it through; the gate asks this before anything
/// else (tokens, handlers) sees the request.
pub fn refusal(rules: &BrowserRules, request: &Request) -> Option<Response> {
    let refusal = apply_browser_rules(
        request.method(),
        request.uri(),
        request.headers(),
        rules.scheme,
        &rules.allowed,
    )
    .err()?;
    rules.metrics.rejected(refusal.reason);
    Some(if super::http::is_grpc(request.headers()) {
        tonic::Status::permission_denied(refusal.message).into_http()
    } else {
        (StatusCode::FORBIDDEN, refusal.message).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::ServiceExt;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn verdict(
        method: Method,
        pairs: &[(&str, &str)],
        allowed: &[&str],
    ) -> Result<(), &'static str> {
        apply_browser_rules(
            &method,
            &Uri::from_static("/send"),
            &headers(pairs),
            "http",
            &AllowedHosts::new(allowed),
        )
        .map_err(|refusal| refusal.reason)
    }

    #[test]
    fn host_names_are_split_from_ports() {
        assert_eq!(host_name("127.0.0.1:12345"), Some("127.0.0.1"));
        assert_eq!(host_name("localhost"), Some("localhost"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("[::1]"), Some("[::1]"));
        assert_eq!(host_name("::1"), None, "IPv6 needs brackets");
        assert_eq!(host_name("a:b"), None);
        assert_eq!(host_name("[::1]x"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn ip_literals_and_localhost_always_pass_other_names_need_allowing() {
        let none = AllowedHosts::default();
        for host in [
            "127.0.0.1",
            "127.0.0.1:12345",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:12345",
            "[fe80::1]:1",
            "localhost",
            "LOCALHOST:12345",
            "localhost.:1",
        ] {
            assert!(none.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:12345",
            "perfstats:12345",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "0x7f.1",
            "",
            "[zz]",
        ] {
            assert!(!none.allows(host), "{host}");
        }
        let some = AllowedHosts::new(["Evil.Example", " perfstats "]);
        assert!(some.allows("evil.example:1"));
        assert!(some.allows("PERFSTATS:12345"));
        assert!(!some.allows("other.example"));
        assert!(AllowedHosts::new(["*"]).allows("anything.example:9"));
        assert!(
            !AllowedHosts::new(["*"]).allows(""),
            "a Host is still needed"
        );
    }

    #[test]
    fn non_browsers_are_never_refused() {
        for method in [Method::GET, Method::POST] {
            assert_eq!(
                verdict(method.clone(), &[("host", "perfstats:12345")], &[]),
                Ok(())
            );
            assert_eq!(
                verdict(method.clone(), &[("host", "evil.example")], &[]),
                Ok(())
            );
            assert_eq!(verdict(method, &[], &[]), Ok(()));
        }
    }

    #[test]
    fn browser_requests_need_an_allowed_host() {
        let rebinding = [("host", "evil.example:12345"), ("sec-fetch-mode", "cors")];
        assert_eq!(verdict(Method::GET, &rebinding, &[]), Err("host"));
        assert_eq!(verdict(Method::GET, &rebinding, &["evil.example"]), Ok(()));
        assert_eq!(verdict(Method::GET, &rebinding, &["*"]), Ok(()));
        let with_origin = [
            ("host", "evil.example:12345"),
            ("origin", "http://evil.example:12345"),
        ];
        assert_eq!(verdict(Method::GET, &with_origin, &[]), Err("host"));
        assert_eq!(verdict(Method::POST, &with_origin, &[]), Err("host"));
        assert_eq!(
            verdict(Method::POST, &with_origin, &["evil.example"]),
            Ok(()),
            "an allowed name is the server's own origin"
        );
        assert_eq!(
            verdict(Method::GET, &[("sec-fetch-dest", "document")], &[]),
            Err("host")
        );
        // What a rebinding page's fetch() over plain HTTP carries: no Origin, no
        // Sec-Fetch-*, but the browser's User-Agent.
        let chromium = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                        HeadlessChrome/156.0.0.0 Safari/537.36";
        let plain_rebinding = [("host", "evil.example:12345"), ("user-agent", chromium)];
        assert_eq!(verdict(Method::GET, &plain_rebinding, &[]), Err("host"));
        for agent in [
            "curl/8.5.0",
            "Go-http-client/1.1",
            "Prometheus/2.53.0",
            "node",
        ] {
            let script = [("host", "perfstats:12345"), ("user-agent", agent)];
            assert_eq!(verdict(Method::GET, &script, &[]), Ok(()), "{agent}");
            assert_eq!(verdict(Method::POST, &script, &[]), Ok(()), "{agent}");
        }
    }

    #[test]
    fn browser_writes_must_be_same_origin() {
        let host = ("host", "127.0.0.1:12345");
        let ok = |pairs: &[(&str, &str)]| verdict(Method::POST, pairs, &[]);
        assert_eq!(ok(&[host, ("origin", "http://127.0.0.1:12345")]), Ok(()));
        assert_eq!(
            ok(&[
                host,
                ("origin", "http://127.0.0.1:12345"),
                ("sec-fetch-site", "same-origin")
            ]),
            Ok(())
        );
        assert_eq!(ok(&[host, ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(
            ok(&[("host", "localhost"), ("origin", "http://LOCALHOST:80")]),
            Ok(())
        );
        assert_eq!(
            ok(&[("host", "[::1]:7"), ("origin", "http://[::1]:7")]),
            Ok(())
        );
        for refused in [
            &[host, ("origin", "http://evil.example")][..],
            &[host, ("origin", "http://127.0.0.1:9999")],
            &[host, ("origin", "https://127.0.0.1:12345")],
            &[host, ("origin", "null")],
            &[host, ("origin", "")],
            &[
                host,
                ("origin", "http://127.0.0.1:12345"),
                ("sec-fetch-site", "same-site"),
            ],
            &[host, ("sec-fetch-site", "cross-site")],
            &[host, ("sec-fetch-site", "same-site")],
            &[host, ("sec-fetch-site", "none")],
            &[
                host,
                ("sec-fetch-mode", "no-cors"),
                ("origin", "http://evil.example"),
            ],
        ] {
            assert_eq!(ok(refused), Err("cross_origin"), "{refused:?}");
        }
        // Node's fetch: Sec-Fetch-Mode only, no Origin: not a page's write.
        assert_eq!(ok(&[host, ("sec-fetch-mode", "cors")]), Ok(()));
        // Reads from other origins are fine (CORS keeps their answers from the page).
        assert_eq!(
            verdict(Method::GET, &[host, ("origin", "http://evil.example")], &[]),
            Ok(())
        );
        // Over TLS, the origin's scheme is https.
        let tls = apply_browser_rules(
            &Method::POST,
            &Uri::from_static("/send"),
            &headers(&[("host", "127.0.0.1:443"), ("origin", "https://127.0.0.1")]),
            "https",
            &AllowedHosts::default(),
        );
        assert_eq!(tls, Ok(()));
    }

    #[test]
    fn http2_requests_use_the_authority() {
        let uri: Uri = "https://localhost:8443/api/runs".parse().unwrap();
        let pairs = headers(&[("origin", "https://localhost:8443")]);
        let judged = |host: &str| {
            let uri: Uri = format!("https://{host}/api/runs").parse().unwrap();
            apply_browser_rules(
                &Method::POST,
                &uri,
                &pairs,
                "https",
                &AllowedHosts::default(),
            )
        };
        assert_eq!(
            apply_browser_rules(
                &Method::POST,
                &uri,
                &pairs,
                "https",
                &AllowedHosts::default()
            ),
            Ok(())
        );
        assert_eq!(judged("evil.example:8443").unwrap_err().reason, "host");
        assert_eq!(judged("127.0.0.1:8443").unwrap_err().reason, "cross_origin");
    }

    /// The rules as a middleware of their own.
    async fn check(
        axum::extract::State(rules): axum::extract::State<Arc<BrowserRules>>,
        request: Request,
        next: axum::middleware::Next,
    ) -> Response {
        match refusal(&rules, &request) {
            Some(refusal) => refusal,
            None => next.run(request).await,
        }
    }

    /// The rules in a router, without a socket: refusals never reach the handler.
    #[tokio::test]
    async fn the_middleware_refuses_before_the_handler_and_counts() {
        let stored = Arc::new(AtomicUsize::new(0));
        let metrics = Arc::new(Metrics::default());
        let counter = stored.clone();
        let app = Router::new()
            .route(
                "/send",
                post(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    async { "ACK" }
                }),
            )
            .route("/api/reports", get(|| async { "{}" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(BrowserRules {
                    allowed: AllowedHosts::default(),
                    scheme: "http",
                    metrics: metrics.clone(),
                }),
                check,
            ));
        let call = |method: &str, path: &str, pairs: &[(&str, &str)]| {
            let mut request = Request::builder().method(method).uri(path);
            for (name, value) in pairs {
                request = request.header(*name, *value);
            }
            let request = request
                .body(Body::from("time=1&sender=s&eventtype=83&message=m"))
                .unwrap();
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 16)
                    .await
                    .unwrap();
                (status, String::from_utf8(body.to_vec()).unwrap())
            }
        };
        let form = ("content-type", "application/x-www-form-urlencoded");
        let (status, body) = call(
            "POST",
            "/send",
            &[
                ("host", "127.0.0.1:12345"),
                ("origin", "http://evil.example"),
                form,
            ],
        )
        .await;
        assert_eq!(status, 403);
        assert!(
            body.contains("cross-origin") && body.contains("evil.example"),
            "{body}"
        );
        let (status, body) = call(
            "GET",
            "/api/reports",
            &[("host", "evil.example:12345"), ("sec-fetch-mode", "cors")],
        )
        .await;
        assert_eq!(status, 403);
        assert!(body.contains("--allow-host evil.example"), "{body}");
        assert_eq!(stored.load(Ordering::SeqCst), 0);
        let (status, body) = call("POST", "/send", &[("host", "perfstats:12345"), form]).await;
        assert_eq!((status, body.as_str()), (200, "ACK"));
        let (status, _) = call(
            "POST",
            "/send",
            &[
                ("host", "127.0.0.1:12345"),
                ("origin", "http://127.0.0.1:12345"),
                form,
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(stored.load(Ordering::SeqCst), 2);
        let grpc = call(
            "POST",
            "/send",
            &[
                ("host", "evil.example"),
                ("origin", "http://evil.example"),
                ("content-type", "application/grpc"),
            ],
        )
        .await;
        assert_eq!(grpc.0, 200, "gRPC refusals are statuses");
        let exposition = metrics.encode(Default::default(), &[]);
        assert!(
            exposition.contains(r#"reason="cross_origin"} 1"#),
            "{exposition}"
        );
        assert!(exposition.contains(r#"reason="host"} 2"#), "{exposition}");
    }
}
