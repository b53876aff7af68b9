//! Platform connections as the host runs them:
//! - [`Supervisor`]: communities' own connections (a token of their own, or a platform that
//!   needs none) started at start and as soon as a committed decision enables one, stopped
//!   when one is removed, without a restart; a removed connection's spaces leave its
//!   community at once.
//! - Polls: a connection's [`polity_port::Poller`] declares its polls; each is a row of the
//!   `polls` table (when it is due, how often, its cursor), so the serving loop wakes for it
//!   and a restart neither repeats nor skips one. The loop hands due polls here; each runs off
//!   the loop (at most [`POLL_TIMEOUT`]), what it read goes back as deliveries, deduplicated
//!   like any others, and its cursor is stored after them.
//! - The test behind `/integration test`, made ready inside the serving loop (reading the
//!   connection and its secret) and run outside it, so a slow platform never holds up
//!   anything else.

use crate::http::Health;
use crate::platforms::Registry;
use crate::runtime::{ConnectionEvent, Runtime};
use crate::serve::{Delivery, Input};
use crate::spaces::{self, CONFIRMED_BY, Links, MADE_FOR_SPACE, Owner, Spaces, Translator};
use crate::store::polls::DuePoll;
use crate::store::{Connection as Stored, Store};
use anyhow::Result;
use chrono::{DateTime, Utc};
use polity_governance::ids::CommunityId;
use polity_port::{Adapter, PlatformSpec, Poller, Start, TestFailure};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long a connection test may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys of a connection's stored config that are Polity's own, never a platform setting.
const OWN_KEYS: &[&str] =
    &["enabled", polity_commands::integration::JOIN_CODE, MADE_FOR_SPACE, "made_for_guild", CONFIRMED_BY];

/// A connection's test, ready to run.
pub struct ConnectionTest {
    name: String,
    platform: String,
    adapter: Arc<dyn Adapter>,
    config: Value,
    settings: Map<String, Value>,
}

impl std::fmt::Debug for ConnectionTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config may hold a secret.
        f.debug_struct("ConnectionTest")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl ConnectionTest {
    /// Makes the adapter's test call (at most [`TEST_TIMEOUT`]) and says how it went.
    pub async fn run(self) -> String {
        let (name, platform) = (&self.name, &self.platform);
        let outcome = tokio::time::timeout(TEST_TIMEOUT, self.adapter.test(self.config, self.settings)).await;
        let outcome = outcome
            .unwrap_or_else(|_| Err(TestFailure::Unreachable(format!("no answer in {} s", TEST_TIMEOUT.as_secs()))));
        match outcome {
            Ok(works) => format!("{name} ({platform}) works: {works}"),
            Err(failed) => {
                tracing::info!(connection = %name, %platform, "a connection failed its test: {failed}");
                format!("{name} ({platform}) failed its test: {failed}")
            }
        }
    }
}

/// The test of `community`'s connection `name`, or why there is none to run.
///
/// # Errors
/// When the store fails.
pub async fn prepare_test(rt: &Runtime, community: CommunityId, name: &str) -> Result<Result<ConnectionTest, String>> {
    let all = rt.store().connections(community).await?;
    let Some(c) = all.into_iter().find(|c| c.name == name) else {
        return Ok(Err(format!("There is no connection named {name}: `/integration list` shows them.")));
    };
    if c.config.get("enabled").and_then(Value::as_bool) == Some(false) {
        return Ok(Err(format!("{name} waits for its proposal to pass before Polity uses it.")));
    }
    let Some(adapter) = rt.registry().adapter(&c.platform).cloned() else {
        return Ok(Err(format!(
            "{name} ({}) is stored, but this build of Polity has no {} adapter, so it cannot reach it.",
            c.platform, c.platform
        )));
    };
    let spec = adapter.spec();
    let settings = settings_of(&c, spec);
    let bot = rt.registry().bot(spec.name);
    let config = if c.has_secret || spec.secret.is_none() {
        let secret = rt.store().connection_secret(community, name).await?;
        match adapter.connection_config(bot, &settings, secret.as_ref().map(crate::store::Secret::expose)) {
            Ok(config) => config,
            Err(e) => return Ok(Err(format!("{name} ({}) cannot be tested: {e}", c.platform))),
        }
    } else if let Some(bot) = bot {
        bot.clone()
    } else {
        return Ok(Err(format!(
            "{name} ({}) has no secret of its own, and Polity runs no {} bot here: there is nothing to test it with.",
            c.platform, spec.title
        )));
    };
    Ok(Ok(ConnectionTest { name: c.name, platform: c.platform, adapter, config, settings }))
}

/// How long one poll may take.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);

impl Supervisor {
    /// Runs a due poll off the loop: what it read goes to the loop as deliveries, in order,
    /// then its cursor is stored (after them, so a crash between reads them again, and their
    /// dedup keys drop the repeats).
    fn poll(&self, due: DuePoll) {
        let Some((poller, hook_source)) = self.pollers.get(&(due.community, due.connection.clone())).cloned() else {
            tracing::debug!(community = %due.community, connection = %due.connection, "a poll came due for a connection that is not running");
            return;
        };
        let inputs = self.links.inputs.clone();
        tokio::spawn(async move {
            let DuePoll { community, connection, poll, cursor } = due;
            let read = tokio::time::timeout(POLL_TIMEOUT, poller.poll(&poll, cursor)).await;
            let polled = match read {
                Ok(Ok(polled)) => polled,
                Ok(Err(e)) => {
                    tracing::warn!(community = %community, %connection, %poll, "a poll failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::warn!(community = %community, %connection, %poll, "a poll took over {} s: it runs again at its next time", POLL_TIMEOUT.as_secs());
                    return;
                }
            };
            for event in polled.events {
                let space = event.space.unwrap_or_default();
                let delivery = Delivery {
                    community,
                    source: hook_source
                        .clone()
                        .unwrap_or_else(|| spaces::source(Owner::Community(community), &connection, &space)),
                    dedup_key: event.dedup_key,
                    input: event.input,
                    from: event.from,
                };
                if inputs.send(delivery.into()).await.is_err() {
                    return;
                }
            }
            if let Some(cursor) = polled.cursor {
                let job = Input::job(move |rt: &mut Runtime, _now: DateTime<Utc>| {
                    Box::pin(async move {
                        rt.store().set_poll_cursor(community, &connection, &poll, &cursor).await?;
                        Ok(())
                    })
                });
                let _stopped = inputs.send(job).await;
            }
        });
    }
}

/// A stored connection's platform settings, without the keys that are Polity's own.
fn settings_of(c: &Stored, spec: &PlatformSpec) -> Map<String, Value> {
    c.config
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !OWN_KEYS.contains(&k.as_str()) && spec.setting(k).is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a stored connection is a community's own (started by the host), rather than a
/// space of Polity's own bot (which joins by confirmation inside it).
fn runs_on_its_own(c: &Stored, spec: &PlatformSpec) -> bool {
    c.config.get("enabled").and_then(Value::as_bool) != Some(false) && (c.has_secret || spec.secret.is_none())
}

/// A community's own connection while it runs.
struct Running {
    translator: Translator,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Starts and stops communities' own connections.
pub struct Supervisor {
    store: Store,
    registry: Registry,
    links: Links,
    health: Health,
    /// The spaces of Polity's own bots: rechecked when a community removes a connection.
    bots: Vec<Spaces>,
    running: HashMap<(CommunityId, String), Running>,
    /// Connections being started (on tasks of their own), and whether they are still wanted.
    starting: HashMap<(CommunityId, String), bool>,
    /// The running connections that poll, with the inbox source of their webhooks when their
    /// platform takes webhooks: a poll that reads what a webhook missed records it under the
    /// same source, so the same happening read both ways is recorded once.
    pollers: HashMap<(CommunityId, String), Polling>,
    /// Starts finished and connections that ended by themselves, from their tasks.
    news: (mpsc::UnboundedSender<News>, mpsc::UnboundedReceiver<News>),
}

/// A running connection's poller, and the inbox source its webhooks are recorded under, if
/// its platform takes webhooks.
type Polling = (Arc<dyn Poller>, Option<String>);

/// What a connection's task tells the supervisor.
enum News {
    /// A start finished (or failed, or took too long).
    Started { community: CommunityId, name: String, spec: &'static PlatformSpec, started: Option<Started> },
    /// A running connection gave up by itself.
    Ended { community: CommunityId, name: String },
}

/// A connection that started, with the inputs it will hand over.
struct Started {
    connection: Box<dyn polity_port::Connection>,
    incoming: mpsc::Receiver<polity_port::Incoming>,
}

/// How long a connection may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to close; one that takes longer is left behind (serenity
/// waits for ever for a shard that never connected), so stopping never hangs.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `connection`, waiting at most [`CLOSE_TIMEOUT`].
async fn close(community: CommunityId, name: &str, connection: Box<dyn polity_port::Connection>) {
    if tokio::time::timeout(CLOSE_TIMEOUT, connection.shutdown()).await.is_err() {
        tracing::warn!(community = %community, connection = name, "the connection did not close within {} s: left behind", CLOSE_TIMEOUT.as_secs());
    }
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("running", &self.running.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Supervisor {
    pub fn new(store: Store, registry: Registry, links: Links, bots: Vec<Spaces>) -> Self {
        let health = links.health.clone();
        Self {
            store,
            registry,
            links,
            health,
            bots,
            running: HashMap::new(),
            starting: HashMap::new(),
            pollers: HashMap::new(),
            news: mpsc::unbounded_channel(),
        }
    }

    /// Starts every enabled connection of communities' own, then follows `events` (what
    /// committed decisions enabled or removed) until `stopping` says so; then stops them all.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<ConnectionEvent>,
        mut stopping: watch::Receiver<bool>,
    ) {
        self.start_all().await;
        enum Next {
            Event(Option<ConnectionEvent>),
            News(News),
        }
        loop {
            let next = tokio::select! {
                event = events.recv() => Next::Event(event),
                Some(news) = self.news.1.recv() => Next::News(news),
                _stop = stopping.wait_for(|stop| *stop) => Next::Event(None),
            };
            let event = match next {
                Next::News(news) => {
                    self.heard(news).await;
                    continue;
                }
                Next::Event(event) => event,
            };
            match event {
                Some(ConnectionEvent::Enabled { community, name }) => self.start(community, &name).await,
                Some(ConnectionEvent::Removed { community, name }) => self.stop(community, &name, true).await,
                Some(ConnectionEvent::PollDue(due)) => self.poll(due),
                None => break,
            }
        }
        let all: Vec<(CommunityId, String)> = self.running.keys().cloned().collect();
        for (community, name) in all {
            self.stop(community, &name, false).await;
        }
    }

    async fn start_all(&mut self) {
        let specs = self.registry.specs();
        for spec in specs {
            let rows = match self.store.connections_to(spec.name).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(platform = spec.name, "reading the connections to start failed: {e}");
                    continue;
                }
            };
            for (community, c) in rows {
                if runs_on_its_own(&c, &spec) {
                    self.start(community, &c.name).await;
                }
            }
        }
    }

    /// Starts `community`'s connection `name`, if it is enabled and its own.
    async fn start(&mut self, community: CommunityId, name: &str) {
        let key = (community, name.to_string());
        if self.running.contains_key(&key) || self.starting.contains_key(&key) {
            return;
        }
        let stored = match self.store.connections(community).await {
            Ok(all) => all.into_iter().find(|c| c.name == name),
            Err(e) => {
                tracing::error!(community = %community, connection = name, "reading a connection to start failed: {e}");
                return;
            }
        };
        let Some(c) = stored else { return };
        let Some(adapter) = self.registry.adapter(&c.platform).cloned() else {
            tracing::warn!(community = %community, connection = name, "no adapter for {} in this build: the connection is not started", c.platform);
            return;
        };
        let spec = adapter.spec();
        if !runs_on_its_own(&c, spec) {
            return;
        }
        let health_name = spaces::health_name(Owner::Community(community), name);
        self.health.set(&health_name, false);
        let secret = if c.has_secret {
            match self.store.connection_secret(community, name).await {
                Ok(secret) => secret,
                Err(e) => {
                    tracing::error!(community = %community, connection = name, "reading a connection's secret failed: {e}");
                    return;
                }
            }
        } else {
            None
        };
        let settings = settings_of(&c, spec);
        let config = adapter.connection_config(
            self.registry.bot(spec.name),
            &settings,
            secret.as_ref().map(crate::store::Secret::expose),
        );
        let config = match config {
            Ok(config) => config,
            Err(e) => {
                tracing::warn!(community = %community, connection = name, "the connection cannot start: {e}");
                return;
            }
        };
        // Started on a task of its own, so a platform that is slow to answer holds up no
        // other connection's start, stop or poll.
        self.starting.insert(key, true);
        let news = self.news.0.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let (events, incoming) = mpsc::channel(1024);
            let start = adapter.start(config, Start::new(name.clone(), events));
            let started = match tokio::time::timeout(START_TIMEOUT, start).await {
                Ok(Ok(connection)) => Some(Started { connection, incoming }),
                Ok(Err(e)) => {
                    tracing::warn!(community = %community, connection = %name, "the connection did not start: {e}");
                    None
                }
                Err(_) => {
                    tracing::warn!(community = %community, connection = %name, "the connection did not start within {} s", START_TIMEOUT.as_secs());
                    None
                }
            };
            let _stopping = news.send(News::Started { community, name, spec, started });
        });
    }

    /// What a connection's task said: a start to finish, or a connection that ended.
    async fn heard(&mut self, news: News) {
        match news {
            News::Started { community, name, spec, started } => {
                let wanted = self.starting.remove(&(community, name.clone())).unwrap_or(false);
                let Some(Started { connection, incoming }) = started else { return };
                if !wanted {
                    // Removed while it was starting.
                    close(community, &name, connection).await;
                    return;
                }
                self.run_started(community, &name, spec, connection, incoming).await;
            }
            News::Ended { community, name } => {
                // It gave up: forgotten, so a later decision enabling it starts it afresh.
                self.pollers.remove(&(community, name.clone()));
                self.forget_cred(community, &name).await;
                if let Some(running) = self.running.remove(&(community, name)) {
                    running.translator.stop();
                }
            }
        }
    }

    /// Runs a connection that started: its inputs translated, its polls kept, and a task that
    /// stops it when told or reports when it gives up.
    async fn run_started(
        &mut self,
        community: CommunityId,
        name: &str,
        spec: &'static PlatformSpec,
        mut connection: Box<dyn polity_port::Connection>,
        incoming: mpsc::Receiver<polity_port::Incoming>,
    ) {
        let health_name = spaces::health_name(Owner::Community(community), name);
        let translator = spaces::translate(
            spec,
            name.to_string(),
            Owner::Community(community),
            connection.scopes(),
            incoming,
            self.links.clone(),
        );
        // What platform the connection is of, for the labels of what it does.
        let (kind, named) = (spec.name, name.to_string());
        let label = Input::job(move |rt: &mut Runtime, _now: DateTime<Utc>| {
            Box::pin(async move {
                rt.add_connection_kind(community, &named, kind);
                Ok(())
            })
        });
        let _stopping = self.links.inputs.send(label).await;
        if let Some(source) = connection.cred() {
            // Its community's scripts read it from the next step on; no other community's do.
            let name = name.to_string();
            let add = Input::job(move |rt: &mut Runtime, _now: DateTime<Utc>| {
                Box::pin(async move {
                    rt.add_cred_source(community, &name, source);
                    Ok(())
                })
            });
            let _stopping = self.links.inputs.send(add).await;
        }
        if let Some(poller) = connection.poller() {
            for poll in poller.polls() {
                // At most once a second, at least once a week: each adapter bounds its own
                // interval further (its configuration's minimum, its platform's rate limit).
                let every = poll.every.clamp(Duration::from_secs(1), Duration::from_secs(7 * 24 * 3600));
                let every = chrono::TimeDelta::from_std(every).unwrap_or(chrono::TimeDelta::days(7));
                // A new poll runs at once; a known one keeps its time and its cursor.
                let first = DateTime::<Utc>::UNIX_EPOCH;
                if let Err(e) = self.store.ensure_poll(community, name, poll.name, every, first).await {
                    tracing::error!(community = %community, connection = name, "recording the poll {} failed: {e}", poll.name);
                }
            }
            let takes_webhooks = self.registry.adapter(spec.name).is_some_and(|a| a.webhooks().is_some());
            let hook_source = takes_webhooks.then(|| crate::http::hook_source(spec.name, community, name));
            self.pollers.insert((community, name.to_string()), (poller, hook_source));
            // The loop learns of the new polls when it next looks at what is due.
            let wake = Input::job(|_rt: &mut Runtime, _now: DateTime<Utc>| Box::pin(async { Ok(()) }));
            let _stopping = self.links.inputs.send(wake).await;
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let health = self.health.clone();
        let news = self.news.0.clone();
        let connection_name = name.to_string();
        let task = tokio::spawn(async move {
            tokio::select! {
                ended = connection.stopped() => {
                    health.set(&health_name, false);
                    match ended {
                        Ok(()) => tracing::warn!(community = %community, connection = %connection_name, "the connection ended"),
                        Err(e) => tracing::warn!(community = %community, connection = %connection_name, "the connection gave up: {e}"),
                    }
                    let _stopping = news.send(News::Ended { community, name: connection_name.clone() });
                }
                _ = stopped => {}
            }
            close(community, &connection_name, connection).await;
        });
        tracing::info!(community = %community, connection = name, "started {} connection {name}", spec.title);
        self.running.insert((community, name.to_string()), Running { translator, stop, task });
    }

    /// Its community's scripts read what connection `name` knew of members no more.
    async fn forget_cred(&self, community: CommunityId, name: &str) {
        let name = name.to_string();
        let forget = Input::job(move |rt: &mut Runtime, _now: DateTime<Utc>| {
            Box::pin(async move {
                rt.remove_cred_source(community, &name);
                Ok(())
            })
        });
        let _stopping = self.links.inputs.send(forget).await;
    }

    /// Stops `community`'s connection `name` if it runs; when it was `removed`, its platform
    /// acts for the community no more, and spaces of Polity's own bots it named leave.
    async fn stop(&mut self, community: CommunityId, name: &str, removed: bool) {
        self.pollers.remove(&(community, name.to_string()));
        if let Some(wanted) = self.starting.get_mut(&(community, name.to_string())) {
            *wanted = false;
        }
        let ran = self.running.contains_key(&(community, name.to_string()));
        if ran {
            self.forget_cred(community, name).await;
        }
        if let Some(running) = self.running.remove(&(community, name.to_string())) {
            running.translator.stop();
            // The task may have ended by itself already (the connection gave up).
            let _gone = running.stop.send(());
            if let Err(e) = running.task.await {
                tracing::warn!(community = %community, connection = name, "stopping the connection failed: {e}");
            }
            self.health.remove(&spaces::health_name(Owner::Community(community), name));
            tracing::info!(community = %community, connection = name, "stopped connection {name}");
        }
        if !removed {
            return;
        }
        let mut jobs = Vec::new();
        if ran {
            // Only a connection of the community's own has a platform of its name to forget
            // (a connection to a space of Polity's bot shares the bot's).
            let name = name.to_string();
            jobs.push(Input::job(move |rt: &mut Runtime, _now: DateTime<Utc>| {
                Box::pin(async move {
                    rt.remove_community_platform(community, &name);
                    Ok(())
                })
            }));
        }
        jobs.extend(self.bots.iter().map(|b| b.recheck(community)));
        for job in jobs {
            if self.links.inputs.send(job).await.is_err() {
                return;
            }
        }
    }
}
