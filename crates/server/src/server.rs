//! Starting and stopping a node: `router` builds the HTTP and WebSocket routes, `run` serves
//! them on a listener until `shutdown` fires, then drains sessions and closes the store.

use crate::api;
use crate::state::AppState;
use axum::Router;
use confab_proto::ServerFrame;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every route of the node.
pub fn router(app: AppState) -> Router {
    api::routes(app)
}

/// Serves `app` on `listener` until `shutdown` is cancelled. Then: stop accepting, tell every
/// session to reconnect elsewhere, wait for them (up to `drain_timeout_ms`), save cursors,
/// and let the store commit its last batch.
pub async fn run(
    listener: TcpListener,
    app: AppState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let metrics_listener = match app.config.metrics_listen {
        Some(at) => {
            let bound = TcpListener::bind(at).await?;
            tracing::info!(addr = %bound.local_addr()?, "serving /metrics there only");
            Some(bound)
        }
        None => None,
    };
    tracing::info!(%addr, node_id = app.node.id(), "confab is serving");
    let upkeep = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            while !shutdown.is_cancelled() {
                tokio::select! {
                    _ = every.tick() => app.tick().await,
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    });
    let presence = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { app.presence.run(shutdown).await }
    });
    let push = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { app.push.run(&app.presence, shutdown).await }
    });
    let indexer = tokio::spawn({
        let messaging = app.messaging.clone();
        crate::search::indexer::run(
            app.store.clone(),
            app.metrics.clone(),
            move || messaging.sends_waiting(),
            shutdown.clone(),
        )
    });
    let registry = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { app.registry.run(shutdown).await }
    });
    let lease = tokio::spawn({
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move { app.node.run(shutdown).await }
    });
    // The bus outlives the drain: sessions still waiting to move get their events.
    let bus_stop = CancellationToken::new();
    let bus = tokio::spawn({
        let app = app.clone();
        let stop = bus_stop.clone();
        async move { app.bus.run(stop).await }
    });
    let drain = {
        let app = app.clone();
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            drain(&app).await;
        }
    };
    let metrics = async {
        if let Some(listener) = metrics_listener {
            let routes = api::metrics_routes(app.clone());
            crate::connections::serve(listener, routes, &app, shutdown.clone()).await;
        }
    };
    let serve = crate::connections::serve(listener, router(app.clone()), &app, shutdown.clone());
    tokio::join!(serve, drain, metrics);
    let _ = upkeep.await;
    let _ = presence.await;
    let _ = push.await;
    let _ = indexer.await;
    let _ = registry.await;
    app.flush_cursors().await;
    // Before the bus stops: the offline of users who did not move must reach the others.
    app.presence.leave_all().await;
    bus_stop.cancel();
    let _ = bus.await;
    let _ = lease.await;
    app.node.release().await;
    app.store.close().await;
    tracing::info!("confab stopped");
    Ok(())
}

/// Marks the node draining (discovery stops offering it, upgrades are refused), tells each
/// session to reconnect to the other nodes, spread over a few seconds so they do not all
/// arrive at once, and waits for the sessions to go, up to `drain_timeout_ms`.
async fn drain(app: &AppState) {
    app.registry.drain().await;
    let sessions = app.hub.count();
    let others = app.registry.others();
    tracing::info!(
        sessions,
        others = others.len(),
        "draining: telling sessions to reconnect"
    );
    // Each session gets the list turned by one more place, so they spread over the other
    // nodes rather than all going to the first. With no other node, clients reconnect here
    // once it is back.
    let frames: Vec<Arc<str>> = (0..others.len().max(1))
        .map(|turn| {
            let mut servers = others.clone();
            servers.rotate_left(turn);
            ServerFrame::Reconnect { servers }.to_json().into()
        })
        .collect();
    let timeout = Duration::from_millis(app.config.drain_timeout_ms);
    let deadline = tokio::time::Instant::now() + timeout;
    app.hub.drain(frames, (timeout / 2).min(DRAIN_SPREAD_MAX));
    while app.hub.count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The longest a drain spreads its `reconnect`s over.
const DRAIN_SPREAD_MAX: Duration = Duration::from_secs(3);
