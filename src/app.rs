//! Putting the server together: storage, providers, the registry, the router; serving
//! until a signal; and a graceful, bounded shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::conversation::Registry;
use crate::error::StartupError;
use crate::providers::{ProviderContext, Providers};
use crate::storage::Store;
use crate::web::{AppState, router};

/// A server that is listening; dropping it does not stop it, [`Server::shutdown`] does.
pub struct Server {
    pub addr: SocketAddr,
    pub state: AppState,
    task: JoinHandle<()>,
}

/// A larger accept queue than the default, so bursts of connections are not refused.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Server {
    /// Opens storage, builds the providers and starts serving on `config.addr`.
    pub async fn start(config: Config) -> Result<Server, StartupError> {
        let providers = Providers::from_config(
            &config.providers,
            &ProviderContext {
                offline_delay: config.offline_delay,
            },
        )?;
        let store = Store::connect(&config.db).await?;
        let abandoned = store.mark_abandoned_replies().await?;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "marked replies cut off by the last stop as failed"
            );
        }
        let listener = listen(config.addr)?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let registry = Registry::new(
            store.clone(),
            providers.clone(),
            config.limits.clone(),
            config.idle_timeout,
            shutdown.clone(),
            tracker.clone(),
        );
        let state = AppState {
            config: Arc::new(config),
            registry,
            providers,
            store,
            shutdown,
            tracker,
        };
        let task = tokio::spawn(serve(listener, state.clone()));
        tracing::info!(%addr, "chatwire is listening");
        Ok(Server { addr, state, task })
    }

    /// Begins a graceful shutdown and waits for it to finish (bounded).
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server has stopped (after [`Server::shutdown`] or a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

async fn serve(listener: TcpListener, state: AppState) {
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Tokens and presence frames are small writes that must go out at once: without this,
    // Nagle's algorithm holds one back until the peer's (delayed, ~40 ms) ACK arrives.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let token = state.shutdown.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(token.clone().cancelled_owned());
    let grace = state.config.shutdown_timeout;
    let server = async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "server error");
        }
    };
    tokio::pin!(server);
    tokio::select! {
        _ = &mut server => {}
        _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("connections still open after the grace period; closing them");
        }
    }
    // SSE streams and WebSocket sessions watch the token; actors store what is in progress.
    state.tracker.close();
    if tokio::time::timeout(grace, state.tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some conversations did not stop within the grace period");
    }
    state.store.close().await;
    tracing::info!("chatwire stopped");
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<(), StartupError> {
    let server = Server::start(config).await?;
    let token = server.state.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        token.cancel();
    });
    server.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
