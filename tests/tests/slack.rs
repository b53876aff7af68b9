#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Polity on Slack, end to end: `polity run`'s loop (store, runtime, slack-morphism's Socket
//! Mode and Web API clients) against the fake Slack, driven as Slack's users would drive it:
//! the `/polity` slash command, reactions (skin tones, changed choices), buttons, and the
//! HTTP Events API signed as Slack signs it.

use chrono::TimeDelta;
use polity::platforms::Registry;
use polity::run::{Bot, Host, HttpHost, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::spaces::Notice;
use polity::store::Store;
use polity_governance::CommunityId;
use polity_slack::SlackAdapter;
use polity_tests::db::TestDb;
use polity_tests::slack::{
    ADMIN, ADMIN_USER_TOKEN, APP_TOKEN, BOT_TOKEN, BOT_USER, FakeSlack, GENERAL, MEMBER, OTHER, RANDOM, SIGNING_SECRET,
    TEAM, User, signed_headers,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A guard against a hang: the tests wait on events, never on time.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn slack() -> FakeSlack {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    FakeSlack::start().await
}

/// Polity's `run` loop on its own task, pointed at the fake.
struct Polity {
    task: JoinHandle<anyhow::Result<Runtime>>,
    stop: oneshot::Sender<()>,
    notices: mpsc::UnboundedReceiver<Notice>,
    /// Where its HTTP server listens, when it runs one.
    http: Option<String>,
}

impl Polity {
    /// Starts Polity on `db` with `config` for `[platforms.slack]`, and waits until it governs
    /// the workspace.
    async fn start(db: &str, config: Value, http: bool) -> Self {
        let polity = Self::launch(db, config, http, None).await;
        polity.governing(TEAM).await
    }

    /// Waits until Polity governs the workspace `team`.
    async fn governing(mut self, team: &str) -> Self {
        match within("Polity to govern the workspace", self.notices.recv()).await.unwrap() {
            Notice::Governing { space, .. } if space == team => {}
            other => panic!("unexpected notice: {other:?}"),
        }
        self
    }

    /// Starts Polity on `db` with `config` for `[platforms.slack]` (and `key` to encrypt
    /// secrets with), without waiting for any workspace.
    async fn launch(db: &str, config: Value, http: bool, key: Option<&str>) -> Self {
        let store = Store::connect(db).await.unwrap().with_secret_key(key);
        store.migrate().await.unwrap();
        let bot = Bot::new(Arc::new(SlackAdapter), config);
        let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (listener, address) = if http {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = format!("http://{}", listener.local_addr().unwrap());
            (Some(listener), Some(address))
        } else {
            (None, None)
        };
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let http = listener.map(|listener| HttpHost { listener, webhooks: polity::http::Webhooks::new() });
            let host = Host { bots: vec![bot], registry: Registry::default(), http };
            run_host(store, host, pacing, &SystemClock, shutdown, notices_tx).await
        });
        Self { task, stop, notices, http: address }
    }

    async fn stop(self) -> Runtime {
        drop(self.notices);
        self.stop.send(()).unwrap();
        within("Polity to stop", self.task).await.unwrap().unwrap()
    }
}

fn socket_mode(fake: &FakeSlack) -> Value {
    json!({ "bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "api_url": fake.api_url() })
}

/// Runs `/polity WORDS` as `user` in #general and answers the text of its answer, which
/// comes through the command's `response_url`.
async fn said(fake: &FakeSlack, user: &str, words: &str) -> String {
    let before = fake.responses().len();
    let envelope = fake.slash(user, GENERAL, "/polity", words).await;
    // Acknowledged at once, with no payload: the answer follows.
    let ack = within("the command's acknowledgement", fake.ack_of(&envelope)).await;
    assert_eq!(ack["payload"], Value::Null, "{ack}");
    let responses = within(&format!("the answer to /polity {words}"), fake.wait_responses(before + 1)).await;
    let (_, answer) = &responses[before];
    answer["text"].as_str().unwrap().to_string()
}

/// The bot's message in #general whose text contains `part`, once posted: its ts.
async fn message_with(fake: &FakeSlack, part: &str) -> String {
    message_in(fake, GENERAL, part).await
}

/// The bot's message in `channel` whose text contains `part`, once posted: its ts.
async fn message_in(fake: &FakeSlack, channel: &str, part: &str) -> String {
    within(
        &format!("a message with \"{part}\""),
        fake.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == channel && m.user == BOT_USER && m.text.contains(part))
                .map(|m| m.ts.clone())
        }),
    )
    .await
}

/// Waits until the message `ts` in #general says something `pred` likes; its text.
async fn until_text(fake: &FakeSlack, ts: &str, pred: impl Fn(&str) -> bool) -> String {
    until_text_in(fake, GENERAL, ts, pred).await
}

async fn until_text_in(fake: &FakeSlack, channel: &str, ts: &str, pred: impl Fn(&str) -> bool) -> String {
    within(
        "the vote message to change",
        fake.until(|s| {
            s.messages.iter().find(|m| m.channel == channel && m.ts == ts).map(|m| m.text.clone()).filter(|t| pred(t))
        }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_opens_a_proposal_and_reactions_pass_it() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_pass");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;

    // The workspace's owner is the community's admin; its other members are members.
    let me = said(&fake, ADMIN, "whoami").await;
    assert!(me.starts_with("You are Alice, an admin."), "{me}");
    let installed = said(&fake, ADMIN, "kit install direct-democracy").await;
    assert!(installed.starts_with("The starter kit direct-democracy is installed"), "{installed}");

    let opened = said(&fake, MEMBER, "propose Buy a new server").await;
    assert_eq!(opened, "Proposal #1 is open, under \"Majority of members\".");
    let vote = message_with(&fake, "Proposal #1").await;
    let text = until_text(&fake, &vote, |t| t.contains("(0 of 3 voted)")).await;
    assert!(text.contains("Buy a new server"), "{text}");
    // The options' reactions are seeded, and a button per option casts a ballot.
    within("the seed reactions", fake.wait_for("reactions.add", 3)).await;
    let message = fake.message(GENERAL, &vote).unwrap();
    let seeded: Vec<&str> =
        message["reactions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(seeded, ["+1", "-1", "shrug"]);
    let actions: Vec<&str> =
        message["blocks"][1]["elements"].as_array().unwrap().iter().map(|b| b["action_id"].as_str().unwrap()).collect();
    assert_eq!(actions, ["polity_vote:1:yes", "polity_vote:1:no", "polity_vote:1:abstain"]);
    // Under them, the message says that each member's latest choice counts.
    let counts = message["blocks"][2]["elements"][0]["text"].as_str().unwrap();
    assert!(counts.contains("only your current choice counts"), "{counts}");

    // A skin-toned 👍 is a 👍.
    fake.react(ADMIN, GENERAL, &vote, "+1::skin-tone-3").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 1 · no 0 · abstain 0 (1 of 3 voted)")).await;
    // Bob changes his mind: the bot cannot take his 👎 away, so his latest reaction counts.
    fake.react(MEMBER, GENERAL, &vote, "-1").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 1 · no 1 · abstain 0 (2 of 3 voted)")).await;
    fake.react(MEMBER, GENERAL, &vote, "+1").await;
    // Two of three cannot be outvoted: passed, announced, buttons gone.
    let closed = until_text(&fake, &vote, |t| t.ends_with("PASSED")).await;
    assert!(closed.contains("yes 2 · no 0 · abstain 0 (2 of 3 voted)"), "{closed}");
    message_with(&fake, "Proposal #1 passed").await;
    let blocks = fake.message(GENERAL, &vote).unwrap()["blocks"].clone();
    assert_eq!(blocks.as_array().map(Vec::len), Some(1), "{blocks}");
    // Nothing Polity posted pings anyone, nor asked Slack to remove a reaction.
    assert!(fake.requests_of("reactions.remove").is_empty());
    let rt = polity.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_button_casts_a_ballot_and_a_reaction_taken_back_withdraws_one() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_button");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    said(&fake, ADMIN, "kit install direct-democracy").await;
    said(&fake, MEMBER, "propose Weekly calls").await;
    let vote = message_with(&fake, "Proposal #1").await;
    until_text(&fake, &vote, |t| t.contains("(0 of 3 voted)")).await;

    let before = fake.responses().len();
    fake.press(OTHER, GENERAL, &vote, "polity_vote:1:no", "no").await;
    let responses = within("the button's answer", fake.wait_responses(before + 1)).await;
    assert_eq!(responses[before].1["text"], "Your ballot on #1 is counted.");
    assert_eq!(responses[before].1["response_type"], "ephemeral");
    until_text(&fake, &vote, |t| t.ends_with("yes 0 · no 1 · abstain 0 (1 of 3 voted)")).await;

    // A reaction counts, and taking it back withdraws the ballot.
    fake.react(ADMIN, GENERAL, &vote, "+1").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 1 · no 1 · abstain 0 (2 of 3 voted)")).await;
    fake.unreact(ADMIN, GENERAL, &vote, "+1").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 0 · no 1 · abstain 0 (1 of 3 voted)")).await;
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_events_are_taken_only_with_slacks_signature() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_http");
    let config = json!({ "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET, "api_url": fake.api_url() });
    let polity = Polity::start(db.url(), config, true).await;
    let url = format!("{}/hooks/slack/events", polity.http.clone().unwrap());
    let client = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let post = |body: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut request = client.post(&url).body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };

    // Slack's URL check is answered with its challenge.
    let challenge = json!({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let body = challenge.to_string().into_bytes();
    let answer = post(body.clone(), signed_headers(SIGNING_SECRET, now, &body)).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );

    // Forged, stale and unsigned requests are refused with 401 and change nothing.
    let (_, event) = fake.event_body(
        json!({"type": "team_join", "user": {"id": "U0ERIN", "name": "erin", "profile": {"display_name": "Erin"}}}),
    );
    let forged = signed_headers("not the secret", now, &event);
    assert_eq!(post(event.clone(), forged).await.unwrap().status(), 401);
    let stale = signed_headers(SIGNING_SECRET, now - 301, &event);
    assert_eq!(post(event.clone(), stale).await.unwrap().status(), 401);
    assert_eq!(post(event.clone(), vec![]).await.unwrap().status(), 401);
    let mut tampered = event.clone();
    let signed = signed_headers(SIGNING_SECRET, now, &event);
    tampered.extend_from_slice(b" ");
    assert_eq!(post(tampered, signed.clone()).await.unwrap().status(), 401);
    // Signed, it is taken; a retry of the same event changes nothing more.
    assert_eq!(post(event.clone(), signed.clone()).await.unwrap().status(), 200);
    let mut retry = signed.clone();
    retry.push(("X-Slack-Retry-Num", "1".into()));
    retry.push(("X-Slack-Retry-Reason", "http_timeout".into()));
    assert_eq!(post(event.clone(), retry).await.unwrap().status(), 200);
    // The slash command over HTTP: a signed form, acknowledged at once with an empty 200, the
    // answer through its response_url; unsigned, refused.
    let commands = format!("{}/hooks/slack/commands", polity.http.clone().unwrap());
    let form = fake.slash_form(ADMIN, GENERAL, "/polity", "whoami");
    let unsigned = client.post(&commands).body(form.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let mut request = client.post(&commands).body(form.clone());
    for (name, value) in signed_headers(SIGNING_SECRET, now, &form) {
        request = request.header(name, value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "");
    let responses = within("the answer over HTTP", fake.wait_responses(1)).await;
    assert!(responses[0].1["text"].as_str().unwrap().starts_with("You are Alice, an admin."), "{responses:?}");
    // Any other path under /hooks/slack is no endpoint of Slack's.
    let other = format!("{}/hooks/slack/nothing", polity.http.clone().unwrap());
    let body = b"{}".to_vec();
    let mut request = client.post(&other).body(body.clone());
    for (name, value) in signed_headers(SIGNING_SECRET, now, &body) {
        request = request.header(name, value);
    }
    assert_eq!(request.send().await.unwrap().status(), 404);
    let rt = polity.stop().await;
    let community = &rt.engine(CommunityId(1)).unwrap().community;
    let erin = polity_governance::AccountRef::new("slack", "U0ERIN");
    assert_eq!(community.member_by_account(&erin).map(|m| m.name.as_str()), Some("Erin"));
    assert_eq!(community.members.values().filter(|m| m.name == "Erin").count(), 1);
}

/// Posts `body` to Polity's `/hooks/slack/{path}` with `headers`; the answer's status.
async fn post_hook(polity: &Polity, path: &str, body: &[u8], headers: Vec<(&'static str, String)>) -> u16 {
    let url = format!("{}/hooks/slack/{path}", polity.http.clone().unwrap());
    let mut request = reqwest::Client::new().post(url).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_forged_stale_and_replayed_events_change_nothing_and_buttons_vote() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_http_governed");
    let config = json!({ "bot_token": BOT_TOKEN, "user_token": ADMIN_USER_TOKEN, "signing_secret": SIGNING_SECRET,
        "api_url": fake.api_url() });
    let polity = Polity::start(db.url(), config, true).await;
    let now = chrono::Utc::now().timestamp();
    // What is recorded, read from the store beside the running Polity: an input is recorded
    // before Slack gets its 200, so what a request changed shows at once.
    let store = Store::connect(db.url()).await.unwrap();
    let proposals = || async { store.load_proposals(CommunityId(1), false).await.unwrap().len() };

    let policy = format!(
        "policy install Announcements name = \"Announcements\"\\nkind = \"platform\"\\nactions = [\"slack.message\"]\\nfilter = \"action.channel == \\\"{RANDOM}\\\"\"\\n[vote]\\nquorum = 2"
    );
    let form = fake.slash_form(ADMIN, GENERAL, "/polity", &policy);
    assert_eq!(post_hook(&polity, "commands", &form, signed_headers(SIGNING_SECRET, now, &form)).await, 200);
    let responses = within("the policy installed", fake.wait_responses(1)).await;
    assert!(responses[0].1["text"].as_str().unwrap().contains("Announcements"), "{responses:?}");

    // Bob's message in the governed channel, as Slack posts its event over HTTP.
    let (ts, _) = fake.post_as(MEMBER, RANDOM, "We move to Fridays").await;
    let (_, event) = fake.event_body(json!({"type": "message", "channel": RANDOM, "user": MEMBER,
        "text": "We move to Fridays", "ts": ts, "event_ts": ts, "channel_type": "channel"}));
    let signed = signed_headers(SIGNING_SECRET, now, &event);
    let mut tampered = event.clone();
    tampered.extend_from_slice(b" ");
    // Stale either way by more than Slack's five minutes, counted from this moment: a busy
    // machine may take seconds between here and Polity's reading of its clock, so a time
    // just 301 s ahead could come within the window by then.
    let moment = chrono::Utc::now().timestamp();
    let refused = [
        (event.clone(), signed_headers("not the secret", now, &event)),
        (event.clone(), signed_headers(SIGNING_SECRET, moment - 301, &event)),
        (event.clone(), signed_headers(SIGNING_SECRET, moment + 360, &event)),
        (event.clone(), vec![]),
        (tampered, signed.clone()),
    ];
    for (body, headers) in refused {
        assert_eq!(post_hook(&polity, "events", &body, headers).await, 401);
    }
    assert_eq!(proposals().await, 0, "a refused request recorded something");
    assert!(fake.requests_of("chat.delete").is_empty());

    // Signed, it is recorded before the 200: held and put to a vote.
    assert_eq!(post_hook(&polity, "events", &event, signed.clone()).await, 200);
    assert_eq!(proposals().await, 1);
    // Slack retries it (its answer came late): the same event id, nothing new.
    let mut retry = signed.clone();
    retry.push(("X-Slack-Retry-Num", "1".into()));
    retry.push(("X-Slack-Retry-Reason", "http_timeout".into()));
    assert_eq!(post_hook(&polity, "events", &event, retry).await, 200);
    // The same request again, signed anew a minute later: the same event, nothing new.
    let later = signed_headers(SIGNING_SECRET, now + 60, &event);
    assert_eq!(post_hook(&polity, "events", &event, later).await, 200);
    assert_eq!(proposals().await, 1);
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    within("the message held", fake.wait_for("chat.delete", 1)).await;

    // Two members vote with the buttons, over the interactivity URL; an unsigned press is
    // refused and counts for nothing.
    let press = fake.press_form(OTHER, RANDOM, &vote, "polity_vote:1:yes", "yes");
    assert_eq!(post_hook(&polity, "interactivity", &press, vec![]).await, 401);
    for user in [ADMIN, OTHER] {
        let press = fake.press_form(user, RANDOM, &vote, "polity_vote:1:yes", "yes");
        assert_eq!(post_hook(&polity, "interactivity", &press, signed_headers(SIGNING_SECRET, now, &press)).await, 200);
    }
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    within(
        "the message posted again",
        fake.until(|s| s.messages.iter().find(|m| m.channel == RANDOM && m.text.contains("Bob wrote")).map(|_| ())),
    )
    .await;
    polity.stop().await;
    assert_eq!(fake.requests_of("chat.delete").len(), 1, "held once");
    assert_eq!(proposals().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_missed_while_away_are_read_back_and_a_kept_old_reaction_stays_old() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_reconcile");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    said(&fake, ADMIN, "kit install direct-democracy").await;
    said(&fake, MEMBER, "propose Move the meetup to Friday").await;
    let vote = message_with(&fake, "Proposal #1").await;
    until_text(&fake, &vote, |t| t.contains("(0 of 3 voted)")).await;
    // Bob votes 👎, then 👍: both reactions stay on the message; his ballot is 👍.
    fake.react(MEMBER, GENERAL, &vote, "-1").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 0 · no 1 · abstain 0 (1 of 3 voted)")).await;
    fake.react(MEMBER, GENERAL, &vote, "+1").await;
    until_text(&fake, &vote, |t| t.ends_with("yes 1 · no 0 · abstain 0 (1 of 3 voted)")).await;
    polity.stop().await;

    // While Polity is down Carol reacts 👎🏾; no event reaches it.
    fake.react_unseen(OTHER, GENERAL, &vote, "-1::skin-tone-5", true);
    let reads = fake.requests_of("reactions.get").len();
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    // Read back at the session's hello: Carol's ballot counts, and the 👎 Bob still holds
    // beside his 👍 is his older choice, not a new ballot.
    until_text(&fake, &vote, |t| t.ends_with("yes 1 · no 1 · abstain 0 (2 of 3 voted)")).await;
    assert!(fake.requests_of("reactions.get").len() > reads);

    // Slack refreshes the connection: the new session's hello reads the vote again, and
    // nothing changes.
    let opened = fake.requests_of("apps.connections.open").len();
    let reads = fake.requests_of("reactions.get").len();
    fake.disconnect().await;
    within("Socket Mode to reconnect", fake.wait_for("apps.connections.open", opened + 1)).await;
    within("the vote to be read again", fake.wait_for("reactions.get", reads + 1)).await;
    fake.react(ADMIN, GENERAL, &vote, "+1").await;
    let passed = until_text(&fake, &vote, |t| t.ends_with("PASSED")).await;
    assert!(passed.contains("yes 2 · no 1 · abstain 0 (3 of 3 voted)"), "{passed}");
    polity.stop().await;
}

fn with_admin(fake: &FakeSlack) -> Value {
    json!({ "bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "user_token": ADMIN_USER_TOKEN, "api_url": fake.api_url() })
}

/// Channel renames are put to a vote of two.
const RENAMES_NEED_A_VOTE: &str =
    "Renames name = \"Renames\"\\nkind = \"platform\"\\nactions = [\"slack.rename_channel\"]\\n[vote]\\nquorum = 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_rename_is_undone_voted_on_and_given_on_pass() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_rename");
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    let installed = said(&fake, ADMIN, &format!("policy install {RENAMES_NEED_A_VOTE}")).await;
    assert!(installed.contains("Renames"), "{installed}");

    fake.rename_as(MEMBER, RANDOM, "offtopic").await;
    // Undone at once with the admin's token, and put to a vote.
    within("the old name back", fake.until(|s| (s.channel(RANDOM).name == "random").then_some(()))).await;
    let rename = fake.requests_of("conversations.rename");
    assert_eq!(rename[0].token.as_deref(), Some(ADMIN_USER_TOKEN));
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    // Slack delivers every event again (acknowledgements it thought late): the same event
    // ids, so nothing new is undone or put to a vote.
    let acked = fake.acks().len();
    let again = fake.redeliver_events();
    within("the redeliveries acknowledged", fake.wait_acks(acked + again)).await;
    assert_eq!(fake.requests_of("conversations.rename").len(), 1);
    // Polity's own rename back, which Slack reports as the admin's, is governed by nobody.
    fake.react(ADMIN, RANDOM, &vote, "+1").await;
    fake.react(OTHER, RANDOM, &vote, "+1").await;
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    within("the new name given", fake.until(|s| (s.channel(RANDOM).name == "offtopic").then_some(()))).await;
    assert_eq!(fake.requests_of("conversations.rename").len(), 2);
    let rt = polity.stop().await;
    assert_eq!(
        rt.store().load_proposals(CommunityId(1), false).await.unwrap().len(),
        1,
        "no vote on Polity's own renames"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_acknowledged_only_once_recorded_so_a_kill_after_the_ack_loses_nothing() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_kill_after_ack");
    // The first Polity runs on a runtime of its own: shutting that down ends every task it
    // has at once (its effects on their way too), as killing its process would.
    let process = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (url, config) = (db.url().to_string(), with_admin(&fake));
    let polity = process.spawn(async move { Polity::start(&url, config, false).await }).await.unwrap();
    let installed = said(&fake, ADMIN, &format!("policy install {RENAMES_NEED_A_VOTE}")).await;
    assert!(installed.contains("Renames"), "{installed}");

    // A member's rename; Polity dies the moment Slack has its acknowledgement, before it has
    // done anything with the event. Slack never delivers an acknowledged event again, so
    // only what was recorded before the acknowledgement is left.
    // Slack sends two events of a rename: `channel_rename` and the `channel_name` message.
    let acked = fake.acks().len();
    fake.rename_as(MEMBER, RANDOM, "offtopic").await;
    within("the rename acknowledged", fake.wait_acks(acked + 2)).await;
    process.shutdown_background();
    drop(polity);
    fake.close_connections();

    // After the restart the rename is undone and put to a vote, once.
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    within("the old name back", fake.until(|s| (s.channel(RANDOM).name == "random").then_some(()))).await;
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    fake.react(ADMIN, RANDOM, &vote, "+1").await;
    fake.react(OTHER, RANDOM, &vote, "+1").await;
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    within("the new name given", fake.until(|s| (s.channel(RANDOM).name == "offtopic").then_some(()))).await;
    let rt = polity.stop().await;
    assert_eq!(rt.store().load_proposals(CommunityId(1), false).await.unwrap().len(), 1);
    // The undoing may have been on its way when Polity died: then it is made again after the
    // restart, to the same name. The new name is given once, last.
    let names: Vec<String> = fake
        .requests_of("conversations.rename")
        .iter()
        .map(|r| r.params["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(matches!(names.len(), 2 | 3), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("offtopic"), "{names:?}");
    assert!(names[..names.len() - 1].iter().all(|n| n == "random"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_members_pin_is_undone_voted_on_and_made_again_on_pass_and_polity_s_own_pin_is_not_governed() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_pin");
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    let pins = "Pins name = \"Pins\"\\nkind = \"platform\"\\nactions = [\"slack.pin\"]\\n[vote]\\nquorum = 2";
    let installed = said(&fake, ADMIN, &format!("policy install {pins}")).await;
    assert!(installed.contains("Pins"), "{installed}");
    let (notice, _) = fake.post_as(OTHER, RANDOM, "Meetups move to Fridays").await;

    // Bob pins Carol's message: unpinned at once with the admin's token, and put to a vote.
    fake.pin_as(MEMBER, RANDOM, &notice).await;
    within("the pin undone", fake.until(|s| (!s.channel(RANDOM).pins.contains(&notice)).then_some(()))).await;
    let removed = fake.requests_of("pins.remove");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].token.as_deref(), Some(ADMIN_USER_TOKEN));
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    fake.react(ADMIN, RANDOM, &vote, "+1").await;
    fake.react(OTHER, RANDOM, &vote, "+1").await;
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    // Pinned again by Polity with the admin's token. Slack reports that pin as the admin's,
    // and it is not put to a vote.
    within("the pin made again", fake.until(|s| s.channel(RANDOM).pins.contains(&notice).then_some(()))).await;
    let added = fake.requests_of("pins.add");
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].token.as_deref(), Some(ADMIN_USER_TOKEN));

    // Bob unpins it and pins it again by himself: that later pin is his, and governed.
    fake.change(|s| s.channel_mut(RANDOM).pins.retain(|p| *p != notice));
    fake.pin_as(MEMBER, RANDOM, &notice).await;
    within("the later pin undone", fake.wait_for("pins.remove", 2)).await;
    message_in(&fake, RANDOM, "Proposal #2").await;
    let rt = polity.stop().await;
    // Two proposals, both of Bob's pins: none of Polity's own.
    let proposals = rt.store().load_proposals(CommunityId(1), false).await.unwrap();
    let by: Vec<&str> = proposals.iter().map(|p| p.action.initiator.account.as_str()).collect();
    assert_eq!(by, [MEMBER, MEMBER], "{proposals:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_policy_acts_on_slack_through_every_action_it_may_call() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_policy_actions");
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    let (rules, _) = fake.post_as(ADMIN, GENERAL, "Be kind.").await;
    let policy = format!(
        r#"Welcome name = "Welcome"
kind = "trigger"
actions = ["slack.team_join"]
check = "\"passed\""
[pass]
do = [
  {{ action = "slack.send_dm", user = "{{{{action.user}}}}", text = "Welcome, {{{{action.name}}}}!" }},
  {{ action = "slack.invite", channel = "{RANDOM}", user = "{{{{action.user}}}}" }},
  {{ action = "slack.post_message", channel = "{GENERAL}", text = "Say hello to {{{{action.name}}}}" }},
  {{ action = "slack.ephemeral", channel = "{GENERAL}", user = "{ADMIN}", text = "A new member: {{{{action.name}}}}" }},
  {{ action = "slack.kick", channel = "{RANDOM}", user = "{OTHER}" }},
  {{ action = "slack.pin", channel = "{GENERAL}", message = "{rules}" }},
  {{ action = "slack.rename_channel", channel = "{RANDOM}", name = "newcomers" }},
  {{ action = "slack.api", method = "conversations.history", params = {{ channel = "{GENERAL}", limit = 5 }} }},
]"#
    )
    .replace('\n', "\\n");
    let installed = said(&fake, ADMIN, &format!("policy install {policy}")).await;
    assert!(installed.contains("Welcome"), "{installed}");
    // Members' pins, renames and joins are voted on; Polity's own are not.
    let guard = "Guard name = \"Guard\"\\nkind = \"platform\"\\nactions = [\"slack.pin\", \"slack.rename_channel\", \"slack.member_joined_channel\"]\\n[vote]\\nquorum = 2";
    let installed = said(&fake, ADMIN, &format!("policy install {guard}")).await;
    assert!(installed.contains("Guard"), "{installed}");

    // Erin joins the workspace.
    fake.change(|s| {
        s.users.push(User {
            id: "U0ERIN".into(),
            team: TEAM.into(),
            name: "erin".into(),
            real_name: "Erin E.".into(),
            admin: false,
            owner: false,
            bot_id: None,
            deleted: false,
        })
    });
    fake.push_event(json!({"type": "team_join", "user": {"id": "U0ERIN", "team_id": TEAM, "name": "erin",
        "real_name": "Erin E.", "profile": {"display_name": "Erin"}}}))
        .await;

    within("the history read", fake.wait_for("conversations.history", 1)).await;
    within("the channel renamed", fake.until(|s| (s.channel(RANDOM).name == "newcomers").then_some(()))).await;
    message_with(&fake, "Say hello to Erin").await;
    within(
        "the welcome in Erin's DM",
        fake.until(|s| s.messages.iter().find(|m| m.user == BOT_USER && m.text == "Welcome, Erin!").map(|_| ())),
    )
    .await;
    within("the ephemeral", fake.wait_for("chat.postEphemeral", 1)).await;
    let ephemerals = fake.ephemerals();
    assert_eq!(ephemerals.len(), 1, "{ephemerals:?}");
    assert!(fake.channel_members(RANDOM).contains(&"U0ERIN".to_string()));
    assert!(!fake.channel_members(RANDOM).contains(&OTHER.to_string()));
    assert!(fake.pins(GENERAL).contains(&rules));
    // A read method's arguments go as Slack reads them (a query), and reach it.
    let history = fake.requests_of("conversations.history");
    assert_eq!(history[0].params.get("channel").and_then(Value::as_str), Some(GENERAL), "{history:?}");
    // The rename is made with the admin's token (the bot did not make the channel).
    assert_eq!(fake.requests_of("conversations.rename")[0].token.as_deref(), Some(ADMIN_USER_TOKEN));
    // Erin leaves #random and comes back by herself: that join is hers, and voted on.
    fake.change(|s| s.channel_mut(RANDOM).members.retain(|m| m != "U0ERIN"));
    fake.join_as("U0ERIN", RANDOM).await;
    message_in(&fake, RANDOM, "Proposal #2").await;
    let rt = polity.stop().await;
    // Polity's own invitation, pin and rename were voted on by nobody: the workspace join's
    // proposal and Erin's own join's.
    let proposals = rt.store().load_proposals(CommunityId(1), false).await.unwrap();
    let kinds: Vec<&str> = proposals.iter().map(|p| p.action.kind.as_str()).collect();
    assert_eq!(kinds, ["slack.team_join", "slack.member_joined_channel"], "{proposals:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_in_one_channel_are_paced_to_slacks_limit_and_never_refused() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_post_pacing");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    // Five posts in #random on one event: Slack takes a burst of three in a channel, then one
    // a second, and answers anything faster with a 429.
    let posts: Vec<String> = (1..=5)
        .map(|i| format!("{{ action = \"slack.post_message\", channel = \"{RANDOM}\", text = \"Notice {i}\" }}"))
        .collect();
    let policy = format!(
        "Notices name = \"Notices\"\\nkind = \"trigger\"\\nactions = [\"slack.team_join\"]\\ncheck = \"\\\"passed\\\"\"\\n[pass]\\ndo = [{}]",
        posts.join(", ")
    );
    let installed = said(&fake, ADMIN, &format!("policy install {policy}")).await;
    assert!(installed.contains("Notices"), "{installed}");
    fake.push_event(
        json!({"type": "team_join", "user": {"id": "U0ERIN", "name": "erin", "profile": {"display_name": "Erin"}}}),
    )
    .await;
    let texts = within(
        "the five notices",
        fake.until(|s| {
            let texts: Vec<String> = s
                .messages
                .iter()
                .filter(|m| m.channel == RANDOM && m.user == BOT_USER)
                .map(|m| m.text.clone())
                .collect();
            (texts.len() == 5).then_some(texts)
        }),
    )
    .await;
    assert_eq!(texts, ["Notice 1", "Notice 2", "Notice 3", "Notice 4", "Notice 5"]);
    // Each asked for once: Polity waited its turn instead of being refused.
    let asked = fake.requests_of("chat.postMessage");
    let in_random = asked.iter().filter(|r| r.params.get("channel").and_then(Value::as_str) == Some(RANDOM)).count();
    assert_eq!(in_random, 5, "{asked:?}");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_a_governed_channel_is_held_and_posted_again_on_pass() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_message");
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    let policy = format!(
        "Announcements name = \"Announcements\"\\nkind = \"platform\"\\nactions = [\"slack.message\"]\\nfilter = \"action.channel == \\\"{RANDOM}\\\"\"\\n[vote]\\nquorum = 2"
    );
    said(&fake, ADMIN, &format!("policy install {policy}")).await;
    // A message elsewhere is not governed.
    let (free, _) = fake.post_as(MEMBER, GENERAL, "lunch?").await;
    let (held, _) = fake.post_as(MEMBER, RANDOM, "We move to Fridays <!channel>").await;
    within("the message to be held", fake.until(|s| s.messages.iter().all(|m| m.ts != held).then_some(()))).await;
    let deleted = fake.requests_of("chat.delete");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].token.as_deref(), Some(ADMIN_USER_TOKEN));
    assert!(fake.message(GENERAL, &free).is_some());
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    fake.react(ADMIN, RANDOM, &vote, "+1").await;
    fake.react(OTHER, RANDOM, &vote, "+1").await;
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    let repost = within(
        "the message posted again",
        fake.until(|s| {
            s.messages
                .iter()
                .find(|m| m.channel == RANDOM && m.user == BOT_USER && m.text.contains("wrote"))
                .map(|m| m.text.clone())
        }),
    )
    .await;
    // Posted with its author's name; the mention it held pings nobody.
    assert_eq!(repost, "Bob wrote: We move to Fridays &lt;!channel&gt;");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_needs_a_secret_asks_in_a_form_and_never_shows_it() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_secret");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    let before = fake.responses().len();
    fake.slash(ADMIN, GENERAL, "/polity", "integration add opencollective oc collective=tidepool").await;
    // The form opens on the command's own trigger.
    let views = within("the form", fake.wait_for("views.open", 1)).await;
    let view = &views[0].params["view"];
    assert_eq!(view["type"], "modal");
    assert_eq!(view["callback_id"], "polity_secret");
    assert_eq!(fake.responses().len(), before, "the form is the answer");
    let values = json!({"secret": {"secret": {"type": "plain_text_input", "value": "tok-alice-7f3a"}}});
    fake.submit_view(ADMIN, "polity_secret", values).await;
    // The answer is an ephemeral message to the admin; the secret is in no request Polity sent.
    let answers = within("the answer to the form", fake.wait_for("chat.postEphemeral", 1)).await;
    assert_eq!(answers[0].params["user"], ADMIN);
    let sent = serde_json::to_string(&fake.requests().iter().map(|r| r.params.clone()).collect::<Vec<_>>()).unwrap();
    assert!(!sent.contains("tok-alice-7f3a"), "the secret was sent back to Slack");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_rate_limit_on_one_route_holds_that_route_only() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_ratelimit");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    said(&fake, ADMIN, "kit install direct-democracy").await;
    said(&fake, MEMBER, "propose First").await;
    let first = message_with(&fake, "Proposal #1").await;
    until_text(&fake, &first, |t| t.contains("(0 of 3 voted)")).await;
    // Slack answers the next tally edit with a ten-minute Retry-After.
    fake.fail_next("chat.update", polity_tests::slack::Failure::RateLimited(600));
    fake.react(ADMIN, GENERAL, &first, "+1").await;
    within("the refused edit", fake.wait_for("chat.update", 1)).await;
    // Slack limits each method per workspace, so every tally edit waits out the ten minutes;
    // nothing else does: commands are answered, another vote is posted and seeded, its
    // reactions are taken.
    let opened = said(&fake, OTHER, "propose Second").await;
    assert!(opened.starts_with("Proposal #2 is open"), "{opened}");
    let second = message_with(&fake, "Proposal #2").await;
    within("the second vote's seed reactions", fake.wait_for("reactions.add", 6)).await;
    fake.react(MEMBER, GENERAL, &second, "+1").await;
    let me = said(&fake, MEMBER, "whoami").await;
    assert!(me.starts_with("You are Bob"), "{me}");
    // Nothing retried chat.update against Slack's word.
    assert_eq!(fake.requests_of("chat.update").len(), 1);
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ineligible_voter_is_told_where_they_voted_and_only_they_see_it() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_ineligible");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    // Alice installs the moderators kit, so she is the one moderator.
    let installed = said(&fake, ADMIN, "kit install moderators").await;
    assert!(installed.starts_with("The starter kit moderators is installed"), "{installed}");
    said(&fake, MEMBER, "propose Pin the rules").await;
    let vote = message_with(&fake, "Proposal #1").await;
    until_text(&fake, &vote, |t| t.ends_with("(0 of 1 voted)")).await;
    fake.react(OTHER, GENERAL, &vote, "+1").await;
    let told = within("Carol's ephemeral message", fake.wait_for("chat.postEphemeral", 1)).await;
    assert_eq!(told[0].params["channel"], GENERAL);
    assert_eq!(told[0].params["user"], OTHER);
    assert_eq!(
        told[0].params["text"],
        "Your vote was not counted: only members with the role moderator can vote on proposal #1."
    );
    // Her reaction stays (a bot cannot remove it) and counts for nothing.
    assert!(fake.message(GENERAL, &vote).unwrap()["text"].as_str().unwrap().ends_with("(0 of 1 voted)"));
    assert!(fake.requests_of("conversations.open").is_empty(), "no direct message");
    polity.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_of_a_governed_channel_is_undone_voted_on_and_welcomed_back_on_pass() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_join");
    let polity = Polity::start(db.url(), with_admin(&fake), false).await;
    let policy = format!(
        "Joins name = \"Joins\"\\nkind = \"platform\"\\nactions = [\"slack.member_joined_channel\"]\\nfilter = \"action.channel == \\\"{RANDOM}\\\"\"\\n[vote]\\nquorum = 2"
    );
    let installed = said(&fake, ADMIN, &format!("policy install {policy}")).await;
    assert!(installed.contains("Joins"), "{installed}");

    fake.join_as(OTHER, RANDOM).await;
    // Removed at once, and put to a vote.
    within("Carol removed", fake.until(|s| (!s.channel(RANDOM).members.iter().any(|m| m == OTHER)).then_some(())))
        .await;
    let vote = message_in(&fake, RANDOM, "Proposal #1").await;
    fake.react(ADMIN, RANDOM, &vote, "+1").await;
    fake.react(MEMBER, RANDOM, &vote, "+1").await;
    until_text_in(&fake, RANDOM, &vote, |t| t.ends_with("PASSED")).await;
    // Invited back by Polity, whose invitation is not governed again.
    within("Carol back", fake.until(|s| s.channel(RANDOM).members.iter().any(|m| m == OTHER).then_some(()))).await;
    let invited = fake.requests_of("conversations.invite");
    assert_eq!(invited.len(), 1);
    // With the bot's own token: it is a member of the channel it heard the join in.
    assert_eq!(invited[0].token.as_deref(), Some(BOT_TOKEN));
    let rt = polity.stop().await;
    assert_eq!(rt.store().load_proposals(CommunityId(1), false).await.unwrap().len(), 1);
    let kicked = fake.requests_of("conversations.kick");
    assert_eq!(kicked.len(), 1);
    assert_eq!(kicked[0].token.as_deref(), Some(BOT_TOKEN));
}

/// `GET /slack/install` as a browser follows it: Slack's approval page it is sent to, and the
/// state cookie it is given.
async fn install_link(client: &reqwest::Client, polity: &str) -> (reqwest::Url, String) {
    let answer = client.get(format!("{polity}/slack/install")).send().await.unwrap();
    assert_eq!(answer.status(), 302);
    let to = reqwest::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/slack"),
        "{cookie}"
    );
    (to, cookie.split(';').next().unwrap().to_string())
}

/// Slack sending the browser back to `/slack/oauth` with `code` and `state`.
async fn redirected(client: &reqwest::Client, polity: &str, query: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = client.get(format!("{polity}/slack/oauth?{query}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.text().await.unwrap())
}

fn state_of(link: &reqwest::Url) -> String {
    link.query_pairs().find(|(k, _)| k == "state").map(|(_, v)| v.into_owned()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspaces_install_polity_through_oauth_and_only_an_admins_install_stays() {
    use polity_tests::slack::{CLIENT_ID, CLIENT_SECRET, OTHER_TEAM, OTHER_TEAM_CHANNEL, OTHER_TEAM_USER};
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_oauth");
    let key = polity::store::SecretKey::generate();
    let config = json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "app_token": APP_TOKEN,
        "api_url": fake.api_url(), "authorize_url": format!("{}/oauth/v2/authorize", fake.url()),
    });
    let polity = Polity::launch(db.url(), config.clone(), true, Some(&key)).await;
    let base = polity.http.clone().unwrap();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The install link sends the admin to Slack's approval page with the manifest's scopes.
    let (link, cookie) = install_link(&client, &base).await;
    assert!(link.as_str().starts_with(&format!("{}/oauth/v2/authorize?", fake.url())), "{link}");
    let param = |k: &str| link.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap_or_default();
    assert_eq!(param("client_id"), CLIENT_ID);
    assert!(param("scope").split(',').any(|s| s == "reactions:read"), "{link}");
    assert_eq!(param("user_scope"), "chat:write,channels:write,groups:write,pins:write");
    let state = state_of(&link);

    // A redirect without the browser's cookie, with a state not Polity's, or with none is
    // refused before any code is exchanged.
    let code = fake.authorize_code(MEMBER);
    let query = |code: &str, state: &str| {
        format!("code={code}&state={}", form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>())
    };
    assert_eq!(redirected(&client, &base, &query(&code, &state), None).await.0, 400);
    let forged = format!("{}0", state);
    assert_eq!(redirected(&client, &base, &query(&code, &forged), Some(&cookie)).await.0, 400);
    assert_eq!(redirected(&client, &base, &format!("code={code}"), Some(&cookie)).await.0, 400);
    assert!(fake.requests_of("oauth.v2.access").is_empty());

    // Bob, no admin, approves the app: his install is undone, nothing stored.
    let (status, page) = redirected(&client, &base, &query(&code, &state), Some(&cookie)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Only a workspace admin or owner of Tidepool can install Polity"), "{page}");
    assert_eq!(fake.uninstalled(), [TEAM]);
    let exchanged = fake.requests_of("oauth.v2.access");
    assert_eq!(exchanged.len(), 1);
    let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(&key));
    assert!(store.installs("slack").await.unwrap().is_empty());
    // The state was used: the same link does not work twice.
    let again = fake.authorize_code(ADMIN);
    assert_eq!(redirected(&client, &base, &query(&again, &state), Some(&cookie)).await.0, 400);

    // Alice, an admin and owner, installs it: Polity governs Tidepool and answers there.
    let (link, cookie) = install_link(&client, &base).await;
    let code = fake.authorize_code(ADMIN);
    let (status, page) = redirected(&client, &base, &query(&code, &state_of(&link)), Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Polity is installed in Tidepool"), "{page}");
    let polity = polity.governing(TEAM).await;
    let stored = store.installs("slack").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, TEAM);
    let tokens: Vec<&str> = stored[0].1.expose().split(' ').collect();
    assert!(tokens[0].starts_with("xoxb-") && tokens[1].starts_with("xoxp-"), "a bot token and Alice's user token");
    assert!(said(&fake, ADMIN, "whoami").await.starts_with("You are Alice, an admin."));
    // Bob approves the installed app again: Polity stays as it was, only his new token is
    // taken back.
    let (link, cookie) = install_link(&client, &base).await;
    let code = fake.authorize_code(MEMBER);
    let (status, page) = redirected(&client, &base, &query(&code, &state_of(&link)), Some(&cookie)).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("Polity stays as it was"), "{page}");
    assert_eq!(fake.uninstalled(), [TEAM], "no second uninstall");
    let bobs = fake.requests_of("auth.revoke");
    assert_eq!(bobs.len(), 1);
    assert!(fake.revoked(bobs[0].token.as_deref().unwrap()));
    assert!(said(&fake, ADMIN, "whoami").await.starts_with("You are Alice, an admin."));

    // A second workspace in the same process, its own community.
    fake.change(|s| s.users.iter_mut().filter(|u| u.id == OTHER_TEAM_USER).for_each(|u| u.admin = true));
    let (link, cookie) = install_link(&client, &base).await;
    let code = fake.authorize_code(OTHER_TEAM_USER);
    let (status, page) = redirected(&client, &base, &query(&code, &state_of(&link)), Some(&cookie)).await;
    assert_eq!(status, 200, "{page}");
    let polity = polity.governing(OTHER_TEAM).await;
    let before = fake.responses().len();
    fake.slash(OTHER_TEAM_USER, OTHER_TEAM_CHANNEL, "/polity", "whoami").await;
    let responses = within("Dave's answer", fake.wait_responses(before + 1)).await;
    assert!(responses[before].1["text"].as_str().unwrap().starts_with("You are Dave, an admin."), "{responses:?}");
    let rt = polity.stop().await;
    let dave = polity_governance::AccountRef::new("slack", OTHER_TEAM_USER);
    let alice = polity_governance::AccountRef::new("slack", ADMIN);
    let communities: Vec<CommunityId> = [&dave, &alice]
        .iter()
        .map(|a| {
            (1..=2)
                .map(CommunityId)
                .find(|c| rt.engine(*c).is_some_and(|e| e.community.member_by_account(a).is_some()))
                .unwrap()
        })
        .collect();
    assert_ne!(communities[0], communities[1], "each workspace its own community");

    // A restart serves both from the stored installs, with no OAuth.
    let polity = Polity::launch(db.url(), config, false, Some(&key)).await;
    let mut governed = Vec::new();
    let mut polity = polity;
    for _ in 0..2 {
        match within("a workspace governed again", polity.notices.recv()).await.unwrap() {
            Notice::Governing { space, .. } => governed.push(space),
            other => panic!("unexpected notice: {other:?}"),
        }
    }
    governed.sort();
    assert_eq!(governed, [OTHER_TEAM, TEAM]);
    assert!(said(&fake, ADMIN, "whoami").await.starts_with("You are Alice, an admin."));
    // Driftwood removes the app: its install is forgotten, Tidepool's stays.
    let acked = fake.acks().len();
    fake.remove_app(OTHER_TEAM);
    within("app_uninstalled acknowledged", fake.wait_acks(acked + 1)).await;
    polity.stop().await;
    let left: Vec<String> = store.installs("slack").await.unwrap().into_iter().map(|(space, _)| space).collect();
    assert_eq!(left, [TEAM]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_message_whose_answer_was_lost_is_posted_once() {
    let fake = slack().await;
    let db = TestDb::sqlite("slack_e2e_lost_post");
    let polity = Polity::start(db.url(), socket_mode(&fake), false).await;
    said(&fake, ADMIN, "kit install direct-democracy").await;
    // Slack posts the vote message, and its answer never reaches Polity: the retry finds the
    // message by the effect's key in the channel's history instead of posting it again.
    fake.fail_next("chat.postMessage", polity_tests::slack::Failure::Lost(500));
    said(&fake, MEMBER, "propose Paint the shed green").await;
    let vote = message_with(&fake, "Proposal #1").await;
    within("the retry to look for it", fake.wait_for("conversations.history", 1)).await;
    fake.react(ADMIN, GENERAL, &vote, "+1").await;
    fake.react(MEMBER, GENERAL, &vote, "+1").await;
    let closed = until_text(&fake, &vote, |t| t.ends_with("PASSED")).await;
    assert!(closed.contains("Paint the shed green"), "{closed}");
    let rt = polity.stop().await;
    let posted =
        fake.with(|s| s.messages.iter().filter(|m| m.user == BOT_USER && m.text.starts_with("Proposal #1: ")).count());
    let texts =
        fake.with(|s| s.messages.iter().filter(|m| m.user == BOT_USER).map(|m| m.text.clone()).collect::<Vec<_>>());
    assert_eq!(posted, 1, "one vote message: {texts:#?}");
    assert_eq!(
        fake.requests_of("chat.postMessage")
            .iter()
            .filter(|r| r.params["text"].as_str().is_some_and(|t| t.starts_with("Proposal #1: ")))
            .count(),
        1,
        "the vote message was asked for once"
    );
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}
