//! The link that adds Polity's bot to a Discord server, with exactly the permissions it uses.

use serenity::model::permissions::Permissions;

/// Discord's Pin Messages permission (split from Manage Messages in 2026); serenity 0.12
/// predates it.
const PIN_MESSAGES: u64 = 1 << 51;

/// Each permission the bot asks for, and what it needs it for.
pub const PERMISSIONS: &[(&str, u64, &str)] = &[
    ("View Channels", Permissions::VIEW_CHANNEL.bits(), "see the channels it governs and votes in"),
    ("Send Messages", Permissions::SEND_MESSAGES.bits(), "post vote messages, outcomes and reposts"),
    ("Read Message History", Permissions::READ_MESSAGE_HISTORY.bits(), "read back the reactions on vote messages"),
    ("Add Reactions", Permissions::ADD_REACTIONS.bits(), "seed a vote message's reactions"),
    (
        "Manage Messages",
        Permissions::MANAGE_MESSAGES.bits(),
        "remove a superseded or ineligible vote reaction; hold a governed message for its vote",
    ),
    ("Pin Messages", PIN_MESSAGES, "pin a message when a policy says so"),
    ("Manage Channels", Permissions::MANAGE_CHANNELS.bits(), "undo and re-apply a governed channel rename"),
    ("Manage Roles", Permissions::MANAGE_ROLES.bits(), "undo and re-apply a governed role grant"),
    ("Kick Members", Permissions::KICK_MEMBERS.bits(), "kick a member when a policy says so"),
    ("View Audit Log", Permissions::VIEW_AUDIT_LOG.bits(), "learn who renamed a channel or granted a role"),
];

/// The permission bits of [`PERMISSIONS`].
#[must_use]
pub fn permission_bits() -> u64 {
    PERMISSIONS.iter().fold(0, |all, (_, bit, _)| all | bit)
}

/// The link a server's admin opens to add the bot: the `bot` and `applications.commands`
/// scopes and [`permission_bits`].
#[must_use]
pub fn invite_url(application_id: u64) -> String {
    format!(
        "https://discord.com/oauth2/authorize?client_id={application_id}&scope=bot+applications.commands&permissions={}",
        permission_bits()
    )
}
