//! The fake REST API (v10): one handler that records every request, answers an injected
//! failure if one matches, and otherwise routes the request to the state change Discord would
//! make, answering Discord's objects and Discord's JSON errors (`{"code", "message"}`).
//!
//! Every request is the bot's, and is held to Discord's permission model before it changes
//! anything: an unknown resource is a 404 first; then a guild channel the bot cannot see
//! (no View Channel there) is 403 Missing Access (50001); then a permission the bot lacks
//! in the channel (overwrites and all) or in the guild, or a role or member not strictly
//! below the bot's highest role, is 403 Missing Permissions (50013).

use super::Shared;
use super::multipart::read_body;
use super::payloads::{channel_json, role_json, user_json};
use super::state::{
    APPLICATION_ID, APPLICATION_OWNER, BOT_ID, BOT_NAME, Channel, Failure, Interaction, Recorded, Response, State,
    User, Window, audit, by_snowflake, custom_emoji, permissions, pings,
};
use axum::body::{Body, Bytes};
use axum::extract::State as Extract;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response as HttpResponse;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Everything after this in a path is the route.
pub const API_PREFIX: &str = "/api/v10";
/// Discord's limit on a message's content, in characters.
pub const MAX_CONTENT: usize = 2000;

/// Discord's JSON error codes the fake answers.
pub mod codes {
    pub const UNKNOWN_CHANNEL: u64 = 10003;
    pub const UNKNOWN_GUILD: u64 = 10004;
    pub const UNKNOWN_MEMBER: u64 = 10007;
    pub const UNKNOWN_MESSAGE: u64 = 10008;
    pub const UNKNOWN_ROLE: u64 = 10011;
    pub const UNKNOWN_USER: u64 = 10013;
    pub const UNKNOWN_EMOJI: u64 = 10014;
    pub const UNKNOWN_WEBHOOK: u64 = 10015;
    pub const UNKNOWN_INTERACTION: u64 = 10062;
    pub const MISSING_ACCESS: u64 = 50001;
    pub const CANNOT_EDIT_OTHERS_MESSAGE: u64 = 50005;
    pub const EMPTY_MESSAGE: u64 = 50006;
    pub const CANNOT_MESSAGE_USER: u64 = 50007;
    pub const MISSING_PERMISSIONS: u64 = 50013;
    pub const INVALID_WEBHOOK_TOKEN: u64 = 50027;
    pub const INVALID_FORM_BODY: u64 = 50035;
    pub const ALREADY_ACKNOWLEDGED: u64 = 40060;
    pub const OLD_MESSAGE_EDITS: u64 = 30046;
}

/// The rate limits the fake enforces as Discord does, per bucket and major parameter.
pub mod limits {
    use std::time::Duration;

    /// Renames of one channel by the bot (`PATCH /channels/{c}` with a `name`) in a window.
    pub const RENAMES: u32 = 2;
    /// The window of channel renames: ten minutes.
    pub const RENAME_WINDOW: Duration = Duration::from_secs(600);
    /// The `X-RateLimit-Bucket` of channel renames.
    pub const RENAME_BUCKET: &str = "5d8b3e0c1f7a4e62a9c0d4b7e21f6a3c";
    /// Edits of messages older than [`OLD_MESSAGE`] in one channel in a window, beyond which
    /// Discord answers 429 with code 30046. Discord does not publish the figure; this one is
    /// low, so that Polity is shown to cope with any.
    pub const OLD_EDITS: u32 = 3;
    /// The window of edits of old messages.
    pub const OLD_EDIT_WINDOW: Duration = Duration::from_secs(3600);
    /// How old a message must be for its edits to count as old.
    pub const OLD_MESSAGE: Duration = Duration::from_secs(3600);
    /// How long after an interaction arrives its first answer is taken (later: 404, code
    /// 10062, Unknown interaction).
    pub const ANSWER_WITHIN: Duration = Duration::from_secs(3);
    /// How long an interaction's token takes edits and follow-ups (later: 401, code 50027).
    pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
}

/// What the fake answers: a status, a JSON body (none for 204), maybe `Retry-After`, and
/// other headers (Discord's `X-RateLimit-*`).
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, body: Some(body), retry_after: None, headers: Vec::new() }
}

fn no_content() -> Answer {
    Answer { status: 204, body: None, retry_after: None, headers: Vec::new() }
}

fn error(status: u16, code: u64, message: &str) -> Answer {
    Answer { status, body: Some(json!({ "code": code, "message": message })), retry_after: None, headers: Vec::new() }
}

fn not_found(code: u64, message: &str) -> Answer {
    error(404, code, message)
}

fn unknown_route() -> Answer {
    error(404, 0, "404: Not Found")
}

fn invalid_form(what: &str) -> Answer {
    error(400, codes::INVALID_FORM_BODY, &format!("Invalid Form Body ({what})"))
}

fn missing_access() -> Answer {
    error(403, codes::MISSING_ACCESS, "Missing Access")
}

fn missing_permissions() -> Answer {
    error(403, codes::MISSING_PERMISSIONS, "Missing Permissions")
}

/// The bot's permissions in a guild channel (overwrites and all); `None` for a DM channel,
/// where no permissions apply.
fn bot_in_channel(s: &State, channel: &str) -> Option<u64> {
    s.guild_of(channel).map(|_| s.channel_permissions(channel, BOT_ID).unwrap_or(0))
}

/// Discord's Missing Access when the bot cannot see a guild channel (no View Channel).
fn bot_sees(s: &State, channel: &str) -> Result<(), Answer> {
    match bot_in_channel(s, channel) {
        Some(bits) if bits & permissions::VIEW_CHANNEL == 0 => Err(missing_access()),
        _ => Ok(()),
    }
}

/// Discord's Missing Permissions unless the bot holds every bit of `needed` in the channel
/// (`any`: one of them is enough); nothing is needed in a DM channel.
fn bot_holds(s: &State, channel: &str, needed: u64, any: bool) -> Result<(), Answer> {
    let Some(bits) = bot_in_channel(s, channel) else { return Ok(()) };
    let held = if any { bits & needed != 0 } else { bits & needed == needed };
    if held { Ok(()) } else { Err(missing_permissions()) }
}

/// Discord's Missing Permissions unless the bot holds `needed` in the guild (no channel's
/// overwrites count).
fn bot_holds_in_guild(s: &State, guild: &str, needed: u64) -> Result<(), Answer> {
    let bits = s.guild(guild).and_then(|g| g.permissions(BOT_ID)).unwrap_or(0);
    if bits & needed == needed { Ok(()) } else { Err(missing_permissions()) }
}

/// A request, as the router sees it.
struct Req {
    method: Method,
    /// The route's segments, percent-decoded.
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Value,
    files: Vec<(String, String)>,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// `%XX` sequences decoded (as UTF-8, lossily).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string's pairs, decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// A failure prefix relative to [`API_PREFIX`] (given with or without it).
pub(crate) fn relative(prefix: &str) -> &str {
    prefix.strip_prefix(API_PREFIX).unwrap_or(prefix)
}

/// The one handler behind every route.
pub(crate) async fn handle(
    Extract(shared): Extract<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (json, files) = read_body(content_type, &body);
    let files_match = super::multipart::files_match_payload(content_type, &body, &json);
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let answer = shared.change(|s| {
        if !files_match {
            return invalid_form("attachments: each file part `files[N]` must be listed with its id and filename");
        }
        let refused = s.token.as_ref().is_some_and(|t| authorization.as_deref() != Some(&format!("Bot {t}")));
        let answer = match path.strip_prefix(API_PREFIX) {
            // Like Discord's, the gateway's address needs no token.
            Some(rel) if refused && rel != "/gateway" => Answer {
                status: 401,
                body: Some(json!({ "message": "401: Unauthorized", "code": 0 })),
                retry_after: None,
                headers: Vec::new(),
            },
            Some(rel) => match take_failure(s, method.as_str(), rel) {
                Some(failure) => failure,
                None => {
                    let req = Req {
                        method: method.clone(),
                        segments: rel.split('/').skip(1).map(percent_decode).collect(),
                        query: query_pairs(&query),
                        body: json.clone(),
                        files: files.clone(),
                    };
                    match spend(s, &req) {
                        Ok(headers) => {
                            let mut answer = route(s, &req);
                            answer.headers.extend(headers);
                            answer
                        }
                        Err(limited) => limited,
                    }
                }
            },
            None => unknown_route(),
        };
        s.requests.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: json,
            files,
            authorization,
            status: answer.status,
        });
        answer
    });
    respond(answer)
}

fn respond(answer: Answer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = axum::http::Response::builder().status(status);
    if let Some(r) = &answer.retry_after {
        builder = builder.header(RETRY_AFTER, r.as_str());
    }
    for (name, value) in &answer.headers {
        builder = builder.header(*name, value.as_str());
    }
    let body = match answer.body {
        Some(v) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).unwrap_or_else(|_| HttpResponse::new(Body::empty()))
}

/// The first injected failure matching the request, taken.
fn take_failure(s: &mut State, method: &str, rel: &str) -> Option<Answer> {
    let i = s
        .failures
        .iter()
        .position(|f: &Failure| f.method.eq_ignore_ascii_case(method) && rel.starts_with(&f.prefix))?;
    let f = s.failures.remove(i);
    Some(Answer { status: f.status, body: Some(f.body), retry_after: f.retry_after, headers: Vec::new() })
}

/// A rate limit the fake enforces: its bucket, how many requests a window takes, how long a
/// window lasts.
struct Limit {
    bucket: &'static str,
    per_window: u32,
    window: Duration,
}

/// The limit a request falls under, with its major parameter: a channel rename by the bot.
fn limit_of(r: &Req) -> Option<(Limit, String)> {
    match (r.method.as_str(), r.segments.as_slice()) {
        ("PATCH", [channels, c]) if channels == "channels" && r.body.get("name").is_some() => Some((
            Limit { bucket: limits::RENAME_BUCKET, per_window: limits::RENAMES, window: limits::RENAME_WINDOW },
            c.clone(),
        )),
        _ => None,
    }
}

/// Seconds as Discord writes them in rate limit headers and bodies (milliseconds precision).
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Takes one request from the window of the request's bucket, if it has a limit: `Ok` with
/// Discord's `X-RateLimit-*` headers for the answer, or `Err` with Discord's 429 (its
/// `retry_after`, `global: false`, `X-RateLimit-Scope: user`, `Retry-After`) when the window is
/// spent; a refused request changes nothing.
fn spend(s: &mut State, r: &Req) -> Result<Vec<(&'static str, String)>, Answer> {
    let Some((limit, major)) = limit_of(r) else { return Ok(Vec::new()) };
    let now = tokio::time::Instant::now();
    let window = take_window(s, format!("{}:{major}", limit.bucket), limit.per_window, limit.window, now);
    let spent = window.used > limit.per_window;
    let left = window.reset_at - now;
    let remaining = limit.per_window.saturating_sub(window.used);
    let epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default() + left;
    let mut headers = vec![
        ("x-ratelimit-limit", limit.per_window.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", format!("{:.3}", secs(epoch))),
        ("x-ratelimit-reset-after", format!("{:.3}", secs(left))),
        ("x-ratelimit-bucket", limit.bucket.to_string()),
    ];
    if !spent {
        return Ok(headers);
    }
    headers.push(("x-ratelimit-scope", "user".to_string()));
    Err(Answer {
        status: 429,
        body: Some(json!({ "message": "You are being rate limited.", "retry_after": secs(left), "global": false })),
        retry_after: Some(left.as_secs_f64().ceil().to_string()),
        headers,
    })
}

/// The guild a guild or channel route is about, when the bot is not in it: Discord answers
/// 403 Missing Access.
fn out_of_reach(s: &State, seg: &[&str]) -> bool {
    let guild = match seg {
        ["guilds", g, ..] => Some((*g).to_string()),
        ["channels", c, ..] => s.guild_of(c),
        _ => None,
    };
    guild.and_then(|g| s.guild(&g)).is_some_and(|g| !g.has_bot())
}

fn route(s: &mut State, r: &Req) -> Answer {
    let seg: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    if out_of_reach(s, &seg) {
        return error(403, codes::MISSING_ACCESS, "Missing Access");
    }
    match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["gateway"]) => ok(json!({ "url": s.gateway_url })),
        ("GET", ["gateway", "bot"]) => ok(json!({
            "url": s.gateway_url, "shards": s.shards,
            "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 }
        })),
        ("GET", ["users", "@me"]) => ok(s.me_json()),
        ("GET", ["oauth2", "applications", "@me"] | ["applications", "@me"]) => ok(application_json(s)),
        ("GET", ["users", user]) => match s.users.get(*user) {
            Some(u) => ok(user_json(u)),
            None => not_found(codes::UNKNOWN_USER, "Unknown User"),
        },
        ("PUT", ["applications", app, "commands"]) => put_commands(s, app, &r.body),
        ("GET", ["applications", _, "commands"]) => ok(s.commands.clone()),
        ("POST", ["channels", c, "messages"]) => create_message(s, c, r),
        ("GET", ["channels", c, "messages", m]) => get_message(s, c, m),
        ("PATCH", ["channels", c, "messages", m]) => edit_message(s, c, m, &r.body),
        ("DELETE", ["channels", c, "messages", m]) => delete_message(s, c, m),
        ("PUT", ["channels", c, "messages", m, "reactions", e, "@me"]) => react(s, c, m, e),
        ("DELETE", ["channels", c, "messages", m, "reactions", e, u]) => {
            let user = if *u == "@me" { BOT_ID } else { u };
            unreact(s, c, m, e, user)
        }
        ("GET", ["channels", c, "messages", m, "reactions", e]) => reaction_users(s, c, m, e, r),
        ("PUT", ["channels", c, "pins", m]) => pin(s, c, m, true),
        ("DELETE", ["channels", c, "pins", m]) => pin(s, c, m, false),
        ("GET", ["channels", c]) => match s.channels.get(*c) {
            Some(ch) => match bot_sees(s, c) {
                Ok(()) => ok(channel_json(ch, ch.recipient.as_deref().map(|u| s.user_json(u)))),
                Err(a) => a,
            },
            None => not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel"),
        },
        ("PATCH", ["channels", c]) => modify_channel(s, c, &r.body),
        ("POST", ["users", "@me", "channels"]) => open_dm(s, &r.body),
        ("PUT", ["guilds", g, "members", u, "roles", role]) => member_role(s, g, u, role, true),
        ("DELETE", ["guilds", g, "members", u, "roles", role]) => member_role(s, g, u, role, false),
        ("GET", ["guilds", g, "members", u]) => match s.guild(g).map(|guild| guild.member(u).is_some()) {
            None => not_found(codes::UNKNOWN_GUILD, "Unknown Guild"),
            Some(false) => not_found(codes::UNKNOWN_MEMBER, "Unknown Member"),
            Some(true) => ok(s.member_json(g, u)),
        },
        ("DELETE", ["guilds", g, "members", u]) => kick(s, g, u),
        ("GET", ["guilds", g, "roles"]) => match s.guild(g) {
            Some(guild) => ok(guild.roles.iter().map(role_json).collect()),
            None => not_found(codes::UNKNOWN_GUILD, "Unknown Guild"),
        },
        ("GET", ["guilds", g, "audit-logs"]) => audit_logs(s, g, r),
        ("POST", ["interactions", id, token, "callback"]) => callback(s, id, token, r),
        ("GET", ["webhooks", _, token, "messages", "@original"]) => original(s, token),
        ("PATCH", ["webhooks", _, token, "messages", "@original"]) => edit_original(s, token, r),
        ("POST", ["webhooks", _, token]) => followup(s, token, r),
        _ => unknown_route(),
    }
}

/// The application's own object (`GET /oauth2/applications/@me`), owned by
/// [`APPLICATION_OWNER`].
fn application_json(s: &State) -> Value {
    json!({
        "id": APPLICATION_ID, "name": BOT_NAME, "icon": null, "description": "", "summary": "",
        "bot_public": true, "bot_require_code_grant": false, "rpc_origins": [],
        "owner": user_json(&User { id: APPLICATION_OWNER.into(), username: "polity-developer".into(), bot: false }),
        "verify_key": "0".repeat(64), "team": null, "flags": 0, "bot": s.user_json(BOT_ID),
        "redirect_uris": [], "interactions_endpoint_url": null, "approximate_guild_count": s.guilds.len()
    })
}

/// `PUT /applications/{app}/commands`: the whole set replaced; a command keeps its id when
/// one of the same name existed.
fn put_commands(s: &mut State, app: &str, body: &Value) -> Answer {
    if app != APPLICATION_ID {
        return error(403, codes::MISSING_PERMISSIONS, "Missing Access");
    }
    let Some(commands) = body.as_array() else { return invalid_form("expected an array of commands") };
    let old = s.commands.clone();
    let mut stored = Vec::new();
    for c in commands {
        let Some(obj) = c.as_object() else { return invalid_form("a command is not an object") };
        let mut obj = obj.clone();
        let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let id = old
            .as_array()
            .and_then(|o| o.iter().find(|p| p["name"] == json!(name)))
            .and_then(|p| p["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| s.new_id());
        obj.insert("id".into(), json!(id));
        obj.insert("application_id".into(), json!(APPLICATION_ID));
        obj.insert("version".into(), json!(s.new_id()));
        obj.entry("type").or_insert(json!(1));
        obj.entry("description").or_insert(json!(""));
        obj.entry("default_member_permissions").or_insert(Value::Null);
        obj.entry("nsfw").or_insert(json!(false));
        stored.push(Value::Object(obj));
    }
    s.commands = Value::Array(stored);
    ok(s.commands.clone())
}

/// A message's JSON if it exists and is not deleted, else Discord's 404 (or its Missing
/// Access, before the message is looked for, in a channel the bot cannot see).
fn live_message(s: &State, channel: &str, id: &str) -> Result<Value, Answer> {
    if !s.channels.contains_key(channel) {
        return Err(not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel"));
    }
    bot_sees(s, channel)?;
    match s.message(channel, id).filter(|m| !m.deleted) {
        Some(m) => Ok(s.message_json(m)),
        None => Err(not_found(codes::UNKNOWN_MESSAGE, "Unknown Message")),
    }
}

/// `GET /channels/{c}/messages/{m}`: Read Message History in the channel.
fn get_message(s: &State, channel: &str, id: &str) -> Answer {
    match live_message(s, channel, id) {
        Ok(json) => match bot_holds(s, channel, permissions::READ_MESSAGE_HISTORY, false) {
            Ok(()) => ok(json),
            Err(a) => a,
        },
        Err(a) => a,
    }
}

fn content_of(body: &Value) -> Result<String, Answer> {
    let content = match &body["content"] {
        Value::String(c) => c.clone(),
        _ => String::new(),
    };
    if content.chars().count() > MAX_CONTENT {
        return Err(invalid_form("content: must be 2000 or fewer in length"));
    }
    Ok(content)
}

fn nonce_of(body: &Value) -> Option<String> {
    match &body["nonce"] {
        Value::String(n) => Some(n.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn components_of(body: &Value) -> Value {
    match &body["components"] {
        Value::Array(c) => Value::Array(c.clone()),
        _ => json!([]),
    }
}

/// Where Discord's CDN serves an uploaded file.
fn cdn_url(channel: &str, message: &str, filename: &str) -> String {
    format!("https://cdn.discordapp.com/attachments/{channel}/{message}/{filename}")
}

/// `POST /channels/{c}/messages`: a message by the bot (once per nonce when enforced). In a
/// guild channel the bot needs View Channel and Send Messages there, and Attach Files for
/// files.
fn create_message(s: &mut State, channel: &str, r: &Req) -> Answer {
    if !s.channels.contains_key(channel) {
        return not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel");
    }
    if let Err(a) = bot_sees(s, channel) {
        return a;
    }
    let content = match content_of(&r.body) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let files = if r.files.is_empty() { 0 } else { permissions::ATTACH_FILES };
    if let Err(a) = bot_holds(s, channel, permissions::SEND_MESSAGES | files, false) {
        return a;
    }
    // A bot can message a user directly only while they share a guild.
    if let Some(recipient) = s.channels.get(channel).and_then(|c| c.recipient.clone())
        && !s.shares_guild_with_bot(&recipient)
    {
        return error(403, codes::CANNOT_MESSAGE_USER, "Cannot send messages to this user");
    }
    let components = components_of(&r.body);
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    if content.is_empty() && r.files.is_empty() && empty(&components) && empty(&r.body["embeds"]) {
        return error(400, codes::EMPTY_MESSAGE, "Cannot send an empty message");
    }
    let nonce = nonce_of(&r.body);
    if r.body["enforce_nonce"] == json!(true)
        && let Some(n) = &nonce
        && let Some(earlier) = s.messages(channel).iter().find(|m| m.author == BOT_ID && m.nonce.as_ref() == Some(n))
    {
        return ok(s.message_json(earlier));
    }
    let id = s.create_message(channel, BOT_ID, &content, components, Vec::new(), nonce);
    let urls: Vec<String> = r.files.iter().map(|(f, _)| cdn_url(channel, &id, f)).collect();
    let Some(m) = s.message_mut(channel, &id) else { return not_found(codes::UNKNOWN_MESSAGE, "Unknown Message") };
    m.attachments = urls;
    m.pinged = pings(&content, &r.body["allowed_mentions"]);
    let m = m.clone();
    if s.guild_of(channel).is_some() {
        let event = s.message_event(&m);
        s.dispatch("MESSAGE_CREATE", event);
    }
    ok(s.message_json(&m))
}

/// `PATCH /channels/{c}/messages/{m}`: the bot edits its own message.
fn edit_message(s: &mut State, channel: &str, id: &str, body: &Value) -> Answer {
    if let Err(a) = live_message(s, channel, id) {
        return a;
    }
    if s.message(channel, id).is_some_and(|m| m.author != BOT_ID) {
        return error(403, codes::CANNOT_EDIT_OTHERS_MESSAGE, "Cannot edit a message authored by another user");
    }
    let now = tokio::time::Instant::now();
    if s.message(channel, id).is_some_and(|m| now.duration_since(m.created) >= limits::OLD_MESSAGE)
        && let Err(left) = spend_old_edit(s, channel, now)
    {
        return Answer {
            status: 429,
            body: Some(json!({
                "message": "Maximum number of edits to messages older than 1 hour reached. Try again later.",
                "code": codes::OLD_MESSAGE_EDITS, "retry_after": secs(left), "global": false
            })),
            retry_after: Some(left.as_secs_f64().ceil().to_string()),
            headers: Vec::new(),
        };
    }
    let content = match body.get("content").map(|_| content_of(body)) {
        Some(Err(a)) => return a,
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let Some(m) = s.message_mut(channel, id) else { return not_found(codes::UNKNOWN_MESSAGE, "Unknown Message") };
    if let Some(c) = content {
        // An edit's text is parsed for mentions afresh, by its own `allowed_mentions`.
        for who in pings(&c, &body["allowed_mentions"]) {
            if !m.pinged.contains(&who) {
                m.pinged.push(who);
            }
        }
        m.content = c;
    }
    if body.get("components").is_some() {
        m.components = components_of(body);
    }
    m.edited = true;
    let m = m.clone();
    if s.guild_of(channel).is_some() {
        let event = s.message_event(&m);
        s.dispatch("MESSAGE_UPDATE", event);
    }
    ok(s.message_json(&m))
}

/// Marks a message deleted and tells the gateway; `by` deleting someone else's message is in
/// the audit log.
pub(crate) fn remove_message(s: &mut State, channel: &str, id: &str, by: &str) {
    let Some(m) = s.message_mut(channel, id) else { return };
    m.deleted = true;
    let author = m.author.clone();
    let guild = s.guild_of(channel);
    let mut event = json!({ "id": id, "channel_id": channel });
    if let Some(g) = &guild {
        event["guild_id"] = json!(g);
        if author != by {
            let options = json!({ "channel_id": channel, "count": "1" });
            s.record_audit(g, by, &author, audit::MESSAGE_DELETE, json!([]), options);
        }
    }
    s.dispatch("MESSAGE_DELETE", event);
}

/// `DELETE /channels/{c}/messages/{m}`: someone else's message needs Manage Messages.
fn delete_message(s: &mut State, channel: &str, id: &str) -> Answer {
    if let Err(a) = live_message(s, channel, id) {
        return a;
    }
    if s.message(channel, id).is_some_and(|m| m.author != BOT_ID)
        && let Err(a) = bot_holds(s, channel, permissions::MANAGE_MESSAGES, false)
    {
        return a;
    }
    remove_message(s, channel, id, BOT_ID);
    no_content()
}

/// Whether the bot may use emoji `key` in `channel`: a unicode emoji (not plain ASCII text),
/// or a custom emoji of the channel's guild.
fn known_emoji(s: &State, channel: &str, key: &str) -> bool {
    match custom_emoji(key) {
        Some((_, id)) => {
            let guild = s.guild_of(channel);
            guild.and_then(|g| s.guild(&g)).is_some_and(|g| g.emojis.iter().any(|(e, _)| e == id))
        }
        None => !key.is_empty() && !key.is_ascii(),
    }
}

fn check_reaction(s: &State, channel: &str, message: &str, emoji: &str) -> Option<Answer> {
    if let Err(a) = live_message(s, channel, message) {
        return Some(a);
    }
    (!known_emoji(s, channel, emoji)).then(|| error(400, codes::UNKNOWN_EMOJI, "Unknown Emoji"))
}

/// `PUT .../reactions/{emoji}/@me`: the bot reacts. It needs Read Message History, and Add
/// Reactions to be the first to hold the emoji on the message.
fn react(s: &mut State, channel: &str, message: &str, emoji: &str) -> Answer {
    if let Some(a) = check_reaction(s, channel, message, emoji) {
        return a;
    }
    let first = s.message(channel, message).is_none_or(|m| {
        m.holders(emoji).is_empty() && !m.bursts.iter().any(|(e, users)| e == emoji && !users.is_empty())
    });
    let needed = permissions::READ_MESSAGE_HISTORY | if first { permissions::ADD_REACTIONS } else { 0 };
    if let Err(a) = bot_holds(s, channel, needed, false) {
        return a;
    }
    if s.add_reaction(channel, message, emoji, BOT_ID, false)
        && let Some(m) = s.message(channel, message).cloned()
    {
        let event = s.reaction_add(&m, BOT_ID, emoji, false);
        s.dispatch("MESSAGE_REACTION_ADD", event);
    }
    no_content()
}

/// `DELETE .../reactions/{emoji}/{user}`: a reaction taken away: exactly that emoji (👍 is
/// not 👍🏽), the user's normal reaction (a super reaction stays). Someone else's needs Manage
/// Messages.
fn unreact(s: &mut State, channel: &str, message: &str, emoji: &str, user: &str) -> Answer {
    if let Some(a) = check_reaction(s, channel, message, emoji) {
        return a;
    }
    if user != BOT_ID
        && let Err(a) = bot_holds(s, channel, permissions::MANAGE_MESSAGES, false)
    {
        return a;
    }
    if s.remove_reaction(channel, message, emoji, user, false) {
        let event = s.reaction_remove(channel, message, user, emoji, false);
        s.dispatch("MESSAGE_REACTION_REMOVE", event);
    }
    no_content()
}

/// `GET .../reactions/{emoji}?type=T&limit=N&after=ID`: one page of the users holding exactly
/// that emoji, as normal reactions (`type` 0, the default) or super reactions (1).
fn reaction_users(s: &State, channel: &str, message: &str, emoji: &str, r: &Req) -> Answer {
    if let Some(a) = check_reaction(s, channel, message, emoji) {
        return a;
    }
    if let Err(a) = bot_holds(s, channel, permissions::READ_MESSAGE_HISTORY, false) {
        return a;
    }
    let burst = match r.param("type") {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => return invalid_form("type: Value must be one of {0, 1}"),
    };
    let limit = r.param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(25).clamp(1, 100);
    let after = r.param("after").unwrap_or("0");
    let mut holders =
        if burst { s.burst_reactions(channel, message, emoji) } else { s.reactions(channel, message, emoji) };
    holders.sort_by(|a, b| by_snowflake(a, b));
    let page: Vec<Value> =
        holders.iter().filter(|u| by_snowflake(u, after).is_gt()).take(limit).map(|u| s.user_json(u)).collect();
    ok(Value::Array(page))
}

/// `PUT`/`DELETE /channels/{c}/pins/{m}`: Pin Messages or Manage Messages in the channel.
fn pin(s: &mut State, channel: &str, message: &str, pinned: bool) -> Answer {
    if let Err(a) = live_message(s, channel, message) {
        return a;
    }
    if let Err(a) = bot_holds(s, channel, permissions::PIN_MESSAGES | permissions::MANAGE_MESSAGES, true) {
        return a;
    }
    let Some(m) = s.message_mut(channel, message) else { return not_found(codes::UNKNOWN_MESSAGE, "Unknown Message") };
    if m.pinned == pinned {
        return no_content();
    }
    m.pinned = pinned;
    let author = m.author.clone();
    let now = s.now();
    let mut event =
        json!({ "channel_id": channel, "last_pin_timestamp": if pinned { json!(now) } else { Value::Null } });
    if let Some(g) = s.guild_of(channel) {
        let kind = if pinned { audit::MESSAGE_PIN } else { audit::MESSAGE_UNPIN };
        s.record_audit(&g, BOT_ID, &author, kind, json!([]), json!({ "channel_id": channel, "message_id": message }));
        event["guild_id"] = json!(g);
    }
    s.dispatch("CHANNEL_PINS_UPDATE", event);
    no_content()
}

/// Renames a guild channel by `by`: audit log entry, CHANNEL_UPDATE. Nothing when the name
/// is the same.
pub(crate) fn rename(s: &mut State, channel: &str, name: &str, by: &str) {
    let Some(c) = s.channel_mut(channel) else { return };
    if c.name == name || c.kind != 0 {
        return;
    }
    let old = std::mem::replace(&mut c.name, name.to_string());
    let Some(guild) = c.guild.clone() else { return };
    let changes = json!([{ "key": "name", "old_value": old, "new_value": name }]);
    s.record_audit(&guild, by, channel, audit::CHANNEL_UPDATE, changes, Value::Null);
    if let Some(c) = s.channels.get(channel) {
        let event = channel_json(c, None);
        s.dispatch("CHANNEL_UPDATE", event);
    }
    s.publish_audit(&guild);
}

/// `PATCH /channels/{c}`: a rename (other settings are ignored); Manage Channels in the
/// channel.
fn modify_channel(s: &mut State, channel: &str, body: &Value) -> Answer {
    if !s.channels.contains_key(channel) {
        return not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel");
    }
    if let Err(a) = bot_sees(s, channel).and_then(|()| bot_holds(s, channel, permissions::MANAGE_CHANNELS, false)) {
        return a;
    }
    if let Some(name) = body["name"].as_str() {
        if name.is_empty() || name.chars().count() > 100 {
            return invalid_form("name: must be between 1 and 100 in length");
        }
        rename(s, channel, name, BOT_ID);
    }
    let c: &Channel = match s.channels.get(channel) {
        Some(c) => c,
        None => return not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel"),
    };
    ok(channel_json(c, c.recipient.as_deref().map(|u| s.user_json(u))))
}

/// `POST /users/@me/channels`: the DM channel with a user (one per user).
fn open_dm(s: &mut State, body: &Value) -> Answer {
    let Some(user) = body["recipient_id"].as_str().map(str::to_string) else {
        return invalid_form("recipient_id: required");
    };
    let id = match s.dm_channels.get(&user) {
        Some(id) => id.clone(),
        None => {
            let id = s.new_id();
            let channel = Channel {
                id: id.clone(),
                guild: None,
                name: String::new(),
                kind: 1,
                recipient: Some(user.clone()),
                messages: Vec::new(),
                overwrites: Vec::new(),
            };
            s.channels.insert(id.clone(), channel);
            s.dm_channels.insert(user.clone(), id.clone());
            id
        }
    };
    match s.channels.get(&id) {
        Some(c) => ok(channel_json(c, Some(s.user_json(&user)))),
        None => not_found(codes::UNKNOWN_CHANNEL, "Unknown Channel"),
    }
}

/// Adds (`grant`) or removes a member's role by `by`: audit log entry and
/// GUILD_MEMBER_UPDATE when the roles changed. Err with Discord's answer when the guild,
/// member or role is unknown.
pub(crate) fn change_role(
    s: &mut State,
    guild: &str,
    user: &str,
    role: &str,
    grant: bool,
    by: &str,
) -> Result<(), Answer> {
    let Some(g) = s.guild(guild) else { return Err(not_found(codes::UNKNOWN_GUILD, "Unknown Guild")) };
    let Some(r) = g.role(role).cloned() else { return Err(not_found(codes::UNKNOWN_ROLE, "Unknown Role")) };
    if g.member(user).is_none() {
        return Err(not_found(codes::UNKNOWN_MEMBER, "Unknown Member"));
    }
    let Some(m) = s.guild_mut(guild).and_then(|g| g.members.iter_mut().find(|m| m.user == user)) else {
        return Err(not_found(codes::UNKNOWN_MEMBER, "Unknown Member"));
    };
    let had = m.roles.iter().any(|x| x == role);
    if had == grant {
        return Ok(());
    }
    if grant {
        m.roles.push(role.to_string());
    } else {
        m.roles.retain(|x| x != role);
    }
    let key = if grant { "$add" } else { "$remove" };
    let changes = json!([{ "key": key, "new_value": [{ "id": r.id, "name": r.name }] }]);
    s.record_audit(guild, by, user, audit::MEMBER_ROLE_UPDATE, changes, Value::Null);
    let event = s.member_update(guild, user);
    s.dispatch("GUILD_MEMBER_UPDATE", event);
    s.publish_audit(guild);
    Ok(())
}

/// `PUT`/`DELETE /guilds/{g}/members/{u}/roles/{r}`: the bot needs Manage Roles, and the
/// role must be strictly below its highest role and not managed.
fn member_role(s: &mut State, guild: &str, user: &str, role: &str, grant: bool) -> Answer {
    let Some(g) = s.guild(guild) else { return not_found(codes::UNKNOWN_GUILD, "Unknown Guild") };
    let Some(r) = g.role(role) else { return not_found(codes::UNKNOWN_ROLE, "Unknown Role") };
    if g.member(user).is_none() {
        return not_found(codes::UNKNOWN_MEMBER, "Unknown Member");
    }
    if let Err(a) = bot_holds_in_guild(s, guild, permissions::MANAGE_ROLES) {
        return a;
    }
    if r.managed || !g.outranks(BOT_ID, r.position) {
        return missing_permissions();
    }
    match change_role(s, guild, user, role, grant, BOT_ID) {
        Ok(()) => no_content(),
        Err(a) => a,
    }
}

/// Removes a member from a guild: GUILD_MEMBER_REMOVE, and an audit log entry when `kicked_by`.
pub(crate) fn remove_member(s: &mut State, guild: &str, user: &str, kicked_by: Option<&str>) {
    let Some(g) = s.guild_mut(guild) else { return };
    let before = g.members.len();
    g.members.retain(|m| m.user != user);
    if g.members.len() == before {
        return;
    }
    if let Some(by) = kicked_by {
        s.record_audit(guild, by, user, audit::MEMBER_KICK, json!([]), Value::Null);
    }
    let event = json!({ "guild_id": guild, "user": s.user_json(user) });
    s.dispatch("GUILD_MEMBER_REMOVE", event);
}

/// `DELETE /guilds/{g}/members/{u}`: a kick. The bot needs Kick Members, and the member's
/// highest role must be strictly below the bot's; the owner cannot be kicked.
fn kick(s: &mut State, guild: &str, user: &str) -> Answer {
    let Some(g) = s.guild(guild) else { return not_found(codes::UNKNOWN_GUILD, "Unknown Guild") };
    let Some(position) = g.highest_position(user) else { return not_found(codes::UNKNOWN_MEMBER, "Unknown Member") };
    if let Err(a) = bot_holds_in_guild(s, guild, permissions::KICK_MEMBERS) {
        return a;
    }
    if g.owner == user || !g.outranks(BOT_ID, position) {
        return missing_permissions();
    }
    remove_member(s, guild, user, Some(BOT_ID));
    no_content()
}

/// `GET /guilds/{g}/audit-logs?action_type=&user_id=&before=&limit=`: newest first; the bot
/// needs View Audit Log.
fn audit_logs(s: &State, guild: &str, r: &Req) -> Answer {
    if s.guild(guild).is_none() {
        return not_found(codes::UNKNOWN_GUILD, "Unknown Guild");
    }
    if let Err(a) = bot_holds_in_guild(s, guild, permissions::VIEW_AUDIT_LOG) {
        return a;
    }
    let action = r.param("action_type").and_then(|a| a.parse::<u64>().ok());
    let limit = r.param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).clamp(1, 100);
    let entries: Vec<Value> = s
        .audit_log(guild)
        .iter()
        .rev()
        .filter(|e| action.is_none_or(|a| e.action_type == a))
        .filter(|e| r.param("user_id").is_none_or(|u| e.user_id == u))
        .filter(|e| r.param("before").is_none_or(|b| by_snowflake(&e.id, b).is_lt()))
        .filter(|e| r.param("after").is_none_or(|b| by_snowflake(&e.id, b).is_gt()))
        .take(limit)
        .map(|e| {
            let mut v = json!({
                "id": e.id, "user_id": e.user_id, "target_id": e.target_id, "action_type": e.action_type,
                "changes": e.changes, "reason": null
            });
            if !e.options.is_null() {
                v["options"] = e.options.clone();
            }
            v
        })
        .collect();
    ok(json!({
        "audit_log_entries": entries, "users": [], "integrations": [], "webhooks": [],
        "guild_scheduled_events": [], "threads": [], "application_commands": [], "auto_moderation_rules": []
    }))
}

fn ephemeral(data: &Value) -> bool {
    data["flags"].as_u64().is_some_and(|f| f & 64 != 0)
}

/// Takes one edit of an old message from the channel's window, or answers how long until
/// the window refills.
fn spend_old_edit(s: &mut State, channel: &str, now: tokio::time::Instant) -> Result<(), Duration> {
    let (per_window, window) = s.old_edits;
    let w = take_window(s, format!("old-edits:{channel}"), per_window, window, now);
    if w.used > per_window { Err(w.reset_at - now) } else { Ok(()) }
}

/// Takes one request from the window under `key` (opened, or opened again once it has
/// reset, at `now`); the window as it is after, `used` beyond `per_window` when it was
/// spent already (a refused request takes nothing).
fn take_window(s: &mut State, key: String, per_window: u32, window: Duration, now: tokio::time::Instant) -> Window {
    let w = s
        .windows
        .entry(key)
        .and_modify(|w| {
            if w.reset_at <= now {
                *w = Window { reset_at: now + window, used: 0 };
            }
        })
        .or_insert(Window { reset_at: now + window, used: 0 });
    if w.used >= per_window {
        return Window { reset_at: w.reset_at, used: per_window + 1 };
    }
    w.used += 1;
    *w
}

/// The interaction a webhook token belongs to, while the token lives.
fn by_token(s: &State, token: &str) -> Result<Interaction, Answer> {
    let i = s
        .tokens
        .get(token)
        .and_then(|id| s.interactions.get(id))
        .cloned()
        .ok_or_else(|| not_found(codes::UNKNOWN_WEBHOOK, "Unknown Webhook"))?;
    if i.created.elapsed() > limits::TOKEN_LIFETIME {
        return Err(error(401, codes::INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token"));
    }
    Ok(i)
}

/// Posts a public answer in the interaction's channel as a bot message.
fn public_message(s: &mut State, i: &Interaction, data: &Value, files: &[(String, String)]) -> String {
    let content = data["content"].as_str().unwrap_or_default().to_string();
    let id = s.create_message(&i.channel, BOT_ID, &content, components_of(data), Vec::new(), None);
    let urls: Vec<String> = files.iter().map(|(f, _)| cdn_url(&i.channel, &id, f)).collect();
    if let Some(m) = s.message_mut(&i.channel, &id) {
        m.attachments = urls;
        m.pinged = pings(&content, &data["allowed_mentions"]);
        let m = m.clone();
        if s.guild_of(&i.channel).is_some() {
            let event = s.message_event(&m);
            s.dispatch("MESSAGE_CREATE", event);
        }
    }
    id
}

/// Applies `data` (content, components) to a stored message.
fn update_message(s: &mut State, channel: &str, id: &str, data: &Value) {
    let Some(m) = s.message_mut(channel, id) else { return };
    if let Some(c) = data["content"].as_str() {
        for who in pings(c, &data["allowed_mentions"]) {
            if !m.pinged.contains(&who) {
                m.pinged.push(who);
            }
        }
        m.content = c.to_string();
    }
    if data.get("components").is_some() {
        m.components = components_of(data);
    }
    m.edited = true;
    let m = m.clone();
    if s.guild_of(channel).is_some() {
        let event = s.message_event(&m);
        s.dispatch("MESSAGE_UPDATE", event);
    }
}

/// `POST /interactions/{id}/{token}/callback`: the first (and only) answer to an
/// interaction. A public message answer (type 4 without the ephemeral flag) becomes a bot
/// message in the channel; type 7 updates the message a pressed component is on.
fn callback(s: &mut State, id: &str, token: &str, r: &Req) -> Answer {
    let Some(i) = s.interactions.get(id).cloned() else {
        return not_found(codes::UNKNOWN_INTERACTION, "Unknown interaction");
    };
    if i.token != token {
        return error(401, codes::INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token");
    }
    if i.response.is_some() {
        return error(400, codes::ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.");
    }
    if i.created.elapsed() > limits::ANSWER_WITHIN {
        return not_found(codes::UNKNOWN_INTERACTION, "Unknown interaction");
    }
    let Some(kind) = r.body["type"].as_u64() else { return invalid_form("type: required") };
    let data = r.body["data"].clone();
    if let Err(a) = content_of(&data) {
        return a;
    }
    let mut message = None;
    match kind {
        4 if !ephemeral(&data) => message = Some(public_message(s, &i, &data, &r.files)),
        6 => message.clone_from(&i.source),
        7 => {
            if let Some(m) = &i.source {
                update_message(s, &i.channel, m, &data);
            }
            message.clone_from(&i.source);
        }
        _ => {}
    }
    let answer_id = message.is_none().then(|| s.new_id());
    if let Some(stored) = s.interactions.get_mut(id) {
        stored.response = Some(Response { kind, data, files: r.files.clone() });
        stored.message = message;
        stored.answer_id = answer_id;
    }
    no_content()
}

/// The message object standing for an interaction's original answer.
fn original_json(s: &State, i: &Interaction) -> Value {
    if let Some(m) = i.message.as_deref().and_then(|m| s.message(&i.channel, m)) {
        return s.message_json(m);
    }
    let data = i.edits.last().or(i.response.as_ref()).map(|r| r.data.clone()).unwrap_or(Value::Null);
    json!({
        "id": i.answer_id.clone().unwrap_or_else(|| i.id.clone()),
        "channel_id": i.channel,
        "author": s.user_json(BOT_ID),
        "content": data["content"].as_str().unwrap_or_default(),
        "timestamp": super::state::timestamp(s.clock),
        "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
        "attachments": [], "embeds": [], "pinned": false, "type": 20,
        "flags": 64,
        "components": components_of(&data),
        "webhook_id": APPLICATION_ID,
        "application_id": APPLICATION_ID
    })
}

/// `GET /webhooks/{app}/{token}/messages/@original`.
fn original(s: &State, token: &str) -> Answer {
    match by_token(s, token) {
        Ok(i) if i.response.is_some() => ok(original_json(s, &i)),
        Ok(_) => not_found(codes::UNKNOWN_MESSAGE, "Unknown Message"),
        Err(a) => a,
    }
}

/// `PATCH /webhooks/{app}/{token}/messages/@original`: an edit of the first answer (a
/// deferred public answer becomes a channel message at its first edit).
fn edit_original(s: &mut State, token: &str, r: &Req) -> Answer {
    let i = match by_token(s, token) {
        Ok(i) => i,
        Err(a) => return a,
    };
    let Some(first) = &i.response else { return not_found(codes::UNKNOWN_MESSAGE, "Unknown Message") };
    if let Err(a) = content_of(&r.body) {
        return a;
    }
    let mut message = i.message.clone();
    match (&message, first.kind) {
        (Some(m), _) => update_message(s, &i.channel, m, &r.body),
        (None, 5) if !ephemeral(&first.data) => message = Some(public_message(s, &i, &r.body, &r.files)),
        _ => {}
    }
    let edit = Response { kind: 0, data: r.body.clone(), files: r.files.clone() };
    let Some(stored) = s.interactions.get_mut(&i.id) else {
        return not_found(codes::UNKNOWN_WEBHOOK, "Unknown Webhook");
    };
    stored.edits.push(edit);
    stored.message = message;
    let stored = stored.clone();
    ok(original_json(s, &stored))
}

/// `POST /webhooks/{app}/{token}`: a followup message (public ones in the channel).
fn followup(s: &mut State, token: &str, r: &Req) -> Answer {
    let i = match by_token(s, token) {
        Ok(i) => i,
        Err(a) => return a,
    };
    if i.response.is_none() {
        return not_found(codes::UNKNOWN_WEBHOOK, "Unknown Webhook");
    }
    if let Err(a) = content_of(&r.body) {
        return a;
    }
    let public = (!ephemeral(&r.body)).then(|| public_message(s, &i, &r.body, &r.files));
    if let Some(stored) = s.interactions.get_mut(&i.id) {
        stored.followups.push(Response { kind: 0, data: r.body.clone(), files: r.files.clone() });
    }
    match public.as_deref().and_then(|m| s.message(&i.channel, m)) {
        Some(m) => ok(s.message_json(m)),
        None => {
            let mut v = original_json(s, &i);
            v["id"] = json!(s.new_id());
            v["content"] = json!(r.body["content"].as_str().unwrap_or_default());
            v["components"] = components_of(&r.body);
            ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discord::payloads::emoji_json;

    #[test]
    fn emoji_paths_decode_to_their_keys() {
        assert_eq!(percent_decode("%F0%9F%91%8D"), "👍");
        assert_eq!(percent_decode("aye%3A500000000000000001"), "aye:500000000000000001");
        assert_eq!(percent_decode("aye:5"), "aye:5");
        assert_eq!(emoji_json("aye:5"), json!({ "id": "5", "name": "aye", "animated": false }));
    }
}
