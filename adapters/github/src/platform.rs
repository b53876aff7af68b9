//! Polity's effects on one repository, over the REST API.
//!
//! | effect | request |
//! |---|---|
//! | `PostVote` at `OWNER/NAME#N` (or `#N`) | `POST /repos/{repo}/issues/{N}/comments`: the vote's text, how to vote by reaction, [`MARK`] and the effect's key |
//! | `EditVote` | `PATCH /repos/{repo}/issues/comments/{id}` (a comment deleted since is skipped) |
//! | `Post` at an issue | a comment |
//! | `Notify`, `RemoveReaction` | nothing: GitHub has no private messages, and a token removes only its own reactions |
//! | `Call` `github.comment` (`number`, `text`) | `POST .../issues/{number}/comments` |
//! | `Call` `github.create_issue` (`title`, `body`, `labels`) | `POST .../issues` |
//! | `Call` `github.add_labels` (`number`, `labels`) / `github.remove_label` (`number`, `label`) | `POST .../issues/{number}/labels` / `DELETE .../labels/{label}` (one not there is done) |
//! | `Call` `github.close` (`number`, `reason`: `completed` or `not_planned`) / `github.reopen` (`number`) | `PATCH .../issues/{number}` |
//! | `Call` `github.request_review` (`number`, `reviewers`) | `POST .../pulls/{number}/requested_reviewers` |
//! | `Call` `github.merge` (`number`, `method`: merge, squash or rebase, `sha`) | `GET .../pulls/{number}` (merged already? done), then `PUT .../pulls/{number}/merge` |
//! | reading a vote's reactions | `GET .../issues/comments/{id}/reactions`, every page: 👍 is `+1`, 👎 `-1`, 🤷 `eyes` (GitHub has no 🤷), 😄 `laugh`, 😕 `confused`, ❤️ `heart`, 🎉 `hooray`, 🚀 `rocket`, 👀 `eyes`; someone who reacted with more than one option has no ballot (the comment says so) |
//!
//! A comment or issue Polity makes carries its effect's key (`<!-- polity effect N -->`): a
//! retry of one that may have been made (its answer lost) looks for it first.

use crate::api::{Api, ApiError};
use crate::webhook::MARK;
use polity_governance::action::Action;
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use polity_governance::vote::emoji::normalize;
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

pub const COMMENT: &str = "github.comment";
pub const CREATE_ISSUE: &str = "github.create_issue";
pub const ADD_LABELS: &str = "github.add_labels";
pub const REMOVE_LABEL: &str = "github.remove_label";
pub const CLOSE: &str = "github.close";
pub const REOPEN: &str = "github.reopen";
pub const REQUEST_REVIEW: &str = "github.request_review";
pub const MERGE: &str = "github.merge";

/// What a vote comment says under its text.
pub const HOW_TO_VOTE: &str = "Vote with a reaction on this comment (👀 stands for 🤷). Reacting with more than one of the options counts as no vote.";

/// The most a comment holds (GitHub's limit is 65,536 characters).
const MAX_BODY: usize = 65_000;

/// GitHub's reaction for an option's emoji.
pub fn reaction_of(emoji: &str) -> Option<&'static str> {
    Some(match normalize(emoji).as_str() {
        "👍" => "+1",
        "👎" => "-1",
        "🤷" | "👀" => "eyes",
        "😄" => "laugh",
        "😕" => "confused",
        "❤️" | "❤" => "heart",
        "🎉" => "hooray",
        "🚀" => "rocket",
        _ => return None,
    })
}

/// One repository's platform for a community.
#[derive(Clone, Debug)]
pub struct GitHubPlatform {
    connection: String,
    api: Api,
    /// Who Polity is on GitHub (its reactions are not ballots), when known.
    me: Option<String>,
    reactions_every: Duration,
    /// Set when the community this platform was handed to does not govern the repository.
    refused: Option<String>,
}

/// What a comment or an issue Polity makes carries, so a retry finds it.
fn effect_mark(key: i64) -> String {
    format!("<!-- polity effect {key} -->")
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_BODY {
        return text.to_string();
    }
    let mut clipped: String = text.chars().take(MAX_BODY - 1).collect();
    clipped.push('…');
    clipped
}

fn text_param(params: &Map<String, Value>, key: &str, call: &str) -> Result<String, PlatformError> {
    match params.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(PlatformError::Permanent(format!("{call} needs `{key}`"))),
    }
}

/// An issue or pull request's number from `params`.
fn number_param(params: &Map<String, Value>, call: &str) -> Result<u64, PlatformError> {
    let raw = params.get("number").or_else(|| params.get("issue"));
    let number = match raw {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().trim_start_matches('#').parse().ok(),
        _ => None,
    };
    number
        .filter(|n| *n > 0)
        .ok_or_else(|| PlatformError::Permanent(format!("{call} needs `number`, an issue's or pull request's number")))
}

/// A list parameter: an array of strings, or one string of names separated by commas.
fn list_param(params: &Map<String, Value>, key: &str, call: &str) -> Result<Vec<String>, PlatformError> {
    let list: Vec<String> = match params.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(|s| s.trim().to_string()).collect(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    let list: Vec<String> = list.into_iter().filter(|s| !s.is_empty()).collect();
    if list.is_empty() {
        return Err(PlatformError::Permanent(format!("{call} needs `{key}`")));
    }
    Ok(list)
}

impl GitHubPlatform {
    pub fn new(connection: &str, api: Api, me: Option<String>, reactions_every: Duration) -> Self {
        Self { connection: connection.to_string(), api, me, reactions_every, refused: None }
    }

    /// The same repository's platform for a community that does not govern it: it refuses
    /// everything.
    #[must_use]
    pub fn refusing(&self) -> Self {
        let mut refused = self.clone();
        refused.refused = Some(format!("this community does not govern the GitHub repository {}", self.api.repo()));
        refused
    }

    /// Whether a message or place is one of this platform's (`github` or the connection).
    fn ours(&self, platform: &str) -> bool {
        platform == "github" || platform == self.connection
    }

    /// The issue `place` names (`OWNER/NAME#N`, or `#N` in this repository).
    fn issue_of(&self, place: &str) -> Result<u64, PlatformError> {
        let (repo, number) = place.rsplit_once('#').ok_or_else(|| {
            PlatformError::Permanent(format!("`{place}` is no issue or pull request on GitHub (OWNER/NAME#N)"))
        })?;
        if !repo.is_empty() && !repo.eq_ignore_ascii_case(self.api.repo()) {
            return Err(PlatformError::Permanent(format!(
                "{place} is not in {}, this connection's repository",
                self.api.repo()
            )));
        }
        number.parse().map_err(|_| PlatformError::Permanent(format!("`{place}` has no issue number after #")))
    }

    /// What Polity made for effect `key` among what `path` lists (comments, issues), if an
    /// earlier attempt made it.
    async fn made_before(&self, path: &str, key: i64) -> Result<Option<Value>, PlatformError> {
        let mark = effect_mark(key);
        let mut next = Some(path.to_string());
        for _ in 0..10 {
            let Some(page) = next.take() else { break };
            let answer = match self.api.call(Method::GET, &page, None).await {
                Ok(answer) => answer,
                Err(ApiError::RateLimited(wait)) => return Err(PlatformError::RateLimited { retry_after: wait }),
                Err(ApiError::Transient(why)) => return Err(PlatformError::Transient(why)),
                Err(e) => {
                    tracing::warn!(effect = key, "cannot read whether a retried comment was made: {e}");
                    return Ok(None);
                }
            };
            let found = answer
                .body
                .as_array()
                .into_iter()
                .flatten()
                .find(|item| item.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(&mark)));
            if let Some(found) = found {
                return Ok(Some(found.clone()));
            }
            next = answer.next;
        }
        Ok(None)
    }

    /// Comments `body` on issue `number`, once for effect `key`: the comment.
    async fn comment(&self, number: u64, body: &str, key: i64, retried: bool) -> Result<Value, PlatformError> {
        let path = self.api.repo_path(&format!("/issues/{number}/comments"));
        if retried && let Some(made) = self.made_before(&format!("{path}?per_page=100"), key).await? {
            return Ok(made);
        }
        let body = format!("{}\n\n{MARK}{}", clip(body), effect_mark(key));
        Ok(self.api.call(Method::POST, &path, Some(&json!({ "body": body }))).await?.body)
    }

    fn message_of(&self, number: u64, comment: &Value) -> Result<MessageRef, PlatformError> {
        let id = comment
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| PlatformError::Permanent("GitHub's comment has no id".into()))?;
        Ok(MessageRef::new(self.connection.as_str(), format!("{}#{number}", self.api.repo()), id.to_string()))
    }

    async fn edit_vote(&self, text: &str, closed: bool, messages: &[MessageRef]) -> Result<Performed, PlatformError> {
        for message in messages.iter().filter(|m| self.ours(m.platform.as_str())) {
            let path = self.api.repo_path(&format!("/issues/comments/{}", message.message));
            let body = if closed {
                format!("{}\n\n{MARK}", clip(text))
            } else {
                format!("{}\n\n{HOW_TO_VOTE}\n\n{MARK}", clip(text))
            };
            match self.api.call(Method::PATCH, &path, Some(&json!({ "body": body }))).await {
                Ok(_) => {}
                Err(ApiError::NotFound(_)) => {
                    tracing::info!(comment = %message.message, "a vote comment is gone; its edit is skipped")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Performed::default())
    }

    async fn patch_issue(&self, number: u64, change: Value) -> Result<Performed, PlatformError> {
        let path = self.api.repo_path(&format!("/issues/{number}"));
        self.api.call(Method::PATCH, &path, Some(&change)).await?;
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
            COMMENT => {
                let number = number_param(params, name)?;
                let comment = self.comment(number, &text_param(params, "text", name)?, key, retried).await?;
                Ok(Performed { message: Some(self.message_of(number, &comment)?), ..Performed::default() })
            }
            CREATE_ISSUE => {
                let path = self.api.repo_path("/issues");
                if retried
                    && self
                        .made_before(&format!("{path}?state=all&sort=created&direction=desc&per_page=50"), key)
                        .await?
                        .is_some()
                {
                    return Ok(Performed::default());
                }
                let body = params.get("body").and_then(Value::as_str).unwrap_or_default();
                let mut issue = json!({
                    "title": text_param(params, "title", name)?,
                    "body": format!("{}\n\n{}", clip(body), effect_mark(key)),
                });
                if params.contains_key("labels") {
                    issue["labels"] = json!(list_param(params, "labels", name)?);
                }
                self.api.call(Method::POST, &path, Some(&issue)).await?;
                Ok(Performed::default())
            }
            ADD_LABELS => {
                let path = self.api.repo_path(&format!("/issues/{}/labels", number_param(params, name)?));
                let labels = list_param(params, "labels", name)?;
                self.api.call(Method::POST, &path, Some(&json!({ "labels": labels }))).await?;
                Ok(Performed::default())
            }
            REMOVE_LABEL => {
                let label = text_param(params, "label", name)?;
                let encoded: String = label
                    .bytes()
                    .map(|b| {
                        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                            (b as char).to_string()
                        } else {
                            format!("%{b:02X}")
                        }
                    })
                    .collect();
                let path = self.api.repo_path(&format!("/issues/{}/labels/{encoded}", number_param(params, name)?));
                match self.api.call(Method::DELETE, &path, None).await {
                    Ok(_) | Err(ApiError::NotFound(_)) => Ok(Performed::default()),
                    Err(e) => Err(e.into()),
                }
            }
            CLOSE => {
                let reason = params.get("reason").and_then(Value::as_str).unwrap_or("completed");
                if !["completed", "not_planned"].contains(&reason) {
                    return Err(PlatformError::Permanent(format!(
                        "{name}: reason is completed or not_planned, not `{reason}`"
                    )));
                }
                self.patch_issue(number_param(params, name)?, json!({ "state": "closed", "state_reason": reason }))
                    .await
            }
            REOPEN => self.patch_issue(number_param(params, name)?, json!({ "state": "open" })).await,
            REQUEST_REVIEW => {
                let path = self.api.repo_path(&format!("/pulls/{}/requested_reviewers", number_param(params, name)?));
                let reviewers = list_param(params, "reviewers", name)?;
                self.api.call(Method::POST, &path, Some(&json!({ "reviewers": reviewers }))).await?;
                Ok(Performed::default())
            }
            MERGE => {
                let number = number_param(params, name)?;
                let pull =
                    self.api.call(Method::GET, &self.api.repo_path(&format!("/pulls/{number}")), None).await?.body;
                if pull.get("merged").and_then(Value::as_bool) == Some(true) {
                    return Ok(Performed::default());
                }
                let method = params.get("method").and_then(Value::as_str).unwrap_or("merge");
                if !["merge", "squash", "rebase"].contains(&method) {
                    return Err(PlatformError::Permanent(format!(
                        "{name}: method is merge, squash or rebase, not `{method}`"
                    )));
                }
                let mut merge = json!({ "merge_method": method });
                if let Some(sha) = params.get("sha").and_then(Value::as_str) {
                    merge["sha"] = json!(sha);
                }
                let path = self.api.repo_path(&format!("/pulls/{number}/merge"));
                self.api.call(Method::PUT, &path, Some(&merge)).await?;
                Ok(Performed::default())
            }
            other => Err(PlatformError::Permanent(format!("GitHub has no action {other}"))),
        }
    }
}

impl Platform for GitHubPlatform {
    fn name(&self) -> &str {
        &self.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reactions: true,
            edits: true,
            read_reactions: true,
            remove_others_reactions: false,
            reactions_polled: Some(self.reactions_every),
            ..Capabilities::default()
        }
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
                Effect::PostVote { place, text, .. } => {
                    let number = self.issue_of(place.channel.as_str())?;
                    let comment = self.comment(number, &format!("{text}\n\n{HOW_TO_VOTE}"), key, retried).await?;
                    let link = comment.get("html_url").and_then(Value::as_str).map(str::to_string);
                    Ok(Performed { message: Some(self.message_of(number, &comment)?), link, ..Performed::default() })
                }
                Effect::EditVote { text, closed, .. } => self.edit_vote(text, *closed, request.vote_messages).await,
                Effect::Post { place, text } => {
                    let number = self.issue_of(place.channel.as_str())?;
                    let comment = self.comment(number, text, key, retried).await?;
                    Ok(Performed { message: Some(self.message_of(number, &comment)?), ..Performed::default() })
                }
                Effect::Notify { account, .. } => {
                    tracing::debug!(account = %account, "GitHub has no private messages: a notice is not sent there");
                    Ok(Performed::default())
                }
                Effect::RemoveReaction { .. } => Ok(Performed::default()),
                Effect::Call { name, params, .. } => self.call(name.as_str(), params, key, retried).await,
                Effect::Execute { action, .. } => self.execute(action, key, retried).await,
                Effect::Revert { action, .. } => {
                    Err(PlatformError::Permanent(format!("Polity cannot undo {} on GitHub", action.kind)))
                }
                Effect::StartProcess { .. } => {
                    Err(PlatformError::Permanent("GitHub runs no decision processes".into()))
                }
            }
        })
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
            // Which option each of GitHub's reactions stands for.
            let options: BTreeMap<&'static str, &String> =
                emoji.iter().filter_map(|e| reaction_of(e).map(|r| (r, e))).collect();
            let mut chosen: BTreeMap<String, Vec<&String>> = BTreeMap::new();
            let mut next =
                Some(self.api.repo_path(&format!("/issues/comments/{}/reactions?per_page=100", message.message)));
            for _ in 0..100 {
                let Some(page) = next.take() else { break };
                let answer = self.api.call(Method::GET, &page, None).await?;
                for reaction in answer.body.as_array().into_iter().flatten() {
                    let login = reaction.pointer("/user/login").and_then(Value::as_str).unwrap_or_default();
                    let content = reaction.get("content").and_then(Value::as_str).unwrap_or_default();
                    if login.is_empty() || self.me.as_deref() == Some(login) {
                        continue;
                    }
                    if let Some(option) = options.get(content) {
                        let mine = chosen.entry(login.to_string()).or_default();
                        if !mine.contains(option) {
                            mine.push(option);
                        }
                    }
                }
                next = answer.next;
            }
            let mut read: BTreeMap<&String, Vec<(AccountRef, String)>> = BTreeMap::new();
            for (login, options) in chosen {
                match options.as_slice() {
                    [one] => read.entry(one).or_default().push((AccountRef::new("github", login.as_str()), login)),
                    _ => tracing::debug!(login, "reacted with more than one option: no ballot"),
                }
            }
            Ok(emoji
                .iter()
                .map(|e| ReactionRead { emoji: e.clone(), users: read.get(e).cloned().unwrap_or_default() })
                .collect())
        })
    }
}

impl GitHubPlatform {
    /// A requested action carried out: one of the calls, with the action's data.
    async fn execute(&self, action: &Action, key: i64, retried: bool) -> Result<Performed, PlatformError> {
        let data = action.data.to_map();
        self.call(action.kind.as_str(), &data, key, retried).await
    }
}

/// The actions and triggers GitHub offers policies.
pub fn actions() -> Vec<ActionInfo> {
    let number = ("number", "the issue's or pull request's number");
    let mut all = vec![
        ActionInfo::new(
            COMMENT,
            ActionKind::Action,
            "comment on an issue or pull request",
            &[number, ("text", "the comment (Markdown)")],
        ),
        ActionInfo::new(
            CREATE_ISSUE,
            ActionKind::Action,
            "open an issue",
            &[("title", "its title"), ("body", "its text (Markdown), optional"), ("labels", "label names, optional")],
        ),
        ActionInfo::new(
            ADD_LABELS,
            ActionKind::Action,
            "add labels to an issue or pull request",
            &[number, ("labels", "label names")],
        ),
        ActionInfo::new(
            REMOVE_LABEL,
            ActionKind::Action,
            "take a label off an issue or pull request",
            &[number, ("label", "the label's name")],
        ),
        ActionInfo::new(
            CLOSE,
            ActionKind::Action,
            "close an issue or pull request",
            &[number, ("reason", "completed (the default) or not_planned")],
        ),
        ActionInfo::new(REOPEN, ActionKind::Action, "reopen an issue or pull request", &[number]),
        ActionInfo::new(
            REQUEST_REVIEW,
            ActionKind::Action,
            "ask for reviews of a pull request",
            &[number, ("reviewers", "the reviewers' logins")],
        ),
        ActionInfo::new(
            MERGE,
            ActionKind::Action,
            "merge a pull request",
            &[
                number,
                ("method", "merge (the default), squash or rebase"),
                ("sha", "the head commit it must still be, optional"),
            ],
        ),
    ];
    let payload = [
        ("repo", "OWNER/NAME"),
        ("number", "the issue's or pull request's number, if any"),
        ("sender", "who did it (the payload's fields are all there)"),
    ];
    for (name, what) in [
        ("github.issues_opened", "an issue was opened"),
        ("github.issues_closed", "an issue was closed"),
        ("github.issues_labeled", "a label was added to an issue"),
        ("github.issue_comment_created", "someone commented on an issue or pull request"),
        ("github.pull_request_opened", "a pull request was opened"),
        ("github.pull_request_closed", "a pull request was closed or merged (`pull_request.merged`)"),
        ("github.pull_request_synchronize", "new commits were pushed to a pull request"),
        ("github.pull_request_review_submitted", "a review was submitted"),
        ("github.push", "commits were pushed"),
        ("github.release_published", "a release was published"),
    ] {
        all.push(ActionInfo::new(
            name,
            ActionKind::Trigger,
            &format!("{what} (every webhook event is a trigger: github.EVENT_ACTION)"),
            &payload,
        ));
    }
    all
}

/// Where a vote on an issue is: its place.
pub fn issue_place(repo: &str, number: u64) -> Place {
    Place::new("github", format!("{repo}#{number}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_githubs_reactions() {
        assert_eq!(reaction_of("👍"), Some("+1"));
        assert_eq!(reaction_of("👍🏽"), Some("+1"));
        assert_eq!(reaction_of("🤷"), Some("eyes"));
        assert_eq!(reaction_of("🦀"), None);
    }

    #[test]
    fn params_are_read_leniently_and_refused_clearly() {
        let params: Map<String, Value> =
            serde_json::from_value(json!({"number": "#12", "labels": "a, b,", "reviewers": []})).unwrap_or_default();
        assert_eq!(number_param(&params, MERGE), Ok(12));
        assert_eq!(list_param(&params, "labels", ADD_LABELS), Ok(vec!["a".to_string(), "b".to_string()]));
        assert!(list_param(&params, "reviewers", REQUEST_REVIEW).is_err());
        assert!(number_param(&Map::new(), MERGE).is_err());
    }
}
