//! The Slack platform: slack-morphism's Socket Mode and Web API clients, Polity's commands
//! as one slash command, votes by reaction and by button.
//!
//! - [`SlackAdapter`]: Slack on the platform host. `[platforms.slack]` holds Polity's own
//!   app ([`SlackConfig`]: the bot token, the app-level token for Socket Mode); a community's
//!   own connection is its workspace's bot token. A start reads who the bot is (`auth.test`)
//!   and the workspace's members (`users.list`, admins and owners control it) and hands the
//!   workspace to the host, which decides once which community governs it.
//! - [`socket`]: Socket Mode, the default way in (no public address): every frame is read
//!   from the raw JSON Slack sent.
//! - [`events`]: Events API events as Polity's inputs, with their dedup keys.
//! - [`SlackPlatform`]: Polity's effects as Web API calls, scoped to one workspace.
//! - [`api`] and [`budget`]: every call through slack-morphism's client with a timeout and
//!   Polity's own rate budget (Slack's tiers, one message a second per channel, a 429's
//!   `Retry-After`), so no client library ever sleeps on a limit.
//! - [`signature`]: Slack's request signatures, for what Slack sends to Polity's HTTP server.
//!
//! ## Commands
//! Polity's commands are one slash command, `/polity`, followed by the catalogue's words
//! (`/polity propose ...`, `/polity vote 12 yes`). One command, not one per word: Slack
//! has no subcommands, and slash commands share one namespace per workspace, so names as
//! common as `/vote`, `/role` or `/link` would clash with other apps' (Slack then lets the
//! most recently installed app win). The command is acknowledged at once and answered
//! through its `response_url` (ephemeral unless the reply is public); a command that needs
//! a secret answers with a form (a modal) whose answer is never shown or logged.
//!
//! ## Votes
//! A vote message carries a button per option one press can cast, and the options' seed
//! reactions (👍 is `+1`; a skin-tone variant such as `+1::skin-tone-3` counts as its base).
//! A bot token cannot remove another member's reaction, so each voter's latest reaction is
//! their ballot. The reactions are read back (`reactions.get`, `full=true`) at every
//! Socket Mode `hello` and reconciled with the stored ballots.

mod adapter;
pub mod api;
pub mod budget;
mod config;
pub mod endpoint;
pub mod events;
mod known;
pub mod oauth;
mod platform;
pub mod signature;
pub mod socket;
pub mod workspaces;

pub use adapter::SlackAdapter;
pub use config::{SLACK_API_URL, SPEC, SlackConfig, is_slack_id};
pub use known::{Known, Member};
pub use platform::{
    API, EPHEMERAL, INVITE, KICK, PIN_MESSAGE, POST_MESSAGE, RENAME, SEND_DM, SlackPlatform, VOTE_BUTTON, actions,
    check_passthrough, mrkdwn, slack_name,
};
