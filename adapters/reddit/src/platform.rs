//! Polity's effects on one subreddit.
//!
//! | effect | request |
//! |---|---|
//! | `Revert` `reddit.post_submitted` | `POST /api/remove` (`spam=false`: Reddit takes a removal as spam unless told) |
//! | `Execute` of it | `POST /api/approve` |
//! | `PostVote` at a post (`t3_...`) | `POST /api/comment` on it: the vote's text and how to vote by reply |
//! | `EditVote` | `POST /api/editusertext` on that comment |
//! | `Post` at a post or comment | `POST /api/comment` |
//! | `Notify` | `POST /api/compose`, a private message from the account |
//! | `Call` `reddit.submit` (`title`, `text` or `url`), `reddit.comment` (`thing_id`, `text`), `reddit.message` (`to`, `subject`, `text`) | `POST /api/submit`, `/api/comment`, `/api/compose` |
//! | `Call` `reddit.remove` / `reddit.approve` / `reddit.lock` (`id`, a fullname) | `POST /api/remove`, `/api/approve`, `/api/lock` |
//! | reading a vote | `GET /comments/{post}?comment={id}`: the replies to Polity's comment, each account's latest `+1` (yes), `-1` (no) or `0` (abstain) |
//!
//! What Polity writes carries its effect's key in an empty link (`[](#polity-N)`, which
//! Reddit shows as nothing) at its end: a retry of one whose answer was lost looks for it
//! first, among the account's newest comments, posts or sent messages. Every post or comment
//! Polity moderates or replies to is checked to be in the connection's subreddit first
//! (`GET /api/info`): the account may moderate others.

use crate::api::{Api, ApiError};
use crate::poll::POST_SUBMITTED;
use polity_governance::action::Action;
use polity_governance::ids::{AccountRef, MessageRef};
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use polity_governance::vote::emoji::normalize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub const SUBMIT: &str = "reddit.submit";
pub const COMMENT: &str = "reddit.comment";
pub const MESSAGE: &str = "reddit.message";
pub const REMOVE: &str = "reddit.remove";
pub const APPROVE: &str = "reddit.approve";
pub const LOCK: &str = "reddit.lock";

/// How a vote on Reddit is cast, under the vote's text.
pub const HOW_TO_VOTE: &str =
    "*Reply `+1` to vote yes, `-1` to vote no (`0` to abstain). One vote an account: your latest reply counts.*";

/// The most of a comment Reddit takes.
pub const MAX_TEXT: usize = 10_000;

/// One subreddit's platform for a community.
#[derive(Clone, Debug)]
pub struct RedditPlatform {
    connection: String,
    api: Api,
    every: Duration,
    refused: Option<String>,
}

/// The empty link that marks what effect `key` wrote.
fn mark(key: i64) -> String {
    format!("[](#polity-{key})")
}

fn clip(text: &str, room: usize) -> String {
    if text.len() <= room {
        return text.to_string();
    }
    // Room for the ellipsis, three bytes.
    let mut end = room.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` with the mark of effect `key`, within Reddit's limit.
fn marked(text: &str, key: i64) -> String {
    let mark = mark(key);
    format!("{}\n\n{mark}", clip(text, MAX_TEXT - mark.len() - 2))
}

fn param<'a>(params: &'a Map<String, Value>, key: &str, call: &str) -> Result<&'a str, PlatformError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| PlatformError::Permanent(format!("{call} needs `{key}`")))
}

/// A fullname (`t3_abc12`, `t1_...`), checked.
fn fullname<'a>(params: &'a Map<String, Value>, key: &str, call: &str) -> Result<&'a str, PlatformError> {
    let name = param(params, key, call)?;
    let ok = name.len() > 3
        && name.len() <= 20
        && name.starts_with('t')
        && name.as_bytes()[2] == b'_'
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(PlatformError::Permanent(format!("{call}: `{name}` is not a Reddit fullname like t3_abc123")))
    }
}

/// The vote a reply casts: `+1`, `-1` or `0` as a word of it, and only one of them.
pub fn vote_of(body: &str) -> Option<&'static str> {
    let mut cast = None;
    for word in body.split_whitespace() {
        let word = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-'));
        let vote = match word {
            "+1" => "+1",
            "-1" => "-1",
            "0" | "+0" => "0",
            _ => continue,
        };
        match cast {
            None => cast = Some(vote),
            Some(v) if v == vote => {}
            Some(_) => return None,
        }
    }
    cast
}

impl RedditPlatform {
    pub fn new(connection: &str, api: Api, every: Duration) -> Self {
        Self { connection: connection.into(), api, every, refused: None }
    }

    #[must_use]
    pub fn refusing(&self) -> Self {
        let mut refused = self.clone();
        refused.refused = Some(format!("this community does not govern r/{}", self.api.config().subreddit));
        refused
    }

    fn me(&self) -> &str {
        &self.api.config().username
    }

    fn ours(&self, platform: &str) -> bool {
        platform == "reddit" || platform == self.connection
    }

    /// The newest of the account's own `listing` (`comments`, `submitted`) whose `field`
    /// holds `mark`.
    async fn own_marked(&self, listing: &str, field: &str, mark: &str) -> Result<Option<Value>, PlatformError> {
        let path =
            if listing == "sent" { "/message/sent".to_string() } else { format!("/user/{}/{listing}", self.me()) };
        let page = self.api.get(&path, &[("limit", "50".into())]).await?;
        Ok(page
            .pointer("/data/children")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("data"))
            // The mark ends what Polity wrote: one quoted inside it (a member's text) is not it.
            .find(|d| d.get(field).and_then(Value::as_str).is_some_and(|t| t.trim_end().ends_with(mark)))
            .cloned())
    }

    /// Checks that `thing` (a fullname) is in this connection's subreddit: the account may
    /// moderate others, and a community acts on its own subreddit only.
    async fn in_subreddit(&self, thing: &str) -> Result<(), PlatformError> {
        let info = self.api.get("/api/info", &[("id", thing.to_string())]).await?;
        let ours = &self.api.config().subreddit;
        match info.pointer("/data/children/0/data/subreddit").and_then(Value::as_str) {
            Some(sub) if sub.eq_ignore_ascii_case(ours) => Ok(()),
            Some(sub) => Err(PlatformError::Permanent(format!("{thing} is in r/{sub}, not r/{ours}"))),
            None => Err(PlatformError::Permanent(format!("Reddit shows no {thing}"))),
        }
    }

    /// Comments `text` on `thing` once; the comment (its `name`, `permalink`).
    async fn comment(&self, thing: &str, text: &str, key: i64, retried: bool) -> Result<Value, PlatformError> {
        if retried && let Some(made) = self.own_marked("comments", "body", &mark(key)).await? {
            return Ok(made);
        }
        self.in_subreddit(thing).await?;
        let made = self.api.post("/api/comment", &[("thing_id", thing.into()), ("text", marked(text, key))]).await?;
        made.pointer("/json/data/things/0/data")
            .cloned()
            .ok_or_else(|| PlatformError::Permanent("Reddit's answer holds no comment".into()))
    }

    async fn message(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        key: i64,
        retried: bool,
    ) -> Result<Performed, PlatformError> {
        if retried && self.own_marked("sent", "body", &mark(key)).await?.is_some() {
            return Ok(Performed::default());
        }
        let form = [("to", to.to_string()), ("subject", clip(subject, 100)), ("text", marked(text, key))];
        self.api.post("/api/compose", &form).await?;
        Ok(Performed::default())
    }

    async fn moderate(&self, path: &str, id: &str, remove: bool) -> Result<Performed, PlatformError> {
        self.in_subreddit(id).await?;
        let mut form = vec![("id", id.to_string())];
        if remove {
            form.push(("spam", "false".into()));
        }
        self.api.post(path, &form).await?;
        Ok(Performed::default())
    }

    async fn call(
        &self,
        name: &str,
        params: &Map<String, Value>,
        key: i64,
        retried: bool,
    ) -> Result<Performed, PlatformError> {
        match name {
            SUBMIT => {
                let title = clip(param(params, "title", name)?, 300);
                let url = params.get("url").and_then(Value::as_str).filter(|u| !u.trim().is_empty());
                let text = params.get("text").and_then(Value::as_str).unwrap_or_default();
                let m = mark(key);
                if retried {
                    let field = if url.is_some() { "url" } else { "selftext" };
                    let looked_for = url.map_or(m.clone(), str::to_string);
                    if self
                        .own_marked("submitted", field, &looked_for)
                        .await?
                        .is_some_and(|p| p.get("title").and_then(Value::as_str) == Some(title.as_str()))
                    {
                        return Ok(Performed::default());
                    }
                }
                let mut form = vec![("sr", self.api.config().subreddit.clone()), ("title", title)];
                match url {
                    Some(url) => form.extend([("kind", "link".to_string()), ("url", url.to_string())]),
                    None => form.extend([("kind", "self".to_string()), ("text", marked(text, key))]),
                }
                self.api.post("/api/submit", &form).await?;
                Ok(Performed::default())
            }
            COMMENT => {
                let thing = fullname(params, "thing_id", name)?;
                self.comment(thing, param(params, "text", name)?, key, retried).await?;
                Ok(Performed::default())
            }
            MESSAGE => {
                let to = param(params, "to", name)?.trim_start_matches("/u/").trim_start_matches("u/");
                let subject = params.get("subject").and_then(Value::as_str).unwrap_or("A note from Polity");
                self.message(to, subject, param(params, "text", name)?, key, retried).await
            }
            REMOVE => self.moderate("/api/remove", fullname(params, "id", name)?, true).await,
            APPROVE => self.moderate("/api/approve", fullname(params, "id", name)?, false).await,
            LOCK => self.moderate("/api/lock", fullname(params, "id", name)?, false).await,
            other => Err(PlatformError::Permanent(format!("Reddit has no action {other}"))),
        }
    }

    /// A governed post: held (removed) or carried out (approved).
    async fn governed(&self, action: &Action, approve: bool) -> Result<Performed, PlatformError> {
        if action.kind.as_str() != POST_SUBMITTED {
            let verb = if approve { "carry out" } else { "undo" };
            return Err(PlatformError::Permanent(format!("Polity cannot {verb} {} on Reddit", action.kind)));
        }
        let id = action.data.get("fullname").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut params = Map::new();
        params.insert("id".into(), Value::String(id));
        let (path, call) = if approve { ("/api/approve", APPROVE) } else { ("/api/remove", REMOVE) };
        self.moderate(path, fullname(&params, "id", call)?, !approve).await
    }

    async fn edit_vote(
        &self,
        text: &str,
        closed: bool,
        messages: &[MessageRef],
        key: i64,
    ) -> Result<Performed, PlatformError> {
        for message in messages.iter().filter(|m| self.ours(m.platform.as_str())) {
            let body = if closed { text.to_string() } else { format!("{text}\n\n{HOW_TO_VOTE}") };
            let form = [("thing_id", message.message.to_string()), ("text", marked(&body, key))];
            match self.api.post("/api/editusertext", &form).await {
                // A vote comment deleted since: nothing to edit.
                Ok(_) | Err(ApiError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Performed::default())
    }
}

impl Platform for RedditPlatform {
    fn name(&self) -> &str {
        &self.connection
    }

    fn capabilities(&self) -> Capabilities {
        // Replies stand for reactions: read back, never removed by Polity.
        Capabilities {
            reactions: true,
            edits: true,
            read_reactions: true,
            remove_others_reactions: false,
            reactions_polled: Some(self.every),
            ..Capabilities::default()
        }
    }

    fn read_reactions<'a>(
        &'a self,
        message: &'a MessageRef,
        emoji: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ReactionRead>, PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            let post = message.channel.trim_start_matches("t3_");
            let comment = message.message.trim_start_matches("t1_");
            let query = [("comment", comment.to_string()), ("depth", "2".into()), ("limit", "500".into())];
            let answer = self.api.get(&format!("/comments/{post}"), &query).await?;
            let replies = answer
                .pointer("/1/data/children")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("data"))
                .find(|d| d.get("id").and_then(Value::as_str) == Some(comment))
                .and_then(|d| d.pointer("/replies/data/children"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // Each account's latest vote.
            let mut latest: BTreeMap<String, (f64, &'static str)> = BTreeMap::new();
            for reply in replies.iter().filter(|r| r.get("kind").and_then(Value::as_str) == Some("t1")) {
                let Some(d) = reply.get("data") else { continue };
                let author = d.get("author").and_then(Value::as_str).unwrap_or_default();
                if author.is_empty() || author == "[deleted]" || author.eq_ignore_ascii_case(self.me()) {
                    continue;
                }
                let Some(vote) = vote_of(d.get("body").and_then(Value::as_str).unwrap_or_default()) else { continue };
                let at = d.get("created_utc").and_then(Value::as_f64).unwrap_or(0.0);
                if latest.get(author).is_none_or(|(t, _)| *t <= at) {
                    latest.insert(author.to_string(), (at, vote));
                }
            }
            let option = |vote: &str| {
                let wanted = normalize(match vote {
                    "+1" => "👍",
                    "-1" => "👎",
                    _ => "🤷",
                });
                emoji.iter().find(|e| normalize(e) == wanted)
            };
            let mut read: BTreeMap<&String, Vec<(AccountRef, String)>> = BTreeMap::new();
            for (author, (_, vote)) in latest {
                if let Some(e) = option(vote) {
                    read.entry(e).or_default().push((AccountRef::new("reddit", author.as_str()), author));
                }
            }
            Ok(emoji
                .iter()
                .map(|e| ReactionRead { emoji: e.clone(), users: read.get(e).cloned().unwrap_or_default() })
                .collect())
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
            let (key, retried) = (request.key, request.retried);
            match request.effect {
                Effect::Revert { action, .. } => self.governed(action, false).await,
                Effect::Execute { action, .. } if action.kind.as_str() == POST_SUBMITTED => {
                    self.governed(action, true).await
                }
                Effect::Execute { action, .. } => {
                    let data = action.data.to_map();
                    self.call(action.kind.as_str(), &data, key, retried).await
                }
                Effect::PostVote { place, text, options, .. } => {
                    let representable =
                        options.iter().all(|o| ["👍", "👎", "🤷"].iter().any(|e| normalize(e) == normalize(&o.emoji)));
                    if !representable {
                        return Err(PlatformError::Permanent(
                            "a vote on Reddit is yes / no (/ abstain) by +1 and -1 replies: hold one with more options in a chat".into(),
                        ));
                    }
                    let thing = place.channel.as_str();
                    if !thing.starts_with("t3_") && !thing.starts_with("t1_") {
                        return Err(PlatformError::Permanent(format!(
                            "`{thing}` is not a Reddit post or comment to vote under"
                        )));
                    }
                    let made = self.comment(thing, &format!("{text}\n\n{HOW_TO_VOTE}"), key, retried).await?;
                    let name = made.get("name").and_then(Value::as_str).unwrap_or_default();
                    if name.is_empty() {
                        return Err(PlatformError::Permanent("Reddit's comment has no name".into()));
                    }
                    let post = made.get("link_id").and_then(Value::as_str).unwrap_or(thing);
                    let link =
                        made.get("permalink").and_then(Value::as_str).map(|p| format!("https://www.reddit.com{p}"));
                    Ok(Performed {
                        message: Some(MessageRef::new(self.connection.as_str(), post, name)),
                        link,
                        ..Performed::default()
                    })
                }
                Effect::EditVote { text, closed, .. } => {
                    self.edit_vote(text, *closed, request.vote_messages, key).await
                }
                Effect::Post { place, text } => {
                    let made = self.comment(place.channel.as_str(), text, key, retried).await?;
                    let name = made.get("name").and_then(Value::as_str).unwrap_or_default();
                    let post = made.get("link_id").and_then(Value::as_str).unwrap_or(place.channel.as_str());
                    Ok(Performed {
                        message: Some(MessageRef::new(self.connection.as_str(), post, name)),
                        ..Performed::default()
                    })
                }
                Effect::Notify { account, text, .. } => {
                    self.message(account.account.as_str(), "A note from Polity", text, key, retried).await
                }
                Effect::Call { name, params, .. } => self.call(name.as_str(), params, key, retried).await,
                Effect::RemoveReaction { .. } => Ok(Performed::default()),
                Effect::StartProcess { .. } => {
                    Err(PlatformError::Permanent("Reddit runs no decision processes".into()))
                }
            }
        })
    }
}

/// What Reddit offers policies.
pub fn actions() -> Vec<ActionInfo> {
    let id = ("id", "a post's or comment's fullname (t3_..., t1_...)");
    vec![
        ActionInfo::new(
            POST_SUBMITTED,
            ActionKind::Governable,
            "someone posted in the subreddit: removed while voted on, approved on pass",
            &[
                ("fullname", "the post's fullname (t3_...)"),
                ("title", "its title"),
                ("text", "its text"),
                ("url", "its link"),
                ("author", "who posted it"),
                ("permalink", "its address on reddit.com"),
            ],
        ),
        ActionInfo::new(
            crate::poll::COMMENT_CREATED,
            ActionKind::Trigger,
            "someone commented in the subreddit",
            &[
                ("fullname", "the comment (t1_...)"),
                ("text", "what it says"),
                ("link_id", "its post"),
                ("author", "who"),
            ],
        ),
        ActionInfo::new(
            crate::poll::MODQUEUE_ITEM,
            ActionKind::Trigger,
            "a post or comment is waiting in the moderation queue",
            &[
                ("fullname", "the post or comment"),
                ("num_reports", "how often it was reported"),
                ("author", "who wrote it"),
            ],
        ),
        ActionInfo::new(
            SUBMIT,
            ActionKind::Action,
            "post in the subreddit",
            &[("title", "its title"), ("text", "its text (Markdown)"), ("url", "a link, instead of text")],
        ),
        ActionInfo::new(
            COMMENT,
            ActionKind::Action,
            "reply to a post or comment",
            &[("thing_id", "what it replies to (t3_..., t1_...)"), ("text", "the reply (Markdown)")],
        ),
        ActionInfo::new(
            MESSAGE,
            ActionKind::Action,
            "send a private message",
            &[("to", "the account"), ("subject", "its subject"), ("text", "its text (Markdown)")],
        ),
        ActionInfo::new(REMOVE, ActionKind::Action, "remove a post or comment (not as spam)", &[id]),
        ActionInfo::new(APPROVE, ActionKind::Action, "approve a post or comment", &[id]),
        ActionInfo::new(LOCK, ActionKind::Action, "lock a post or comment against replies", &[id]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_votes_when_it_holds_one_vote() {
        assert_eq!(vote_of("+1"), Some("+1"));
        assert_eq!(vote_of("-1, it's too soon."), Some("-1"));
        assert_eq!(vote_of("**+1** and +1 again"), Some("+1"));
        assert_eq!(vote_of("0"), Some("0"));
        assert_eq!(vote_of("+1 -1"), None, "two votes are none");
        assert_eq!(vote_of("+10 for effort"), None);
        assert_eq!(vote_of("see t3_abc+1"), None);
    }

    #[test]
    fn what_polity_writes_is_marked_and_fits() {
        let long = "é".repeat(MAX_TEXT);
        let text = marked(&long, 42);
        assert!(text.len() <= MAX_TEXT && text.ends_with("[](#polity-42)"), "{}", text.len());
    }
}
