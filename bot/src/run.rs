//! `polity run`: the configured platforms' bots in the serving loop until shutdown, and the
//! HTTP server (health, metrics, webhooks) beside it.

use crate::connections::Supervisor;
use crate::http::{Health, HttpState, Webhooks, serve_http};
use crate::platforms::Registry;
use crate::runtime::Runtime;
use crate::serve::{Clock, serve};
use crate::spaces::{self, Links, Notice, Owner, Translator};
use crate::store::Store;
use anyhow::{Result, anyhow};
use chrono::TimeDelta;
use polity_port::{Adapter, Connection, Start};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
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
    /// Polity's own bots (`[platforms.NAME]`).
    pub bots: Vec<Bot>,
    /// The platforms it knows (every platform of this build unless told otherwise); the
    /// bots' adapters join them.
    pub registry: Registry,
    /// The HTTP server (health, metrics, webhooks), if it runs.
    pub http: Option<HttpHost>,
}

/// Polity's own bot for one platform: its adapter and `[platforms.NAME]`.
pub struct Bot {
    pub adapter: Arc<dyn Adapter>,
    pub config: Value,
}

impl Bot {
    pub fn new(adapter: Arc<dyn Adapter>, config: Value) -> Self {
        Self { adapter, config }
    }
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
            .field("bots", &self.bots.iter().map(|b| b.adapter.spec().name).collect::<Vec<_>>())
            .field("http", &self.http.as_ref().map(|h| (h.listener.local_addr().ok(), &h.webhooks)))
            .finish()
    }
}

/// How long requests under way may take to finish once the loop has stopped.
const HTTP_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one platform's bot alone until `shutdown`; see [`run_host`].
///
/// # Errors
/// As [`run_host`].
pub async fn run(
    store: Store,
    bot: Bot,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Runtime> {
    run_host(store, Host { bots: vec![bot], ..Host::default() }, pacing, clock, shutdown, notices).await
}

/// A bot while it runs.
struct Running {
    name: &'static str,
    connection: Box<dyn Connection>,
    translator: Translator,
}

/// Resolves when the first of `bots` stops by itself, with which and why; never when there
/// are none.
async fn first_stopped(bots: &mut [Running]) -> (&'static str, Result<(), String>) {
    let mut waiting: Vec<_> = bots.iter_mut().map(|b| (b.name, b.connection.stopped())).collect();
    std::future::poll_fn(move |cx| {
        for (name, stopped) in &mut waiting {
            if let Poll::Ready(result) = stopped.as_mut().poll(cx) {
                return Poll::Ready((*name, result));
            }
        }
        Poll::Pending
    })
    .await
}

/// Runs what `host` holds (the platforms' bots, the HTTP server) around the serving loop
/// until `shutdown`; what the bots have to say (invite links, the spaces they govern) goes
/// to `notices`. `GET /healthz` shows a bot down until it is connected, and again once it
/// gives up.
///
/// # Errors
/// When the store fails, a bot cannot be started, or a bot gives up (a refused token).
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
    *rt.registry_mut() = host.registry;
    rt.set_edit_interval(pacing.edit);
    rt.set_reconcile_interval(pacing.reconcile);
    let (tx, rx) = mpsc::channel(1024);
    let mut bots = Vec::new();
    for bot in host.bots {
        let spec = bot.adapter.spec();
        let name = spec.name;
        rt.await_platform(name);
        rt.registry_mut().register(Arc::clone(&bot.adapter));
        rt.registry_mut().set_bot(name, bot.config.clone());
        health.set(name, false);
        let (events, incoming) = mpsc::channel(1024);
        let connection = bot
            .adapter
            .start(bot.config, Start { connection: name.to_string(), events })
            .await
            .map_err(|e| anyhow!("starting Polity's {} bot: {e}", spec.title))?;
        let links = Links { inputs: tx.clone(), notices: notices.clone(), health: health.clone() };
        let translator = spaces::translate(spec, name.to_string(), Owner::Bot, connection.scopes(), incoming, links);
        bots.push(Running { name, connection, translator });
    }
    let (stop_http, http_stopping) = watch::channel(false);
    // Communities' own connections: started now, and whenever a decision enables one.
    let (changes, changed) = mpsc::unbounded_channel();
    rt.on_connection_change(changes);
    let links = Links { inputs: tx.clone(), notices: notices.clone(), health: health.clone() };
    let supervisor = Supervisor::new(
        store.clone(),
        rt.registry().clone(),
        links,
        bots.iter().map(|b| b.translator.spaces()).collect(),
    );
    let supervising = tokio::spawn(supervisor.run(changed, http_stopping.clone()));
    let http = host.http.map(|h| {
        let state = HttpState::new(store, health.clone(), tx.clone()).with_webhooks(h.webhooks);
        let mut stopping = http_stopping.clone();
        tokio::spawn(serve_http(h.listener, state, async move {
            // Stops when told, or when whoever could tell it is gone.
            let _stop = stopping.wait_for(|stop| *stop).await;
        }))
    });
    drop(tx);
    // The loop stops on `shutdown`, or when a bot gives up (a refused token), which is then
    // the error `polity run` ends with. The HTTP server stops taking requests then.
    let mut gave_up = None;
    let served = {
        let stop = async {
            tokio::select! {
                () = shutdown => {}
                (name, ended) = first_stopped(&mut bots), if !bots.is_empty() => {
                    health.set(name, false);
                    gave_up = Some((name, ended));
                }
            }
            stop_http.send_replace(true);
        };
        serve(rt, rx, clock, stop).await
    };
    stop_http.send_replace(true);
    if let Err(e) = supervising.await {
        tracing::error!("stopping communities' connections failed: {e}");
    }
    for bot in bots {
        bot.translator.stop();
        bot.connection.shutdown().await;
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
    let title = |name: &str| crate::platforms::spec(name).map_or_else(|| name.to_string(), |s| s.title.to_string());
    match gave_up {
        Some((name, Err(e))) => Err(anyhow!("the {} connection ended: {e}", title(name))),
        Some((name, Ok(()))) => Err(anyhow!("the {} connection ended", title(name))),
        None => served,
    }
}
