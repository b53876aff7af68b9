//! The platform host as an operator meets it: Polity's own bot for a platform, and a
//! community's own connection to it that starts when the community's decision enables it and
//! stops when the community removes it, without a restart. The platform is a test adapter
//! that hands the host what a real one would (spaces, commands, secrets, events) and records
//! how it was started and stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use polity::platforms::Registry;
use polity::run::{Bot, Host, Pacing, run_host};
use polity::serve::SystemClock;
use polity::spaces::Notice;
use polity::store::Store;
use polity_commands::{Invocation, Reply};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, Place};
use polity_governance::io::Inbound;
use polity_governance::platform::{BoxFuture, Platform, PlatformError};
use polity_port::{
    Adapter, AdapterError, CommandCall, Connection, Event, Incoming, PlatformSpec, PollSpec, Polled, Poller, Scopes,
    SecretTyped, Setting, SpaceInfo, Start, TestFailure,
};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Messages, Recording};
use tokio::sync::{mpsc, oneshot};

static CHAT: PlatformSpec = PlatformSpec {
    cred: false,
    name: "chat",
    title: "Chat",
    space: "room",
    controllers: "the room's owner",
    secret: Some("the chat token"),
    settings: &[Setting { name: "room", help: "the room's id", names_space: true }],
    env: &[],
};

/// What the test adapter did, in order, and the senders of the connections it started.
#[derive(Default)]
struct Seen {
    log: Vec<String>,
    senders: Vec<(String, mpsc::Sender<Incoming>)>,
    /// The platform its connections perform effects with, when a test gives one.
    platform: Option<Arc<Recording>>,
}

#[derive(Clone, Default)]
struct ChatAdapter(Arc<Mutex<Seen>>);

impl ChatAdapter {
    fn log(&self) -> Vec<String> {
        self.0.lock().unwrap().log.clone()
    }

    fn sender(&self, connection: &str) -> mpsc::Sender<Incoming> {
        let seen = self.0.lock().unwrap();
        seen.senders.iter().rev().find(|(c, _)| c == connection).map(|(_, s)| s.clone()).unwrap()
    }
}

struct ChatScopes(String, Option<Arc<Recording>>);

impl Scopes for ChatScopes {
    /// The test's platform, else one that performs every effect by doing nothing (and
    /// answers no post with a message).
    fn platform(&self, _spaces: &[String]) -> Arc<dyn Platform> {
        match &self.1 {
            Some(p) => p.clone(),
            None => Arc::new(Recording::new(&self.0).messages(Messages::None)),
        }
    }
}

struct ChatConnection {
    name: String,
    adapter: ChatAdapter,
}

/// A community's own chat account reads the room `side` every minute: what was posted after
/// the cursor, as the platform would list it (the item at the cursor comes again).
struct ChatPoller(ChatAdapter);

impl Poller for ChatPoller {
    fn polls(&self) -> Vec<PollSpec> {
        vec![PollSpec { name: "posts", every: Duration::from_secs(60) }]
    }

    fn poll(&self, name: &str, cursor: Option<String>) -> BoxFuture<'static, Result<Polled, PlatformError>> {
        let from = cursor.as_deref().unwrap_or("none").to_string();
        self.0.0.lock().unwrap().log.push(format!("poll {name} from {from}"));
        let first: u32 = cursor.and_then(|c| c.parse().ok()).unwrap_or(1);
        let events = (first..first + 2)
            .map(|n| {
                let author = AccountRef::new("own", "poster");
                let action = Action::new(ActionType::new("chat.message").unwrap(), author.clone(), format!("m{n}"))
                    .at(Place::new("own", "side"))
                    .with("text", format!("post {n}"));
                Event {
                    space: Some("side".into()),
                    dedup_key: format!("post:m{n}"),
                    input: Inbound::Action { action },
                    from: Some((author, "poster".into())),
                }
            })
            .collect();
        Box::pin(async move { Ok(Polled { events, cursor: Some((first + 1).to_string()) }) })
    }
}

impl Connection for ChatConnection {
    fn scopes(&self) -> Arc<dyn Scopes> {
        Arc::new(ChatScopes(self.name.clone(), self.adapter.0.lock().unwrap().platform.clone()))
    }
    fn poller(&self) -> Option<Arc<dyn Poller>> {
        (self.name != "chat").then(|| Arc::new(ChatPoller(self.adapter.clone())) as Arc<dyn Poller>)
    }
    fn stopped(&mut self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(std::future::pending())
    }
    fn shutdown(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { self.adapter.0.lock().unwrap().log.push(format!("stopped {}", self.name)) })
    }
}

impl Adapter for ChatAdapter {
    fn spec(&self) -> &'static PlatformSpec {
        &CHAT
    }
    fn check(&self, _config: &Value) -> Result<(), AdapterError> {
        Ok(())
    }
    fn start(&self, config: Value, start: Start) -> BoxFuture<'static, Result<Box<dyn Connection>, AdapterError>> {
        let adapter = self.clone();
        Box::pin(async move {
            if start.connection == "slow" {
                // A platform that never answers.
                adapter.0.lock().unwrap().log.push("starting slow".into());
                std::future::pending::<()>().await;
            }
            let token = config.get("token").and_then(Value::as_str).unwrap_or("none").to_string();
            let mut seen = adapter.0.lock().unwrap();
            seen.log.push(format!("started {} with {token}", start.connection));
            seen.senders.push((start.connection.clone(), start.events));
            drop(seen);
            Ok(Box::new(ChatConnection { name: start.connection, adapter }) as Box<dyn Connection>)
        })
    }
    fn connection_config(
        &self,
        _bot: Option<&Value>,
        _settings: &Map<String, Value>,
        secret: Option<&str>,
    ) -> Result<Value, AdapterError> {
        Ok(json!({ "token": secret }))
    }
    fn test(&self, _config: Value, _settings: Map<String, Value>) -> BoxFuture<'static, Result<String, TestFailure>> {
        Box::pin(async { Ok("it answers".to_string()) })
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn admin() -> AccountRef {
    AccountRef::new("chat", "admin")
}

/// Runs `line` as the admin in the room `hq` of Polity's chat bot; returns the reply.
async fn command(bot: &mpsc::Sender<Incoming>, id: &str, line: &str) -> Reply {
    let (answer, answered) = oneshot::channel();
    let invocation = Invocation { invoker: admin(), place: Place::new("chat", "hq"), id: id.into() };
    let parsed = polity_commands::parse::parse(line).unwrap();
    let call =
        CommandCall { space: "hq".into(), invocation, name: "admin".into(), manages_space: true, parsed, answer };
    bot.send(Incoming::Command(call)).await.unwrap();
    within(line, answered).await.unwrap()
}

/// Once Polity's own chat bot has started, its room `hq` (the admin's) becomes a community
/// of its own; returns the bot's sender.
async fn govern_hq(adapter: &ChatAdapter, notices: &mut mpsc::UnboundedReceiver<Notice>) -> mpsc::Sender<Incoming> {
    until_logged(adapter, "started chat with none").await;
    let bot = adapter.sender("chat");
    let hq = SpaceInfo { space: "hq".into(), name: "HQ".into(), owner: (admin(), "admin".into()), members: vec![] };
    bot.send(Incoming::Space(hq)).await.unwrap();
    within("the room governed", notices.recv()).await.unwrap();
    bot
}

/// Waits until the adapter's log holds `line`.
async fn until_logged(adapter: &ChatAdapter, line: &str) {
    within(line, async {
        while !adapter.log().iter().any(|l| l == line) {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// `polity run` with Polity's own chat bot, on `db`.
struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<polity::runtime::Runtime>>,
    notices: mpsc::UnboundedReceiver<Notice>,
}

async fn run(db: &str, key: &str, adapter: &ChatAdapter) -> Running {
    run_on(db, key, adapter, Arc::new(SystemClock)).await
}

async fn run_on(db: &str, key: &str, adapter: &ChatAdapter, clock: Arc<dyn polity::serve::Clock>) -> Running {
    let store = Store::connect(db).await.unwrap().with_secret_key(Some(key));
    store.migrate().await.unwrap();
    let mut registry = Registry::of(Vec::new());
    registry.register(Arc::new(adapter.clone()));
    let host = Host { bots: vec![Bot::new(Arc::new(adapter.clone()), json!({}))], registry, http: None };
    let (notices_tx, notices) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let pacing = Pacing { edit: chrono::TimeDelta::zero(), reconcile: chrono::TimeDelta::zero() };
        run_host(store, host, pacing, &*clock, shutdown, notices_tx).await
    });
    Running { stop, task, notices }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        within("polity run to stop", self.task).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_communitys_own_connection_starts_when_enabled_and_stops_when_removed_without_a_restart() {
    let db = support::TestDb::sqlite("host_live_connections");
    let key = polity::store::SecretKey::generate();
    let adapter = ChatAdapter::default();
    let polity = run(db.url(), &key, &adapter).await;
    let mut notices = polity.notices;
    let polity = Running { notices: mpsc::unbounded_channel().1, ..polity };

    // Polity's own chat bot serves the room hq: a community of its own.
    until_logged(&adapter, "started chat with none").await;
    let bot = adapter.sender("chat");
    let hq = SpaceInfo { space: "hq".into(), name: "HQ".into(), owner: (admin(), "admin".into()), members: vec![] };
    bot.send(Incoming::Space(hq)).await.unwrap();
    let governing = within("the room governed", notices.recv()).await.unwrap();
    assert!(matches!(&governing, Notice::Governing { space, community, .. } if space == "hq" && community == "HQ"));

    // The admin connects the community's own chat account: the secret is asked for, typed
    // privately, and the connection starts at once, with that token, as the decision enables it.
    let asked = command(&bot, "c1", "/integration add chat own").await;
    let prompt = asked.secret_prompt.expect("the token is asked for");
    assert!(!adapter.log().iter().any(|l| l.starts_with("started own")), "nothing starts before the secret");
    let (answer, answered) = oneshot::channel();
    let typed = SecretTyped {
        space: "hq".into(),
        invocation: Invocation { invoker: admin(), place: Place::new("chat", "hq"), id: "c1".into() },
        name: "admin".into(),
        prompt,
        secret: "own-token-123".into(),
        answer,
    };
    bot.send(Incoming::Secret(typed)).await.unwrap();
    let connected = within("the connection stored", answered).await.unwrap();
    assert_eq!(connected.text, "own (chat) is connected. `/integration test own` checks it.");
    until_logged(&adapter, "started own with own-token-123").await;

    // Every room the community's own account reaches is the community's.
    let own = adapter.sender("own");
    let side =
        SpaceInfo { space: "side".into(), name: "Side".into(), owner: (admin(), "admin".into()), members: vec![] };
    own.send(Incoming::Space(side)).await.unwrap();
    let governing = within("the side room governed", notices.recv()).await.unwrap();
    assert!(matches!(&governing, Notice::Governing { space, community, .. } if space == "side" && community == "HQ"));
    let tested = command(&bot, "c2", "/integration test own").await;
    assert_eq!(tested.text, "own (chat) works: it answers");

    // After a restart it starts again by itself, with its stored secret.
    polity.stop().await;
    let polity = run(db.url(), &key, &adapter).await;
    within("a restart", async {
        while adapter.log().iter().filter(|l| *l == "started own with own-token-123").count() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    until_logged(&adapter, "started chat with none").await;
    let bot = adapter.sender("chat");
    let hq = SpaceInfo { space: "hq".into(), name: "HQ".into(), owner: (admin(), "admin".into()), members: vec![] };
    bot.send(Incoming::Space(hq)).await.unwrap();
    let mut notices = polity.notices;
    let polity = Running { notices: mpsc::unbounded_channel().1, ..polity };
    let governing = within("the room governed again", notices.recv()).await.unwrap();
    assert!(matches!(&governing, Notice::Governing { space, .. } if space == "hq"));

    // Removed: stopped at once, no restart.
    let removed = command(&bot, "c3", "/integration remove own").await;
    assert_eq!(removed.text, "own (chat) is disconnected and its settings and secret deleted.");
    until_logged(&adapter, "stopped own").await;
    let listed = command(&bot, "c4", "/integration list").await;
    assert!(!listed.text.contains("own"), "{}", listed.text);

    polity.stop().await;
    let log: Vec<String> = adapter.log().into_iter().filter(|l| !l.starts_with("poll ")).collect();
    assert_eq!(
        log,
        [
            "started chat with none",
            "started own with own-token-123",
            "stopped own",
            "stopped chat",
            "started chat with none",
            "started own with own-token-123",
            "stopped own",
            "stopped chat"
        ],
        "each connection started once per run and stopped once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_spaces_whose_platform_reuses_an_id_never_shadow_each_others_inputs() {
    use polity::store::entities::inbox;
    use sea_orm::EntityTrait;

    let db = support::TestDb::sqlite("host_dedup_scope");
    let adapter = ChatAdapter::default();
    let mut polity = run(db.url(), &polity::store::SecretKey::generate(), &adapter).await;
    until_logged(&adapter, "started chat with none").await;
    let bot = adapter.sender("chat");
    for (room, owner) in [("r1", "ann"), ("r2", "ben")] {
        let who = (AccountRef::new("chat", owner), owner.to_string());
        let info = SpaceInfo { space: room.into(), name: format!("Room {room}"), owner: who, members: vec![] };
        bot.send(Incoming::Space(info)).await.unwrap();
        let governing = within("the room governed", polity.notices.recv()).await.unwrap();
        assert!(matches!(&governing, Notice::Governing { space, .. } if space == room));
    }
    // The same message id in both rooms (ids are per room on this platform), each delivered
    // twice.
    for room in ["r1", "r2", "r1", "r2"] {
        let author = AccountRef::new("chat", if room == "r1" { "ann" } else { "ben" });
        let action = Action::new(ActionType::new("chat.message").unwrap(), author.clone(), "m1")
            .at(Place::new("chat", room))
            .with("text", "hello");
        let event = Event {
            space: Some(room.into()),
            dedup_key: "message:m1".into(),
            input: Inbound::Action { action },
            from: Some((author, "someone".into())),
        };
        bot.send(Incoming::Event(event)).await.unwrap();
    }
    // A command after them: once it is answered, the events before it were handled.
    let (answer, answered) = oneshot::channel();
    let parsed = polity_commands::parse::parse("/whoami").unwrap();
    let invocation =
        Invocation { invoker: AccountRef::new("chat", "ann"), place: Place::new("chat", "r1"), id: "w".into() };
    let call = CommandCall { space: "r1".into(), invocation, name: "ann".into(), manages_space: true, parsed, answer };
    bot.send(Incoming::Command(call)).await.unwrap();
    within("the answer", answered).await.unwrap();

    let rt = {
        polity.stop.send(()).unwrap();
        within("polity run to stop", polity.task).await.unwrap().unwrap()
    };
    let rows = inbox::Entity::find().all(rt.store().db()).await.unwrap();
    let mut keys: Vec<(String, String)> =
        rows.into_iter().filter(|r| r.dedup_key == "message:m1").map(|r| (r.source, r.dedup_key)).collect();
    keys.sort();
    assert_eq!(
        keys,
        [("chat:r1".to_string(), "message:m1".to_string()), ("chat:r2".to_string(), "message:m1".to_string())],
        "one input per room, each once"
    );
}

/// Connects the community's own chat account in the room hq of Polity's chat bot (which must
/// be governed already): asked, typed, started.
async fn connect_own(adapter: &ChatAdapter, bot: &mpsc::Sender<Incoming>) {
    connect(bot, "own", "c1").await;
    until_logged(adapter, "started own with own-token-123").await;
}

/// `/integration add chat NAME` with its secret typed, as the admin.
async fn connect(bot: &mpsc::Sender<Incoming>, name: &str, id: &str) {
    let asked = command(bot, id, &format!("/integration add chat {name}")).await;
    let (answer, answered) = oneshot::channel();
    let typed = SecretTyped {
        space: "hq".into(),
        invocation: Invocation { invoker: admin(), place: Place::new("chat", "hq"), id: id.into() },
        name: "admin".into(),
        prompt: asked.secret_prompt.unwrap(),
        secret: "own-token-123".into(),
        answer,
    };
    bot.send(Incoming::Secret(typed)).await.unwrap();
    within("the connection stored", answered).await.unwrap();
}

/// The inbox keys of the posts read, once the poll's cursor is `cursor` (it is stored after
/// what the poll read is handled).
async fn posts_recorded(db: &str, cursor: &str) -> Vec<(String, String)> {
    use polity::store::entities::{inbox, polls};
    use sea_orm::EntityTrait;
    let store = Store::connect(db).await.unwrap();
    within(&format!("the cursor {cursor}"), async {
        loop {
            let rows = polls::Entity::find().all(store.db()).await.unwrap();
            if rows.iter().any(|r| r.cursor.as_deref() == Some(cursor)) {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    let rows = inbox::Entity::find().all(store.db()).await.unwrap();
    let mut keys: Vec<(String, String)> =
        rows.into_iter().filter(|r| r.dedup_key.starts_with("post:")).map(|r| (r.source, r.dedup_key)).collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_polls_run_on_the_loops_clock_from_their_stored_cursor_across_restarts() {
    let db = support::TestDb::sqlite("host_polls");
    let metrics = polity::metrics::install();
    let key = polity::store::SecretKey::generate();
    let adapter = ChatAdapter::default();
    let t0 = chrono::Utc::now();
    let clock = Arc::new(support::HandClock(tokio::sync::watch::channel(t0).0));
    let mut polity = run_on(db.url(), &key, &adapter, clock.clone()).await;
    let bot = govern_hq(&adapter, &mut polity.notices).await;
    connect_own(&adapter, &bot).await;

    // A new poll runs at once, from nothing; its posts are recorded under the connection.
    until_logged(&adapter, "poll posts from none").await;
    let source = |n: u32| ("1.own:side".to_string(), format!("post:m{n}"));
    assert_eq!(posts_recorded(db.url(), "2").await, [source(1), source(2)]);
    // Counted under the connection's platform, never a label per community and connection.
    let rendered = metrics.render();
    assert!(rendered.contains("polity_inputs_handled_total{platform=\"chat\"}"), "{rendered}");
    assert!(!rendered.contains("own"), "{rendered}");

    // Not again until a minute has passed on the loop's clock; then from where it got to. The
    // post read twice is recorded once.
    assert_eq!(adapter.log().iter().filter(|l| l.starts_with("poll ")).count(), 1);
    clock.0.send_replace(t0 + chrono::TimeDelta::seconds(60));
    until_logged(&adapter, "poll posts from 2").await;
    assert_eq!(posts_recorded(db.url(), "3").await, [source(1), source(2), source(3)]);

    // After a restart the poll keeps its time and its cursor.
    polity.stop().await;
    let polity = run_on(db.url(), &key, &adapter, clock.clone()).await;
    until_logged(&adapter, "stopped chat").await;
    within("the restart", async {
        while adapter.log().iter().filter(|l| *l == "started own with own-token-123").count() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!adapter.log().iter().any(|l| l == "poll posts from 3"), "not due yet: {:?}", adapter.log());
    clock.0.send_replace(t0 + chrono::TimeDelta::seconds(125));
    until_logged(&adapter, "poll posts from 3").await;
    polity.stop().await;
    let polls = adapter.log().iter().filter(|l| l.starts_with("poll ")).cloned().collect::<Vec<_>>();
    assert_eq!(polls, ["poll posts from none", "poll posts from 2", "poll posts from 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_starts_holds_up_no_other() {
    let db = support::TestDb::sqlite("host_slow_start");
    let adapter = ChatAdapter::default();
    let mut polity = run(db.url(), &polity::store::SecretKey::generate(), &adapter).await;
    let bot = govern_hq(&adapter, &mut polity.notices).await;
    // The first connection's platform never answers; the second starts all the same, and
    // removing the first while it starts leaves nothing behind.
    connect(&bot, "slow", "s1").await;
    until_logged(&adapter, "starting slow").await;
    connect_own(&adapter, &bot).await;
    let removed = command(&bot, "s2", "/integration remove slow").await;
    assert_eq!(removed.text, "slow (chat) is disconnected and its settings and secret deleted.");
    assert_eq!(command(&bot, "s3", "/whoami").await.text.lines().next(), Some("You are admin, an admin."));
    polity.stop().await;
}

/// Runs `line` as `who` in `room` of Polity's chat bot; returns the reply.
async fn command_in(bot: &mpsc::Sender<Incoming>, who: &str, room: &str, id: &str, line: &str) -> Reply {
    let (answer, answered) = oneshot::channel();
    let invoker = AccountRef::new("chat", who);
    let invocation = Invocation { invoker, place: Place::new("chat", room), id: id.into() };
    let parsed = polity_commands::parse::parse(line).unwrap();
    let call = CommandCall { space: room.into(), invocation, name: who.into(), manages_space: true, parsed, answer };
    bot.send(Incoming::Command(call)).await.unwrap();
    within(line, answered).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_a_community_lets_go_becomes_a_community_of_its_own_at_once() {
    let db = support::TestDb::sqlite("host_let_go");
    let adapter = ChatAdapter::default();
    let mut polity = run(db.url(), &polity::store::SecretKey::generate(), &adapter).await;
    until_logged(&adapter, "started chat with none").await;
    let bot = adapter.sender("chat");
    bot.send(Incoming::Invite("https://chat.example/add-polity".into())).await.unwrap();
    let invite = within("the invite", polity.notices.recv()).await.unwrap();
    assert!(matches!(invite, Notice::Invite { .. }), "{invite:?}");
    let hq = SpaceInfo { space: "hq".into(), name: "HQ".into(), owner: (admin(), "admin".into()), members: vec![] };
    bot.send(Incoming::Space(hq)).await.unwrap();
    within("hq governed", polity.notices.recv()).await.unwrap();

    // HQ asks for the room r2; Polity's bot is in it, and its owner confirms with HQ's code.
    let asked = command(&bot, "a1", "/integration add chat annex room=r2").await;
    let code = asked.text.split("/integration confirm ").nth(1).unwrap().split('`').next().unwrap().to_string();
    let owner = (AccountRef::new("chat", "rita"), "rita".to_string());
    let r2 = SpaceInfo { space: "r2".into(), name: "Annex".into(), owner: owner.clone(), members: vec![owner] };
    bot.send(Incoming::Space(r2)).await.unwrap();
    let waiting = within("r2 waiting", polity.notices.recv()).await.unwrap();
    assert!(matches!(&waiting, Notice::Waiting { space, .. } if space == "r2"), "{waiting:?}");
    let joined = command_in(&bot, "rita", "r2", "a2", &format!("/integration confirm {code}")).await;
    assert_eq!(joined.text, "This room now belongs to the community \"HQ\": its members are members there.");
    let governing = within("r2 governed", polity.notices.recv()).await.unwrap();
    assert!(matches!(&governing, Notice::Governing { space, community, .. } if space == "r2" && community == "HQ"));

    // HQ lets it go: at once, without a restart, the room is settled anew (nobody else asked
    // for it, so it becomes a community of its own), and HQ's other room stays.
    let removed = command(&bot, "a3", "/integration remove annex").await;
    assert_eq!(removed.text, "annex (chat) is disconnected and its settings and secret deleted.");
    let settled = within("r2 settled anew", polity.notices.recv()).await.unwrap();
    assert!(
        matches!(&settled, Notice::Governing { space, community, .. } if space == "r2" && community == "Annex"),
        "{settled:?}"
    );
    let there = command_in(&bot, "rita", "r2", "a4", "/whoami").await;
    assert!(there.text.starts_with("You are rita, an admin."), "{}", there.text);
    let here = command(&bot, "a5", "/whoami").await;
    assert!(here.text.starts_with("You are admin, an admin."), "{}", here.text);
    polity.stop().await;
}

/// Runs `line` as `who` in `channel` of the room `hq`; returns the reply.
async fn command_at(bot: &mpsc::Sender<Incoming>, who: &str, channel: &str, id: &str, line: &str) -> Reply {
    let (answer, answered) = oneshot::channel();
    let invoker = AccountRef::new("chat", who);
    let invocation = Invocation { invoker, place: Place::new("chat", channel), id: id.into() };
    let parsed = polity_commands::parse::parse(line).unwrap();
    let call =
        CommandCall { space: "hq".into(), invocation, name: who.into(), manages_space: who == "admin", parsed, answer };
    bot.send(Incoming::Command(call)).await.unwrap();
    within(line, answered).await.unwrap()
}

/// The issue's proof, through `polity run` as a platform drives it: one channel's requests
/// hang for good and another's are rate limited for ten minutes; meanwhile a vote in a third
/// channel opens, passes at its deadline on the loop's clock and is announced, and members'
/// slash commands are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_host_a_hung_channel_and_a_ten_minute_rate_limit_hold_up_no_vote_and_no_command() {
    let db = support::TestDb::sqlite("host_troubled");
    troubled_channels_hold_up_nothing(db.url()).await;
    if let Some(db) = support::TestDb::postgres("host_troubled") {
        troubled_channels_hold_up_nothing(db.url()).await;
    }
}

async fn troubled_channels_hold_up_nothing(url: &str) {
    use chrono::{TimeDelta, TimeZone, Utc};
    let t0 = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let clock = Arc::new(support::HandClock(tokio::sync::watch::channel(t0).0));
    let ten_minutes = PlatformError::RateLimited { retry_after: Some(Duration::from_secs(600)) };
    let (answered_tx, mut answered) = mpsc::unbounded_channel();
    let platform = Arc::new(
        Recording::new("chat")
            .clock(clock.clone())
            .notify_answers(answered_tx)
            .in_channel("#hang", support::Answer::Hang)
            .in_channel("#slow", support::Answer::Fail(ten_minutes)),
    );
    let seen = platform.log();
    let adapter = ChatAdapter::default();
    adapter.0.lock().unwrap().platform = Some(platform);
    let key = polity::store::SecretKey::generate();
    let mut polity = run_on(url, &key, &adapter, clock.clone()).await;
    let bot = govern_hq(&adapter, &mut polity.notices).await;
    let policy = r#"name = "Quick"\nkind = "platform"\n[vote]\nquorum = 0\npass = "no-objection"\ncloses = "90s""#;
    let installed = command_at(&bot, "admin", "hq", "i", &format!("/policy install Quick {policy}")).await;
    assert!(installed.text.contains("\"Quick\" is installed"), "{installed:?}");

    // A proposal in each channel: one vote message hangs for good, one waits ten minutes.
    command_at(&bot, "admin", "#hang", "p1", "/propose Lights in the hall").await;
    command_at(&bot, "admin", "#slow", "p2", "/propose Paint the door").await;
    within("the 429", answered.recv()).await;
    command_at(&bot, "admin", "#vote", "p3", "/propose Buy a kettle").await;
    within("the third vote message", answered.recv()).await;
    // Its deadline comes on the loop's clock: decided, its message edited and the outcome
    // announced, while the first channel still hangs and the second still waits.
    clock.0.send_replace(t0 + TimeDelta::seconds(90));
    within("the closing edit", answered.recv()).await;
    within("the announcement", answered.recv()).await;
    // And a member's command is answered at once.
    let listed = command_at(&bot, "alice", "#vote", "q", "/proposals all").await;
    assert!(listed.text.contains("Buy a kettle"), "{listed:?}");
    let seen = seen.timed();
    let announced = seen
        .iter()
        .filter(|(_, e)| matches!(e, polity_governance::io::Effect::Post { place, text } if place.channel == "#vote" && text.contains("passed")))
        .count();
    assert_eq!(announced, 1, "{seen:#?}");
    let slow = seen
        .iter()
        .filter(|(_, e)| matches!(e, polity_governance::io::Effect::PostVote { place, .. } if place.channel == "#slow"))
        .count();
    assert_eq!(slow, 1, "the rate-limited post waits for its 600 s: {seen:#?}");
    // Not stopped gracefully: a shutdown waits for the hung request's time limit.
    polity.task.abort();
}
