//! `polity run`: the configured platforms' bots in the serving loop until shutdown, and the
//! HTTP server (health, metrics, webhooks) beside it.
//!
//! Shutdown wins every wait: a bot still starting is left, and a connection that does not
//! close within a few seconds (serenity waits for ever for a shard that never connected) is
//! left behind. While a bot connects, what it is doing and why it waits is said at info
//! ([`connect_attempts_layer`] reads the failed attempts that platform libraries log).

use crate::connections::Supervisor;
use crate::http::{Health, HttpState, Webhooks, serve_http};
use crate::platforms::Registry;
use crate::runtime::Runtime;
use crate::serve::{Clock, serve};
use crate::spaces::{self, Links, Notice, Owner, Translator};
use crate::store::Store;
use anyhow::{Context as _, Result, anyhow};
use chrono::TimeDelta;
use polity_port::{Adapter, Connection, Incoming, Install, Start};
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
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
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// How long a bot that connected may take to close once the loop has stopped.
const CLOSE_CONNECTED: Duration = Duration::from_secs(5);

/// How long a bot that never connected may take to close: it has nobody to say goodbye to,
/// and serenity would wait for ever for a shard that never started.
const CLOSE_UNCONNECTED: Duration = Duration::from_secs(1);

/// How long a bot that is still connecting stays quiet before saying so again.
pub const STILL_CONNECTING: Duration = Duration::from_secs(30);

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

/// What [`serve_host`] served, once it stopped.
pub struct Served {
    pub runtime: Runtime,
    /// Polity's bots that never connected, with how their attempts went.
    pub never_connected: Vec<NeverConnected>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served").field("never_connected", &self.never_connected).finish_non_exhaustive()
    }
}

impl Served {
    /// The runtime; an error when one of Polity's bots never connected (`polity run` stopped
    /// before it did what it was configured to do).
    ///
    /// # Errors
    /// Naming each bot that never connected, and why, as far as is known.
    pub fn connected(self) -> Result<Runtime> {
        if self.never_connected.is_empty() {
            return Ok(self.runtime);
        }
        let said: Vec<String> = self.never_connected.iter().map(ToString::to_string).collect();
        Err(anyhow!("{}", said.join("; ")))
    }
}

/// One of Polity's bots that had not connected when `polity run` stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeverConnected {
    /// Its platform's title (`Discord`).
    pub title: &'static str,
    /// Whether its adapter had finished starting it.
    pub started: bool,
    /// Its failed attempts to connect, as far as they were heard of.
    pub tries: u32,
    /// Why the last one failed.
    pub last: Option<String>,
}

impl std::fmt::Display for NeverConnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped before Polity's {} bot connected", self.title)?;
        match &self.last {
            Some(why) => write!(f, " ({} {}; the last: {why})", self.tries, plural(self.tries, "try", "tries")),
            None if !self.started => f.write_str(" (it was still starting)"),
            None => Ok(()),
        }
    }
}

/// A bot while it runs.
struct Running {
    name: &'static str,
    connection: Box<dyn Connection>,
    translator: Translator,
    /// Hands its inputs to the translator, noting when it connects.
    relay: JoinHandle<()>,
    progress: Progress,
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

/// Runs what `host` holds until `shutdown`, as [`serve_host`], whether or not its bots ever
/// connected.
///
/// # Errors
/// As [`serve_host`].
pub async fn run_host(
    store: Store,
    host: Host,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Runtime> {
    serve_host(store, host, pacing, clock, shutdown, notices).await.map(|served| served.runtime)
}

/// Runs what `host` holds (the platforms' bots, the HTTP server) around the serving loop
/// until `shutdown`; what the bots have to say (invite links, the spaces they govern) goes
/// to `notices`. `GET /healthz` shows a bot down until it is connected, and again once it
/// gives up. While a bot connects, what it does and why it waits is logged at info.
///
/// `shutdown` wins every wait: a bot still starting is left at once (the loop never runs),
/// and each bot's connection gets a few seconds to close. [`Served::never_connected`] names
/// the bots that had not connected by then.
///
/// # Errors
/// When the store fails, a bot cannot be started, or a bot gives up (a refused token).
pub async fn serve_host(
    store: Store,
    host: Host,
    pacing: Pacing,
    clock: &dyn Clock,
    shutdown: impl Future<Output = ()>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Served> {
    let mut shutdown = std::pin::pin!(shutdown);
    let health = Health::new();
    let mut rt = Runtime::open(store.clone()).await?;
    *rt.registry_mut() = host.registry;
    rt.set_edit_interval(pacing.edit);
    rt.set_reconcile_interval(pacing.reconcile);
    let (tx, rx) = mpsc::channel(1024);
    let mut bots = Vec::new();
    let mut pending = host.bots.into_iter();
    while let Some(bot) = pending.next() {
        let spec = bot.adapter.spec();
        let name = spec.name;
        rt.await_platform(name);
        rt.registry_mut().register(Arc::clone(&bot.adapter));
        rt.registry_mut().set_bot(name, bot.config.clone());
        health.set(name, false);
        let progress = Progress::start(name, spec.title);
        let (events, from_adapter) = mpsc::channel(1024);
        // Where Polity's app was installed through the platform's own install flow.
        let installs = store
            .installs(name)
            .await
            .with_context(|| format!("reading where Polity's {} app is installed", spec.title))?
            .into_iter()
            .map(|(space, secret)| Install { space, secret: secret.expose().to_string() })
            .collect();
        let start = bot.adapter.start(bot.config, Start { installs, ..Start::new(name, events) });
        let started = tokio::select! {
            started = start => started,
            () = &mut shutdown => {
                tracing::info!("{name}: shutting down while Polity's {} bot was still starting", spec.title);
                let mut never_connected = stop_all(bots).await;
                never_connected.extend(progress.stop(false));
                never_connected.extend(pending.map(|b| NeverConnected {
                    title: b.adapter.spec().title,
                    started: false,
                    tries: 0,
                    last: None,
                }));
                return Ok(Served { runtime: rt, never_connected });
            }
        };
        let connection = match started {
            Ok(connection) => connection,
            Err(e) => {
                progress.stop(false);
                stop_all(bots).await;
                return Err(anyhow!("starting Polity's {} bot: {e}", spec.title));
            }
        };
        let (relayed, incoming) = mpsc::channel(1024);
        let relay = relay(from_adapter, relayed, Arc::clone(&progress.connected));
        let links = Links { inputs: tx.clone(), notices: notices.clone(), health: health.clone() };
        let translator = spaces::translate(spec, name.to_string(), Owner::Bot, connection.scopes(), incoming, links);
        bots.push(Running { name, connection, translator, relay, progress });
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
        let mut state = HttpState::new(store, health.clone(), tx.clone()).with_webhooks(h.webhooks);
        for bot in &bots {
            if let Some(endpoint) = bot.connection.endpoint() {
                state = state.with_endpoint(bot.name, endpoint);
            }
        }
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
                () = &mut shutdown => {}
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
    let never_connected = stop_all(bots).await;
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
        None => served.map(|runtime| Served { runtime, never_connected }),
    }
}

/// Stops `bots`, each given a few seconds to close; answers those that never connected.
async fn stop_all(bots: Vec<Running>) -> Vec<NeverConnected> {
    let mut never_connected = Vec::new();
    for bot in bots {
        bot.translator.stop();
        bot.relay.abort();
        let connected = bot.progress.is_connected();
        let within = if connected { CLOSE_CONNECTED } else { CLOSE_UNCONNECTED };
        if tokio::time::timeout(within, bot.connection.shutdown()).await.is_err() {
            // Left to end with the process.
            if connected {
                tracing::warn!("{}: the connection did not close within {} s", bot.name, within.as_secs());
            } else {
                tracing::debug!("{}: a connection that never connected was left unclosed", bot.name);
            }
        }
        if !connected {
            tracing::warn!("{}: stopped before it connected", bot.name);
        }
        never_connected.extend(bot.progress.stop(true));
    }
    never_connected
}

/// Hands what a bot's adapter says to its translator, noting when it connects.
fn relay(
    mut from: mpsc::Receiver<Incoming>,
    to: mpsc::Sender<Incoming>,
    connected: Arc<watch::Sender<bool>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(incoming) = from.recv().await {
            if matches!(incoming, Incoming::Connected { .. }) {
                connected.send_replace(true);
            }
            if to.send(incoming).await.is_err() {
                break;
            }
        }
    })
}

// ----- saying how connecting goes -----

/// How one of Polity's bots is getting on with connecting, told at info until it connects.
struct Progress {
    title: &'static str,
    /// Set once it has connected (a session started).
    connected: Arc<watch::Sender<bool>>,
    tries: Arc<Mutex<Tries>>,
    telling: JoinHandle<()>,
}

/// A bot's failed attempts to connect.
#[derive(Default)]
struct Tries {
    count: u32,
    last: Option<String>,
}

impl Progress {
    /// Starts telling how the bot `name` connects; listens for failed attempts from now on.
    fn start(name: &'static str, title: &'static str) -> Self {
        let (connected, watching) = watch::channel(false);
        let tries = Arc::new(Mutex::new(Tries::default()));
        let failures = attempts().subscribe();
        let telling = tokio::spawn(tell(name, title, watching, failures, Arc::clone(&tries)));
        Self { title, connected: Arc::new(connected), tries, telling }
    }

    fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Stops telling; what became of the bot, if it never connected.
    fn stop(self, started: bool) -> Option<NeverConnected> {
        self.telling.abort();
        if self.is_connected() {
            return None;
        }
        let tries = self.tries.lock().unwrap_or_else(PoisonError::into_inner);
        Some(NeverConnected { title: self.title, started, tries: tries.count, last: tries.last.clone() })
    }
}

/// Says at info that the bot `name` connects, each failed attempt with why and when it is
/// tried again, that it is still connecting when nothing was heard for [`STILL_CONNECTING`],
/// and when it has connected; then ends.
async fn tell(
    name: &'static str,
    title: &'static str,
    mut connected: watch::Receiver<bool>,
    mut failures: broadcast::Receiver<Attempt>,
    tries: Arc<Mutex<Tries>>,
) {
    tracing::info!("{name}: connecting Polity's {title} bot");
    let began = tokio::time::Instant::now();
    let mut quiet = tokio::time::interval_at(began + STILL_CONNECTING, STILL_CONNECTING);
    quiet.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            up = connected.wait_for(|up| *up) => {
                if up.is_ok() {
                    let count = tries.lock().unwrap_or_else(PoisonError::into_inner).count;
                    if count == 0 {
                        tracing::info!("{name}: connected");
                    } else {
                        tracing::info!("{name}: connected, after {count} failed {}", plural(count, "try", "tries"));
                    }
                }
                return;
            }
            failed = failures.recv() => match failed {
                Ok(attempt) if attempt.platform == name => {
                    let count = {
                        let mut tries = tries.lock().unwrap_or_else(PoisonError::into_inner);
                        tries.count += 1;
                        tries.last = Some(attempt.why.clone());
                        tries.count
                    };
                    match attempt.retry_in {
                        Some(wait) => tracing::info!(
                            "{name}: {}, retrying in {} s ({} try)",
                            attempt.why,
                            wait.as_secs(),
                            ordinal(count)
                        ),
                        None => tracing::info!("{name}: {} ({} try)", attempt.why, ordinal(count)),
                    }
                    quiet.reset();
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                // The sender is a static: never.
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = quiet.tick() => {
                tracing::info!("{name}: still connecting after {} s", began.elapsed().as_secs());
            }
        }
    }
}

/// `1st`, `2nd`, `3rd`, `4th` ... `11th`, `12th`, `13th` ... `21st`.
fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// A platform's failed attempt to connect, as its client library logged it. Attempts are
/// heard process-wide, by platform: a community's own Discord connection failing while
/// Polity's Discord bot connects counts as one of the bot's tries (the library's log does
/// not say which client it is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The platform (`discord`).
    pub platform: &'static str,
    /// Why it failed, for an operator: `not reachable (connection refused)`.
    pub why: String,
    /// When the library tries again, if it says.
    pub retry_in: Option<Duration>,
}

/// Failed attempts to connect, from [`connect_attempts_layer`] to the bots connecting.
fn attempts() -> &'static broadcast::Sender<Attempt> {
    static ATTEMPTS: OnceLock<broadcast::Sender<Attempt>> = OnceLock::new();
    ATTEMPTS.get_or_init(|| broadcast::channel(64).0)
}

/// A tracing layer that reads platform libraries' failed attempts to connect from their logs
/// (each adapter says which library's lines tell of them, [`polity_port::LogLines`]), so
/// that `polity run` says in plain words why a bot waits: `discord: not reachable
/// (connection refused), retrying in 5 s (3rd try)`. It prints nothing itself, and sees
/// those events whatever the formatting layer's filter.
pub fn connect_attempts_layer<S>(adapters: &[Arc<dyn Adapter>]) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let readers: Vec<(&'static str, &'static str, polity_port::ReadAttempt)> = adapters
        .iter()
        .filter_map(|a| a.log_lines().connect_attempts.map(|c| (c.target, a.spec().name, c.read)))
        .collect();
    let targets =
        readers.iter().fold(Targets::new(), |targets, (target, _, _)| targets.with_target(*target, Level::WARN));
    ConnectAttempts { readers }.with_filter(targets)
}

struct ConnectAttempts {
    /// Per library target: the platform, and how to read its message.
    readers: Vec<(&'static str, &'static str, polity_port::ReadAttempt)>,
}

impl<S: Subscriber> Layer<S> for ConnectAttempts {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let target = event.metadata().target();
        let Some((_, platform, read)) = self.readers.iter().find(|(t, _, _)| target.starts_with(t)) else { return };
        let mut message = MessageText::default();
        event.record(&mut message);
        if let Some((why, retry_in)) = read(&message.0) {
            // Nobody connecting, nobody to tell.
            let _unheard = attempts().send(Attempt { platform, why, retry_in });
        }
    }
}

/// An event's message.
#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
