//! # sam-server
//!
//! The control plane: a thin layer that wires configuration to `sam-core`'s
//! engine and `sam-providers`' adapters and serves the HTTP API (see the design
//! document's contract), GitHub sign-in, the JWKS document, agent downloads and
//! webhooks, and runs the reconciler.
//!
//! The library part exists so tests (and embedders) can build the router with
//! any adapters: [`api::router`] takes an [`state::AppState`].

pub mod api;
pub mod config;
pub mod deployment;
pub mod dev;
pub mod listeners;
pub mod metrics;
pub mod ops;
pub mod state;
pub mod web;

/// How long in-flight requests may take after a shutdown signal. Event
/// streams never finish by themselves, so the wait must be bounded.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` until Ctrl-C or SIGTERM, then lets in-flight requests finish
/// for at most [`SHUTDOWN_GRACE`].
pub async fn serve_until_shutdown(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        });
    let server = std::pin::pin!(server.into_future());
    let deadline = async {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("requests still open after the shutdown grace period; closing them");
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (how containers and systemd stop a service).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
