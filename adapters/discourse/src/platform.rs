//! Polity's effects on one forum.
//!
//! | effect | request |
//! |---|---|
//! | `Revert` `discourse.topic_created` / `discourse.post_created` | `DELETE /t/{topic_id}.json` / `DELETE /posts/{post_id}.json` (one gone already is done): its content stays in the action |
//! | `Execute` of them | `PUT /t/{topic_id}/recover` / `PUT /posts/{post_id}/recover`: the same topic or post back, with its title (posting it again would fail: the title is taken) |
//! | `Notify` | a private message to the member from the user Polity acts as |
//! | `Call` `discourse.create_topic` (`title`, `raw`, `category`) / `discourse.reply` (`topic_id`, `raw`) / `discourse.private_message` (`to`, `title`, `raw`) | `POST /posts.json` |
//! | `Call` `discourse.delete` / `discourse.recover` (`topic_id` or `post_id`) | as above |
//! | `Call` `discourse.lock` (`topic_id`) | `PUT /t/{topic_id}/status.json` (`closed`) |
//!
//! | `StartProcess` `discourse.poll` | `POST /posts.json` with `[poll]`; read every `poll_secs` and at its closing time with `GET /posts/{id}.json` until Discourse closes it (Discourse sends no webhook for a poll's votes or its close) |
//!
//! A post retried after its answer was lost that Discourse refuses as a repeat ("too
//! similar") was made the first time: it is done. A poll's start retried is first looked for
//! among the forum's latest posts (Polity's user, ending with the proposal's mark). Votes are held in a chat.

use crate::api::{Api, ApiError};
use crate::webhook::{POST_CREATED, TOPIC_CREATED};
use polity_governance::action::Action;
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, Request,
};
use reqwest::Method;
use serde_json::{Map, Value, json};

pub const CREATE_TOPIC: &str = "discourse.create_topic";
pub const REPLY: &str = "discourse.reply";
pub const PRIVATE_MESSAGE: &str = "discourse.private_message";
pub const DELETE: &str = "discourse.delete";
pub const RECOVER: &str = "discourse.recover";
pub const LOCK: &str = "discourse.lock";
/// The process a policy starts with `polity.start_process("discourse.poll", #{...})`.
pub const POLL: &str = "discourse.poll";

/// The keys of a poll's outcome that are not options.
const OUTCOME_KEYS: &[&str] = &["process", "status", "post_id", "topic_id", "voters", "closes_at", "url", "connection"];

/// One forum's platform for a community.
#[derive(Clone, Debug)]
pub struct DiscoursePlatform {
    connection: String,
    api: Api,
    poll_every: std::time::Duration,
    refused: Option<String>,
}

fn id_param(params: &Map<String, Value>, key: &str) -> Option<u64> {
    match params.get(key) {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

fn text_param(params: &Map<String, Value>, key: &str, call: &str) -> Result<String, PlatformError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| PlatformError::Permanent(format!("{call} needs `{key}`")))
}

/// The last line of a poll Polity starts for `proposal` by the effect keyed `key` (unique
/// even where two communities share a forum): how a retried start finds it.
fn poll_mark(proposal: i64, key: i64) -> String {
    format!("(Polity proposal #{proposal}, {key})")
}

/// Whether Discourse refused a post as a repeat of one just made.
fn repeat(e: &ApiError) -> bool {
    matches!(e, ApiError::Invalid(why) if why.contains("too similar") || why.contains("already"))
}

impl DiscoursePlatform {
    pub fn new(connection: &str, api: Api, poll_every: std::time::Duration) -> Self {
        Self { connection: connection.into(), api, poll_every, refused: None }
    }

    /// Starts a poll: a topic (`title`, `text`, `category`) or a reply in `topic_id`, holding
    /// `[poll]` with `options` (2 to 20), closing at `closes` (an RFC 3339 time) if given.
    async fn start_poll(
        &self,
        proposal: i64,
        params: &Map<String, Value>,
        key: i64,
        retried: bool,
    ) -> Result<Performed, PlatformError> {
        let options: Vec<String> = params
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|o| o.trim().replace(['\n', '[', ']', '*'], " "))
            .filter(|o| !o.trim().is_empty())
            .collect();
        if !(2..=20).contains(&options.len()) {
            return Err(PlatformError::Permanent(format!("{POLL} needs `options`: 2 to 20 of them")));
        }
        if let Some(taken) = options.iter().find(|o| OUTCOME_KEYS.contains(&o.trim())) {
            return Err(PlatformError::Permanent(format!("{POLL}: `{taken}` cannot be an option's name")));
        }
        let mut head = String::from("[poll name=poll type=regular results=always public=true");
        let mut closes_at = None;
        if let Some(closes) = params.get("closes").and_then(Value::as_str) {
            let at = chrono::DateTime::parse_from_rfc3339(closes).map_err(|_| {
                PlatformError::Permanent(format!("{POLL}: closes is a time like 2026-12-24T18:00:00Z, not `{closes}`"))
            })?;
            let at = at.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            head.push_str(&format!(" close={at}"));
            closes_at = Some(at);
        }
        let text = params.get("text").and_then(Value::as_str).unwrap_or_default();
        let list: String = options.iter().map(|o| format!("* {o}\n")).collect();
        let mark = poll_mark(proposal, key);
        let raw = format!("{text}\n\n{head}]\n{list}[/poll]\n\n{mark}");
        let mut body = json!({ "raw": raw });
        match id_param(params, "topic_id") {
            Some(topic) => body["topic_id"] = json!(topic),
            None => {
                body["title"] = json!(text_param(params, "title", POLL)?);
                if let Some(category) = id_param(params, "category") {
                    body["category"] = json!(category);
                }
            }
        }
        // A start retried after its answer was lost may have made the poll: find it before
        // making another (Discourse would refuse the repeat, or take it as a second poll).
        let found = if retried { self.own_post_marked(&mark).await? } else { None };
        let made = match found {
            Some(made) => made,
            None => self.api.call(Method::POST, "/posts.json", Some(&body)).await?,
        };
        let post = made
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| PlatformError::Permanent("Discourse's answer has no post id".into()))?;
        let topic = made.get("topic_id").and_then(Value::as_u64).unwrap_or(0);
        let mut outcome = json!({
            "process": POLL, "status": "open", "post_id": post, "topic_id": topic, "voters": 0,
            "connection": self.connection,
        });
        if topic > 0 {
            outcome["url"] = json!(format!("{}/t/{topic}", self.api.base()));
        }
        if let Some(at) = closes_at {
            // The host reads the poll again as it closes.
            outcome["closes_at"] = json!(at);
        }
        for option in &options {
            outcome[option.as_str()] = json!(0);
        }
        Ok(Performed { process: Some(outcome), ..Performed::default() })
    }

    /// The newest post of Polity's user holding `mark`, among the forum's latest posts
    /// (`GET /posts.json`, which Discourse answers with their `raw`).
    async fn own_post_marked(&self, mark: &str) -> Result<Option<Value>, PlatformError> {
        let latest = self.api.call(Method::GET, "/posts.json", None).await?;
        let me = self.api.username();
        Ok(latest
            .get("latest_posts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| {
                p.get("username").and_then(Value::as_str).is_some_and(|u| u.eq_ignore_ascii_case(me))
                    && p.get("raw").and_then(Value::as_str).is_some_and(|raw| raw.trim_end().ends_with(mark))
            })
            .cloned())
    }

    #[must_use]
    pub fn refusing(&self, forum: &str) -> Self {
        let mut refused = self.clone();
        refused.refused = Some(format!("this community does not govern the Discourse forum {forum}"));
        refused
    }

    /// `POST /posts.json`, once: a retry Discourse calls a repeat was made before.
    async fn post(&self, body: Value, retried: bool) -> Result<Performed, PlatformError> {
        match self.api.call(Method::POST, "/posts.json", Some(&body)).await {
            Ok(_) => Ok(Performed::default()),
            Err(e) if retried && repeat(&e) => Ok(Performed::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes or recovers the topic (`topic_id`) or post (`post_id`) `params` name.
    async fn delete_or_recover(
        &self,
        params: &Map<String, Value>,
        recover: bool,
        call: &str,
    ) -> Result<Performed, PlatformError> {
        let (method, path) = match (id_param(params, "post_id"), id_param(params, "topic_id"), recover) {
            (Some(post), _, false) => (Method::DELETE, format!("/posts/{post}.json")),
            (Some(post), _, true) => (Method::PUT, format!("/posts/{post}/recover")),
            (None, Some(topic), false) => (Method::DELETE, format!("/t/{topic}.json")),
            (None, Some(topic), true) => (Method::PUT, format!("/t/{topic}/recover")),
            (None, None, _) => return Err(PlatformError::Permanent(format!("{call} needs `topic_id` or `post_id`"))),
        };
        match self.api.call(method, &path, None).await {
            Ok(_) => Ok(Performed::default()),
            // Deleting what is gone, or recovering what is back, is done.
            Err(ApiError::NotFound) if !recover => Ok(Performed::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// A governed topic or post: `recover` brings it back, else it is deleted.
    async fn governed(&self, action: &Action, recover: bool) -> Result<Performed, PlatformError> {
        let data = action.data.to_map();
        let mut which = Map::new();
        match action.kind.as_str() {
            TOPIC_CREATED => {
                which.insert("topic_id".into(), data.get("topic_id").cloned().unwrap_or(Value::Null));
            }
            POST_CREATED => {
                which.insert("post_id".into(), data.get("post_id").cloned().unwrap_or(Value::Null));
            }
            other => {
                let verb = if recover { "carry out" } else { "undo" };
                return Err(PlatformError::Permanent(format!("Polity cannot {verb} {other} on Discourse")));
            }
        }
        self.delete_or_recover(&which, recover, action.kind.as_str()).await
    }

    async fn call(&self, name: &str, params: &Map<String, Value>, retried: bool) -> Result<Performed, PlatformError> {
        match name {
            CREATE_TOPIC => {
                let mut body =
                    json!({ "title": text_param(params, "title", name)?, "raw": text_param(params, "raw", name)? });
                if let Some(category) = id_param(params, "category") {
                    body["category"] = json!(category);
                }
                self.post(body, retried).await
            }
            REPLY => {
                let topic = id_param(params, "topic_id")
                    .ok_or_else(|| PlatformError::Permanent(format!("{name} needs `topic_id`")))?;
                self.post(json!({ "topic_id": topic, "raw": text_param(params, "raw", name)? }), retried).await
            }
            PRIVATE_MESSAGE => {
                let to = match params.get("to") {
                    Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                if to.trim().is_empty() {
                    return Err(PlatformError::Permanent(format!("{name} needs `to`")));
                }
                let body = json!({
                    "title": text_param(params, "title", name)?,
                    "raw": text_param(params, "raw", name)?,
                    "archetype": "private_message",
                    "target_recipients": to,
                });
                self.post(body, retried).await
            }
            DELETE => self.delete_or_recover(params, false, name).await,
            RECOVER => self.delete_or_recover(params, true, name).await,
            LOCK => {
                let topic = id_param(params, "topic_id")
                    .ok_or_else(|| PlatformError::Permanent(format!("{name} needs `topic_id`")))?;
                let body = json!({ "status": "closed", "enabled": "true" });
                self.api.call(Method::PUT, &format!("/t/{topic}/status.json"), Some(&body)).await?;
                Ok(Performed::default())
            }
            other => Err(PlatformError::Permanent(format!("Discourse has no action {other}"))),
        }
    }
}

impl Platform for DiscoursePlatform {
    fn name(&self) -> &str {
        &self.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { process_polled: Some(self.poll_every), ..Capabilities::default() }
    }

    /// A poll's votes now (`GET /posts/{post_id}.json`): each option's count, `voters`, and
    /// its status (`closed` once Discourse closed it).
    fn read_process<'a>(&'a self, outcome: &'a Value) -> BoxFuture<'a, Result<(String, Value), PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            let post = outcome
                .get("post_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| PlatformError::Permanent("a Discourse poll without its post".into()))?;
            let read = self.api.call(Method::GET, &format!("/posts/{post}.json"), None).await?;
            let poll = read
                .get("polls")
                .and_then(Value::as_array)
                .and_then(|polls| polls.iter().find(|p| p.get("name").and_then(Value::as_str) == Some("poll")))
                .ok_or_else(|| PlatformError::Permanent(format!("post {post} holds no poll any more")))?;
            let status = poll.get("status").and_then(Value::as_str).unwrap_or("open").to_string();
            let mut now = outcome.clone();
            for option in poll.get("options").and_then(Value::as_array).into_iter().flatten() {
                let name = option.get("html").and_then(Value::as_str).unwrap_or_default();
                if !name.is_empty() && !OUTCOME_KEYS.contains(&name) {
                    now[name] = json!(option.get("votes").and_then(Value::as_u64).unwrap_or(0));
                }
            }
            now["voters"] = json!(poll.get("voters").and_then(Value::as_u64).unwrap_or(0));
            now["status"] = json!(status);
            Ok((status, now))
        })
    }

    fn actions(&self) -> Vec<ActionInfo> {
        actions()
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            match request.effect {
                Effect::Revert { action, .. } => self.governed(action, false).await,
                Effect::Execute { action, .. } => self.governed(action, true).await,
                Effect::Call { name, params, .. } => self.call(name.as_str(), params, request.retried).await,
                Effect::Notify { account, text, .. } => {
                    let body = json!({
                        "title": "A note from Polity",
                        "raw": text,
                        "archetype": "private_message",
                        "target_recipients": account.account.as_str(),
                    });
                    self.post(body, request.retried).await
                }
                Effect::RemoveReaction { .. } => Ok(Performed::default()),
                Effect::PostVote { .. } | Effect::EditVote { .. } | Effect::Post { .. } => {
                    Err(PlatformError::Permanent(
                        "Polity holds votes about Discourse in a chat: name one in the policy's [vote] on".into(),
                    ))
                }
                Effect::StartProcess { proposal, name, params } if name.as_str() == POLL => {
                    self.start_poll(proposal.0, params, request.key, request.retried).await
                }
                Effect::StartProcess { name, .. } => {
                    Err(PlatformError::Permanent(format!("Discourse runs no process {name}")))
                }
            }
        })
    }
}

/// The actions and triggers Discourse offers policies.
pub fn actions() -> Vec<ActionInfo> {
    let topic = ("topic_id", "the topic's id");
    let post = ("post_id", "the post's id (instead of topic_id)");
    let mut all = vec![
        ActionInfo::new(
            TOPIC_CREATED,
            ActionKind::Governable,
            "a member opened a topic: deleted (its content kept) while voted on, recovered on pass",
            &[topic, ("title", "its title"), ("category_id", "its category"), ("username", "who opened it")],
        ),
        ActionInfo::new(
            POST_CREATED,
            ActionKind::Governable,
            "a member posted (a topic's first post is its topic: filter on post_number > 1): deleted while voted on, recovered on pass",
            &[
                post,
                topic,
                ("text", "what it says"),
                ("post_number", "its place in the topic"),
                ("username", "who posted it"),
            ],
        ),
        ActionInfo::new(
            CREATE_TOPIC,
            ActionKind::Action,
            "open a topic",
            &[("title", "its title"), ("raw", "its text (Markdown)"), ("category", "its category's id, optional")],
        ),
        ActionInfo::new(REPLY, ActionKind::Action, "reply in a topic", &[topic, ("raw", "the reply (Markdown)")]),
        ActionInfo::new(
            PRIVATE_MESSAGE,
            ActionKind::Action,
            "send a private message",
            &[("to", "usernames"), ("title", "its title"), ("raw", "its text (Markdown)")],
        ),
        ActionInfo::new(DELETE, ActionKind::Action, "delete a topic or post", &[topic, post]),
        ActionInfo::new(RECOVER, ActionKind::Action, "recover a deleted topic or post", &[topic, post]),
        ActionInfo::new(LOCK, ActionKind::Action, "close a topic to replies", &[topic]),
        ActionInfo::new(
            POLL,
            ActionKind::Process,
            "a Discourse poll decides: its outcome is each option's votes (`proposal.process.outcome.OPTION`), `voters`, and the status closed once Discourse closes it",
            &[
                ("title", "the poll's topic (or topic_id: a reply in that topic)"),
                ("text", "what is asked"),
                ("options", "its options, 2 to 20"),
                ("closes", "when it closes (RFC 3339), optional"),
                ("category", "the topic's category, optional"),
            ],
        ),
    ];
    for (name, what) in [
        ("discourse.topic_edited", "a topic was edited"),
        ("discourse.topic_destroyed", "a topic was deleted"),
        ("discourse.post_edited", "a post was edited"),
        ("discourse.post_destroyed", "a post was deleted"),
        ("discourse.user_created", "someone joined the forum"),
    ] {
        all.push(ActionInfo::new(
            name,
            ActionKind::Trigger,
            &format!("{what} (every webhook event is a trigger: discourse.EVENT)"),
            &[("username", "who did it")],
        ));
    }
    all
}
