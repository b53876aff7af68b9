//! The Discord platform: serenity's gateway and HTTP clients, and Polity's commands as poise
//! application commands.
//!
//! - Effect side: [`DiscordPlatform`] performs Polity's effects over Discord's REST API v10
//!   (serenity's routes, Polity's own rate budget), and reads back who reacted on a
//!   vote message. [`DiscordPlatform::for_guilds`] is the connection of the community that
//!   governs those guilds: it refuses any request that names what is not theirs (see
//!   [Communities apart](#communities-apart)), so one community can never read or act on
//!   another's server, nor reach another's members.
//! - Gateway side: [`start`] connects serenity's gateway client with poise as its framework
//!   and hands the bot [`Incoming`]s: governance inputs, the guilds and their members,
//!   (re)connections, and commands waiting for their answer.
//! - Commands: [`application_commands`] builds every command of the shared catalogue as a
//!   poise command (registered with one `PUT /applications/{id}/commands` when the session
//!   starts); vote buttons and the form that asks for a secret are answered the same way.
//! - [`invite_url`]: the link that adds the bot, with exactly the [`PERMISSIONS`] it uses.
//!
//! Nothing Polity posts or edits pings anyone (`allowed_mentions: {"parse": []}` on every
//! message, edit and interaction answer: Discord parses every mention otherwise, and
//! re-parses an edited text), except the users a policy names in `discord.post_message`'s
//! `mention`.
//!
//! | effect | Discord API v10 requests |
//! |---|---|
//! | `PostVote` | `POST /channels/{c}/messages` (`content`, a button per option a press can cast, `nonce` = request key, `enforce_nonce`), then `PUT /channels/{c}/messages/{m}/reactions/{emoji}/@me` per option |
//! | `EditVote` | `PATCH /channels/{c}/messages/{m}` (`content`; `components: []` once the vote is closed) for each vote message on this connection |
//! | `Post` | `POST /channels/{c}/messages` |
//! | `Notify` | `POST /users/@me/channels` (`recipient_id`), then `POST /channels/{dm}/messages` |
//! | `RemoveReaction` | `GET /channels/{c}/messages/{m}` (the variants on the message: 👍🏽 and 👍🏿 are 👍's option), then `DELETE /channels/{c}/messages/{m}/reactions/{variant}/{user}` for the variant the user holds (read with `GET .../reactions/{variant}?type=0` when several are there) |
//! | `Revert`/`Execute` `discord.message` | its attachments downloaded from Discord's CDN first (only from the CDN or the connection's own host; each up to 10 MiB, 25 MiB in all), kept with the governed action, then `DELETE /channels/{c}/messages/{m}` / `POST /channels/{c}/messages` ("{author} wrote: {text}", no mentions parsed) with the kept files uploaded again (`multipart/form-data`); a file that could not be kept is named by its link |
//! | `Revert`/`Execute` `discord.rename_channel` | `PATCH /channels/{c}` (`name`: `old_name` / `name`) |
//! | `Revert`/`Execute` `discord.role_grant` | `DELETE` / `PUT /guilds/{g}/members/{u}/roles/{r}` |
//! | `Call` `discord.post_message` (`channel`, `text`, `mention`: user ids it may ping) | `POST /channels/{channel}/messages` (`allowed_mentions.users` = `mention`) |
//! | `Call` `discord.send_dm` (`user`, `text`) | as `Notify` |
//! | `Call` `discord.edit_message` (`channel`, `message`, `text`) | `PATCH /channels/{channel}/messages/{message}` |
//! | `Call` `discord.delete_message` (`channel`, `message`) | `DELETE /channels/{channel}/messages/{message}` |
//! | `Call` `discord.pin_message` (`channel`, `message`) | `PUT /channels/{channel}/pins/{message}` |
//! | `Call` `discord.rename_channel` (`channel`, `name`) | `PATCH /channels/{channel}` |
//! | `Call` `discord.grant_role` / `discord.revoke_role` (`user`, `role`, `guild`) | `PUT` / `DELETE /guilds/{g}/members/{user}/roles/{role}` (`guild`, else the connection's guild, else the one of its guilds that has the role) |
//! | `Call` `discord.kick` (`user`, `guild`) | `DELETE /guilds/{g}/members/{user}` (`guild`, else the connection's guild, else the one of its guilds the user is in) |
//! | `StartProcess` | refused: Discord has no decision processes |
//! | reading a vote's reactions | `GET /users/@me` (once), `GET /channels/{c}/messages/{m}` (which variants of each option members hold as normal reactions), then for each `GET /channels/{c}/messages/{m}/reactions/{variant}?type=0&limit=100&after={last}` page by page; bots and super reactions left out |
//!
//! ## The `data` of governable actions
//! Ids are snowflakes as strings (digits; mentions like `<#1>` are accepted too).
//! - `discord.message`: `channel` (else the action's place), `message` (else `source_id`),
//!   `author` (as shown in the repost; else a mention of the initiator), `text`,
//!   `attachments` (an array of URLs, appended to the repost).
//! - `discord.rename_channel`: `channel` (else the action's place), `old_name`, `name`.
//! - `discord.role_grant`: `user`, `role`, `guild` (else the connection's guild).
//!
//! ## Communities apart
//! A community's connection checks every request in one place before anything is sent: the
//! effect is first parsed into the requests it makes, then each of their targets must be the
//! community's, else the effect is refused with `Permanent` ("user 3 is not a member of this
//! community's server (7)") and nothing is done.
//!
//! | target | the community's when | asked of |
//! |---|---|---|
//! | a channel (posts, edits, deletes, pins, renames, reactions, reading a vote back) | it is a channel or thread of one of its guilds | serenity's cache |
//! | a message | its channel is (a message is always addressed through its channel) | |
//! | a user (a DM's recipient, a kicked member, a role's holder) | they are a member of one of its guilds (of the guild a route names, for kicks and roles) | serenity's cache, else `GET /guilds/{g}/members/{u}` (Unknown Member or Unknown User: not a member) |
//! | a role | it is a role of the guild the route names | serenity's cache |
//! | a guild (a `guild` parameter) | it is one of its guilds | |
//!
//! A connection without guilds (a token of one community's own: [`DiscordPlatform::new`])
//! checks nothing: the token is the scope.
//!
//! ## Errors
//! A 429 is [`PlatformError::RateLimited`](polity_governance::platform::PlatformError) with the
//! body's `retry_after` (or the `Retry-After` header); 5xx, 408 and connection failures are
//! `Transient`; any other 4xx is `Permanent` with Discord's message and code, and is never
//! retried here (retrying 403s burns Discord's invalid-request budget). Deleting a message
//! that is already gone counts as done.
//!
//! ## Rate limits
//! Nothing the platform sends ever waits in a client library: its requests bypass serenity's
//! rate limiter (which would sleep out a 429, a rename's ten minutes, inside the task
//! performing the effect, and which ignores a proxy). Instead, whatever the base URL
//! (Discord, a proxy, a fake), each request is first offered to Polity's own budget, shared
//! by every clone of the connection: per route bucket (`X-RateLimit-Bucket`, kept per
//! channel, guild or webhook), learned from every answer's `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset-After` (or `X-RateLimit-Reset`), and from a 429's `retry_after`
//! (for the whole bot when it is global: `"global": true`, `X-RateLimit-Global`,
//! `X-RateLimit-Scope: global`); and Discord's global 50 requests a second. A request
//! Discord would refuse is refused before it is sent, as `RateLimited` with the time left,
//! and the dispatcher parks the effect's lane until then. Values it cannot read are ignored,
//! and no wait is held longer than an hour. What serenity and poise send on their own
//! (the gateway's address, command registration, interaction answers, audit log reads) goes
//! through serenity's rate limiter at Discord's own URL, and unlimited behind a proxy.
//!
//! ## The gateway
//! [`start`] builds serenity's client on the same base URL rule as the platform (a fake's URL:
//! rate limiter disabled) and sends [`Incoming`]s to an `mpsc` channel; [`Gateway::shutdown`]
//! closes the shards. It starts as many shards as Discord recommends (`GET /gateway/bot`; one
//! shard serves at most 2,500 servers, past which Discord closes with 4011); a token Discord
//! refuses (4004) or privileged intents the application may not use (4014) stop the
//! connection for good, with what to change ([`explain`]), instead of identifying again.
//! The member lists Polity asks for when a large server arrives are paced per shard under
//! Discord's gateway send limit (120 in 60 s). serenity reconnects and RESUMEs by itself; `READY` and `RESUMED` become
//! [`Incoming::Connected`], after which the bot reads its open votes back. Intents
//! ([`intents`]): `GUILDS` (channel names from `GUILD_CREATE`, renames), `GUILD_MESSAGES` and
//! `MESSAGE_CONTENT` (governed messages need their text and attachments),
//! `GUILD_MESSAGE_REACTIONS` (reaction votes), `GUILD_MEMBERS` (members, joins, role
//! changes), `GUILD_MODERATION` (audit log entries: who renamed, who granted); `MESSAGE_CONTENT`
//! and `GUILD_MEMBERS` are privileged (a bot in 100 or more servers needs Discord's
//! verification for them).
//!
//! | gateway event | what the bot gets | `dedup_key` |
//! |---|---|---|
//! | `READY` / `RESUMED` | [`Incoming::Connected`] (the application id, for the invite link) | |
//! | `GUILD_CREATE` / `GUILD_MEMBERS_CHUNK` | [`Incoming::Guild`] (name, owner, members; a large guild's members are asked for) / [`Incoming::Members`] | |
//! | `MESSAGE_REACTION_ADD`/`REMOVE` | `Inbound::Reaction` (emoji: unicode normalized, so 👍🏽 is 👍; custom `name:id`); super (burst) reactions ignored; the engine also makes an added reaction the trigger event `discord.reaction_added` | `reaction:{message}:{user}:{emoji}:{add\|remove}:{session}:{n}`, new per delivery (a reaction is a state: applying it twice changes nothing) |
//! | `MESSAGE_CREATE` (guild, not a webhook) | performed `discord.message` at its channel, `source_id` = message id; `text`, `channel`, `message`, `author` (display name), `attachments` (URLs) | `message:{message}` |
//! | `GUILD_AUDIT_LOG_ENTRY_CREATE`, a channel update with a new name (type 11) | performed `discord.rename_channel` by the entry's user; `channel`, `old_name`, `name` (the entry's own change) | `rename:{channel}:{audit entry}` |
//! | `GUILD_AUDIT_LOG_ENTRY_CREATE`, a member's roles (type 25), per role in `$add` / `$remove` | performed `discord.role_grant` / event `discord.role_revoked`, by the entry's user; `guild`, `user`, `role` | `role_grant:` / `role_revoked:{guild}:{user}:{role}:{audit entry}` |
//! | `GUILD_MEMBER_ADD` | event `discord.member_join`; `guild`, `user`, `name` | `member_join:{guild}:{user}:{joined_at}` |
//! | `INTERACTION_CREATE`, a slash command | [`Incoming::Command`] (with whether the invoker controls the server: its owner, or Administrator or Manage Server in the permissions Discord sends), and the event `discord.command_used` (`command`, `channel`) | `command_used:{interaction}` |
//! | `INTERACTION_CREATE`, a vote button | [`Incoming::Command`] of the `/vote` it stands for | |
//! | `INTERACTION_CREATE`, the secret form | [`Incoming::Secret`] with the command that asked | |
//!
//! `CHANNEL_UPDATE` and `GUILD_MEMBER_UPDATE` do not say who made the change. Renames and
//! role changes are governed from the audit log entry Discord writes for them, which the
//! gateway delivers as `GUILD_AUDIT_LOG_ENTRY_CREATE` to a bot with View Audit Log: it names
//! the actor, the target and the change (old and new name; the roles added or taken away),
//! so nothing is matched after the fact and nothing races (reading the audit log back after
//! the change could miss an entry not yet written, or take the bot's own revert for the
//! member's change). Without View Audit Log no entry arrives and renames and role changes are
//! not governed: `/integration test discord` says so. Anything done by the bot itself (its
//! id from `READY`) is dropped: the bot never governs its own actions. Handlers run on
//! separate tasks, so reaction events may arrive out of order: reading the vote message back
//! settles them.
//!
//! ## Answering interactions
//! Discord wants the first answer to an interaction within three seconds. A command the
//! catalogue marks slow is acknowledged at once (ephemeral "thinking") and answered by
//! editing that; any other is answered directly when the bot answers within
//! [`GatewayConfig::answer_within`] (two seconds), else acknowledged and edited. Replies
//! are ephemeral (they are for the invoker); a text over Discord's 2000 characters comes
//! whole as an attached file. A reply that asks for a secret is answered with a form
//! (a modal) whose answer goes to the bot and is never shown or logged.

mod adapter;
mod commands;
mod gateway;
mod invite;
mod log;
mod platform;
mod ratelimit;
mod rest;

pub use adapter::{DiscordAdapter, DiscordConfig, SPEC};
pub use commands::{Bridge, application_commands};
pub use gateway::{Gateway, GatewayConfig, explain, intents, start};
pub use invite::{PERMISSIONS, invite_url, permission_bits};
pub use platform::{
    COMMAND_USED, DELETE_MESSAGE, DiscordPlatform, EDIT_MESSAGE, GRANT_ROLE, KICK, MEMBER_JOIN, MESSAGE, PIN_MESSAGE,
    POST_MESSAGE, RENAME_CHANNEL, REVOKE_ROLE, ROLE_GRANT, ROLE_REVOKED, SEND_DM, VOTE_BUTTON, actions, emoji_key,
};
pub use rest::DISCORD_URL;
/// serenity's cache, which the gateway keeps: what a community's connection checks channels,
/// members and roles against.
pub use serenity::cache::Cache;
