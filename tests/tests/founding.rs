#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The two founding use cases, end to end: `polity run`'s loop with Polity's Discord bot
//! against the fake Discord, a community's Open Collective connection against the fake
//! GraphQL API (its webhooks posted to Polity's HTTP server as Open Collective posts them),
//! and a SourceCred connection against a fake instance's site.
//!
//! 1. Cred decides who votes: `/role request voter` on Discord, granted (with its bound
//!    Discord role) by cred, refused with the member's cred and the threshold.
//! 2. Expenses are voted on Discord among the voters and decided on Open Collective, with a
//!    comment giving the tally.

use chrono::TimeDelta;
use polity::http::Webhooks;
use polity::platforms::Registry;
use polity::run::{Bot, Host, HttpHost, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::spaces::Notice;
use polity::store::{SecretKey, Store};
use polity_discord::DiscordAdapter;
use polity_governance::ProposalState;
use polity_tests::db::TestDb;
use polity_tests::discord::FakeDiscord;
use polity_tests::opencollective::{ADMIN_TOKEN, COLLECTIVE, Failure, FakeOpenCollective, MEMBER};
use polity_tests::sourcecred::{CredAccount, FakeSourceCred};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const GENERAL: &str = "100000000000000001";
const FINANCE: &str = "100000000000000003";
const ALICE: &str = "300000000000000001";
const BOB: &str = "300000000000000002";
const CAROL: &str = "300000000000000003";
const DAVE: &str = "300000000000000004";
/// The server's role that the community's `voter` role is bound to.
const VOTER_ROLE: &str = "400000000000000007";
const YES: &str = "👍";
const NO: &str = "👎";

/// A guard against a hang: the tests wait on events, never on time.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A server "OpenFoobar" owned by Alice, with #general and #finance, its members Alice, Bob,
/// Carol and Dave, and a role "voter" below Polity's.
async fn discord() -> FakeDiscord {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let fake = FakeDiscord::start().await;
    fake.add_guild(GUILD, "OpenFoobar", ALICE);
    fake.add_channel(GUILD, GENERAL, "general");
    fake.add_channel(GUILD, FINANCE, "finance");
    for (id, name) in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol"), (DAVE, "dave")] {
        fake.add_member(GUILD, id, name, None, &[]);
    }
    fake.add_role(GUILD, VOTER_ROLE, "voter");
    fake
}

/// Polity's `run` with its Discord bot and its HTTP server (webhooks of every platform of
/// this build), on its own task.
struct Polity {
    task: JoinHandle<anyhow::Result<Runtime>>,
    stop: oneshot::Sender<()>,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// The spaces it governs (servers, collectives, SourceCred sites).
    governing: Vec<String>,
}

impl Polity {
    async fn start(fake: &FakeDiscord, db: &str, key: &str) -> Self {
        let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
        store.migrate().await.unwrap();
        let bot = Bot::new(Arc::new(DiscordAdapter), json!({ "token": TOKEN, "base_url": fake.url() }));
        let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut webhooks = Webhooks::new();
        for adapter in polity::platforms::adapters() {
            if let Some(hooks) = adapter.webhooks() {
                webhooks.register(hooks);
            }
        }
        let mut registry = Registry::default();
        registry.set_public_url(&base);
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let host = Host { bots: vec![bot], registry, http: Some(HttpHost { listener, webhooks }) };
            run_host(store, host, pacing, &SystemClock, shutdown, notices_tx).await
        });
        let mut polity = Self { task, stop, notices, governing: Vec::new() };
        polity.governs(GUILD).await;
        polity
    }

    /// Waits until Polity governs `space`.
    async fn governs(&mut self, space: &str) {
        while !self.governing.iter().any(|s| s == space) {
            if let Notice::Governing { space, .. } = within("Polity's next notice", self.notices.recv()).await.unwrap()
            {
                self.governing.push(space);
            }
        }
    }

    async fn stop(self) -> Runtime {
        self.stop.send(()).unwrap();
        within("Polity to stop", self.task).await.unwrap().unwrap()
    }

    /// Polity ends at once, as if its process were killed: nothing is finished.
    fn kill(self) {
        self.task.abort();
    }
}

/// What only the invoker sees: the answer, or (a slow command, acknowledged first) the
/// answer that follows.
async fn said(fake: &FakeDiscord, user: &str, words: &[&str], options: Vec<(&str, Value)>) -> String {
    let id = fake.slash(user, GUILD, GENERAL, words, options);
    let what = format!("the answer to /{}", words.join(" "));
    let mut r = within(&what, fake.response(&id)).await;
    assert_eq!(r.data["flags"], json!(64), "only the invoker sees it: {r:?}");
    if r.kind == 5 {
        r = within(&what, fake.edited_response(&id)).await;
    } else {
        assert_eq!(r.kind, 4, "a message answer: {r:?}");
    }
    r.data["content"].as_str().unwrap().to_string()
}

async fn message_in(fake: &FakeDiscord, channel: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    within(what, fake.wait_for_message(channel, pred)).await
}

async fn until_content(fake: &FakeDiscord, channel: &str, message: &str, pred: impl Fn(&str) -> bool) -> String {
    within(
        "the vote message to change",
        fake.until(|s| s.message(channel, message).map(|m| m.content.clone()).filter(|c| pred(c))),
    )
    .await
}

/// The Discord roles `user` has now.
fn discord_roles(fake: &FakeDiscord, user: &str) -> Vec<String> {
    fake.member_roles(GUILD, user).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// SourceCred: cred decides who votes
// ---------------------------------------------------------------------------------------------

/// OpenFoobar's SourceCred instance: Bob (150 cred) and Carol (20) have identities whose
/// aliases are their Discord accounts; Dave has none.
async fn sourcecred() -> FakeSourceCred {
    let sc = FakeSourceCred::start().await;
    sc.set_accounts(&[
        CredAccount::user("bob-builds").discord(BOB).cred(&[100.0, 50.0]).balance(12_500_000_000_000_000_000),
        CredAccount::user("carol").discord(CAROL).cred(&[12.5, 7.5]),
        CredAccount::user("erin").github("erin").cred(&[400.0]),
    ]);
    sc
}

/// Alice, an admin, connects the instance as `cred` (it needs no secret), and Polity starts
/// the connection.
async fn connect_sourcecred(fake: &FakeDiscord, sc: &FakeSourceCred, polity: &mut Polity) {
    let settings = json!(format!("url={}", sc.url()));
    let options = vec![("platform", json!("sourcecred")), ("name", json!("cred")), ("settings", settings)];
    let added = said(fake, ALICE, &["integration", "add"], options).await;
    assert_eq!(added, "cred (sourcecred) is connected. `/integration test cred` checks it.");
    polity.governs(sc.url().trim_end_matches('/')).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_enough_cred_gets_the_voter_role_and_its_discord_role_and_others_are_told_why_not() {
    let fake = discord().await;
    let sc = sourcecred().await;
    let db = TestDb::sqlite("founding_cred");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;

    // The admin connects the instance (it needs no secret) and installs the kit.
    connect_sourcecred(&fake, &sc, &mut polity).await;
    let tested = said(&fake, ALICE, &["integration", "test"], vec![("name", json!("cred"))]).await;
    assert!(tested.contains("3 identities"), "{tested}");
    let kit = said(
        &fake,
        ALICE,
        &["kit", "install"],
        vec![("name", json!("cred-voters")), ("options", json!("threshold=100"))],
    )
    .await;
    assert!(kit.starts_with("The starter kit cred-voters is installed"), "{kit}");
    let bound = said(
        &fake,
        ALICE,
        &["role", "bind"],
        vec![("role", json!("voter")), ("to", json!(format!("discord:{VOTER_ROLE}")))],
    )
    .await;
    assert!(bound.starts_with("The role voter is bound to discord role"), "{bound}");

    // Bob has 150 cred through his Discord account's alias: the role at once, and the
    // Discord role with it.
    let bob = said(&fake, BOB, &["role", "request"], vec![("role", json!("voter"))]).await;
    assert_eq!(bob, "You have the role voter now.");
    within(
        "Bob's Discord role",
        fake.wait_until(|s| s.member_roles(GUILD, BOB).is_some_and(|r| r.contains(&VOTER_ROLE.to_string()))),
    )
    .await;

    // Carol has 20: refused, with her cred and the threshold, where she asked.
    let carol = said(&fake, CAROL, &["role", "request"], vec![("role", json!("voter"))]).await;
    assert!(carol.contains("failed at once under \"Voters need cred\""), "{carol}");
    message_in(&fake, GENERAL, "Carol's refusal", |c| {
        c == "carol has 20.0 cred on SourceCred; the voter role needs 100."
    })
    .await;

    // Dave is unknown to SourceCred: no cred, and why.
    let dave = said(&fake, DAVE, &["role", "request"], vec![("role", json!("voter"))]).await;
    assert!(dave.contains("failed at once"), "{dave}");
    let told = message_in(&fake, GENERAL, "Dave's refusal", |c| c.starts_with("dave has 0.0 cred")).await;
    let told = fake.message(GENERAL, &told).unwrap().content;
    assert!(told.contains("the voter role needs 100.") && told.contains("dave"), "{told}");
    assert!(!discord_roles(&fake, CAROL).contains(&VOTER_ROLE.to_string()));
    assert!(!discord_roles(&fake, DAVE).contains(&VOTER_ROLE.to_string()));

    // Another role bound to the same Discord role keeps it while Bob holds that one.
    said(&fake, ALICE, &["role", "create"], vec![("role", json!("reviewer"))]).await;
    let bound = said(
        &fake,
        ALICE,
        &["role", "bind"],
        vec![("role", json!("reviewer")), ("to", json!(format!("discord:{VOTER_ROLE}")))],
    )
    .await;
    assert!(bound.starts_with("The role reviewer is bound"), "{bound}");
    said(&fake, ALICE, &["role", "grant"], vec![("role", json!("reviewer")), ("member", json!("bob"))]).await;
    let removals = || {
        fake.requests()
            .iter()
            .filter(|r| r.method == "DELETE" && r.path.ends_with(&format!("/members/{BOB}/roles/{VOTER_ROLE}")))
            .count()
    };
    let revoked =
        said(&fake, ALICE, &["role", "revoke"], vec![("role", json!("voter")), ("member", json!("bob"))]).await;
    assert_eq!(revoked, "bob no longer has the role voter.");

    // Revoking the last Polity role bound to it revokes the Discord role.
    let revoked =
        said(&fake, ALICE, &["role", "revoke"], vec![("role", json!("reviewer")), ("member", json!("bob"))]).await;
    assert_eq!(revoked, "bob no longer has the role reviewer.");
    within(
        "Bob's Discord role to go",
        fake.wait_until(|s| s.member_roles(GUILD, BOB).is_some_and(|r| !r.contains(&VOTER_ROLE.to_string()))),
    )
    .await;
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert_eq!(removals(), 1, "the Discord role was taken once, with the last role bound to it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sourcecred_is_a_clear_error_and_nobody_is_refused_for_it() {
    let fake = discord().await;
    let sc = sourcecred().await;
    sc.answer_status(500);
    let db = TestDb::sqlite("founding_cred_down");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;
    connect_sourcecred(&fake, &sc, &mut polity).await;
    said(&fake, ALICE, &["kit", "install"], vec![("name", json!("cred-voters"))]).await;
    let tested = said(&fake, ALICE, &["integration", "test"], vec![("name", json!("cred"))]).await;
    assert!(tested.contains("could not be reached"), "{tested}");

    let bob = said(&fake, BOB, &["role", "request"], vec![("role", json!("voter"))]).await;
    assert!(bob.starts_with("Proposal #1 asks to give bob the role voter"), "{bob}");
    assert!(
        bob.contains("could not decide yet") && bob.contains("SourceCred") && bob.contains("every minute"),
        "{bob}"
    );
    assert!(!fake.messages(GENERAL).iter().any(|m| m.content.contains("cred on SourceCred")), "nobody is refused");
    let rt = polity.stop().await;
    let community = rt.store().communities().await.unwrap()[0].0;
    let p = rt.store().proposal(community, polity_governance::ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.state, ProposalState::Proposed, "the request waits for SourceCred");
}

// ---------------------------------------------------------------------------------------------
// Open Collective: expenses are voted on
// ---------------------------------------------------------------------------------------------

/// The community of the server connects its collective (the admin's token typed into
/// Discord's form) and installs the expense kit voting in #finance; Bob and Carol are
/// voters. Answers the webhook address Polity gave.
async fn connect_collective(fake: &FakeDiscord, oc: &FakeOpenCollective) -> String {
    let settings = format!("collective={COLLECTIVE} api={}", oc.url());
    let id = fake.slash(
        ALICE,
        GUILD,
        GENERAL,
        &["integration", "add"],
        vec![("platform", json!("opencollective")), ("name", json!("oc")), ("settings", json!(settings))],
    );
    let form = within("the token's form", fake.response(&id)).await;
    assert_eq!(form.kind, 9, "a form for the token: {form:?}");
    let custom_id = form.data["custom_id"].as_str().unwrap().to_string();
    let submitted = fake.submit_form(ALICE, GUILD, GENERAL, &custom_id, "secret", ADMIN_TOKEN);
    let answer = within("the answer to the form", fake.response(&submitted)).await;
    let text = answer.data["content"].as_str().unwrap().to_string();
    assert!(text.starts_with("oc (opencollective) is connected."), "{text}");
    let url = text.lines().last().unwrap().to_string();
    assert!(url.contains("/hooks/opencollective/") && url.contains("?token="), "{text}");
    for r in fake.requests() {
        assert!(!r.body.to_string().contains(ADMIN_TOKEN), "the token was sent to Discord: {r:?}");
    }
    let kit = said(
        fake,
        ALICE,
        &["kit", "install"],
        vec![("name", json!("expense-votes")), ("options", json!(format!("on=discord:{FINANCE} big=50000")))],
    )
    .await;
    assert!(kit.starts_with("The starter kit expense-votes is installed"), "{kit}");
    for who in ["bob", "carol"] {
        let granted =
            said(fake, ALICE, &["role", "grant"], vec![("role", json!("voter")), ("member", json!(who))]).await;
        assert_eq!(granted, format!("{who} has the role voter now."));
    }
    url
}

/// Posts a webhook body to Polity as Open Collective does; answers the status.
async fn deliver(url: &str, body: &Value) -> u16 {
    reqwest::Client::new().post(url).json(body).send().await.unwrap().status().as_u16()
}

/// Whether expense `id` has `status` and a comment.
fn decided(s: &polity_tests::opencollective::State, id: i64, status: &str) -> bool {
    s.expense(id).is_some_and(|e| e.status == status && !e.comments.is_empty())
}

/// The `collective.expense.created` activity of expense `id`.
fn created(oc: &FakeOpenCollective, id: i64) -> i64 {
    oc.activities(id).iter().find(|a| a.kind == "collective.expense.created").unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expense_is_voted_on_discord_approved_or_rejected_on_open_collective_and_commented_on() {
    let fake = discord().await;
    let oc = FakeOpenCollective::start().await;
    let db = TestDb::sqlite("founding_expenses");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;
    let hook = connect_collective(&fake, &oc).await;
    polity.governs(COLLECTIVE).await;
    let tested = said(&fake, ALICE, &["integration", "test"], vec![("name", json!("oc"))]).await;
    assert!(tested.contains("an admin of"), "{tested}");

    // Bob submits an expense of 120.00. The webhook's body lies about it: what Open
    // Collective's API says is what is voted on.
    let small = oc.submit_expense(COLLECTIVE, MEMBER, "Conference travel", 12_000, "USD");
    let mut lie = oc.webhook_payload(created(&oc, small));
    lie["data"]["expense"]["amount"] = json!(1);
    lie["data"]["expense"]["description"] = json!("Pizza");
    let without_token = hook.split('?').next().unwrap().to_string();
    assert_eq!(deliver(&without_token, &lie).await, 401, "a delivery without the URL's token");
    assert_eq!(deliver(&hook, &lie).await, 200);
    let vote = message_in(&fake, FINANCE, "the expense's vote", |c| c.starts_with("Proposal #1")).await;
    let text = fake.message(FINANCE, &vote).unwrap().content;
    assert!(text.contains("Conference travel") && !text.contains("Pizza"), "{text}");
    // Open Collective never sends it again, but a replay changes nothing.
    assert_eq!(deliver(&hook, &lie).await, 200);

    // The two voters approve it: approved on Open Collective, with a comment giving the tally.
    fake.user_reacts(BOB, FINANCE, &vote, YES);
    fake.user_reacts(CAROL, FINANCE, &vote, YES);
    until_content(&fake, FINANCE, &vote, |c| c.ends_with("PASSED")).await;
    within("the approval", oc.until(|s| decided(s, small, "APPROVED"))).await;
    let comment = &oc.comments(small)[0].html;
    assert!(comment.contains("Approved by a vote") && comment.contains("2 yes, 0 no"), "{comment}");
    assert!(comment.contains(&format!("https://discord.com/channels/{GUILD}/{FINANCE}/{vote}")), "{comment}");

    // An expense of 600.00 needs two thirds: one yes, one no rejects it.
    let big = oc.submit_expense(COLLECTIVE, MEMBER, "New laptop", 60_000, "USD");
    assert_eq!(deliver(&hook, &oc.webhook_payload(created(&oc, big))).await, 200);
    let vote = message_in(&fake, FINANCE, "the big expense's vote", |c| c.starts_with("Proposal #2")).await;
    fake.user_reacts(BOB, FINANCE, &vote, YES);
    fake.user_reacts(CAROL, FINANCE, &vote, NO);
    until_content(&fake, FINANCE, &vote, |c| c.ends_with("FAILED")).await;
    within("the rejection", oc.until(|s| decided(s, big, "REJECTED"))).await;
    assert!(oc.comments(big)[0].html.contains("needed two thirds"), "{:?}", oc.comments(big));

    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let community = rt.store().communities().await.unwrap()[0].0;
    let p = rt.store().proposal(community, polity_governance::ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.action.data["amount"], json!(12_000), "the amount Open Collective's API gave");
    assert_eq!(
        rt.store().last_proposal_id(community).await.unwrap(),
        Some(polity_governance::ProposalId(2)),
        "the replay opened nothing"
    );
    assert_eq!(oc.count("PolityProcessExpense"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expense_whose_approval_a_crash_interrupted_is_approved_once_after_the_restart() {
    approved_once_after_a_crash(TestDb::sqlite("founding_crash").url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expense_whose_approval_a_crash_interrupted_is_approved_once_after_the_restart_on_postgresql() {
    if let Some(db) = TestDb::postgres("founding_crash") {
        approved_once_after_a_crash(db.url()).await;
    }
}

async fn approved_once_after_a_crash(db: &str) {
    let fake = discord().await;
    let oc = FakeOpenCollective::start().await;
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db, &key).await;
    let hook = connect_collective(&fake, &oc).await;
    polity.governs(COLLECTIVE).await;
    let id = oc.submit_expense(COLLECTIVE, MEMBER, "Hosting", 9_900, "EUR");
    assert_eq!(deliver(&hook, &oc.webhook_payload(created(&oc, id))).await, 200);
    let vote = message_in(&fake, FINANCE, "the expense's vote", |c| c.starts_with("Proposal #1")).await;

    // Open Collective stops answering; the vote passes; Polity dies while it waits.
    oc.set_down(Some(Failure::Hang));
    let asked = oc.count("PolityExpense");
    fake.user_reacts(BOB, FINANCE, &vote, YES);
    fake.user_reacts(CAROL, FINANCE, &vote, YES);
    until_content(&fake, FINANCE, &vote, |c| c.ends_with("PASSED")).await;
    within(
        "the approval to be under way",
        oc.until(|s| s.requests.iter().filter(|r| r.operation == "PolityExpense").count() > asked),
    )
    .await;
    polity.kill();
    oc.set_down(None);

    // It comes back: the approval and the comment are made, once each.
    let polity = Polity::start(&fake, db, &key).await;
    within("the approval after the restart", oc.until(|s| decided(s, id, "APPROVED"))).await;
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let approvals = oc.activities(id).iter().filter(|a| a.kind == "collective.expense.approved").count();
    assert_eq!(approvals, 1, "approved exactly once");
    assert_eq!(oc.comments(id).len(), 1, "commented exactly once");
}

// ---------------------------------------------------------------------------------------------
// Discourse: new topics in a governed category are held and voted on
// ---------------------------------------------------------------------------------------------

const FORUM_POLICY: &str = r#"name = "forum"
kind = "platform"
actions = ["discourse.topic_created"]
filter = "action.category_id == 5"

[vote]
on = "discord:100000000000000003"
voters = "role:steward"
pass = "majority"
closes = "2d"

[fail]
do = [{ action = "discourse.private_message", to = "{{action.username}}", title = "Your topic was not accepted", raw = "The stewards voted against your topic: {{action.title}}." }]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_in_a_governed_category_is_held_voted_on_in_discord_and_recovered_on_pass() {
    use polity_tests::discourse::{ERIN, FRANK, FakeDiscourse, GENERAL as OPEN, PROPOSALS, signature};
    let fake = discord().await;
    let forum = FakeDiscourse::start().await;
    let db = TestDb::sqlite("founding_discourse");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;

    let (url, secret) = connect_forum(&fake, &forum, &mut polity).await;
    let url = url.as_str();
    let tested = said(&fake, ALICE, &["integration", "test"], vec![("name", json!("forum"))]).await;
    assert!(tested.contains("a moderator of"), "{tested}");
    for (words, options) in [
        (
            &["role", "create"][..],
            vec![("role", json!("steward")), ("description", json!("decides the forum's topics"))],
        ),
        (&["role", "grant"][..], vec![("role", json!("steward")), ("member", json!("bob"))]),
        (&["role", "grant"][..], vec![("role", json!("steward")), ("member", json!("carol"))]),
        (&["policy", "install"][..], vec![("name", json!("forum")), ("toml", json!(FORUM_POLICY))]),
    ] {
        let said = said(&fake, ALICE, words, options).await;
        assert!(!said.contains("not") && !said.contains("No "), "{words:?}: {said}");
    }

    // A signature of another secret, or a delivery from another forum, changes nothing.
    let body = br#"{"topic":{"id":9999,"title":"Forged topic here","category_id":5,"created_by":{"username":"erin"}}}"#;
    let post = |sig: String, instance: &str| {
        reqwest::Client::new()
            .post(url)
            .header("x-discourse-instance", instance)
            .header("x-discourse-event-id", "9001")
            .header("x-discourse-event", "topic_created")
            .header("x-discourse-event-type", "topic")
            .header("x-discourse-event-signature", sig)
            .body(body.to_vec())
            .send()
    };
    assert_eq!(post(signature("not the secret", body), &forum.url()).await.unwrap().status(), 401);
    assert_eq!(post(signature(&secret, body), "https://other.example.org").await.unwrap().status(), 202);

    // Erin opens a topic in the governed category: it is deleted at once (after the 429 the
    // forum answers first, waited out) and voted on in #finance; the stewards pass it and it
    // is recovered, title and all.
    forum.fail_next("DELETE", "/t/", 1);
    let (held, a, b) =
        forum.create_topic(ERIN, "Sell the community boat", "The boat costs too much to keep afloat.", PROPOSALS).await;
    assert_eq!((a, b), (200, 200));
    within("the topic held", forum.until(|s| s.topics[&held].deleted.then_some(()))).await;
    let deletes =
        forum.with(|s| s.requests.iter().filter(|(m, p, _)| m == "DELETE" && p == &format!("/t/{held}.json")).count());
    assert_eq!(deletes, 2, "refused once with a 429, then made");
    let vote = message_in(&fake, FINANCE, "the topic's vote", |c| c.starts_with("Proposal #1")).await;
    fake.user_reacts(BOB, FINANCE, &vote, YES);
    fake.user_reacts(CAROL, FINANCE, &vote, YES);
    until_content(&fake, FINANCE, &vote, |c| c.ends_with("PASSED")).await;
    within("the topic recovered", forum.until(|s| (!s.topics[&held].deleted).then_some(()))).await;
    assert_eq!(forum.topic(held).title, "Sell the community boat");

    // A topic elsewhere is not governed.
    let (free, ..) =
        forum.create_topic(ERIN, "Photos from the picnic", "Here are the photos from Sunday's picnic.", OPEN).await;
    // Frank's topic fails: it stays deleted and he is told why in a private message.
    let (refused, ..) = forum
        .create_topic(FRANK, "Paint everything purple", "Every wall should be purple from now on.", PROPOSALS)
        .await;
    let vote = message_in(&fake, FINANCE, "the second vote", |c| c.starts_with("Proposal #2")).await;
    fake.user_reacts(BOB, FINANCE, &vote, NO);
    until_content(&fake, FINANCE, &vote, |c| c.ends_with("FAILED")).await;
    let told = within("Frank's message", forum.until(|s| Some(s.messages_to(FRANK)).filter(|m| !m.is_empty()))).await;
    assert!(told[0].contains("Paint everything purple"), "{told:?}");
    assert!(forum.topic(refused).deleted);
    assert!(!forum.topic(free).deleted);
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let community = rt.store().communities().await.unwrap()[0].0;
    assert_eq!(
        rt.store().last_proposal_id(community).await.unwrap(),
        Some(polity_governance::ProposalId(2)),
        "the forged and foreign deliveries opened nothing"
    );
}

/// The community connects its forum with a moderator's API key, typed into a form, and its
/// webhook is set as the reply says; the webhook's address and secret.
async fn connect_forum(
    fake: &FakeDiscord,
    forum: &polity_tests::discourse::FakeDiscourse,
    polity: &mut Polity,
) -> (String, String) {
    let settings = format!("url={} username=polity poll_secs=1", forum.url());
    let id = fake.slash(
        ALICE,
        GUILD,
        GENERAL,
        &["integration", "add"],
        vec![("platform", json!("discourse")), ("name", json!("forum")), ("settings", json!(settings))],
    );
    let form = within("the key's form", fake.response(&id)).await;
    let custom_id = form.data["custom_id"].as_str().unwrap().to_string();
    let submitted = fake.submit_form(ALICE, GUILD, GENERAL, &custom_id, "secret", polity_tests::discourse::API_KEY);
    let answer = within("the answer to the form", fake.response(&submitted)).await;
    let text = answer.data["content"].as_str().unwrap().to_string();
    assert!(text.starts_with("forum (discourse) is connected."), "{text}");
    let (_, after) = text.split_once("paste the address ").unwrap();
    let (url, after) = after.split_once(" and the secret ").unwrap();
    let secret = after.split_whitespace().next().unwrap().to_string();
    forum.set_hook(url, &secret);
    polity.governs(&polity_discourse::instance_of(&forum.url())).await;
    (url.to_string(), secret)
}

const POLL_POLICY: &str = r#"name = "forum-poll"
kind = "platform"
actions = ["polity.propose"]
notify = 'polity.start_process("discourse.poll", #{ title: "The forum decides: " + action.text, text: action.text, options: ["agree", "disagree"] })'
check = """
if proposal.process == () || proposal.process.status != "closed" { return (); }
if proposal.process.outcome.agree > proposal.process.outcome.disagree { "passed" } else { "failed" }
"""
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discourse_poll_decides_a_proposal_made_on_discord() {
    use polity_tests::discourse::{ERIN, FRANK, FakeDiscourse, MODERATOR};
    let fake = discord().await;
    let forum = FakeDiscourse::start().await;
    let db = TestDb::sqlite("founding_discourse_poll");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;
    connect_forum(&fake, &forum, &mut polity).await;
    for (words, options) in [
        (
            &["permission", "grant"][..],
            vec![("role", json!("everyone")), ("permission", json!("propose")), ("actions", json!("*"))],
        ),
        (&["policy", "install"][..], vec![("name", json!("forum-poll")), ("toml", json!(POLL_POLICY))]),
    ] {
        let said = said(&fake, ALICE, words, options).await;
        assert!(!said.contains("not") && !said.contains("No "), "{words:?}: {said}");
    }
    // Bob proposes on Discord: the forum's poll decides it. The first start's answer is
    // lost: the retry finds the poll it made rather than making a second.
    forum.lose_next("POST", "/posts.json");
    let opened = said(&fake, BOB, &["propose"], vec![("text", json!("Adopt the new code of conduct"))]).await;
    assert!(opened.starts_with("Proposal #1 is open"), "{opened}");
    let post = within("the poll posted", forum.poll_post("Adopt the new code of conduct")).await;
    assert_eq!(forum.with(|s| s.posts.iter().find(|p| p.id == post).unwrap().user.clone()), MODERATOR);
    let looked = |s: &polity_tests::discourse::State| {
        s.requests.iter().any(|(m, p, _)| m == "GET" && p == "/posts.json").then_some(())
    };
    within("the retried start looking for its poll", forum.until(looked)).await;
    forum.vote_poll(ERIN, post, "agree");
    forum.vote_poll(FRANK, post, "disagree");
    forum.vote_poll(FRANK, post, "agree");
    // Still open: nothing is decided, however the votes stand.
    let reads = |s: &polity_tests::discourse::State| {
        s.requests.iter().filter(|(m, p, _)| m == "GET" && p == &format!("/posts/{post}.json")).count()
    };
    let before = forum.with(reads);
    within("the poll read again", forum.until(|s| (reads(s) > before).then_some(()))).await;
    forum.close_poll(post);
    let rt = loop {
        let state = Store::connect(db.url()).await.unwrap();
        let community = state.communities().await.unwrap()[0].0;
        let p = state.proposal(community, polity_governance::ProposalId(1)).await.unwrap().unwrap();
        if p.state != ProposalState::Proposed {
            assert_eq!(p.state, ProposalState::Passed);
            let process = p.process.unwrap();
            assert_eq!((process.status.as_str(), process.outcome["agree"].as_u64()), ("closed", Some(2)));
            assert_eq!(process.outcome["post_id"].as_u64(), Some(post));
            break polity.stop().await;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let polls = forum.with(|s| s.posts.iter().filter(|p| p.poll.is_some()).count());
    assert_eq!(polls, 1, "the retried start made no second poll");
}

/// The community connects its Loomio group with the API key of the user Polity acts as,
/// typed into a form; the webhook's address (with its token) as the reply gives it. Its
/// polls are read every hour: sooner only when a webhook names them.
async fn connect_loomio(fake: &FakeDiscord, loomio: &polity_tests::loomio::FakeLoomio, polity: &mut Polity) -> String {
    use polity_tests::loomio::{API_KEY, GROUP};
    let settings = format!("url={} group_id={GROUP} poll_secs=3600", loomio.url());
    let id = fake.slash(
        ALICE,
        GUILD,
        GENERAL,
        &["integration", "add"],
        vec![("platform", json!("loomio")), ("name", json!("loomio")), ("settings", json!(settings))],
    );
    let form = within("the key's form", fake.response(&id)).await;
    let custom_id = form.data["custom_id"].as_str().unwrap().to_string();
    let submitted = fake.submit_form(ALICE, GUILD, GENERAL, &custom_id, "secret", API_KEY);
    let answer = within("the answer to the form", fake.response(&submitted)).await;
    let text = answer.data["content"].as_str().unwrap().to_string();
    assert!(text.starts_with("loomio (loomio) is connected."), "{text}");
    assert!(!text.contains(API_KEY));
    let url = text.lines().last().unwrap().to_string();
    assert!(url.contains("/hooks/loomio/") && url.contains("?token="), "{text}");
    loomio.set_hook(&url);
    polity.governs(&polity_loomio::space_of(&loomio.url(), GROUP)).await;
    url
}

const LOOMIO_POLICY: &str = r#"name = "loomio-decides"
kind = "platform"
actions = ["polity.propose"]
notify = 'polity.start_process("loomio.poll", #{ title: "Decide: " + action.text, details: action.text, days: 3 })'
check = """
if proposal.process == () || proposal.process.status != "closed" { return (); }
if proposal.process.outcome.agree > proposal.process.outcome.disagree { "passed" } else { "failed" }
"""
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loomio_poll_started_by_a_policy_decides_a_proposal_and_a_webhook_that_lies_is_not_believed() {
    use polity_tests::loomio::{ERIN, FRANK, FakeLoomio, GROUP, POLITY_USER};
    let fake = discord().await;
    let loomio = FakeLoomio::start().await;
    let db = TestDb::sqlite("founding_loomio_poll");
    let key = SecretKey::generate();
    let mut polity = Polity::start(&fake, db.url(), &key).await;
    let hook = connect_loomio(&fake, &loomio, &mut polity).await;
    for (words, options) in [
        (
            &["permission", "grant"][..],
            vec![("role", json!("everyone")), ("permission", json!("propose")), ("actions", json!("*"))],
        ),
        (&["policy", "install"][..], vec![("name", json!("loomio-decides")), ("toml", json!(LOOMIO_POLICY))]),
    ] {
        let said = said(&fake, ALICE, words, options).await;
        assert!(!said.contains("not") && !said.contains("No "), "{words:?}: {said}");
    }
    // Bob proposes on Discord: the group's poll decides it. The first start's answer is
    // lost; the retry finds the poll it made.
    loomio.lose_next("POST", "/api/b2/polls");
    let opened = said(&fake, BOB, &["propose"], vec![("text", json!("Move the meetup to Thursdays"))]).await;
    assert!(opened.starts_with("Proposal #1 is open"), "{opened}");
    let poll = within("the poll made", loomio.poll_with("Move the meetup to Thursdays")).await;
    let made = loomio.poll(&poll);
    assert_eq!((made.group_id, made.author_id, made.poll_type.as_str()), (GROUP, POLITY_USER, "proposal"));
    assert!(made.closing_at.is_some(), "a poll without a closing time takes no votes");
    let looked = |s: &polity_tests::loomio::State| {
        s.requests
            .iter()
            .any(|(m, p, q, _)| m == "GET" && p == "/api/b2/polls" && q.contains("status=all"))
            .then_some(())
    };
    within("the retried start looking for its poll", loomio.until(looked)).await;
    loomio.vote(ERIN, &poll, "agree");
    loomio.vote(FRANK, &poll, "disagree");
    loomio.vote(FRANK, &poll, "agree");

    // A delivery that says the poll closed, while Loomio shows it open, decides nothing.
    let reads = |s: &polity_tests::loomio::State| {
        s.requests.iter().filter(|(m, p, _, _)| m == "GET" && p == &format!("/api/b2/polls/{}", made.id)).count()
    };
    let lie = format!("Polity closed [the poll]({}): agree 0, disagree 9", loomio.poll_url(&poll));
    assert_eq!(loomio.deliver(&lie).await, 200);
    let before = loomio.with(reads);
    within("the poll read again", loomio.until(|s| (reads(s) > before).then_some(()))).await;
    let store = Store::connect(db.url()).await.unwrap();
    let community = store.communities().await.unwrap()[0].0;
    let p = store.proposal(community, polity_governance::ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.state, ProposalState::Proposed, "the webhook's word is not taken");
    // A delivery that names another group's poll, or nothing Loomio knows, records nothing.
    assert_eq!(loomio.deliver(&format!("see {}", loomio.poll_url("Nope1234"))).await, 202);
    assert_eq!(loomio.deliver("a new discussion started").await, 202);
    // A delivery with a forged token is refused.
    let (address, _) = hook.split_once("?token=").unwrap();
    let forged = reqwest::Client::new()
        .post(format!("{address}?token=0000000000000000"))
        .json(&json!({ "text": format!("closed {}", loomio.poll_url(&poll)) }))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // Loomio closes the poll: its webhook has it read at once, and it decides.
    loomio.close(&poll);
    assert_eq!(loomio.deliver(&format!("The poll [Decide]({}) has closed", loomio.poll_url(&poll))).await, 200);
    let rt = loop {
        let p = store.proposal(community, polity_governance::ProposalId(1)).await.unwrap().unwrap();
        if p.state != ProposalState::Proposed {
            assert_eq!(p.state, ProposalState::Passed);
            let process = p.process.unwrap();
            assert_eq!(process.status, "closed");
            assert_eq!((process.outcome["agree"].as_u64(), process.outcome["disagree"].as_u64()), (Some(2), Some(0)));
            assert_eq!(process.outcome["key"].as_str(), Some(poll.as_str()));
            break polity.stop().await;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert_eq!(loomio.with(|s| s.polls.len()), 1, "the retried start made no second poll");
}
