//! What a connection hands the host, the same for every platform: governance inputs with
//! their dedup keys, the spaces it serves and their members, (re)connections, notices for
//! whoever runs Polity, and commands and secrets waiting for their answer.

use polity_commands::{Invocation, Parsed, Reply, SecretPrompt};
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use std::fmt;
use tokio::sync::oneshot;

#[derive(Debug)]
pub enum Incoming {
    /// A governance input: a reaction, a message, a rename, a role grant, a join.
    Event(Event),
    /// Inputs the platform delivers again until Polity acknowledges them (a Slack
    /// envelope, an Events API request): the host answers on `recorded` once they are in
    /// the inbox, so the acknowledgement never runs ahead of what is stored and a crash
    /// before it loses nothing.
    Recorded(Recorded),
    /// A space the connection serves (a Discord server, a Slack workspace, a repository): at
    /// connect, or when Polity is added to it.
    Space(SpaceInfo),
    /// More members of a space (large spaces list them in parts).
    Members { space: String, members: Vec<(AccountRef, String)> },
    /// A session started (`resumed: false`) or resumed: events may have been missed while it
    /// was away, so open votes are read back.
    Connected { resumed: bool },
    /// The link that adds Polity to a space, once the platform has said who Polity is.
    Invite(String),
    /// A command waiting for its answer.
    Command(CommandCall),
    /// The platform replaced the connection's credential (Reddit may hand out a new refresh
    /// token with an access token, the old one no longer good): the host stores this secret,
    /// encrypted, in place of the one the connection was made with, so a restart uses it.
    /// Given in the form the connection's secret is typed in.
    SecretRotated(String),
    /// A secret typed privately, for the command that asked for it.
    Secret(SecretTyped),
    /// Polity's own app was installed in a space through the platform's install flow: the
    /// host stores what acts there (encrypted) and answers once it is stored; the adapter
    /// hands the space ([`Incoming::Space`]) after that.
    Installed(Installed),
    /// Polity's own app was removed from a space (or its tokens revoked): its stored install
    /// is forgotten.
    Uninstalled { space: String },
}

/// A space Polity's own app is installed in, and the secret that acts there (Slack: the
/// workspace's bot token, then the installing admin's user token). Debug never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Install {
    pub space: String,
    pub secret: String,
}

impl fmt::Debug for Install {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Install").field("space", &self.space).field("secret", &"[redacted]").finish()
    }
}

/// A new install, waiting to be stored.
#[derive(Debug)]
pub struct Installed {
    pub install: Install,
    /// Whether it was stored, or why not.
    pub answer: oneshot::Sender<Result<(), String>>,
}

/// Inputs of one delivery, and where the host says whether they were recorded (`false`: the
/// store failed, so the platform should deliver them again).
#[derive(Debug)]
pub struct Recorded {
    pub events: Vec<Event>,
    pub recorded: oneshot::Sender<bool>,
}

/// One governance input from a space.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The space it happened in; `None` for what happened outside any (a direct message).
    pub space: Option<String>,
    /// Built from the platform's own ids, so a replay of the same event has the same key.
    /// The host scopes it by connection and space, so two spaces whose platforms reuse ids
    /// never shadow each other.
    pub dedup_key: String,
    pub input: Inbound,
    /// The account behind the input and its display name (a new account becomes a member).
    pub from: Option<(AccountRef, String)>,
}

/// A space a connection serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceInfo {
    /// The platform's id of the space.
    pub space: String,
    pub name: String,
    /// Who controls it and their display name: the first admin of a new community.
    pub owner: (AccountRef, String),
    /// Its members (bots left out), as far as the platform listed them.
    pub members: Vec<(AccountRef, String)>,
}

/// A command to run in the community of `space`; its answer goes back on `answer`.
#[derive(Debug)]
pub struct CommandCall {
    pub space: String,
    pub invocation: Invocation,
    /// The invoker's display name (a new account becomes a member by it).
    pub name: String,
    /// Whether the invoker controls the space by the platform's own permission model (a
    /// Discord server's owner, Administrator or Manage Server). Only they can say which
    /// community governs it (`/integration confirm`).
    pub manages_space: bool,
    pub parsed: Parsed,
    pub answer: oneshot::Sender<Reply>,
}

impl CommandCall {
    /// Answers the command; an answer nobody waits for any more is dropped.
    pub fn answer(self, reply: Reply) {
        // An answer that came after the platform stopped waiting for it has nowhere to go.
        let _late = self.answer.send(reply);
    }
}

/// The secret a command asked for, typed privately; never shown or logged.
pub struct SecretTyped {
    pub space: String,
    /// The command that asked for it.
    pub invocation: Invocation,
    pub name: String,
    pub prompt: SecretPrompt,
    pub secret: String,
    pub answer: oneshot::Sender<Reply>,
}

impl SecretTyped {
    /// Answers the form; an answer nobody waits for any more is dropped.
    pub fn answer(self, reply: Reply) {
        // An answer that came after the platform stopped waiting for it has nowhere to go.
        let _late = self.answer.send(reply);
    }
}

impl fmt::Debug for SecretTyped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretTyped")
            .field("space", &self.space)
            .field("invocation", &self.invocation)
            .field("prompt", &self.prompt.name)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}
