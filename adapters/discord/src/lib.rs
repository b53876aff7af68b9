//! The Discord platform, effect side: [`DiscordPlatform`] performs Polity's effects with
//! serenity's HTTP client (the gateway, slash commands and event translation come later).
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

mod platform;
mod rest;

pub use platform::{DiscordPlatform, KICK, MESSAGE, PIN_MESSAGE, POST_MESSAGE, RENAME_CHANNEL, ROLE_GRANT};
pub use rest::DISCORD_URL;
