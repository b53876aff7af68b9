//! What the gateway hands the bot, neutral: governance inputs, the guilds and their members,
//! connection changes, and commands waiting for their answer.

use crate::gateway::DiscordEvent;
use polity_commands::{Invocation, Parsed, Reply, SecretPrompt};
use polity_governance::ids::AccountRef;
use std::fmt;
use tokio::sync::oneshot;

#[derive(Debug)]
pub enum Incoming {
    /// A governance input: a reaction, a message, a rename, a role grant, a join.
    Event(DiscordEvent),
    /// The bot is in a guild (`GUILD_CREATE`, at connect or when it is added).
    Guild(GuildInfo),
    /// Members of a guild listed (`GUILD_MEMBERS_CHUNK`, for guilds too large to list them at
    /// connect).
    Members { guild: String, members: Vec<(AccountRef, String)> },
    /// A session started (`READY`) or resumed (`RESUMED`): events may have been missed
    /// while it was away.
    Connected { resumed: bool, application_id: Option<u64> },
    /// A slash command or a vote button, waiting for its answer.
    Command(CommandCall),
    /// A secret typed into the form a command showed.
    Secret(SecretTyped),
}

/// A guild the bot is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuildInfo {
    pub guild: String,
    pub name: String,
    /// The guild's owner and display name: the first admin of a new community.
    pub owner: (AccountRef, String),
    /// Its members (bots left out), as far as Discord listed them.
    pub members: Vec<(AccountRef, String)>,
}

/// A command to run in the community of `guild`; its answer goes back on `answer`.
#[derive(Debug)]
pub struct CommandCall {
    pub guild: String,
    pub invocation: Invocation,
    /// The invoker's display name (a new account becomes a member by it).
    pub name: String,
    /// Whether the invoker controls the guild, by Discord's permission model: its owner, or
    /// a member with the Administrator or Manage Server permission. Only they can say which
    /// community governs it (`/integration confirm`).
    pub manages_server: bool,
    pub parsed: Parsed,
    pub answer: oneshot::Sender<Reply>,
}

/// The secret a command asked for, typed into Discord's form; never shown or logged.
pub struct SecretTyped {
    pub guild: String,
    /// The command that asked for it.
    pub invocation: Invocation,
    pub name: String,
    pub prompt: SecretPrompt,
    pub secret: String,
    pub answer: oneshot::Sender<Reply>,
}

impl fmt::Debug for SecretTyped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretTyped")
            .field("guild", &self.guild)
            .field("invocation", &self.invocation)
            .field("prompt", &self.prompt.name)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}
