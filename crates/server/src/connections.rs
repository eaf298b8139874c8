//! Accepting connections: HTTP/1.1 (WebSocket upgrades included) on each accepted socket,
//! with the limits that keep connections that never finish from costing the node forever.
//! A client gets `http_header_timeout_ms` to send a request's headers, and a kept-alive
//! connection may sit that long between requests; bodies are bounded by
//! `http_body_timeout_ms` (in `api`). One address holds at most `max_connections_per_ip`
//! open connections (trusted proxies excepted), WebSocket sessions included (the upgrade
//! takes the connection's place, see `gateway`); more are closed as soon as they are
//! accepted, and counted.

use crate::addresses::PerAddress;
use crate::state::AppState;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown`, then lets each open connection finish
/// its request in flight and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    app: &AppState,
    shutdown: CancellationToken,
) {
    let per_address = PerAddress::new(app.config.max_connections_per_ip);
    let header_timeout = Duration::from_millis(app.config.http_header_timeout_ms);
    // Every connection task holds a receiver; they are all gone when the last one ends.
    let (open_tx, open_rx) = watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of files, most likely: wait for some to close rather than spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let held = if app.proxies.trusts(peer.ip()) {
            None
        } else {
            match per_address.take(peer.ip()) {
                Some(held) => Some(held),
                None => {
                    app.metrics.connections_refused.inc();
                    continue; // dropping the socket closes it
                }
            }
        };
        // Small frames (an ack right after a message) must not wait for Nagle's algorithm.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        // Every request carries the connection's place, so a WebSocket upgrade can keep it
        // for as long as its session lasts.
        let held = held.map(Arc::new);
        let service = hyper::service::service_fn({
            let router = router.clone();
            let held = held.clone();
            move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                if let Some(held) = &held {
                    request.extensions_mut().insert(held.clone());
                }
                router.clone().oneshot(request.map(axum::body::Body::new))
            }
        });
        let shutdown = shutdown.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            let _held = held;
            let _open = open;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(open_rx);
    open_tx.closed().await;
}
