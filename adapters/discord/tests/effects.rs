#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every effect performed by the real serenity client against a fake Discord: the exact
//! requests Discord v10 expects, and how its failures map to retry decisions.

mod fake;

use fake::FakeDiscord;
use polity_discord::DiscordPlatform;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, MessageRef, Place, ProposalId};
use polity_governance::io::{Effect, VoteOption};
use polity_governance::platform::{ActionKind, Performed, Platform, PlatformError, Request};
use serde_json::{Map, Value, json};
use std::time::Duration;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const CHANNEL: &str = "100000000000000001";
const MESSAGE: &str = "200000000000000001";
const GUILD: &str = "700000000000000001";
const USER: &str = "300000000000000001";
const ROLE: &str = "400000000000000001";

fn discord(fake: &FakeDiscord) -> DiscordPlatform {
    DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap().with_guild(GUILD.parse().unwrap())
}

async fn perform(d: &DiscordPlatform, effect: &Effect, messages: &[MessageRef]) -> Result<Performed, PlatformError> {
    d.perform(Request { key: 42, retried: false, effect, vote_messages: messages }).await
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn action(kind: &str, data: Value) -> Action {
    let mut a = Action::new(ActionType::new(kind).unwrap(), AccountRef::new("discord", USER), MESSAGE);
    a.place = Some(Place::new("discord", CHANNEL));
    a.data = map(data).into();
    a
}

/// The body Discord's Create Message takes for plain text: serenity sends its defaults too.
/// It pings nobody.
fn message_body(content: &str, nonce: &str) -> Value {
    json!({
        "allowed_mentions": { "parse": [], "roles": [], "users": [] },
        "content": content,
        "nonce": nonce,
        "enforce_nonce": true,
        "tts": false,
        "embeds": [],
        "sticker_ids": [],
        "attachments": []
    })
}

fn call(name: &str, params: Value) -> Effect {
    Effect::Call { proposal: None, name: ActionType::new(name).unwrap(), params: map(params) }
}

#[tokio::test]
async fn a_vote_is_posted_once_with_the_request_key_as_nonce_its_buttons_and_its_reactions_seeded() {
    let fake = FakeDiscord::start().await;
    fake.create_message(CHANNEL, MESSAGE).await;
    fake.create_reaction(CHANNEL, MESSAGE).await;
    let effect = Effect::PostVote {
        proposal: ProposalId(1),
        place: Place::new("discord", CHANNEL),
        text: "Proposal #1: rename #general".into(),
        options: vec![
            VoteOption { emoji: "👍".into(), label: "yes".into(), press: Some("yes".into()) },
            VoteOption { emoji: "<:nay:500000000000000001>".into(), label: "no".into(), press: Some("no".into()) },
            VoteOption { emoji: "🤷".into(), label: "abstain".into(), press: Some("abstain".into()) },
        ],
    };
    let done = perform(&discord(&fake), &effect, &[]).await.unwrap();
    assert_eq!(done.message, Some(MessageRef::new("discord", CHANNEL, MESSAGE)));
    let got = fake.received().await;
    assert_eq!(got.len(), 4);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/api/v10/channels/100000000000000001/messages")
    );
    // The content, the nonce (the outbox row) enforced, one button per option.
    insta::assert_json_snapshot!("vote_message", got[0].body);
    assert_eq!(got[0].authorization.as_deref(), Some(format!("Bot {TOKEN}").as_str()));
    let base = format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}/reactions");
    assert_eq!((got[1].method.as_str(), got[1].path.clone()), ("PUT", format!("{base}/%F0%9F%91%8D/@me")));
    assert_eq!((got[2].method.as_str(), got[2].path.clone()), ("PUT", format!("{base}/nay:500000000000000001/@me")));
    assert_eq!(got[1].body, Value::Null);
}

#[tokio::test]
async fn approval_and_ranked_votes_have_no_buttons() {
    let fake = FakeDiscord::start().await;
    fake.create_message(CHANNEL, MESSAGE).await;
    fake.create_reaction(CHANNEL, MESSAGE).await;
    let effect = Effect::PostVote {
        proposal: ProposalId(1),
        place: Place::new("discord", CHANNEL),
        text: "Proposal #1".into(),
        options: vec![VoteOption { emoji: "1️⃣".into(), label: "Tea".into(), press: None }],
    };
    perform(&discord(&fake), &effect, &[]).await.unwrap();
    assert_eq!(fake.received().await[0].body, message_body("Proposal #1", "42"));
}

#[tokio::test]
async fn an_unknown_emoji_does_not_lose_the_posted_vote() {
    let fake = FakeDiscord::start().await;
    fake.create_message(CHANNEL, MESSAGE).await;
    let p = format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}/reactions/%F0%9F%A6%84/@me");
    fake.fail("PUT", &p, 400, json!({ "code": 10014, "message": "Unknown Emoji" }), None).await;
    let effect = Effect::PostVote {
        proposal: ProposalId(1),
        place: Place::new("discord", CHANNEL),
        text: "vote".into(),
        options: vec![VoteOption { emoji: "🦄".into(), label: "yes".into(), press: None }],
    };
    let done = perform(&discord(&fake), &effect, &[]).await.unwrap();
    assert_eq!(done.message, Some(MessageRef::new("discord", CHANNEL, MESSAGE)));
}

#[tokio::test]
async fn a_vote_edit_patches_every_vote_message_of_this_connection() {
    let fake = FakeDiscord::start().await;
    fake.edit_message(CHANNEL, MESSAGE).await;
    fake.edit_message("100000000000000002", "200000000000000002").await;
    let messages = [
        MessageRef::new("discord", CHANNEL, MESSAGE),
        MessageRef::new("slack", "C1", "1.2"),
        MessageRef::new("discord", "100000000000000002", "200000000000000002"),
    ];
    let tally = "Proposal #1: alice proposes: x — tally: yes 1 · no 0 · abstain 0 (1 of 3 voted)";
    let effect = Effect::EditVote { proposal: ProposalId(1), text: tally.into(), closed: false };
    assert_eq!(perform(&discord(&fake), &effect, &messages).await.unwrap(), Performed::default());
    let got = fake.received().await;
    let paths: Vec<(&str, &str)> = got.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("PATCH", "/api/v10/channels/100000000000000001/messages/200000000000000001"),
            ("PATCH", "/api/v10/channels/100000000000000002/messages/200000000000000002"),
        ]
    );
    insta::assert_json_snapshot!("vote_edit_open", got[0].body);
    assert_eq!(got[0].body, got[1].body);
}

#[tokio::test]
async fn the_edit_that_closes_a_vote_takes_its_buttons_away() {
    let fake = FakeDiscord::start().await;
    fake.edit_message(CHANNEL, MESSAGE).await;
    let messages = [MessageRef::new("discord", CHANNEL, MESSAGE)];
    let text = "Proposal #1: alice proposes: x — tally: yes 2 · no 0 · abstain 0 (2 of 3 voted) — PASSED";
    let effect = Effect::EditVote { proposal: ProposalId(1), text: text.into(), closed: true };
    perform(&discord(&fake), &effect, &messages).await.unwrap();
    insta::assert_json_snapshot!("vote_edit_closed", fake.received().await[0].body);
}

#[tokio::test]
async fn a_post_creates_a_message() {
    let fake = FakeDiscord::start().await;
    fake.create_message(CHANNEL, MESSAGE).await;
    let effect = Effect::Post { place: Place::new("discord", CHANNEL), text: "Proposal #1 passed".into() };
    let done = perform(&discord(&fake), &effect, &[]).await.unwrap();
    assert_eq!(done.message, Some(MessageRef::new("discord", CHANNEL, MESSAGE)));
    let got = fake.received().await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/api/v10/channels/100000000000000001/messages");
    assert_eq!(got[0].body, message_body("Proposal #1 passed", "42"));
}

#[tokio::test]
async fn a_notification_opens_a_dm_channel_and_posts_in_it() {
    let fake = FakeDiscord::start().await;
    fake.create_dm("100000000000000009", USER).await;
    fake.create_message("100000000000000009", MESSAGE).await;
    let effect = Effect::Notify {
        account: AccountRef::new("discord", USER),
        text: "Your vote was not counted".into(),
        at: None,
    };
    perform(&discord(&fake), &effect, &[]).await.unwrap();
    let got = fake.received().await;
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].method.as_str(), got[0].path.as_str()), ("POST", "/api/v10/users/@me/channels"));
    assert_eq!(got[0].body, json!({ "recipient_id": USER }));
    assert_eq!(
        (got[1].method.as_str(), got[1].path.as_str()),
        ("POST", "/api/v10/channels/100000000000000009/messages")
    );
    assert_eq!(got[1].body, message_body("Your vote was not counted", "42"));
}

/// A message as Discord lists it with its reactions: `(emoji, normal count, super count)`.
fn with_reactions(reactions: &[(&str, u64, u64)]) -> Value {
    let mut m = fake::message_json(CHANNEL, MESSAGE, "Proposal #1");
    m["reactions"] = reactions
        .iter()
        .map(|(e, normal, burst)| {
            json!({
                "count": normal + burst, "count_details": { "normal": normal, "burst": burst },
                "me": false, "me_burst": false, "emoji": { "id": null, "name": e }, "burst_colors": []
            })
        })
        .collect();
    m
}

#[tokio::test]
async fn removing_a_reaction_deletes_the_variant_that_user_holds() {
    let fake = FakeDiscord::start().await;
    fake.delete_user_reaction(CHANNEL, MESSAGE, USER).await;
    let read = format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}");
    // 👎 held by the bot and a super reaction of 👎🏾; the user's 👎🏽.
    fake.answer("GET", &read, 200, with_reactions(&[("👎", 1, 0), ("👎🏽", 1, 0), ("👎🏾", 0, 1)]), &[], false).await;
    let users = |ids: &[&str]| json!(ids.iter().map(|id| json!({ "id": id, "username": "u" })).collect::<Vec<_>>());
    let reactions = format!("{read}/reactions/");
    fake.answer("GET", &format!("{reactions}%F0%9F%91%8E"), 200, users(&["900000000000000001"]), &[], false).await;
    fake.answer("GET", &format!("{reactions}%F0%9F%91%8E%F0%9F%8F%BD"), 200, users(&[USER]), &[], false).await;
    fake.answer(
        "GET",
        "/api/v10/users/@me",
        200,
        json!({ "id": "900000000000000001", "username": "polity" }),
        &[],
        false,
    )
    .await;
    let effect = Effect::RemoveReaction {
        message: MessageRef::new("discord", CHANNEL, MESSAGE),
        account: AccountRef::new("discord", USER),
        emoji: "👎".into(),
    };
    perform(&discord(&fake), &effect, &[]).await.unwrap();
    let deletes: Vec<String> =
        fake.calls().await.into_iter().filter(|(m, _)| m == "DELETE").map(|(_, path)| path).collect();
    assert_eq!(deletes, [format!("{reactions}%F0%9F%91%8E%F0%9F%8F%BD/{USER}")]);

    // A vote message that is gone has no reaction left to remove.
    let fake = FakeDiscord::start().await;
    fake.fail("GET", &read, 404, json!({ "code": 10008, "message": "Unknown Message" }), None).await;
    perform(&discord(&fake), &effect, &[]).await.unwrap();
}

#[tokio::test]
async fn a_governed_message_is_deleted_and_reposted_with_attribution_and_no_pings() {
    let fake = FakeDiscord::start().await;
    fake.delete_message(CHANNEL, MESSAGE).await;
    fake.create_message(CHANNEL, "200000000000000005").await;
    let d = discord(&fake);
    let a = action(
        "discord.message",
        json!({ "author": "alice", "text": "@everyone free pizza", "attachments": ["https://cdn.example/a.png"] }),
    );
    perform(&d, &Effect::Revert { proposal: Some(ProposalId(1)), action: a.clone() }, &[]).await.unwrap();
    let done = perform(&d, &Effect::Execute { proposal: Some(ProposalId(1)), action: a }, &[]).await.unwrap();
    assert_eq!(done.message, Some(MessageRef::new("discord", CHANNEL, "200000000000000005")));
    let got = fake.received().await;
    assert_eq!(
        (got[0].method.as_str(), got[0].path.clone()),
        ("DELETE", format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}"))
    );
    assert_eq!(
        (got[1].method.as_str(), got[1].path.clone()),
        ("POST", format!("/api/v10/channels/{CHANNEL}/messages"))
    );
    assert_eq!(got[1].body["content"], "alice wrote: @everyone free pizza\nhttps://cdn.example/a.png");
    assert_eq!(got[1].body["nonce"], "42");
    assert_eq!(got[1].body["enforce_nonce"], true);
    assert_eq!(got[1].body["allowed_mentions"]["parse"], json!([]));
}

#[tokio::test]
async fn reverting_a_message_that_is_already_gone_is_done() {
    let fake = FakeDiscord::start().await;
    let p = format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}");
    fake.fail("DELETE", &p, 404, json!({ "code": 10008, "message": "Unknown Message" }), None).await;
    let effect = Effect::Revert { proposal: None, action: action("discord.message", json!({ "text": "hi" })) };
    assert_eq!(perform(&discord(&fake), &effect, &[]).await, Ok(Performed::default()));
}

#[tokio::test]
async fn a_rename_is_reverted_to_the_old_name_and_reapplied() {
    let fake = FakeDiscord::start().await;
    fake.modify_channel(CHANNEL).await;
    let d = discord(&fake);
    let a = action("discord.rename_channel", json!({ "channel": CHANNEL, "old_name": "general", "name": "chaos" }));
    perform(&d, &Effect::Revert { proposal: None, action: a.clone() }, &[]).await.unwrap();
    perform(&d, &Effect::Execute { proposal: None, action: a }, &[]).await.unwrap();
    let got = fake.received().await;
    let path = format!("/api/v10/channels/{CHANNEL}");
    assert_eq!(
        got.iter().map(|r| (r.method.clone(), r.path.clone(), r.body.clone())).collect::<Vec<_>>(),
        vec![
            ("PATCH".into(), path.clone(), json!({ "name": "general" })),
            ("PATCH".into(), path, json!({ "name": "chaos" })),
        ]
    );
}

#[tokio::test]
async fn a_role_grant_is_revoked_and_granted_again() {
    let fake = FakeDiscord::start().await;
    fake.member_role(GUILD, USER, ROLE).await;
    let d = discord(&fake);
    let a = action("discord.role_grant", json!({ "user": USER, "role": ROLE }));
    perform(&d, &Effect::Revert { proposal: None, action: a.clone() }, &[]).await.unwrap();
    perform(&d, &Effect::Execute { proposal: None, action: a }, &[]).await.unwrap();
    let path = format!("/api/v10/guilds/{GUILD}/members/{USER}/roles/{ROLE}");
    assert_eq!(fake.calls().await, vec![("DELETE".into(), path.clone()), ("PUT".into(), path)]);
}

#[tokio::test]
async fn calls_post_pin_and_kick() {
    let fake = FakeDiscord::start().await;
    fake.create_message(CHANNEL, MESSAGE).await;
    fake.pin_message(CHANNEL, MESSAGE).await;
    fake.kick(GUILD, USER).await;
    let d = discord(&fake);
    let posted =
        perform(&d, &call("discord.post_message", json!({ "channel": CHANNEL, "text": "hello" })), &[]).await.unwrap();
    assert_eq!(posted.message, Some(MessageRef::new("discord", CHANNEL, MESSAGE)));
    perform(&d, &call("discord.pin_message", json!({ "channel": CHANNEL, "message": MESSAGE })), &[]).await.unwrap();
    perform(&d, &call("discord.kick", json!({ "user": USER })), &[]).await.unwrap();
    let got = fake.received().await;
    assert_eq!(got[0].body, message_body("hello", "42"));
    assert_eq!(
        fake.calls().await,
        vec![
            ("POST".into(), format!("/api/v10/channels/{CHANNEL}/messages")),
            ("PUT".into(), format!("/api/v10/channels/{CHANNEL}/pins/{MESSAGE}")),
            ("DELETE".into(), format!("/api/v10/guilds/{GUILD}/members/{USER}")),
        ]
    );
}

#[tokio::test]
async fn calls_dm_edit_delete_rename_and_roles() {
    let fake = FakeDiscord::start().await;
    fake.create_dm("100000000000000009", USER).await;
    fake.create_message("100000000000000009", "200000000000000009").await;
    fake.edit_message(CHANNEL, MESSAGE).await;
    fake.delete_message(CHANNEL, MESSAGE).await;
    fake.modify_channel(CHANNEL).await;
    fake.member_role(GUILD, USER, ROLE).await;
    let d = discord(&fake);
    let calls = [
        call("discord.send_dm", json!({ "user": USER, "text": "Your proposal passed." })),
        call("discord.edit_message", json!({ "channel": CHANNEL, "message": MESSAGE, "text": "edited" })),
        call("discord.delete_message", json!({ "channel": CHANNEL, "message": MESSAGE })),
        call("discord.rename_channel", json!({ "channel": CHANNEL, "name": "decisions" })),
        call("discord.grant_role", json!({ "user": USER, "role": ROLE })),
        call("discord.revoke_role", json!({ "user": USER, "role": ROLE })),
    ];
    for c in &calls {
        perform(&d, c, &[]).await.unwrap();
    }
    let got = fake.received().await;
    let seen: Vec<(&str, &str, Value)> =
        got.iter().map(|r| (r.method.as_str(), r.path.as_str(), r.body.clone())).collect();
    assert_eq!(
        seen,
        vec![
            ("POST", "/api/v10/users/@me/channels", json!({ "recipient_id": USER })),
            ("POST", "/api/v10/channels/100000000000000009/messages", message_body("Your proposal passed.", "42")),
            (
                "PATCH",
                "/api/v10/channels/100000000000000001/messages/200000000000000001",
                json!({ "content": "edited", "allowed_mentions": { "parse": [] } })
            ),
            ("DELETE", "/api/v10/channels/100000000000000001/messages/200000000000000001", Value::Null),
            ("PATCH", "/api/v10/channels/100000000000000001", json!({ "name": "decisions" })),
            (
                "PUT",
                "/api/v10/guilds/700000000000000001/members/300000000000000001/roles/400000000000000001",
                Value::Null
            ),
            (
                "DELETE",
                "/api/v10/guilds/700000000000000001/members/300000000000000001/roles/400000000000000001",
                Value::Null
            ),
        ]
    );
}

#[tokio::test]
async fn what_discord_cannot_do_is_refused_without_a_request() {
    let fake = FakeDiscord::start().await;
    let d = discord(&fake);
    let no_guild = DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap();
    let refused = [
        perform(&d, &call("discord.ban", json!({ "user": USER })), &[]).await,
        perform(&no_guild, &call("discord.kick", json!({ "user": USER })), &[]).await,
        perform(&d, &call("discord.pin_message", json!({ "channel": "general" })), &[]).await,
        perform(&d, &Effect::Execute { proposal: None, action: action("discord.ban", json!({})) }, &[]).await,
        perform(&d, &Effect::Revert { proposal: None, action: action("discord.rename_channel", json!({})) }, &[]).await,
        perform(
            &d,
            &Effect::StartProcess {
                proposal: ProposalId(1),
                name: ActionType::new("discord.poll").unwrap(),
                params: Map::new(),
            },
            &[],
        )
        .await,
        perform(&d, &Effect::Post { place: Place::new("slack", "C1"), text: "x".into() }, &[]).await,
    ];
    for r in &refused {
        assert!(matches!(r, Err(PlatformError::Permanent(_))), "{r:?}");
    }
    assert_eq!(refused[5], Err(PlatformError::Permanent("Discord has no decision processes".into())));
    assert!(fake.received().await.is_empty());
}

fn post() -> Effect {
    Effect::Post { place: Place::new("discord", CHANNEL), text: "hello".into() }
}

fn messages_path() -> String {
    format!("/api/v10/channels/{CHANNEL}/messages")
}

#[tokio::test]
async fn a_429_is_rate_limited_for_the_retry_after_discord_gives() {
    let fake = FakeDiscord::start().await;
    let body = json!({ "message": "You are being rate limited.", "retry_after": 1.5, "global": false, "code": 0 });
    fake.fail("POST", &messages_path(), 429, body, Some("2")).await;
    let r = perform(&discord(&fake), &post(), &[]).await;
    assert_eq!(r, Err(PlatformError::RateLimited { retry_after: Some(Duration::from_millis(1500)) }));
    assert_eq!(fake.received().await.len(), 1);
}

#[tokio::test]
async fn a_429_without_a_body_uses_the_retry_after_header() {
    let fake = FakeDiscord::start().await;
    fake.fail("POST", &messages_path(), 429, json!({}), Some("3")).await;
    let r = perform(&discord(&fake), &post(), &[]).await;
    assert_eq!(r, Err(PlatformError::RateLimited { retry_after: Some(Duration::from_secs(3)) }));
}

#[tokio::test]
async fn a_403_is_permanent_with_discords_message_and_not_retried() {
    let fake = FakeDiscord::start().await;
    fake.fail("POST", &messages_path(), 403, json!({ "code": 50013, "message": "Missing Permissions" }), None).await;
    let r = perform(&discord(&fake), &post(), &[]).await;
    let Err(PlatformError::Permanent(text)) = r else { panic!("{r:?}") };
    assert!(text.contains("Missing Permissions") && text.contains("50013") && text.contains("403"), "{text}");
    assert_eq!(fake.received().await.len(), 1);
}

#[tokio::test]
async fn a_404_on_an_edit_is_permanent() {
    let fake = FakeDiscord::start().await;
    let p = format!("/api/v10/channels/{CHANNEL}/messages/{MESSAGE}");
    fake.fail("PATCH", &p, 404, json!({ "code": 10008, "message": "Unknown Message" }), None).await;
    let effect = Effect::EditVote { proposal: ProposalId(1), text: "x".into(), closed: false };
    let r = perform(&discord(&fake), &effect, &[MessageRef::new("discord", CHANNEL, MESSAGE)]).await;
    assert!(matches!(&r, Err(PlatformError::Permanent(t)) if t.contains("Unknown Message")), "{r:?}");
}

#[tokio::test]
async fn a_502_is_transient() {
    let fake = FakeDiscord::start().await;
    fake.fail("POST", &messages_path(), 502, json!({ "message": "Bad Gateway", "code": 0 }), None).await;
    let r = perform(&discord(&fake), &post(), &[]).await;
    assert!(matches!(r, Err(PlatformError::Transient(_))), "{r:?}");
    assert_eq!(fake.received().await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_discord_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = DiscordPlatform::new("discord", TOKEN, &format!("http://127.0.0.1:{port}")).unwrap();
    let r = perform(&d, &post(), &[]).await;
    assert!(matches!(r, Err(PlatformError::Transient(_))), "{r:?}");
}

#[tokio::test]
async fn the_token_never_shows_in_errors_or_debug_output() {
    let fake = FakeDiscord::start().await;
    fake.fail("POST", &messages_path(), 403, json!({ "code": 50001, "message": "Missing Access" }), None).await;
    fake.fail("PATCH", &format!("/api/v10/channels/{CHANNEL}"), 502, json!({ "message": "x", "code": 0 }), None).await;
    let d = discord(&fake);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gone = DiscordPlatform::new("discord", TOKEN, &format!("http://127.0.0.1:{port}")).unwrap();
    let rename = Effect::Execute {
        proposal: None,
        action: action("discord.rename_channel", json!({ "old_name": "a", "name": "b" })),
    };
    let errors = [
        perform(&d, &post(), &[]).await.unwrap_err(),
        perform(&d, &rename, &[]).await.unwrap_err(),
        perform(&gone, &post(), &[]).await.unwrap_err(),
    ];
    let mut shown = format!("{d:?} {gone:?} {d:#?}");
    for e in &errors {
        shown.push_str(&format!("{e} {e:?}"));
    }
    let secret = TOKEN.split('.').next_back().unwrap();
    assert!(!shown.contains(TOKEN) && !shown.contains(secret), "{shown}");
    // The token was sent, so its absence above means something.
    assert_eq!(fake.received().await[0].authorization.as_deref(), Some(format!("Bot {TOKEN}").as_str()));
}

#[tokio::test]
async fn the_actions_it_offers() {
    let fake = FakeDiscord::start().await;
    let actions = discord(&fake).actions();
    let kinds: Vec<(&str, ActionKind)> = actions.iter().map(|a| (a.name.as_str(), a.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            ("discord.message", ActionKind::Governable),
            ("discord.rename_channel", ActionKind::Governable),
            ("discord.role_grant", ActionKind::Governable),
            ("discord.reaction_added", ActionKind::Trigger),
            ("discord.reaction_removed", ActionKind::Trigger),
            ("discord.member_join", ActionKind::Trigger),
            ("discord.role_revoked", ActionKind::Trigger),
            ("discord.command_used", ActionKind::Trigger),
            ("discord.post_message", ActionKind::Action),
            ("discord.pin_message", ActionKind::Action),
            ("discord.send_dm", ActionKind::Action),
            ("discord.edit_message", ActionKind::Action),
            ("discord.delete_message", ActionKind::Action),
            ("discord.grant_role", ActionKind::Action),
            ("discord.revoke_role", ActionKind::Action),
            ("discord.kick", ActionKind::Action),
        ]
    );
    let caps = discord(&fake).capabilities();
    assert!(caps.reactions && caps.edits && caps.remove_others_reactions && caps.buttons && caps.read_reactions);
}
