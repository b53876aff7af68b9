//! Polity's effects on one Loomio group.
//!
//! | effect | request |
//! |---|---|
//! | `StartProcess` `loomio.poll` | `POST /polls` in the group (its details end with the proposal's mark); read with `GET /polls/{id}` every `poll_secs`, at its closing time, and whenever Loomio's webhook mentions it, until Loomio closes it |
//! | `Call` `loomio.create_poll` | the same poll, deciding nothing |
//! | `Call` `loomio.create_discussion` (`title`, `description`) | `POST /discussions` |
//! | `Call` `loomio.list_members` | `GET /memberships?group_id=`: the group's members become the community's |
//!
//! A poll's start retried after its answer was lost is first looked for among the group's
//! newest polls (`GET /polls?group_id=&status=all`, by its mark), so it is made once. A
//! discussion has no such lookup: one whose answer was lost may be made twice.
//! Loomio has no direct messages and nothing of it is governed: votes about it are held in a
//! chat, or by a `loomio.poll`.

use crate::api::{Api, ApiError};
use polity_governance::ids::AccountRef;
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, Request,
};
use polity_port::Incoming;
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// The process a policy starts with `polity.start_process("loomio.poll", #{...})`.
pub const POLL: &str = "loomio.poll";
pub const CREATE_POLL: &str = "loomio.create_poll";
pub const CREATE_DISCUSSION: &str = "loomio.create_discussion";
pub const LIST_MEMBERS: &str = "loomio.list_members";

/// The poll types Loomio offers, and whether each is counted by votes (else by score).
pub const POLL_TYPES: &[(&str, bool)] = &[
    ("proposal", true),
    ("poll", true),
    ("count", true),
    ("meeting", true),
    ("score", false),
    ("ranked_choice", false),
    ("dot_vote", false),
];

/// The keys of a poll's outcome that are not options.
const OUTCOME_KEYS: &[&str] = &[
    "process",
    "status",
    "poll_id",
    "key",
    "url",
    "closes_at",
    "hint",
    "voters",
    "undecided",
    "poll_type",
    "connection",
];

/// How a running poll is named in events about it (`process_hint`) and in its outcome (`hint`).
pub fn hint_of(key: &str) -> String {
    format!("poll:{key}")
}

/// One group's platform for a community.
#[derive(Clone, Debug)]
pub struct LoomioPlatform {
    connection: String,
    api: Api,
    group: u64,
    space: String,
    poll_every: std::time::Duration,
    members_to: Option<mpsc::Sender<Incoming>>,
    refused: Option<String>,
}

fn text_param(params: &Map<String, Value>, key: &str, call: &str) -> Result<String, PlatformError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .ok_or_else(|| PlatformError::Permanent(format!("{call} needs `{key}`")))
}

/// The last line of a poll Polity starts for `proposal` (or for an effect's key): how a
/// retried start finds it.
fn poll_mark(tag: &str) -> String {
    format!("(Polity {tag})")
}

/// An option's name as a policy reads it: Loomio names a proposal's options for translation
/// (`poll_proposal_options.agree`); that prefix is not the option's. Any other name (a
/// meeting's time, `v1.2`) is kept whole.
fn option_name(name: &str) -> &str {
    match name.split_once("_options.") {
        Some((kind, option)) if kind.starts_with("poll_") && !kind.contains('.') => option,
        _ => name,
    }
}

/// The group's members, from `GET /memberships?group_id=`: each user's id and name.
///
/// # Errors
/// [`ApiError`].
pub async fn members(api: &Api, group: u64) -> Result<Vec<(AccountRef, String)>, ApiError> {
    let mut all = Vec::new();
    let mut offset = 0usize;
    // A thousand pages of a hundred: a bound, not a group's size.
    for _ in 0..1000 {
        let page = api
            .call(
                Method::GET,
                "/memberships",
                &[("group_id", group.to_string()), ("limit", "100".into()), ("offset", offset.to_string())],
                None,
            )
            .await?;
        let users = page.get("users").and_then(Value::as_array).cloned().unwrap_or_default();
        let memberships = page.get("memberships").and_then(Value::as_array).cloned().unwrap_or_default();
        let known = all.len();
        for m in &memberships {
            let Some(id) = m.get("user_id").and_then(Value::as_u64) else { continue };
            if all.iter().any(|(a, _): &(AccountRef, String)| a.account.as_str() == id.to_string()) {
                continue;
            }
            let name = users
                .iter()
                .find(|u| u.get("id").and_then(Value::as_u64) == Some(id))
                .and_then(|u| u.get("name").or_else(|| u.get("username")).and_then(Value::as_str))
                .map_or_else(|| format!("user {id}"), str::to_string);
            all.push((AccountRef::new("loomio", id.to_string().as_str()), name));
        }
        // Until a page is empty or brings no one new (a server that caps its pages lower, or
        // ignores the offset).
        if memberships.is_empty() || all.len() == known {
            break;
        }
        offset += memberships.len();
    }
    Ok(all)
}

impl LoomioPlatform {
    pub fn new(connection: &str, api: Api, group: u64, space: String, poll_every: std::time::Duration) -> Self {
        Self { connection: connection.into(), api, group, space, poll_every, members_to: None, refused: None }
    }

    /// `loomio.list_members` hands the members it reads to the host on `events`.
    #[must_use]
    pub fn with_members_to(mut self, events: mpsc::Sender<Incoming>) -> Self {
        self.members_to = Some(events);
        self
    }

    #[must_use]
    pub fn refusing(&self) -> Self {
        let mut refused = self.clone();
        refused.refused = Some(format!("this community does not govern the Loomio group {}", self.space));
        refused
    }

    /// The body of `POST /polls` for `params`, its options, and its closing time.
    fn poll_body(&self, params: &Map<String, Value>, call: &str, mark: &str) -> Result<(Value, String), PlatformError> {
        let title = text_param(params, "title", call)?;
        let poll_type =
            params.get("poll_type").or_else(|| params.get("type")).and_then(Value::as_str).unwrap_or("proposal");
        if !POLL_TYPES.iter().any(|(t, _)| *t == poll_type) {
            let known: Vec<&str> = POLL_TYPES.iter().map(|(t, _)| *t).collect();
            return Err(PlatformError::Permanent(format!(
                "{call}: poll_type is one of {}, not `{poll_type}`",
                known.join(", ")
            )));
        }
        let mut options: Vec<String> = params
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|o| o.trim().to_string())
            .filter(|o| !o.is_empty())
            .collect();
        if options.is_empty() && poll_type == "proposal" {
            options = ["agree", "abstain", "disagree"].map(String::from).to_vec();
        }
        if options.len() < 2 || options.len() > 50 {
            return Err(PlatformError::Permanent(format!("{call} needs `options`: 2 to 50 of them")));
        }
        if let Some(taken) = options.iter().find(|o| OUTCOME_KEYS.contains(&option_name(o))) {
            return Err(PlatformError::Permanent(format!("{call}: `{taken}` cannot be an option's name")));
        }
        let closes = match (params.get("closes").and_then(Value::as_str), params.get("days").and_then(Value::as_f64)) {
            (Some(at), _) => chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| {
                    PlatformError::Permanent(format!("{call}: closes is a time like 2026-12-24T18:00:00Z, not `{at}`"))
                })?
                .with_timezone(&chrono::Utc),
            (None, Some(days)) if days > 0.0 && days <= 365.0 => {
                chrono::Utc::now() + chrono::TimeDelta::seconds((days * 86_400.0) as i64)
            }
            _ => {
                return Err(PlatformError::Permanent(format!(
                    "{call} needs `closes` (a time) or `days` (up to 365): a Loomio poll without a closing time takes no votes"
                )));
            }
        };
        let closes = closes.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let details = params.get("details").or_else(|| params.get("text")).and_then(Value::as_str).unwrap_or_default();
        let mut body = json!({
            "group_id": self.group,
            "title": title,
            "poll_type": poll_type,
            "details": format!("{details}\n\n{mark}"),
            "details_format": "md",
            "options": options,
            "closing_at": closes,
            "notify_recipients": true,
        });
        match params.get("voters") {
            // Who may vote: these people (by email), else the whole group.
            Some(Value::Array(list)) => {
                let emails: Vec<&str> = list.iter().filter_map(Value::as_str).filter(|e| e.contains('@')).collect();
                if emails.is_empty() {
                    return Err(PlatformError::Permanent(format!("{call}: voters is a list of email addresses")));
                }
                body["specified_voters_only"] = json!(true);
                body["recipient_emails"] = json!(emails);
            }
            Some(_) => return Err(PlatformError::Permanent(format!("{call}: voters is a list of email addresses"))),
            None => body["recipient_audience"] = json!("group"),
        }
        Ok((body, closes))
    }

    /// The group's open poll whose details end with `mark`, if there is one.
    async fn open_poll_marked(&self, mark: &str) -> Result<Option<Value>, PlatformError> {
        // Open or closed: a retry may come after the poll closed.
        let query = [("group_id", self.group.to_string()), ("status", "all".into()), ("limit", "50".into())];
        let listed = self.api.call(Method::GET, "/polls", &query, None).await?;
        Ok(listed
            .get("polls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("details").and_then(Value::as_str).is_some_and(|d| d.trim_end().ends_with(mark)))
            .cloned())
    }

    /// Makes a poll once: a retry first looks for the one its lost answer made. The poll and
    /// the options it was made with.
    async fn make_poll(
        &self,
        params: &Map<String, Value>,
        call: &str,
        tag: &str,
        retried: bool,
    ) -> Result<(Value, Vec<String>), PlatformError> {
        let mark = poll_mark(tag);
        let (body, _) = self.poll_body(params, call, &mark)?;
        let options: Vec<String> =
            body["options"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
        let found = if retried { self.open_poll_marked(&mark).await? } else { None };
        let poll = match found {
            Some(poll) => poll,
            None => {
                let made = self.api.call(Method::POST, "/polls", &[], Some(&body)).await?;
                made.get("polls")
                    .and_then(Value::as_array)
                    .and_then(|p| p.first())
                    .cloned()
                    .ok_or_else(|| PlatformError::Permanent("Loomio's answer holds no poll".into()))?
            }
        };
        Ok((poll, options))
    }

    async fn start_poll(
        &self,
        proposal: i64,
        params: &Map<String, Value>,
        key: i64,
        retried: bool,
    ) -> Result<Performed, PlatformError> {
        // The effect's key makes the mark unique even where two communities share a group.
        let tag = format!("proposal #{proposal}, {key}");
        let (poll, options) = self.make_poll(params, POLL, &tag, retried).await?;
        let id = poll
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| PlatformError::Permanent("Loomio's poll has no id".into()))?;
        let key = poll.get("key").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut outcome = json!({
            "process": POLL,
            "status": "open",
            "poll_id": id,
            "key": key,
            "url": format!("{}/p/{key}", self.api.base()),
            "hint": hint_of(&key),
            "connection": self.connection,
            "poll_type": poll.get("poll_type").cloned().unwrap_or(Value::Null),
            "voters": 0,
        });
        if let Some(at) = poll.get("closing_at").and_then(Value::as_str) {
            outcome["closes_at"] = json!(at);
        }
        for option in &options {
            outcome[option_name(option)] = json!(0);
        }
        Ok(Performed { process: Some(outcome), ..Performed::default() })
    }

    async fn call(
        &self,
        name: &str,
        params: &Map<String, Value>,
        key: &str,
        retried: bool,
    ) -> Result<Performed, PlatformError> {
        match name {
            CREATE_POLL => {
                self.make_poll(params, name, &format!("effect {key}"), retried).await?;
                Ok(Performed::default())
            }
            CREATE_DISCUSSION => {
                let body = json!({
                    "group_id": self.group,
                    "title": text_param(params, "title", name)?,
                    "description": params.get("description").and_then(Value::as_str).unwrap_or_default(),
                    "description_format": "md",
                });
                self.api.call(Method::POST, "/discussions", &[], Some(&body)).await?;
                Ok(Performed::default())
            }
            LIST_MEMBERS => {
                let listed = members(&self.api, self.group).await?;
                if let Some(to) = &self.members_to {
                    to.send(Incoming::Members { space: self.space.clone(), members: listed })
                        .await
                        .map_err(|_| PlatformError::Transient("the host is not listening".into()))?;
                }
                Ok(Performed::default())
            }
            other => Err(PlatformError::Permanent(format!("Loomio has no action {other}"))),
        }
    }
}

/// Reads a poll's state from `GET /polls/{id}`: `closed` once Loomio closed it, each option's
/// votes (or score, for score, ranked choice and dot votes), `voters` and `undecided`.
fn read_poll(outcome: &Value, poll: &Value) -> (String, Value) {
    let status = if poll.get("closed_at").is_some_and(|c| !c.is_null()) { "closed" } else { "open" };
    let by_votes = poll
        .get("poll_type")
        .and_then(Value::as_str)
        .and_then(|t| POLL_TYPES.iter().find(|(name, _)| *name == t))
        .is_none_or(|(_, votes)| *votes);
    let mut now = outcome.clone();
    for row in poll.get("results").and_then(Value::as_array).into_iter().flatten() {
        // 0 is "none of the above", -1 the undecided.
        if row.get("id").and_then(Value::as_i64).unwrap_or(0) <= 0 {
            continue;
        }
        let Some(name) = row.get("name").and_then(Value::as_str).map(option_name) else { continue };
        if name.is_empty() || OUTCOME_KEYS.contains(&name) {
            continue;
        }
        let count = if by_votes { row.get("voter_count") } else { row.get("score") };
        now[name] = count.filter(|c| c.is_number()).cloned().unwrap_or(json!(0));
    }
    if let Some(n) = poll.get("decided_voters_count").and_then(Value::as_u64) {
        now["voters"] = json!(n);
    }
    if let Some(n) = poll.get("undecided_voters_count").and_then(Value::as_u64) {
        now["undecided"] = json!(n);
    }
    if let Some(at) = poll.get("closing_at").and_then(Value::as_str) {
        now["closes_at"] = json!(at);
    }
    now["status"] = json!(status);
    (status.to_string(), now)
}

impl Platform for LoomioPlatform {
    fn name(&self) -> &str {
        &self.connection
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { process_polled: Some(self.poll_every), ..Capabilities::default() }
    }

    fn read_process<'a>(&'a self, outcome: &'a Value) -> BoxFuture<'a, Result<(String, Value), PlatformError>> {
        Box::pin(async move {
            if let Some(refused) = &self.refused {
                return Err(PlatformError::Permanent(refused.clone()));
            }
            let id = outcome
                .get("poll_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| PlatformError::Permanent("a Loomio poll without its id".into()))?;
            let read = match self.api.call(Method::GET, &format!("/polls/{id}"), &[], None).await {
                Err(ApiError::NotFound) => {
                    return Err(PlatformError::Permanent(format!("Loomio has no poll {id} any more")));
                }
                other => other?,
            };
            let poll = read
                .get("polls")
                .and_then(Value::as_array)
                .and_then(|p| p.first())
                .ok_or_else(|| PlatformError::Permanent("Loomio's answer holds no poll".into()))?;
            if poll.get("group_id").and_then(Value::as_u64).is_some_and(|g| g != self.group) {
                return Err(PlatformError::Permanent(format!("poll {id} is not in the group {}", self.space)));
            }
            Ok(read_poll(outcome, poll))
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
                Effect::StartProcess { proposal, name, params } if name.as_str() == POLL => {
                    self.start_poll(proposal.0, params, request.key, request.retried).await
                }
                Effect::StartProcess { name, .. } => Err(PlatformError::Permanent(format!("Loomio runs no process {name}"))),
                Effect::Call { name, params, .. } => {
                    self.call(name.as_str(), params, &request.key.to_string(), request.retried).await
                }
                Effect::RemoveReaction { .. } => Ok(Performed::default()),
                Effect::Notify { .. } => {
                    Err(PlatformError::Permanent("Loomio has no direct messages: Polity tells members in a chat".into()))
                }
                Effect::PostVote { .. } | Effect::EditVote { .. } | Effect::Post { .. } => Err(PlatformError::Permanent(
                    "Polity holds votes about Loomio in a chat, or by a loomio.poll: name a chat in the policy's [vote] on".into(),
                )),
                Effect::Revert { action, .. } | Effect::Execute { action, .. } => Err(PlatformError::Permanent(format!(
                    "nothing on Loomio is governed: Polity cannot undo or redo {}",
                    action.kind
                ))),
            }
        })
    }
}

/// What Loomio offers policies.
pub fn actions() -> Vec<ActionInfo> {
    let poll_params: &[(&str, &str)] = &[
        ("title", "the poll's title"),
        ("details", "what is decided (Markdown)"),
        (
            "poll_type",
            "proposal (agree / abstain / disagree, the default), poll, count, score, ranked_choice, dot_vote or meeting",
        ),
        ("options", "its options (a proposal's are agree, abstain, disagree unless given)"),
        ("closes", "when it closes, a time like 2026-12-24T18:00:00Z (or `days`: in so many days)"),
        ("voters", "who may vote: a list of email addresses (the whole group unless given)"),
    ];
    let poll =
        [("key", "the poll's key (its address is /p/KEY)"), ("title", "its title"), ("voters", "how many have voted")];
    vec![
        ActionInfo::new(
            POLL,
            ActionKind::Process,
            "a Loomio poll decides: its outcome is each option's votes (or score) (`proposal.process.outcome.OPTION`), `voters`, `undecided`, `url`, and the status closed once Loomio closes it",
            poll_params,
        ),
        ActionInfo::new(
            CREATE_POLL,
            ActionKind::Action,
            "start a Loomio poll in the group (deciding nothing by itself)",
            poll_params,
        ),
        ActionInfo::new(
            CREATE_DISCUSSION,
            ActionKind::Action,
            "start a discussion thread in the group",
            &[("title", "its title"), ("description", "its text (Markdown)")],
        ),
        ActionInfo::new(
            LIST_MEMBERS,
            ActionKind::Action,
            "read the group's members: each becomes a member of the community",
            &[],
        ),
        ActionInfo::new(
            crate::webhook::POLL_CREATED,
            ActionKind::Trigger,
            "a poll of the group was seen open for the first time",
            &poll,
        ),
        ActionInfo::new(
            crate::webhook::STANCE_CREATED,
            ActionKind::Trigger,
            "a poll of the group was seen with more votes",
            &poll,
        ),
        ActionInfo::new(crate::webhook::POLL_CLOSED, ActionKind::Trigger, "a poll of the group was seen closed", &poll),
    ]
}
