#![allow(dead_code)]
//! A fake Discord gateway (v10) on a websocket: HELLO, IDENTIFY recorded, READY, heartbeats
//! acknowledged, and any dispatch the test pushes, with increasing sequence numbers. Plain
//! JSON text frames, no compression. Payloads in the shapes of Discord's documentation.

use super::BOT_ID;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;

pub const APPLICATION_ID: &str = "900000000000000002";
pub const SESSION_ID: &str = "fake-session-1";
pub const HEARTBEAT_INTERVAL: u64 = 41_250;
pub const JOINED_AT: &str = "2026-11-01T12:00:00.000000+00:00";

pub struct FakeGateway {
    url: String,
    dispatches: mpsc::UnboundedSender<(String, Value)>,
    identifies: Mutex<mpsc::UnboundedReceiver<Value>>,
}

impl FakeGateway {
    /// Listens on a free local port; serves one connection at a time, each a new session.
    pub async fn start(guilds: Vec<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let (dispatches, queue) = mpsc::unbounded_channel();
        let (identified, identifies) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let resume_url = url.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { continue };
                // One connection holds the queue until it closes.
                let mut queue = queue.lock().await;
                serve(ws, &mut queue, &identified, &resume_url, &guilds).await;
            }
        });
        Self { url, dispatches, identifies: Mutex::new(identifies) }
    }

    /// `ws://127.0.0.1:PORT`, what `GET /gateway` answers.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The `d` of the next IDENTIFY the fake received.
    pub async fn identify(&self) -> Value {
        self.identifies.lock().await.recv().await.unwrap()
    }

    /// Sends a dispatch (op 0) named `t` with data `d` on the current connection.
    pub fn dispatch(&self, t: &str, d: Value) {
        self.dispatches.send((t.to_string(), d)).unwrap();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn send(ws: &mut Ws, payload: &Value) -> bool {
    ws.send(Message::Text(payload.to_string())).await.is_ok()
}

async fn serve(
    mut ws: Ws,
    queue: &mut mpsc::UnboundedReceiver<(String, Value)>,
    identified: &mpsc::UnboundedSender<Value>,
    resume_url: &str,
    guilds: &[String],
) {
    if !send(&mut ws, &json!({ "op": 10, "d": { "heartbeat_interval": HEARTBEAT_INTERVAL }, "s": null, "t": null }))
        .await
    {
        return;
    }
    let mut seq = 0u64;
    loop {
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { return };
                let Ok(text) = frame.to_text() else { continue };
                let Ok(payload) = serde_json::from_str::<Value>(text) else { continue };
                let reply = match payload["op"].as_u64() {
                    Some(1) => json!({ "op": 11, "d": null, "s": null, "t": null }),
                    Some(2) => {
                        let _ = identified.send(payload["d"].clone());
                        seq += 1;
                        dispatch("READY", ready(resume_url, guilds), seq)
                    }
                    _ => continue,
                };
                if !send(&mut ws, &reply).await {
                    return;
                }
            }
            next = queue.recv() => {
                let Some((t, d)) = next else { return };
                seq += 1;
                if !send(&mut ws, &dispatch(&t, d, seq)).await { return }
            }
        }
    }
}

fn dispatch(t: &str, d: Value, s: u64) -> Value {
    json!({ "op": 0, "t": t, "s": s, "d": d })
}

pub fn user(id: &str, username: &str, bot: bool) -> Value {
    json!({
        "id": id, "username": username, "discriminator": "0", "global_name": null,
        "avatar": null, "bot": bot, "public_flags": 0
    })
}

fn ready(resume_url: &str, guilds: &[String]) -> Value {
    let mut me = user(BOT_ID, "polity", true);
    me["verified"] = json!(true);
    me["mfa_enabled"] = json!(false);
    me["flags"] = json!(0);
    json!({
        "v": 10,
        "user": me,
        "guilds": guilds.iter().map(|g| json!({ "id": g, "unavailable": true })).collect::<Vec<_>>(),
        "session_id": SESSION_ID,
        "resume_gateway_url": resume_url,
        "shard": [0, 1],
        "application": { "id": APPLICATION_ID, "flags": 0 }
    })
}

/// A guild member object (`user` included, as in GUILD_CREATE and reaction events).
pub fn member(id: &str, username: &str, nick: Option<&str>, roles: &[&str]) -> Value {
    json!({
        "user": user(id, username, false),
        "nick": nick,
        "avatar": null,
        "roles": roles,
        "joined_at": JOINED_AT,
        "premium_since": null,
        "deaf": false,
        "mute": false,
        "flags": 0,
        "pending": false
    })
}

/// A guild text channel; `guild` is set in CHANNEL_UPDATE and left out in GUILD_CREATE.
pub fn channel(id: &str, name: &str, guild: Option<&str>) -> Value {
    let mut c = json!({
        "id": id, "type": 0, "name": name, "position": 0, "permission_overwrites": [],
        "topic": null, "nsfw": false, "last_message_id": null, "rate_limit_per_user": 0, "parent_id": null
    });
    if let Some(g) = guild {
        c["guild_id"] = json!(g);
    }
    c
}

fn role(id: &str, name: &str, position: u64) -> Value {
    json!({
        "id": id, "name": name, "color": 0,
        "colors": { "primary_color": 0, "secondary_color": null, "tertiary_color": null }, "hoist": false, "icon": null, "unicode_emoji": null,
        "position": position, "permissions": "0", "managed": false, "mentionable": false, "flags": 0
    })
}

/// GUILD_CREATE's `d`: an available guild with its roles, members and channels.
pub fn guild_create(id: &str, owner: &str, roles: &[(&str, &str)], members: Vec<Value>, channels: Vec<Value>) -> Value {
    let mut all_roles = vec![role(id, "@everyone", 0)];
    all_roles.extend(roles.iter().zip(1..).map(|((r, n), p)| role(r, n, p)));
    json!({
        "id": id,
        "name": "Polity test",
        "icon": null, "splash": null, "discovery_splash": null,
        "owner_id": owner,
        "afk_channel_id": null, "afk_timeout": 300,
        "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
        "roles": all_roles,
        "emojis": [], "features": [], "mfa_level": 0, "application_id": null,
        "system_channel_id": null, "system_channel_flags": 0, "rules_channel_id": null,
        "vanity_url_code": null, "description": null, "banner": null, "premium_tier": 0,
        "premium_subscription_count": 0, "preferred_locale": "en-US", "public_updates_channel_id": null,
        "nsfw_level": 0, "premium_progress_bar_enabled": false, "safety_alerts_channel_id": null,
        "stickers": [],
        "joined_at": JOINED_AT, "large": false, "unavailable": false,
        "member_count": members.len(),
        "voice_states": [], "members": members, "channels": channels, "threads": [], "presences": [],
        "stage_instances": [], "guild_scheduled_events": []
    })
}

/// MESSAGE_CREATE's `d`: a message in a guild channel, with the author's partial member.
pub fn message_create(
    guild: &str,
    channel: &str,
    id: &str,
    author: Value,
    content: &str,
    attachments: &[&str],
) -> Value {
    let attachments: Vec<Value> = attachments
        .iter()
        .enumerate()
        .map(|(i, url)| {
            json!({
                "id": format!("60000000000000000{i}"), "filename": url.rsplit('/').next().unwrap_or("file"),
                "size": 1024, "url": url, "proxy_url": url, "content_type": "image/png"
            })
        })
        .collect();
    json!({
        "id": id, "channel_id": channel, "guild_id": guild,
        "author": author,
        "member": { "nick": null, "avatar": null, "roles": [], "joined_at": JOINED_AT, "premium_since": null,
                    "deaf": false, "mute": false, "flags": 0, "pending": false },
        "content": content,
        "timestamp": "2026-11-22T12:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": attachments, "embeds": [], "pinned": false, "type": 0, "nonce": null
    })
}

/// The emoji object of a reaction: unicode (`id` null) or custom.
pub fn emoji(name: &str, id: Option<&str>) -> Value {
    match id {
        Some(id) => json!({ "id": id, "name": name, "animated": false }),
        None => json!({ "id": null, "name": name }),
    }
}

/// MESSAGE_REACTION_ADD's `d` (with `member`, `burst` and `type`, as Discord sends them).
pub fn reaction_add(guild: &str, channel: &str, message: &str, user_member: Value, emoji: Value) -> Value {
    json!({
        "user_id": user_member["user"]["id"], "channel_id": channel, "message_id": message, "guild_id": guild,
        "member": user_member, "emoji": emoji, "message_author_id": BOT_ID,
        "burst": false, "burst_colors": [], "type": 0
    })
}

/// MESSAGE_REACTION_REMOVE's `d`.
pub fn reaction_remove(guild: &str, channel: &str, message: &str, user: &str, emoji: Value) -> Value {
    json!({
        "user_id": user, "channel_id": channel, "message_id": message, "guild_id": guild,
        "emoji": emoji, "burst": false, "type": 0
    })
}

/// GUILD_MEMBER_UPDATE's `d`.
pub fn member_update(guild: &str, user_id: &str, username: &str, roles: &[&str]) -> Value {
    json!({
        "guild_id": guild, "roles": roles, "user": user(user_id, username, false), "nick": null, "avatar": null,
        "joined_at": JOINED_AT, "premium_since": null, "deaf": false, "mute": false, "pending": false,
        "communication_disabled_until": null, "flags": 0
    })
}

/// GUILD_MEMBER_ADD's `d`: a member object with `guild_id`.
pub fn member_add(guild: &str, user_id: &str, username: &str) -> Value {
    let mut m = member(user_id, username, None, &[]);
    m["guild_id"] = json!(guild);
    m
}
