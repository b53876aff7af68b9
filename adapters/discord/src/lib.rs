//! The Discord platform. Effect side: [`DiscordPlatform`] performs Polity's effects with
//! serenity's HTTP client. Gateway side: [`start`] connects serenity's gateway client and turns
//! gateway events into neutral [`DiscordEvent`]s (slash commands come later).
//!
//! | effect | Discord API v10 requests |
//! |---|---|
//! | `PostVote` | `POST /channels/{c}/messages` (`content`, `nonce` = request key, `enforce_nonce`), then `PUT /channels/{c}/messages/{m}/reactions/{emoji}/@me` per option |
//! | `EditVote` | `PATCH /channels/{c}/messages/{m}` (`content`) for each vote message on this connection |
//! | `Post` | `POST /channels/{c}/messages` |
//! | `Notify` | `POST /users/@me/channels` (`recipient_id`), then `POST /channels/{dm}/messages` |
//! | `RemoveReaction` | `DELETE /channels/{c}/messages/{m}/reactions/{emoji}/{user}` |
//! | `Revert`/`Execute` `discord.message` | `DELETE /channels/{c}/messages/{m}` / `POST /channels/{c}/messages` ("{author} wrote: {text}", no mentions parsed) |
//! | `Revert`/`Execute` `discord.rename_channel` | `PATCH /channels/{c}` (`name`: `old_name` / `name`) |
//! | `Revert`/`Execute` `discord.role_grant` | `DELETE` / `PUT /guilds/{g}/members/{u}/roles/{r}` |
//! | `Call` `discord.post_message` | `POST /channels/{channel}/messages` |
//! | `Call` `discord.pin_message` | `PUT /channels/{channel}/pins/{message}` |
//! | `Call` `discord.kick` | `DELETE /guilds/{guild}/members/{user}` (the connection's guild) |
//! | `StartProcess` | refused: Discord has no decision processes |
//!
//! ## The `data` of governable actions
//! Ids are snowflakes as strings (digits; mentions like `<#1>` are accepted too).
//! - `discord.message`: `channel` (else the action's place), `message` (else `source_id`),
//!   `author` (as shown in the repost; else a mention of the initiator), `text`,
//!   `attachments` (an array of URLs, appended to the repost).
//! - `discord.rename_channel`: `channel` (else the action's place), `old_name`, `name`.
//! - `discord.role_grant`: `user`, `role`, `guild` (else the connection's guild).
//!
//! ## Errors
//! A 429 is [`PlatformError::RateLimited`](polity_governance::platform::PlatformError) with the
//! body's `retry_after` (or the `Retry-After` header); 5xx, 408 and connection failures are
//! `Transient`; any other 4xx is `Permanent` with Discord's message and code, and is never
//! retried here (retrying 403s burns Discord's invalid-request budget). Deleting a message
//! that is already gone counts as done. In production serenity's rate limiter waits out
//! 429s itself before they reach us.

//!
//! ## The gateway
//! [`start`] builds serenity's client on the same base URL rule as the platform (a fake's URL:
//! rate limiter disabled) and sends each event to an `mpsc` channel; [`Gateway::shutdown`]
//! closes the shard. serenity reconnects and RESUMEs by itself. Intents ([`intents`]): `GUILDS`
//! (channel names from `GUILD_CREATE`, renames), `GUILD_MESSAGES` and `MESSAGE_CONTENT`
//! (governed messages need their text and attachments), `GUILD_MESSAGE_REACTIONS` (reaction
//! votes), `GUILD_MEMBERS` (joins, role changes); the last two of the five named are privileged.
//!
//! | gateway event | `DiscordEvent.input` | `dedup_key` |
//! |---|---|---|
//! | `MESSAGE_REACTION_ADD`/`REMOVE` | `Inbound::Reaction` (emoji: unicode normalized, custom `name:id`) | `reaction:{message}:{user}:{emoji}:{add\|remove}:{session}:{n}`, new per delivery (a reaction is a state: applying it twice changes nothing) |
//! | `MESSAGE_CREATE` (guild, not a webhook) | performed `discord.message` at its channel, `source_id` = message id; `text`, `channel`, `message`, `author` (display name), `attachments` (URLs) | `message:{message}` |
//! | `CHANNEL_UPDATE` with a new name | performed `discord.rename_channel` by the audit log entry's user; `channel`, `old_name`, `name` | `rename:{channel}:{audit entry}` |
//! | `GUILD_MEMBER_UPDATE`, per role added | performed `discord.role_grant` by the audit log entry's user; `guild`, `user`, `role` | `role_grant:{guild}:{user}:{role}:{audit entry}` |
//! | `GUILD_MEMBER_ADD` | event `discord.member_join`; `guild`, `user`, `name` | `member_join:{guild}:{user}:{joined_at}` |
//!
//! The gateway does not say who renamed a channel or granted a role, so the newest audit log
//! entry for the target (`GET /guilds/{g}/audit-logs`, type 11 or 25; the bot needs View Audit
//! Log) names the initiator; without one the change is not governed. Anything done by the bot
//! itself (its id from `READY`) is dropped: the bot never governs its own actions. The old
//! channel name and old roles come from serenity's cache, which is updated in gateway order
//! (handlers run on separate tasks, so state of their own would race).

mod commands;
mod gateway;
mod incoming;
mod invite;
mod platform;
mod rest;

pub use commands::{Bridge, application_commands};
pub use gateway::{
    COMMAND_USED, DiscordEvent, Gateway, GatewayConfig, MEMBER_JOIN, ROLE_REVOKED, emoji_key, intents, start,
};
pub use incoming::{CommandCall, GuildInfo, Incoming, SecretTyped};
pub use invite::{PERMISSIONS, invite_url, permission_bits};
pub use platform::{
    DELETE_MESSAGE, DiscordPlatform, EDIT_MESSAGE, GRANT_ROLE, KICK, MESSAGE, PIN_MESSAGE, POST_MESSAGE,
    RENAME_CHANNEL, REVOKE_ROLE, ROLE_GRANT, SEND_DM, VOTE_BUTTON,
};
pub use rest::DISCORD_URL;
/// serenity's cache, which the gateway keeps: what a guild's connection checks channels against.
pub use serenity::cache::Cache;
