//! `polity run`: the configured platforms in the serving loop until shutdown, and the HTTP
//! server (health, metrics, webhooks) beside it.

use crate::discord::{self, CONNECTION, Notice};
use crate::http::{Health, HttpState, Webhooks, serve_http};
use crate::runtime::Runtime;
use crate::serve::{Clock, serve};
use crate::store::Store;
use anyhow::Result;
use chrono::TimeDelta;
use polity_discord::GatewayConfig;
use std::future::Future;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How often platforms are bothered: tally edits and reads of a vote message's reactions.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// At most one edit of a vote message per this interval, with the newest tally.
    pub edit: TimeDelta,
    /// At most one read of a vote message's reactions per this interval.
    pub reconcile: TimeDelta,
}

impl Default for Pacing {
    fn default() -> Self {
        Self { edit: TimeDelta::seconds(3), reconcile: TimeDelta::seconds(5) }
    }
}

/// What `polity run` serves beside the serving loop.
#[derive(Default)]
pub struct Host {
    /// Polity's Discord bot, if it runs one.
    pub discord: Option<GatewayConfig>,
    /// The HTTP server (health, metrics, webhooks), if it runs.
    pub http: Option<HttpHost>,
}

/// The HTTP server: the listener it is handed (bound by the caller, so a test binds port 0)
/// and the webhook platforms it serves.
pub struct HttpHost {
    pub listener: TcpListener,
    pub webhooks: Webhooks,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("discord", &self.discord.is_some())
            .field("http", &self.http.as_ref().map(|h| (h.listener.local_addr().ok(), &h.webhooks)))
            .finish()
    }
}

/// How long requests under way may take to finish once the loop has stopped.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs Discord alone until `shutdown`; see [`run_host`].
///
/// # Errors
/// As [`run_host`].
pub async fn run(
    store: Store,
    gateway: GatewayConfig,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Runtime> {
    run_host(store, Host { discord: Some(gateway), http: None }, pacing, clock, shutdown, notices).await
}

/// Runs what `host` holds (the Discord bot, the HTTP server) around the serving loop until
/// `shutdown`; what the bot has to say (its invite link, the servers it governs) goes to
/// `notices`. `GET /healthz` shows Discord down until its gateway is connected, and again
/// once it gives up.
///
/// # Errors
/// When the store fails, the Discord client cannot be built, or the gateway gives up (a
/// refused token).
pub async fn run_host(
    store: Store,
    host: Host,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Runtime> {
    let health = Health::new();
    let mut rt = Runtime::open(store.clone()).await?;
    rt.set_edit_interval(pacing.edit);
    rt.set_reconcile_interval(pacing.reconcile);
    let (tx, rx) = mpsc::channel(1024);
    let mut bot = match host.discord {
        Some(gateway) => {
            rt.await_platform(CONNECTION);
            health.set(CONNECTION, false);
            Some(discord::start(gateway, tx.clone(), notices, health.clone()).await?)
        }
        None => None,
    };
    let (stop_http, http_stopping) = watch::channel(false);
    let http = host.http.map(|h| {
        let state = HttpState::new(store, health.clone(), tx.clone()).with_webhooks(h.webhooks);
        let mut stopping = http_stopping.clone();
        tokio::spawn(serve_http(h.listener, state, async move {
            // Stops when told, or when whoever could tell it is gone.
            let _stop = stopping.wait_for(|stop| *stop).await;
        }))
    });
    // The loop ends by itself once no adapter can send it anything.
    drop(tx);
    // The loop stops on `shutdown`, or when the gateway gives up (a refused token), which
    // is then the error `polity run` ends with. The HTTP server stops taking requests then.
    let mut gave_up = None;
    let served = {
        let stop = async {
            match bot.as_mut() {
                Some(bot) => tokio::select! {
                    () = shutdown => {}
                    ended = bot.stopped() => {
                        health.set(CONNECTION, false);
                        gave_up = Some(ended);
                    }
                },
                None => shutdown.await,
            }
            stop_http.send_replace(true);
        };
        serve(rt, rx, clock, stop).await
    };
    stop_http.send_replace(true);
    if let Some(bot) = bot {
        bot.shutdown().await;
    }
    if let Some(mut server) = http {
        match tokio::time::timeout(HTTP_DRAIN, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!("the HTTP server stopped with an error: {e}"),
            Ok(Err(e)) => tracing::error!("the HTTP server failed: {e}"),
            Err(_) => {
                tracing::warn!("HTTP requests still under way after {HTTP_DRAIN:?} were dropped");
                server.abort();
            }
        }
    }
    match gave_up {
        Some(Err(e)) => Err(e),
        Some(Ok(())) => Err(anyhow::anyhow!("the Discord connection ended")),
        None => served,
    }
}
