//! Leaving a NATS server that stopped answering (paused, or a host that no longer
//! answers while its sockets stay open) for another of the `--nats` URLs, so that
//! writes go on through the rest of the cluster.
//!
//! Two parts, both about the one NATS connection this process holds:
//! - **The connection's own PING.** After [`PING_INTERVAL`] without a word from the
//!   server the client sends a PING; a third one unanswered drops the connection,
//!   and the client reconnects through the URLs in shuffled order. A connection to
//!   a frozen server is so dropped within `3 × PING_INTERVAL` of its last word. A
//!   server that answers PINGs is never left, even while the stream does not answer
//!   (no leader: 2 of 3 NATS servers down): reconnecting elsewhere cannot help then,
//!   and would only interrupt the consumer applying the stream.
//! - **A reconnect stuck on a frozen server.** async-nats 0.46 bounds the TCP connect
//!   (`connection_timeout`) but not the wait for the server's `INFO` that follows,
//!   and a paused server's kernel still accepts connections: a reconnect that picks
//!   it waits for as long as it stays paused. [`unstick`] shuts such a connection
//!   down (`shutdown(2)`, as if the server had closed it) once the client has been
//!   without a connection for [`STUCK_CONNECTING`], and the client goes on to the
//!   next URL. (Linux: it finds the connection in `/proc/self/fd`; elsewhere only the
//!   PING part applies.)

use super::Cluster;
use async_nats::ServerAddr;
use async_nats::connection::State;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the connection may hear nothing from its server before the client
/// PINGs it; the third PING unanswered drops the connection, so a server silent for
/// about 3 s is left. A busy connection sends no PINGs (anything the server sends
/// counts), an idle one one a second.
pub(super) const PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long the client may stay without a connection before its connections to
/// NATS servers are taken for stuck on a frozen one and shut down. A live server
/// sends its `INFO` within milliseconds of the TCP connect, and an unreachable one
/// fails the connect within the client's 2 s `connection_timeout`.
pub(super) const STUCK_CONNECTING: Duration = Duration::from_secs(2);
/// How often [`unstick`] looks at the connection.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Until the cluster is gone: whenever the client has been without a connection
/// for [`STUCK_CONNECTING`], shuts down its connections to NATS servers (a stuck
/// reconnect), at most once every `STUCK_CONNECTING`.
pub(super) async fn unstick(cluster: std::sync::Weak<Cluster>) {
    let mut disconnected_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        if cluster.client.connection_state() == State::Connected {
            disconnected_since = None;
            continue;
        }
        let since = *disconnected_since.get_or_insert_with(Instant::now);
        if since.elapsed() < STUCK_CONNECTING {
            continue;
        }
        let servers = nats_addresses(&cluster).await;
        let shut = shut_down_connections_to(&servers);
        if shut > 0 {
            tracing::warn!(
                shut,
                "NATS: a reconnect got no answer from its server within {STUCK_CONNECTING:?} \
                 (a frozen server accepts connections but says nothing); trying the next URL"
            );
        }
        disconnected_since = Some(Instant::now());
    }
}

/// Every address the NATS servers are reached at: the `--nats` URLs and those the
/// cluster advertised, resolved.
async fn nats_addresses(cluster: &Cluster) -> Vec<SocketAddr> {
    let advertised = cluster.client.server_info().connect_urls;
    let mut addresses = Vec::new();
    for url in cluster.config.urls.iter().chain(&advertised) {
        let Ok(server) = url.parse::<ServerAddr>() else {
            continue;
        };
        if let Ok(resolved) = server.socket_addrs().await {
            addresses.extend(resolved);
        }
    }
    addresses
}

/// Shuts down (both ways) this process's TCP connections to any of `peers`, as if
/// the peer had closed them: whoever owns each keeps its descriptor and sees the
/// connection end. Answers how many. Linux only (`/proc/self/fd`); elsewhere 0.
fn shut_down_connections_to(peers: &[SocketAddr]) -> usize {
    use std::mem::ManuallyDrop;
    use std::os::fd::FromRawFd;
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut shut = 0;
    for entry in entries.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is borrowed, never closed here (ManuallyDrop): only
        // getpeername(2) and shutdown(2) are called on it, which fail harmlessly on
        // anything that is not a connected socket. Its owner may close it meanwhile
        // and the number be reused: then whatever now has it is only shut down if it
        // too is a connection to a NATS server.
        let stream = ManuallyDrop::new(unsafe { std::net::TcpStream::from_raw_fd(fd) });
        let to_nats = stream.peer_addr().is_ok_and(|peer| peers.contains(&peer));
        if to_nats && stream.shutdown(std::net::Shutdown::Both).is_ok() {
            shut += 1;
        }
    }
    shut
}

#[cfg(test)]
mod tests {
    use super::shut_down_connections_to;
    use std::io::Read;

    #[test]
    fn only_connections_to_the_peers_named_are_shut_down() {
        let nats = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut to_nats = std::net::TcpStream::connect(nats.local_addr().unwrap()).unwrap();
        let to_other = std::net::TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let (_accepted, _) = nats.accept().unwrap();
        let (_other_accepted, _) = other.accept().unwrap();

        assert_eq!(shut_down_connections_to(&[nats.local_addr().unwrap()]), 1);
        // Shut down: a read ends at once, as if the server had closed.
        assert_eq!(to_nats.read(&mut [0; 8]).unwrap(), 0);
        // The other connection is untouched: nothing to read, but not ended.
        to_other.set_nonblocking(true).unwrap();
        let error = (&to_other).read(&mut [0; 8]).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
    }
}
