//! A fake Discord REST API (v10) on wiremock: one helper per endpoint, answering with payloads
//! in the shapes of Discord's documentation, and what it received, in order.

pub mod gateway;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const BOT_ID: &str = "900000000000000001";

/// One request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub body: Value,
    pub authorization: Option<String>,
}

pub struct FakeDiscord {
    server: MockServer,
}

/// A message object as Discord returns it.
pub fn message_json(channel: &str, id: &str, content: &str) -> Value {
    json!({
        "id": id,
        "channel_id": channel,
        "author": { "id": BOT_ID, "username": "polity", "discriminator": "0", "global_name": null, "avatar": null, "bot": true },
        "content": content,
        "timestamp": "2026-11-22T12:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": false,
        "type": 0
    })
}

fn channel_json(id: &str, name: &str) -> Value {
    json!({ "id": id, "type": 0, "guild_id": "700000000000000001", "name": name, "position": 0, "permission_overwrites": [] })
}

fn no_content() -> ResponseTemplate {
    ResponseTemplate::new(204)
}

impl FakeDiscord {
    pub async fn start() -> Self {
        Self { server: MockServer::start().await }
    }

    pub fn url(&self) -> String {
        self.server.uri()
    }

    async fn mount(&self, m: &str, p: &str, response: ResponseTemplate) {
        Mock::given(method(m)).and(path(p)).respond_with(response).mount(&self.server).await;
    }

    /// `POST /channels/{channel}/messages`: answers with message `id`.
    pub async fn create_message(&self, channel: &str, id: &str) {
        let p = format!("/api/v10/channels/{channel}/messages");
        self.mount("POST", &p, ResponseTemplate::new(200).set_body_json(message_json(channel, id, ""))).await;
    }

    /// `PUT /channels/{channel}/messages/{message}/reactions/{emoji}/@me`, any emoji.
    pub async fn create_reaction(&self, channel: &str, message: &str) {
        Mock::given(method("PUT"))
            .and(path_regex(format!(r"^/api/v10/channels/{channel}/messages/{message}/reactions/[^/]+/@me$")))
            .respond_with(no_content())
            .mount(&self.server)
            .await;
    }

    /// `PATCH /channels/{channel}/messages/{message}`.
    pub async fn edit_message(&self, channel: &str, message: &str) {
        let p = format!("/api/v10/channels/{channel}/messages/{message}");
        self.mount("PATCH", &p, ResponseTemplate::new(200).set_body_json(message_json(channel, message, ""))).await;
    }

    /// `DELETE /channels/{channel}/messages/{message}`.
    pub async fn delete_message(&self, channel: &str, message: &str) {
        self.mount("DELETE", &format!("/api/v10/channels/{channel}/messages/{message}"), no_content()).await;
    }

    /// `DELETE /channels/{channel}/messages/{message}/reactions/{emoji}/{user}`, any emoji.
    pub async fn delete_user_reaction(&self, channel: &str, message: &str, user: &str) {
        Mock::given(method("DELETE"))
            .and(path_regex(format!(r"^/api/v10/channels/{channel}/messages/{message}/reactions/[^/]+/{user}$")))
            .respond_with(no_content())
            .mount(&self.server)
            .await;
    }

    /// `POST /users/@me/channels`: answers with DM channel `dm` with `user`.
    pub async fn create_dm(&self, dm: &str, user: &str) {
        let body = json!({
            "id": dm,
            "type": 1,
            "last_message_id": null,
            "recipients": [{ "id": user, "username": "someone", "discriminator": "0", "global_name": null, "avatar": null }]
        });
        self.mount("POST", "/api/v10/users/@me/channels", ResponseTemplate::new(200).set_body_json(body)).await;
    }

    /// `PATCH /channels/{channel}`.
    pub async fn modify_channel(&self, channel: &str) {
        let p = format!("/api/v10/channels/{channel}");
        self.mount("PATCH", &p, ResponseTemplate::new(200).set_body_json(channel_json(channel, "renamed"))).await;
    }

    /// `PUT` and `DELETE /guilds/{guild}/members/{user}/roles/{role}`.
    pub async fn member_role(&self, guild: &str, user: &str, role: &str) {
        let p = format!("/api/v10/guilds/{guild}/members/{user}/roles/{role}");
        self.mount("PUT", &p, no_content()).await;
        self.mount("DELETE", &p, no_content()).await;
    }

    /// `PUT /channels/{channel}/pins/{message}`.
    pub async fn pin_message(&self, channel: &str, message: &str) {
        self.mount("PUT", &format!("/api/v10/channels/{channel}/pins/{message}"), no_content()).await;
    }

    /// `DELETE /guilds/{guild}/members/{user}`.
    pub async fn kick(&self, guild: &str, user: &str) {
        self.mount("DELETE", &format!("/api/v10/guilds/{guild}/members/{user}"), no_content()).await;
    }

    /// `GET /gateway` (asked when the client is built) and `GET /gateway/bot` (asked when
    /// its shards start): the websocket URL serenity connects to, and one shard.
    #[allow(dead_code)]
    pub async fn gateway(&self, ws_url: &str) {
        self.mount("GET", "/api/v10/gateway", ResponseTemplate::new(200).set_body_json(json!({ "url": ws_url }))).await;
        let body = json!({
            "url": ws_url, "shards": 1,
            "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 }
        });
        self.mount("GET", "/api/v10/gateway/bot", ResponseTemplate::new(200).set_body_json(body)).await;
    }

    /// `GET /guilds/{guild}/audit-logs?action_type=..`: `entries` (newest first), each
    /// `(id, user_id, target_id)`.
    #[allow(dead_code)]
    pub async fn audit_log(&self, guild: &str, action_type: u8, entries: &[(&str, &str, &str)]) {
        let entries: Vec<Value> = entries
            .iter()
            .map(|(id, user, target)| {
                json!({
                    "id": id, "user_id": user, "target_id": target, "action_type": action_type,
                    "changes": [], "reason": null
                })
            })
            .collect();
        let body = json!({
            "audit_log_entries": entries, "users": [], "integrations": [], "webhooks": [],
            "guild_scheduled_events": [], "threads": [], "application_commands": [], "auto_moderation_rules": []
        });
        Mock::given(method("GET"))
            .and(path(format!("/api/v10/guilds/{guild}/audit-logs")))
            .and(query_param("action_type", action_type.to_string()))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&self.server)
            .await;
    }

    /// Any request to `method path` fails with `status` and Discord's JSON error `body`.
    pub async fn fail(&self, m: &str, p: &str, status: u16, body: Value, retry_after_header: Option<&str>) {
        let mut response = ResponseTemplate::new(status).set_body_json(body);
        if let Some(h) = retry_after_header {
            response = response.insert_header("Retry-After", h);
        }
        self.mount(m, p, response).await;
    }

    /// Any request to `method path` is answered `status` with `body` (none when `Null`) and
    /// `headers` (Discord's `X-RateLimit-*`, `Retry-After`): only the first time when `once`
    /// (a mock mounted later answers after it), else every time.
    #[allow(dead_code)]
    pub async fn answer(&self, m: &str, p: &str, status: u16, body: Value, headers: &[(&str, &str)], once: bool) {
        let mut response = ResponseTemplate::new(status);
        if !body.is_null() {
            response = response.set_body_json(body);
        }
        for (name, value) in headers {
            response = response.insert_header(*name, *value);
        }
        let mock = Mock::given(method(m)).and(path(p)).respond_with(response);
        let mock = if once { mock.up_to_n_times(1) } else { mock };
        mock.mount(&self.server).await;
    }

    /// What the fake received, in order.
    pub async fn received(&self) -> Vec<Received> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| Received {
                method: r.method.to_string(),
                path: r.url.path().to_string(),
                body: if r.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
                },
                authorization: r.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string),
            })
            .collect()
    }

    /// `(method, path)` of each request received, in order.
    pub async fn calls(&self) -> Vec<(String, String)> {
        self.received().await.into_iter().map(|r| (r.method, r.path)).collect()
    }
}
