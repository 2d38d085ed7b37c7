//! Putting the server together: storage, providers, the registry, the router; serving
//! until a signal; and a graceful, bounded shutdown.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::{Cluster, sweeper};
use crate::config::{self, Config, ConfigError};
use crate::conversation::{Conversations, Registry};
use crate::metrics::Metrics;
use crate::providers::{ExtraProviders, Jobs, ProviderContext, Providers};
use crate::signature::Secret;
use crate::simulator;
use crate::storage::Store;
use crate::web::{AppState, Limiters, router};

mod error;

pub use error::StartupError;

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
        Server::start_with(config, ExtraProviders::default()).await
    }

    /// Like [`Server::start`], with providers built in code besides the configured ones.
    pub async fn start_with(config: Config, extra: ExtraProviders) -> Result<Server, StartupError> {
        let store = Store::connect(&config.db).await?;
        // In a cluster, another node may be streaming those replies: the sweeper and the
        // next owner deal with abandoned ones there.
        let abandoned = match config.cluster {
            None => store.mark_abandoned_replies().await?,
            Some(_) => 0,
        };
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
        let cluster = match &config.cluster {
            Some(c) => {
                let options = crate::cluster::ClusterConfig {
                    redis_url: c.redis_url.clone(),
                    node_id: c.node_id.clone(),
                    lease: c.lease,
                };
                match Cluster::start(&options, shutdown.clone()).await {
                    Ok(started) => Some(started),
                    Err(e) => {
                        shutdown.cancel();
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        // Providers come after the bind: callback providers tell NLP services our address.
        let parking = cluster.as_ref().map(|(c, _)| c.redis.clone());
        let built =
            build_providers(&config, &extra, addr, &store, parking, &tracker, &shutdown).await;
        let providers = match built {
            Ok(p) => p,
            Err(e) => {
                shutdown.cancel();
                return Err(e);
            }
        };
        crate::web::spawn_pruner(store.clone(), &tracker, shutdown.clone());
        let metrics = Metrics::new();
        let registry = Registry::new(
            store.clone(),
            providers.clone(),
            config.limits.clone(),
            config.idle_timeout,
            shutdown.clone(),
            tracker.clone(),
            metrics.clone(),
        );
        let conversations = match cluster {
            Some((c, inbox)) => {
                registry.join_cluster(c.clone());
                let conversations =
                    Conversations::cluster(registry, c.clone(), inbox, shutdown.clone());
                tracker.spawn(sweep(conversations.clone(), c, shutdown.clone()));
                conversations
            }
            None => Conversations::local(registry),
        };
        let state = AppState {
            limits: Arc::new(Limiters::new(&config)),
            config: Arc::new(config),
            conversations,
            providers,
            store,
            shutdown,
            tracker,
            metrics,
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

/// Cluster mode: every node looks, about once a second, for replies whose owner died (its
/// lease lapsed with the reply running) and takes them over, so they end even when no
/// client is connected. Only one node wins each lease.
async fn sweep(conversations: Conversations, cluster: Cluster, shutdown: CancellationToken) {
    let every = (cluster.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let Ok(orphans) = sweeper::orphans(&cluster.redis, 16).await else {
            continue;
        };
        for id in orphans {
            match conversations.adopt(&id).await {
                Ok(()) => tracing::info!(conversation = %id, "took over a reply whose owner died"),
                Err(crate::conversation::ActorError::NotFound) => {
                    let _ = sweeper::forget(&cluster.redis, &id).await;
                }
                Err(e) => tracing::debug!(conversation = %id, error = %e, "cannot take over yet"),
            }
        }
    }
}

/// The base URL NLP services use to reach us: `--public-url`, else our bound address
/// (a wildcard address becomes loopback, which is all that can be assumed to work).
fn public_url(config: &Config, addr: SocketAddr) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let ip = match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// Starts the simulated NLP service if an entry uses it, then builds every provider.
async fn build_providers(
    config: &Config,
    extra: &ExtraProviders,
    addr: SocketAddr,
    store: &Store,
    parking: Option<crate::cluster::Redis>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<Providers, StartupError> {
    let simulator = match config.providers.iter().find(|p| p.kind == "simulated") {
        Some(entry) => {
            let secret = match config::secret(
                entry,
                &entry.webhook_secret,
                &entry.webhook_secret_env,
                "webhook_secret",
            )? {
                Some(text) => Secret::parse(&text).map_err(|e| ConfigError::Provider {
                    name: entry.name.clone(),
                    message: format!("`webhook_secret` {e}"),
                })?,
                // Only this process signs and verifies with it: any fresh key will do.
                None => Secret::generate().0,
            };
            Some(simulator::start(secret, config.offline_delay, tracker, shutdown.clone()).await?)
        }
        None => None,
    };
    let ctx = ProviderContext {
        offline_delay: config.offline_delay,
        public_url: public_url(config, addr),
        jobs: Arc::new(match parking {
            Some(redis) => Jobs::new(store.clone(), tracker.clone()).parking_in(redis),
            None => Jobs::new(store.clone(), tracker.clone()),
        }),
        simulator,
    };
    Ok(Providers::from_config(&config.providers, &ctx)?.with_extra(&extra.0)?)
}

/// Serves (through `web::serve`, our accept loop) until the shutdown token is cancelled,
/// then shuts down gracefully within
/// `shutdown_timeout` in all:
/// 1. new requests get 503 `shutting_down` and no new connection is accepted;
/// 2. every conversation actor interrupts its reply in progress, stores it (and its
///    recent events) and ends; SSE streams carry the actor's last events, then end with
///    a `retry:` hint; tracked tasks (actors, WebSocket sessions) see the same token;
/// 3. open connections drain, tracked tasks finish, storage is closed.
///
/// Whatever is still running when the time is up is dropped with the runtime.
async fn serve(listener: TcpListener, state: AppState) {
    let token = state.shutdown.clone();
    let server = crate::web::serve(
        listener,
        router(state.clone()),
        state.config.network.clone(),
        token.clone(),
    );
    tokio::pin!(server);
    let server_ended = tokio::select! {
        _ = &mut server => true,
        _ = token.cancelled() => false,
    };
    token.cancel();
    let deadline = tokio::time::Instant::now() + state.config.shutdown_timeout;
    state.tracker.close();
    let drained = tokio::time::timeout_at(deadline, async {
        let connections = async {
            if !server_ended {
                (&mut server).await;
            }
        };
        tokio::join!(connections, state.tracker.wait());
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open_tasks = state.tracker.len(),
            "shutdown grace period over; closing what is left"
        );
    }
    // Writes in flight finish; the bound keeps a stuck database from holding the exit.
    if tokio::time::timeout(Duration::from_secs(2), state.store.close())
        .await
        .is_err()
    {
        tracing::warn!("storage did not close in time");
    }
    tracing::info!("chatwire stopped");
}

/// Runs the server until SIGINT or SIGTERM. Prints `chatwire is listening on http://ADDR`
/// on standard output once it accepts connections (scripts and tests read the port there).
pub async fn run(config: Config) -> Result<(), StartupError> {
    tracing::debug!(?config, "configuration");
    let server = Server::start(config).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "chatwire is listening on http://{}", server.addr);
        let _ = out.flush();
    }
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
