//! The port every platform adapter implements: perform one effect, report what came of it.
//! Only the trait lives here (no IO); adapters implement it with their client libraries.

use crate::ids::{AccountRef, MessageRef};
use crate::io::Effect;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A boxed future, so platforms can be kept as `dyn Platform`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One effect to perform, with what the dispatcher knows about it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Unique per effect and stable across retries: platforms that take an idempotency key or
    /// nonce get this, so a retry after a crash is not performed twice.
    pub key: i64,
    /// Whether it may have been performed before: an earlier attempt was started and its
    /// outcome is not known to be a refusal (a timeout, a lost answer, a crash mid-call). A
    /// platform without idempotency keys looks for what the earlier attempt did first.
    pub retried: bool,
    pub effect: &'a Effect,
    /// The vote messages already posted for the effect's proposal (for edits).
    pub vote_messages: &'a [MessageRef],
}

/// What performing an effect produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Performed {
    /// The message posted, for vote messages and posts.
    pub message: Option<MessageRef>,
    /// What the platform kept of what it undid, to go with the governed action (a deleted
    /// message's files, which the platform drops soon after): merged into the action's data,
    /// so that re-executing it on pass can restore them.
    pub kept: Option<serde_json::Map<String, serde_json::Value>>,
    /// What the vote message should say about it (a file too big to keep).
    pub note: Option<String>,
    /// Where people open the message posted (a vote message's address), if the platform
    /// has one.
    pub link: Option<String>,
    /// What a decision process it started says of itself: recorded on its proposal as the
    /// process's outcome (status `open`) with the effect, and handed back to
    /// [`Platform::read_process`] to read it again. It names the process (`process`).
    pub process: Option<serde_json::Value>,
}

/// Why an effect could not be performed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The platform asked us to slow down; try again after `retry_after` if it said.
    #[error("rate limited{}", retry_after.map(|d| format!(", retry after {}ms", d.as_millis())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// A failure that may pass (a timeout, a 5xx): try again with backoff.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// A failure retrying cannot fix (a 403, a deleted channel): give up and record it.
    #[error("{0}")]
    Permanent(String),
}

/// What a platform can do, so the engine's output can be rendered for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub reactions: bool,
    pub buttons: bool,
    pub edits: bool,
    pub ephemeral: bool,
    /// Whether the bot can remove other people's reactions (Slack's cannot).
    pub remove_others_reactions: bool,
    /// Whether [`Platform::read_reactions`] works, so vote messages can be reconciled.
    pub read_reactions: bool,
    /// Whether its output is one stream (the console): effects are performed one at a time,
    /// in the order they were recorded, instead of in parallel per channel.
    pub serial: bool,
    /// How many vote-message edits one channel may take per window (Discord: 5 per 5 s), if
    /// the platform limits them: the dispatcher holds back a tally edit over its channel's
    /// budget until the window allows it. `None`: no limit.
    pub edits_per_channel: Option<(u32, Duration)>,
    /// How often an open vote's reactions are read back when the platform sends no event for
    /// a reaction (GitHub): `None` for a platform that does.
    pub reactions_polled: Option<Duration>,
    /// How often a decision process it started is read until it closes ([`Platform::read_process`]).
    pub process_polled: Option<Duration>,
    /// How long one of its effects or reads may take, when the platform says otherwise
    /// than Polity's default (10 s): a request still going then is a temporary failure.
    pub request_timeout: Option<Duration>,
}

/// Who holds one emoji on a message, as the platform reports it: each account with its
/// display name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionRead {
    pub emoji: String,
    pub users: Vec<(AccountRef, String)>,
}

/// What an action name is to policy authors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ActionKind {
    /// Polity can do it: `do = [{ action = ... }]`, `polity.act(...)`.
    Action,
    /// It happens on the platform and can start a trigger policy.
    Trigger,
    /// It happens, can be reverted and re-executed: platform policies govern it.
    Governable,
    /// An external decision process (`polity.start_process`).
    Process,
    /// A change to governance itself; constitution policies decide it.
    Change,
}

/// One action, trigger or process a platform offers, with its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionInfo {
    pub name: String,
    pub kind: ActionKind,
    pub description: String,
    /// `(name, what it is)`.
    pub params: Vec<(String, String)>,
}

impl ActionInfo {
    pub fn new(name: &str, kind: ActionKind, description: &str, params: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            kind,
            description: description.into(),
            params: params.iter().map(|(n, d)| ((*n).to_string(), (*d).to_string())).collect(),
        }
    }
}

/// A platform connection.
pub trait Platform: Send + Sync {
    /// The connection's name (`console`, `discord`, `slack-eng`).
    fn name(&self) -> &str;
    fn capabilities(&self) -> Capabilities;
    /// The actions, triggers and processes it offers.
    fn actions(&self) -> Vec<ActionInfo> {
        Vec::new()
    }
    /// Performs one effect.
    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>>;
    /// Who reacted with each of `emoji` on `message` now, every page of it, the bot's own
    /// reactions left out. Only platforms whose [`Capabilities::read_reactions`] is set can.
    fn read_reactions<'a>(
        &'a self,
        message: &'a MessageRef,
        emoji: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ReactionRead>, PlatformError>> {
        let _ = (message, emoji);
        Box::pin(async move { Err(PlatformError::Permanent(format!("{} cannot read reactions", self.name()))) })
    }
    /// Reads a decision process it started, from what it last said of itself (`outcome`, as
    /// [`Performed::process`] or this gave it): its status (`open`, `closed`) and outcome now.
    fn read_process<'a>(
        &'a self,
        outcome: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(String, serde_json::Value), PlatformError>> {
        let _ = outcome;
        Box::pin(async move { Err(PlatformError::Permanent(format!("{} runs no decision processes", self.name()))) })
    }
}

/// What a platform's adapter declares about itself: what `/integration add` offers, asks
/// for and accepts, and what `[platforms.NAME]` holds. Declared once, by the adapter, so
/// commands, help and docs never keep lists of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformSpec {
    /// The name in commands, configuration and action types (`discord`).
    pub name: &'static str,
    /// The name people know it by (`Discord`).
    pub title: &'static str,
    /// What one of its spaces is called (`server`, `workspace`, `repository`).
    pub space: &'static str,
    /// Who controls a space by the platform's own permissions, and so may say which
    /// community governs it ("the server's owner or a member with ...").
    pub controllers: &'static str,
    /// The secret a community's own connection needs, as asked for ("the bot token"); `None`
    /// when it needs none.
    pub secret: Option<&'static str>,
    /// The settings a connection accepts (`key=value` after `/integration add`).
    pub settings: &'static [Setting],
    /// The keys of `[platforms.NAME]` that an environment variable may set
    /// (`POLITY_{NAME}_{KEY}`, upper case), such as a bot's token.
    pub env: &'static [&'static str],
    /// It tells members' cred (a SourceCred instance): a vote whose voters are chosen by
    /// cred needs a connection of such a platform.
    pub cred: bool,
}

impl PlatformSpec {
    /// The setting that names the space a connection is for, if connections name one.
    pub fn space_setting(&self) -> Option<&'static Setting> {
        self.settings.iter().find(|s| s.names_space)
    }

    /// The setting called `name`.
    pub fn setting(&self, name: &str) -> Option<&'static Setting> {
        self.settings.iter().find(|s| s.name == name)
    }
}

/// One setting of a platform's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// What it holds and where to find it.
    pub help: &'static str,
    /// It names the connection's space (a Discord server's id): a space joins a community
    /// only with proof of control given inside it.
    pub names_space: bool,
}
