//! The server's deadlines, each checked just before it passes (the connection still
//! open, the export still held) and just after (closed, abandoned), on a frozen
//! clock ([`support::FrozenClock`]): exact, and milliseconds of real time instead of
//! the 10 to 60 s they stand for. In-process servers on 127.0.0.1:0; TLS handshakes
//! are in `tests/tls.rs`.

mod support;

use perfstats::pb::PerformanceData;
use perfstats::server::LimitsConfig;
use perfstats::{Event, PerformanceData as Data};
use std::time::Duration;
use support::FrozenClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long, in real time, any one wait here may take.
const REAL: Duration = Duration::from_secs(30);
/// How far before and after each deadline it is checked, on the frozen clock.
const JUST: Duration = Duration::from_millis(100);

/// What a connection's pending bytes tell: still open (and what had arrived), or
/// closed by the server.
#[derive(Debug, PartialEq, Eq)]
enum Peer {
    Open(Vec<u8>),
    Closed,
}

/// Takes what has arrived on `stream` without waiting: `Closed` once the server
/// has closed it.
fn drain(stream: &TcpStream) -> Peer {
    let mut taken = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match stream.try_read(&mut buffer) {
            Ok(0) => return Peer::Closed,
            Ok(read) => taken.extend_from_slice(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                return Peer::Open(taken);
            }
            Err(_) => return Peer::Closed,
        }
    }
}

/// Reads until the server closes `stream` (end of file or reset), at most [`REAL`]:
/// what it sent before.
async fn until_closed(clock: &FrozenClock, stream: &mut TcpStream, what: &str) -> Vec<u8> {
    clock
        .within(REAL, what, async {
            let mut taken = Vec::new();
            let mut buffer = [0u8; 64 * 1024];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return taken,
                    Ok(read) => taken.extend_from_slice(&buffer[..read]),
                }
            }
        })
        .await
}

/// A whole request on a new connection, answered: by then the server has run
/// every task that came due before it (its timers fire as its runtime turns).
async fn barrier(clock: &FrozenClock, addr: std::net::SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(clock, &mut stream, "the barrier request's answer").await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
}

/// One HTTP/1.1 response read off a kept-alive connection (its head, then
/// `Content-Length` bytes of body).
async fn response(clock: &FrozenClock, stream: &mut TcpStream) -> String {
    clock
        .within(REAL, "an HTTP/1.1 response", async {
            let mut taken = Vec::new();
            let mut byte = [0u8; 1];
            while !taken.ends_with(b"\r\n\r\n") {
                assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{taken:?}");
                taken.push(byte[0]);
            }
            let head = String::from_utf8(taken).unwrap();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .expect("a Content-Length")
                .trim()
                .parse()
                .unwrap();
            let mut body = vec![0u8; length];
            stream.read_exact(&mut body).await.unwrap();
            head + &String::from_utf8(body).unwrap()
        })
        .await
}

/// hyper's header timer: a kept-alive connection that has been served (so the
/// first-request deadline is past) and then sends half a request's headers is
/// closed 10 s after its last answer, not before.
#[tokio::test(start_paused = true)]
async fn an_http1_request_must_finish_its_headers_within_10_s() {
    let clock = FrozenClock::new();
    let server = support::spawn_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let first = response(&clock, &mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Well past the first-request deadline: from here on only the header timer
    // (restarted when the connection began waiting for its next request) applies.
    stream
        .write_all(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    clock.advance(Duration::from_secs(10) - JUST).await;
    barrier(&clock, server.addr).await;
    assert_eq!(drain(&stream), Peer::Open(Vec::new()), "before 10 s");
    clock.advance(2 * JUST).await;
    let answer = until_closed(
        &clock,
        &mut stream,
        "the half-sent request's connection to close",
    )
    .await;
    // hyper closes without answering the half request (or with a 408).
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    clock
        .within(REAL, "the server to stop", server.stop())
        .await;
}

/// The first-request deadline: a connection that sends nothing, one that sends
/// half an HTTP/1 request, and an HTTP/2 connection that opens (preface and
/// settings) but asks nothing are all closed at 10 s, not before. hyper has no timer
/// for the last: only the server's own deadline closes it.
#[tokio::test(start_paused = true)]
async fn a_connection_must_send_a_whole_first_request_within_10_s() {
    let clock = FrozenClock::new();
    let server = support::spawn_server().await;
    let silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut h2 = TcpStream::connect(server.addr).await.unwrap();
    h2_open(&clock, &mut h2).await;
    // All three accepted (the barrier came after them) before the clock moves.
    barrier(&clock, server.addr).await;
    clock.advance(Duration::from_secs(10) - JUST).await;
    barrier(&clock, server.addr).await;
    for (name, stream) in [("silent", &silent), ("half", &half), ("h2", &h2)] {
        assert!(
            matches!(drain(stream), Peer::Open(_)),
            "{name}: closed before 10 s"
        );
    }
    clock.advance(2 * JUST).await;
    for (name, mut stream) in [("silent", silent), ("half", half), ("h2", h2)] {
        until_closed(
            &clock,
            &mut stream,
            &format!("the {name} connection to close"),
        )
        .await;
    }
    clock
        .within(REAL, "the server to stop", server.stop())
        .await;
}

// HTTP/2 by hand: frames are a 9-byte header (length, type, flags, stream) and a
// payload; HPACK's literal encodings suffice for one request.

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const HEADERS: u8 = 0x1;
const ACK: u8 = 0x1;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

async fn write_frame(stream: &mut TcpStream, kind: u8, flags: u8, id: u32, payload: &[u8]) {
    let length = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags];
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await.unwrap();
}

/// The next frame: (type, flags, stream id, payload).
async fn read_frame(clock: &FrozenClock, stream: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    clock
        .within(REAL, "an HTTP/2 frame", async {
            let mut head = [0u8; 9];
            stream.read_exact(&mut head).await.expect("a frame header");
            let length = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; length];
            stream
                .read_exact(&mut payload)
                .await
                .expect("a frame payload");
            (head[3], head[4], id, payload)
        })
        .await
}

/// Opens HTTP/2 with prior knowledge: the preface, empty settings, and the ACK of
/// the server's settings; returns the server's settings (6-byte entries: id,
/// value) once the server has acknowledged ours.
async fn h2_open(clock: &FrozenClock, stream: &mut TcpStream) -> Vec<u8> {
    stream.write_all(PREFACE).await.unwrap();
    write_frame(stream, SETTINGS, 0, 0, &[]).await;
    let (mut theirs, mut acked) = (None, false);
    while theirs.is_none() || !acked {
        let (kind, flags, _, payload) = read_frame(clock, stream).await;
        if kind == SETTINGS && flags & ACK == 0 {
            write_frame(stream, SETTINGS, ACK, 0, &[]).await;
            theirs = Some(payload);
        } else if kind == SETTINGS {
            acked = true;
        }
    }
    theirs.expect("the server's settings")
}

/// HEADERS of `GET path` on stream `id`, the request's end.
async fn h2_get(stream: &mut TcpStream, id: u32, authority: &str, path: &str) {
    // :method GET and :scheme http indexed (2, 6); :path and :authority literal
    // with indexed names (4, 1), never indexed.
    let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).unwrap()];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, u8::try_from(authority.len()).unwrap()]);
    block.extend_from_slice(authority.as_bytes());
    write_frame(stream, HEADERS, END_STREAM | END_HEADERS, id, &block).await;
}

/// A peer that made a request and then stops answering (its PINGs unanswered) is
/// pinged 30 s after it last spoke and closed 20 s after the ping, not before.
#[tokio::test(start_paused = true)]
async fn a_silent_http2_peer_is_pinged_at_30_s_and_closed_20_s_later() {
    let clock = FrozenClock::new();
    let server = support::spawn_server().await;
    let mut peer = TcpStream::connect(server.addr).await.unwrap();
    h2_open(&clock, &mut peer).await;
    h2_get(&mut peer, 1, &server.addr.to_string(), "/api/runs").await;
    // The answer, to its last frame; the peer then goes silent.
    loop {
        let (kind, flags, id, _) = read_frame(&clock, &mut peer).await;
        assert_ne!(kind, PING, "no ping before the answer");
        if id == 1 && flags & END_STREAM != 0 {
            break;
        }
    }
    clock.advance(Duration::from_secs(30) - JUST).await;
    barrier(&clock, server.addr).await;
    assert_eq!(
        drain(&peer),
        Peer::Open(Vec::new()),
        "nothing sent before 30 s"
    );
    clock.advance(2 * JUST).await;
    let (kind, flags, id, payload) = read_frame(&clock, &mut peer).await;
    assert_eq!(
        (kind, flags, id, payload.len()),
        (PING, 0, 0, 8),
        "a PING at 30 s"
    );
    // The ping went out at 30 s + JUST; its answer is due 20 s later.
    clock.advance(Duration::from_secs(20) - 2 * JUST).await;
    barrier(&clock, server.addr).await;
    assert_eq!(
        drain(&peer),
        Peer::Open(Vec::new()),
        "still open before 20 s"
    );
    clock.advance(2 * JUST).await;
    until_closed(
        &clock,
        &mut peer,
        "the unanswered ping to close the connection",
    )
    .await;
    clock
        .within(REAL, "the server to stop", server.stop())
        .await;
}

/// The server-side send queue (`tx_queue` in `/proc/net/tcp`) of the connection
/// from `server` to the client at `client`.
fn send_queue(server: std::net::SocketAddr, client: std::net::SocketAddr) -> Option<u64> {
    let hex = |addr: std::net::SocketAddr| {
        let std::net::IpAddr::V4(ip) = addr.ip() else {
            panic!("IPv4 only")
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(ip.octets()),
            addr.port()
        )
    };
    let (local, remote) = (hex(server), hex(client));
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields[1] == local && fields[2] == remote)
                .then(|| u64::from_str_radix(fields[4].split(':').next().unwrap(), 16).unwrap())
        })
}

/// A GET of `path` on a new connection: the status line of its answer.
async fn status_line(clock: &FrozenClock, addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    clock
        .within(REAL, "a status line", async {
            let mut taken = Vec::new();
            let mut byte = [0u8; 1];
            while !taken.ends_with(b"\r\n") {
                assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
                taken.push(byte[0]);
            }
            String::from_utf8(taken).unwrap().trim_end().to_string()
        })
        .await
}

/// An export whose client takes nothing is abandoned 60 s after the server last
/// tried to hand it a chunk, not before: until then it holds its export share
/// (with `--max-exports 1` another export is refused 503), after it the share is
/// back and the stalled body ends with an error: cut off, never looking whole.
#[tokio::test(start_paused = true)]
async fn an_export_whose_client_takes_nothing_for_60_s_is_abandoned() {
    let clock = FrozenClock::new();
    let server = support::spawn_with_limits(LimitsConfig {
        max_exports: 1,
        ..LimitsConfig::default()
    })
    .await;
    // ~24 KiB of JSON per report ("\u0000" for each NUL): 24 MiB in all, far more
    // than the socket buffers and the export's two queued 1 MiB chunks hold, so the
    // export stalls on a client that does not read.
    let nul = "\0".repeat(4096);
    let batch: Vec<PerformanceData> = (0..1_000)
        .map(|_| Data::new(0, "1f", Event::TransactionReceived, &nul))
        .collect();
    clock
        .within(
            REAL,
            "1,000 reports stored",
            server.client().send_batch_with_retries(batch),
        )
        .await
        .unwrap();

    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    let client = stalled.local_addr().unwrap();
    stalled
        .write_all(b"GET /api/export?format=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let head = clock
        .within(REAL, "the export's response head", async {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(stalled.read(&mut byte).await.unwrap(), 1);
                head.push(byte[0]);
            }
            String::from_utf8(head).unwrap()
        })
        .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    // The request came, so the connection's first-request deadline (10 s) passes
    // harmlessly; but it wakes the connection, and a woken connection takes one
    // more chunk from the export if it has room, starting the export's 60 s anew.
    // Nothing else wakes it: from here on the client takes nothing.
    clock.advance(Duration::from_secs(10) + JUST).await;
    barrier(&clock, server.addr).await;
    // Wait (in real time) until the server's send queue to this client stops
    // moving: the export is then stuck handing over a chunk, its 60 s running.
    clock
        .within(REAL, "the export to stall", async {
            let mut last = None;
            let mut still = 0;
            while still < 3 {
                tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
                    .await
                    .unwrap();
                let queued = send_queue(server.addr, client);
                still = if queued.is_some_and(|bytes| bytes > 0) && queued == last {
                    still + 1
                } else {
                    0
                };
                last = queued;
            }
        })
        .await;
    let path = "/api/export?format=csv";
    clock.advance(Duration::from_secs(60) - JUST).await;
    assert_eq!(
        status_line(&clock, server.addr, path).await,
        "HTTP/1.1 503 Service Unavailable",
        "before 60 s the stalled export still holds the only share"
    );
    clock.advance(2 * JUST).await;
    assert_eq!(
        status_line(&clock, server.addr, path).await,
        "HTTP/1.1 200 OK",
        "after 60 s the share is back"
    );
    // What the stalled client gets when it reads at last: some reports, then the
    // connection ends without chunked encoding's last (empty) chunk.
    let body = until_closed(&clock, &mut stalled, "the abandoned export's end").await;
    let text = String::from_utf8_lossy(&body);
    assert!(!text.ends_with("\r\n0\r\n\r\n"), "the body looks whole");
    let reports = text.matches("\"report_id\"").count();
    assert!(
        (1..1_000).contains(&reports),
        "{reports} of 1,000 reports before the cut"
    );
    clock
        .within(REAL, "the server to stop", server.stop())
        .await;
}

/// The server tells every HTTP/2 client it takes at most 128 streams at once on a
/// connection (`SETTINGS_MAX_CONCURRENT_STREAMS`), so streams that send only
/// headers are bounded per connection as well as in time (`tests/hostile.rs`).
#[tokio::test(start_paused = true)]
async fn a_connection_may_have_at_most_128_streams_open() {
    use perfstats::server::connections::MAX_STREAMS_PER_CONNECTION;
    let clock = FrozenClock::new();
    let server = support::spawn_server().await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // SETTINGS_MAX_CONCURRENT_STREAMS is setting 3.
    let settings = h2_open(&clock, &mut stream).await;
    let max_streams = settings
        .chunks(6)
        .find(|entry| entry[..2] == [0, 3])
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
    assert_eq!(max_streams, Some(128));
    assert_eq!(MAX_STREAMS_PER_CONNECTION, 128);
}
