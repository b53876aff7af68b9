//! The spaces of every platform's connections, governed the same way: a running connection's
//! inputs become jobs of the serving loop, so they take the one path every input takes, in the
//! order the platform sent them.
//!
//! - Which community governs a space (a Discord server, a Slack workspace) is decided here,
//!   once, for every platform, and recorded in the platform's connections. A space never
//!   leaves the community that governs it but by that community's own decision (removing
//!   its connection to the space):
//!   - a community's own connection (its own token, started when its decision enabled it):
//!     every space the token reaches is that community's;
//!   - Polity's own bot for a platform (`[platforms.NAME]`):
//!     - governed: the space belongs to the community whose enabled connection naming it
//!       was made for it (`made_for_space`) or was confirmed inside it (`confirmed_by`).
//!       Whatever other communities' connections say, it stays there.
//!     - asked for: a space new to Polity that communities' enabled connections name
//!       (`/integration add discord NAME guild=ID`, each with its one-time code) waits,
//!       governed by nobody (its events dropped, its commands answered with what to do),
//!       until someone who controls it (by the platform's own permissions) types
//!       `/integration confirm CODE` in it: it joins the community whose code that is.
//!       `/integration confirm` with no code makes it a community of its own instead, so
//!       nobody can keep a space from governing itself.
//!     - new: a community of its own, created with the space's owner as its first admin.
//! - A community's platform acts in its own spaces only ([`polity_port::Scopes`]). The
//!   space's members become members.
//! - Inputs are deduplicated under a source naming the connection and the space, so two
//!   spaces whose platforms reuse ids never shadow each other.
//! - After a (re)connect the open vote messages of the space's community are read back and
//!   reconciled, so reactions added or removed while Polity was away count.
//! - Commands and the secret form run the shared handlers against the community's ports;
//!   their replies go back to the adapter, which answers the platform.

use crate::http::Health;
use crate::ports::CommunityPorts;
use crate::runtime::Runtime;
use crate::serve::{Delivery, Input, deliver_all};
use crate::store::{Connection, Secret, StepRecord};
use anyhow::{Result, anyhow};
use chrono::{DateTime, Utc};
use polity_commands::Reply;
use polity_commands::catalogue::Handler;
use polity_commands::integration::JOIN_CODE;
use polity_governance::action::ActionType;
use polity_governance::ids::{AccountRef, CommunityId};
use polity_governance::io::Audit;
use polity_governance::platform::PlatformSpec;
use polity_port::{CommandCall, Event, Incoming, Recorded, Scopes, SecretTyped, SpaceInfo};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A connection's config key: Polity's bot made the connection with the community it made
/// for the space. Like [`CONFIRMED_BY`] and [`JOIN_CODE`], never a setting a command can write.
pub const MADE_FOR_SPACE: &str = "made_for_space";
/// The same, as connections made before every platform was hosted the same way say it.
const MADE_FOR_GUILD: &str = "made_for_guild";
/// A connection's config key: the account that confirmed, inside the space, that the space
/// joins the connection's community.
pub const CONFIRMED_BY: &str = "confirmed_by";

const SORRY: &str = "Sorry, that failed on our side; it is logged.";

/// What the host tells whoever runs it (`polity run` prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The link that adds Polity's bot to a space, once the platform has said who it is.
    Invite { platform: &'static str, link: String },
    /// A space is governed by a community.
    Governing { platform: &'static str, space: String, name: String, community: String },
    /// A space new to Polity that a community asked for waits for someone who controls it to
    /// confirm which community governs it.
    Waiting { platform: &'static str, space: String, name: String },
}

impl Notice {
    fn spec(&self) -> Option<&'static PlatformSpec> {
        let name = match self {
            Self::Invite { platform, .. } | Self::Governing { platform, .. } | Self::Waiting { platform, .. } => {
                platform
            }
        };
        crate::platforms::spec(name)
    }
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (title, noun) = self.spec().map_or(("the platform", "space"), |s| (s.title, s.space));
        match self {
            Self::Invite { link, .. } => write!(f, "Polity is on {title}. Add it to a {noun} with:\n{link}"),
            Self::Governing { space, name, community, .. } => {
                write!(f, "Governing the {title} {noun} \"{name}\" ({space}) as the community \"{community}\".")
            }
            Self::Waiting { space, name, .. } => write!(
                f,
                "The {title} {noun} \"{name}\" ({space}) waits for its owner or an admin to confirm which community governs it (`/integration confirm` there)."
            ),
        }
    }
}

/// Whose a running connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Polity's own bot for the platform (`[platforms.NAME]`): spaces join communities by
    /// proof of control given inside them.
    Bot,
    /// A community's own connection (its own token): every space it reaches is that
    /// community's.
    Community(CommunityId),
}

/// The translation of one running connection's inputs into the serving loop's.
pub struct Translator {
    task: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Translator {
    /// Stops translating (the connection is being stopped).
    pub fn stop(self) {
        self.task.abort();
    }

    /// A handle on the spaces this connection serves.
    pub fn spaces(&self) -> Spaces {
        Spaces(Arc::clone(&self.shared))
    }
}

/// A handle on the spaces one running connection serves.
#[derive(Clone)]
pub struct Spaces(Arc<Shared>);

impl std::fmt::Debug for Spaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Spaces").field(&self.0.connection).finish()
    }
}

impl Spaces {
    /// The serving loop's job that checks, after `community` removed a connection, which of
    /// its spaces it still governs: a space whose connection is gone leaves it at once, and
    /// its platform acts there no more.
    pub fn recheck(&self, community: CommunityId) -> Input {
        let shared = Arc::clone(&self.0);
        Input::job(move |rt: &mut Runtime, now: DateTime<Utc>| {
            Box::pin(async move { recheck(rt, &shared, community, now).await })
        })
    }
}

/// Drops the spaces `community` no longer governs, and settles each anew: a community of its
/// own, or waiting for a confirmation when another community asked for it.
async fn recheck(rt: &mut Runtime, shared: &Shared, community: CommunityId, now: DateTime<Utc>) -> Result<()> {
    let mut gone = Vec::new();
    for space in shared.spaces_of(community) {
        if governance(rt, shared, &space).await? != Governance::By(community) {
            gone.push(space);
        }
    }
    if gone.is_empty() {
        return Ok(());
    }
    if let Ok(mut spaces) = shared.spaces.lock() {
        for space in &gone {
            spaces.remove(space);
        }
    }
    tracing::info!(community = %community, spaces = ?gone, "a community let {} {}s go: it acts there no more", shared.spec.title, shared.noun());
    register(rt, shared, community);
    for space in gone {
        let info = shared.infos.lock().ok().and_then(|i| i.get(&space).cloned());
        if let Some(info) = info {
            join_space(rt, shared, info, now).await?;
        }
    }
    Ok(())
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator").finish_non_exhaustive()
    }
}

/// What the jobs of one running connection share: its spaces' communities, the spaces
/// waiting for one, and what builds each community's platform.
pub(crate) struct Shared {
    spec: &'static PlatformSpec,
    /// The connection's name: the platform of its refs.
    connection: String,
    owner: Owner,
    scopes: Arc<dyn Scopes>,
    spaces: Mutex<HashMap<String, CommunityId>>,
    /// Spaces new to Polity that a community asked for, until someone who controls them
    /// confirms which community governs them.
    waiting: Mutex<HashMap<String, SpaceInfo>>,
    /// What the platform last said of each space it serves (to settle it again when its
    /// community lets it go).
    infos: Mutex<HashMap<String, SpaceInfo>>,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Shared {
    /// An event as the serving loop takes it: in its space's community, under the
    /// connection's source; `None` (dropped) for a space no community governs.
    fn delivery(&self, e: Event) -> Option<Delivery> {
        let space = e.space.as_deref()?;
        let Some(community) = self.community_of(space) else {
            tracing::debug!(key = %e.dedup_key, "an event from a space with no community is dropped");
            return None;
        };
        Some(Delivery { community, source: self.source(space), dedup_key: e.dedup_key, input: e.input, from: e.from })
    }

    fn community_of(&self, space: &str) -> Option<CommunityId> {
        match self.owner {
            Owner::Community(c) => Some(c),
            Owner::Bot => self.spaces.lock().ok().and_then(|g| g.get(space).copied()),
        }
    }

    fn communities(&self) -> Vec<CommunityId> {
        let mut all: Vec<CommunityId> = self.spaces.lock().map(|g| g.values().copied().collect()).unwrap_or_default();
        if let Owner::Community(c) = self.owner {
            all.push(c);
        }
        all.sort_by_key(|c| c.0);
        all.dedup();
        all
    }

    /// The spaces `community` governs.
    fn spaces_of(&self, community: CommunityId) -> Vec<String> {
        let spaces = self
            .spaces
            .lock()
            .map(|g| g.iter().filter(|(_, c)| **c == community).map(|(id, _)| id.clone()).collect::<Vec<_>>());
        let mut spaces = spaces.unwrap_or_default();
        spaces.sort_unstable();
        spaces
    }

    fn waiting_info(&self, space: &str) -> Option<SpaceInfo> {
        self.waiting.lock().ok().and_then(|w| w.get(space).cloned())
    }

    fn notify(&self, notice: Notice) {
        if self.notices.send(notice).is_err() {
            tracing::debug!("a notice came after its receiver was dropped");
        }
    }

    fn source(&self, space: &str) -> String {
        source(self.owner, &self.connection, space)
    }

    fn command_source(&self) -> String {
        match self.owner {
            Owner::Bot => format!("command:{}", self.connection),
            Owner::Community(c) => format!("command:{}.{}", c.0, self.connection),
        }
    }

    /// The connection's name in `GET /healthz`.
    fn health_name(&self) -> String {
        health_name(self.owner, &self.connection)
    }

    fn noun(&self) -> &'static str {
        self.spec.space
    }
}

/// Where a running connection's inputs, notices and health go.
#[derive(Clone, Debug)]
pub struct Links {
    /// The serving loop.
    pub inputs: mpsc::Sender<Input>,
    /// Whoever runs Polity (`polity run` prints them).
    pub notices: mpsc::UnboundedSender<Notice>,
    /// `GET /healthz`.
    pub health: Health,
}

/// The inbox source of the events of `space` that came through `connection`: the connection
/// (and its community, for a community's own) and the space, so two spaces or connections
/// whose platforms reuse ids never shadow each other.
pub fn source(owner: Owner, connection: &str, space: &str) -> String {
    match owner {
        Owner::Bot => format!("{connection}:{space}"),
        Owner::Community(c) => format!("{}.{connection}:{space}", c.0),
    }
}

/// A connection's name in `GET /healthz`: Polity's bot by its platform, a community's own
/// connection as `COMMUNITY.NAME`.
pub fn health_name(owner: Owner, connection: &str) -> String {
    match owner {
        Owner::Bot => connection.to_string(),
        Owner::Community(c) => format!("{}.{connection}", c.0),
    }
}

/// Feeds a running connection's inputs (from `incoming`) to the serving loop (`inputs`) as
/// deliveries and jobs; marks the connection up in `health` once it is connected.
pub fn translate(
    spec: &'static PlatformSpec,
    connection: String,
    owner: Owner,
    scopes: Arc<dyn Scopes>,
    mut incoming: mpsc::Receiver<Incoming>,
    links: Links,
) -> Translator {
    let Links { inputs, notices, health } = links;
    let shared = Arc::new(Shared {
        spec,
        connection,
        owner,
        scopes,
        spaces: Mutex::new(HashMap::new()),
        waiting: Mutex::new(HashMap::new()),
        infos: Mutex::new(HashMap::new()),
        notices,
    });
    let translating = Arc::clone(&shared);
    let task = tokio::spawn(async move {
        let shared = translating;
        while let Some(next) = incoming.recv().await {
            if matches!(next, Incoming::Connected { .. }) {
                health.set(&shared.health_name(), true);
            }
            if inputs.send(job(Arc::clone(&shared), next)).await.is_err() {
                break;
            }
        }
    });
    Translator { task, shared }
}

/// The serving loop's input for one input from a connection: an event is a delivery
/// (batched with the events beside it), everything else a job.
fn job(shared: Arc<Shared>, incoming: Incoming) -> Input {
    let incoming = match incoming {
        Incoming::Event(e) => return Input::lazy(move || shared.delivery(e)),
        Incoming::Recorded(Recorded { events, recorded }) => {
            return Input::job(move |rt: &mut Runtime, now: DateTime<Utc>| {
                Box::pin(async move {
                    // Taken when the loop comes to them, after the jobs before them (which
                    // may have made the space's community).
                    let deliveries: Vec<Delivery> = events.into_iter().filter_map(|e| shared.delivery(e)).collect();
                    // A member's mistake is received all the same; an input the store could
                    // not write, or the store failing, is not (the platform delivers it again).
                    let stored = if deliveries.is_empty() { Ok(true) } else { deliver_all(rt, deliveries, now).await };
                    if recorded.send(matches!(stored, Ok(true))).is_err() {
                        tracing::debug!(connection = %shared.connection, "a delivery's sender stopped waiting for its answer");
                    }
                    stored.map(|_| ())
                })
            });
        }
        other => other,
    };
    Input::job(move |rt: &mut Runtime, now: DateTime<Utc>| {
        Box::pin(async move {
            match incoming {
                Incoming::Space(info) => join_space(rt, &shared, info, now).await,
                Incoming::Members { space, members } => match shared.community_of(&space) {
                    Some(c) => admit_all(rt, c, &members, now).await,
                    None => {
                        // A waiting space's members become members of whichever community it joins.
                        if let Ok(mut waiting) = shared.waiting.lock()
                            && let Some(info) = waiting.get_mut(&space)
                        {
                            info.members.extend(members);
                        }
                        Ok(())
                    }
                },
                Incoming::Invite(link) => {
                    if shared.owner == Owner::Bot {
                        rt.set_invite(&shared.connection, link.clone());
                        shared.notify(Notice::Invite { platform: shared.spec.name, link });
                    }
                    Ok(())
                }
                Incoming::Connected { resumed } => {
                    if resumed {
                        // Events may have been lost while the connection was down.
                        for c in shared.communities() {
                            rt.reconcile_open_votes(c, &shared.connection, now);
                        }
                    }
                    Ok(())
                }
                // Made deliveries above.
                Incoming::Event(_) | Incoming::Recorded(_) => Ok(()),
                Incoming::Command(call) => command(rt, &shared, call, now).await,
                Incoming::Secret(typed) => secret(rt, &shared, typed, now).await,
                Incoming::SecretRotated(rotated) => {
                    let rotated = Secret::new(rotated);
                    match shared.owner {
                        Owner::Community(c) => {
                            match rt.store().replace_connection_secret(c, &shared.connection, rotated.expose()).await {
                                Ok(true) => {
                                    tracing::info!(community = %c, connection = %shared.connection, "the platform rotated the connection's credential: the new one is stored")
                                }
                                Ok(false) => {
                                    tracing::warn!(community = %c, connection = %shared.connection, "a rotated credential for a connection with no stored secret was not kept")
                                }
                                Err(e) => {
                                    tracing::error!(community = %c, connection = %shared.connection, "storing a rotated credential failed: {e}")
                                }
                            }
                        }
                        // Polity's own bots read theirs from the configuration, which it does not write.
                        Owner::Bot => tracing::warn!(
                            connection = %shared.connection,
                            "the platform rotated the bot's credential: put the new one in the configuration before the next start"
                        ),
                    }
                    Ok(())
                }
                Incoming::Installed(installed) => {
                    let platform = shared.spec.name;
                    let space = installed.install.space.clone();
                    let secret = Secret::new(installed.install.secret);
                    let stored = if shared.owner == Owner::Bot {
                        rt.store().save_install(platform, &space, &secret).await.map_err(|e| e.to_string())
                    } else {
                        Err("only Polity's own app is installed this way".to_string())
                    };
                    match &stored {
                        Ok(()) => tracing::info!(platform, space, "Polity's app was installed"),
                        Err(e) => tracing::error!(platform, space, "storing an install failed: {e}"),
                    }
                    // The adapter waits for this answer; one that stopped waiting has undone it.
                    let _late = installed.answer.send(stored);
                    Ok(())
                }
                Incoming::Uninstalled { space } => {
                    if shared.owner == Owner::Bot {
                        tracing::info!(platform = shared.spec.name, space, "Polity's app was removed");
                        if let Err(e) = rt.store().remove_install(shared.spec.name, &space).await {
                            tracing::error!(platform = shared.spec.name, space, "forgetting an install failed: {e}");
                        }
                        // Its community acts there no more (an install later joins it again).
                        let former = shared.spaces.lock().ok().and_then(|mut g| g.remove(&space));
                        if let Some(former) = former {
                            register(rt, &shared, former);
                        }
                    }
                    Ok(())
                }
            }
        })
    })
}

/// Who governs a space, as the platform's connections record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Governance {
    /// The community whose connection naming the space was made for it or confirmed inside it.
    By(CommunityId),
    /// New to Polity, and named by communities' enabled connections: it waits until someone
    /// who controls it confirms one of them.
    Asked,
    /// New to Polity, and asked for by nobody.
    New,
}

fn flag<'a>(c: &'a Connection, key: &str) -> Option<&'a Value> {
    c.config.get(key)
}

/// An enabled connection naming `space` (by the platform's space setting).
fn names(spec: &PlatformSpec, c: &Connection, space: &str) -> bool {
    let Some(setting) = spec.space_setting() else { return false };
    flag(c, setting.name).and_then(Value::as_str) == Some(space)
        && flag(c, "enabled").and_then(Value::as_bool) != Some(false)
}

/// Whether a connection naming a space governs it: made for it, or confirmed inside it.
fn governs(c: &Connection) -> bool {
    flag(c, MADE_FOR_SPACE).and_then(Value::as_bool) == Some(true)
        || flag(c, MADE_FOR_GUILD).and_then(Value::as_bool) == Some(true)
        || flag(c, CONFIRMED_BY).is_some_and(Value::is_string)
}

/// Who governs `space`. A connection only asked for (however it came to be enabled) never
/// governs a space: only one made for it by Polity's bot, or one confirmed inside it.
async fn governance(rt: &Runtime, shared: &Shared, space: &str) -> Result<Governance> {
    if let Owner::Community(c) = shared.owner {
        return Ok(Governance::By(c));
    }
    let rows = rt.store().connections_to(shared.spec.name).await?;
    let mut naming = rows.iter().filter(|(_, c)| names(shared.spec, c, space)).peekable();
    if naming.peek().is_none() {
        return Ok(Governance::New);
    }
    // Oldest first: the first community to govern the space keeps it.
    Ok(naming.find(|(_, c)| governs(c)).map_or(Governance::Asked, |(id, _)| Governance::By(*id)))
}

/// A space the connection serves: governed by its community (its platform registered, its
/// members admitted, its open votes read back), or made a community of its own, or, when a
/// community asked for it, waiting for someone who controls it to confirm.
async fn join_space(rt: &mut Runtime, shared: &Shared, info: SpaceInfo, now: DateTime<Utc>) -> Result<()> {
    if info.space.is_empty() {
        // Not the store's failure: logged, and the loop goes on.
        tracing::warn!("{} named a space with an empty id: it is not governed", shared.spec.title);
        return Ok(());
    }
    if let Ok(mut infos) = shared.infos.lock() {
        infos.insert(info.space.clone(), info.clone());
    }
    let governance = governance(rt, shared, &info.space).await?;
    if let Some(former) = shared.spaces.lock().ok().and_then(|g| g.get(&info.space).copied())
        && governance != Governance::By(former)
    {
        // The community let the space go (it removed its connection): it acts there no more.
        if let Ok(mut spaces) = shared.spaces.lock() {
            spaces.remove(&info.space);
        }
        register(rt, shared, former);
    }
    match governance {
        Governance::By(community) => govern(rt, shared, community, info, now).await,
        Governance::New => {
            let community = new_community(rt, shared, &info, now).await?;
            govern(rt, shared, community, info, now).await
        }
        Governance::Asked => {
            tracing::info!(space = %info.space, "a community asked for the new {} {} {}: it waits for its owner or an admin to confirm", shared.spec.title, shared.noun(), info.name);
            shared.notify(Notice::Waiting {
                platform: shared.spec.name,
                space: info.space.clone(),
                name: info.name.clone(),
            });
            if let Ok(mut waiting) = shared.waiting.lock() {
                waiting.insert(info.space.clone(), info);
            }
            Ok(())
        }
    }
}

/// `community` governs the space from now on: its platform acts in the space (and in its
/// other spaces), the space's members become members, its open votes are read back.
async fn govern(
    rt: &mut Runtime,
    shared: &Shared,
    community: CommunityId,
    info: SpaceInfo,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Ok(mut waiting) = shared.waiting.lock() {
        waiting.remove(&info.space);
    }
    if let Ok(mut spaces) = shared.spaces.lock() {
        spaces.insert(info.space.clone(), community);
    }
    register(rt, shared, community);
    admit_all(rt, community, &info.members, now).await?;
    rt.reconcile_open_votes(community, &shared.connection, now);
    let community_name = rt.engine(community).map(|e| e.community.name.clone()).unwrap_or_default();
    shared.notify(Notice::Governing {
        platform: shared.spec.name,
        space: info.space,
        name: info.name,
        community: community_name,
    });
    Ok(())
}

/// The community's platform, acting in the spaces it governs and nowhere else.
fn register(rt: &mut Runtime, shared: &Shared, community: CommunityId) {
    let platform = shared.scopes.platform(&shared.spaces_of(community));
    rt.add_community_platform(community, shared.spec.name, platform);
}

/// A new community for a space: named after it (with its id when the name is taken), its
/// owner the first admin, and its connection recorded.
async fn new_community(rt: &mut Runtime, shared: &Shared, info: &SpaceInfo, now: DateTime<Utc>) -> Result<CommunityId> {
    // Named after the space; when that is taken (or empty), with its id; when that is taken
    // too (a space can be named to collide), with a number.
    let base = info.name.trim();
    let mut name = base.to_string();
    let mut n = 1;
    while name.is_empty() || rt.store().community_id(&name).await?.is_some() {
        name = match n {
            1 => format!("{base} ({})", info.space),
            _ => format!("{base} ({}) {n}", info.space),
        };
        n += 1;
    }
    let Some(setting) = shared.spec.space_setting() else {
        return Err(anyhow!("{} declares no setting that names a {}", shared.spec.title, shared.noun()));
    };
    let (owner, owner_name) = &info.owner;
    let community = rt.ensure_community(&name, owner_name, owner.clone()).await?;
    let config = serde_json::json!({ setting.name: info.space, "enabled": true, MADE_FOR_SPACE: true });
    rt.store().put_connection(community, &shared.connection, shared.spec.name, &config, None).await?;
    rt.save_community(community, now).await?;
    tracing::info!(community = %community, "community {name} created for the {} {} {}", shared.spec.title, shared.noun(), info.space);
    Ok(community)
}

/// Makes every listed account a member (a space's members vote from the start).
async fn admit_all(
    rt: &mut Runtime,
    community: CommunityId,
    members: &[(AccountRef, String)],
    now: DateTime<Utc>,
) -> Result<()> {
    let mut changed = false;
    for (account, name) in members {
        changed |= rt.admit(community, account, name);
    }
    if changed {
        rt.save_community(community, now).await?;
    }
    Ok(())
}

fn not_yet(shared: &Shared) -> String {
    format!("This {} is not governed by Polity yet; try again in a moment.", shared.noun())
}

async fn command(rt: &mut Runtime, shared: &Shared, call: CommandCall, now: DateTime<Utc>) -> Result<()> {
    if call.parsed.spec.handler == Handler::IntegrationConfirm {
        let reply = confirm(rt, shared, &call, now).await?;
        call.answer(reply);
        return Ok(());
    }
    let Some(community) = shared.community_of(&call.space) else {
        let noun = shared.noun();
        let text = if shared.waiting_info(&call.space).is_some() {
            format!(
                "This {noun} is not governed yet: a community asked for it. Its owner or an admin makes it join that community with `/integration confirm CODE` (the code that community's `/integration add` showed), or makes it a community of its own with `/integration confirm` and no code."
            )
        } else {
            not_yet(shared)
        };
        call.answer(Reply::private(text));
        return Ok(());
    };
    if rt.admit(community, &call.invocation.invoker, &call.name) {
        rt.save_community(community, now).await?;
    }
    if call.parsed.spec.handler == Handler::IntegrationTest {
        // A real call to a platform: made off the serving loop, so nothing else waits for it.
        let name = call.parsed.text("name").to_string();
        match crate::connections::prepare_test(rt, community, &name).await {
            Ok(Ok(test)) => {
                tokio::spawn(async move { call.answer(Reply::private(test.run().await)) });
            }
            Ok(Err(why)) => call.answer(Reply::private(why)),
            Err(e) => {
                tracing::error!(community = %community, connection = %name, "preparing a connection test failed: {e:#}");
                call.answer(Reply::private(SORRY));
            }
        }
        return Ok(());
    }
    let inv = &call.invocation;
    let source = shared.command_source();
    let mut ports = CommunityPorts::new(rt, community, &source, &inv.id, now);
    let reply = match polity_commands::run(&mut ports, inv, &call.parsed).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(command = %call.parsed.spec.name(), error = %e, "command failed");
            Reply::private(SORRY)
        }
    };
    call.answer(reply);
    Ok(())
}

/// `/integration confirm [CODE]` in a space: someone who controls a waiting space says which
/// community governs it, the one whose code it is, or (no code) one of its own. A governed
/// space stays where it is.
async fn confirm(rt: &mut Runtime, shared: &Shared, call: &CommandCall, now: DateTime<Utc>) -> Result<Reply> {
    let noun = shared.noun();
    if let Some(c) = shared.community_of(&call.space) {
        let name = rt.engine(c).map(|e| e.community.name.clone()).unwrap_or_default();
        return Ok(Reply::private(format!(
            "This {noun} is governed by the community \"{name}\". It leaves \"{name}\" only if \"{name}\" decides so, by removing its connection to this {noun} (`/integration remove`)."
        )));
    }
    let Some(info) = shared.waiting_info(&call.space) else {
        return Ok(Reply::private(not_yet(shared)));
    };
    if !call.manages_space {
        return Ok(Reply::private(format!("Only {} can say which community governs it.", shared.spec.controllers)));
    }
    let code = call.parsed.get("code").map(str::trim).filter(|c| !c.is_empty());
    let community = match code {
        Some(code) => {
            let Some((community, connection)) = asked_with(rt, shared, &call.space, code).await? else {
                return Ok(Reply::private(format!(
                    "That code is not for this {noun}: the community that asked for it has the code, in the reply to its `/integration add`."
                )));
            };
            confirmed(rt, community, connection, &call.invocation.invoker).await?;
            community
        }
        None => new_community(rt, shared, &info, now).await?,
    };
    let initiator = call.invocation.invoker.clone();
    let joined =
        ActionType::new(&format!("{}.{}_join", shared.spec.name, shared.spec.space)).map_err(|e| anyhow!(e))?;
    let audit = [Audit::ExecutedByPermission { action: joined, initiator }];
    rt.store().record_step(StepRecord { audit: &audit, ..StepRecord::new(community, now) }).await?;
    tracing::info!(community = %community, space = %call.space, by = %call.invocation.invoker, "a {} {noun} joined a community, confirmed inside it", shared.spec.title);
    govern(rt, shared, community, info, now).await?;
    let name = rt.engine(community).map(|e| e.community.name.clone()).unwrap_or_default();
    Ok(Reply::private(match code {
        Some(_) => format!("This {noun} now belongs to the community \"{name}\": its members are members there."),
        None => format!("This {noun} is now a community of its own, \"{name}\", with its owner as the first admin."),
    }))
}

/// The community, and its connection, that asked for `space` with `code`.
async fn asked_with(
    rt: &Runtime,
    shared: &Shared,
    space: &str,
    code: &str,
) -> Result<Option<(CommunityId, Connection)>> {
    let rows = rt.store().connections_to(shared.spec.name).await?;
    Ok(rows.into_iter().find(|(_, c)| {
        names(shared.spec, c, space) && !governs(c) && flag(c, JOIN_CODE).and_then(Value::as_str) == Some(code)
    }))
}

/// Records that the connection's space was confirmed inside it by `by`: its code is used up
/// and the space is the connection's community's, across restarts.
async fn confirmed(rt: &Runtime, community: CommunityId, connection: Connection, by: &AccountRef) -> Result<()> {
    let mut config = connection.config;
    if let Some(map) = config.as_object_mut() {
        map.remove(JOIN_CODE);
        map.insert(CONFIRMED_BY.into(), Value::String(by.to_string()));
    }
    let secret =
        if connection.has_secret { rt.store().connection_secret(community, &connection.name).await? } else { None };
    let secret = secret.as_ref().map(crate::store::Secret::expose);
    rt.store().put_connection(community, &connection.name, &connection.platform, &config, secret).await?;
    Ok(())
}

async fn secret(rt: &mut Runtime, shared: &Shared, typed: SecretTyped, now: DateTime<Utc>) -> Result<()> {
    let Some(community) = shared.community_of(&typed.space) else {
        typed.answer(Reply::private(SORRY));
        return Ok(());
    };
    let inv = typed.invocation.clone();
    let source = shared.command_source();
    let mut ports = CommunityPorts::new(rt, community, &source, &inv.id, now);
    let reply = match polity_commands::integration::add_with_secret(
        &mut ports,
        &inv,
        typed.prompt.clone(),
        &typed.secret,
    )
    .await
    {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "storing a connection failed");
            Reply::private(SORRY)
        }
    };
    typed.answer(reply);
    Ok(())
}
