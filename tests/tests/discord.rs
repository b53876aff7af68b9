#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Polity on Discord, end to end: `polity run`'s loop (store, runtime, serenity's gateway
//! and HTTP clients, poise's commands) against the fake Discord, driven as Discord's users
//! would drive it: slash commands, reactions, buttons, forms, messages, renames.

use chrono::TimeDelta;
use polity::platforms::Registry;
use polity::run::{Bot, Host, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::spaces::Notice;
use polity::store::{SecretKey, Store};
use polity_discord::DiscordAdapter;
use polity_tests::db::TestDb;
use polity_tests::discord::{BOT_ID, FakeDiscord, Response, permissions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const GENERAL: &str = "100000000000000001";
const RULES: &str = "100000000000000002";
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const CAROL: &str = "300000000000000003";
const DAVE: &str = "300000000000000004";
const YES: &str = "👍";
const NO: &str = "👎";

/// A guard against a hang: the tests wait on events, never on time.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A server "Polity test" owned by Alice, with #general and #rules, and the members Alice
/// (nick "Alice A."), Bob, Carol and Dave.
async fn discord() -> FakeDiscord {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let fake = FakeDiscord::start().await;
    fake.add_guild(GUILD, "Polity test", ALICE);
    fake.add_channel(GUILD, GENERAL, "general");
    fake.add_channel(GUILD, RULES, "rules");
    fake.add_member(GUILD, ALICE, "alice", Some("Alice A."), &[]);
    fake.add_member(GUILD, BOB, "bob", None, &[]);
    fake.add_member(GUILD, CAROL, "carol", None, &[]);
    fake.add_member(GUILD, DAVE, "dave", None, &[]);
    fake
}

/// Polity's `run` loop on its own task, pointed at the fake.
struct Polity {
    task: JoinHandle<anyhow::Result<Runtime>>,
    stop: oneshot::Sender<()>,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// The servers it governs, and as which community.
    governing: Vec<(String, String)>,
    /// The servers that wait for someone who controls them to confirm their community.
    waiting: Vec<String>,
}

/// Slack as its adapter declares it, with nothing behind it: a platform whose connections
/// need a secret, typed into Discord's form.
struct DeclaredSlack;

static SLACK: polity_port::PlatformSpec = polity_port::PlatformSpec {
    cred: false,
    name: "slack",
    title: "Slack",
    space: "workspace",
    controllers: "a workspace admin",
    secret: Some("the bot token (xoxb-...)"),
    settings: &[],
    env: &[],
};

impl polity_port::Adapter for DeclaredSlack {
    fn spec(&self) -> &'static polity_port::PlatformSpec {
        &SLACK
    }
    fn check(&self, _: &Value) -> Result<(), polity_port::AdapterError> {
        Ok(())
    }
    fn start(
        &self,
        _: Value,
        _: polity_port::Start,
    ) -> polity_port::BoxFuture<'static, Result<Box<dyn polity_port::Connection>, polity_port::AdapterError>> {
        Box::pin(async { Err(polity_port::AdapterError::Start("declared only".into())) })
    }
    fn connection_config(
        &self,
        _: Option<&Value>,
        _: &serde_json::Map<String, Value>,
        _: Option<&str>,
    ) -> Result<Value, polity_port::AdapterError> {
        Err(polity_port::AdapterError::Config("declared only".into()))
    }
    fn test(
        &self,
        _: Value,
        _: serde_json::Map<String, Value>,
    ) -> polity_port::BoxFuture<'static, Result<String, polity_port::TestFailure>> {
        Box::pin(async { Err(polity_port::TestFailure::Other("declared only".into())) })
    }
}

impl Polity {
    /// Starts Polity on `db` and waits until it has settled `servers` servers: governs them,
    /// or has them wait for a confirmation.
    async fn start(fake: &FakeDiscord, db: &str, secret_key: Option<&str>, servers: usize) -> Self {
        let store = Store::connect(db).await.unwrap().with_secret_key(secret_key);
        store.migrate().await.unwrap();
        let bot = Bot::new(Arc::new(DiscordAdapter), json!({ "token": TOKEN, "base_url": fake.url() }));
        // No pacing: every edit and read goes out at once (pacing has tests of its own).
        let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            // Slack declared beside Discord, for a connection that needs a secret.
            let mut registry = Registry::default();
            registry.register(Arc::new(DeclaredSlack));
            let host = Host { bots: vec![bot], registry, http: None };
            run_host(store, host, pacing, &SystemClock, shutdown, notices_tx).await
        });
        let mut polity = Self { task, stop, notices, governing: Vec::new(), waiting: Vec::new() };
        while polity.governing.len() + polity.waiting.len() < servers {
            polity.heard().await;
        }
        polity
    }

    /// The next notice, recorded.
    async fn heard(&mut self) {
        match within("Polity's next notice", self.notices.recv()).await.unwrap() {
            Notice::Governing { space: guild, community, .. } => {
                self.waiting.retain(|g| *g != guild);
                self.governing.push((guild, community));
            }
            Notice::Waiting { space: guild, .. } => self.waiting.push(guild),
            Notice::Invite { link, .. } => assert!(link.contains("client_id=900000000000000002"), "{link}"),
        }
    }

    /// Waits until Polity governs `guild`; answers the community's name.
    async fn governs(&mut self, guild: &str) -> String {
        loop {
            if let Some((_, community)) = self.governing.iter().rfind(|(g, _)| g == guild) {
                return community.clone();
            }
            self.heard().await;
        }
    }

    /// Waits until `guild` waits for a confirmation.
    async fn holds(&mut self, guild: &str) {
        while !self.waiting.iter().any(|g| g == guild) {
            self.heard().await;
        }
    }

    async fn stop(self) -> Runtime {
        self.stop.send(()).unwrap();
        within("Polity to stop", self.task).await.unwrap().unwrap()
    }
}

/// Runs a slash command and answers Discord's record of the first answer.
async fn slash(fake: &FakeDiscord, user: &str, channel: &str, words: &[&str], options: Vec<(&str, Value)>) -> Response {
    let id = fake.slash(user, GUILD, channel, words, options);
    within(&format!("the answer to /{}", words.join(" ")), fake.response(&id)).await
}

/// The text of an ephemeral message answer.
fn private(r: &Response) -> String {
    assert_eq!(r.kind, 4, "a message answer: {r:?}");
    assert_eq!(r.data["flags"], json!(64), "only the invoker sees it: {r:?}");
    r.data["content"].as_str().unwrap().to_string()
}

async fn said(fake: &FakeDiscord, user: &str, words: &[&str], options: Vec<(&str, Value)>) -> String {
    private(&slash(fake, user, GENERAL, words, options).await)
}

/// The vote message whose text starts with `start`, once posted.
async fn vote_message(fake: &FakeDiscord, channel: &str, start: &str) -> String {
    within(&format!("the vote message \"{start}\""), fake.wait_for_message(channel, |c| c.starts_with(start))).await
}

async fn until_reactions(fake: &FakeDiscord, channel: &str, message: &str, emoji: &str, holders: &[&str]) {
    let what = format!("{emoji} held by {holders:?}");
    within(&what, fake.wait_until(|s| s.reactions(channel, message, emoji) == holders)).await;
}

async fn until_content(fake: &FakeDiscord, channel: &str, message: &str, pred: impl Fn(&str) -> bool) -> String {
    within(
        "the vote message to change",
        fake.until(|s| s.message(channel, message).map(|m| m.content.clone()).filter(|c| pred(c))),
    )
    .await
}

fn buttons(fake: &FakeDiscord, channel: &str, message: &str) -> Vec<String> {
    let m = fake.message(channel, message).unwrap();
    m.components
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .map(|b| b["custom_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Installs a policy as Alice (an admin); answers the reply.
async fn install_policy(fake: &FakeDiscord, name: &str, toml: &str) -> String {
    said(fake, ALICE, &["policy", "install"], vec![("name", json!(name)), ("toml", json!(toml))]).await
}

/// Channel renames are put to a vote of two.
const RENAMES_NEED_A_VOTE: &str =
    "name = \"Renames need a vote\"\nkind = \"platform\"\nactions = [\"discord.rename_channel\"]\n[vote]\nquorum = 2";

async fn direct_democracy(fake: &FakeDiscord) {
    let installed = said(fake, ALICE, &["kit", "install"], vec![("name", json!("direct-democracy"))]).await;
    assert!(installed.starts_with("The starter kit direct-democracy is installed"), "{installed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_passes_by_three_reactions_and_the_outcome_is_announced() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_pass");
    let polity = Polity::start(&fake, db.url(), None, 1).await;

    // Every command of the catalogue is registered, in one PUT.
    let registered: Vec<String> = fake
        .registered_commands()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    for name in ["propose", "proposals", "proposal", "vote", "unvote", "cancel", "link", "whoami", "role", "kit"] {
        assert!(registered.contains(&name.to_string()), "/{name} is not registered: {registered:?}");
    }
    for name in ["policy", "permission", "integration", "actions", "audit", "export", "help"] {
        assert!(registered.contains(&name.to_string()), "/{name} is not registered: {registered:?}");
    }
    let puts = fake.requests().iter().filter(|r| r.method == "PUT" && r.path.ends_with("/commands")).count();
    assert_eq!(puts, 1);

    // The server's owner is the community's admin; its members are members.
    let me = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(me.starts_with("You are Alice A., an admin."), "{me}");
    let bob = said(&fake, BOB, &["whoami"], vec![]).await;
    assert!(bob.starts_with("You are bob."), "{bob}");
    direct_democracy(&fake).await;

    let opened = said(&fake, BOB, &["propose"], vec![("text", json!("Buy a new server"))]).await;
    assert_eq!(opened, "Proposal #1 is open, under \"Majority of members\".");
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Buy a new server").await;
    let text = fake.message(GENERAL, &vote).unwrap().content;
    assert!(text.contains("vote 👍 yes · 👎 no · 🤷 abstain"), "{text}");
    assert!(text.contains("closes "), "{text}");
    assert!(text.ends_with("tally: yes 0 · no 0 · abstain 0 (0 of 4 voted)"), "{text}");
    assert_eq!(buttons(&fake, GENERAL, &vote), ["polity:vote:1:yes", "polity:vote:1:no", "polity:vote:1:abstain"]);
    // The bot seeds the reactions.
    for emoji in [YES, NO, "🤷"] {
        until_reactions(&fake, GENERAL, &vote, emoji, &[BOT_ID]).await;
    }

    fake.user_reacts(ALICE, GENERAL, &vote, YES);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("(1 of 4 voted)")).await;
    fake.user_reacts(BOB, GENERAL, &vote, YES);
    fake.user_reacts(CAROL, GENERAL, &vote, YES);
    // Three of four cannot be outvoted: passed at once, announced, buttons gone.
    let announced = within(
        "the announcement",
        fake.wait_for_message(GENERAL, |c| c.starts_with("Proposal #1 passed: bob proposes: Buy a new server")),
    )
    .await;
    assert!(fake.message(GENERAL, &announced).unwrap().content.ends_with("(yes 3 · no 0 · abstain 0 (3 of 4 voted))"));
    let closed = until_content(&fake, GENERAL, &vote, |c| c.ends_with("PASSED")).await;
    assert!(closed.contains("tally: yes 3 · no 0 · abstain 0 (3 of 4 voted)"), "{closed}");
    assert_eq!(fake.message(GENERAL, &vote).unwrap().components, json!([]));
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_reaction_replaces_the_ballot_and_the_bot_removes_the_old_one() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_change");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("Weekly calls"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Weekly calls").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;

    fake.user_reacts(DAVE, GENERAL, &vote, YES);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 1 · no 0 · abstain 0 (1 of 4 voted)")).await;
    fake.user_reacts(DAVE, GENERAL, &vote, NO);
    // The old reaction is taken away by the bot; the ballot is the new one.
    until_reactions(&fake, GENERAL, &vote, YES, &[BOT_ID]).await;
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 0 · no 1 · abstain 0 (1 of 4 voted)")).await;
    let removal = format!("/channels/{GENERAL}/messages/{vote}/reactions/%F0%9F%91%8D/{DAVE}");
    assert!(fake.requests().iter().any(|r| r.method == "DELETE" && r.path.ends_with(&removal)));

    // Taking the reaction back withdraws the ballot; a vote button casts one like /vote.
    fake.user_unreacts(DAVE, GENERAL, &vote, NO);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("(0 of 4 voted)")).await;
    let press = fake.press(CAROL, GUILD, GENERAL, &vote, "polity:vote:1:no");
    let answer = within("the button's answer", fake.response(&press)).await;
    assert_eq!(private(&answer), "Your ballot on #1 is counted.");
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 0 · no 1 · abstain 0 (1 of 4 voted)")).await;
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ineligible_reaction_is_removed_and_its_voter_told_why() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_ineligible");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    // Alice installs the moderators kit, so she is the one moderator.
    let installed = said(&fake, ALICE, &["kit", "install"], vec![("name", json!("moderators"))]).await;
    assert!(installed.starts_with("The starter kit moderators is installed"), "{installed}");
    said(&fake, BOB, &["propose"], vec![("text", json!("Pin the rules"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Pin the rules").await;
    until_reactions(&fake, GENERAL, &vote, YES, &[BOT_ID]).await;

    fake.user_reacts(CAROL, GENERAL, &vote, YES);
    until_reactions(&fake, GENERAL, &vote, YES, &[BOT_ID]).await;
    let told = within("carol's DM", fake.until(|s| s.dms(CAROL).first().cloned())).await;
    assert_eq!(told, "Your vote was not counted: only members with the role moderator can vote on proposal #1.");
    assert!(fake.message(GENERAL, &vote).unwrap().content.ends_with("(0 of 1 voted)"));
    // Her button gets the same answer, to her alone.
    let press = fake.press(CAROL, GUILD, GENERAL, &vote, "polity:vote:1:yes");
    let answer = private(&within("the button's answer", fake.response(&press)).await);
    assert_eq!(answer, "only members with the role moderator can vote on proposal #1");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_added_while_polity_was_down_count_when_it_comes_back() {
    votes_cast_while_down_count(TestDb::sqlite("e2e_restart").url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_added_while_polity_was_down_count_when_it_comes_back_on_postgresql() {
    if let Some(db) = TestDb::postgres("e2e_restart") {
        votes_cast_while_down_count(db.url()).await;
    }
}

async fn votes_cast_while_down_count(db: &str) {
    let fake = discord().await;
    let polity = Polity::start(&fake, db, None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("Move to a new forum"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Move to a new forum").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;
    fake.user_reacts(ALICE, GENERAL, &vote, NO);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 0 · no 1 · abstain 0 (1 of 4 voted)")).await;
    polity.stop().await;

    // While Polity is down: Alice changes her mind, Bob and Carol vote. Nobody hears it.
    fake.user_unreacts(ALICE, GENERAL, &vote, NO);
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, GENERAL, &vote, YES);
    }
    let identifies = fake.identify_count();

    // A new session (no replay): the votes are read back from the message and counted.
    let polity = Polity::start(&fake, db, None, 1).await;
    assert_eq!(fake.identify_count(), identifies + 1);
    within(
        "the announcement",
        fake.wait_for_message(GENERAL, |c| c.starts_with("Proposal #1 passed: bob proposes: Move to a new forum")),
    )
    .await;
    let closed = until_content(&fake, GENERAL, &vote, |c| c.ends_with("PASSED")).await;
    assert!(closed.contains("tally: yes 3 · no 0 · abstain 0 (3 of 4 voted)"), "{closed}");
    let reads: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains(&format!("/messages/{vote}/reactions/")))
        .map(|r| r.query.clone())
        .collect();
    assert!(!reads.is_empty() && reads.iter().all(|q| q.contains("limit=100")), "read in pages of 100: {reads:?}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_dropped_connection_resumes_the_open_votes_are_read_back() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_resume");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("Quarterly review"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Quarterly review").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;
    let reads_before = fake.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/reactions/")).count();

    assert!(fake.disconnect());
    within("serenity to RESUME", fake.wait_resume()).await;
    // Once resumed, every open vote is read back.
    within(
        "a read of the vote's reactions",
        fake.wait_until(|s| {
            s.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/reactions/")).count() > reads_before
        }),
    )
    .await;
    fake.user_reacts(CAROL, GENERAL, &vote, YES);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("(1 of 4 voted)")).await;
    polity.stop().await;
}

const YES_TONED: &str = "👍🏽";
const NO_TONED: &str = "👎🏿";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skin_toned_reaction_is_its_option_and_the_bot_removes_exactly_the_variant_used() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_tones");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("A skin tone is a yes"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: A skin tone is a yes").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;

    fake.user_reacts(DAVE, GENERAL, &vote, YES_TONED);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 1 · no 0 · abstain 0 (1 of 4 voted)")).await;
    // Dave changes his mind: the bot takes away the 👍🏽 he used, not the bot's own 👍.
    fake.user_reacts(DAVE, GENERAL, &vote, NO);
    until_reactions(&fake, GENERAL, &vote, YES_TONED, &[]).await;
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 0 · no 1 · abstain 0 (1 of 4 voted)")).await;
    assert_eq!(fake.reactions(GENERAL, &vote, YES), [BOT_ID]);
    let removals: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.contains("/reactions/"))
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(removals.len(), 1, "one removal, of the variant used: {removals:?}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_reactions_are_not_ballots_and_variants_are_read_back_whole() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_bursts");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("Super reactions are decoration"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Super reactions are decoration").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;

    // Carol votes yes, then adds a super reaction 👎: not a ballot, and her 👍 stays.
    fake.user_reacts(CAROL, GENERAL, &vote, YES);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("yes 1 · no 0 · abstain 0 (1 of 4 voted)")).await;
    fake.user_super_reacts(CAROL, GENERAL, &vote, NO);
    fake.user_reacts(ALICE, GENERAL, &vote, "🤷");
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("(2 of 4 voted)")).await;
    let text = fake.message(GENERAL, &vote).unwrap().content;
    assert!(text.ends_with("yes 1 · no 0 · abstain 1 (2 of 4 voted)"), "{text}");
    assert_eq!(fake.reactions(GENERAL, &vote, YES), [BOT_ID, CAROL]);
    assert_eq!(fake.burst_reactions(GENERAL, &vote, NO), [CAROL]);
    polity.stop().await;

    // While Polity is down: Bob votes 👎🏿, Dave super-reacts 👍 only. Read back at start:
    // the variant counts, the super reaction does not.
    fake.user_reacts(BOB, GENERAL, &vote, NO_TONED);
    fake.user_super_reacts(DAVE, GENERAL, &vote, YES);
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    let text = until_content(&fake, GENERAL, &vote, |c| c.ends_with("(3 of 4 voted)")).await;
    assert!(text.ends_with("yes 1 · no 1 · abstain 1 (3 of 4 voted)"), "{text}");
    let reads: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains(&format!("/messages/{vote}/reactions/")))
        .map(|r| r.query.clone())
        .collect();
    assert!(reads.iter().all(|q| q.contains("type=0")), "normal reactions asked for: {reads:?}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn votes_outcomes_and_posts_ping_nobody_but_whom_a_policy_names() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_pings");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    let text = format!("Invite <@{DAVE}> to the board, tell @everyone");
    said(&fake, BOB, &["propose"], vec![("text", json!(text))]).await;
    let vote = vote_message(&fake, GENERAL, &format!("Proposal #1: bob proposes: {text}")).await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, GENERAL, &vote, YES);
    }
    let outcome = within("the outcome", fake.wait_for_message(GENERAL, |c| c.starts_with("Proposal #1 passed"))).await;
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("PASSED")).await;
    assert_eq!(fake.message(GENERAL, &vote).unwrap().pinged, Vec::<String>::new(), "the vote and its edits");
    assert_eq!(fake.message(GENERAL, &outcome).unwrap().pinged, Vec::<String>::new(), "the outcome");

    // A policy that names whom its post may ping pings them, and nobody else.
    let policy = format!(
        "name = \"Call\"\nkind = \"trigger\"\nactions = [\"discord.reaction_added\"]\nfilter = \"action.emoji == \\\"📣\\\"\"\ncheck = \"\\\"passed\\\"\"\n[pass]\ndo = [{{ action = \"discord.post_message\", channel = \"{GENERAL}\", text = \"<@{DAVE}> <@{CAROL}> @everyone: the board meets\", mention = [\"{DAVE}\"] }}]"
    );
    let installed = install_policy(&fake, "Call", &policy).await;
    assert_eq!(installed, "\"Call\" is installed: a trigger policy.");
    let note = fake.user_says(BOB, GENERAL, "meeting?", &[]);
    fake.user_reacts(BOB, GENERAL, &note, "📣");
    let call = within("the call", fake.wait_for_message(GENERAL, |c| c.ends_with("the board meets"))).await;
    assert_eq!(fake.message(GENERAL, &call).unwrap().pinged, [DAVE]);
    polity.stop().await;
}

/// Polity on a database of its own (`db`) with a vote posted a day ago in #general, whose
/// channel takes one edit of an old message per `window`; Alice's yes is counted (and has
/// spent that edit). Answers the fake, the database (kept while Polity runs), Polity and the
/// vote message.
async fn a_day_old_vote(db: &str, window: Duration) -> (FakeDiscord, TestDb, Polity, String) {
    let fake = discord().await;
    let db = TestDb::sqlite(db);
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    said(&fake, BOB, &["propose"], vec![("text", json!("A long vote"))]).await;
    let vote = vote_message(&fake, GENERAL, "Proposal #1: bob proposes: A long vote").await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;
    fake.age_message(GENERAL, &vote, Duration::from_secs(24 * 3600));
    fake.limit_old_edits(1, window);
    fake.user_reacts(ALICE, GENERAL, &vote, YES);
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("(1 of 4 voted)")).await;
    (fake, db, polity, vote)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_older_than_an_hour_waits_for_discords_edit_budget_and_still_closes() {
    // The vote has run for a day; the channel takes one edit of an old message in 3 s.
    let (fake, _db, polity, vote) = a_day_old_vote("e2e_old_edits", Duration::from_secs(3)).await;
    for user in [BOB, CAROL] {
        fake.user_reacts(user, GENERAL, &vote, YES);
    }
    // Refused edits wait for the budget: the newest tally, then the closing edit, show.
    let closed = until_content(&fake, GENERAL, &vote, |c| c.ends_with("PASSED")).await;
    assert!(closed.contains("tally: yes 3 · no 0 · abstain 0 (3 of 4 voted)"), "{closed}");
    assert_eq!(fake.message(GENERAL, &vote).unwrap().components, json!([]));
    let refused = fake.requests().iter().filter(|r| r.method == "PATCH" && r.status == 429).count();
    assert!(refused > 0, "Discord refused some edits (code 30046)");
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert!(rt.store().failed_effects().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_discord_holds_back_for_an_hour_never_holds_up_the_channel() {
    let (fake, _db, polity, vote) = a_day_old_vote("e2e_old_edit_lane", Duration::from_secs(3600)).await;
    // The next edit is refused for the rest of the hour (30046)...
    fake.user_reacts(BOB, GENERAL, &vote, YES);
    within(
        "the refused edit",
        fake.wait_until(|s| s.requests().iter().any(|r| r.method == "PATCH" && r.status == 429)),
    )
    .await;
    // ...while the channel goes on: a new vote is posted there at once.
    said(&fake, CAROL, &["propose"], vec![("text", json!("A new vote"))]).await;
    vote_message(&fake, GENERAL, "Proposal #2: carol proposes: A new vote").await;
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_a_governed_channel_is_held_voted_on_and_reposted_on_pass() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_message");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    let policy = format!(
        "name = \"Rules are agreed first\"\\nkind = \"platform\"\\nactions = [\"discord.message\"]\\nfilter = \"action.channel == \\\"{RULES}\\\"\"\\n[vote]\\nquorum = 2\\npass = \"majority\"\\ncloses = \"24h\""
    );
    let installed = install_policy(&fake, "Rules are agreed first", &policy).await;
    assert_eq!(installed, "\"Rules are agreed first\" is installed: a platform policy.");

    // A message elsewhere stands.
    let chat = fake.user_says(DAVE, GENERAL, "hello all", &[]);
    let files: &[(&str, &[u8])] = &[("no-spam.txt", b"rule 1: no spam"), ("be-kind.txt", b"rule 2: be kind")];
    let held = fake.user_says_with_files(DAVE, RULES, "No spam, please", files);
    let file = fake.message(RULES, &held).unwrap().attachments[0].clone();
    within("the held message to be deleted", fake.wait_until(|s| s.message(RULES, &held).is_some_and(|m| m.deleted)))
        .await;
    // Discord's CDN drops a deleted message's files: Polity kept this one before the delete.
    assert_eq!(reqwest::get(&file).await.unwrap().status(), 404);
    let vote = vote_message(&fake, RULES, "Proposal #1: dave posted in <#").await;
    assert!(!fake.message(GENERAL, &chat).unwrap().deleted);
    until_reactions(&fake, RULES, &vote, "🤷", &[BOT_ID]).await;
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, RULES, &vote, YES);
    }
    // Any repost first, then its text: a file not kept would leave its link there, and the
    // failure then says so rather than waiting for a text that never comes.
    let repost = within("the repost", fake.wait_for_message(RULES, |c| c.starts_with("dave wrote:"))).await;
    let text = fake.message(RULES, &repost).unwrap().content;
    assert_eq!(text, "dave wrote: No spam, please", "the files were not kept");
    // Reposted without pinging anyone.
    let post = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/channels/{RULES}/messages")))
        .find(|r| r.body["content"].as_str().is_some_and(|c| c.starts_with("dave wrote:")))
        .unwrap();
    assert_eq!(post.body["allowed_mentions"], json!({ "parse": [], "roles": [], "users": [] }), "{}", post.body);
    // With its file uploaded again, as it was.
    let kept = [("no-spam.txt", "rule 1: no spam"), ("be-kind.txt", "rule 2: be kind")];
    assert_eq!(post.files, kept.map(|(n, c)| (n.to_string(), c.to_string())));
    assert!(!fake.message(RULES, &repost).unwrap().deleted);
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_messages_file_too_big_to_keep_is_named_on_the_vote_message() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_big_file");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    let policy = format!(
        "name = \"Rules are agreed first\"\\nkind = \"platform\"\\nactions = [\"discord.message\"]\\nfilter = \"action.channel == \\\"{RULES}\\\"\"\\n[vote]\\nquorum = 2"
    );
    install_policy(&fake, "Rules are agreed first", &policy).await;
    // Over the 10 MiB a bot may upload: it cannot come back with a repost.
    let big = vec![7u8; 10 * 1024 * 1024 + 1];
    let files: &[(&str, &[u8])] = &[("rules.txt", b"be kind"), ("video.mp4", &big)];
    fake.user_says_with_files(DAVE, RULES, "The rules, and a video", files);
    let vote = vote_message(&fake, RULES, "Proposal #1: dave posted in <#").await;
    let text = until_content(&fake, RULES, &vote, |c| c.contains("not kept")).await;
    assert!(
        text.contains("not kept, so a repost lacks it: video.mp4 is over 10 MiB, Discord's upload limit"),
        "{text}"
    );
    assert!(!text.contains("rules.txt"), "the small file is kept: {text}");
    // The note stays once the vote is decided.
    until_reactions(&fake, RULES, &vote, "🤷", &[BOT_ID]).await;
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, RULES, &vote, YES);
    }
    let closed = until_content(&fake, RULES, &vote, |c| c.ends_with("PASSED")).await;
    assert!(closed.contains("video.mp4 is over 10 MiB"), "{closed}");
    let post = within(
        "the repost",
        fake.until(|s| {
            s.requests()
                .iter()
                .find(|r| {
                    r.method == "POST" && r.body["content"].as_str().is_some_and(|c| c.starts_with("dave wrote:"))
                })
                .cloned()
        }),
    )
    .await;
    assert_eq!(post.files, [("rules.txt".to_string(), "be kind".to_string())]);
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_is_undone_voted_on_and_done_again_on_pass() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_rename");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    install_policy(&fake, "Renames need a vote", RENAMES_NEED_A_VOTE).await;

    fake.user_renames_channel(DAVE, GENERAL, "random");
    // The old name is restored at once, exactly.
    let vote = vote_message(&fake, GENERAL, "Proposal #1: dave renamed <#").await;
    within("the old name back", fake.wait_until(|s| s.channel_name(GENERAL) == Some("general"))).await;
    until_reactions(&fake, GENERAL, &vote, "🤷", &[BOT_ID]).await;
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, GENERAL, &vote, YES);
    }
    within("the new name again", fake.wait_until(|s| s.channel_name(GENERAL) == Some("random"))).await;
    until_content(&fake, GENERAL, &vote, |c| c.ends_with("PASSED")).await;
    // The bot's own renames were never governed: one proposal only.
    let rt = polity.stop().await;
    let community = rt.store().communities().await.unwrap()[0].0;
    assert_eq!(rt.store().load_proposals(community, false).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_over_discords_budget_wait_and_voters_are_told_when_they_show() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_rename_budget");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    install_policy(&fake, "Renames need a vote", RENAMES_NEED_A_VOTE).await;

    // Two renames undone: the channel's two renames of these ten minutes are spent.
    for (n, name) in [(1, "random"), (2, "chat")] {
        fake.user_renames_channel(DAVE, GENERAL, name);
        vote_message(&fake, GENERAL, &format!("Proposal #{n}: dave renamed <#")).await;
        within("the old name back", fake.wait_until(|s| s.channel_name(GENERAL) == Some("general"))).await;
    }
    // A third is held back by Discord: its vote message says until when.
    fake.user_renames_channel(DAVE, GENERAL, "lounge");
    let third = vote_message(&fake, GENERAL, "Proposal #3: dave renamed <#").await;
    let text = until_content(&fake, GENERAL, &third, |c| c.contains("holds back")).await;
    assert!(text.contains("Discord holds back undoing it (rate limit): it shows at about "), "{text}");
    assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("lounge"));
    let refused = fake.requests().into_iter().filter(|r| r.method == "PATCH" && r.status == 429).count();
    assert!(refused <= 1, "a refused rename waits for its window, it is not tried again at once: {refused}");

    // The first passes: carrying it out waits too, and its channel is told when it shows.
    let first = vote_message(&fake, GENERAL, "Proposal #1:").await;
    until_reactions(&fake, GENERAL, &first, "🤷", &[BOT_ID]).await;
    for user in [ALICE, BOB, CAROL] {
        fake.user_reacts(user, GENERAL, &first, YES);
    }
    until_content(&fake, GENERAL, &first, |c| c.ends_with("PASSED")).await;
    let told = within(
        "the channel told when the passed rename shows",
        fake.wait_for_message(GENERAL, |c| c.starts_with("Proposal #1: Discord holds back carrying it out")),
    )
    .await;
    assert!(fake.message(GENERAL, &told).unwrap().content.contains("(rate limit): it shows at about "));
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_discord_refuses_for_want_of_a_permission_is_told_to_the_admins_with_its_fix() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_forbidden");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    install_policy(&fake, "Renames need a vote", RENAMES_NEED_A_VOTE).await;
    // #general's settings deny Polity's role Manage Channels.
    fake.set_channel_overwrite(GENERAL, &fake.bot_role(GUILD), 0, permissions::MANAGE_CHANNELS);

    fake.user_renames_channel(DAVE, GENERAL, "random");
    vote_message(&fake, GENERAL, "Proposal #1: dave renamed <#").await;
    // The revert is refused: the contested name stays, and the admin is told what to change.
    let told =
        within("the admin's notice", fake.until(|s| s.dms(ALICE).into_iter().find(|m| m.contains("Manage Channels"))))
            .await;
    assert!(told.contains("allow Polity's role Manage Channels in #random"), "{told}");
    assert!(told.contains("Missing Permissions"), "{told}");
    assert_eq!(fake.channel_name(GENERAL).as_deref(), Some("random"));
    // The proposal says so too.
    let shown = said(&fake, BOB, &["proposal"], vec![("id", json!(1))]).await;
    assert!(shown.contains("not carried out: Discord refused PATCH"), "{shown}");
    assert!(shown.contains("Manage Channels"), "{shown}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_above_polity_s_is_refused_and_the_admins_are_told_to_move_polity_s_role() {
    const MODERATOR: &str = "400000000000000009";
    let fake = discord().await;
    fake.add_role(GUILD, MODERATOR, "moderator");
    // The server's admin placed the moderator role above Polity's.
    fake.set_role_position(GUILD, MODERATOR, 10);
    let db = TestDb::sqlite("e2e_hierarchy");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    let policy = format!(
        "name = \"Roles need a vote\"\nkind = \"platform\"\nactions = [\"discord.role_grant\"]\n[vote]\nquorum = 2\non = \"discord:{GENERAL}\""
    );
    install_policy(&fake, "Roles need a vote", &policy).await;
    // `/integration test` says so before anything fails.
    let tested = tested(&fake, "discord").await;
    assert!(tested.contains("Its highest role is below *moderator*"), "{tested}");

    // Bob makes Dave a moderator: undoing it while it is voted on is refused.
    fake.user_grants_role(BOB, DAVE, MODERATOR);
    vote_message(&fake, GENERAL, "Proposal #1: bob gave <@").await;
    let told =
        within("the admin's notice", fake.until(|s| s.dms(ALICE).into_iter().find(|m| m.contains("moderator")))).await;
    assert!(told.contains("move Polity's role (Polity) above *moderator* in Server Settings → Roles"), "{told}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_test_lists_the_permissions_polity_lacks_and_why_it_needs_them() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_integration_permissions");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    let all = tested(&fake, "discord").await;
    assert!(all.contains("It has every permission Polity uses, and its role is above every other."), "{all}");
    // Without View Audit Log, renames and role changes cannot be attributed: it says so.
    let bot_role = fake.bot_role(GUILD);
    fake.set_role_permissions(GUILD, &bot_role, permissions::POLITY & !permissions::VIEW_AUDIT_LOG);
    let lacking = tested(&fake, "discord").await;
    assert!(
        lacking.contains("a permission is missing")
            && lacking.contains("View Audit Log (to learn who renamed a channel or granted a role)"),
        "{lacking}"
    );
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_waited_out_for_its_retry_after_and_the_vote_posted_once() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_429");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    direct_democracy(&fake).await;
    let limited = json!({ "message": "You are being rate limited.", "retry_after": 0.25, "global": false });
    fake.fail_next("POST", &format!("/channels/{GENERAL}/messages"), 429, limited, None);
    let asked = std::time::Instant::now();
    said(&fake, BOB, &["propose"], vec![("text", json!("Rate limits"))]).await;
    vote_message(&fake, GENERAL, "Proposal #1: bob proposes: Rate limits").await;
    let posts: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with(&format!("/channels/{GENERAL}/messages")))
        .map(|r| r.status)
        .collect();
    assert_eq!(posts, [429, 200]);
    // Not retried before Discord said (a lower bound, not a timing measurement).
    assert!(asked.elapsed() >= Duration::from_millis(250));
    assert_eq!(fake.messages(GENERAL).iter().filter(|m| m.content.starts_with("Proposal #1:")).count(), 1);
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_command_is_acknowledged_at_once_and_answered_after() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_slow");
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    let id = fake.slash(ALICE, GUILD, GENERAL, &["export"], vec![("format", json!(1))]);
    let first = within("the acknowledgement", fake.response(&id)).await;
    assert_eq!((first.kind, &first.data["flags"]), (5, &json!(64)), "{first:?}");
    let answer = within("the answer", fake.edited_response(&id)).await;
    assert_eq!(answer.data["content"], json!("The governance record (polity-export.csv):"));
    let (name, content) = &answer.files[0];
    assert_eq!(name, "polity-export.csv");
    assert!(content.starts_with("community,record,proposal,at,who,what,detail\n"), "{content}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_is_typed_into_a_form_and_never_shown() {
    const SECRET: &str = "xoxb-polity-e2e-very-secret";
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_secret");
    let key = SecretKey::generate();
    let polity = Polity::start(&fake, db.url(), Some(&key), 1).await;
    let id = fake.slash(
        ALICE,
        GUILD,
        GENERAL,
        &["integration", "add"],
        vec![("platform", json!("slack")), ("name", json!("team"))],
    );
    let form = within("the form", fake.response(&id)).await;
    assert_eq!(form.kind, 9, "a modal: {form:?}");
    let custom_id = form.data["custom_id"].as_str().unwrap().to_string();
    assert_eq!(custom_id, format!("polity:secret:{id}"));
    let input = form.data["components"][0]["components"][0].clone();
    assert_eq!(input["custom_id"], json!("secret"));
    assert!(input["label"].as_str().unwrap().starts_with("Type the bot token"), "{input}");

    let submitted = fake.submit_form(ALICE, GUILD, GENERAL, &custom_id, "secret", SECRET);
    let answer = private(&within("the answer to the form", fake.response(&submitted)).await);
    assert_eq!(answer, "team (slack) is connected. `/integration test team` checks it.");
    for r in fake.requests() {
        assert!(!r.body.to_string().contains(SECRET), "sent to Discord: {r:?}");
    }
    let listed = said(&fake, ALICE, &["integration", "list"], vec![]).await;
    // Beside the server's own connection, made when the server became a community.
    assert_eq!(listed, "discord — discord, enabled, no secret\nteam — slack, enabled, secret stored");
    let rt = polity.stop().await;
    let community = rt.store().communities().await.unwrap()[0].0;
    assert_eq!(rt.store().connection_secret(community, "team").await.unwrap().unwrap().expose(), SECRET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_are_two_communities_and_one_cannot_act_in_the_others_channels() {
    const OTHER_GUILD: &str = "700000000000000002";
    const OTHER: &str = "100000000000000009";
    const EVE: &str = "300000000000000009";
    let fake = discord().await;
    fake.add_guild(OTHER_GUILD, "Neighbours", EVE);
    fake.add_channel(OTHER_GUILD, OTHER, "lobby");
    fake.add_member(OTHER_GUILD, EVE, "eve", None, &[]);
    let db = TestDb::sqlite("e2e_two");
    let polity = Polity::start(&fake, db.url(), None, 2).await;

    let eve = private(
        &within("eve's whoami", fake.response(&fake.slash(EVE, OTHER_GUILD, OTHER, &["whoami"], vec![]))).await,
    );
    assert!(eve.starts_with("You are eve, an admin."), "{eve}");
    let alice = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(alice.starts_with("You are Alice A., an admin."), "{alice}");

    // A policy of the first server that posts here and in the other server's channel: only
    // its own channel is reachable.
    let policy = format!(
        "name = \"Shout\"\\nkind = \"trigger\"\\nactions = [\"discord.reaction_added\"]\\nfilter = \"action.emoji == \\\"📣\\\"\"\\ncheck = \"\\\"passed\\\"\"\\n[pass]\\ndo = [{{ action = \"discord.post_message\", channel = \"{OTHER}\", text = \"hello neighbours\" }}, {{ action = \"discord.post_message\", channel = \"{GENERAL}\", text = \"hello here\" }}]"
    );
    let installed = install_policy(&fake, "Shout", &policy).await;
    assert_eq!(installed, "\"Shout\" is installed: a trigger policy.");
    let note = fake.user_says(BOB, GENERAL, "news!", &[]);
    fake.user_reacts(BOB, GENERAL, &note, "📣");
    within("the post here", fake.wait_for_message(GENERAL, |c| c == "hello here")).await;
    let rt = polity.stop().await;
    assert!(fake.messages(OTHER).is_empty(), "{:?}", fake.messages(OTHER));
    let failed = rt.store().failed_effects().await.unwrap();
    assert!(
        failed.iter().any(|(_, e)| e.contains(&format!("channel {OTHER} is not a channel of this community's server"))),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_vote_with_more_reactions_than_a_page_is_read_page_by_page_without_the_bot() {
    use polity_governance::ids::MessageRef;
    use polity_governance::platform::Platform;
    let fake = discord().await;
    let vote = fake.add_message(GENERAL, BOT_ID, "Proposal #1");
    fake.user_reacts(BOT_ID, GENERAL, &vote, YES);
    let voters: Vec<String> = (0..150).map(|i| format!("{}", 310_000_000_000_000_000u64 + i)).collect();
    for v in &voters {
        fake.add_member(GUILD, v, &format!("voter{v}"), None, &[]);
        fake.user_reacts(v, GENERAL, &vote, YES);
    }
    let platform = polity_discord::DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap();
    let message = MessageRef::new("discord", GENERAL, &vote);
    let read = platform.read_reactions(&message, &[YES.to_string(), NO.to_string()]).await.unwrap();
    assert_eq!(read.len(), 2);
    let ids: Vec<&str> = read[0].users.iter().map(|(a, _)| a.account.as_str()).collect();
    assert_eq!(ids, voters.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(read[1].users.is_empty());
    let pages: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/reactions/%F0%9F%91%8D"))
        .map(|r| r.query.clone())
        .collect();
    // A full page of 100, then the rest (50 and the bot's own): a short page ends the read.
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages[0].contains("limit=100") && !pages[0].contains("after="), "{pages:?}");
    assert!(pages[1].contains(&format!("after={}", voters[99])), "{pages:?}");
}

/// What `user` is told, privately, for a slash command in `channel` of `guild`.
async fn said_in(
    fake: &FakeDiscord,
    user: &str,
    guild: &str,
    channel: &str,
    words: &[&str],
    options: Vec<(&str, Value)>,
) -> String {
    let id = fake.slash(user, guild, channel, words, options);
    private(&within(&format!("the answer to /{}", words.join(" ")), fake.response(&id)).await)
}

/// The one-time code in the reply to `/integration add discord`.
fn join_code(reply: &str) -> String {
    let (_, after) = reply.split_once("`/integration confirm ").unwrap_or_else(|| panic!("no code in: {reply}"));
    let code: String = after.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 10, "{reply}");
    code
}

const WAITING: &str = "This server is not governed yet: a community asked for it. Its owner or an admin makes it join that community with `/integration confirm CODE` (the code that community's `/integration add` showed), or makes it a community of its own with `/integration confirm` and no code.";
const NOT_IN_CONTROL: &str = "Only the server's owner or a member with the Administrator or Manage Server permission can say which community governs it.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_named_by_an_existing_communitys_connection_joins_that_community_once_its_owner_confirms() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_join");
    let code = {
        // The community "Makers" (its admin on another platform) asked for this server, with
        // Polity's bot running: the reply carries the invite and the one-time code.
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        let admin = polity_governance::ids::AccountRef::new("console", "maria");
        let c = rt.ensure_community("Makers", "maria", admin.clone()).await.unwrap();
        rt.set_invite("discord", "https://discord.com/oauth2/authorize?client_id=900000000000000002".into());
        let inv = polity_commands::Invocation {
            invoker: admin,
            place: polity_governance::ids::Place::new("console", "general"),
            id: "1".into(),
        };
        let mut ports = polity::ports::CommunityPorts::new(&mut rt, c, "console", "1", chrono::Utc::now());
        let reply = polity_commands::handle(&mut ports, &inv, &format!("/integration add discord main guild={GUILD}"))
            .await
            .unwrap();
        assert!(reply.text.starts_with("main (discord) is connected."), "{}", reply.text);
        join_code(&reply.text)
    };
    // Being named is no proof: the server waits, governed by nobody, until someone who
    // controls it confirms, inside it.
    let mut polity = Polity::start(&fake, db.url(), None, 1).await;
    assert_eq!(polity.waiting, [GUILD]);
    assert!(polity.governing.is_empty());
    assert_eq!(said(&fake, BOB, &["whoami"], vec![]).await, WAITING);
    assert_eq!(said(&fake, BOB, &["integration", "confirm"], vec![("code", json!(code))]).await, NOT_IN_CONTROL);
    let joined = said(&fake, ALICE, &["integration", "confirm"], vec![("code", json!(code))]).await;
    assert_eq!(joined, "This server now belongs to the community \"Makers\": its members are members there.");
    assert_eq!(polity.governs(GUILD).await, "Makers");
    // The server's members are Makers' members; its owner is no admin there.
    let me = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(me.starts_with("You are Alice A.\naccounts: discord:300000000000000001"), "{me}");
    let rt = polity.stop().await;
    let names: Vec<String> = rt.store().communities().await.unwrap().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["Makers"]);
    let makers = rt.store().communities().await.unwrap()[0].0;
    let audit: Vec<String> = rt.store().audit(makers, 5).await.unwrap().into_iter().map(|a| a.text).collect();
    assert!(
        audit
            .iter()
            .any(|a| a == &format!("discord.server_join by discord:{ALICE} carried out: the initiator may execute it")),
        "{audit:?}"
    );

    // Across a restart, it stays Makers'.
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    assert_eq!(polity.governing, [(GUILD.to_string(), "Makers".to_string())]);
    polity.stop().await;
}

/// Runs `line` as `account` on the console in `community`, with Polity stopped.
async fn on_console(rt: &mut Runtime, community: polity_governance::CommunityId, account: &str, line: &str) -> String {
    let invoker = polity_governance::ids::AccountRef::new("console", account);
    let inv = polity_commands::Invocation {
        invoker,
        place: polity_governance::ids::Place::new("console", "general"),
        id: line.into(),
    };
    let mut ports = polity::ports::CommunityPorts::new(rt, community, "console", line, chrono::Utc::now());
    match polity_commands::handle(&mut ports, &inv, line).await {
        Ok(reply) => reply.text,
        Err(e) => e.to_string(),
    }
}

/// The six-digit code in `/link`'s answer.
fn link_code(reply: &str) -> String {
    let code = reply.split("`/link confirm ").nth(1).and_then(|r| r.split('`').next()).unwrap_or_default();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "a six-digit code: {reply}");
    code.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_link_from_the_console_to_discord_and_back_though_discord_admitted_them_first() {
    let fake = discord().await;
    let db = TestDb::sqlite("e2e_link");
    // The community "Makers" (maria, its admin, on the console) governs the server.
    let (code, makers) = {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        let c = rt
            .ensure_community("Makers", "maria", polity_governance::ids::AccountRef::new("console", "maria"))
            .await
            .unwrap();
        rt.set_invite("discord", "https://discord.com/oauth2/authorize?client_id=900000000000000002".into());
        let reply = on_console(&mut rt, c, "maria", &format!("/integration add discord main guild={GUILD}")).await;
        (join_code(&reply), c)
    };
    let mut polity = Polity::start(&fake, db.url(), None, 1).await;
    let joined = said(&fake, ALICE, &["integration", "confirm"], vec![("code", json!(code))]).await;
    assert!(joined.starts_with("This server now belongs to the community \"Makers\""), "{joined}");
    assert_eq!(polity.governs(GUILD).await, "Makers");
    // Alice is a member of Makers already, admitted with the server, apart from maria.
    let me = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(me.starts_with("You are Alice A."), "{me}");
    let rt = polity.stop().await;

    // maria starts the link on the console; Alice's Discord account confirms it on Discord.
    let mut rt = rt;
    let code = link_code(&on_console(&mut rt, makers, "maria", &format!("/link discord {ALICE}")).await);
    drop(rt);
    let polity = Polity::start(&fake, db.url(), None, 1).await;
    let linked = said(&fake, ALICE, &["link", "confirm"], vec![("code", json!(code))]).await;
    assert_eq!(linked, format!("discord:{ALICE} is now linked to maria."));
    let me = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(me.starts_with("You are maria, an admin.\naccounts: console:maria"), "{me}");
    assert!(me.contains(&format!("discord:{ALICE}")), "{me}");
    // And back: Bob starts a link on Discord, his console account confirms it.
    let started =
        said(&fake, BOB, &["link", "start"], vec![("platform", json!("console")), ("account", json!("bob"))]).await;
    let code = link_code(&started);
    let mut rt = polity.stop().await;
    let linked = on_console(&mut rt, makers, "bob", &format!("/link confirm {code}")).await;
    assert_eq!(linked, "console:bob is now linked to bob.");
    let stored = rt.store().load_community(makers).await.unwrap();
    let bob = stored.member_by_account(&polity_governance::ids::AccountRef::new("discord", BOB)).unwrap();
    let console = polity_governance::ids::AccountRef::new("console", "bob");
    assert_eq!(stored.member_by_account(&console).map(|m| m.id), Some(bob.id));
    assert!(stored.member_by_name("Alice A.").is_none(), "Alice's Discord member is merged into maria");
}

// ----- Communities apart -----

const NEIGHBOURS: &str = "700000000000000002";
const LOBBY: &str = "100000000000000009";
const EVE: &str = "300000000000000009";
const FRANK: &str = "300000000000000010";
const NEIGHBOUR: &str = "200000000000000009";
const GREETER: &str = "200000000000000010";

/// The server "Polity test" of [`discord`], and beside it "Neighbours": owned by Eve, with
/// #lobby and the member Frank, who holds the role "neighbour" (the role "greeter" is
/// nobody's).
async fn two_servers() -> FakeDiscord {
    let fake = discord().await;
    fake.add_guild(NEIGHBOURS, "Neighbours", EVE);
    fake.add_channel(NEIGHBOURS, LOBBY, "lobby");
    fake.add_role(NEIGHBOURS, NEIGHBOUR, "neighbour");
    fake.add_role(NEIGHBOURS, GREETER, "greeter");
    fake.add_member(NEIGHBOURS, EVE, "eve", None, &[]);
    fake.add_member(NEIGHBOURS, FRANK, "frank", None, &[NEIGHBOUR]);
    fake
}

/// Whether a request's path names `id` as one of its segments.
fn names(r: &polity_tests::discord::Recorded, id: &str) -> bool {
    r.path.split('/').any(|segment| segment == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_of_one_community_is_refused_every_action_on_the_others_server_and_nothing_is_done() {
    const GRACE: &str = "300000000000000011";
    let fake = two_servers().await;
    let welcome = fake.add_message(LOBBY, polity_tests::discord::BOT_ID, "Welcome, neighbours");
    let note = fake.add_message(LOBBY, FRANK, "Bring a cake");
    let db = TestDb::sqlite("e2e_apart");
    let polity = Polity::start(&fake, db.url(), None, 2).await;
    // Grace joins "Polity test" unannounced: serenity's cache does not know her, Discord does.
    fake.add_member(GUILD, GRACE, "grace", None, &[]);

    // A policy of "Polity test" that names the other server's channel, messages, members,
    // roles and the server itself, with every Discord action.
    let reach = [
        format!("{{ action = \"discord.post_message\", channel = \"{LOBBY}\", text = \"hello neighbours\" }}"),
        format!("{{ action = \"discord.send_dm\", user = \"{EVE}\", text = \"psst\" }}"),
        format!(
            "{{ action = \"discord.edit_message\", channel = \"{LOBBY}\", message = \"{welcome}\", text = \"ours now\" }}"
        ),
        format!("{{ action = \"discord.delete_message\", channel = \"{LOBBY}\", message = \"{note}\" }}"),
        format!("{{ action = \"discord.pin_message\", channel = \"{LOBBY}\", message = \"{note}\" }}"),
        format!("{{ action = \"discord.rename_channel\", channel = \"{LOBBY}\", name = \"ours\" }}"),
        format!("{{ action = \"discord.grant_role\", user = \"{FRANK}\", role = \"{GREETER}\" }}"),
        format!("{{ action = \"discord.grant_role\", user = \"{BOB}\", role = \"{GREETER}\" }}"),
        format!(
            "{{ action = \"discord.grant_role\", user = \"{FRANK}\", role = \"{GREETER}\", guild = \"{NEIGHBOURS}\" }}"
        ),
        format!("{{ action = \"discord.revoke_role\", user = \"{FRANK}\", role = \"{NEIGHBOUR}\" }}"),
        format!(
            "{{ action = \"discord.revoke_role\", user = \"{FRANK}\", role = \"{NEIGHBOUR}\", guild = \"{NEIGHBOURS}\" }}"
        ),
        format!("{{ action = \"discord.kick\", user = \"{FRANK}\" }}"),
        format!("{{ action = \"discord.kick\", user = \"{EVE}\", guild = \"{NEIGHBOURS}\" }}"),
        // Its own members it reaches, the cached and the unannounced alike.
        format!("{{ action = \"discord.send_dm\", user = \"{BOB}\", text = \"hello Bob\" }}"),
        format!("{{ action = \"discord.send_dm\", user = \"{GRACE}\", text = \"hello Grace\" }}"),
        format!("{{ action = \"discord.post_message\", channel = \"{GENERAL}\", text = \"done\" }}"),
    ];
    let policy = format!(
        "name = \"Reach out\"\\nkind = \"trigger\"\\nactions = [\"discord.reaction_added\"]\\nfilter = \"action.emoji == \\\"📣\\\"\"\\ncheck = \"\\\"passed\\\"\"\\n[pass]\\ndo = [{}]",
        reach.join(", ")
    );
    let installed = install_policy(&fake, "Reach out", &policy).await;
    assert_eq!(installed, "\"Reach out\" is installed: a trigger policy.");
    let requests_before = fake.requests().len();
    let news = fake.user_says(BOB, GENERAL, "news!", &[]);
    fake.user_reacts(BOB, GENERAL, &news, "📣");
    // Effects are performed in order: once "done" is posted, every one was tried.
    within("the last post", fake.wait_for_message(GENERAL, |c| c == "done")).await;
    let rt = polity.stop().await;

    // Nothing was done on the other server.
    let lobby = fake.messages(LOBBY);
    assert_eq!(lobby.len(), 2, "{lobby:?}");
    let (w, n) = (fake.message(LOBBY, &welcome).unwrap(), fake.message(LOBBY, &note).unwrap());
    assert!(w.content == "Welcome, neighbours" && !w.edited && !w.deleted, "{w:?}");
    assert!(!n.deleted && !n.pinned, "{n:?}");
    assert_eq!(fake.channel_name(LOBBY).as_deref(), Some("lobby"));
    assert_eq!(fake.member_roles(NEIGHBOURS, FRANK), Some(vec![NEIGHBOUR.to_string()]));
    assert_eq!(fake.member_roles(NEIGHBOURS, EVE), Some(vec![]));
    assert_eq!(fake.member_roles(GUILD, BOB), Some(vec![]));
    assert!(fake.dms(EVE).is_empty() && fake.with(|s| s.dm_channel(EVE).is_none()));
    // Not even asked: the only requests naming the other server's people are questions to
    // this server (is Eve, is Frank a member here?).
    for r in &fake.requests()[requests_before..] {
        for id in [NEIGHBOURS, LOBBY, welcome.as_str(), note.as_str(), NEIGHBOUR, GREETER] {
            assert!(!names(r, id), "{} {} was sent", r.method, r.path);
        }
        if names(r, EVE) || names(r, FRANK) {
            assert_eq!((r.method.as_str(), r.status), ("GET", 404), "{r:?}");
            assert!(r.path.ends_with(&format!("/guilds/{GUILD}/members/{}", r.path.rsplit('/').next().unwrap())));
        }
    }
    // Its own members were reached: Grace by asking Discord whether she is a member.
    assert_eq!(fake.dms(BOB), ["hello Bob"]);
    assert_eq!(fake.dms(GRACE), ["hello Grace"]);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with(&format!("/guilds/{GUILD}/members/{GRACE}")))
    );

    // Each refusal says which target is not the community's.
    let ours = format!("this community's server ({GUILD})");
    let mut failed: Vec<String> = rt.store().failed_effects().await.unwrap().into_iter().map(|(_, e)| e).collect();
    failed.sort();
    let mut expected = vec![
        format!("channel {LOBBY} is not a channel of {ours}"),
        format!("channel {LOBBY} is not a channel of {ours}"),
        format!("channel {LOBBY} is not a channel of {ours}"),
        format!("channel {LOBBY} is not a channel of {ours}"),
        format!("channel {LOBBY} is not a channel of {ours}"),
        format!("user {EVE} is not a member of {ours}"),
        format!("role {GREETER} is not a role of {ours}"),
        format!("role {GREETER} is not a role of {ours}"),
        format!("server {NEIGHBOURS} is not {ours}"),
        format!("role {NEIGHBOUR} is not a role of {ours}"),
        format!("server {NEIGHBOURS} is not {ours}"),
        format!("user {FRANK} is not a member of {ours}"),
        format!("server {NEIGHBOURS} is not {ours}"),
    ];
    expected.sort();
    assert_eq!(failed, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_community_that_names_anothers_server_does_not_take_it_over_even_after_a_restart() {
    let fake = two_servers().await;
    let db = TestDb::sqlite("e2e_takeover");
    let mut polity = Polity::start(&fake, db.url(), None, 2).await;
    assert_eq!(polity.governs(NEIGHBOURS).await, "Neighbours");

    // An admin of "Polity test" connects the other server, and is told the code for it.
    let asked = said(
        &fake,
        ALICE,
        &["integration", "add"],
        vec![("platform", json!("discord")), ("name", json!("x")), ("settings", json!(format!("guild={NEIGHBOURS}")))],
    )
    .await;
    let code = join_code(&asked);
    // Even its owner cannot hand a governed server over: only its community decides that.
    let refused =
        said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["integration", "confirm"], vec![("code", json!(code))]).await;
    assert_eq!(
        refused,
        "This server is governed by the community \"Neighbours\". It leaves \"Neighbours\" only if \"Neighbours\" decides so, by removing its connection to this server (`/integration remove`)."
    );

    // A dropped connection resumes, and Polity restarts: the server is still Neighbours'.
    assert!(fake.disconnect());
    within("serenity to RESUME", fake.wait_resume()).await;
    let eve = said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["whoami"], vec![]).await;
    assert!(eve.starts_with("You are eve, an admin."), "{eve}");
    polity.stop().await;
    let mut polity = Polity::start(&fake, db.url(), None, 2).await;
    assert_eq!(polity.governs(NEIGHBOURS).await, "Neighbours");
    assert_eq!(polity.governs(GUILD).await, "Polity test");
    assert!(polity.waiting.is_empty());
    // Its commands, events and effects are Neighbours': Eve installs a kit, Frank proposes,
    // and the vote is Neighbours' first, in its own channel.
    let eve = said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["whoami"], vec![]).await;
    assert!(eve.starts_with("You are eve, an admin."), "{eve}");
    let kit =
        said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["kit", "install"], vec![("name", json!("direct-democracy"))]).await;
    assert!(kit.starts_with("The starter kit direct-democracy is installed"), "{kit}");
    let opened = said_in(&fake, FRANK, NEIGHBOURS, LOBBY, &["propose"], vec![("text", json!("A street party"))]).await;
    assert!(opened.starts_with("Proposal #1 is open"), "{opened}");
    vote_message(&fake, LOBBY, "Proposal #1: frank proposes: A street party").await;
    let rt = polity.stop().await;
    let communities = rt.store().communities().await.unwrap();
    let id = |name: &str| communities.iter().find(|(_, n)| n == name).unwrap().0;
    assert_eq!(rt.store().load_proposals(id("Neighbours"), false).await.unwrap().len(), 1);
    assert!(rt.store().load_proposals(id("Polity test"), false).await.unwrap().is_empty());
    // The connection stays what it was: asked for, never in effect.
    let x = rt.store().connections(id("Polity test")).await.unwrap().into_iter().find(|c| c.name == "x").unwrap();
    assert_eq!(x.config["guild"], json!(NEIGHBOURS));
    assert_eq!(x.config["join_code"], json!(code));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_joins_the_community_that_asked_for_it_once_an_admin_confirms_inside_it() {
    const WORKSHOP: &str = "700000000000000003";
    const BENCH: &str = "100000000000000020";
    const HEIDI: &str = "300000000000000020";
    const IVAN: &str = "300000000000000021";
    const JUDY: &str = "300000000000000022";
    const STEWARD: &str = "200000000000000020";
    let fake = discord().await;
    // A server the bot is not in yet: Heidi owns it, Ivan manages it, Judy is a member.
    fake.add_guild_without_bot(WORKSHOP, "Workshop", HEIDI);
    fake.add_channel(WORKSHOP, BENCH, "bench");
    fake.add_role_with_permissions(WORKSHOP, STEWARD, "steward", polity_tests::discord::permissions::MANAGE_GUILD);
    fake.add_member(WORKSHOP, HEIDI, "heidi", None, &[]);
    fake.add_member(WORKSHOP, IVAN, "ivan", None, &[STEWARD]);
    fake.add_member(WORKSHOP, JUDY, "judy", None, &[]);
    let db = TestDb::sqlite("e2e_confirm");
    let mut polity = Polity::start(&fake, db.url(), None, 1).await;

    let asked = said(
        &fake,
        ALICE,
        &["integration", "add"],
        vec![
            ("platform", json!("discord")),
            ("name", json!("workshop")),
            ("settings", json!(format!("guild={WORKSHOP}"))),
        ],
    )
    .await;
    assert!(asked.starts_with("workshop (discord) is connected."), "{asked}");
    assert!(
        asked.contains(
            "Add Polity's bot to the server with https://discord.com/oauth2/authorize?client_id=900000000000000002"
        ),
        "{asked}"
    );
    let code = join_code(&asked);

    // Heidi adds the bot: the server waits for its confirmation, governed by nobody.
    fake.invite_bot(WORKSHOP, HEIDI);
    polity.holds(WORKSHOP).await;
    assert_eq!(said_in(&fake, JUDY, WORKSHOP, BENCH, &["whoami"], vec![]).await, WAITING);
    let judy = said_in(&fake, JUDY, WORKSHOP, BENCH, &["integration", "confirm"], vec![("code", json!(code))]).await;
    assert_eq!(judy, NOT_IN_CONTROL);
    let wrong =
        said_in(&fake, IVAN, WORKSHOP, BENCH, &["integration", "confirm"], vec![("code", json!("0000000000"))]).await;
    assert_eq!(
        wrong,
        "That code is not for this server: the community that asked for it has the code, in the reply to its `/integration add`."
    );
    // Ivan may manage the server: his confirmation is the proof.
    let joined = said_in(&fake, IVAN, WORKSHOP, BENCH, &["integration", "confirm"], vec![("code", json!(code))]).await;
    assert_eq!(joined, "This server now belongs to the community \"Polity test\": its members are members there.");
    assert_eq!(polity.governs(WORKSHOP).await, "Polity test");
    let judy = said_in(&fake, JUDY, WORKSHOP, BENCH, &["whoami"], vec![]).await;
    assert!(judy.starts_with("You are judy."), "{judy}");
    let alice = said(&fake, ALICE, &["whoami"], vec![]).await;
    assert!(alice.starts_with("You are Alice A., an admin."), "{alice}");

    // The community acts in both of its servers now, and only there.
    let policy = format!(
        "name = \"Shout\"\\nkind = \"trigger\"\\nactions = [\"discord.reaction_added\"]\\nfilter = \"action.emoji == \\\"📣\\\"\"\\ncheck = \"\\\"passed\\\"\"\\n[pass]\\ndo = [{{ action = \"discord.post_message\", channel = \"{BENCH}\", text = \"hello workshop\" }}, {{ action = \"discord.send_dm\", user = \"{JUDY}\", text = \"hello Judy\" }}, {{ action = \"discord.post_message\", channel = \"{GENERAL}\", text = \"hello here\" }}]"
    );
    install_policy(&fake, "Shout", &policy).await;
    let news = fake.user_says(JUDY, BENCH, "news!", &[]);
    fake.user_reacts(JUDY, BENCH, &news, "📣");
    within("the post there", fake.wait_for_message(BENCH, |c| c == "hello workshop")).await;
    within("the post here", fake.wait_for_message(GENERAL, |c| c == "hello here")).await;
    assert_eq!(fake.dms(JUDY), ["hello Judy"]);
    let rt = polity.stop().await;
    assert!(rt.store().failed_effects().await.unwrap().is_empty());
    let names: Vec<String> = rt.store().communities().await.unwrap().into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["Polity test"]);

    // Across a restart, both servers are the community's.
    let mut polity = Polity::start(&fake, db.url(), None, 2).await;
    assert_eq!(polity.governs(WORKSHOP).await, "Polity test");
    assert_eq!(polity.governs(GUILD).await, "Polity test");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_waiting_for_a_confirmation_can_become_a_community_of_its_own_instead() {
    let fake = two_servers().await;
    let db = TestDb::sqlite("e2e_decline");
    {
        // "Polity test" asked for the neighbours' server before the bot was ever there.
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        let admin = polity_governance::ids::AccountRef::new("console", "maria");
        let c = rt.ensure_community("Makers", "maria", admin.clone()).await.unwrap();
        rt.set_invite("discord", "https://discord.com/oauth2/authorize?client_id=900000000000000002".into());
        let inv = polity_commands::Invocation {
            invoker: admin,
            place: polity_governance::ids::Place::new("console", "general"),
            id: "1".into(),
        };
        let mut ports = polity::ports::CommunityPorts::new(&mut rt, c, "console", "1", chrono::Utc::now());
        polity_commands::handle(&mut ports, &inv, &format!("/integration add discord n guild={NEIGHBOURS}"))
            .await
            .unwrap();
    }
    let mut polity = Polity::start(&fake, db.url(), None, 2).await;
    assert_eq!(polity.waiting, [NEIGHBOURS]);
    // Its owner would rather govern it themselves.
    let own = said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["integration", "confirm"], vec![]).await;
    assert_eq!(own, "This server is now a community of its own, \"Neighbours\", with its owner as the first admin.");
    assert_eq!(polity.governs(NEIGHBOURS).await, "Neighbours");
    let eve = said_in(&fake, EVE, NEIGHBOURS, LOBBY, &["whoami"], vec![]).await;
    assert!(eve.starts_with("You are eve, an admin."), "{eve}");
    polity.stop().await;
    let polity = Polity::start(&fake, db.url(), None, 2).await;
    assert!(polity.waiting.is_empty());
    assert!(polity.governing.contains(&(NEIGHBOURS.to_string(), "Neighbours".to_string())), "{:?}", polity.governing);
    polity.stop().await;
}

/// `/integration test NAME` in a server: acknowledged at once (it calls Discord), then
/// answered with what Discord said.
async fn tested(fake: &FakeDiscord, name: &str) -> String {
    let id = fake.slash(ALICE, GUILD, GENERAL, &["integration", "test"], vec![("name", json!(name))]);
    let first = within("the acknowledgement", fake.response(&id)).await;
    assert_eq!((first.kind, &first.data["flags"]), (5, &json!(64)), "{first:?}");
    let answer = within("the test's answer", fake.edited_response(&id)).await;
    answer.data["content"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integration_test_asks_discord_whether_the_bot_can_reach_the_server() {
    const ELSEWHERE: &str = "700000000000000077";
    let fake = discord().await;
    fake.add_guild_without_bot(ELSEWHERE, "Elsewhere", DAVE);
    let db = TestDb::sqlite("e2e_integration_test");
    let polity = Polity::start(&fake, db.url(), None, 1).await;

    // The server's own connection, made when it became a community: the bot's token works
    // and the bot is a member there.
    let works = tested(&fake, "discord").await;
    assert!(works.starts_with("discord (discord) works: Discord accepts the token"), "{works}");
    assert!(works.contains(&format!("the bot is in the server {GUILD}")), "{works}");
    let asked = fake.requests();
    assert!(asked.iter().any(|r| r.method == "GET" && r.path == "/api/v10/users/@me"), "{asked:?}");
    assert!(asked.iter().any(|r| r.method == "GET" && r.path == format!("/api/v10/guilds/{GUILD}/members/{BOT_ID}")));

    // A connection to a server the bot was never added to: Discord refuses, and the reply
    // says what is missing.
    let added = said(
        &fake,
        ALICE,
        &["integration", "add"],
        vec![
            ("platform", json!("discord")),
            ("name", json!("elsewhere")),
            ("settings", json!(format!("guild={ELSEWHERE}"))),
        ],
    )
    .await;
    assert!(added.starts_with("elsewhere (discord) is connected."), "{added}");
    let refused = tested(&fake, "elsewhere").await;
    assert!(
        refused
            .starts_with("elsewhere (discord) failed its test: a permission is missing: the bot cannot see the server"),
        "{refused}"
    );
    assert!(refused.contains("HTTP 403"), "{refused}");

    let unknown = tested(&fake, "nothing").await;
    assert_eq!(unknown, "There is no connection named nothing: `/integration list` shows them.");
    polity.stop().await;
}
