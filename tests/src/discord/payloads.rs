//! The JSON objects the fake sends, in the shapes of Discord's API v10 documentation (the
//! fields serenity 0.12.5 needs to deserialize them included): users, members, roles,
//! channels, guilds, messages, emojis, and the `d` of each gateway dispatch.

use super::state::{APPLICATION_ID, BOT_ID, Channel, Guild, Msg, Role, State, User, custom_emoji};
use serde_json::{Value, json};

/// When every member set up before the test joined.
pub const JOINED_AT: &str = "2026-11-01T12:00:00.000000+00:00";
/// The heartbeat interval HELLO announces, in milliseconds (Discord's usual value).
pub const HEARTBEAT_INTERVAL: u64 = 41_250;
/// The permissions an interaction says the bot has where it computes none (outside a guild
/// channel): `ADMINISTRATOR`. In a guild channel they are the bot's there.
pub const APP_PERMISSIONS: &str = "8";
/// The largest upload an interaction's answer may carry (Discord's default, 10 MiB).
pub const ATTACHMENT_SIZE_LIMIT: u64 = 10_485_760;

/// A user object.
pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id, "username": u.username, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": u.bot, "public_flags": 0
    })
}

/// A role object, at its position (`@everyone` is 0); the bot's managed role carries its
/// `tags` (`bot_id`).
pub fn role_json(r: &Role) -> Value {
    let mut v = json!({
        "id": r.id, "name": r.name, "color": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null },
        "hoist": false, "icon": null, "unicode_emoji": null,
        "position": r.position, "permissions": r.permissions.to_string(), "managed": r.managed,
        "mentionable": false, "flags": 0
    });
    if r.managed {
        v["tags"] = json!({ "bot_id": BOT_ID });
    }
    v
}

/// A channel's `permission_overwrites`: `id`, `type` (0 a role, 1 a member), and the bits
/// as strings.
pub fn overwrites_json(c: &Channel) -> Value {
    c.overwrites
        .iter()
        .map(|o| json!({ "id": o.id, "type": o.kind, "allow": o.allow.to_string(), "deny": o.deny.to_string() }))
        .collect()
}

/// The emoji object of a reaction from an emoji key: a custom emoji (`name:id`) or a unicode
/// one (`id` null).
pub fn emoji_json(key: &str) -> Value {
    match custom_emoji(key) {
        Some((name, id)) => json!({ "id": id, "name": name, "animated": false }),
        None => json!({ "id": null, "name": key }),
    }
}

/// A channel object: a guild text channel (with `guild_id`), or a DM channel.
pub fn channel_json(c: &Channel, recipient: Option<Value>) -> Value {
    let last = c.messages.last().map(|m| m.id.clone());
    if c.kind == 1 {
        return json!({
            "id": c.id, "type": 1, "last_message_id": last, "flags": 0,
            "recipients": recipient.into_iter().collect::<Vec<_>>()
        });
    }
    let mut v = guild_channel_json(c);
    v["last_message_id"] = json!(last);
    if let Some(g) = &c.guild {
        v["guild_id"] = json!(g);
    }
    v
}

/// A guild text channel as GUILD_CREATE lists it (no `guild_id`).
pub fn guild_channel_json(c: &Channel) -> Value {
    json!({
        "id": c.id, "type": 0, "name": c.name, "position": 0, "permission_overwrites": overwrites_json(c),
        "topic": null, "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0,
        "parent_id": null, "flags": 0
    })
}

impl State {
    /// The user object of `id`.
    pub(crate) fn user_json(&self, id: &str) -> Value {
        user_json(&self.user(id))
    }

    /// The bot's own user object, as READY and `GET /users/@me` give it.
    pub(crate) fn me_json(&self) -> Value {
        let mut me = self.user_json(BOT_ID);
        me["verified"] = json!(true);
        me["mfa_enabled"] = json!(false);
        me["flags"] = json!(0);
        me
    }

    /// A guild member object without `user` (as in MESSAGE_CREATE); a user who is not a
    /// member gets no roles.
    pub(crate) fn member_partial(&self, guild: &str, user: &str) -> Value {
        let m = self.guild(guild).and_then(|g| g.member(user));
        json!({
            "nick": m.and_then(|m| m.nick.clone()),
            "avatar": null,
            "banner": null,
            "roles": m.map(|m| m.roles.clone()).unwrap_or_default(),
            "joined_at": m.map_or(JOINED_AT.to_string(), |m| m.joined_at.clone()),
            "premium_since": null,
            "deaf": false,
            "mute": false,
            "flags": 0,
            "pending": false,
            "communication_disabled_until": null
        })
    }

    /// A guild member object with `user` (as in GUILD_CREATE, reactions, interactions).
    pub(crate) fn member_json(&self, guild: &str, user: &str) -> Value {
        let mut m = self.member_partial(guild, user);
        m["user"] = self.user_json(user);
        m
    }

    /// GUILD_CREATE's `d`: an available guild with its roles, members and channels.
    pub(crate) fn guild_create(&self, g: &Guild) -> Value {
        let roles: Vec<Value> = g.roles.iter().map(role_json).collect();
        let members: Vec<Value> = g.members.iter().map(|m| self.member_json(&g.id, &m.user)).collect();
        let channels: Vec<Value> =
            g.channels.iter().filter_map(|c| self.channels.get(c)).map(guild_channel_json).collect();
        let joined = g.member(BOT_ID).map_or(JOINED_AT.to_string(), |m| m.joined_at.clone());
        let emojis: Vec<Value> = g
            .emojis
            .iter()
            .map(|(id, name)| {
                json!({ "id": id, "name": name, "roles": [], "require_colons": true, "managed": false,
                        "animated": false, "available": true })
            })
            .collect();
        json!({
            "id": g.id,
            "name": g.name,
            "icon": null, "splash": null, "discovery_splash": null,
            "owner_id": g.owner,
            "afk_channel_id": null, "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "roles": roles,
            "emojis": emojis, "features": [], "mfa_level": 0, "application_id": null,
            "system_channel_id": null, "system_channel_flags": 0, "rules_channel_id": null,
            "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "public_updates_channel_id": null,
            "nsfw_level": 0, "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
            "stickers": [],
            "joined_at": joined, "large": false, "unavailable": false,
            "member_count": members.len(),
            "voice_states": [], "members": members, "channels": channels, "threads": [], "presences": [],
            "stage_instances": [], "guild_scheduled_events": []
        })
    }

    /// READY's `d` for session `session`: the bot, its guilds (unavailable until their
    /// GUILD_CREATE), and where to resume.
    pub(crate) fn ready(&self, session: &str) -> Value {
        json!({
            "v": 10,
            "user": self.me_json(),
            "guilds": self.guilds.iter().filter(|g| g.has_bot()).map(|g| json!({ "id": g.id, "unavailable": true })).collect::<Vec<_>>(),
            "session_id": session,
            "resume_gateway_url": self.gateway_url,
            "shard": [0, 1],
            "application": { "id": APPLICATION_ID, "flags": 0 }
        })
    }

    /// A message object as the REST API answers it.
    pub(crate) fn message_json(&self, m: &Msg) -> Value {
        let attachments: Vec<Value> = m
            .attachments
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let filename = url.rsplit('/').next().unwrap_or("file");
                json!({
                    "id": format!("{}{i}", m.id), "filename": filename, "size": 1024,
                    "url": url, "proxy_url": url, "content_type": content_type(filename)
                })
            })
            .collect();
        // One entry per emoji, normal and super reactions counted apart, in the order the
        // emoji first appeared.
        let mut emoji: Vec<&str> = Vec::new();
        for (e, _) in m.reactions.iter().chain(&m.bursts) {
            if !emoji.contains(&e.as_str()) {
                emoji.push(e);
            }
        }
        let held = |list: &[(String, Vec<String>)], e: &str| -> Vec<String> {
            list.iter().find(|(k, _)| k == e).map(|(_, u)| u.clone()).unwrap_or_default()
        };
        let reactions: Vec<Value> = emoji
            .iter()
            .map(|e| {
                let (normal, burst) = (held(&m.reactions, e), held(&m.bursts, e));
                json!({
                    "count": normal.len() + burst.len(),
                    "count_details": { "burst": burst.len(), "normal": normal.len() },
                    "me": normal.iter().any(|u| u == BOT_ID), "me_burst": burst.iter().any(|u| u == BOT_ID),
                    "emoji": emoji_json(e), "burst_colors": if burst.is_empty() { json!([]) } else { json!(["#ffcc4d"]) }
                })
            })
            .collect();
        let mut v = json!({
            "id": m.id,
            "channel_id": m.channel_id,
            "author": self.user_json(&m.author),
            "content": m.content,
            "timestamp": m.timestamp,
            "edited_timestamp": if m.edited { json!(m.timestamp) } else { Value::Null },
            "tts": false,
            "mention_everyone": false,
            "mentions": [],
            "mention_roles": [],
            "attachments": attachments,
            "embeds": [],
            "pinned": m.pinned,
            "type": 0,
            "flags": 0,
            "components": if m.components.is_array() { m.components.clone() } else { json!([]) }
        });
        if !reactions.is_empty() {
            v["reactions"] = json!(reactions);
        }
        if let Some(n) = &m.nonce {
            v["nonce"] = json!(n);
        }
        v
    }

    /// MESSAGE_CREATE's (and MESSAGE_UPDATE's) `d`: the message with `guild_id` and the
    /// author's partial member in a guild channel.
    pub(crate) fn message_event(&self, m: &Msg) -> Value {
        let mut v = self.message_json(m);
        if let Some(g) = self.guild_of(&m.channel_id) {
            v["member"] = self.member_partial(&g, &m.author);
            v["guild_id"] = json!(g);
        }
        v
    }

    /// MESSAGE_REACTION_ADD's `d`: with the reacting member (in a guild), `burst` and `type`
    /// (1 for a super reaction, with its colours).
    pub(crate) fn reaction_add(&self, m: &Msg, user: &str, emoji: &str, burst: bool) -> Value {
        let colors = if burst { json!(["#ffcc4d"]) } else { json!([]) };
        let mut v = json!({
            "user_id": user, "channel_id": m.channel_id, "message_id": m.id,
            "emoji": emoji_json(emoji), "message_author_id": m.author,
            "burst": burst, "burst_colors": colors, "type": u8::from(burst)
        });
        if let Some(g) = self.guild_of(&m.channel_id) {
            v["member"] = self.member_json(&g, user);
            v["guild_id"] = json!(g);
        }
        v
    }

    /// MESSAGE_REACTION_REMOVE's `d` (no member, as Discord sends it).
    pub(crate) fn reaction_remove(&self, channel: &str, message: &str, user: &str, emoji: &str, burst: bool) -> Value {
        let mut v = json!({
            "user_id": user, "channel_id": channel, "message_id": message,
            "emoji": emoji_json(emoji), "burst": burst, "type": u8::from(burst)
        });
        if let Some(g) = self.guild_of(channel) {
            v["guild_id"] = json!(g);
        }
        v
    }

    /// GUILD_MEMBER_UPDATE's `d`: the member as they are now, with `guild_id`.
    pub(crate) fn member_update(&self, guild: &str, user: &str) -> Value {
        let mut v = self.member_json(guild, user);
        v["guild_id"] = json!(guild);
        v
    }

    /// The bot's permissions in `channel` as an interaction states them (`app_permissions`).
    fn app_permissions(&self, channel: &str) -> String {
        self.channel_permissions(channel, BOT_ID).map_or_else(|| APP_PERMISSIONS.to_string(), |p| p.to_string())
    }

    /// The `channel` of an interaction: a partial channel object.
    pub(crate) fn interaction_channel(&self, channel: &str) -> Value {
        let c = self.channels.get(channel);
        let mut v = json!({
            "id": channel, "type": c.map_or(0, |c| c.kind), "name": c.map(|c| c.name.clone()),
            "permissions": self.app_permissions(channel), "flags": 0, "last_message_id": c.and_then(|c| c.messages.last()).map(|m| m.id.clone()),
            "nsfw": false, "parent_id": null, "position": 0, "rate_limit_per_user": 0, "topic": null
        });
        if let Some(g) = c.and_then(|c| c.guild.clone()) {
            v["guild_id"] = json!(g);
        }
        v
    }

    /// The fields every INTERACTION_CREATE carries: `id`, `type`, where and by whom, the
    /// token, locale, entitlements and so on. `data` and `message` are added by the caller.
    pub(crate) fn interaction_base(&self, i: &super::state::Interaction) -> Value {
        let mut v = json!({
            "id": i.id,
            "application_id": APPLICATION_ID,
            "type": i.kind,
            "channel_id": i.channel,
            "channel": self.interaction_channel(&i.channel),
            "token": i.token,
            "version": 1,
            "app_permissions": self.app_permissions(&i.channel),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT
        });
        match &i.guild {
            Some(g) => {
                let mut member = self.member_json(g, &i.user);
                // Discord computes the member's permissions in the channel for the interaction.
                let permissions = self
                    .channel_permissions(&i.channel, &i.user)
                    .or_else(|| self.guild(g).and_then(|guild| guild.permissions(&i.user)))
                    .unwrap_or(0);
                member["permissions"] = json!(permissions.to_string());
                v["guild_id"] = json!(g);
                v["member"] = member;
                v["guild_locale"] = json!("en-US");
                v["authorizing_integration_owners"] = json!({ "0": g });
                v["context"] = json!(0);
            }
            None => {
                v["user"] = self.user_json(&i.user);
                v["authorizing_integration_owners"] = json!({ "0": "0" });
                v["context"] = json!(1);
            }
        }
        v
    }
}

/// A MIME type guessed from a file name, as Discord reports it for attachments.
fn content_type(filename: &str) -> &'static str {
    match filename.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("txt") => "text/plain; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
