//! The accept loop: our own, on hyper's HTTP/1.1 connection builder with tokio's timer,
//! instead of `axum::serve`, so that a connection cannot hold the server for ever.
//!
//! - A request head must be complete within `--header-timeout-secs` (hyper's header read
//!   timeout, which needs a timer — `axum::serve` runs without one, so it was off); the
//!   same timer closes a keep-alive socket that sends nothing for as long.
//! - Connections are capped per client address (`--max-connections-per-address`; an IPv6
//!   address by its /64, as the rate limit; a trusted proxy's connections count only in
//!   the total) and in all
//!   (`--max-connections`): beyond a cap the new socket gets a one-line 429 or 503 and is
//!   closed, before any of its bytes are read.
//! - Small buffers per connection: an idle event stream holds one socket for hours.
//! - `TCP_NODELAY`: tokens and presence frames are small writes that must go out at once.
//! - Shutdown: when the token is cancelled, no new connection is accepted and every open
//!   one is asked to finish its request in flight and close; [`serve`] returns once all
//!   have. (Event streams and WebSockets end by themselves on the same token.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::caps::{Caps, Place, Refused};
use super::limit::client_key;
use crate::config::Network;

/// The read buffer hyper may grow to per connection (its floor): request heads and JSON
/// bodies fit; bigger bodies are read in several passes.
const MAX_READ_BUFFER: usize = 8 * 1024;

/// Serves `router` on `listener` until `shutdown` is cancelled and every connection has
/// closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    network: Network,
    shutdown: CancellationToken,
) {
    let caps = Caps::new(network.max_connections_per_address, network.max_connections);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(network.header_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_READ_BUFFER)
        .writev(false);
    let http = Arc::new(http);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let exempt = network
            .trusted_proxies
            .iter()
            .any(|c| c.contains(peer.ip()));
        let place = match caps.take((!exempt).then(|| client_key(peer.ip()))) {
            Ok(place) => place,
            Err(refused) => {
                refuse(&tcp, refused);
                continue;
            }
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        connections.spawn(connection(
            tcp,
            peer,
            place,
            router.clone(),
            http.clone(),
            shutdown.clone(),
        ));
    }
    connections.close();
    connections.wait().await;
}

/// One connection, from accept to close; `place` is its place in the caps.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    place: Place,
    router: Router,
    http: Arc<hyper::server::conn::http1::Builder>,
    shutdown: CancellationToken,
) {
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = http
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = shutdown.cancelled() => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // A header timeout, a peer gone mid-request: routine, never the request's contents.
        tracing::debug!(error = %e, "connection ended with an error");
    }
    drop(place);
}

/// Over a cap: one short answer if the socket takes it at once, then close.
fn refuse(tcp: &TcpStream, refused: Refused) {
    let answer: &[u8] = match refused {
        Refused::Address => {
            b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        }
        Refused::Total => {
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        }
    };
    let _ = tcp.try_write(answer);
    tracing::debug!(?refused, "connection refused: over the cap");
}

/// Accept errors: a dropped handshake is nothing; running out of descriptors is waited out
/// briefly (retrying at once would spin).
async fn pause_after_accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
