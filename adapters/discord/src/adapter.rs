//! Discord on the platform host: its declaration, its configuration (`[platforms.discord]`),
//! its connections (Polity's own bot, or a community's own bot token), and the test call
//! behind `/integration test`.

use crate::gateway::{Gateway, GatewayConfig, start};
use crate::invite::PERMISSIONS;
use crate::platform::DiscordPlatform;
use crate::rest::{DISCORD_URL, UNKNOWN_MEMBER};
use polity_governance::platform::{Platform, PlatformError, PlatformSpec, Setting};
use polity_port::{Adapter, AdapterError, BoxFuture, Connection, Scopes, Start, TestFailure};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use serenity::http::{LightMethod, Route};
use serenity::model::id::{GuildId, UserId};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// What Discord is to Polity.
pub static SPEC: PlatformSpec = PlatformSpec {
    cred: false,
    name: "discord",
    title: "Discord",
    space: "server",
    controllers: "the server's owner or a member with the Administrator or Manage Server permission",
    secret: Some("the bot token"),
    settings: &[
        Setting {
            name: "guild",
            help: "in Discord, Developer Mode → right-click the server → Copy Server ID",
            names_space: true,
        },
        Setting {
            name: "base_url",
            help: "where Discord's API is, for a proxy (Discord's own by default)",
            names_space: false,
        },
    ],
    env: &["token", "base_url"],
};

/// `[platforms.discord]`: Polity's own Discord bot.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordConfig {
    /// The bot's token (or `POLITY_DISCORD_TOKEN`).
    pub token: String,
    /// Discord's API (the default); a proxy or a test server otherwise.
    #[serde(default = "discord_url")]
    pub base_url: String,
    /// How long an interaction waits for Polity's answer before it is acknowledged and
    /// answered later, in milliseconds (Discord allows 3,000 for the first answer).
    #[serde(default = "answer_within_ms")]
    pub answer_within_ms: u64,
    /// Register Polity's application commands when a session starts.
    #[serde(default = "yes")]
    pub register_commands: bool,
}

fn discord_url() -> String {
    DISCORD_URL.to_string()
}

fn answer_within_ms() -> u64 {
    2000
}

fn yes() -> bool {
    true
}

impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("token", &"[redacted]")
            .field("base_url", &self.base_url)
            .field("answer_within_ms", &self.answer_within_ms)
            .field("register_commands", &self.register_commands)
            .finish()
    }
}

impl DiscordConfig {
    /// Reads `[platforms.discord]`.
    ///
    /// # Errors
    /// [`AdapterError::Config`] naming the key at fault.
    pub fn read(config: &Value) -> Result<Self, AdapterError> {
        let read: Self = serde_json::from_value(config.clone())
            .map_err(|e| AdapterError::Config(format!("[platforms.discord]: {e}")))?;
        if read.token.trim().is_empty() {
            return Err(AdapterError::Config("[platforms.discord]: the token is empty".into()));
        }
        polity_port::check_secure_url("[platforms.discord]: base_url", &read.base_url)?;
        if read.answer_within_ms >= 3000 {
            return Err(AdapterError::Config(
                "[platforms.discord]: answer_within_ms must be under 3000 (Discord's deadline for the first answer)"
                    .into(),
            ));
        }
        Ok(read)
    }

    /// The gateway's configuration for a connection named `connection`.
    pub fn gateway(&self, connection: impl Into<String>) -> GatewayConfig {
        let mut gateway = GatewayConfig::new(connection, self.token.clone(), self.base_url.clone());
        gateway.answer_within = Duration::from_millis(self.answer_within_ms);
        gateway.register_commands = self.register_commands;
        gateway
    }
}

/// Discord, for the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscordAdapter;

impl Adapter for DiscordAdapter {
    fn log_lines(&self) -> polity_port::LogLines {
        crate::log::LOG_LINES
    }

    fn actions(&self) -> Vec<polity_governance::platform::ActionInfo> {
        crate::platform::actions()
    }

    fn spec(&self) -> &'static PlatformSpec {
        &SPEC
    }

    fn check(&self, config: &Value) -> Result<(), AdapterError> {
        DiscordConfig::read(config).map(|_| ())
    }

    fn start(&self, config: Value, how: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        Box::pin(async move {
            let config = DiscordConfig::read(&config)?;
            let gateway = start(config.gateway(how.connection), how.events)
                .await
                .map_err(|e| AdapterError::Start(format!("starting the Discord gateway: {e}")))?;
            Ok(Box::new(DiscordConnection { gateway }) as Box<dyn Connection>)
        })
    }

    fn connection_config(
        &self,
        bot: Option<&Value>,
        settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        let Some(token) = secret.map(str::trim).filter(|t| !t.is_empty()) else {
            return Err(AdapterError::Config("a Discord connection of a community's own needs its bot token".into()));
        };
        let base_url = settings
            .get("base_url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| bot.and_then(|b| b.get("base_url")).and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(discord_url);
        let config = json!({ "token": token, "base_url": base_url });
        DiscordConfig::read(&config)?;
        Ok(config)
    }

    fn test(&self, config: Value, settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async move {
            let config = DiscordConfig::read(&config).map_err(|e| TestFailure::Other(e.to_string()))?;
            let guild = match settings.get("guild").and_then(Value::as_str) {
                Some(g) => Some(
                    g.parse::<u64>()
                        .ok()
                        .and_then(std::num::NonZeroU64::new)
                        .map(GuildId::from)
                        .ok_or_else(|| TestFailure::Other(format!("the server id `{g}` is not a Discord id")))?,
                ),
                None => None,
            };
            test_call(&config, guild).await
        })
    }
}

/// `GET /users/@me` (the token works), then, for a server, `GET /guilds/{g}/members/{bot}`
/// (the bot is in it and may see it) and `GET /guilds/{g}/roles`: every permission Polity
/// uses is granted to the bot's roles, and which roles sit above its highest one (it cannot
/// grant or revoke those).
async fn test_call(config: &DiscordConfig, guild: Option<GuildId>) -> Result<String, TestFailure> {
    let platform = DiscordPlatform::new("discord", &config.token, &config.base_url)
        .map_err(|e| TestFailure::Other(e.to_string()))?;
    let rest = platform.rest();
    let me = rest.send(LightMethod::Get, Route::UserMe, None).await.map_err(|f| failure(f.error, None))?;
    let name = me.get("username").and_then(Value::as_str).unwrap_or("the bot").to_string();
    let Some(guild) = guild else {
        return Ok(format!("Discord accepts the token: it is the bot {name}."));
    };
    let Some(id) = me.get("id").and_then(Value::as_str).and_then(|i| i.parse::<u64>().ok()) else {
        return Err(TestFailure::Other("Discord did not say who the bot is".into()));
    };
    let user_id = UserId::new(id.max(1));
    let member = match rest.send(LightMethod::Get, Route::GuildMember { guild_id: guild, user_id }, None).await {
        Ok(member) => member,
        Err(f) if f.code == Some(UNKNOWN_MEMBER) => {
            return Err(TestFailure::MissingPermission(format!(
                "the bot {name} is not in the server {guild}: add it with the invite link"
            )));
        }
        Err(f) => return Err(failure(f.error, Some(guild))),
    };
    let roles = rest
        .send(LightMethod::Get, Route::GuildRoles { guild_id: guild }, None)
        .await
        .map_err(|f| failure(f.error, Some(guild)))?;
    let standing = Standing::of(&member, &roles, guild);
    let reached = format!("Discord accepts the token (the bot {name}), and the bot is in the server {guild}.");
    let missing: Vec<String> = PERMISSIONS
        .iter()
        .filter(|(_, bit, _)| standing.permissions & bit != *bit)
        .map(|(perm, _, why)| format!("{perm} (to {why})"))
        .collect();
    if !missing.is_empty() {
        return Err(TestFailure::MissingPermission(format!(
            "{reached} But its roles lack {}: grant them to Polity's role in Server Settings → Roles.",
            missing.join(", ")
        )));
    }
    if standing.above.is_empty() {
        return Ok(format!("{reached} It has every permission Polity uses, and its role is above every other."));
    }
    Ok(format!(
        "{reached} It has every permission Polity uses. Its highest role is below {}: it cannot grant or revoke those; move Polity's role above them in Server Settings → Roles if policies govern them.",
        standing.above.iter().map(|r| format!("*{r}*")).collect::<Vec<_>>().join(", ")
    ))
}

/// The bot's place in a server, from its member object and the server's roles: its
/// permissions (everyone's and its roles'; all with Administrator) and the roles above its
/// highest one, by name, highest first.
struct Standing {
    permissions: u64,
    above: Vec<String>,
}

impl Standing {
    fn of(member: &Value, roles: &Value, guild: GuildId) -> Self {
        let held: Vec<&str> =
            member.get("roles").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let roles: Vec<(&str, &str, u64, i64)> = roles
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let id = r.get("id")?.as_str()?;
                let name = r.get("name").and_then(Value::as_str).unwrap_or(id);
                let bits = r.get("permissions").and_then(Value::as_str).and_then(|p| p.parse().ok()).unwrap_or(0);
                let position = r.get("position").and_then(Value::as_i64).unwrap_or(0);
                Some((id, name, bits, position))
            })
            .collect();
        let everyone = guild.to_string();
        let mine = roles.iter().filter(|(id, ..)| *id == everyone || held.contains(id));
        let bits = mine.clone().fold(0, |all, (_, _, b, _)| all | b);
        let administrator = serenity::model::permissions::Permissions::ADMINISTRATOR.bits();
        let permissions = if bits & administrator != 0 { u64::MAX } else { bits };
        let top = mine.map(|(_, _, _, p)| *p).max().unwrap_or(0);
        let mut above: Vec<&(&str, &str, u64, i64)> =
            roles.iter().filter(|(id, _, _, p)| *id != everyone && !held.contains(id) && *p >= top).collect();
        above.sort_by_key(|(_, _, _, p)| std::cmp::Reverse(*p));
        Self { permissions, above: above.into_iter().map(|(_, name, ..)| (*name).to_string()).collect() }
    }
}

/// A failed test call, as the reply says it.
fn failure(error: PlatformError, guild: Option<GuildId>) -> TestFailure {
    let text = error.to_string();
    match error {
        PlatformError::RateLimited { .. } | PlatformError::Transient(_) => TestFailure::Unreachable(text),
        PlatformError::Permanent(_) if text.contains("(HTTP 401") => TestFailure::BadCredentials(text),
        PlatformError::Permanent(_) if text.contains("(HTTP 403") || text.contains("(HTTP 404") => {
            TestFailure::MissingPermission(match guild {
                Some(g) => format!("the bot cannot see the server {g}: {text}"),
                None => text,
            })
        }
        PlatformError::Permanent(_) => TestFailure::Other(text),
    }
}

/// A running gateway connection.
struct DiscordConnection {
    gateway: Gateway,
}

/// The gateway's platform and cache, scoped to one community's servers at a time.
struct GatewayScopes {
    platform: DiscordPlatform,
    cache: Arc<serenity::cache::Cache>,
}

impl Scopes for GatewayScopes {
    fn platform(&self, spaces: &[String]) -> Arc<dyn Platform> {
        let guilds: Vec<u64> = spaces.iter().filter_map(|s| s.parse().ok()).collect();
        Arc::new(self.platform.for_guilds(&guilds, Arc::clone(&self.cache)))
    }
}

impl Connection for DiscordConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(GatewayScopes { platform: self.gateway.platform(), cache: self.gateway.cache() })
    }

    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.gateway.stopped().await.map_err(|e| crate::gateway::explain(&e)) })
    }

    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            if let Err(e) = self.gateway.shutdown().await {
                tracing::warn!("the Discord gateway stopped with an error: {e}");
            }
        })
    }
}
