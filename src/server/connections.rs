//! Connections: the accept loop and what one connection may hold.
//!
//! Every connection holds one of `--max-connections` shares until it closes; past
//! the cap the loop stops accepting (the kernel's backlog holds newcomers) and
//! first closes every connection with no request being handled (one that has not
//! sent a whole request yet, an idle keep-alive or HTTP/2 connection, a live stream
//! whose response is under way: browsers reconnect), so slow or idle connections
//! cannot crowd real clients out. A request whose body trickles in is being handled
//! and is not closed this way (a known gap). A connection that sends no whole
//! request within [`FIRST_REQUEST_TIMEOUT`] is closed anyway; HTTP/1 requests must
//! finish their headers within [`HEADER_READ_TIMEOUT`] (hyper's timer, which also
//! ends idle keep-alive connections); HTTP/2 connections are pinged and closed when
//! the peer stops answering. Accept errors (out of descriptors) back off instead of
//! spinning, and the descriptor limit is raised to the hard limit at start.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::Connected;
use tower::ServiceExt;

/// Connections at once, by default (lowered to fit the descriptor limit).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Descriptors kept free for the store, files and the accept loop itself.
const SPARE_DESCRIPTORS: u64 = 64;
/// How long a connection may take to send its first whole request.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 request may take to send its headers, and an idle keep-alive
/// connection may wait for its next request.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2: how often an idle connection is pinged, and how long the answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// HTTP/2 flow-control windows: large enough that a `ReportStats` stream of small
/// reports never exhausts h2's small-frame budget (half the connection window)
/// while the server is busy.
const CONNECTION_WINDOW: u32 = 8 << 20;
const STREAM_WINDOW: u32 = 2 << 20;
/// HTTP/2 streams (requests) one connection may have open at once: a node needs
/// a handful, a load generator 64; with the first-message deadline
/// ([`super::FIRST_MESSAGE_TIMEOUT`]) this bounds what streams that send only
/// headers can hold.
pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Pause after a failed accept (out of descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Raises the soft limit on open descriptors to the hard limit, as most servers do;
/// returns the soft limit in force.
pub fn raise_descriptor_limit() -> std::io::Result<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed in.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        Ok(limit.rlim_cur)
    }
}

/// The connection cap that fits `requested` into the descriptor limit in force.
pub fn fit_max_connections(requested: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !known || limit.rlim_cur == libc::RLIM_INFINITY {
        return requested.max(1);
    }
    let fits = limit.rlim_cur.saturating_sub(SPARE_DESCRIPTORS).max(1);
    requested
        .min(usize::try_from(fits).unwrap_or(usize::MAX))
        .max(1)
}

/// Serves `router` on the connections `incoming` yields, at most `max_connections`
/// at once, until `shutdown` completes; then stops accepting and waits for the
/// open connections to finish (the caller bounds how long).
pub async fn serve<IO>(
    incoming: impl Stream<Item = std::io::Result<IO>> + Send,
    router: Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
) where
    IO: AsyncRead + AsyncWrite + Connected + Send + Unpin + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .initial_stream_window_size(STREAM_WINDOW)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    let builder = Arc::new(builder);
    let shares = Arc::new(Semaphore::new(max_connections.max(1)));
    // Notified when the cap is reached: connections without a request yet close.
    let pressure = Arc::new(Notify::new());
    let graceful = GracefulShutdown::new();
    // Boxed, not pinned in place: dropping it closes the listener at shutdown.
    let mut incoming = Box::pin(incoming);
    tokio::pin!(shutdown);
    loop {
        let share = match shares.clone().try_acquire_owned() {
            Ok(share) => share,
            Err(_) => {
                pressure.notify_waiters();
                tokio::select! {
                    share = shares.clone().acquire_owned() => share.expect("never closed"),
                    () = &mut shutdown => break,
                }
            }
        };
        let io = tokio::select! {
            next = incoming.next() => match next {
                Some(Ok(io)) => io,
                Some(Err(error)) => {
                    tracing::warn!("accept: {error}; backing off");
                    pressure.notify_waiters();
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                None => break,
            },
            () = &mut shutdown => break,
        };
        let info = io.connect_info();
        let started = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = {
            let (router, started, in_flight) = (router.clone(), started.clone(), in_flight.clone());
            tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
                started.store(true, Ordering::Relaxed);
                request.extensions_mut().insert(info.clone());
                let handling = InFlight::new(in_flight.clone());
                let answer = router.clone().oneshot(request);
                async move {
                    let answer = answer.await;
                    drop(handling);
                    answer
                }
            })
        };
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        let pressure = pressure.clone();
        tokio::spawn(async move {
            let _share = share;
            tokio::pin!(connection);
            // Ends (and so closes the connection) when no whole request came in
            // time, or at the cap while no request is being handled.
            let idle = async {
                let first = tokio::time::sleep(FIRST_REQUEST_TIMEOUT);
                tokio::pin!(first);
                let mut waiting_first = true;
                loop {
                    tokio::select! {
                        () = &mut first, if waiting_first => {
                            waiting_first = false;
                            if !started.load(Ordering::Relaxed) {
                                return;
                            }
                        }
                        () = pressure.notified() => {
                            if in_flight.load(Ordering::Relaxed) == 0 {
                                return;
                            }
                        }
                    }
                }
            };
            tokio::select! {
                _ = &mut connection => {}
                () = idle => {}
            }
        });
    }
    drop(incoming); // no new connections while the open ones finish
    graceful.shutdown().await;
}

/// One request being handled on a connection, counted while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP connections accepted on `listener`, with Nagle off (without it unary
/// throughput halved).
pub fn tcp(
    listener: tokio::net::TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    })
}
