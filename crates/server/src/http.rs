//! The HTTP server loop: one hyper HTTP/1.1 connection per accepted socket, serving the router,
//! with the limits a server on a factory network needs and `axum::serve` does not set: at most
//! `max_connections` open (more are closed as they arrive; one address holds at most a quarter of
//! them), and a connection that does not send a
//! request's headers within `header_timeout_seconds`, or stays idle that long between requests,
//! is closed. On shutdown it stops accepting, lets each connection finish the request in hand,
//! and gives up on what is still open (event streams) after [`GRACE`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::ServerConfig;
use crate::metrics::Metrics;

/// The address a request came from, in its extensions.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) std::net::SocketAddr);

/// The address of the client a request comes from (see [`forwarded_for`]); `None` for a request
/// that did not come through [`serve`] (a test calling the router).
pub(crate) struct ClientAddress(pub(crate) Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(parts.extensions.get::<Peer>().map(|peer| peer.0.ip())))
    }
}

/// The client a request comes from: the peer, or, when the peer is a proxy on this computer, the
/// address it names last in `X-Forwarded-For` (the one it saw). Nobody else may name a client: the
/// header is anyone's to write.
fn forwarded_for(peer: Peer, headers: &hyper::HeaderMap) -> Peer {
    if !peer.0.ip().is_loopback() {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|address| address.trim().parse::<std::net::IpAddr>().ok())
        .next_back()
        .map_or(peer, |ip| Peer(std::net::SocketAddr::new(ip, 0)))
}

/// How long a shutdown waits for open connections before it drops them.
pub(crate) const GRACE: Duration = Duration::from_secs(5);

/// Open connections one address may hold at most (a proxy on this computer aside), so that one
/// client cannot take every place: a quarter of `http.max_connections`, at least 16.
fn per_address_limit(config: &ServerConfig) -> usize {
    (config.max_connections / 4).max(16)
}

/// Open connections by address, for [`per_address_limit`].
type ByAddress = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>;

/// One address's hold on a connection place, given back when dropped.
struct AddressHold {
    counts: ByAddress,
    address: std::net::IpAddr,
}

impl Drop for AddressHold {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Takes a place for `address` unless it holds `limit` already; loopback (a local proxy, the
/// platform's own tools) is not limited.
fn hold(counts: &ByAddress, address: std::net::IpAddr, limit: usize) -> Option<AddressHold> {
    if address.is_loopback() {
        return Some(AddressHold { counts: Arc::default(), address });
    }
    let mut held = counts.lock().unwrap_or_else(|p| p.into_inner());
    let count = held.entry(address).or_insert(0);
    if *count >= limit {
        return None;
    }
    *count += 1;
    Some(AddressHold { counts: counts.clone(), address })
}

/// Serves `app` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    metrics: &Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let header_timeout = Duration::from_secs(config.header_timeout_seconds);
    let (stop, stopping) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_logged: Option<std::time::Instant> = None;
    let by_address = ByAddress::default();
    let per_address = per_address_limit(config);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Reap finished connections as we go, so the set does not grow with every one served.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, say: wait a moment rather than spin.
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = stream.peer_addr().ok().map(Peer);
        let address_hold = match peer {
            Some(Peer(address)) => match hold(&by_address, address.ip(), per_address) {
                Some(hold) => Some(hold),
                None => {
                    metrics.count_http_connection_refused();
                    continue;
                }
            },
            None => None,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.count_http_connection_refused();
            if refused_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                refused_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    max_connections = config.max_connections,
                    "HTTP connection closed: too many open (http.max_connections; logged at most once a minute)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // A bounded send buffer: a client that reads nothing fills it within minutes (an event
        // stream's keep-alives and events), and `SEND_TIMEOUT` later its place is free again;
        // left to the kernel, it would grow to megabytes first.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        let app = app.clone();
        // Each request learns where it came from (sign-in throttling counts by address).
        let service =
            hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                if let Some(peer) = peer {
                    let client = forwarded_for(peer, request.headers());
                    request.extensions_mut().insert(client);
                }
                tower::ServiceExt::oneshot(app.clone(), request)
            });
        let mut stopping = stopping.clone();
        let metrics = metrics.clone();
        connections.spawn(async move {
            metrics.http_connection_opened();
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(SendTimeout::new(stream, SEND_TIMEOUT)), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            metrics.http_connection_closed();
            drop((permit, address_hold));
        });
    }
    drop(listener);
    let _ = stop.send(true);
    if tokio::time::timeout(GRACE, async { while connections.join_next().await.is_some() {} }).await.is_err()
    {
        tracing::info!(open = connections.len(), "closing the HTTP connections still open (event streams)");
        connections.shutdown().await;
    }
    Ok(())
}

/// The send buffer asked for each connection, in bytes (Linux doubles it): ample for a local
/// network, where a megabyte a second needs a few kilobytes in flight.
const SEND_BUFFER: usize = 128 * 1024;

/// How long a connection may take none of what it is sent before it is closed: a frozen wall
/// board's event stream, or a client gone without a word, holds its place and its buffers no
/// longer than this.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A socket whose writes fail (`TimedOut`) once one has waited `limit` for the peer to take data.
/// Waiting for a request is the header and idle timeouts' business; this is the other way.
struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Set while a write waits: when it gives up.
    deadline: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        SendTimeout { inner, limit, deadline: None }
    }

    /// What a write or flush that `polled` so comes to: done (the wait, if any, is over), still
    /// waiting, or out of time.
    fn settle<T>(
        &mut self,
        polled: std::task::Poll<std::io::Result<T>>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<T>> {
        if polled.is_ready() {
            self.deadline = None;
            return polled;
        }
        let limit = self.limit;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took nothing of the answer for too long",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.settle(polled, cx)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.settle(polled, cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    use super::SendTimeout;
    use crate::ServerConfig;
    use crate::metrics::Metrics;

    #[test]
    fn one_address_holds_a_share_of_the_places() {
        let counts = super::ByAddress::default();
        let (far, near): (std::net::IpAddr, std::net::IpAddr) =
            ("192.0.2.9".parse().unwrap(), "127.0.0.1".parse().unwrap());
        let held: Vec<_> = (0..3).map(|_| super::hold(&counts, far, 3).expect("a place")).collect();
        assert!(super::hold(&counts, far, 3).is_none(), "a fourth");
        assert!(super::hold(&counts, "192.0.2.10".parse().unwrap(), 3).is_some(), "another address");
        assert!((0..10).all(|_| super::hold(&counts, near, 3).is_some()), "a local proxy is not limited");
        drop(held);
        assert!(super::hold(&counts, far, 3).is_some(), "given back on close");
        let config = ServerConfig::default();
        assert_eq!(super::per_address_limit(&config), 256);
    }

    #[test]
    fn a_local_proxy_names_the_client_and_nobody_else_does() {
        let headers = |value: &str| {
            let mut headers = hyper::HeaderMap::new();
            headers.insert("x-forwarded-for", value.parse().unwrap());
            headers
        };
        let local = super::Peer("127.0.0.1:5000".parse().unwrap());
        let remote = super::Peer("192.0.2.4:5000".parse().unwrap());
        let ip = |peer: super::Peer| peer.0.ip().to_string();
        assert_eq!(ip(super::forwarded_for(local, &headers("203.0.113.9, 198.51.100.2"))), "198.51.100.2");
        assert_eq!(ip(super::forwarded_for(local, &headers("not an address"))), "127.0.0.1");
        assert_eq!(ip(super::forwarded_for(remote, &headers("203.0.113.9"))), "192.0.2.4");
    }

    /// Reads until the server closes the connection; what it sent.
    async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out))
            .await
            .expect("the server kept the connection open")
            .unwrap();
        out
    }

    #[tokio::test]
    async fn connections_are_capped_and_idle_ones_time_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/", get(|| async { "hello" }));
        let config =
            ServerConfig { max_connections: 2, header_timeout_seconds: 1, ..ServerConfig::default() };
        let metrics = Arc::new(Metrics::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn({
            let metrics = metrics.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                super::serve(listener, app, &config, &metrics, shutdown).await
            }
        });
        let started = Instant::now();
        // Two that say nothing take every place: a third is closed at once.
        let mut first = TcpStream::connect(address).await.unwrap();
        let mut second = TcpStream::connect(address).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(address).await.unwrap();
        assert!(until_closed(&mut third).await.is_empty());
        assert!(started.elapsed() < Duration::from_millis(900), "closed at once, not by the timeout");
        // Silent past the header timeout, they are closed.
        for stream in [&mut first, &mut second] {
            until_closed(stream).await;
        }
        // Half a request's headers is no better.
        let mut slow = TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        until_closed(&mut slow).await;
        // And there is room again.
        let mut fine = TcpStream::connect(address).await.unwrap();
        fine.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let answer = String::from_utf8(until_closed(&mut fine).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("hello"), "{answer}");
        let text = metrics.render(&[], &[]);
        assert!(text.contains("microfactory_http_connections_refused_total 1"), "{text}");
        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_peer_that_takes_nothing_is_given_up_on() {
        let (near, mut far) = tokio::io::duplex(64);
        let mut sending = SendTimeout::new(near, Duration::from_millis(200));
        let started = Instant::now();
        let chunk = [7u8; 32];
        let error = loop {
            if let Err(error) = sending.write_all(&chunk).await {
                break error;
            }
        };
        assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(200));
        // A peer that reads keeps it going: the wait starts again with each write that goes.
        let (near, mut reader) = tokio::io::duplex(64);
        let mut sending = SendTimeout::new(near, Duration::from_millis(200));
        let reading = tokio::spawn(async move {
            let mut sink = Vec::new();
            reader.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        for _ in 0..20 {
            sending.write_all(&chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(sending);
        assert_eq!(reading.await.unwrap().unwrap(), 20 * 32);
        drop(far.read(&mut [0u8; 1]).await);
    }
}
