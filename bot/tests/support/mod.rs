//! Test support shared by the bot's tests: databases (from `polity-tests`), the console
//! binary, running a scenario on every database, and a recording platform ([`Recording`]).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

pub use polity_tests::db::TestDb;

/// A clock that moves only when the test says (`clock.0.send_replace(t)`).
pub struct HandClock(pub tokio::sync::watch::Sender<chrono::DateTime<chrono::Utc>>);

impl polity::serve::Clock for HandClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.borrow()
    }
    fn sleep_until(&self, at: chrono::DateTime<chrono::Utc>) -> polity_governance::platform::BoxFuture<'_, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, so waiting cannot fail.
            let _reached = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// Runs `polity console` on `db` with `script` as its input (and `POLITY_SECRET_KEY` when
/// given); returns what it printed, after checking it exited 0.
pub fn run_console(db: &str, secret_key: Option<&str>, script: &str) -> (String, String) {
    run_console_bytes(db, secret_key, script.as_bytes())
}

/// [`run_console`] with any bytes as input, text or not.
pub fn run_console_bytes(db: &str, secret_key: Option<&str>, script: &[u8]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.arg("console")
        .env("DATABASE_URL", db)
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("POLITY_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = secret_key {
        cmd.env("POLITY_SECRET_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(script).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "polity console failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Runs each named scenario `fn(&str)` on a fresh SQLite database, and on a fresh PostgreSQL
/// database when `POLITY_TEST_DATABASE_URL` is set. The test file imports `TestDb`.
#[allow(unused_macros)]
macro_rules! on_every_database {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let db = super::TestDb::sqlite(stringify!($name));
                    super::$name(db.url());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = super::TestDb::postgres(stringify!($name)) else { return };
                    super::$name(db.url());
                }
            )*
        }
    };
}

/// A platform declared by a test, with no connection behind it: what `/integration add`
/// offers and asks for, as a real adapter would declare it. Starting or testing it fails.
pub struct Declared(pub &'static polity_port::PlatformSpec);

impl polity_port::Adapter for Declared {
    fn spec(&self) -> &'static polity_port::PlatformSpec {
        self.0
    }
    fn check(&self, _config: &serde_json::Value) -> Result<(), polity_port::AdapterError> {
        Ok(())
    }
    fn start(
        &self,
        _config: serde_json::Value,
        _start: polity_port::Start,
    ) -> polity_port::BoxFuture<'static, Result<Box<dyn polity_port::Connection>, polity_port::AdapterError>> {
        Box::pin(async { Err(polity_port::AdapterError::Start("a declared test platform does not run".into())) })
    }
    fn connection_config(
        &self,
        _bot: Option<&serde_json::Value>,
        settings: &serde_json::Map<String, serde_json::Value>,
        _secret: Option<&str>,
    ) -> Result<serde_json::Value, polity_port::AdapterError> {
        Ok(serde_json::Value::Object(settings.clone()))
    }
    fn test(
        &self,
        _config: serde_json::Value,
        _settings: serde_json::Map<String, serde_json::Value>,
    ) -> polity_port::BoxFuture<'static, Result<String, polity_port::TestFailure>> {
        Box::pin(async { Err(polity_port::TestFailure::Unreachable("a declared test platform has no server".into())) })
    }
}

const fn setting(name: &'static str, help: &'static str) -> polity_port::Setting {
    polity_port::Setting { name, help, names_space: false }
}

/// Slack as its adapter declares it, for tests of `/integration`.
pub static SLACK: polity_port::PlatformSpec = polity_port::PlatformSpec {
    cred: false,
    name: "slack",
    title: "Slack",
    space: "workspace",
    controllers: "a workspace admin",
    secret: Some("the bot token (xoxb-...)"),
    settings: &[setting("workspace", "the workspace's id")],
    env: &[],
};

/// GitHub as its adapter declares it, for tests of `/integration`.
pub static GITHUB: polity_port::PlatformSpec = polity_port::PlatformSpec {
    cred: false,
    name: "github",
    title: "GitHub",
    space: "repository",
    controllers: "a repository admin",
    secret: Some("the token"),
    settings: &[setting("repository", "OWNER/NAME")],
    env: &[],
};

/// SourceCred as its adapter declares it (no secret), for tests of `/integration`.
pub static SOURCECRED: polity_port::PlatformSpec = polity_port::PlatformSpec {
    cred: true,
    name: "sourcecred",
    title: "SourceCred",
    space: "instance",
    controllers: "its operator",
    secret: None,
    settings: &[setting("base_url", "the instance's public URL")],
    env: &[],
};

/// Registers the declared test platforms with `rt`.
/// Waits until the serving loop behind `tx` has taken everything sent before and performed
/// what is due at its clock's time: a job fires the deadlines and starts the due effects,
/// again until nothing is left in flight. (Effects run on tasks of their own, so a job that
/// runs after one was started is no proof that it ended.)
pub async fn quiet(tx: &tokio::sync::mpsc::Sender<polity::serve::Input>) {
    loop {
        let (done, busy) = tokio::sync::oneshot::channel();
        let job = polity::serve::Input::job(move |rt, now| {
            Box::pin(async move {
                rt.fire_deadlines(now).await?;
                rt.start_due(now).await?;
                let _ = done.send(rt.effects_in_flight());
                Ok(())
            })
        });
        tx.send(job).await.unwrap();
        if !busy.await.unwrap() {
            return;
        }
    }
}

pub fn declare_platforms(rt: &mut polity::runtime::Runtime) {
    for spec in [&SLACK, &GITHUB, &SOURCECRED] {
        rt.registry_mut().register(std::sync::Arc::new(Declared(spec)));
    }
}

// The recording platform.

use chrono::{DateTime, Utc};
use polity_governance::ids::{AccountRef, MessageRef};
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, BoxFuture, Capabilities, Performed, Platform, PlatformError, ReactionRead, Request,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a [`Recording`] platform does with a request, when a test scripted something other
/// than performing it at once.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Refused with this error; nothing is done.
    Fail(PlatformError),
    /// Done, but the answer never comes (the request hangs for good).
    Hang,
}

/// How one request to a [`Recording`] platform ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Performed and answered.
    Done,
    /// Refused with this error; nothing was done.
    Failed(PlatformError),
    /// Performed, and never answered.
    Hung,
}

/// One request a [`Recording`] platform received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The platform's clock's time then, if it was given one.
    pub at: Option<DateTime<Utc>>,
    /// The idempotency key (the outbox row id).
    pub key: i64,
    pub effect: Effect,
    /// The vote messages the dispatcher named with it (for edits).
    pub vote_messages: Vec<MessageRef>,
    pub outcome: Outcome,
}

impl Call {
    /// Whether the platform carried it out (answered or not).
    pub fn performed(&self) -> bool {
        !matches!(self.outcome, Outcome::Failed(_))
    }
}

/// A [`Recording`] platform's log, shared: every request it received, in order. Outlives the
/// runtime, as a real platform outlives our process.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Call>>>);

impl Log {
    /// Every request received, repeats and failures included.
    pub fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    /// How many requests were received.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Every request received, with the clock's time (the platform must have a clock).
    pub fn timed(&self) -> Vec<(DateTime<Utc>, Effect)> {
        let calls = self.0.lock().unwrap();
        calls.iter().map(|c| (c.at.expect("a recording platform with a clock"), c.effect.clone())).collect()
    }

    /// The effects carried out, in order (a repeat with the same key each time).
    pub fn performed(&self) -> Vec<Effect> {
        let calls = self.0.lock().unwrap();
        calls.iter().filter(|c| c.performed()).map(|c| c.effect.clone()).collect()
    }

    /// The effects carried out by idempotency key, as a platform that honours the key (like
    /// Discord's nonce) does them: a repeat of a key is not done again.
    pub fn performed_by_key(&self) -> BTreeMap<i64, Effect> {
        let mut done = BTreeMap::new();
        for c in self.0.lock().unwrap().iter().filter(|c| c.performed()) {
            done.entry(c.key).or_insert_with(|| c.effect.clone());
        }
        done
    }

    /// The key of every request received, repeats included.
    pub fn keys(&self) -> Vec<i64> {
        self.0.lock().unwrap().iter().map(|c| c.key).collect()
    }
}

/// What a [`Recording`] platform answers a post with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Messages {
    /// Nothing, whatever it posted.
    None,
    /// A vote message `m{key}` in the channel it was posted to.
    Votes,
    /// Every post, vote message or not, as `m{key}` in the channel it was posted to.
    VotesAndPosts,
    /// A vote message `m{proposal}` in the channel it was posted to.
    VotesByProposal,
}

/// What a [`Recording`] platform was told to do instead of performing a request at once.
#[derive(Default)]
struct Script {
    /// Requests with these keys.
    keys: BTreeMap<i64, Answer>,
    /// Posts (vote messages or not) to these channels.
    channels: Vec<(String, Answer)>,
    /// Every request.
    always: Option<Answer>,
    /// The next requests not answered above, one each, in order.
    next: VecDeque<Answer>,
}

impl Script {
    fn answer(&mut self, r: &Request<'_>) -> Option<Answer> {
        if let Some(a) = self.keys.get(&r.key) {
            return Some(a.clone());
        }
        let channel = match r.effect {
            Effect::PostVote { place, .. } | Effect::Post { place, .. } => Some(place.channel.as_str()),
            _ => None,
        };
        if let Some((_, a)) = self.channels.iter().find(|(c, _)| Some(c.as_str()) == channel) {
            return Some(a.clone());
        }
        if let Some(a) = &self.always {
            return Some(a.clone());
        }
        self.next.pop_front()
    }
}

type Hook = Box<dyn Fn(&Request<'_>) + Send + Sync>;

/// A test platform that performs every effect by writing it down in its [`Log`], answers posts
/// with message refs ([`Messages`]), and does what the test scripted instead where it did
/// ([`Answer`]: fail, hang). Built with setters:
/// `Recording::new("chat").reactions().edits().clock(clock).in_channel("#hang", Answer::Hang)`.
/// It can hold the reactions on its messages as the truth [`Platform::read_reactions`]
/// returns ([`Recording::reads_reactions`], [`Recording::hold`]); a reaction removal it
/// performs takes one away.
pub struct Recording {
    name: String,
    capabilities: Capabilities,
    actions: Vec<ActionInfo>,
    messages: Messages,
    clock: Option<Arc<dyn polity::serve::Clock>>,
    log: Log,
    script: Mutex<Script>,
    /// The reactions on its messages: which message, who, which emoji.
    held: Mutex<Vec<(MessageRef, AccountRef, String)>>,
    reads: Mutex<u32>,
    /// Whether a read of reactions never answers (a hung platform).
    reads_hang: Mutex<bool>,
    answered: Option<mpsc::UnboundedSender<()>>,
    hung: Option<mpsc::UnboundedSender<()>>,
    read: Option<mpsc::UnboundedSender<()>>,
    on_perform: Option<Hook>,
}

impl Recording {
    /// A platform called `name`, with no capabilities, that performs everything at once and
    /// answers a vote message with `m{key}` ([`Messages::Votes`]).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            capabilities: Capabilities::default(),
            actions: Vec::new(),
            messages: Messages::Votes,
            clock: None,
            log: Log::default(),
            script: Mutex::new(Script::default()),
            held: Mutex::new(Vec::new()),
            reads: Mutex::new(0),
            reads_hang: Mutex::new(false),
            answered: None,
            hung: None,
            read: None,
            on_perform: None,
        }
    }

    pub fn reactions(mut self) -> Self {
        self.capabilities.reactions = true;
        self
    }

    pub fn edits(mut self) -> Self {
        self.capabilities.edits = true;
        self
    }

    pub fn ephemeral(mut self) -> Self {
        self.capabilities.ephemeral = true;
        self
    }

    /// It can read the reactions on its messages: those [`Recording::hold`] put there.
    pub fn reads_reactions(mut self) -> Self {
        self.capabilities.read_reactions = true;
        self
    }

    /// It sends no event for a reaction: its votes are read back every `every` (and at their
    /// deadline).
    pub fn reactions_polled(mut self, every: Duration) -> Self {
        self.capabilities.reactions_polled = Some(every);
        self
    }

    /// It allows `edits` vote-message edits per channel per `window`.
    /// It declares its own time limit for a request.
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.capabilities.request_timeout = Some(limit);
        self
    }

    pub fn edits_per_channel(mut self, edits: u32, window: Duration) -> Self {
        self.capabilities.edits_per_channel = Some((edits, window));
        self
    }

    /// The actions, triggers and processes it offers.
    pub fn offers(mut self, actions: Vec<ActionInfo>) -> Self {
        self.actions = actions;
        self
    }

    /// What it answers posts with.
    pub fn messages(mut self, messages: Messages) -> Self {
        self.messages = messages;
        self
    }

    /// Each request is logged with this clock's time.
    pub fn clock(mut self, clock: Arc<dyn polity::serve::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// It writes into `log` (shared with another platform, or kept by the test).
    pub fn log_to(mut self, log: Log) -> Self {
        self.log = log;
        self
    }

    /// Posts to `channel` (vote messages or not) get `answer`, every time.
    pub fn in_channel(self, channel: &str, answer: Answer) -> Self {
        self.script.lock().unwrap().channels.push((channel.into(), answer));
        self
    }

    /// Every request gets `answer`.
    pub fn always(self, answer: Answer) -> Self {
        self.script.lock().unwrap().always = Some(answer);
        self
    }

    /// The next requests (those no other rule answers) fail with `errors`, one each, in order;
    /// then they are performed.
    pub fn fail_next(self, errors: impl IntoIterator<Item = PlatformError>) -> Self {
        self.script.lock().unwrap().next.extend(errors.into_iter().map(Answer::Fail));
        self
    }

    /// Told (once per answer) each time it answers a request, done or failed.
    pub fn notify_answers(mut self, tx: mpsc::UnboundedSender<()>) -> Self {
        self.answered = Some(tx);
        self
    }

    /// Told each time a request reaches it that will never be answered.
    pub fn notify_hangs(mut self, tx: mpsc::UnboundedSender<()>) -> Self {
        self.hung = Some(tx);
        self
    }

    /// Told each time its reactions are read.
    pub fn notify_reads(mut self, tx: mpsc::UnboundedSender<()>) -> Self {
        self.read = Some(tx);
        self
    }

    /// `hook` sees each request it carries out (answered or not), before it is logged.
    pub fn on_perform(mut self, hook: impl Fn(&Request<'_>) + Send + Sync + 'static) -> Self {
        self.on_perform = Some(Box::new(hook));
        self
    }

    /// Requests with `key` get `answer` from now on (`None`: performed again).
    pub fn answer_key(&self, key: i64, answer: Option<Answer>) {
        let mut script = self.script.lock().unwrap();
        match answer {
            Some(a) => script.keys.insert(key, a),
            None => script.keys.remove(&key),
        };
    }

    /// Its log (a handle on the same one).
    pub fn log(&self) -> Log {
        self.log.clone()
    }

    /// On the platform, `who` reacted with `emoji` on `message` (`added`), or took it back.
    pub fn hold(&self, message: &MessageRef, who: &AccountRef, emoji: &str, added: bool) {
        let mut held = self.held.lock().unwrap();
        held.retain(|(m, a, e)| !(m == message && a == who && e == emoji));
        if added {
            held.push((message.clone(), who.clone(), emoji.into()));
        }
    }

    /// How many times its reactions were read.
    /// From now on a read of reactions never answers (`true`), or answers again.
    pub fn hang_reads(&self, hang: bool) {
        *self.reads_hang.lock().unwrap() = hang;
    }

    pub fn reads(&self) -> u32 {
        *self.reads.lock().unwrap()
    }

    fn message(&self, r: &Request<'_>) -> Option<MessageRef> {
        let (place, id) = match (self.messages, r.effect) {
            (Messages::Votes | Messages::VotesAndPosts, Effect::PostVote { place, .. })
            | (Messages::VotesAndPosts, Effect::Post { place, .. }) => (place, format!("m{}", r.key)),
            (Messages::VotesByProposal, Effect::PostVote { proposal, place, .. }) => {
                (place, format!("m{}", proposal.0))
            }
            _ => return None,
        };
        Some(MessageRef::new(self.name.clone(), place.channel.clone(), id))
    }
}

impl Platform for Recording {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn actions(&self) -> Vec<ActionInfo> {
        self.actions.clone()
    }

    fn perform<'a>(&'a self, r: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move {
            let outcome = match self.script.lock().unwrap().answer(&r) {
                None => Outcome::Done,
                Some(Answer::Fail(e)) => Outcome::Failed(e),
                Some(Answer::Hang) => Outcome::Hung,
            };
            if !matches!(outcome, Outcome::Failed(_)) {
                if let Some(hook) = &self.on_perform {
                    hook(&r);
                }
                if let Effect::RemoveReaction { message, account, emoji } = r.effect {
                    self.hold(message, account, emoji, false);
                }
            }
            self.log.0.lock().unwrap().push(Call {
                at: self.clock.as_ref().map(|c| c.now()),
                key: r.key,
                effect: r.effect.clone(),
                vote_messages: r.vote_messages.to_vec(),
                outcome: outcome.clone(),
            });
            match outcome {
                Outcome::Hung => {
                    if let Some(tx) = &self.hung {
                        let _ = tx.send(());
                    }
                    std::future::pending().await
                }
                Outcome::Failed(e) => {
                    if let Some(tx) = &self.answered {
                        let _ = tx.send(());
                    }
                    Err(e)
                }
                Outcome::Done => {
                    if let Some(tx) = &self.answered {
                        let _ = tx.send(());
                    }
                    Ok(Performed { message: self.message(&r), ..Performed::default() })
                }
            }
        })
    }

    fn read_reactions<'a>(
        &'a self,
        message: &'a MessageRef,
        emoji: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<ReactionRead>, PlatformError>> {
        Box::pin(async move {
            if !self.capabilities.read_reactions {
                return Err(PlatformError::Permanent(format!("{} cannot read reactions", self.name)));
            }
            *self.reads.lock().unwrap() += 1;
            if let Some(tx) = &self.read {
                let _ = tx.send(());
            }
            if *self.reads_hang.lock().unwrap() {
                return std::future::pending().await;
            }
            let held = self.held.lock().unwrap();
            Ok(emoji
                .iter()
                .map(|e| ReactionRead {
                    emoji: e.clone(),
                    users: held
                        .iter()
                        .filter(|(m, _, x)| m == message && x == e)
                        .map(|(_, a, _)| (a.clone(), a.account.to_string()))
                        .collect(),
                })
                .collect())
        })
    }
}
