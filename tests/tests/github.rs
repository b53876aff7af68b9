#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Polity on GitHub, end to end: `polity run`'s loop with its real HTTP server on 127.0.0.1,
//! a community's GitHub connection (reqwest against the fake GitHub), and the webhooks the
//! fake delivers signed as GitHub signs them.

use chrono::TimeDelta;
use polity::http::Webhooks;
use polity::platforms::Registry;
use polity::ports::CommunityPorts;
use polity::run::{Host, HttpHost, Pacing, run_host};
use polity::runtime::Runtime;
use polity::serve::SystemClock;
use polity::store::Store;
use polity_governance::ids::{AccountRef, Place};
use polity_governance::{CommunityId, ProposalState};
use polity_tests::db::TestDb;
use polity_tests::github::{
    APP_ID, APP_PRIVATE_KEY_PEM, APP_SLUG, BOB, CAROL, FakeGitHub, HOOK_ID, OWNER_TOKEN, REPO, STRANGER, signature,
};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
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

const POLICY: &str = r#"name = "issues"
kind = "trigger"
actions = ["github.issues_opened"]

[vote]
voters = "role:maintainer"
pass = "majority"
closes = "2d"

[pass]
do = [{ action = "github.add_labels", number = "{{action.number}}", labels = "accepted" }]

[fail]
do = [{ action = "github.close", number = "{{action.number}}", reason = "not_planned" }]
"#;

const MERGES: &str = r#"name = "merges"
kind = "trigger"
actions = ["github.pull_request_opened"]

[vote]
voters = "role:maintainer"
pass = "majority"
closes = "2d"

[pass]
do = [{ action = "github.merge", number = "{{action.number}}", method = "squash" }]
"#;

/// A community (maria on the console) with the repository connected by its owner's token,
/// bob and carol its maintainers, and the policies; the fake's hook points at Polity.
async fn set_up(fake: &FakeGitHub, db: &str, key: &str, base: &str) -> CommunityId {
    let with_token = format!("hook_id={HOOK_ID}");
    set_up_as(fake, db, key, base, &with_token, OWNER_TOKEN).await
}

/// [`set_up`] with the connection's own settings and secret.
async fn set_up_as(fake: &FakeGitHub, db: &str, key: &str, base: &str, settings: &str, secret: &str) -> CommunityId {
    let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
    store.migrate().await.unwrap();
    let mut rt = Runtime::open(store).await.unwrap();
    rt.registry_mut().set_public_url(base);
    let c = rt.ensure_community("Tidepool", "maria", AccountRef::new("console", "maria")).await.unwrap();
    let add = format!("/integration add github gh repo={REPO} {settings} reactions_secs=1 api_url={}", fake.url());
    let connected = on_console(&mut rt, c, &add, Some(secret)).await;
    assert!(connected.starts_with("gh (github) is connected."), "{connected}");
    assert!(!connected.contains(secret.trim()));
    let (_, after) = connected.split_once("paste the address ").unwrap();
    let (url, after) = after.split_once(" and the secret ").unwrap();
    let secret = after.split_whitespace().next().unwrap();
    assert!(url.ends_with(&format!("/hooks/github/{}.gh", c.0)), "{url}");
    fake.set_hook(url, secret);
    for line in ["/role create maintainer decides issues and merges", "/permission grant everyone propose *"] {
        let said = on_console(&mut rt, c, line, None).await;
        assert!(!said.contains("not"), "{line}: {said}");
    }
    for (name, policy) in [("issues", POLICY), ("merges", MERGES)] {
        let line = format!("/policy install {name} {}", policy.replace('\n', "\\n"));
        let installed = on_console(&mut rt, c, &line, None).await;
        assert!(installed.contains("installed"), "{installed}");
    }
    c
}

/// Polity's `run` with only its HTTP server (GitHub needs no bot of Polity's own).
struct Polity {
    task: JoinHandle<anyhow::Result<Runtime>>,
    stop: oneshot::Sender<()>,
}

impl Polity {
    async fn start(db: &str, key: &str, listener: TcpListener, base: &str) -> Self {
        let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
        let mut webhooks = Webhooks::new();
        for adapter in polity::platforms::adapters() {
            if let Some(hooks) = adapter.webhooks() {
                webhooks.register(hooks);
            }
        }
        let mut registry = Registry::default();
        registry.set_public_url(base);
        let pacing = Pacing { edit: TimeDelta::zero(), reconcile: TimeDelta::zero() };
        let (notices, _) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let host = Host { bots: Vec::new(), registry, http: Some(HttpHost { listener, webhooks }) };
            run_host(store, host, pacing, &SystemClock, shutdown, notices).await
        });
        Self { task, stop }
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

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Polity's vote comment on issue `number`, once posted: its id.
async fn vote_comment(fake: &FakeGitHub, number: u64) -> u64 {
    within(
        "the vote comment",
        fake.until(|s| s.comments.iter().find(|c| c.number == number && c.body.contains("Proposal #")).map(|c| c.id)),
    )
    .await
}

async fn comment_says(fake: &FakeGitHub, id: u64, part: &str) -> String {
    within(
        &format!("the comment to say {part}"),
        fake.until(|s| s.comments.iter().find(|c| c.id == id && c.body.contains(part)).map(|c| c.body.clone())),
    )
    .await
}

/// Waits until the running Polity has made the collaborators members.
async fn collaborators_admitted(db: &str, community: CommunityId) {
    let store = Store::connect(db).await.unwrap();
    within("the collaborators to be members", async {
        loop {
            // Read while Polity writes: a read between two of its statements is tried again.
            if let Ok(members) = store.load_community(community).await
                && [BOB, CAROL].iter().all(|who| members.members.values().any(|m| m.name == *who))
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
}

async fn grant_maintainers(db: &str, key: &str, community: CommunityId) {
    // bob and carol are members since the connection listed the collaborators.
    let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
    let mut rt = Runtime::open(store).await.unwrap();
    for who in [BOB, CAROL] {
        let said = on_console(&mut rt, community, &format!("/role grant maintainer {who}"), None).await;
        assert_eq!(said, format!("{who} has the role maintainer now."));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opened_issue_is_voted_on_by_reactions_and_closed_when_the_vote_fails() {
    let fake = FakeGitHub::start().await;
    let db = TestDb::sqlite("github_e2e_issue");
    let key = polity::store::SecretKey::generate();
    let (first, base) = listener().await;
    let c = set_up(&fake, db.url(), &key, &base).await;
    // A first run lists the collaborators as members; then the maintainers get their role.
    let polity = Polity::start(db.url(), &key, first, &base).await;
    collaborators_admitted(db.url(), c).await;
    assert_eq!(fake.ping().await, 202, "a ping is answered, nothing stored");
    let rt = polity.stop().await;
    drop(rt);
    grant_maintainers(db.url(), &key, c).await;
    let (listener, base) = {
        // The hook's address keeps its port: Polity listens where GitHub delivers.
        let port = base.rsplit(':').next().unwrap().to_string();
        let l = TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
        (l, base)
    };
    let polity = Polity::start(db.url(), &key, listener, &base).await;
    within(
        "the connection to start",
        fake.until(|s| (s.requests.iter().filter(|r| r.path.ends_with("/collaborators")).count() >= 2).then_some(())),
    )
    .await;

    // Mallory opens an issue: the maintainers vote on it there.
    let number = fake.open_issue(STRANGER, "Add a pond", "Frogs welcome.").await;
    let vote = vote_comment(&fake, number).await;
    let body = comment_says(&fake, vote, "Vote with a reaction").await;
    assert!(body.contains("Add a pond") && body.contains("<!-- polity -->"), "{body}");
    // Bob: 👍. Carol: 👍 and 👎 at once, which counts as no vote.
    fake.react(BOB, vote, "+1");
    fake.react(CAROL, vote, "+1");
    fake.react(CAROL, vote, "-1");
    comment_says(&fake, vote, "yes 1 · no 0 · abstain 0 (1 of 2 voted)").await;
    // Carol takes her 👎 back. GitHub says nothing of it: Polity's next read of the reactions
    // sees it, and the vote passes.
    fake.unreact(CAROL, vote, "-1");
    let passed = comment_says(&fake, vote, "PASSED").await;
    assert!(!passed.contains("Vote with a reaction"), "{passed}");
    within("the label", fake.until(|s| s.issues[&number].labels.contains(&"accepted".to_string()).then_some(()))).await;

    // GitHub is asked to deliver the first issue again: the same GUID, answered, and nothing
    // new is opened.
    let first = fake.deliveries().iter().find(|d| d.event == "issues").unwrap().id;
    let asked = reqwest::Client::new()
        .post(format!("{}/repos/{REPO}/hooks/{HOOK_ID}/deliveries/{first}/attempts", fake.url()))
        .header("user-agent", "test")
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 202);
    within(
        "the redelivery",
        fake.until(|s| s.deliveries.iter().any(|d| d.redelivery && d.status_code == 200).then_some(())),
    )
    .await;

    // Another issue: its delivery is answered 200, and Polity dies at once, before doing
    // anything with it. It was recorded before the answer: after the restart it is voted on,
    // once. Bob's 👎 decides it: the issue is closed as not planned.
    let other = fake.open_issue(STRANGER, "Rewrite it in COBOL", "Hear me out.").await;
    assert_eq!(fake.deliveries().last().map(|d| d.status_code), Some(200));
    polity.kill();
    let (listener, base) = self::listener().await;
    let polity = Polity::start(db.url(), &key, listener, &base).await;
    let vote = vote_comment(&fake, other).await;
    fake.react(BOB, vote, "-1");
    comment_says(&fake, vote, "FAILED").await;
    within("the issue closed", fake.until(|s| (s.issues[&other].state == "closed").then_some(()))).await;
    assert_eq!(fake.issue(other).state_reason.as_deref(), Some("not_planned"));
    assert_eq!(fake.issue(number).state, "open");
    // Polity's own comment and edits triggered nothing.
    let rt = polity.stop().await;
    let mut proposals = rt.store().load_proposals(c, false).await.unwrap();
    proposals.sort_by_key(|p| p.id);
    let states: Vec<ProposalState> = proposals.iter().map(|p| p.state).collect();
    assert_eq!(states, [ProposalState::Passed, ProposalState::Failed]);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let votes: Vec<String> = fake.with(|s| {
        s.comments
            .iter()
            .filter(|c| c.number == other && c.body.starts_with("Proposal #2:"))
            .map(|c| c.body.clone())
            .collect()
    });
    assert_eq!(votes.len(), 1, "voted on once: {votes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_waits_for_the_maintainers_and_a_missed_delivery_is_asked_for_again() {
    let fake = FakeGitHub::start().await;
    let db = TestDb::sqlite("github_e2e_merge");
    let key = polity::store::SecretKey::generate();
    let (first, base) = listener().await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let c = set_up(&fake, db.url(), &key, &base).await;
    let polity = Polity::start(db.url(), &key, first, &base).await;
    collaborators_admitted(db.url(), c).await;
    polity.stop().await;
    grant_maintainers(db.url(), &key, c).await;

    // While Polity is away, Bob opens a pull request: GitHub cannot deliver it.
    let number = fake.open_pull(BOB, "Add a bench", "abc123").await;
    assert_eq!(fake.deliveries().last().unwrap().status_code, 0);
    // Forged and oversized deliveries are refused with nothing stored.
    let hook = format!("{base}/hooks/github/{}.gh", c.0);
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    let polity = Polity::start(db.url(), &key, listener, &base).await;
    let client = reqwest::Client::new();
    let forged = br#"{"action":"opened","issue":{"number":99,"title":"x"},"repository":{"full_name":"tidepool/garden"},"sender":{"login":"mallory"}}"#;
    let post = |body: Vec<u8>, sig: String| {
        client
            .post(&hook)
            .header("x-github-event", "issues")
            .header("x-github-delivery", "11111111-2222-3333-4444-555555555555")
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
    };
    assert_eq!(post(forged.to_vec(), signature("not the secret", forged)).await.unwrap().status(), 401);
    assert_eq!(post(forged.to_vec(), String::new()).await.unwrap().status(), 401);
    let huge = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(post(huge, "sha256=00".into()).await.unwrap().status(), 413);

    // At its start Polity asked GitHub to deliver the pull request again: it is voted on.
    let vote = vote_comment(&fake, number).await;
    let redelivered = fake.deliveries();
    assert!(redelivered.iter().any(|d| d.redelivery && d.status_code == 200), "{redelivered:?}");
    fake.react(BOB, vote, "+1");
    fake.react(CAROL, vote, "+1");
    comment_says(&fake, vote, "PASSED").await;
    within("the merge", fake.until(|s| s.issues[&number].pull.as_ref().is_some_and(|p| p.merged).then_some(()))).await;
    let merges = fake.requests_to("PUT", &format!("/pulls/{number}/merge"));
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0].body["merge_method"], "squash");
    let rt = polity.stop().await;
    let proposals = rt.store().load_proposals(c, false).await.unwrap();
    assert_eq!(proposals.len(), 1, "the forged delivery opened nothing");
    assert_eq!(proposals[0].state, ProposalState::Passed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_acts_with_installation_tokens_and_gets_a_new_one_when_one_expires() {
    let fake = FakeGitHub::start().await;
    let db = TestDb::sqlite("github_e2e_app");
    let key = polity::store::SecretKey::generate();
    let (first, base) = listener().await;
    let port = base.rsplit(':').next().unwrap().to_string();
    let c = set_up_as(&fake, db.url(), &key, &base, &format!("app_id={APP_ID}"), APP_PRIVATE_KEY_PEM).await;
    let polity = Polity::start(db.url(), &key, first, &base).await;
    collaborators_admitted(db.url(), c).await;
    polity.stop().await;
    grant_maintainers(db.url(), &key, c).await;
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await.unwrap();
    let polity = Polity::start(db.url(), &key, listener, &base).await;
    collaborators_admitted(db.url(), c).await;

    let number = fake.open_issue(STRANGER, "Add a pond", "Frogs welcome.").await;
    let vote = vote_comment(&fake, number).await;
    let bot = format!("{APP_SLUG}[bot]");
    assert_eq!(fake.with(|s| s.comments.iter().find(|x| x.id == vote).unwrap().user.clone()), bot);
    // The installation token expires: GitHub refuses it, and Polity asks for a new one.
    let tokens_made = || {
        let path = format!("/app/installations/{}/access_tokens", polity_tests::github::INSTALLATION_ID);
        fake.requests_to("POST", &path).len()
    };
    let made = tokens_made();
    fake.expire_installation_tokens();
    fake.react(BOB, vote, "+1");
    fake.react(CAROL, vote, "+1");
    comment_says(&fake, vote, "PASSED").await;
    within("the label", fake.until(|s| s.issues[&number].labels.contains(&"accepted".to_string()).then_some(()))).await;
    let again = tokens_made();
    assert!(again > made, "a new installation token ({made} before, {again} after)");
    // Every request with a JWT or an installation token, never the key itself.
    for r in fake.requests() {
        let token = r.token.clone().unwrap_or_default();
        assert!(token.starts_with("eyJ") || token.starts_with("ghs_"), "{r:?}");
    }
    polity.stop().await;
}

#[tokio::test]
async fn someone_made_a_collaborator_after_the_connection_started_becomes_a_member_at_the_next_poll() {
    use polity_port::{Adapter, Incoming, Start};
    let fake = FakeGitHub::start().await;
    let (events, mut incoming) = mpsc::channel(16);
    let config = serde_json::json!({ "repo": REPO, "token": OWNER_TOKEN, "api_url": fake.url() });
    let connection = polity_github::GitHubAdapter.start(config, Start::new("gh", events)).await.unwrap();
    let Some(Incoming::Space(space)) = incoming.recv().await else { panic!("no space announced") };
    let names: Vec<&str> = space.members.iter().map(|(_, name)| name.as_str()).collect();
    assert!(names.contains(&BOB) && !names.contains(&"dave"), "{names:?}");

    fake.change(|s| s.collaborators.push("dave".into()));
    let poller = connection.poller().unwrap();
    let polls: Vec<&str> = poller.polls().iter().map(|p| p.name).collect();
    assert!(polls.contains(&"collaborators"), "{polls:?}");
    poller.poll("collaborators", None).await.unwrap();
    let Some(Incoming::Members { space, members }) = incoming.recv().await else { panic!("no members handed over") };
    assert_eq!(space, REPO);
    assert!(members.iter().any(|(account, name)| name == "dave" && account.account.as_str() == "dave"), "{members:?}");
}
