//! A stateful fake of Slack for Polity's end-to-end tests: the Web API (`/api/{method}`), the
//! Socket Mode websocket (`/link/`), `response_url`s (`/response/{n}`) and the signing of
//! HTTP Events API deliveries, all on 127.0.0.1, in front of one [`State`].
//!
//! Two workspaces. [`TEAM`] ("Tidepool"): [`ADMIN`] (an admin and owner, with a user token),
//! [`MEMBER`], [`OTHER`], the app's bot user [`BOT_USER`] ([`BOT_ID`]), a deleted user
//! [`DELETED_USER`], and the channels [`GENERAL`] (everyone) and [`RANDOM`] (not [`OTHER`]),
//! both created by [`ADMIN`] with the bot in them. [`OTHER_TEAM`]: [`OTHER_TEAM_USER`], its
//! bot user and [`OTHER_TEAM_CHANNEL`]. A token reaches its own workspace only: anything else
//! is `channel_not_found` or `user_not_found`.
//!
//! As Slack's Web API answers (api.slack.com/web):
//! - HTTP 200 with `{"ok":true,...}` or `{"ok":false,"error":"..."}`; `missing_scope` adds
//!   `needed` and `provided`, `invalid_arguments` and `invalid_blocks` add
//!   `response_metadata.messages`. A method it does not know is `unknown_method`.
//! - Arguments from the query string and from `application/x-www-form-urlencoded` bodies
//!   (JSON-valued fields such as `blocks` and `view` decoded), and from JSON bodies only for
//!   the methods that accept JSON (write methods; a JSON body to the others is ignored, as
//!   Slack ignores it), where the token must be in `Authorization: Bearer` (a form's `token`
//!   argument counts elsewhere). `invalid_json`, `json_not_object` for bodies that are not.
//! - Tokens: none is `not_authed`, an unknown one `invalid_auth`, one of an uninstalled
//!   workspace `token_revoked`; the app-level token ([`APP_TOKEN`]) opens Socket Mode
//!   connections and nothing else, and only it may (`not_allowed_token_type`). Each token has
//!   scopes ([`BOT_SCOPES`], [`USER_SCOPES`], [`FakeSlack::set_scopes`]).
//! - Rate limits per token and method a minute, by Slack's tiers (Tier 1: 5, as slack-morphism
//!   assumes of "1+"; Tier 2: 20; Tier 3: 50; Tier 4: 100); `chat.postMessage` is limited per
//!   channel instead: a burst of [`POST_BURST`], then one a second. Over a limit: HTTP 429,
//!   `Retry-After` in seconds and `{"ok":false,"error":"ratelimited"}`, and nothing happens.
//!   On tokio's clock, so a paused test moves them with `tokio::time::advance`.
//! - Per method, the errors of Slack's reference: `not_in_channel` (the bot posts, pins or
//!   invites only where it is a member), `no_text`, `msg_too_long` (over 40,000 characters),
//!   `invalid_blocks` (over 50 blocks, a block without a known `type`, section text over 3,000
//!   characters, a duplicate `block_id` or `action_id`, ...), `cant_update_message` and
//!   `cant_delete_message` (a bot token only changes the bot's messages; an admin's user token
//!   deletes anyone's), `user_not_in_channel`, `already_reacted`, `no_reaction`, `invalid_name`
//!   (reactions outside [`EMOJI`] and the skin tones of `+1`/`-1`), `already_pinned`,
//!   `name_taken`, `invalid_name_specials` and its siblings, `not_authorized` (renames by
//!   neither the creator nor an admin), `cant_kick_self`, `cant_kick_from_general`,
//!   `cant_invite_self`, `already_in_channel`, `invalid_trigger_id`, `expired_trigger_id`
//!   (triggers live 3 s), `exchanged_trigger_id`, `invalid_code` (OAuth codes work once,
//!   within 10 minutes), `invalid_client_id`, `bad_client_secret`, `invalid_cursor`.
//! - `conversations.history` lists top-level messages newest first, `conversations.replies` a
//!   thread (`ts`) oldest first, with their metadata only under `include_all_metadata`; a DM's
//!   history needs `im:history`.
//! - [`Failure::Lost`]: Slack does what was asked and the answer never arrives, as when a
//!   connection drops after the request was read.
//! - `reactions.get` without `full=true` lists at most 3 users of a reaction (the caller among
//!   them if they reacted) while `count` stays the real count, as Slack documents it may.
//!
//! Socket Mode: `apps.connections.open` hands out `ws://127.0.0.1:PORT/link/?ticket=N`, each
//! ticket good for one connection. A connection gets `hello`; envelopes go to the newest
//! connection not told to `disconnect`, and wait for one when there is none. Acks are recorded;
//! an `events_api` envelope not acked is sent again by [`FakeSlack::redeliver_unacked`] (at
//! most 3 retries, `retry_reason: "timeout"`, the same envelope). Tests act as Slack's users:
//! [`FakeSlack::react`], [`FakeSlack::post_as`], [`FakeSlack::slash`], [`FakeSlack::press`],
//! ...; each changes the state and delivers the payload Slack documents. A `response_url`
//! takes 5 posts within 30 minutes (404 `used_url`, `expired_url` after).
//!
//! Every Web API request is recorded ([`FakeSlack::requests`]); failures are injected per
//! method ([`FakeSlack::fail_next`]). Waits ([`FakeSlack::wait_for`], [`FakeSlack::ack_of`])
//! recheck after every change, without sleeping; callers wrap them in their own timeouts.
//!
//! What it leaves out: events for the app's own Web API actions (Slack sends the bot's
//! messages and renames back when subscribed), `tokens_revoked` events (`app_uninstalled` is
//! [`FakeSlack::remove_app`]),
//! Slack's workspace-wide posting limit, threads beyond storing `thread_ts`, edits through
//! `response_url`s (recorded only), files, private channels' finer rules, Enterprise Grid.

use axum::body::Body;
use axum::extract::{Request, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

pub const TEAM: &str = "T0TIDEPOOL";
pub const TEAM_NAME: &str = "Tidepool";
pub const TEAM_DOMAIN: &str = "tidepool";
pub const APP_ID: &str = "A0POLITY";
/// The app's bot user in [`TEAM`] (`polity`, `is_bot`), with bot id [`BOT_ID`].
pub const BOT_USER: &str = "U0POLITY";
pub const BOT_ID: &str = "B0POLITY";
pub const BOT_TOKEN: &str = "xoxb-tidepool-bot";
/// The app-level token (`connections:write`).
pub const APP_TOKEN: &str = "xapp-1-tidepool-app";
/// "Alice": admin and owner of [`TEAM`], who installed the app.
pub const ADMIN: &str = "U0ALICE";
pub const ADMIN_USER_TOKEN: &str = "xoxp-tidepool-alice";
/// "Bob".
pub const MEMBER: &str = "U0BOB";
/// "Carol": in [`GENERAL`], not in [`RANDOM`].
pub const OTHER: &str = "U0CAROL";
/// "Gus", deactivated.
pub const DELETED_USER: &str = "U0GUS";
pub const GENERAL: &str = "C0GENERAL";
pub const RANDOM: &str = "C0RANDOM";
/// The app's signing secret (Slack's documented example's).
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The deprecated verification token payloads still carry as `token`.
pub const VERIFICATION_TOKEN: &str = "vErIfIcAtIoN0pOlItY";
pub const CLIENT_ID: &str = "1700000000.1700000042";
pub const CLIENT_SECRET: &str = "polity-client-secret";
/// A second workspace, "Driftwood", that Polity's app is also installed in.
pub const OTHER_TEAM: &str = "T0DRIFT";
pub const OTHER_BOT_TOKEN: &str = "xoxb-drift-bot";
pub const OTHER_BOT_USER: &str = "U0DRIFTBOT";
pub const OTHER_BOT_ID: &str = "B0DRIFT";
/// "Dave", of [`OTHER_TEAM`].
pub const OTHER_TEAM_USER: &str = "U0DAVE";
pub const OTHER_TEAM_CHANNEL: &str = "C0DRIFT";

/// The Unix time the fake's clock starts at: timestamps are `EPOCH_SECS` plus tokio's clock.
pub const EPOCH_SECS: i64 = 1_700_000_000;
/// The bot token's scopes, as Slack writes them.
pub const BOT_SCOPES: &str = "channels:history,channels:join,channels:manage,channels:read,chat:write,commands,\
im:history,im:write,pins:write,reactions:read,reactions:write,team:read,users:read";
/// [`ADMIN_USER_TOKEN`]'s scopes.
pub const USER_SCOPES: &str =
    "channels:read,channels:write,chat:write,im:write,pins:write,reactions:read,reactions:write,team:read,users:read";
/// The emoji reactions may use (and `+1`/`-1` with `::skin-tone-2` to `-6`).
pub const EMOJI: &str =
    "+1 -1 shrug one two three four five six seven eight nine keycap_ten white_check_mark x eyes tada";
/// `chat.postMessage`'s burst per channel; it refills one a second.
pub const POST_BURST: u64 = 3;
pub const MAX_TEXT: usize = 40_000;
pub const TRIGGER_LIFETIME: Duration = Duration::from_secs(3);
pub const RESPONSE_URL_LIFETIME: Duration = Duration::from_secs(30 * 60);
pub const RESPONSE_URL_POSTS: usize = 5;
pub const CODE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How often Slack retries an event not acknowledged.
pub const MAX_RETRIES: u64 = 3;
const MINUTE: Duration = Duration::from_secs(60);

/// A Web API request as the fake received it: the arguments from the query, the form or the
/// JSON body, merged.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub token: Option<String>,
    pub params: Map<String, Value>,
}

/// What the next request of a method gets instead of its answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// 429 with `Retry-After` of these seconds and `{"ok":false,"error":"ratelimited"}`.
    RateLimited(u64),
    /// 200 with `{"ok":false,"error":...}`.
    Error(String),
    /// This HTTP status with a plain-text body.
    Status(u16),
    /// No answer at all.
    Hang,
    /// Slack does what was asked, and its answer is lost on the way: this HTTP status instead.
    Lost(u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Bot,
    User,
    App,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub token: String,
    pub team: String,
    pub user: String,
    pub kind: TokenKind,
    pub scopes: Vec<String>,
    pub revoked: bool,
}

#[derive(Clone, Debug)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub bot_user: String,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub team: String,
    pub name: String,
    pub real_name: String,
    pub admin: bool,
    pub owner: bool,
    pub bot_id: Option<String>,
    pub deleted: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Channel {
    pub id: String,
    pub team: String,
    pub name: String,
    pub creator: String,
    pub created: i64,
    pub members: Vec<String>,
    pub im: bool,
    pub general: bool,
    pub archived: bool,
    /// The timestamps of its pinned messages.
    pub pins: Vec<String>,
    pub previous_names: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub user: String,
    pub bot_id: Option<String>,
    pub text: String,
    pub blocks: Option<Value>,
    pub thread_ts: Option<String>,
    pub subtype: Option<String>,
    /// Further fields (`old_name`, `name` of a `channel_name` message).
    pub extra: Map<String, Value>,
    /// Each emoji with its users, in the order they came.
    pub reactions: Vec<(String, Vec<String>)>,
    /// Who edited it last, and when.
    pub edited: Option<(String, String)>,
    /// Its metadata (`event_type`, `event_payload`), shown by `conversations.history` with
    /// `include_all_metadata`.
    pub metadata: Option<Value>,
}

#[derive(Clone, Debug)]
struct Envelope {
    id: String,
    kind: &'static str,
    payload: Value,
    accepts_response_payload: bool,
    retry_attempt: u64,
    retry_reason: &'static str,
    delivered: bool,
    acked: bool,
}

impl Envelope {
    fn frame(&self) -> String {
        let mut frame = json!({
            "envelope_id": self.id,
            "type": self.kind,
            "accepts_response_payload": self.accepts_response_payload,
            "payload": self.payload,
        });
        if self.kind == "events_api" {
            frame["retry_attempt"] = json!(self.retry_attempt);
            frame["retry_reason"] = json!(self.retry_reason);
        }
        frame.to_string()
    }
}

#[derive(Debug)]
enum Outgoing {
    Frame(String),
    Close,
}

#[derive(Debug)]
struct Connection {
    id: usize,
    tx: mpsc::UnboundedSender<Outgoing>,
    /// Told to disconnect: nothing more is delivered to it.
    draining: bool,
}

#[derive(Debug)]
struct Trigger {
    created: Instant,
    team: String,
    used: bool,
}

#[derive(Debug)]
struct Ephemeral {
    channel: String,
    user: String,
    params: Value,
    ts: String,
}

/// When the fake started, on tokio's clock.
#[derive(Clone, Copy, Debug)]
struct Started(Instant);

impl Default for Started {
    fn default() -> Self {
        Started(Instant::now())
    }
}

/// Everything the fake knows.
#[derive(Debug, Default)]
pub struct State {
    pub teams: Vec<Team>,
    pub users: Vec<User>,
    pub channels: Vec<Channel>,
    pub messages: Vec<Message>,
    pub tokens: Vec<Token>,
    pub requests: Vec<Recorded>,
    /// Opened views, as `views.open` answered them.
    pub views: Vec<Value>,
    /// The workspaces `apps.uninstall` was called for, in order.
    pub uninstalled: Vec<String>,
    pub rate_limits: bool,
    base: String,
    started: Started,
    last_ts: i64,
    next: u64,
    failures: HashMap<String, VecDeque<Failure>>,
    windows: HashMap<(String, String), VecDeque<Instant>>,
    /// Per channel: the bucket's level in thousandths of a post, and when it was last filled.
    buckets: HashMap<String, (u64, Instant)>,
    tickets: HashMap<u64, bool>,
    codes: HashMap<String, (String, Instant, bool)>,
    triggers: HashMap<String, Trigger>,
    response_urls: HashMap<u64, (Instant, usize)>,
    responses: Vec<(String, Value)>,
    envelopes: Vec<Envelope>,
    pending: VecDeque<usize>,
    connections: Vec<Connection>,
    opened: usize,
    acks: Vec<Value>,
    ephemerals: Vec<Ephemeral>,
}

type Answer = Result<Value, Value>;

/// How the fake answers a request.
enum Reply {
    Json(StatusCode, Value, Option<u64>),
    Status(u16),
    Hang,
}

fn fail(error: &str) -> Value {
    json!({"ok": false, "error": error})
}

fn invalid(error: &str, messages: Vec<String>) -> Value {
    json!({"ok": false, "error": error, "response_metadata": {"messages": messages}})
}

/// An argument as text (numbers and booleans as JSON writes them); empty is absent.
fn arg(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn flag(p: &Map<String, Value>, key: &str) -> bool {
    matches!(arg(p, key).as_deref(), Some("true" | "1"))
}

/// A list argument: a comma-separated string, or a JSON array.
fn list(p: &Map<String, Value>, key: &str) -> Vec<String> {
    match p.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn known_emoji(name: &str) -> bool {
    let tone = name.strip_prefix("+1::skin-tone-").or_else(|| name.strip_prefix("-1::skin-tone-"));
    EMOJI.split(' ').any(|e| e == name) || tone.is_some_and(|t| matches!(t, "2" | "3" | "4" | "5" | "6"))
}

fn secs_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn uuid(n: u64) -> String {
    format!("{:08x}-f4ce-4a11-8bad-{:012x}", n.wrapping_mul(2_654_435_761) & 0xffff_ffff, n)
}

/// Slack's limits on Block Kit blocks, as its `invalid_blocks` messages word them.
fn check_blocks(blocks: &Value, max: usize) -> Result<(), Vec<String>> {
    let Some(blocks) = blocks.as_array() else {
        return Err(vec!["[ERROR] expected an array [json-pointer:/blocks]".into()]);
    };
    let mut errors = Vec::new();
    if blocks.len() > max {
        errors.push(format!("[ERROR] no more than {max} items allowed [json-pointer:/blocks]"));
    }
    let mut block_ids = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("/blocks/{i}");
        let text_len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
        if let Some(id) = block.get("block_id").and_then(Value::as_str) {
            if id.chars().count() > 255 {
                errors.push(format!("[ERROR] must be less than 256 characters [json-pointer:{at}/block_id]"));
            }
            if block_ids.contains(&id) {
                errors.push(format!("[ERROR] duplicate block_id [json-pointer:{at}/block_id]"));
            }
            block_ids.push(id);
        }
        match block.get("type").and_then(Value::as_str) {
            Some("section") => {
                let text = &block["text"]["text"];
                if text_len(text) > 3000 {
                    errors.push(format!("[ERROR] must be less than 3001 characters [json-pointer:{at}/text/text]"));
                }
                let fields = block.get("fields").and_then(Value::as_array);
                if text.is_null() && fields.is_none() {
                    errors.push(format!("[ERROR] must provide either text or fields [json-pointer:{at}]"));
                }
                if fields.is_some_and(|f| f.len() > 10) {
                    errors.push(format!("[ERROR] no more than 10 items allowed [json-pointer:{at}/fields]"));
                }
            }
            Some("header") if text_len(&block["text"]["text"]) > 150 => {
                errors.push(format!("[ERROR] must be less than 151 characters [json-pointer:{at}/text/text]"));
            }
            Some("actions") => {
                let elements = block.get("elements").and_then(Value::as_array).cloned().unwrap_or_default();
                if elements.is_empty() || elements.len() > 25 {
                    errors.push(format!("[ERROR] must have 1 to 25 items [json-pointer:{at}/elements]"));
                }
                let mut action_ids = Vec::new();
                for (j, e) in elements.iter().enumerate() {
                    let at = format!("{at}/elements/{j}");
                    if text_len(&e["text"]["text"]) > 75 {
                        errors.push(format!("[ERROR] must be less than 76 characters [json-pointer:{at}/text/text]"));
                    }
                    if text_len(&e["value"]) > 2000 {
                        errors.push(format!("[ERROR] must be less than 2001 characters [json-pointer:{at}/value]"));
                    }
                    if let Some(id) = e.get("action_id").and_then(Value::as_str) {
                        if action_ids.contains(&id) {
                            errors.push(format!("[ERROR] duplicate action_id [json-pointer:{at}/action_id]"));
                        }
                        action_ids.push(id);
                    }
                }
            }
            Some("context") if block.get("elements").and_then(Value::as_array).is_none_or(|e| e.len() > 10) => {
                errors.push(format!("[ERROR] must have 1 to 10 items [json-pointer:{at}/elements]"));
            }
            Some("header" | "context" | "divider" | "image" | "input" | "rich_text" | "markdown" | "video") => {}
            Some(_) => errors.push(format!("[ERROR] unsupported type [json-pointer:{at}/type]")),
            None => errors.push(format!("[ERROR] missing required field: type [json-pointer:{at}]")),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The element `action_id` of `blocks` (in an actions block, a section's accessory, an
/// input's element), with its block's id.
fn find_action(blocks: &Value, action_id: &str) -> Option<(String, Value)> {
    for block in blocks.as_array()? {
        let mut elements: Vec<&Value> = block["elements"].as_array().map(|e| e.iter().collect()).unwrap_or_default();
        elements.extend([&block["accessory"], &block["element"]]);
        if let Some(e) = elements.into_iter().find(|e| e["action_id"] == action_id) {
            return Some((block["block_id"].as_str().unwrap_or_default().to_string(), e.clone()));
        }
    }
    None
}

/// What a method takes: its tokens, its limit a minute, the scope a bot and a user token need,
/// and whether it reads JSON bodies.
struct Spec {
    tokens: Tokens,
    per_minute: Option<usize>,
    bot_scope: Option<&'static str>,
    user_scope: Option<&'static str>,
    json: bool,
}

#[derive(PartialEq)]
enum Tokens {
    BotOrUser,
    App,
    /// The app's client id and secret, no token.
    Client,
}

fn spec(method: &str) -> Option<Spec> {
    use Tokens::{App, BotOrUser, Client};
    const T1: Option<usize> = Some(5);
    const T2: Option<usize> = Some(20);
    const T3: Option<usize> = Some(50);
    const T4: Option<usize> = Some(100);
    let (tokens, per_minute, bot_scope, user_scope, json) = match method {
        "auth.test" => (BotOrUser, T4, None, None, false),
        "apps.connections.open" => (App, T1, None, None, true),
        "apps.uninstall" => (BotOrUser, T1, None, None, false),
        "auth.revoke" => (BotOrUser, T3, None, None, false),
        "oauth.v2.access" => (Client, None, None, None, false),
        "team.info" => (BotOrUser, T3, Some("team:read"), Some("team:read"), false),
        "users.list" => (BotOrUser, T2, Some("users:read"), Some("users:read"), false),
        "users.info" => (BotOrUser, T4, Some("users:read"), Some("users:read"), false),
        "conversations.info" => (BotOrUser, T3, Some("channels:read"), Some("channels:read"), false),
        "conversations.list" => (BotOrUser, T2, Some("channels:read"), Some("channels:read"), false),
        "conversations.history" | "conversations.replies" => {
            (BotOrUser, T3, Some("channels:history"), Some("channels:history"), false)
        }
        "conversations.open" => (BotOrUser, T3, Some("im:write"), Some("im:write"), true),
        "conversations.rename" => (BotOrUser, T2, Some("channels:manage"), Some("channels:write"), true),
        "conversations.invite" => (BotOrUser, T3, Some("channels:manage"), Some("channels:write"), true),
        "conversations.kick" => (BotOrUser, T3, Some("channels:manage"), Some("channels:write"), true),
        "conversations.join" => (BotOrUser, T3, Some("channels:join"), Some("channels:write"), true),
        "chat.postMessage" => (BotOrUser, None, Some("chat:write"), Some("chat:write"), true),
        "chat.update" | "chat.delete" => (BotOrUser, T3, Some("chat:write"), Some("chat:write"), true),
        "chat.postEphemeral" => (BotOrUser, T4, Some("chat:write"), Some("chat:write"), true),
        "chat.getPermalink" => (BotOrUser, T4, None, None, false),
        "reactions.add" => (BotOrUser, T3, Some("reactions:write"), Some("reactions:write"), true),
        "reactions.remove" => (BotOrUser, T2, Some("reactions:write"), Some("reactions:write"), true),
        "reactions.get" => (BotOrUser, T3, Some("reactions:read"), Some("reactions:read"), false),
        "pins.add" | "pins.remove" => (BotOrUser, T2, Some("pins:write"), Some("pins:write"), true),
        "views.open" => (BotOrUser, T4, None, None, true),
        _ => return None,
    };
    Some(Spec { tokens, per_minute, bot_scope, user_scope, json })
}

impl State {
    fn new(base: String) -> Self {
        let team = |id: &str, name: &str, domain: &str, bot_user: &str| Team {
            id: id.into(),
            name: name.into(),
            domain: domain.into(),
            bot_user: bot_user.into(),
        };
        let user = |id: &str, team: &str, name: &str, real_name: &str| User {
            id: id.into(),
            team: team.into(),
            name: name.into(),
            real_name: real_name.into(),
            admin: false,
            owner: false,
            bot_id: None,
            deleted: false,
        };
        let token = |token: &str, team: &str, user: &str, kind: TokenKind, scopes: &str| Token {
            token: token.into(),
            team: team.into(),
            user: user.into(),
            kind,
            scopes: scopes.split(',').map(str::to_string).collect(),
            revoked: false,
        };
        let mut s = State {
            teams: vec![
                team(TEAM, TEAM_NAME, TEAM_DOMAIN, BOT_USER),
                team(OTHER_TEAM, "Driftwood", "driftwood", OTHER_BOT_USER),
            ],
            users: vec![
                User { admin: true, owner: true, ..user(ADMIN, TEAM, "alice", "Alice") },
                user(MEMBER, TEAM, "bob", "Bob"),
                user(OTHER, TEAM, "carol", "Carol"),
                User { bot_id: Some(BOT_ID.into()), ..user(BOT_USER, TEAM, "polity", "Polity") },
                User { deleted: true, ..user(DELETED_USER, TEAM, "gus", "Gus") },
                user(OTHER_TEAM_USER, OTHER_TEAM, "dave", "Dave"),
                User { bot_id: Some(OTHER_BOT_ID.into()), ..user(OTHER_BOT_USER, OTHER_TEAM, "polity", "Polity") },
            ],
            tokens: vec![
                token(BOT_TOKEN, TEAM, BOT_USER, TokenKind::Bot, BOT_SCOPES),
                token(ADMIN_USER_TOKEN, TEAM, ADMIN, TokenKind::User, USER_SCOPES),
                token(APP_TOKEN, TEAM, "", TokenKind::App, "connections:write"),
                token(OTHER_BOT_TOKEN, OTHER_TEAM, OTHER_BOT_USER, TokenKind::Bot, BOT_SCOPES),
            ],
            rate_limits: true,
            base,
            last_ts: EPOCH_SECS * 1_000_000,
            ..State::default()
        };
        s.add_channel(GENERAL, "general", ADMIN, &[ADMIN, MEMBER, OTHER, BOT_USER]);
        s.add_channel(RANDOM, "random", ADMIN, &[ADMIN, MEMBER, BOT_USER]);
        s.add_channel(OTHER_TEAM_CHANNEL, "general", OTHER_TEAM_USER, &[OTHER_TEAM_USER, OTHER_BOT_USER]);
        s.channels[0].general = true;
        s.channels[2].general = true;
        s
    }

    pub fn add_channel(&mut self, id: &str, name: &str, creator: &str, members: &[&str]) {
        let team = self.user(creator).team.clone();
        self.channels.push(Channel {
            id: id.into(),
            team,
            name: name.into(),
            creator: creator.into(),
            created: EPOCH_SECS - 86_400,
            members: members.iter().map(|m| m.to_string()).collect(),
            ..Channel::default()
        });
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn now_micros(&self) -> i64 {
        let elapsed = Instant::now().duration_since(self.started.0).as_micros();
        EPOCH_SECS * 1_000_000 + i64::try_from(elapsed).unwrap_or(i64::MAX / 2)
    }

    pub fn now_secs(&self) -> i64 {
        self.now_micros() / 1_000_000
    }

    /// A message timestamp: the clock's, at least 100 µs after the last one.
    fn next_ts(&mut self) -> String {
        self.last_ts = (self.last_ts + 100).max(self.now_micros());
        format!("{}.{:06}", self.last_ts / 1_000_000, self.last_ts % 1_000_000)
    }

    pub fn team(&self, id: &str) -> &Team {
        self.teams.iter().find(|t| t.id == id).unwrap_or_else(|| panic!("no team {id}"))
    }

    pub fn user(&self, id: &str) -> &User {
        self.users.iter().find(|u| u.id == id).unwrap_or_else(|| panic!("no user {id}"))
    }

    pub fn channel(&self, id: &str) -> &Channel {
        self.channels.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no channel {id}"))
    }

    pub fn channel_mut(&mut self, id: &str) -> &mut Channel {
        self.channels.iter_mut().find(|c| c.id == id).unwrap_or_else(|| panic!("no channel {id}"))
    }

    fn msg(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.channel == channel && m.ts == ts)
    }

    fn team_user(&self, team: &str, id: Option<String>) -> Result<&User, Value> {
        let id = id.ok_or_else(|| fail("user_not_found"))?;
        self.users.iter().find(|u| u.id == id && u.team == team).ok_or_else(|| fail("user_not_found"))
    }

    /// A channel the token can see: its workspace's, a DM only its members'.
    fn visible(&self, t: &Token, id: Option<String>) -> Result<usize, Value> {
        let id = id.ok_or_else(|| fail("channel_not_found"))?;
        self.channels
            .iter()
            .position(|c| c.id == id && c.team == t.team && (!c.im || c.members.contains(&t.user)))
            .ok_or_else(|| fail("channel_not_found"))
    }

    fn message_of(&self, t: &Token, p: &Map<String, Value>, ts_key: &str) -> Result<(usize, usize), Value> {
        let c = self.visible(t, arg(p, "channel"))?;
        let ts = arg(p, ts_key).ok_or_else(|| fail("message_not_found"))?;
        let m = self.msg(&self.channels[c].id, &ts).ok_or_else(|| fail("message_not_found"))?;
        Ok((c, m))
    }

    /// The DM between the bot (or `t`'s user) and `users`, opened if need be.
    fn open_dm(&mut self, t: &Token, users: &[String]) -> Result<(usize, bool), Value> {
        for u in users {
            if self.team_user(&t.team, Some(u.clone()))?.deleted {
                return Err(fail("user_disabled"));
            }
        }
        let mut members = vec![t.user.clone()];
        members.extend(users.iter().filter(|u| **u != t.user).cloned());
        // A DM is `D` and the other's id; several users make a group DM, `G`.
        let others: Vec<&str> = members.iter().skip(1).map(|u| &u[1..]).collect();
        let id = match others.as_slice() {
            [] => format!("D{}", &t.user[1..]),
            [other] => format!("D{other}"),
            _ => format!("G{}", others.join("")),
        };
        if let Some(c) = self.channels.iter().position(|c| c.id == id) {
            return Ok((c, true));
        }
        self.channels.push(Channel {
            id,
            team: t.team.clone(),
            name: String::new(),
            creator: t.user.clone(),
            created: self.now_secs(),
            members,
            im: true,
            ..Channel::default()
        });
        Ok((self.channels.len() - 1, false))
    }

    pub fn channel_json(&self, c: &Channel, viewer: &str) -> Value {
        if c.im {
            let other = c.members.iter().find(|m| *m != viewer).unwrap_or(&c.members[0]);
            return json!({"id": c.id, "created": c.created, "is_im": true, "is_org_shared": false,
                "user": other, "is_user_deleted": self.user(other).deleted, "priority": 0});
        }
        let about = json!({"value": "", "creator": "", "last_set": 0});
        json!({
            "id": c.id, "name": c.name, "is_channel": true, "is_group": false, "is_im": false,
            "is_mpim": false, "is_private": false, "created": c.created, "creator": c.creator,
            "is_archived": c.archived, "is_general": c.general, "unlinked": 0, "name_normalized": c.name,
            "is_shared": false, "is_ext_shared": false, "is_org_shared": false, "pending_shared": [],
            "is_pending_ext_shared": false, "is_member": c.members.iter().any(|m| m == viewer),
            "topic": about, "purpose": about, "previous_names": c.previous_names, "num_members": c.members.len(),
        })
    }

    pub fn user_json(&self, u: &User) -> Value {
        let mut profile = json!({
            "real_name": u.real_name, "display_name": u.real_name, "real_name_normalized": u.real_name,
            "display_name_normalized": u.real_name, "avatar_hash": "g0f4ce", "team": u.team,
            "image_48": format!("https://avatars.slack-edge.com/{}_48.png", u.id),
        });
        if let Some(bot) = &u.bot_id {
            profile["bot_id"] = json!(bot);
            profile["api_app_id"] = json!(APP_ID);
            profile["always_active"] = json!(true);
        }
        json!({
            "id": u.id, "team_id": u.team, "name": u.name, "deleted": u.deleted, "color": "9f69e7",
            "real_name": u.real_name, "tz": "Europe/Amsterdam", "tz_label": "Central European Time",
            "tz_offset": 3600, "profile": profile, "is_admin": u.admin, "is_owner": u.owner,
            "is_primary_owner": u.owner, "is_restricted": false, "is_ultra_restricted": false,
            "is_bot": u.bot_id.is_some(), "is_app_user": false, "updated": EPOCH_SECS - 86_400,
        })
    }

    /// A message as the Web API shows it; without `full`, each reaction lists at most 3 users
    /// (`viewer` among them if they reacted), as `reactions.get` may.
    pub fn message_json(&self, m: &Message, full: bool, viewer: &str) -> Value {
        let mut v = json!({"type": "message", "user": m.user, "text": m.text, "ts": m.ts,
            "team": self.channel(&m.channel).team});
        if let Some(bot) = &m.bot_id {
            v["bot_id"] = json!(bot);
            v["app_id"] = json!(APP_ID);
        }
        if let Some(subtype) = &m.subtype {
            v["subtype"] = json!(subtype);
        }
        if let Some(blocks) = &m.blocks {
            v["blocks"] = blocks.clone();
        }
        if let Some(thread_ts) = &m.thread_ts {
            v["thread_ts"] = json!(thread_ts);
        }
        for (key, value) in &m.extra {
            v[key] = value.clone();
        }
        if let Some((user, ts)) = &m.edited {
            v["edited"] = json!({"user": user, "ts": ts});
        }
        if self.channel(&m.channel).pins.contains(&m.ts) {
            v["pinned_to"] = json!([m.channel]);
        }
        if !m.reactions.is_empty() {
            let reactions: Vec<Value> = m
                .reactions
                .iter()
                .map(|(name, users)| {
                    let mut shown: Vec<&String> = users.iter().take(if full { users.len() } else { 3 }).collect();
                    if let Some(me) = users.iter().find(|u| *u == viewer)
                        && !shown.contains(&me)
                        && let Some(last) = shown.last_mut()
                    {
                        *last = me;
                    }
                    json!({"name": name, "users": shown, "count": users.len()})
                })
                .collect();
            v["reactions"] = json!(reactions);
        }
        v
    }

    /// Slack gives blocks without a `block_id` (and buttons without an `action_id`) one.
    fn stamp_blocks(&mut self, blocks: &mut Value) {
        let Some(blocks) = blocks.as_array_mut() else { return };
        for block in blocks {
            if block.get("block_id").is_none() {
                let n = self.next_id();
                block["block_id"] = json!(format!("b{:05x}", n.wrapping_mul(0x9e37_79b9) & 0xf_ffff));
            }
            if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                for e in elements {
                    self.stamp_action(e);
                }
            }
            if let Some(e) = block.get_mut("accessory") {
                self.stamp_action(e);
            }
        }
    }

    fn stamp_action(&mut self, e: &mut Value) {
        if e.get("action_id").is_none() && e.get("type").is_some_and(|t| t == "button") {
            let n = self.next_id();
            e["action_id"] = json!(format!("a{:05x}", n.wrapping_mul(0x85eb_ca6b) & 0xf_ffff));
        }
    }

    /// The content of a message to post: its text and blocks, as Slack checks them.
    fn content(&mut self, p: &Map<String, Value>) -> Result<(String, Option<Value>), Value> {
        let text = arg(p, "text").unwrap_or_default();
        let mut blocks = p.get("blocks").filter(|b| !b.is_null()).cloned();
        if text.is_empty() && blocks.as_ref().is_none_or(|b| b.as_array().is_some_and(Vec::is_empty)) {
            return Err(fail("no_text"));
        }
        if text.chars().count() > MAX_TEXT {
            return Err(fail("msg_too_long"));
        }
        if let Some(b) = &mut blocks {
            if !b.is_array() {
                return Err(fail("invalid_blocks_format"));
            }
            check_blocks(b, 50).map_err(|m| invalid("invalid_blocks", m))?;
            self.stamp_blocks(b);
        }
        Ok((text, blocks))
    }

    fn new_trigger(&mut self, team: &str) -> String {
        let n = self.next_id();
        let id =
            format!("{n}.{EPOCH_SECS}.{:032x}", u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835));
        self.triggers.insert(id.clone(), Trigger { created: Instant::now(), team: team.into(), used: false });
        id
    }

    fn new_response_url(&mut self) -> String {
        let n = self.next_id();
        self.response_urls.insert(n, (Instant::now(), 0));
        format!("{}/response/{n}", self.base)
    }

    fn call(&mut self, method: &str, token: Option<&str>, p: &Map<String, Value>) -> Reply {
        let failure = self.failures.get_mut(method).and_then(VecDeque::pop_front);
        if let Some(Failure::Lost(code)) = failure {
            let _done = self.call(method, token, p);
            return Reply::Status(code);
        }
        if let Some(failure) = failure {
            return match failure {
                Failure::RateLimited(secs) => {
                    Reply::Json(StatusCode::TOO_MANY_REQUESTS, fail("ratelimited"), Some(secs))
                }
                Failure::Error(e) => Reply::Json(StatusCode::OK, fail(&e), None),
                Failure::Status(code) => Reply::Status(code),
                Failure::Hang => Reply::Hang,
                Failure::Lost(_) => unreachable!("answered above"),
            };
        }
        let answer = match self.authorize(method, token, p) {
            Err(reply) => return reply,
            Ok(None) => self.oauth_access(p),
            Ok(Some(t)) => self.answer(method, &t, p),
        };
        match answer {
            Ok(v) => {
                let mut body = Map::from_iter([("ok".to_string(), json!(true))]);
                body.extend(v.as_object().cloned().unwrap_or_default());
                Reply::Json(StatusCode::OK, Value::Object(body), None)
            }
            Err(e) => Reply::Json(StatusCode::OK, e, None),
        }
    }

    /// The caller's token (none for OAuth), after Slack's checks of it and of the rate limits.
    fn authorize(&mut self, method: &str, token: Option<&str>, p: &Map<String, Value>) -> Result<Option<Token>, Reply> {
        let error = |e: Value| Reply::Json(StatusCode::OK, e, None);
        let spec = spec(method).ok_or_else(|| error(fail("unknown_method")))?;
        if spec.tokens == Tokens::Client {
            return Ok(None);
        }
        let token = token.ok_or_else(|| error(fail("not_authed")))?;
        let t = self.tokens.iter().find(|t| t.token == token).cloned().ok_or_else(|| error(fail("invalid_auth")))?;
        if t.revoked {
            return Err(error(fail("token_revoked")));
        }
        if (spec.tokens == Tokens::App) != (t.kind == TokenKind::App) {
            return Err(error(fail("not_allowed_token_type")));
        }
        let needed = if t.kind == TokenKind::Bot { spec.bot_scope } else { spec.user_scope };
        if let Some(needed) = needed
            && !t.scopes.iter().any(|s| s == needed)
        {
            let provided = t.scopes.join(",");
            return Err(error(json!({"ok": false, "error": "missing_scope", "needed": needed, "provided": provided})));
        }
        if !self.rate_limits {
            return Ok(Some(t));
        }
        let now = Instant::now();
        let limited = |secs: u64| Reply::Json(StatusCode::TOO_MANY_REQUESTS, fail("ratelimited"), Some(secs.max(1)));
        if method == "chat.postMessage" {
            let key = format!("{}/{}", t.team, arg(p, "channel").unwrap_or_default());
            let (level, at) = self.buckets.entry(key).or_insert((POST_BURST * 1000, now));
            let refill = u64::try_from(now.duration_since(*at).as_millis()).unwrap_or(u64::MAX);
            *level = level.saturating_add(refill).min(POST_BURST * 1000);
            *at = now;
            if *level < 1000 {
                return Err(limited(secs_ceil(Duration::from_millis(1000 - *level))));
            }
            *level -= 1000;
        } else if let Some(per_minute) = spec.per_minute {
            let window = self.windows.entry((t.token.clone(), method.to_string())).or_default();
            while window.front().is_some_and(|at| now.duration_since(*at) >= MINUTE) {
                window.pop_front();
            }
            if let Some(oldest) = window.front().filter(|_| window.len() >= per_minute) {
                return Err(limited(secs_ceil(MINUTE - now.duration_since(*oldest))));
            }
            window.push_back(now);
        }
        Ok(Some(t))
    }

    fn answer(&mut self, method: &str, t: &Token, p: &Map<String, Value>) -> Answer {
        match method {
            "auth.test" => {
                let (team, user) = (self.team(&t.team), self.user(&t.user));
                let mut v = json!({"url": format!("https://{}.slack.com/", team.domain), "team": team.name,
                    "user": user.name, "team_id": team.id, "user_id": user.id, "is_enterprise_install": false});
                if t.kind == TokenKind::Bot {
                    v["bot_id"] = json!(user.bot_id);
                }
                Ok(v)
            }
            "apps.connections.open" => {
                let n = self.next_id();
                self.tickets.insert(n, false);
                Ok(json!({"url": format!("{}/link/?ticket={n}", self.base.replacen("http://", "ws://", 1))}))
            }
            "auth.revoke" => {
                let test = flag(p, "test");
                if !test && let Some(token) = self.tokens.iter_mut().find(|x| x.token == t.token) {
                    token.revoked = true;
                }
                Ok(json!({"revoked": !test}))
            }
            "apps.uninstall" => {
                self.client_credentials(p)?;
                for token in self.tokens.iter_mut().filter(|x| x.team == t.team && x.kind != TokenKind::App) {
                    token.revoked = true;
                }
                self.uninstalled.push(t.team.clone());
                Ok(json!({}))
            }
            "team.info" => {
                if arg(p, "team").is_some_and(|id| id != t.team) {
                    return Err(fail("team_not_found"));
                }
                let team = self.team(&t.team);
                Ok(json!({"team": {"id": team.id, "name": team.name, "domain": team.domain,
                    "email_domain": "", "icon": {"image_34": "https://a.slack-edge.com/team_34.png", "image_default": true}}}))
            }
            "users.list" => {
                let members: Vec<&User> = self.users.iter().filter(|u| u.team == t.team).collect();
                let (start, end, next) = page(members.len(), p, 0)?;
                let page: Vec<Value> = members[start..end].iter().map(|u| self.user_json(u)).collect();
                Ok(json!({"members": page, "cache_ts": self.now_secs(), "response_metadata": {"next_cursor": next}}))
            }
            "users.info" => Ok(json!({"user": self.user_json(self.team_user(&t.team, arg(p, "user"))?)})),
            "conversations.info" => {
                let mut v = self.channel_json(&self.channels[self.visible(t, arg(p, "channel"))?], &t.user);
                if !flag(p, "include_num_members")
                    && let Some(o) = v.as_object_mut()
                {
                    o.remove("num_members");
                }
                Ok(json!({"channel": v}))
            }
            "conversations.list" => self.conversations_list(t, p),
            "conversations.history" | "conversations.replies" => self.history(t, p),
            "conversations.open" => {
                if let Some(channel) = arg(p, "channel") {
                    let c = self.visible(t, Some(channel))?;
                    return Ok(json!({"channel": self.channel_json(&self.channels[c], &t.user), "already_open": true}));
                }
                let users = list(p, "users");
                if users.is_empty() {
                    return Err(fail("users_list_not_supplied"));
                }
                if users.len() > 8 {
                    return Err(fail("too_many_users"));
                }
                let (c, existed) = self.open_dm(t, &users)?;
                let mut v = json!({"channel": self.channel_json(&self.channels[c], &t.user)});
                if existed {
                    v["already_open"] = json!(true);
                    v["no_op"] = json!(true);
                }
                Ok(v)
            }
            "conversations.rename" => self.rename(t, p),
            "conversations.invite" => self.invite(t, p),
            "conversations.kick" => {
                let c = self.visible(t, arg(p, "channel"))?;
                let user = self.team_user(&t.team, arg(p, "user"))?.id.clone();
                let channel = &mut self.channels[c];
                if user == t.user {
                    return Err(fail("cant_kick_self"));
                }
                if channel.general {
                    return Err(fail("cant_kick_from_general"));
                }
                if channel.im {
                    return Err(fail("method_not_supported_for_channel_type"));
                }
                if !channel.members.contains(&t.user) || !channel.members.contains(&user) {
                    return Err(fail("not_in_channel"));
                }
                channel.members.retain(|m| *m != user);
                Ok(json!({}))
            }
            "conversations.join" => {
                let c = self.visible(t, arg(p, "channel"))?;
                let channel = &mut self.channels[c];
                if channel.im {
                    return Err(fail("method_not_supported_for_channel_type"));
                }
                if channel.archived {
                    return Err(fail("is_archived"));
                }
                let already = channel.members.contains(&t.user);
                if !already {
                    channel.members.push(t.user.clone());
                }
                let mut v = json!({"channel": self.channel_json(&self.channels[c], &t.user)});
                if already {
                    v["warning"] = json!("already_in_channel");
                    v["response_metadata"] = json!({"warnings": ["already_in_channel"]});
                }
                Ok(v)
            }
            "chat.postMessage" => self.post_message(t, p),
            "chat.update" => {
                let (c, m) = self.message_of(t, p, "ts")?;
                if self.messages[m].user != t.user {
                    return Err(fail("cant_update_message"));
                }
                // What is left out stays: the text, and the blocks unless `[]` removes them.
                let text_given = arg(p, "text").is_some();
                let (text, blocks) = self.content(p)?;
                let edited = (t.user.clone(), self.next_ts());
                let message = &mut self.messages[m];
                if text_given {
                    message.text = text;
                }
                if let Some(blocks) = blocks {
                    message.blocks = Some(blocks).filter(|b| b.as_array().is_none_or(|b| !b.is_empty()));
                }
                message.edited = Some(edited);
                let m = &self.messages[m];
                Ok(json!({"channel": self.channels[c].id, "ts": m.ts, "text": m.text,
                    "message": self.message_json(m, true, &t.user)}))
            }
            "chat.delete" => {
                let (c, m) = self.message_of(t, p, "ts")?;
                let admin = t.kind == TokenKind::User && self.user(&t.user).admin;
                if self.messages[m].user != t.user && !admin {
                    return Err(fail("cant_delete_message"));
                }
                let removed = self.messages.remove(m);
                self.channels[c].pins.retain(|ts| *ts != removed.ts);
                Ok(json!({"channel": removed.channel, "ts": removed.ts}))
            }
            "chat.postEphemeral" => {
                let c = self.visible(t, arg(p, "channel"))?;
                let user = self.team_user(&t.team, arg(p, "user"))?.id.clone();
                if !self.channels[c].members.contains(&t.user) {
                    return Err(fail("not_in_channel"));
                }
                if !self.channels[c].members.contains(&user) {
                    return Err(fail("user_not_in_channel"));
                }
                let (_, blocks) = self.content(p)?;
                let mut params = Value::Object(p.clone());
                if let Some(blocks) = blocks {
                    params["blocks"] = blocks;
                }
                let ts = self.next_ts();
                let channel = self.channels[c].id.clone();
                self.ephemerals.push(Ephemeral { channel, user, params, ts: ts.clone() });
                Ok(json!({"message_ts": ts}))
            }
            "chat.getPermalink" => {
                let (c, m) = self.message_of(t, p, "message_ts")?;
                let (channel, ts) = (&self.channels[c].id, self.messages[m].ts.replace('.', ""));
                let link = format!("https://{}.slack.com/archives/{channel}/p{ts}", self.team(&t.team).domain);
                Ok(json!({"channel": channel, "permalink": link}))
            }
            "reactions.add" | "reactions.remove" => {
                let (_, m) = self.message_of(t, p, "timestamp")?;
                let name = arg(p, "name").unwrap_or_default();
                if !known_emoji(&name) {
                    return Err(fail("invalid_name"));
                }
                let changed = if method == "reactions.add" {
                    self.add_reaction(m, &name, &t.user)
                } else {
                    self.remove_reaction(m, &name, &t.user)
                };
                match (changed, method) {
                    (true, _) => Ok(json!({})),
                    (false, "reactions.add") => Err(fail("already_reacted")),
                    (false, _) => Err(fail("no_reaction")),
                }
            }
            "reactions.get" => {
                let (c, m) = self.message_of(t, p, "timestamp")?;
                let message = self.message_json(&self.messages[m], flag(p, "full"), &t.user);
                Ok(json!({"type": "message", "channel": self.channels[c].id, "message": message}))
            }
            "pins.add" | "pins.remove" => {
                let (c, m) = self.message_of(t, p, "timestamp")?;
                let ts = self.messages[m].ts.clone();
                let channel = &mut self.channels[c];
                if !channel.members.contains(&t.user) {
                    return Err(fail("not_in_channel"));
                }
                let pinned = channel.pins.contains(&ts);
                match (method, pinned) {
                    ("pins.add", true) => return Err(fail("already_pinned")),
                    ("pins.remove", false) => return Err(fail("no_pin")),
                    ("pins.add", false) => channel.pins.push(ts.clone()),
                    _ => channel.pins.retain(|p| *p != ts),
                }
                // Slack tells of a pin as done by the token's user, whoever asked for it.
                let (channel, user) = (channel.id.clone(), t.user.clone());
                self.announce_pin(&channel, &user, &ts, method == "pins.add");
                Ok(json!({}))
            }
            "views.open" => self.open_view(t, p),
            _ => Err(fail("unknown_method")),
        }
    }

    fn add_reaction(&mut self, m: usize, name: &str, user: &str) -> bool {
        let reactions = &mut self.messages[m].reactions;
        match reactions.iter_mut().find(|(n, _)| n == name) {
            Some((_, users)) if users.iter().any(|u| u == user) => false,
            Some((_, users)) => {
                users.push(user.into());
                true
            }
            None => {
                reactions.push((name.into(), vec![user.into()]));
                true
            }
        }
    }

    fn remove_reaction(&mut self, m: usize, name: &str, user: &str) -> bool {
        let reactions = &mut self.messages[m].reactions;
        let Some(i) = reactions.iter().position(|(n, users)| n == name && users.iter().any(|u| u == user)) else {
            return false;
        };
        reactions[i].1.retain(|u| u != user);
        if reactions[i].1.is_empty() {
            reactions.remove(i);
        }
        true
    }

    /// `conversations.history`: a conversation's top-level messages, newest first (`limit`,
    /// 100 by default, at most 999); a DM's need `im:history`; the bot reads only where it is
    /// a member; metadata only with `include_all_metadata`.
    fn history(&self, t: &Token, p: &Map<String, Value>) -> Answer {
        let c = self.visible(t, arg(p, "channel"))?;
        let channel = &self.channels[c];
        if channel.im && !t.scopes.iter().any(|s| s == "im:history") {
            let provided = t.scopes.join(",");
            return Err(json!({"ok": false, "error": "missing_scope", "needed": "im:history", "provided": provided}));
        }
        if t.kind == TokenKind::Bot && !channel.members.contains(&t.user) {
            return Err(fail("not_in_channel"));
        }
        let limit = arg(p, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 999);
        let metadata = flag(p, "include_all_metadata");
        // conversations.replies (`ts`): the thread's parent and replies, oldest first; else the
        // channel's top-level messages, newest first.
        let thread = arg(p, "ts");
        let all: Vec<&Message> = match &thread {
            Some(ts) => self
                .messages
                .iter()
                .filter(|m| m.channel == channel.id && (m.ts == *ts || m.thread_ts.as_deref() == Some(ts.as_str())))
                .collect(),
            None => self
                .messages
                .iter()
                .rev()
                .filter(|m| m.channel == channel.id && m.thread_ts.as_ref().is_none_or(|t| *t == m.ts))
                .collect(),
        };
        if thread.is_some() && all.is_empty() {
            return Err(fail("thread_not_found"));
        }
        let shown: Vec<Value> = all
            .iter()
            .take(limit)
            .map(|m| {
                let mut v = self.message_json(m, false, &t.user);
                if metadata && let Some(md) = &m.metadata {
                    v["metadata"] = md.clone();
                }
                v
            })
            .collect();
        Ok(json!({"messages": shown, "has_more": all.len() > limit, "pin_count": channel.pins.len(),
            "response_metadata": {"next_cursor": ""}}))
    }

    fn conversations_list(&self, t: &Token, p: &Map<String, Value>) -> Answer {
        let types = list(p, "types");
        let types: Vec<&str> =
            if types.is_empty() { vec!["public_channel"] } else { types.iter().map(String::as_str).collect() };
        if let Some(bad) = types.iter().find(|ty| !["public_channel", "private_channel", "mpim", "im"].contains(ty)) {
            return Err(invalid("invalid_types", vec![format!("[ERROR] unknown type: {bad}")]));
        }
        let shown: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| c.team == t.team && !(flag(p, "exclude_archived") && c.archived))
            .filter(|c| {
                if c.im {
                    types.contains(&"im") && c.members.contains(&t.user)
                } else {
                    types.contains(&"public_channel")
                }
            })
            .collect();
        let (start, end, next) = page(shown.len(), p, 100)?;
        let page: Vec<Value> = shown[start..end].iter().map(|c| self.channel_json(c, &t.user)).collect();
        Ok(json!({"channels": page, "response_metadata": {"next_cursor": next}}))
    }

    fn rename(&mut self, t: &Token, p: &Map<String, Value>) -> Answer {
        let c = self.visible(t, arg(p, "channel"))?;
        let admin = t.kind == TokenKind::User && self.user(&t.user).admin;
        let channel = &self.channels[c];
        if channel.im {
            return Err(fail("method_not_supported_for_channel_type"));
        }
        if !admin && !channel.members.contains(&t.user) {
            return Err(fail("not_in_channel"));
        }
        if !admin && channel.creator != t.user {
            return Err(fail("not_authorized"));
        }
        let name = arg(p, "name").unwrap_or_default();
        if name.is_empty() {
            return Err(fail("invalid_name_required"));
        }
        if name.chars().count() > 80 {
            return Err(fail("invalid_name_maxlength"));
        }
        if !name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '_') {
            return Err(fail("invalid_name_specials"));
        }
        if name.chars().all(|ch| ch == '-' || ch == '_') {
            return Err(fail("invalid_name_punctuation"));
        }
        if self.channels.iter().any(|o| o.team == t.team && o.id != channel.id && o.name == name) {
            return Err(fail("name_taken"));
        }
        let channel = &mut self.channels[c];
        if channel.name != name {
            let old = std::mem::replace(&mut channel.name, name.clone());
            channel.previous_names.insert(0, old.clone());
            // Slack tells the app of every rename, its own API calls' too, as the token's
            // user's doing.
            let id = channel.id.clone();
            self.announce_rename(&id, &t.user, &old, &name);
        }
        Ok(json!({"channel": self.channel_json(&self.channels[c], &t.user)}))
    }

    /// The events of a rename: `channel_rename`, then the `channel_name` message Slack posts.
    /// The `channel_rename` event's id.
    fn announce_rename(&mut self, channel: &str, user: &str, old: &str, new_name: &str) -> String {
        let (team, created) = {
            let c = self.channel(channel);
            (c.team.clone(), c.created)
        };
        let renamed = json!({"type": "channel_rename", "channel": {"id": channel, "name": new_name,
            "name_normalized": new_name, "created": created, "is_channel": true, "is_mpim": false}});
        let event_id = self.push(&team, renamed);
        let ts = self.next_ts();
        let by = self.user(user).name.clone();
        let text = format!("<@{user}|{by}> has renamed the channel from \"{old}\" to \"{new_name}\"");
        let extra = Map::from_iter([("old_name".to_string(), json!(old)), ("name".to_string(), json!(new_name))]);
        self.messages.push(Message {
            channel: channel.into(),
            ts: ts.clone(),
            user: user.into(),
            text: text.clone(),
            subtype: Some("channel_name".into()),
            extra,
            ..Message::default()
        });
        self.push(
            &team,
            json!({"type": "message", "subtype": "channel_name", "ts": ts, "user": user,
            "text": text, "old_name": old, "name": new_name, "channel": channel, "event_ts": ts,
            "channel_type": "channel"}),
        );
        event_id
    }

    fn invite(&mut self, t: &Token, p: &Map<String, Value>) -> Answer {
        let c = self.visible(t, arg(p, "channel"))?;
        let users = list(p, "users");
        if users.is_empty() {
            return Err(fail("no_user"));
        }
        let channel = &self.channels[c];
        if channel.im {
            return Err(fail("method_not_supported_for_channel_type"));
        }
        if channel.archived {
            return Err(fail("is_archived"));
        }
        if !channel.members.contains(&t.user) {
            return Err(fail("not_in_channel"));
        }
        for u in &users {
            let user = self.team_user(&t.team, Some(u.clone()))?;
            if user.id == t.user {
                return Err(fail("cant_invite_self"));
            }
            if user.deleted {
                return Err(fail("cant_invite"));
            }
            if channel.members.contains(u) {
                return Err(fail("already_in_channel"));
            }
        }
        self.channels[c].members.extend(users.iter().cloned());
        // Slack tells the app of every join, the ones its own calls make too.
        let (id, team) = (self.channels[c].id.clone(), self.channels[c].team.clone());
        for u in &users {
            self.announce_join(&team, &id, u, Some(&t.user));
        }
        Ok(json!({"channel": self.channel_json(&self.channels[c], &t.user)}))
    }

    /// `member_joined_channel` for `user` in `channel` (with who invited them, if anyone).
    fn announce_join(&mut self, team: &str, channel: &str, user: &str, inviter: Option<&str>) -> String {
        let mut event = json!({"type": "member_joined_channel", "user": user, "channel": channel,
            "channel_type": "C", "team": team, "event_ts": self.next_ts()});
        if let Some(inviter) = inviter {
            event["inviter"] = json!(inviter);
        }
        self.push(team, event)
    }

    fn post_message(&mut self, t: &Token, p: &Map<String, Value>) -> Answer {
        let target = arg(p, "channel");
        let c = match target.as_deref() {
            // A user's id: the app's DM with them.
            Some(u) if u.starts_with('U') || u.starts_with('W') => self.open_dm(t, &[u.to_string()])?.0,
            // A public channel's name (`#general`): chat.postMessage alone takes names.
            Some(name) if name.starts_with('#') => self
                .channels
                .iter()
                .position(|c| c.team == t.team && !c.im && c.name == name[1..])
                .ok_or_else(|| fail("channel_not_found"))?,
            _ => self.visible(t, target)?,
        };
        if self.channels[c].archived {
            return Err(fail("is_archived"));
        }
        if !self.channels[c].members.contains(&t.user) {
            return Err(fail("not_in_channel"));
        }
        let (text, blocks) = self.content(p)?;
        let metadata = match p.get("metadata") {
            None | Some(Value::Null) => None,
            Some(m) => {
                let event_type = m.get("event_type").and_then(Value::as_str).unwrap_or_default();
                let named =
                    !event_type.is_empty() && event_type.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !named || !m.get("event_payload").is_some_and(Value::is_object) {
                    return Err(fail("invalid_metadata_format"));
                }
                Some(m.clone())
            }
        };
        let ts = self.next_ts();
        let bot_id = self.user(&t.user).bot_id.clone();
        let message = Message {
            channel: self.channels[c].id.clone(),
            ts: ts.clone(),
            user: t.user.clone(),
            bot_id,
            text,
            blocks,
            thread_ts: arg(p, "thread_ts"),
            metadata,
            ..Message::default()
        };
        let v = json!({"channel": message.channel, "ts": ts, "message": self.message_json(&message, true, &t.user)});
        self.messages.push(message);
        Ok(v)
    }

    fn open_view(&mut self, t: &Token, p: &Map<String, Value>) -> Answer {
        let missing =
            |field: &str| invalid("invalid_arguments", vec![format!("[ERROR] missing required field: {field}")]);
        let trigger_id = arg(p, "trigger_id").ok_or_else(|| missing("trigger_id"))?;
        let mut view = p.get("view").filter(|v| v.is_object()).cloned().ok_or_else(|| missing("view"))?;
        let trigger =
            self.triggers.get(&trigger_id).filter(|tr| tr.team == t.team).ok_or_else(|| fail("invalid_trigger_id"))?;
        if trigger.used {
            return Err(fail("exchanged_trigger_id"));
        }
        if Instant::now().duration_since(trigger.created) > TRIGGER_LIFETIME {
            return Err(fail("expired_trigger_id"));
        }
        let mut errors = Vec::new();
        if view["type"] != "modal" {
            errors.push("[ERROR] must be one of: modal [json-pointer:/view/type]".to_string());
        }
        for key in ["title", "submit", "close"] {
            let text = view[key]["text"].as_str().map(|s| s.chars().count());
            if text.is_some_and(|n| n > 24) {
                errors.push(format!("[ERROR] must be less than 25 characters [json-pointer:/view/{key}/text]"));
            }
            if key == "title" && text.is_none() {
                errors.push("[ERROR] missing required field: title [json-pointer:/view]".to_string());
            }
        }
        if view["private_metadata"].as_str().is_some_and(|m| m.len() > 3000) {
            errors.push("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]".to_string());
        }
        if let Err(e) = check_blocks(&view["blocks"], 100) {
            errors.extend(e.into_iter().map(|m| m.replace("json-pointer:/blocks", "json-pointer:/view/blocks")));
        }
        if !errors.is_empty() {
            return Err(invalid("invalid_arguments", errors));
        }
        if let Some(tr) = self.triggers.get_mut(&trigger_id) {
            tr.used = true;
        }
        let n = self.next_id();
        let id = format!("V0{n:08}");
        let bot_id = self.user(&self.team(&t.team).bot_user).bot_id.clone();
        self.stamp_blocks(&mut view["blocks"]);
        let defaults = [
            ("id", json!(id)),
            ("team_id", json!(t.team)),
            ("state", json!({"values": {}})),
            ("hash", json!(format!("{}.{:08x}", self.now_secs(), n))),
            ("private_metadata", json!("")),
            ("callback_id", json!("")),
            ("external_id", json!("")),
            ("clear_on_close", json!(false)),
            ("notify_on_close", json!(false)),
            ("previous_view_id", Value::Null),
            ("root_view_id", json!(id)),
            ("app_id", json!(APP_ID)),
            ("app_installed_team_id", json!(t.team)),
            ("bot_id", json!(bot_id)),
        ];
        for (key, value) in defaults {
            if view.get(key).is_none() || ["id", "team_id", "state", "hash"].contains(&key) {
                view[key] = value;
            }
        }
        self.views.push(view.clone());
        Ok(json!({"view": view}))
    }

    fn client_credentials(&self, p: &Map<String, Value>) -> Result<(), Value> {
        if arg(p, "client_id").as_deref() != Some(CLIENT_ID) {
            return Err(fail("invalid_client_id"));
        }
        if arg(p, "client_secret").as_deref() != Some(CLIENT_SECRET) {
            return Err(fail("bad_client_secret"));
        }
        Ok(())
    }

    fn oauth_access(&mut self, p: &Map<String, Value>) -> Answer {
        self.client_credentials(p)?;
        let code = arg(p, "code").unwrap_or_default();
        let installer = match self.codes.get_mut(&code) {
            Some((installer, created, used)) if !*used && Instant::now().duration_since(*created) <= CODE_LIFETIME => {
                *used = true;
                installer.clone()
            }
            _ => return Err(fail("invalid_code")),
        };
        let team = self.user(&installer).team.clone();
        let (domain, bot_user) = (self.team(&team).domain.clone(), self.team(&team).bot_user.clone());
        let n = self.next_id();
        let mut token_of = |user: &str, kind: TokenKind, scopes: &str, fresh: String| -> String {
            if let Some(t) =
                self.tokens.iter().find(|t| t.team == team && t.user == user && t.kind == kind && !t.revoked)
            {
                return t.token.clone();
            }
            let scopes = scopes.split(',').map(str::to_string).collect();
            self.tokens.push(Token {
                token: fresh.clone(),
                team: team.clone(),
                user: user.into(),
                kind,
                scopes,
                revoked: false,
            });
            fresh
        };
        let bot_token = token_of(&bot_user, TokenKind::Bot, BOT_SCOPES, format!("xoxb-{domain}-bot-{n}"));
        let user_token = token_of(&installer, TokenKind::User, USER_SCOPES, format!("xoxp-{domain}-{installer}-{n}"));
        Ok(json!({
            "access_token": bot_token, "token_type": "bot", "scope": BOT_SCOPES,
            "bot_user_id": bot_user, "app_id": APP_ID,
            "team": {"id": team, "name": self.team(&team).name}, "enterprise": null, "is_enterprise_install": false,
            "authed_user": {"id": installer, "scope": USER_SCOPES, "access_token": user_token, "token_type": "user"},
        }))
    }

    /// An `event_callback` around `event` for `team`: its event id and the body.
    fn callback(&mut self, team: &str, mut event: Value) -> (String, Value) {
        let n = self.next_id();
        let event_id = format!("Ev0{n:07X}");
        if event.get("event_ts").is_none() {
            event["event_ts"] = json!(self.next_ts());
        }
        let bot = self.team(team).bot_user.clone();
        let context =
            format!("4-{}", BASE64.encode(format!("{{\"et\":\"event\",\"tid\":\"{team}\",\"eid\":\"{event_id}\"}}")));
        let body = json!({
            "token": VERIFICATION_TOKEN, "team_id": team, "context_team_id": team, "context_enterprise_id": null,
            "api_app_id": APP_ID, "event": event, "type": "event_callback", "event_id": event_id,
            "event_time": self.now_secs(),
            "authorizations": [{"enterprise_id": null, "team_id": team, "user_id": bot, "is_bot": true,
                "is_enterprise_install": false}],
            "is_ext_shared_channel": false, "event_context": context,
        });
        (event_id, body)
    }

    /// `pin_added` or `pin_removed` of the message `ts` in `channel`, by `user`; its event id.
    fn announce_pin(&mut self, channel: &str, user: &str, ts: &str, added: bool) -> String {
        let team = self.channel(channel).team.clone();
        let message = self.messages.iter().find(|m| m.channel == channel && m.ts == ts).cloned().unwrap_or_default();
        let at = self.next_ts();
        let event = json!({"type": if added { "pin_added" } else { "pin_removed" }, "user": user,
            "channel_id": channel, "event_ts": at,
            "item": {"type": "message", "channel": channel, "created": self.now_secs(), "created_by": user,
                "message": {"type": "message", "user": message.user, "text": message.text, "ts": ts,
                    "permalink": format!("https://tidepool.slack.com/archives/{channel}/p{}", ts.replace('.', ""))}}});
        self.push(&team, event)
    }

    fn push(&mut self, team: &str, event: Value) -> String {
        let (event_id, body) = self.callback(team, event);
        self.deliver("events_api", body, false);
        event_id
    }

    fn deliver(&mut self, kind: &'static str, payload: Value, accepts_response_payload: bool) -> String {
        let id = uuid(self.next_id());
        self.envelopes.push(Envelope {
            id: id.clone(),
            kind,
            payload,
            accepts_response_payload,
            retry_attempt: 0,
            retry_reason: "",
            delivered: false,
            acked: false,
        });
        self.send_envelope(self.envelopes.len() - 1);
        id
    }

    /// Sends an envelope to the newest live connection, or queues it for the next one.
    fn send_envelope(&mut self, i: usize) {
        let frame = self.envelopes[i].frame();
        loop {
            let Some(conn) = self.connections.iter().rev().find(|c| !c.draining) else {
                self.pending.push_back(i);
                return;
            };
            if conn.tx.send(Outgoing::Frame(frame.clone())).is_ok() {
                self.envelopes[i].delivered = true;
                return;
            }
            let gone = conn.id;
            self.connections.retain(|c| c.id != gone);
        }
    }

    fn open_connection(&mut self, tx: mpsc::UnboundedSender<Outgoing>) -> usize {
        self.opened += 1;
        let hello = json!({
            "type": "hello", "num_connections": self.connections.len() + 1,
            "debug_info": {"host": "applink-fake", "build_number": 1, "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        });
        let _ = tx.send(Outgoing::Frame(hello.to_string()));
        self.connections.push(Connection { id: self.opened, tx, draining: false });
        for i in std::mem::take(&mut self.pending) {
            self.send_envelope(i);
        }
        self.opened
    }

    fn ack(&mut self, text: &str) {
        let Ok(ack) = serde_json::from_str::<Value>(text) else { return };
        let Some(id) = ack["envelope_id"].as_str() else { return };
        if let Some(e) = self.envelopes.iter_mut().find(|e| e.id == id) {
            e.acked = true;
        }
        self.acks.push(ack);
    }

    fn respond(&mut self, n: &str, body: &[u8]) -> (StatusCode, Value) {
        let Some((created, uses)) = n.parse::<u64>().ok().and_then(|n| self.response_urls.get_mut(&n)) else {
            return (StatusCode::NOT_FOUND, fail("invalid_url"));
        };
        if Instant::now().duration_since(*created) > RESPONSE_URL_LIFETIME {
            return (StatusCode::NOT_FOUND, fail("expired_url"));
        }
        if *uses >= RESPONSE_URL_POSTS {
            return (StatusCode::NOT_FOUND, fail("used_url"));
        }
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
            return (StatusCode::BAD_REQUEST, fail("invalid_payload"));
        };
        if !["text", "blocks", "attachments", "delete_original"].iter().any(|k| body.contains_key(*k)) {
            return (StatusCode::BAD_REQUEST, fail("no_text"));
        }
        *uses += 1;
        self.responses.push((n.to_string(), Value::Object(body)));
        (StatusCode::OK, json!({"ok": true}))
    }

    fn user_info(&self, user: &str) -> Value {
        let u = self.user(user);
        json!({"id": u.id, "username": u.name, "name": u.name, "team_id": u.team})
    }

    fn team_info(&self, team: &str) -> Value {
        json!({"id": team, "domain": self.team(team).domain})
    }
}

/// A page of `total` items from the request's `cursor`, `limit` items long (0: all); its
/// bounds and the next cursor ("" at the end).
fn page(total: usize, p: &Map<String, Value>, default: usize) -> Result<(usize, usize, String), Value> {
    let start = match arg(p, "cursor") {
        None => 0,
        Some(cursor) => BASE64
            .decode(cursor)
            .ok()
            .and_then(|c| String::from_utf8(c).ok())
            .and_then(|c| c.strip_prefix("offset:").and_then(|n| n.parse().ok()))
            .filter(|n| *n <= total)
            .ok_or_else(|| fail("invalid_cursor"))?,
    };
    let limit = arg(p, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(default).min(1000);
    let end = if limit == 0 { total } else { (start + limit).min(total) };
    let next = if end < total { BASE64.encode(format!("offset:{end}")) } else { String::new() };
    Ok((start, end, next))
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Told after every change: a request, an ack, a connection, a delivery.
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Server(JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The fake; clones share it. Dropping the last clone stops the server.
#[derive(Clone, Debug)]
pub struct FakeSlack {
    shared: Arc<Shared>,
    base: String,
    _server: Arc<Server>,
}

impl FakeSlack {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start() -> FakeSlack {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Slack");
        let base = format!("http://{}", listener.local_addr().expect("the fake's address"));
        let shared = Arc::new(Shared { state: Mutex::new(State::new(base.clone())), changed: Notify::new() });
        let app = axum::Router::new().fallback(route).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { shared, base, _server: Arc::new(Server(server)) }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    /// `http://127.0.0.1:PORT/api/`: a method's URL is this and its name. (slack-morphism
    /// joins its API URL and the method with a `/`; the fake takes `/api//{method}` too.)
    pub fn api_url(&self) -> String {
        format!("{}/api/", self.base)
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.shared.lock())
    }

    /// Changes the state (and wakes the waits).
    pub fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.shared.lock());
        self.shared.changed.notify_waiters();
        out
    }

    /// Waits until `f` finds something in the state, looking again after every change.
    pub async fn until<T>(&self, f: impl Fn(&State) -> Option<T>) -> T {
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let found = self.with(&f);
            if let Some(found) = found {
                return found;
            }
            changed.await;
        }
    }

    /// Every Web API request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    pub fn requests_of(&self, method: &str) -> Vec<Recorded> {
        self.with(|s| s.requests.iter().filter(|r| r.method == method).cloned().collect())
    }

    /// Waits until `count` requests of `method` came; all of them.
    pub async fn wait_for(&self, method: &str, count: usize) -> Vec<Recorded> {
        self.until(|s| {
            let of: Vec<Recorded> = s.requests.iter().filter(|r| r.method == method).cloned().collect();
            (of.len() >= count).then_some(of)
        })
        .await
    }

    /// Slack's rate limits on (the default) or off.
    pub fn set_rate_limits(&self, on: bool) {
        self.change(|s| s.rate_limits = on);
    }

    /// The next request of `method` gets `failure` (several queue up).
    pub fn fail_next(&self, method: &str, failure: Failure) {
        self.change(|s| s.failures.entry(method.to_string()).or_default().push_back(failure));
    }

    /// Replaces a token's scopes.
    pub fn set_scopes(&self, token: &str, scopes: &[&str]) {
        self.change(|s| {
            let t = s.tokens.iter_mut().find(|t| t.token == token).unwrap_or_else(|| panic!("no token {token}"));
            t.scopes = scopes.iter().map(|s| s.to_string()).collect();
        });
    }

    /// A public channel of `creator`'s workspace.
    pub fn add_channel(&self, id: &str, name: &str, creator: &str, members: &[&str]) {
        self.change(|s| s.add_channel(id, name, creator, members));
    }

    /// A channel's messages as the Web API shows them, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        self.with(|s| s.messages.iter().filter(|m| m.channel == channel).map(|m| s.message_json(m, true, "")).collect())
    }

    /// A message as `reactions.get` with `full=true` shows it.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.with(|s| s.msg(channel, ts).map(|m| s.message_json(&s.messages[m], true, "")))
    }

    pub fn channel_name(&self, channel: &str) -> String {
        self.with(|s| s.channel(channel).name.clone())
    }

    pub fn channel_members(&self, channel: &str) -> Vec<String> {
        self.with(|s| s.channel(channel).members.clone())
    }

    /// The timestamps of a channel's pinned messages.
    pub fn pins(&self, channel: &str) -> Vec<String> {
        self.with(|s| s.channel(channel).pins.clone())
    }

    /// Every ephemeral message: its channel, its user, and the arguments it was posted with.
    pub fn ephemerals(&self) -> Vec<(String, String, Value)> {
        self.with(|s| s.ephemerals.iter().map(|e| (e.channel.clone(), e.user.clone(), e.params.clone())).collect())
    }

    /// The views opened, as `views.open` answered them.
    pub fn views(&self) -> Vec<Value> {
        self.with(|s| s.views.clone())
    }

    /// An admin removes the app from `team` in Slack's settings: its tokens stop working and
    /// `app_uninstalled` is delivered, as Slack documents. The event's id.
    pub fn remove_app(&self, team: &str) -> String {
        self.change(|s| {
            for token in s.tokens.iter_mut().filter(|t| t.team == team && t.kind != TokenKind::App) {
                token.revoked = true;
            }
            s.uninstalled.push(team.to_string());
            s.push(team, json!({"type": "app_uninstalled"}))
        })
    }

    /// Whether `token` was revoked (`auth.revoke`, an uninstall).
    pub fn revoked(&self, token: &str) -> bool {
        self.with(|s| s.tokens.iter().any(|t| t.token == token && t.revoked))
    }

    /// The workspaces uninstalled through `apps.uninstall`.
    pub fn uninstalled(&self) -> Vec<String> {
        self.with(|s| s.uninstalled.clone())
    }

    /// The code Slack's OAuth redirect carries after `installer` approved the app in their
    /// workspace: good once, for 10 minutes, in `oauth.v2.access`.
    pub fn authorize_code(&self, installer: &str) -> String {
        self.change(|s| {
            assert!(s.users.iter().any(|u| u.id == installer), "authorize_code: no user {installer}");
            let n = s.next_id();
            let code = format!("{EPOCH_SECS}.{n}.{:016x}", n.wrapping_mul(0x2545_f491_4f6c_dd1d));
            s.codes.insert(code.clone(), (installer.to_string(), Instant::now(), false));
            code
        })
    }

    fn reaction(&self, user: &str, channel: &str, ts: &str, name: &str, added: bool) -> String {
        self.change(|s| {
            let m = s.msg(channel, ts).unwrap_or_else(|| panic!("no message {ts} in {channel}"));
            if added {
                s.add_reaction(m, name, user);
            } else {
                s.remove_reaction(m, name, user);
            }
            let event = json!({
                "type": if added { "reaction_added" } else { "reaction_removed" }, "user": user, "reaction": name,
                "item_user": s.messages[m].user, "item": {"type": "message", "channel": channel, "ts": ts},
                "event_ts": s.next_ts(),
            });
            let team = s.channel(channel).team.clone();
            s.push(&team, event)
        })
    }

    /// `user` adds (or takes back) reaction `name` on a message with no event delivered, as
    /// happens while nobody is connected to Socket Mode: only a read of the message shows it.
    pub fn react_unseen(&self, user: &str, channel: &str, ts: &str, name: &str, added: bool) {
        self.change(|s| {
            let m = s.msg(channel, ts).expect("no such message");
            if added {
                s.add_reaction(m, name, user);
            } else {
                s.remove_reaction(m, name, user);
            }
        });
    }

    /// `user` adds reaction `name` to a message: the state, and `reaction_added`. Its event id.
    pub async fn react(&self, user: &str, channel: &str, ts: &str, name: &str) -> String {
        self.reaction(user, channel, ts, name, true)
    }

    /// `user` takes reaction `name` back: `reaction_removed`. Its event id.
    pub async fn unreact(&self, user: &str, channel: &str, ts: &str, name: &str) -> String {
        self.reaction(user, channel, ts, name, false)
    }

    /// `user` posts `text` in `channel`: the message and its `message` event; (ts, event id).
    pub async fn post_as(&self, user: &str, channel: &str, text: &str) -> (String, String) {
        self.change(|s| {
            let c = s.channel(channel).clone();
            let ts = s.next_ts();
            s.messages.push(Message {
                channel: channel.into(),
                ts: ts.clone(),
                user: user.into(),
                text: text.into(),
                ..Message::default()
            });
            let client_msg_id = uuid(s.next_id());
            let event = json!({"type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
                "event_ts": ts, "channel_type": if c.im { "im" } else { "channel" }, "team": c.team,
                "client_msg_id": client_msg_id});
            let event_id = s.push(&c.team, event);
            (ts, event_id)
        })
    }

    /// `user` renames `channel` in Slack's client: `channel_rename`, then the `channel_name`
    /// message Slack posts and sends as well. The `channel_rename` event's id.
    pub async fn rename_as(&self, user: &str, channel: &str, new_name: &str) -> String {
        self.change(|s| {
            let c = s.channel_mut(channel);
            let old = std::mem::replace(&mut c.name, new_name.to_string());
            c.previous_names.insert(0, old.clone());
            s.announce_rename(channel, user, &old, new_name)
        })
    }

    /// `user` pins the message `ts` in `channel`: the pin, and `pin_added`. Its event id.
    pub async fn pin_as(&self, user: &str, channel: &str, ts: &str) -> String {
        self.change(|s| {
            let c = s.channel_mut(channel);
            if !c.pins.iter().any(|p| p == ts) {
                c.pins.push(ts.to_string());
            }
            s.announce_pin(channel, user, ts, true)
        })
    }

    /// `user` joins `channel` by themselves: the membership, and `member_joined_channel`. Its
    /// event id.
    pub async fn join_as(&self, user: &str, channel: &str) -> String {
        self.change(|s| {
            let c = s.channel_mut(channel);
            if !c.members.iter().any(|m| m == user) {
                c.members.push(user.to_string());
            }
            let team = c.team.clone();
            s.announce_join(&team, channel, user, None)
        })
    }

    /// Any event of [`TEAM`] in an `event_callback`; its event id.
    pub async fn push_event(&self, event: Value) -> String {
        self.change(|s| s.push(TEAM, event))
    }

    /// `user` runs `command` (`/polity`) in `channel`: a `slash_commands` envelope with the
    /// form fields Slack sends. Its envelope id.
    pub async fn slash(&self, user: &str, channel: &str, command: &str, text: &str) -> String {
        self.change(|s| {
            let (u, c) = (s.user(user).clone(), s.channel(channel).clone());
            let payload = json!({
                "token": VERIFICATION_TOKEN, "team_id": u.team, "team_domain": s.team(&u.team).domain,
                "channel_id": channel, "channel_name": if c.im { "directmessage" } else { c.name.as_str() },
                "user_id": user, "user_name": u.name, "command": command, "text": text, "api_app_id": APP_ID,
                "is_enterprise_install": "false", "response_url": s.new_response_url(),
                "trigger_id": s.new_trigger(&u.team),
            });
            s.deliver("slash_commands", payload, true)
        })
    }

    /// The body Slack posts to an app's slash-command URL in HTTP mode when `user` runs
    /// `command` in `channel` (`application/x-www-form-urlencoded`, the fields as Slack sends
    /// them), with a fresh `response_url` and trigger.
    pub fn slash_form(&self, user: &str, channel: &str, command: &str, text: &str) -> Vec<u8> {
        self.change(|s| {
            let (u, c) = (s.user(user).clone(), s.channel(channel).clone());
            let (response_url, trigger) = (s.new_response_url(), s.new_trigger(&u.team));
            let domain = s.team(&u.team).domain.clone();
            form_urlencoded::Serializer::new(String::new())
                .append_pair("token", VERIFICATION_TOKEN)
                .append_pair("team_id", &u.team)
                .append_pair("team_domain", &domain)
                .append_pair("channel_id", channel)
                .append_pair("channel_name", &c.name)
                .append_pair("user_id", user)
                .append_pair("user_name", &u.name)
                .append_pair("command", command)
                .append_pair("text", text)
                .append_pair("api_app_id", APP_ID)
                .append_pair("is_enterprise_install", "false")
                .append_pair("response_url", &response_url)
                .append_pair("trigger_id", &trigger)
                .finish()
                .into_bytes()
        })
    }

    /// `user` presses the element `action_id` (a button) of the message `message_ts` (or of an
    /// ephemeral message of theirs): a `block_actions` envelope. Its envelope id.
    pub async fn press(&self, user: &str, channel: &str, message_ts: &str, action_id: &str, value: &str) -> String {
        self.change(|s| {
            let payload = s.press_payload(user, channel, message_ts, action_id, value);
            s.deliver("interactive", payload, false)
        })
    }

    /// The body Slack posts to an app's interactivity URL in HTTP mode when `user` presses
    /// `action_id` of `message_ts` (`payload=` and the `block_actions` JSON, form-encoded).
    pub fn press_form(&self, user: &str, channel: &str, message_ts: &str, action_id: &str, value: &str) -> Vec<u8> {
        self.change(|s| {
            let payload = s.press_payload(user, channel, message_ts, action_id, value);
            form_urlencoded::Serializer::new(String::new())
                .append_pair("payload", &payload.to_string())
                .finish()
                .into_bytes()
        })
    }
}

impl State {
    /// A `block_actions` payload: `user` pressed `action_id` of `message_ts`.
    fn press_payload(&mut self, user: &str, channel: &str, message_ts: &str, action_id: &str, value: &str) -> Value {
        let s = self;
        let (u, c) = (s.user_info(user), s.channel(channel).clone());
        let message = s.msg(channel, message_ts).map(|m| s.message_json(&s.messages[m], true, user));
        let blocks = match &message {
            Some(m) => m["blocks"].clone(),
            None => s
                .ephemerals
                .iter()
                .find(|e| e.channel == channel && e.ts == message_ts && e.user == user)
                .map(|e| e.params["blocks"].clone())
                .unwrap_or_else(|| panic!("press: no message {message_ts} in {channel} that {user} sees")),
        };
        let (block_id, element) =
            find_action(&blocks, action_id).unwrap_or_else(|| panic!("press: no element {action_id} in {message_ts}"));
        let action = json!({"action_id": action_id, "block_id": block_id, "text": element["text"], "value": value,
                "type": element["type"].as_str().unwrap_or("button"), "action_ts": s.next_ts()});
        let mut payload = json!({
            "type": "block_actions", "user": u, "api_app_id": APP_ID, "token": VERIFICATION_TOKEN,
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                "is_ephemeral": message.is_none()},
            "trigger_id": s.new_trigger(&c.team), "team": s.team_info(&c.team), "enterprise": null,
            "is_enterprise_install": false, "channel": {"id": channel, "name": c.name},
            "state": {"values": {}}, "response_url": s.new_response_url(), "actions": [action],
        });
        if let Some(message) = message {
            payload["message"] = message;
        }
        payload
    }
}

impl FakeSlack {
    /// `user` submits the view opened as `view_id_or_callback` (its id or `callback_id`) with
    /// `values` as its `state.values`: a `view_submission` envelope. Its envelope id.
    pub async fn submit_view(&self, user: &str, view_id_or_callback: &str, values: Value) -> String {
        self.change(|s| {
            let mut view = s
                .views
                .iter()
                .rev()
                .find(|v| v["id"] == view_id_or_callback || v["callback_id"] == view_id_or_callback)
                .cloned()
                .unwrap_or_else(|| panic!("submit_view: no view {view_id_or_callback} was opened"));
            view["state"] = json!({"values": values});
            let team = s.user(user).team.clone();
            let payload = json!({
                "type": "view_submission", "team": s.team_info(&team), "user": s.user_info(user),
                "api_app_id": APP_ID, "token": VERIFICATION_TOKEN, "trigger_id": s.new_trigger(&team),
                "view": view, "response_urls": [], "is_enterprise_install": false, "enterprise": null,
            });
            s.deliver("interactive", payload, true)
        })
    }

    /// Waits for the ack of envelope `envelope_id`; it, with `"payload": null` if it had none.
    pub async fn ack_of(&self, envelope_id: &str) -> Value {
        let mut ack = self.until(|s| s.acks.iter().find(|a| a["envelope_id"] == envelope_id).cloned()).await;
        if ack.get("payload").is_none() {
            ack["payload"] = Value::Null;
        }
        ack
    }

    /// Waits until the client has sent `count` acks in all.
    pub async fn wait_acks(&self, count: usize) {
        self.until(|s| (s.acks.len() >= count).then_some(())).await;
    }

    /// Every ack so far, as the client sent it.
    pub fn acks(&self) -> Vec<Value> {
        self.with(|s| s.acks.clone())
    }

    /// Sends every `events_api` envelope delivered but not acked again, as Slack retries
    /// (`retry_attempt` one more, `retry_reason: "timeout"`), up to [`MAX_RETRIES`] times.
    pub fn redeliver_unacked(&self) {
        self.change(|s| {
            for i in 0..s.envelopes.len() {
                let e = &mut s.envelopes[i];
                if e.kind == "events_api" && e.delivered && !e.acked && e.retry_attempt < MAX_RETRIES {
                    e.retry_attempt += 1;
                    e.retry_reason = "timeout";
                    s.send_envelope(i);
                }
            }
        });
    }

    /// Sends every `events_api` envelope delivered so far again, acknowledged or not, as Slack
    /// does when acknowledgements came too late (`retry_attempt` one more, `retry_reason:
    /// "timeout"`, the same envelope and event ids). How many it sent.
    pub fn redeliver_events(&self) -> usize {
        self.change(|s| {
            let again: Vec<usize> = (0..s.envelopes.len())
                .filter(|i| s.envelopes[*i].kind == "events_api" && s.envelopes[*i].delivered)
                .collect();
            for &i in &again {
                s.envelopes[i].retry_attempt += 1;
                s.envelopes[i].retry_reason = "timeout";
                s.send_envelope(i);
            }
            again.len()
        })
    }

    /// Sends Slack's `disconnect` (`refresh_requested`) to the newest live connection, which
    /// gets nothing more; the client is to open another.
    pub async fn disconnect(&self) {
        self.change(|s| {
            let frame =
                json!({"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "applink-fake"}});
            if let Some(c) = s.connections.iter_mut().rev().find(|c| !c.draining) {
                let _ = c.tx.send(Outgoing::Frame(frame.to_string()));
                c.draining = true;
            }
        });
    }

    /// Closes every connection without a word, as a network failure would.
    pub fn close_connections(&self) {
        self.change(|s| {
            for c in s.connections.drain(..) {
                let _ = c.tx.send(Outgoing::Close);
            }
        });
    }

    /// How many Socket Mode connections were opened so far.
    pub fn connections_opened(&self) -> usize {
        self.with(|s| s.opened)
    }

    /// Every post to a `response_url`: its number and its body.
    pub fn responses(&self) -> Vec<(String, Value)> {
        self.with(|s| s.responses.clone())
    }

    pub async fn wait_responses(&self, count: usize) -> Vec<(String, Value)> {
        self.until(|s| (s.responses.len() >= count).then(|| s.responses.clone())).await
    }

    /// The `event_callback` Slack would post to a Request URL for `event` in [`TEAM`]: its
    /// event id and body (sign it with [`signed_headers`]).
    pub fn event_body(&self, event: Value) -> (String, Vec<u8>) {
        let (event_id, body) = self.change(|s| s.callback(TEAM, event));
        (event_id, body.to_string().into_bytes())
    }
}

/// Slack's request signature: `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// The headers Slack sends with a signed JSON delivery.
pub fn signed_headers(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("X-Slack-Request-Timestamp", timestamp.to_string()),
        ("X-Slack-Signature", sign(secret, timestamp, body)),
        ("Content-Type", "application/json".to_string()),
    ]
}

async fn route(AxumState(shared): AxumState<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if path == "/link" || path == "/link/" {
        return link(shared, req);
    }
    if let Some(n) = path.strip_prefix("/response/") {
        let n = n.to_string();
        let Ok(body) = axum::body::to_bytes(req.into_body(), 1 << 20).await else {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        };
        let (status, answer) = shared.lock().respond(&n, &body);
        shared.changed.notify_waiters();
        return (status, axum::Json(answer)).into_response();
    }
    match path.strip_prefix("/api/") {
        Some(method) => {
            let method = method.trim_start_matches('/').to_string();
            api(shared, method, req).await
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

fn pairs(text: &[u8], into: &mut Map<String, Value>) {
    for (k, v) in form_urlencoded::parse(text) {
        into.insert(k.into_owned(), Value::String(v.into_owned()));
    }
}

async fn api(shared: Arc<Shared>, method: String, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 8 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut params = Map::new();
    pairs(parts.uri.query().unwrap_or_default().as_bytes(), &mut params);
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE.as_str()).to_ascii_lowercase();
    let is_json = content_type.starts_with("application/json");
    let mut body_error = None;
    if is_json && !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(fields)) if spec(&method).is_some_and(|s| s.json) => params.extend(fields),
            Ok(Value::Object(_)) => {}
            Ok(_) => body_error = Some("json_not_object"),
            Err(_) => body_error = Some("invalid_json"),
        }
    } else if !is_json {
        pairs(&body, &mut params);
    }
    for key in ["blocks", "view", "attachments"] {
        if let Some(Value::String(text)) = params.get(key)
            && let Ok(decoded) = serde_json::from_str::<Value>(text)
        {
            params.insert(key.to_string(), decoded);
        }
    }
    let authorization = header_text(&parts.headers, header::AUTHORIZATION.as_str());
    if let Some(basic) = authorization.strip_prefix("Basic ")
        && let Some((id, secret)) = BASE64
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|b| b.split_once(':').map(|(i, s)| (i.to_string(), s.to_string())))
    {
        params.entry("client_id").or_insert(json!(id));
        params.entry("client_secret").or_insert(json!(secret));
    }
    let bearer = authorization.strip_prefix("Bearer ").map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let token = bearer.or_else(|| if is_json { None } else { arg(&params, "token") });
    let reply = {
        let mut s = shared.lock();
        s.requests.push(Recorded { method: method.clone(), token: token.clone(), params: params.clone() });
        match body_error {
            Some(error) if s.failures.get(&method).is_none_or(VecDeque::is_empty) => {
                Reply::Json(StatusCode::OK, fail(error), None)
            }
            _ => s.call(&method, token.as_deref(), &params),
        }
    };
    shared.changed.notify_waiters();
    match reply {
        Reply::Json(status, body, retry_after) => {
            let mut response = (status, axum::Json(body)).into_response();
            if let Some(secs) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            response
        }
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, "the fake Slack failed as told").into_response()
        }
        Reply::Hang => std::future::pending::<Response>().await,
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Accepts a Socket Mode websocket for a ticket `apps.connections.open` handed out.
fn link(shared: Arc<Shared>, mut req: Request) -> Response {
    let ticket = req.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "ticket").and_then(|(_, v)| v.parse::<u64>().ok())
    });
    let fresh =
        ticket.is_some_and(|t| shared.lock().tickets.get_mut(&t).is_some_and(|used| !std::mem::replace(used, true)));
    if !fresh {
        return (StatusCode::UNAUTHORIZED, "invalid or used ticket").into_response();
    }
    let key = header_text(req.headers(), "sec-websocket-key");
    if key.is_empty() || !header_text(req.headers(), header::UPGRADE.as_str()).eq_ignore_ascii_case("websocket") {
        return (StatusCode::BAD_REQUEST, "not a websocket request").into_response();
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        connection(shared, WebSocketStream::from_raw_socket(io, Role::Server, None).await).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key.as_bytes()))
        .body(Body::empty())
        .expect("a 101 response")
}

/// One Socket Mode connection, from `hello` until either side closes it.
async fn connection<S>(shared: Arc<Shared>, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.lock().open_connection(tx);
    shared.changed.notify_waiters();
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(text))) => {
                    shared.lock().ack(&text);
                    shared.changed.notify_waiters();
                }
                Some(Ok(Frame::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outgoing::Frame(text)) => {
                    if ws.send(Frame::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some(Outgoing::Close) | None => {
                    let _ = ws.close(None).await;
                    break;
                }
            },
        }
    }
    shared.lock().connections.retain(|c| c.id != id);
    shared.changed.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        // No idle-pool timer: a paused clock must not jump while a request is in flight.
        reqwest::Client::builder().pool_idle_timeout(None).build().unwrap()
    }

    /// Calls `method` with a form body; (status, Retry-After, body).
    async fn call(
        fake: &FakeSlack,
        method: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let mut request = client().post(format!("{}{method}", fake.api_url())).form(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), retry_after, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn errors_have_slacks_shape() {
        let fake = FakeSlack::start().await;
        assert_eq!(call(&fake, "auth.test", None, &[]).await.2, json!({"ok": false, "error": "not_authed"}));
        assert_eq!(call(&fake, "auth.test", Some("xoxb-nope"), &[]).await.2["error"], "invalid_auth");
        assert_eq!(call(&fake, "chat.shout", Some(BOT_TOKEN), &[]).await.2["error"], "unknown_method");
        assert_eq!(
            call(&fake, "apps.connections.open", Some(BOT_TOKEN), &[]).await.2["error"],
            "not_allowed_token_type"
        );
        let post = |channel: &'static str| [("channel", channel), ("text", "hi")];
        assert_eq!(
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(OTHER_TEAM_CHANNEL)).await.2["error"],
            "channel_not_found"
        );
        fake.add_channel("C0QUIET", "quiet", ADMIN, &[ADMIN]);
        assert_eq!(
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post("C0QUIET")).await.2["error"],
            "not_in_channel"
        );
        assert_eq!(
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &[("channel", GENERAL)]).await.2["error"],
            "no_text"
        );
        let blocks = r#"[{"type":"section","text":{"type":"mrkdwn","text":"a"}},{"text":{}}]"#;
        let (status, _, body) =
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &[("channel", GENERAL), ("blocks", blocks)]).await;
        assert_eq!(status, 200);
        assert_eq!(body["error"], "invalid_blocks");
        assert_eq!(
            body["response_metadata"]["messages"][0],
            "[ERROR] missing required field: type [json-pointer:/blocks/1]"
        );
        fake.set_scopes(BOT_TOKEN, &["users:read"]);
        assert_eq!(
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(GENERAL)).await.2,
            json!({"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "users:read"})
        );
        let recorded = fake.requests_of("chat.postMessage");
        assert_eq!(recorded.len(), 5);
        assert_eq!(recorded[0].token.as_deref(), Some(BOT_TOKEN));
        assert_eq!(recorded[0].params["channel"], OTHER_TEAM_CHANNEL);
        assert_eq!(recorded[3].params["blocks"][0]["type"], "section");
        assert!(fake.messages(GENERAL).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn post_message_bursts_are_limited_per_channel() {
        let fake = FakeSlack::start().await;
        let post = |channel: &'static str| [("channel", channel), ("text", "tally")];
        let mut stamps = Vec::new();
        for _ in 0..POST_BURST {
            let (status, _, body) = call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(GENERAL)).await;
            assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
            stamps.push(body["ts"].as_str().unwrap().to_string());
        }
        assert_eq!(stamps[0], "1700000000.000100");
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        let (status, retry_after, body) = call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(GENERAL)).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("1")));
        assert_eq!(body, json!({"ok": false, "error": "ratelimited"}));
        assert_eq!(call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(RANDOM)).await.0, 200);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(call(&fake, "chat.postMessage", Some(BOT_TOKEN), &post(GENERAL)).await.0, 200);
        assert_eq!(fake.messages(GENERAL).len(), 4);
        assert_eq!(fake.requests_of("chat.postMessage").len(), 6);
    }

    #[tokio::test]
    async fn reactions_get_shows_three_users_unless_full() {
        let fake = FakeSlack::start().await;
        let (_, _, posted) =
            call(&fake, "chat.postMessage", Some(BOT_TOKEN), &[("channel", GENERAL), ("text", "Vote")]).await;
        let ts = posted["ts"].as_str().unwrap();
        for user in [ADMIN, MEMBER, OTHER] {
            fake.react(user, GENERAL, ts, "+1").await;
        }
        let add = [("channel", GENERAL), ("timestamp", ts), ("name", "+1")];
        assert_eq!(call(&fake, "reactions.add", Some(BOT_TOKEN), &add).await.2, json!({"ok": true}));
        assert_eq!(call(&fake, "reactions.add", Some(BOT_TOKEN), &add).await.2["error"], "already_reacted");
        let odd = [("channel", GENERAL), ("timestamp", ts), ("name", "thumbsup_all")];
        assert_eq!(call(&fake, "reactions.add", Some(BOT_TOKEN), &odd).await.2["error"], "invalid_name");
        let url = format!("{}reactions.get?channel={GENERAL}&timestamp={ts}", fake.api_url());
        let get = |url: String| async move {
            let response = client().get(url).bearer_auth(BOT_TOKEN).send().await.unwrap();
            response.json::<Value>().await.unwrap()
        };
        let partial = get(url.clone()).await;
        assert_eq!(partial["type"], "message");
        let reaction = &partial["message"]["reactions"][0];
        assert_eq!(reaction["count"], 4);
        assert_eq!(reaction["users"], json!([ADMIN, MEMBER, BOT_USER]), "the caller is always shown");
        let full = get(format!("{url}&full=true")).await;
        assert_eq!(full["message"]["reactions"][0]["users"], json!([ADMIN, MEMBER, OTHER, BOT_USER]));
        assert_eq!(fake.message(GENERAL, ts).unwrap()["reactions"][0]["count"], 4);
    }

    #[test]
    fn signing_matches_slacks_published_example() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign(SIGNING_SECRET, 1_531_420_618, body.as_bytes()),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let headers = signed_headers(SIGNING_SECRET, 1_531_420_618, body.as_bytes());
        assert_eq!(headers[1], ("X-Slack-Signature", sign(SIGNING_SECRET, 1_531_420_618, body.as_bytes())));
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_expire_and_response_urls_wear_out() {
        let fake = FakeSlack::start().await;
        fake.slash(MEMBER, GENERAL, "/polity", "propose").await;
        let payload = fake.with(|s| s.envelopes[0].payload.clone());
        let view = r#"{"type":"modal","title":{"type":"plain_text","text":"Propose"},"blocks":[]}"#;
        let trigger = payload["trigger_id"].as_str().unwrap();
        tokio::time::advance(Duration::from_secs(4)).await;
        let open = [("trigger_id", trigger), ("view", view)];
        assert_eq!(call(&fake, "views.open", Some(BOT_TOKEN), &open).await.2["error"], "expired_trigger_id");
        let url = payload["response_url"].as_str().unwrap();
        for expected in [200, 200, 200, 200, 200, 404] {
            let response = client().post(url).json(&json!({"text": "noted"})).send().await.unwrap();
            assert_eq!(response.status().as_u16(), expected);
        }
        assert_eq!(fake.wait_responses(5).await.len(), 5);
    }

    mod socket_mode {
        use super::super::*;
        use hyper_util::client::legacy::connect::HttpConnector;
        use slack_morphism::prelude::*;

        type Connector = SlackClientHyperConnector<HttpConnector>;

        async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
            tokio::time::timeout(Duration::from_secs(10), f).await.expect("in time")
        }

        /// Where the callbacks tell the test what they got.
        struct Seen(mpsc::UnboundedSender<String>);

        async fn tell(states: &SlackClientEventsUserState, what: String) {
            states.read().await.get_user_state::<Seen>().unwrap().0.send(what).unwrap();
        }

        async fn on_push(
            event: SlackPushEventCallback,
            _: Arc<SlackClient<Connector>>,
            states: SlackClientEventsUserState,
        ) -> UserCallbackResult<()> {
            let what = match event.event {
                SlackEventCallbackBody::ReactionAdded(r) => format!("{} {} {}", event.event_id, r.user, r.reaction),
                other => format!("unexpected {other:?}"),
            };
            tell(&states, what).await;
            Ok(())
        }

        async fn on_command(
            event: SlackCommandEvent,
            _: Arc<SlackClient<Connector>>,
            states: SlackClientEventsUserState,
        ) -> UserCallbackResult<SlackCommandEventResponse> {
            tell(&states, format!("{} {}", event.command, event.text.unwrap_or_default())).await;
            Ok(SlackCommandEventResponse::new(SlackMessageContent::new().with_text("Heard.".into())))
        }

        async fn on_interaction(
            event: SlackInteractionEvent,
            _: Arc<SlackClient<Connector>>,
            states: SlackClientEventsUserState,
        ) -> UserCallbackResult<SlackInteractionResponse> {
            let what = match event {
                SlackInteractionEvent::BlockActions(a) => {
                    let action = &a.actions.unwrap()[0];
                    format!("{} {}", action.action_id, action.value.clone().unwrap_or_default())
                }
                other => format!("unexpected {other:?}"),
            };
            tell(&states, what).await;
            Ok(SlackInteractionResponse::Empty)
        }

        fn on_error(
            err: Box<dyn std::error::Error + Send + Sync>,
            _: Arc<SlackClient<Connector>>,
            _: SlackClientEventsUserState,
        ) -> HttpStatusCode {
            panic!("slack-morphism could not read a frame of the fake: {err}");
        }

        #[tokio::test]
        async fn slack_morphism_reads_the_frames() {
            let fake = FakeSlack::start().await;
            let connector =
                SlackClientHyperConnector::with_connector(HttpConnector::new()).with_slack_api_url(&fake.api_url());
            let client = Arc::new(SlackClient::new(connector));
            let bot = SlackApiToken::new(SlackApiTokenValue(BOT_TOKEN.to_string()));
            let yes = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from("Yes"))
                .with_action_id(SlackActionId("vote-yes".to_string()));
            let content = SlackMessageContent::new()
                .with_text("Proposal 1".to_string())
                .with_blocks(vec![SlackActionsBlock::new(vec![yes.into()]).into()]);
            let posted = client
                .open_session(&bot)
                .chat_post_message(&SlackApiChatPostMessageRequest::new(SlackChannelId(GENERAL.to_string()), content))
                .await
                .unwrap();

            let (tx, mut rx) = mpsc::unbounded_channel();
            let callbacks = SlackSocketModeListenerCallbacks::new()
                .with_push_events(on_push)
                .with_command_events(on_command)
                .with_interaction_events(on_interaction);
            let environment = Arc::new(
                SlackClientEventsListenerEnvironment::new(client)
                    .with_error_handler(on_error)
                    .with_user_state(Seen(tx)),
            );
            let config = SlackClientSocketModeConfig::new().with_max_connections_count(1);
            let listener = SlackClientSocketModeListener::new(&config, environment, callbacks);
            listener.listen_for(&SlackApiToken::new(SlackApiTokenValue(APP_TOKEN.to_string()))).await.unwrap();
            listener.start().await;

            let event_id = fake.react(MEMBER, GENERAL, posted.ts.value(), "+1").await;
            assert_eq!(within(rx.recv()).await.unwrap(), format!("{event_id} {MEMBER} +1"));
            let slash = fake.slash(MEMBER, GENERAL, "/polity", "status").await;
            assert_eq!(within(rx.recv()).await.unwrap(), "/polity status");
            assert_eq!(within(fake.ack_of(&slash)).await["payload"]["text"], "Heard.");
            fake.press(MEMBER, GENERAL, posted.ts.value(), "vote-yes", "yes").await;
            assert_eq!(within(rx.recv()).await.unwrap(), "vote-yes yes");

            fake.disconnect().await;
            within(fake.until(|s| (s.opened == 2).then_some(()))).await;
            let again = fake.react(OTHER, GENERAL, posted.ts.value(), "eyes").await;
            assert_eq!(within(rx.recv()).await.unwrap(), format!("{again} {OTHER} eyes"));
            assert_eq!(fake.requests_of("apps.connections.open").len(), 2);
            within(fake.until(|s| (s.acks.len() == 4).then_some(()))).await;
            listener.shutdown().await;
        }
    }
}
