#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real serenity gateway client against a fake Discord (REST on wiremock, the gateway on a
//! websocket): what it asks at connect, and the neutral event each gateway dispatch becomes.

#[allow(dead_code)]
mod fake;

use fake::gateway::{
    FakeGateway, channel, emoji, guild_create, member, member_add, message_create, reaction_add, reaction_remove, user,
};
use fake::{BOT_ID, FakeDiscord};
use polity_discord::{Gateway, GatewayConfig, intents, start};
use polity_governance::action::{Action, ActionStatus, ActionType};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Inbound;
use polity_port::{Event as DiscordEvent, Incoming};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const CHANNEL: &str = "100000000000000001";
const BOT_CHANNEL: &str = "100000000000000002";
const MESSAGE: &str = "200000000000000001";
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const CAROL: &str = "300000000000000003";
const ROLE: &str = "400000000000000001";
const OTHER_ROLE: &str = "400000000000000002";
const RENAME_ENTRY: &str = "800000000000000001";
const BOT_RENAME_ENTRY: &str = "800000000000000002";
const ROLE_ENTRY: &str = "800000000000000003";
const BOT_ROLE_ENTRY: &str = "800000000000000004";
/// Audit log event types: CHANNEL_UPDATE and MEMBER_ROLE_UPDATE.
const CHANNEL_UPDATE: u8 = 11;
const MEMBER_ROLE_UPDATE: u8 = 25;

struct Connected {
    rest: FakeDiscord,
    gateway_fake: FakeGateway,
    events: mpsc::Receiver<Incoming>,
    gateway: Gateway,
    identify: Value,
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Connects the real client to the fakes, with the guild (members Alice, Bob and the bot;
/// channels `general` and `bots`) created.
async fn connect() -> Connected {
    // `RUST_LOG=serenity=debug,polity_discord=debug` shows what serenity made of the fakes.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let rest = FakeDiscord::start().await;
    let gateway_fake = FakeGateway::start(vec![GUILD.to_string()]).await;
    rest.gateway(&gateway_fake.url()).await;
    rest.audit_log(GUILD, CHANNEL_UPDATE, &[(BOT_RENAME_ENTRY, BOT_ID, BOT_CHANNEL), (RENAME_ENTRY, ALICE, CHANNEL)])
        .await;
    rest.audit_log(GUILD, MEMBER_ROLE_UPDATE, &[(BOT_ROLE_ENTRY, BOT_ID, CAROL), (ROLE_ENTRY, ALICE, BOB)]).await;
    let (tx, events) = mpsc::channel(16);
    let mut config = GatewayConfig::new("discord", TOKEN, rest.url());
    config.register_commands = false;
    let gateway = start(config, tx).await.unwrap();
    let identify = within("IDENTIFY", gateway_fake.identify()).await;
    let members = vec![
        member(ALICE, "alice", Some("Alice A."), &[]),
        member(BOB, "bob", None, &[OTHER_ROLE]),
        member(CAROL, "carol", None, &[]),
        member(BOT_ID, "polity", None, &[]),
    ];
    let channels = vec![channel(CHANNEL, "general", None), channel(BOT_CHANNEL, "bots", None)];
    gateway_fake.dispatch(
        "GUILD_CREATE",
        guild_create(GUILD, ALICE, &[(ROLE, "steward"), (OTHER_ROLE, "member")], members, channels),
    );
    Connected { rest, gateway_fake, events, gateway, identify }
}

impl Connected {
    /// The next governance input (the session and guild notices before it are skipped).
    async fn next(&mut self) -> DiscordEvent {
        loop {
            match within("a gateway event", self.events.recv()).await.expect("the gateway stopped") {
                Incoming::Event(e) => return e,
                Incoming::Connected { .. } | Incoming::Space(_) | Incoming::Invite(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn dispatch(&self, t: &str, d: Value) {
        self.gateway_fake.dispatch(t, d);
    }

    /// Nothing else was delivered (events the handler dropped were pushed before the last
    /// one awaited, so their handler tasks have had their turn).
    async fn finish(mut self) {
        while let Ok(e) = self.events.try_recv() {
            assert!(
                matches!(e, Incoming::Connected { .. } | Incoming::Space(_) | Incoming::Invite(_)),
                "an unexpected event was delivered: {e:?}"
            );
        }
        within("shutdown", self.gateway.shutdown()).await.unwrap();
    }
}

fn event(key: &str, input: Inbound, from: Option<(&str, &str)>) -> DiscordEvent {
    DiscordEvent {
        dedup_key: key.into(),
        space: Some(GUILD.into()),
        input,
        from: from.map(|(id, name)| (AccountRef::new("discord", id), name.to_string())),
    }
}

fn account(id: &str) -> AccountRef {
    AccountRef::new("discord", id)
}

fn action(kind: &str, by: &str, source_id: &str, data: Value) -> Action {
    let mut a = Action::new(ActionType::new(kind).unwrap(), account(by), source_id);
    a.data = data.as_object().unwrap().clone().into();
    a
}

#[tokio::test]
async fn the_client_asks_the_fake_for_the_gateway_and_identifies_with_the_token_and_intents() {
    let c = connect().await;
    assert!(
        c.rest.calls().await.contains(&("GET".to_string(), "/api/v10/gateway/bot".to_string())),
        "serenity did not ask the fake for the gateway URL and shard count"
    );
    // serenity sends the token as it sends it over HTTP, with its `Bot ` prefix.
    assert_eq!(c.identify["token"], json!(format!("Bot {TOKEN}")));
    let expected = intents();
    assert_eq!(c.identify["intents"], json!(expected.bits()));
    // GUILDS | GUILD_MEMBERS | GUILD_MODERATION | GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS |
    // MESSAGE_CONTENT
    assert_eq!(expected.bits(), 1 | (1 << 1) | (1 << 2) | (1 << 9) | (1 << 10) | (1 << 15));
    c.finish().await;
}

/// The key without its per-delivery number.
fn key_stem(e: &DiscordEvent) -> String {
    let parts: Vec<&str> = e.dedup_key.split(':').collect();
    parts[..parts.len() - 2].join(":")
}

#[tokio::test]
async fn reactions_become_ballots_each_delivery_its_own_and_the_bots_own_are_ignored() {
    let mut c = connect().await;
    let thumbs = emoji("👍", None);
    // The bot seeding its vote reactions is not a ballot.
    c.dispatch(
        "MESSAGE_REACTION_ADD",
        reaction_add(GUILD, CHANNEL, MESSAGE, member(BOT_ID, "polity", None, &[]), thumbs.clone()),
    );
    let alice = member(ALICE, "alice", Some("Alice A."), &[]);
    c.dispatch("MESSAGE_REACTION_ADD", reaction_add(GUILD, CHANNEL, MESSAGE, alice.clone(), thumbs.clone()));
    let vote = MessageRef::new("discord", CHANNEL, MESSAGE);
    let first = c.next().await;
    assert_eq!(key_stem(&first), format!("reaction:{MESSAGE}:{ALICE}:👍:add"));
    assert_eq!(
        (first.input.clone(), first.from.clone()),
        (
            Inbound::Reaction { message: vote.clone(), voter: account(ALICE), emoji: "👍".into(), added: true },
            Some((account(ALICE), "Alice A.".to_string()))
        )
    );

    // Added again (after a removal): a new delivery, so it counts again.
    c.dispatch("MESSAGE_REACTION_ADD", reaction_add(GUILD, CHANNEL, MESSAGE, alice.clone(), thumbs.clone()));
    let again = c.next().await;
    assert_eq!(again.input, first.input);
    assert_ne!(again.dedup_key, first.dedup_key);

    // A skin tone counts as the plain emoji.
    c.dispatch("MESSAGE_REACTION_REMOVE", reaction_remove(GUILD, CHANNEL, MESSAGE, ALICE, emoji("👍🏽", None)));
    let removed = c.next().await;
    assert_eq!(key_stem(&removed), format!("reaction:{MESSAGE}:{ALICE}:👍:remove"));
    assert_eq!(
        removed.input,
        Inbound::Reaction { message: vote.clone(), voter: account(ALICE), emoji: "👍".into(), added: false }
    );

    // A custom emoji is `name:id`.
    c.dispatch(
        "MESSAGE_REACTION_ADD",
        reaction_add(GUILD, CHANNEL, MESSAGE, alice, emoji("aye", Some("500000000000000001"))),
    );
    assert_eq!(
        c.next().await.input,
        Inbound::Reaction { message: vote, voter: account(ALICE), emoji: "aye:500000000000000001".into(), added: true }
    );
    c.dispatch("MESSAGE_REACTION_REMOVE", reaction_remove(GUILD, CHANNEL, MESSAGE, BOT_ID, emoji("👍", None)));
    c.finish().await;
}

#[tokio::test]
async fn a_members_message_is_a_performed_action_with_its_text_and_attachments_and_the_bots_is_ignored() {
    let mut c = connect().await;
    c.dispatch(
        "MESSAGE_CREATE",
        message_create(GUILD, CHANNEL, "200000000000000009", user(BOT_ID, "polity", true), "Vote!", &[]),
    );
    let png = "https://cdn.discordapp.com/attachments/1/2/plan.png";
    c.dispatch("MESSAGE_CREATE", message_create(GUILD, CHANNEL, MESSAGE, user(BOB, "bob", false), "Hello all", &[png]));
    let mut message = action(
        "discord.message",
        BOB,
        MESSAGE,
        json!({ "text": "Hello all", "channel": CHANNEL, "message": MESSAGE, "author": "bob", "attachments": [png] }),
    )
    .at(Place::new("discord", CHANNEL));
    message.status = ActionStatus::Performed;
    assert_eq!(
        c.next().await,
        event(&format!("message:{MESSAGE}"), Inbound::Action { action: message }, Some((BOB, "bob")))
    );
    c.finish().await;
}

/// GUILD_AUDIT_LOG_ENTRY_CREATE's `d`: an entry of `action_type` by `user` on `target` with
/// Discord's `changes`.
fn audit_entry(id: &str, user: &str, target: &str, action_type: u8, changes: Value) -> Value {
    json!({
        "id": id, "user_id": user, "target_id": target, "action_type": action_type,
        "changes": changes, "reason": null, "guild_id": GUILD
    })
}

#[tokio::test]
async fn a_rename_is_governed_from_its_audit_log_entry_with_its_author_and_both_names() {
    let mut c = connect().await;
    // The change's own event says nothing of who made it: nothing is delivered for it.
    c.dispatch("CHANNEL_UPDATE", channel(CHANNEL, "announcements", Some(GUILD)));
    // The bot's own rename (a revert) is not governed.
    let names = |old: &str, new: &str| json!([{ "key": "name", "old_value": old, "new_value": new }]);
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry(BOT_RENAME_ENTRY, BOT_ID, BOT_CHANNEL, CHANNEL_UPDATE, names("bots", "bots-renamed")),
    );
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry(RENAME_ENTRY, ALICE, CHANNEL, CHANNEL_UPDATE, names("general", "announcements")),
    );
    let rename = action(
        "discord.rename_channel",
        ALICE,
        RENAME_ENTRY,
        json!({ "channel": CHANNEL, "old_name": "general", "name": "announcements" }),
    )
    .at(Place::new("discord", CHANNEL));
    assert_eq!(
        c.next().await,
        event(
            &format!("rename:{CHANNEL}:{RENAME_ENTRY}"),
            Inbound::Action { action: rename },
            Some((ALICE, "Alice A."))
        )
    );
    // A channel update that keeps the name (a topic) is no rename.
    let topic = json!([{ "key": "topic", "old_value": null, "new_value": "news" }]);
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry("800000000000000009", ALICE, CHANNEL, CHANNEL_UPDATE, topic),
    );
    c.finish().await;
}

#[tokio::test]
async fn a_role_added_to_a_member_is_a_role_grant_and_a_join_is_an_event() {
    let mut c = connect().await;
    let roles = |key: &str, id: &str, name: &str| json!([{ "key": key, "new_value": [{ "id": id, "name": name }] }]);
    // The bot granting a role (a re-execution on pass) is not governed.
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry(BOT_ROLE_ENTRY, BOT_ID, CAROL, MEMBER_ROLE_UPDATE, roles("$add", ROLE, "steward")),
    );
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry(ROLE_ENTRY, ALICE, BOB, MEMBER_ROLE_UPDATE, roles("$add", ROLE, "steward")),
    );
    let grant = action(
        "discord.role_grant",
        ALICE,
        &format!("{ROLE_ENTRY}:{ROLE}"),
        json!({ "guild": GUILD, "user": BOB, "role": ROLE }),
    );
    assert_eq!(
        c.next().await,
        event(
            &format!("role_grant:{GUILD}:{BOB}:{ROLE}:{ROLE_ENTRY}"),
            Inbound::Action { action: grant },
            Some((ALICE, "Alice A."))
        )
    );

    // A role taken away is a trigger event, by the entry's author.
    let taken = "800000000000000005";
    c.dispatch(
        "GUILD_AUDIT_LOG_ENTRY_CREATE",
        audit_entry(taken, ALICE, BOB, MEMBER_ROLE_UPDATE, roles("$remove", OTHER_ROLE, "member")),
    );
    let revoked = action(
        "discord.role_revoked",
        ALICE,
        &format!("{taken}:{OTHER_ROLE}"),
        json!({ "guild": GUILD, "user": BOB, "role": OTHER_ROLE }),
    )
    .event();
    assert_eq!(
        c.next().await,
        event(
            &format!("role_revoked:{GUILD}:{BOB}:{OTHER_ROLE}:{taken}"),
            Inbound::Action { action: revoked },
            Some((ALICE, "Alice A."))
        )
    );

    let dave = "300000000000000004";
    c.dispatch("GUILD_MEMBER_ADD", member_add(GUILD, dave, "dave"));
    let join =
        action("discord.member_join", dave, dave, json!({ "guild": GUILD, "user": dave, "name": "dave" })).event();
    let joined = "1793534400"; // JOINED_AT as a unix timestamp
    assert_eq!(
        c.next().await,
        event(&format!("member_join:{GUILD}:{dave}:{joined}"), Inbound::Action { action: join }, Some((dave, "dave")))
    );
    c.finish().await;
}
