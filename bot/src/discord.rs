//! Discord in `polity run`: the gateway's inputs become jobs of the serving loop, so they
//! take the one path every input takes, in the order Discord sent them.
//!
//! - A guild the bot is in is governed by a community: the one whose enabled `discord`
//!   connection names the guild (`/integration add discord NAME guild=ID`), else a community
//!   of its own, created with the guild's owner as its first admin. The guild's members
//!   become members, and the community gets a connection that acts only in that guild.
//! - After a (re)connect the open vote messages of the guild's community are read back and
//!   reconciled, so reactions added or removed while the bot was away count.
//! - Slash commands, vote buttons and the secret form run the shared handlers against the
//!   community's ports; their replies go back to the adapter, which answers Discord.

use crate::ports::CommunityPorts;
use crate::runtime::Runtime;
use crate::serve::{Delivery, Input, deliver};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, Utc};
use polity_commands::Reply;
use polity_discord::{
    Cache, CommandCall, DiscordPlatform, Gateway, GatewayConfig, GuildInfo, Incoming, SecretTyped, invite_url,
};
use polity_governance::ids::{AccountRef, CommunityId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The connection name of Polity's Discord bot: the platform of every Discord ref.
pub const CONNECTION: &str = "discord";

/// The source of commands from Discord in the inbox.
const COMMAND_SOURCE: &str = "command:discord";

const SORRY: &str = "Sorry, that failed on our side; it is logged.";

/// What the bot tells whoever runs it (`polity run` prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The link that adds the bot to a server, once Discord has said who the bot is.
    Invite(String),
    /// A server is governed by a community.
    Governing { guild: String, name: String, community: String },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invite(link) => write!(f, "Polity is on Discord. Add it to a server with:\n{link}"),
            Self::Governing { guild, name, community } => {
                write!(f, "Governing the Discord server \"{name}\" ({guild}) as the community \"{community}\".")
            }
        }
    }
}

/// The running Discord bot.
pub struct Discord {
    gateway: Gateway,
    translator: JoinHandle<()>,
}

impl std::fmt::Debug for Discord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discord").finish_non_exhaustive()
    }
}

impl Discord {
    /// Resolves when the gateway stops by itself, with why: a failure it cannot get past
    /// (Discord refused the token).
    pub async fn stopped(&mut self) -> Result<()> {
        self.gateway.stopped().await.map_err(|e| anyhow!("the Discord connection ended: {e}"))
    }

    /// Closes the gateway.
    pub async fn shutdown(self) {
        self.translator.abort();
        if let Err(e) = self.gateway.shutdown().await {
            tracing::warn!("the Discord gateway stopped with an error: {e}");
        }
    }
}

/// What the jobs of one bot share: the guilds' communities, and what builds each guild's
/// connection.
struct Shared {
    platform: DiscordPlatform,
    cache: Arc<Cache>,
    guilds: Mutex<HashMap<String, CommunityId>>,
    notices: mpsc::UnboundedSender<Notice>,
}

impl Shared {
    fn community_of(&self, guild: &str) -> Option<CommunityId> {
        self.guilds.lock().ok().and_then(|g| g.get(guild).copied())
    }

    fn communities(&self) -> Vec<CommunityId> {
        self.guilds.lock().map(|g| g.values().copied().collect()).unwrap_or_default()
    }
}

/// Connects the bot and feeds what it hears to `inputs` as jobs of the serving loop.
///
/// # Errors
/// When the HTTP client or the gateway client cannot be built.
pub async fn start(
    config: GatewayConfig,
    inputs: mpsc::Sender<Input>,
    notices: mpsc::UnboundedSender<Notice>,
) -> Result<Discord> {
    let (tx, mut rx) = mpsc::channel(1024);
    let gateway = polity_discord::start(config, tx).await.context("starting the Discord gateway")?;
    let shared = Arc::new(Shared {
        platform: gateway.platform(),
        cache: gateway.cache(),
        guilds: Mutex::new(HashMap::new()),
        notices,
    });
    let translator = tokio::spawn(async move {
        while let Some(incoming) = rx.recv().await {
            if inputs.send(job(Arc::clone(&shared), incoming)).await.is_err() {
                break;
            }
        }
    });
    Ok(Discord { gateway, translator })
}

/// The serving loop's job for one input from Discord.
fn job(shared: Arc<Shared>, incoming: Incoming) -> Input {
    Input::job(move |rt: &mut Runtime, now: DateTime<Utc>| {
        Box::pin(async move {
            match incoming {
                Incoming::Guild(info) => join_guild(rt, &shared, info, now).await,
                Incoming::Members { guild, members } => match shared.community_of(&guild) {
                    Some(c) => admit_all(rt, c, &members, now).await,
                    None => Ok(()),
                },
                Incoming::Connected { resumed, application_id } => {
                    if let Some(id) = application_id {
                        let link = invite_url(id);
                        rt.set_invite(CONNECTION, link.clone());
                        let _ = shared.notices.send(Notice::Invite(link));
                    }
                    if resumed {
                        // Events may have been lost while the connection was down.
                        for c in shared.communities() {
                            rt.reconcile_open_votes(c, CONNECTION, now);
                        }
                    }
                    Ok(())
                }
                Incoming::Event(e) => {
                    let Some(community) = e.guild.as_deref().and_then(|g| shared.community_of(g)) else {
                        tracing::debug!(key = %e.dedup_key, "an event from a guild with no community is dropped");
                        return Ok(());
                    };
                    let d =
                        Delivery { community, source: e.source, dedup_key: e.dedup_key, input: e.input, from: e.from };
                    deliver(rt, d, now).await
                }
                Incoming::Command(call) => command(rt, &shared, call, now).await,
                Incoming::Secret(typed) => secret(rt, &shared, typed, now).await,
            }
        })
    })
}

/// The community that governs a guild, its connection registered, its members admitted and
/// its open votes read back.
async fn join_guild(rt: &mut Runtime, shared: &Shared, info: GuildInfo, now: DateTime<Utc>) -> Result<()> {
    let Ok(guild_id) = info.guild.parse::<u64>() else {
        return Err(anyhow!("Discord sent a guild id that is not a number: {}", info.guild));
    };
    let community = match guild_community(rt, &info.guild).await? {
        Some(c) => c,
        None => new_community(rt, &info, now).await?,
    };
    rt.add_community_platform(community, Arc::new(shared.platform.for_guild(guild_id, Arc::clone(&shared.cache))));
    if let Ok(mut guilds) = shared.guilds.lock() {
        guilds.insert(info.guild.clone(), community);
    }
    admit_all(rt, community, &info.members, now).await?;
    rt.reconcile_open_votes(community, CONNECTION, now);
    let community_name = rt.engine(community).map(|e| e.community.name.clone()).unwrap_or_default();
    let _ = shared.notices.send(Notice::Governing { guild: info.guild, name: info.name, community: community_name });
    Ok(())
}

/// The community whose enabled `discord` connection names `guild`: one that asked for it
/// by name first, else the one made for it.
async fn guild_community(rt: &Runtime, guild: &str) -> Result<Option<CommunityId>> {
    let rows = rt.store().connections_to(CONNECTION).await?;
    let named = |c: &crate::store::Connection| {
        c.config.get("guild").and_then(|g| g.as_str()) == Some(guild)
            && c.config.get("enabled").and_then(serde_json::Value::as_bool) != Some(false)
    };
    let made = |c: &crate::store::Connection| c.config.get("made_for_guild").and_then(serde_json::Value::as_bool);
    let mut found: Vec<&(CommunityId, crate::store::Connection)> = rows.iter().filter(|(_, c)| named(c)).collect();
    found.sort_by_key(|(_, c)| made(c) == Some(true));
    Ok(found.first().map(|(id, _)| *id))
}

/// A new community for a guild: named after it (with its id when the name is taken), its
/// owner the first admin, and its connection recorded.
async fn new_community(rt: &mut Runtime, info: &GuildInfo, now: DateTime<Utc>) -> Result<CommunityId> {
    let mut name = info.name.trim().to_string();
    if name.is_empty() || rt.store().community_id(&name).await?.is_some() {
        name = format!("{} ({})", info.name.trim(), info.guild);
    }
    if rt.store().community_id(&name).await?.is_some() {
        return Err(anyhow!(
            "a community named {name} exists already, so the Discord server {} cannot get one",
            info.guild
        ));
    }
    let (owner, owner_name) = &info.owner;
    let community = rt.ensure_community(&name, owner_name, owner.clone()).await?;
    let config = serde_json::json!({ "guild": info.guild, "enabled": true, "made_for_guild": true });
    rt.store().put_connection(community, CONNECTION, CONNECTION, &config, None).await?;
    rt.save_community(community, now).await?;
    tracing::info!(community = %community, "community {name} created for the Discord server {}", info.guild);
    Ok(community)
}

/// Makes every listed account a member (a guild's members vote from the start).
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

async fn command(rt: &mut Runtime, shared: &Shared, call: CommandCall, now: DateTime<Utc>) -> Result<()> {
    let Some(community) = shared.community_of(&call.guild) else {
        let _ = call.answer.send(Reply::private("This server is not governed by Polity yet; try again in a moment."));
        return Ok(());
    };
    if rt.admit(community, &call.invocation.invoker, &call.name) {
        rt.save_community(community, now).await?;
    }
    let inv = call.invocation;
    let mut ports = CommunityPorts::new(rt, community, COMMAND_SOURCE, &inv.id, now);
    let reply = match polity_commands::run(&mut ports, &inv, &call.parsed).await {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(command = %call.parsed.spec.name(), error = %e, "command failed");
            Reply::private(SORRY)
        }
    };
    let _ = call.answer.send(reply);
    Ok(())
}

async fn secret(rt: &mut Runtime, shared: &Shared, typed: SecretTyped, now: DateTime<Utc>) -> Result<()> {
    let Some(community) = shared.community_of(&typed.guild) else {
        let _ = typed.answer.send(Reply::private(SORRY));
        return Ok(());
    };
    let inv = typed.invocation;
    let mut ports = CommunityPorts::new(rt, community, COMMAND_SOURCE, &inv.id, now);
    let reply = match polity_commands::integration::add_with_secret(&mut ports, &inv, typed.prompt, &typed.secret).await
    {
        Ok(reply) => reply,
        Err(e) => {
            tracing::error!(error = %e, "storing a connection failed");
            Reply::private(SORRY)
        }
    };
    let _ = typed.answer.send(reply);
    Ok(())
}
