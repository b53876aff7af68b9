#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Polity on Reddit: the adapter against the fake Reddit as the host uses it, and end to
//! end through `polity run`'s loop (a community's Reddit connection, its polls, the
//! dispatcher), a subreddit's new posts removed, voted on by `+1` / `-1` replies, and
//! approved on pass.

use chrono::TimeDelta;
use polity::http::Webhooks;
use polity::platforms::Registry;
use polity::ports::CommunityPorts;
use polity::run::{Host, HttpHost, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::store::Store;
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::platform::{PlatformError, Request};
use polity_governance::{CommunityId, ProposalState};
use polity_port::{Adapter, Incoming, Start, TestFailure};
use polity_reddit::RedditAdapter;
use polity_tests::db::TestDb;
use polity_tests::reddit::{
    BOT, CLIENT_ID, CLIENT_SECRET, ERIN, FRANK, FakeReddit, MOD, REFRESH_TOKEN, STRANGER, SUBREDDIT,
};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn config(reddit: &FakeReddit) -> Value {
    json!({
        "subreddit": SUBREDDIT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "username": BOT,
        "credential": REFRESH_TOKEN, "auth_url": reddit.url(), "api_url": reddit.url(), "poll_secs": 1,
    })
}

async fn connect(config: Value) -> (Box<dyn polity_port::Connection>, mpsc::Receiver<Incoming>) {
    let (events, incoming) = mpsc::channel(16);
    let connection = RedditAdapter.start(config, Start::new("rd", events)).await.unwrap();
    (connection, incoming)
}

#[tokio::test]
async fn a_connection_hands_over_the_subreddits_moderators_and_approved_users_and_polls_without_replaying_the_past() {
    let reddit = FakeReddit::start().await;
    let old = reddit.submit(STRANGER, "Before Polity came", "old news");
    let (connection, mut incoming) = connect(config(&reddit)).await;
    let Some(Incoming::Space(space)) = incoming.recv().await else { panic!("no space") };
    assert_eq!((space.space.as_str(), space.owner.1.as_str()), (SUBREDDIT, BOT));
    let names: Vec<&str> = space.members.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, [MOD, ERIN, FRANK], "Polity's own account is no member");

    let poller = connection.poller().unwrap();
    let first = poller.poll("posts", None).await.unwrap();
    assert!(first.events.is_empty(), "connecting does not replay {old}");
    let cursor = first.cursor.unwrap();
    let new = reddit.submit(STRANGER, "After Polity came", "news");
    let second = poller.poll("posts", Some(cursor.clone())).await.unwrap();
    let keys: Vec<&str> = second.events.iter().map(|e| e.dedup_key.as_str()).collect();
    assert_eq!(keys, [new.as_str()]);
    let polity_governance::io::Inbound::Action { action } = &second.events[0].input else { panic!("not an action") };
    assert_eq!(action.kind.as_str(), "reddit.post_submitted");
    assert_eq!(action.data.get("title").and_then(Value::as_str), Some("After Polity came"));
    assert_eq!(second.events[0].from.as_ref().map(|(_, n)| n.as_str()), Some(STRANGER));
    // The same cursor again (a crash before it was stored) reads the same post: the host's
    // inbox keeps it once by its key.
    let again = poller.poll("posts", Some(cursor)).await.unwrap();
    assert_eq!(again.events[0].dedup_key, new);
    let reply = reddit.reply(ERIN, &new, "Nice");
    let comments = poller.poll("comments", None).await.unwrap();
    let comments = poller.poll("comments", comments.cursor).await.unwrap();
    assert!(comments.events.is_empty(), "the first comments poll set its baseline after {reply}");

    // A post removed already (AutoModerator, another moderator) is not Polity's to hold.
    let cursor = again.cursor.clone();
    let filtered = reddit.submit(STRANGER, "Filtered", "spam?");
    reddit.change(|s| s.things.iter_mut().filter(|t| t.name == filtered).for_each(|t| t.removed = true));
    let later = poller.poll("posts", cursor).await.unwrap();
    assert!(later.events.iter().all(|e| e.dedup_key != filtered), "a removed post is not taken");

    // The moderation queue: what joins it is news, whenever it was posted; again with more
    // reports.
    let queue = poller.poll("modqueue", None).await.unwrap();
    assert!(queue.events.is_empty());
    reddit.change(|s| s.things.iter_mut().filter(|t| t.name == old).for_each(|t| t.reports = 1));
    let queue = poller.poll("modqueue", queue.cursor).await.unwrap();
    let keys: Vec<&str> = queue.events.iter().map(|e| e.dedup_key.as_str()).collect();
    assert_eq!(keys, [format!("modqueue:{old}:1")], "an old post reported now");
    let same = poller.poll("modqueue", queue.cursor.clone()).await.unwrap();
    assert!(same.events.is_empty());
    reddit.change(|s| s.things.iter_mut().filter(|t| t.name == old).for_each(|t| t.reports = 2));
    let more = poller.poll("modqueue", queue.cursor).await.unwrap();
    assert_eq!(more.events.len(), 1);
    assert_eq!(more.events[0].dedup_key, format!("modqueue:{old}:2"));
}

#[tokio::test]
async fn an_expired_access_token_is_replaced_and_the_call_made_once_more() {
    let reddit = FakeReddit::start().await;
    let (connection, _incoming) = connect(config(&reddit)).await;
    assert_eq!(reddit.with(|s| s.tokens_issued), 1);
    let platform = connection.scopes().platform(&[SUBREDDIT.into()]);
    let post = reddit.submit(STRANGER, "Lock me", "please");
    reddit.expire_tokens();
    let mut params = serde_json::Map::new();
    params.insert("id".into(), json!(post));
    let effect = polity_governance::io::Effect::Call {
        proposal: None,
        name: polity_governance::action::ActionType::new("reddit.lock").unwrap(),
        params,
    };
    platform.perform(Request { key: 1, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap();
    assert!(reddit.thing(&post).locked);
    // A post in another subreddit the account moderates is not this community's to touch.
    let elsewhere = reddit.submit_elsewhere(STRANGER, "othersub", "Not yours");
    let mut params = serde_json::Map::new();
    params.insert("id".into(), json!(elsewhere));
    let effect = polity_governance::io::Effect::Call {
        proposal: None,
        name: polity_governance::action::ActionType::new("reddit.lock").unwrap(),
        params,
    };
    let e =
        platform.perform(Request { key: 2, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap_err();
    assert!(matches!(&e, PlatformError::Permanent(why) if why.contains("r/othersub")), "{e:?}");
    assert!(!reddit.thing(&elsewhere).locked);
    assert_eq!(reddit.with(|s| s.tokens_issued), 2, "one new token");
    assert_eq!(
        reddit.calls("GET", "/api/info").len(),
        3,
        "the first refused with the old token, made again with the new"
    );
    assert_eq!(reddit.calls("POST", "/api/lock").len(), 1, "one lock: the other post is elsewhere");
}

#[tokio::test]
async fn the_integration_test_says_what_is_wrong_and_the_rate_limit_holds_every_call() {
    let reddit = FakeReddit::start().await;
    let ok = RedditAdapter.test(config(&reddit), Default::default()).await.unwrap();
    assert!(ok.contains("polity_bot moderates r/tidepool"), "{ok}");
    let mut bad_secret = config(&reddit);
    bad_secret["client_secret"] = json!("wrong");
    assert!(matches!(RedditAdapter.test(bad_secret, Default::default()).await, Err(TestFailure::BadCredentials(_))));
    let mut bad_token = config(&reddit);
    bad_token["credential"] = json!("revoked");
    let e = RedditAdapter.test(bad_token, Default::default()).await.unwrap_err();
    assert!(matches!(&e, TestFailure::BadCredentials(why) if why.contains("refresh token")), "{e:?}");
    let mut bad_password = config(&reddit);
    bad_password["grant"] = json!("password");
    bad_password["credential"] = json!("not-hunter2");
    let e = RedditAdapter.test(bad_password, Default::default()).await.unwrap_err();
    assert!(
        matches!(&e, TestFailure::BadCredentials(why) if why.contains("refused")),
        "a 200 with an error is a refusal: {e:?}"
    );
    let mut password = config(&reddit);
    password["grant"] = json!("password");
    password["credential"] = json!("hunter2");
    assert!(RedditAdapter.test(password, Default::default()).await.is_ok());
    reddit.change(|s| s.moderators.retain(|m| m != BOT));
    let e = RedditAdapter.test(config(&reddit), Default::default()).await.unwrap_err();
    assert!(matches!(&e, TestFailure::MissingPermission(why) if why.contains("no moderator")), "{e:?}");
    reddit.change(|s| s.moderators.push(BOT.into()));

    // The window's budget spent: nothing more is sent until it resets.
    let (connection, _incoming) = connect(config(&reddit)).await;
    let poller = connection.poller().unwrap();
    reddit.use_up(polity_tests::reddit::BUDGET - 1);
    poller.poll("posts", None).await.unwrap();
    let sent = reddit.with(|s| s.requests.len());
    let held = poller.poll("posts", None).await.unwrap_err();
    assert!(matches!(held, PlatformError::RateLimited { retry_after: Some(d) } if d.as_secs() > 500), "{held:?}");
    assert_eq!(reddit.with(|s| s.requests.len()), sent, "nothing sent while held");
}

#[tokio::test]
async fn a_vote_is_each_accounts_latest_reply_under_polity_comment() {
    let reddit = FakeReddit::start().await;
    let (connection, _incoming) = connect(config(&reddit)).await;
    let platform = connection.scopes().platform(&[SUBREDDIT.into()]);
    let post = reddit.submit(STRANGER, "A post to vote on", "text");
    let vote = polity_governance::io::Effect::PostVote {
        proposal: polity_governance::ProposalId(1),
        place: Place::new("reddit", post.as_str()),
        text: "Proposal #1: keep this post?".into(),
        options: ["👍", "👎", "🤷"]
            .into_iter()
            .map(|e| polity_governance::io::VoteOption { emoji: e.into(), label: e.into(), press: None })
            .collect(),
    };
    // Its answer lost: the retry finds the comment it made.
    reddit.lose_next("POST", "/api/comment");
    let lost = platform.perform(Request { key: 9, retried: false, effect: &vote, vote_messages: &[] }).await;
    assert!(matches!(lost, Err(PlatformError::Transient(_))), "{lost:?}");
    let done = platform.perform(Request { key: 9, retried: true, effect: &vote, vote_messages: &[] }).await.unwrap();
    let message: MessageRef = done.message.unwrap();
    assert_eq!(message.channel.as_str(), post);
    assert_eq!(reddit.with(|s| s.things.iter().filter(|t| t.author == BOT).count()), 1, "one comment");
    assert!(reddit.thing(&message.message).body.contains("Reply `+1`"));

    reddit.reply(ERIN, &message.message, "+1");
    reddit.reply(FRANK, &message.message, "-1, too soon");
    reddit.reply(FRANK, &message.message, "changed my mind: +1");
    reddit.reply(MOD, &message.message, "+1 -1");
    reddit.reply(BOT, &message.message, "+1");
    let emoji: Vec<String> = ["👍", "👎", "🤷"].into_iter().map(String::from).collect();
    let read = platform.read_reactions(&message, &emoji).await.unwrap();
    let who = |e: &str| -> Vec<String> {
        let mut names: Vec<String> =
            read.iter().find(|r| r.emoji == e).unwrap().users.iter().map(|(_, n)| n.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(who("👍"), [ERIN, FRANK], "Frank's latest reply counts; two votes in one count for none");
    assert!(who("👎").is_empty());
    assert_eq!(read[0].users[0].0, AccountRef::new("reddit", ERIN));
}

/// Runs `line` as maria on the console in `community`, with Polity stopped; a command that
/// asks for a secret is given `secret`.
async fn on_console(rt: &mut Runtime, community: CommunityId, line: &str, secret: Option<&str>) -> String {
    let inv = polity_commands::Invocation {
        invoker: AccountRef::new("console", "maria"),
        place: Place::new("console", "general"),
        id: line.into(),
    };
    let mut ports = CommunityPorts::new(rt, community, "console", line, chrono::Utc::now());
    let reply = polity_commands::handle(&mut ports, &inv, line).await.unwrap();
    match (reply.secret_prompt, secret) {
        (Some(prompt), Some(secret)) => {
            polity_commands::integration::add_with_secret(&mut ports, &inv, prompt, secret).await.unwrap().text
        }
        _ => reply.text,
    }
}

const POSTS: &str = r#"name = "posts"
kind = "platform"
actions = ["reddit.post_submitted"]

[vote]
voters = "role:approved"
pass = "majority"
closes = "2d"

[fail]
do = [{ action = "reddit.comment", thing_id = "{{action.fullname}}", text = "The approved users voted against this post, so it stays removed." }]
"#;

/// Polity's `run` with no bot of its own: the Reddit connection is the community's.
struct Polity {
    task: JoinHandle<anyhow::Result<Runtime>>,
    stop: oneshot::Sender<()>,
}

impl Polity {
    async fn start(db: &str, key: &str) -> Self {
        let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
        let (notices, _) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let host = Host {
                bots: Vec::new(),
                registry: Registry::default(),
                http: Some(HttpHost { listener, webhooks: Webhooks::new() }),
            };
            run_host(store, host, pacing, &SystemClock, shutdown, notices).await
        });
        Self { task, stop }
    }

    async fn stop(self) -> Runtime {
        self.stop.send(()).unwrap();
        within("Polity to stop", self.task).await.unwrap().unwrap()
    }
}

async fn members_admitted(db: &str, community: CommunityId) {
    let store = Store::connect(db).await.unwrap();
    within("the approved users to be members", async {
        loop {
            if let Ok(c) = store.load_community(community).await
                && [ERIN, FRANK].iter().all(|who| c.members.values().any(|m| m.name == *who))
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_post_is_removed_voted_on_by_replies_and_approved_and_a_restart_misses_and_repeats_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let reddit = FakeReddit::start().await;
    // Reddit hands out a new refresh token with each access token, the old one dead: every
    // restart below works only if the rotated one was stored.
    reddit.change(|s| s.rotate = true);
    let db = TestDb::sqlite("reddit_e2e");
    let key = polity::store::SecretKey::generate();
    let c = {
        let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(&key));
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        let c = rt.ensure_community("Tidepool", "maria", AccountRef::new("console", "maria")).await.unwrap();
        let add = format!(
            "/integration add reddit rd subreddit=r/Tidepool client_id={CLIENT_ID} username={BOT} poll_secs=1 auth_url={0} api_url={0}",
            reddit.url()
        );
        let secret = format!("{CLIENT_SECRET} {REFRESH_TOKEN}");
        let connected = on_console(&mut rt, c, &add, Some(&secret)).await;
        assert!(connected.starts_with("rd (reddit) is connected."), "{connected}");
        assert!(!connected.contains(REFRESH_TOKEN) && !connected.contains(CLIENT_SECRET));
        for line in
            ["/role create approved votes on posts", &format!("/policy install posts {}", POSTS.replace('\n', "\\n"))]
        {
            let said = on_console(&mut rt, c, line, None).await;
            assert!(!said.contains("not"), "{line}: {said}");
        }
        c
    };
    // A first run: the approved users become members, and the polls take their baselines.
    let polity = Polity::start(db.url(), &key).await;
    members_admitted(db.url(), c).await;
    let polled =
        |s: &polity_tests::reddit::State| s.requests.iter().any(|(m, p, _)| m == "GET" && p == "/r/tidepool/new");
    within("the first poll", reddit.until(|s| polled(s).then_some(()))).await;
    polity.stop().await;
    {
        let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(&key));
        let mut rt = Runtime::open(store).await.unwrap();
        for who in [ERIN, FRANK] {
            let said = on_console(&mut rt, c, &format!("/role grant approved {who}"), None).await;
            assert_eq!(said, format!("{who} has the role approved now."));
        }
    }

    // While Polity is away, two posts come in: the restart misses neither.
    let good = reddit.submit(STRANGER, "Tide tables for December", "Here they are.");
    let bad = reddit.submit(STRANGER, "Buy my boat", "Cheap!");
    let polity = Polity::start(db.url(), &key).await;
    let good_vote = within("the vote under the first post", reddit.bot_comment(&good, "Reply `+1`")).await;
    let bad_vote = within("the vote under the second post", reddit.bot_comment(&bad, "Reply `+1`")).await;
    for post in [&good, &bad] {
        // Removing and commenting are separate lanes: either may come first.
        within("the post held", reddit.until(|s| s.thing(post).is_some_and(|t| t.removed).then_some(()))).await;
        assert!(!reddit.thing(post).spam, "held while voted on, and not as spam");
    }
    // The access token expires meanwhile: a new one is fetched.
    reddit.expire_tokens();
    // Approving waits out a 429 on its own.
    reddit.fail_next("POST", "/api/approve", 2);
    reddit.reply(ERIN, &good_vote, "+1");
    reddit.reply(FRANK, &good_vote, "-1");
    reddit.reply(FRANK, &good_vote, "+1 after all");
    reddit.reply(ERIN, &bad_vote, "-1");
    reddit.reply(FRANK, &bad_vote, "-1");
    reddit.reply(STRANGER, &bad_vote, "+1");
    within("the first post approved", reddit.until(|s| s.thing(&good).is_some_and(|t| t.approved).then_some(()))).await;
    let told = |s: &polity_tests::reddit::State| {
        s.things.iter().any(|t| t.author == BOT && t.parent_id == bad && t.body.contains("stays removed")).then_some(())
    };
    within("the second post's author told why", reddit.until(told)).await;
    within(
        "the vote edited with its outcome",
        reddit.until(|s| s.thing(&good_vote).is_some_and(|t| t.body.contains("PASSED")).then_some(())),
    )
    .await;
    assert!(reddit.thing(&bad).removed);
    assert!(reddit.with(|s| s.tokens_issued) >= 3, "a token for each run, and one after the expiry");
    let rt = polity.stop().await;
    let proposals = rt.store().load_proposals(c, false).await.unwrap();
    let states: Vec<ProposalState> = proposals.iter().map(|p| p.state).collect();
    assert_eq!(states, [ProposalState::Passed, ProposalState::Failed]);
    drop(rt);

    // Another restart: nothing is taken again. The community's Loomio group decides a
    // proposal meanwhile, while Reddit holds every call of the connection for ten minutes.
    let loomio = polity_tests::loomio::FakeLoomio::start().await;
    {
        let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(&key));
        let mut rt = Runtime::open(store).await.unwrap();
        let add = format!(
            "/integration add loomio lm group_id={} url={} poll_secs=1",
            polity_tests::loomio::GROUP,
            loomio.url()
        );
        let connected = on_console(&mut rt, c, &add, Some(polity_tests::loomio::API_KEY)).await;
        assert!(connected.starts_with("lm (loomio) is connected."), "{connected}");
        for line in [
            "/permission grant everyone propose *".to_string(),
            format!("/policy install decide {}", LOOMIO_DECIDES.replace('\n', "\\n")),
            "/propose Move the meetup to Thursdays".to_string(),
        ] {
            let said = on_console(&mut rt, c, &line, None).await;
            assert!(!said.contains("not") && !said.contains("No "), "{line}: {said}");
        }
    }
    reddit.fail_next("GET", "/r/tidepool/new", 600);
    let polity = Polity::start(db.url(), &key).await;
    let held = |s: &polity_tests::reddit::State| {
        s.requests.iter().filter(|(m, p, _)| m == "GET" && p == "/r/tidepool/new").count()
    };
    let before = reddit.with(held);
    within("Reddit's 429", reddit.until(|s| (held(s) > before).then_some(()))).await;
    let seen = reddit.with(|s| s.requests.len());
    let poll = within("the Loomio poll", loomio.poll_with("Move the meetup to Thursdays")).await;
    loomio.vote(polity_tests::loomio::ERIN, &poll, "agree");
    loomio.close(&poll);
    let store = Store::connect(db.url()).await.unwrap();
    within("the Loomio poll to decide", async {
        loop {
            let open = store.load_proposals(c, false).await.unwrap();
            if open.iter().any(|p| p.action.kind.as_str() == "polity.propose" && p.state == ProposalState::Passed) {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    // Held: nothing sent since but what was already on its way when the 429 came (the two
    // other polls run beside the one it answered), and never the limited listing again.
    let after = reddit.with(|s| s.requests.len());
    assert!(after <= seen + 2, "Reddit's calls held while Loomio's went on: {} more", after - seen);
    assert_eq!(reddit.with(held), before + 1, "the limited listing not asked for again");
    let rt = polity.stop().await;
    let reddit_proposals = rt
        .store()
        .load_proposals(c, false)
        .await
        .unwrap()
        .iter()
        .filter(|p| p.action.kind.as_str() == "reddit.post_submitted")
        .count();
    assert_eq!(reddit_proposals, 2, "no post taken twice");
    assert_eq!(reddit.calls("POST", "/api/approve").len(), 2, "approved once (after one 429)");
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

const LOOMIO_DECIDES: &str = r#"name = "decide"
kind = "platform"
actions = ["polity.propose"]
notify = 'polity.start_process("loomio.poll", #{ title: "Decide: " + action.text, details: action.text, days: 3 })'
check = """
if proposal.process == () || proposal.process.status != "closed" { return (); }
if proposal.process.outcome.agree > proposal.process.outcome.disagree { "passed" } else { "failed" }
"""
"#;
