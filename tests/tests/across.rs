#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One vote across platforms, end to end: a community that governs a Discord server and a
//! Slack workspace holds one vote in both (`[vote] on = [...]`), through `polity run`'s loop
//! with Polity's Discord and Slack bots against the fake Discord and the fake Slack. A
//! member whose accounts are linked has one ballot: the latest, on either platform.

use chrono::TimeDelta;
use polity::platforms::Registry;
use polity::run::{Bot, Host, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::spaces::Notice;
use polity::store::Store;
use polity_discord::DiscordAdapter;
use polity_governance::CommunityId;
use polity_governance::ids::{AccountRef, Place};
use polity_slack::SlackAdapter;
use polity_tests::db::TestDb;
use polity_tests::discord::FakeDiscord;
use polity_tests::slack::{self, FakeSlack};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const GENERAL: &str = "100000000000000001";
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const YES: &str = "👍";

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Runs `line` as `account` on the console in `community`, with Polity stopped.
async fn on_console(rt: &mut Runtime, community: CommunityId, account: &str, line: &str) -> String {
    let inv = polity_commands::Invocation {
        invoker: AccountRef::new("console", account),
        place: Place::new("console", "general"),
        id: line.into(),
    };
    let mut ports = polity::ports::CommunityPorts::new(rt, community, "console", line, chrono::Utc::now());
    match polity_commands::handle(&mut ports, &inv, line).await {
        Ok(reply) => reply.text,
        Err(e) => e.to_string(),
    }
}

/// The one-time code in the reply to `/integration add`.
fn join_code(reply: &str) -> String {
    let (_, after) = reply.split_once("`/integration confirm ").unwrap_or_else(|| panic!("no code in: {reply}"));
    after.chars().take_while(char::is_ascii_digit).collect()
}

/// Runs `/polity WORDS` on Slack as `user`; the answer's text.
async fn on_slack(fake: &FakeSlack, user: &str, words: &str) -> String {
    let before = fake.responses().len();
    fake.slash(user, slack::GENERAL, "/polity", words).await;
    let responses = within(&format!("the answer to /polity {words}"), fake.wait_responses(before + 1)).await;
    responses[before].1["text"].as_str().unwrap().to_string()
}

/// Runs a slash command on Discord; the text of its answer.
async fn on_discord(fake: &FakeDiscord, user: &str, words: &[&str], options: Vec<(&str, Value)>) -> String {
    let id = fake.slash(user, GUILD, GENERAL, words, options);
    let r = within(&format!("the answer to /{}", words.join(" ")), fake.response(&id)).await;
    r.data["content"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vote_in_discord_and_slack_counts_a_linked_member_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let discord = FakeDiscord::start().await;
    discord.add_guild(GUILD, "Polity test", ALICE);
    discord.add_channel(GUILD, GENERAL, "general");
    discord.add_member(GUILD, ALICE, "alice", Some("Alice A."), &[]);
    discord.add_member(GUILD, BOB, "bob", None, &[]);
    let slack = FakeSlack::start().await;
    let db = TestDb::sqlite("across_one_vote");

    // The community "Makers" (maria, on the console) asks for the server and the workspace,
    // and holds its votes in both.
    let (makers, discord_code, slack_code) = {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        let c = rt.ensure_community("Makers", "maria", AccountRef::new("console", "maria")).await.unwrap();
        rt.set_invite("discord", "https://discord.com/oauth2/authorize?client_id=900000000000000002".into());
        rt.set_invite("slack", "https://slack.com/oauth/v2/authorize?client_id=1".into());
        let d = on_console(&mut rt, c, "maria", &format!("/integration add discord main guild={GUILD}")).await;
        let s = on_console(&mut rt, c, "maria", &format!("/integration add slack ws workspace={}", slack::TEAM)).await;
        for line in ["/permission grant everyone propose *", "/permission grant everyone vote *"] {
            let said = on_console(&mut rt, c, "maria", line).await;
            assert!(!said.contains("not"), "{line}: {said}");
        }
        let policy = format!(
            "/policy install Everywhere name = \"Everywhere\"\\nkind = \"platform\"\\n[vote]\\non = [\"discord:{GENERAL}\", \"slack:#general\"]\\nvoters = \"everyone\"\\nquorum = 3\\npass = \"2 yes\""
        );
        let installed = on_console(&mut rt, c, "maria", &policy).await;
        assert!(installed.contains("Everywhere"), "{installed}");
        (c, join_code(&d), join_code(&s))
    };

    let store = Store::connect(db.url()).await.unwrap();
    let bots = vec![
        Bot::new(Arc::new(DiscordAdapter), json!({ "token": TOKEN, "base_url": discord.url() })),
        Bot::new(
            Arc::new(SlackAdapter),
            json!({ "bot_token": slack::BOT_TOKEN, "app_token": slack::APP_TOKEN, "api_url": slack.api_url() }),
        ),
    ];
    let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
    let (notices_tx, mut notices) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let host = Host { bots, registry: Registry::default(), http: None };
        run_host(store, host, pacing, &SystemClock, async { drop(stopped.await) }, notices_tx).await
    });
    let mut waiting = 0;
    while waiting < 2 {
        if let Notice::Waiting { .. } = within("both spaces to wait", notices.recv()).await.unwrap() {
            waiting += 1;
        }
    }
    // Each space joins Makers once its owner confirms, inside it.
    let joined = on_discord(&discord, ALICE, &["integration", "confirm"], vec![("code", json!(discord_code))]).await;
    assert!(joined.contains("Makers"), "{joined}");
    let joined = on_slack(&slack, slack::ADMIN, &format!("integration confirm {slack_code}")).await;
    assert!(joined.contains("Makers"), "{joined}");

    // Bob links his Slack account to his Discord one.
    let started = on_discord(
        &discord,
        BOB,
        &["link", "start"],
        vec![("platform", json!("slack")), ("account", json!(slack::MEMBER))],
    )
    .await;
    let code = started.split("`/link confirm ").nth(1).and_then(|r| r.split('`').next()).unwrap().to_string();
    let linked = on_slack(&slack, slack::MEMBER, &format!("link confirm {code}")).await;
    assert!(linked.contains("is now linked"), "{linked}");

    // A proposal from Slack is voted on in both places.
    let opened = on_slack(&slack, slack::OTHER, "propose Merge the two meetups").await;
    assert!(opened.starts_with("Proposal #1 is open"), "{opened}");
    let on_discord_vote =
        within("the vote on Discord", discord.wait_for_message(GENERAL, |c| c.starts_with("Proposal #1"))).await;
    let slack_vote = within(
        "the vote on Slack",
        slack.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == slack::GENERAL && m.user == slack::BOT_USER && m.text.starts_with("Proposal #1"))
                .map(|m| m.ts.clone())
        }),
    )
    .await;
    let text = discord.message(GENERAL, &on_discord_vote).unwrap().content;
    assert!(
        text.contains("voted in 2 places at once: one ballot per member, the latest on any platform counts"),
        "{text}"
    );

    // Bob votes 👍 on Discord, then 👎 on Slack: one ballot, the later; both messages say so.
    discord.user_reacts(BOB, GENERAL, &on_discord_vote, YES);
    within(
        "Bob's ballot on Discord",
        discord.until(|s| s.message(GENERAL, &on_discord_vote).filter(|m| m.content.contains("(1 of ")).map(|_| ())),
    )
    .await;
    slack.react(slack::MEMBER, slack::GENERAL, &slack_vote, "-1").await;
    let slack_text = within(
        "the tally on Slack",
        slack.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == slack::GENERAL && m.ts == slack_vote)
                .map(|m| m.text.clone())
                .filter(|t| t.contains("yes 0 · no 1"))
        }),
    )
    .await;
    assert!(slack_text.contains("(1 of "), "one ballot for Bob: {slack_text}");
    within(
        "the tally on Discord",
        discord
            .until(|s| s.message(GENERAL, &on_discord_vote).filter(|m| m.content.contains("yes 0 · no 1")).map(|_| ())),
    )
    .await;
    // His 👍 on Discord, superseded, is taken away there.
    within(
        "Bob's old reaction to go",
        discord.wait_until(|s| !s.reactions(GENERAL, &on_discord_vote, YES).contains(&BOB.to_string())),
    )
    .await;

    // He changes his mind once more, on Discord. His 👎 stays on the Slack message (a bot
    // cannot take others' reactions away there), but it is older than his 👍 and no longer
    // counts, not even when Slack's reactions are read back after a reconnect.
    discord.user_reacts(BOB, GENERAL, &on_discord_vote, YES);
    within(
        "the tally on Slack",
        slack.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == slack::GENERAL && m.ts == slack_vote)
                .filter(|m| m.text.contains("yes 1 · no 0"))
                .map(|_| ())
        }),
    )
    .await;
    let read = slack.requests_of("reactions.get").len();
    slack.disconnect().await;
    within("Slack's reactions read back", slack.wait_for("reactions.get", read + 1)).await;

    // Alice (Discord) and Carol (Slack) vote yes: decided once, both messages closed.
    discord.user_reacts(ALICE, GENERAL, &on_discord_vote, YES);
    slack.react(slack::OTHER, slack::GENERAL, &slack_vote, "+1").await;
    within(
        "the Discord message closed",
        discord.until(|s| s.message(GENERAL, &on_discord_vote).filter(|m| m.content.ends_with("PASSED")).map(|_| ())),
    )
    .await;
    let closed = within(
        "the Slack message closed",
        slack.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == slack::GENERAL && m.ts == slack_vote)
                .map(|m| m.text.clone())
                .filter(|t| t.ends_with("PASSED"))
        }),
    )
    .await;
    assert!(closed.contains("yes 3 · no 0"), "Bob's kept 👎 counted again: {closed}");
    assert!(
        closed.contains("voted in 2 places at once: one ballot per member, the latest on any platform counts"),
        "{closed}"
    );
    // The outcome is announced in both places, once each.
    let announced = "Proposal #1 passed";
    within("the outcome on Discord", discord.wait_for_message(GENERAL, |c| c.starts_with(announced))).await;
    within(
        "the outcome on Slack",
        slack.until(|s| {
            s.messages.iter().find(|m| m.channel == slack::GENERAL && m.text.starts_with(announced)).map(|_| ())
        }),
    )
    .await;
    stop.send(()).unwrap();
    let rt = within("Polity to stop", task).await.unwrap().unwrap();
    assert_eq!(discord.messages(GENERAL).iter().filter(|m| m.content.starts_with(announced)).count(), 1);
    let on_slack = slack.with(|s| s.messages.iter().filter(|m| m.text.starts_with(announced)).count());
    assert_eq!(on_slack, 1);
    // Decided once: one proposal, one decision in the audit log.
    assert_eq!(rt.store().load_proposals(makers, false).await.unwrap().len(), 1);
    let decisions = rt.store().audit(makers, 1000).await.unwrap();
    let decided: Vec<_> = decisions.iter().filter(|a| a.event["event"] == "decided").collect();
    assert_eq!(decided.len(), 1, "decided once: {decided:#?}");
}
