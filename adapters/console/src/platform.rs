//! The console as a platform: every effect is printed as one line a person (or a script)
//! can read and answer.
//!
//! - `[#CHANNEL] msg ID by polity: TEXT` for each message the bot posts;
//!   `[#CHANNEL] edited msg ID by polity: TEXT` for each edit;
//! - `[only NAME] TEXT` for what only one person sees;
//! - `[#CHANNEL] msg ID by NAME: TEXT` echoes a member's message, so it can be reacted to.

use polity_governance::action::Action;
use polity_governance::ids::{MessageRef, Place};
use polity_governance::io::Effect;
use polity_governance::platform::{
    ActionInfo, ActionKind, BoxFuture, Capabilities, Performed, Platform, PlatformError, Request,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// The connection name of the console platform.
pub const CONSOLE: &str = "console";

/// The action type of a member's message in a channel.
pub const MESSAGE_ACTION: &str = "console.message";

/// A message the console is about to print: where, by whom, what.
#[derive(Clone, Copy, Debug)]
pub struct Posting<'a> {
    pub channel: &'a str,
    pub author: &'a str,
    pub text: &'a str,
}

/// What the ledger says of an effect or a message about to be printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not printed before: print it now, as message `.0` (when it posts one).
    First(Option<u64>),
    /// The effect was printed before (a retry after a crash): print nothing, answer as then.
    Before(Option<(u64, String)>),
}

/// Where the console keeps what it printed: message numbers and the idempotency keys of
/// the effects it performed. A claim is durable before its line is printed, so a restarted
/// console numbers messages on (a reaction to message 7 always means the same message) and
/// never prints an effect twice: the ledger is to the console what Discord's message nonce
/// is to Discord.
pub trait Ledger: Send + Sync {
    /// Claims the idempotency key `effect` (when there is one) and, with `post`, the next
    /// message number, in one durable write.
    fn claim<'a>(&'a self, effect: Option<&'a str>, post: Option<Posting<'a>>) -> BoxFuture<'a, Result<Claim, String>>;

    /// The channel of message `id`, when the console printed it.
    fn channel_of(&self, id: u64) -> BoxFuture<'_, Result<Option<String>, String>>;
}

/// A ledger in memory: for tests and for a console that keeps nothing.
#[derive(Default)]
pub struct MemoryLedger {
    inner: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    last: u64,
    channels: BTreeMap<u64, String>,
    effects: BTreeMap<String, Option<u64>>,
}

impl Ledger for MemoryLedger {
    fn claim<'a>(&'a self, effect: Option<&'a str>, post: Option<Posting<'a>>) -> BoxFuture<'a, Result<Claim, String>> {
        let mut s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(before) = effect.and_then(|k| s.effects.get(k).copied()) {
            let earlier = before.map(|id| (id, s.channels.get(&id).cloned().unwrap_or_default()));
            return Box::pin(std::future::ready(Ok(Claim::Before(earlier))));
        }
        let id = post.map(|p| {
            s.last += 1;
            let id = s.last;
            s.channels.insert(id, p.channel.to_string());
            id
        });
        if let Some(k) = effect {
            s.effects.insert(k.to_string(), id);
        }
        Box::pin(std::future::ready(Ok(Claim::First(id))))
    }

    fn channel_of(&self, id: u64) -> BoxFuture<'_, Result<Option<String>, String>> {
        let s = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        Box::pin(std::future::ready(Ok(s.channels.get(&id).cloned())))
    }
}

/// Where the console writes, and the ledger of what it wrote.
pub struct ConsolePlatform {
    out: Arc<Mutex<dyn Write + Send>>,
    ledger: Arc<dyn Ledger>,
}

impl ConsolePlatform {
    /// A console that keeps its ledger in memory.
    pub fn new(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self::with_ledger(out, Arc::new(MemoryLedger::default()))
    }

    /// A console whose ledger is `ledger` (Polity's store, so a restart continues).
    pub fn with_ledger(out: Arc<Mutex<dyn Write + Send>>, ledger: Arc<dyn Ledger>) -> Self {
        Self { out, ledger }
    }

    /// The message with that id, if the console printed it.
    ///
    /// # Errors
    /// When the ledger cannot be read.
    pub async fn message(&self, id: &str) -> Result<Option<MessageRef>, String> {
        let Ok(n) = id.parse::<u64>() else { return Ok(None) };
        Ok(self.ledger.channel_of(n).await?.map(|channel| MessageRef::new(CONSOLE, channel, id)))
    }

    /// Prints a message, numbered: once per idempotency key, when it has one.
    async fn post(&self, key: Option<&str>, channel: &str, author: &str, text: &str) -> Result<MessageRef, String> {
        let claim = self.ledger.claim(key, Some(Posting { channel, author, text })).await?;
        let (id, channel) = match claim {
            Claim::First(Some(id)) => {
                self.print(&format!("[{channel}] msg {id} by {author}: {text}"));
                (id, channel.to_string())
            }
            Claim::Before(Some((id, channel))) => (id, channel),
            Claim::First(None) | Claim::Before(None) => {
                return Err("the console's ledger gave the message no number".into());
            }
        };
        Ok(MessageRef::new(CONSOLE, channel, id.to_string()))
    }

    /// A member's message: numbered and echoed so others can react to it. With `key` (the
    /// line it was typed on), typing it again is answered with the same message, unprinted.
    ///
    /// # Errors
    /// When the ledger cannot be written; nothing is printed then.
    pub async fn member_message(
        &self,
        key: Option<&str>,
        channel: &str,
        author: &str,
        text: &str,
    ) -> Result<MessageRef, String> {
        self.post(key, channel, author, text).await
    }

    /// Prints a line only `name` sees.
    pub fn reply_to(&self, name: &str, text: &str) {
        for line in text.lines() {
            self.print(&format!("[only {name}] {line}"));
        }
    }

    /// Prints a line as it is.
    pub fn print(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        // A closed standard output must not stop governance: the record is in the store.
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            eprintln!("polity: cannot write to the console: {e}");
        }
    }

    fn channel_of(place: &Place) -> &str {
        &place.channel
    }

    fn describe(action: &Action) -> String {
        let params: Vec<String> = action.data.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} ({})", action.kind, params.join(", "))
    }

    /// Performs an effect once per idempotency key: a retry of an effect printed before
    /// prints nothing and answers as the first time did.
    async fn perform_once(&self, request: Request<'_>) -> Result<Performed, PlatformError> {
        let key = format!("outbox:{}", request.key);
        let key = Some(key.as_str());
        let posted = match request.effect {
            Effect::PostVote { place, text, .. } | Effect::Post { place, text } => {
                Some(self.post(key, Self::channel_of(place), "polity", text).await)
            }
            Effect::Execute { action, .. } if action.kind.as_str() == MESSAGE_ACTION => {
                let channel = action.place.as_ref().map_or("#general", |p| p.channel.as_str());
                let text = action.data.get("text").and_then(|t| t.as_str()).unwrap_or_default();
                let repost = format!("{} wrote: {text}", action.initiator.account);
                Some(self.post(key, channel, "polity", &repost).await)
            }
            _ => None,
        };
        if let Some(posted) = posted {
            return posted
                .map(|m| Performed { message: Some(m), ..Performed::default() })
                .map_err(PlatformError::Transient);
        }
        match self.ledger.claim(key, None).await.map_err(PlatformError::Transient)? {
            Claim::Before(_) => Ok(Performed::default()),
            Claim::First(_) => {
                self.print_effect(request);
                Ok(Performed::default())
            }
        }
    }

    /// Prints an effect that posts no message.
    fn print_effect(&self, request: Request<'_>) {
        match request.effect {
            // Posts are numbered by [`Self::post`].
            Effect::PostVote { .. } | Effect::Post { .. } => {}
            Effect::EditVote { text, .. } => {
                for m in request.vote_messages.iter().filter(|m| m.platform.as_str() == CONSOLE) {
                    self.print(&format!("[{}] edited msg {} by polity: {text}", m.channel, m.message));
                }
            }
            Effect::Notify { account, text, .. } => {
                if account.platform.as_str() == CONSOLE {
                    self.reply_to(&account.account, text);
                } else {
                    self.reply_to(&account.to_string(), text);
                }
            }
            Effect::RemoveReaction { message, account, emoji } => {
                self.print(&format!(
                    "[{}] polity removed {}'s {emoji} from msg {}",
                    message.channel, account.account, message.message
                ));
            }
            Effect::Revert { proposal, action } => {
                let channel = action.place.as_ref().map_or("#general", |p| p.channel.as_str());
                let why = proposal.map(|p| format!(" until proposal {p} decides")).unwrap_or_default();
                if action.kind.as_str() == MESSAGE_ACTION {
                    self.print(&format!(
                        "[{channel}] polity hid msg {} by {}{why}",
                        action.source_id, action.initiator.account
                    ));
                } else {
                    self.print(&format!("[{channel}] polity undid {}{why}", Self::describe(action)));
                }
            }
            Effect::Execute { action, .. } => {
                let channel = action.place.as_ref().map_or("#general", |p| p.channel.as_str()).to_string();
                self.print(&format!("[{channel}] polity did {}", Self::describe(action)));
            }
            Effect::Call { name, params, .. } => {
                self.print(&format!("[polity] called {name} {}", serde_json::Value::Object(params.clone())));
            }
            Effect::StartProcess { proposal, name, params } => {
                self.print(&format!(
                    "[polity] started {name} for proposal {proposal} {}",
                    serde_json::Value::Object(params.clone())
                ));
            }
        }
    }
}

impl Platform for ConsolePlatform {
    fn name(&self) -> &str {
        CONSOLE
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            reactions: true,
            edits: true,
            ephemeral: true,
            remove_others_reactions: true,
            serial: true,
            // One local stream: no platform limits its edits.
            edits_per_channel: None,
            ..Capabilities::default()
        }
    }

    fn actions(&self) -> Vec<ActionInfo> {
        actions()
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(self.perform_once(request))
    }
}

/// What the console offers policies.
#[must_use]
pub fn actions() -> Vec<ActionInfo> {
    vec![ActionInfo::new(
        MESSAGE_ACTION,
        ActionKind::Governable,
        "a member's message in a channel: hidden while voted on, reposted on pass",
        &[("text", "the message"), ("channel", "where it was posted")],
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use polity_governance::ids::{AccountRef, ProposalId};
    use std::future::Future;
    use std::task::{Context, Poll, Waker};

    /// Runs a future that the memory ledger makes ready at once.
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory ledger never waits"),
        }
    }

    fn console() -> (ConsolePlatform, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (ConsolePlatform::new(buf.clone()), buf)
    }

    fn output(buf: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    fn perform(c: &ConsolePlatform, key: i64, effect: &Effect, messages: &[MessageRef]) -> Performed {
        ready(c.perform(Request { key, retried: false, effect, vote_messages: messages })).unwrap()
    }

    fn vote() -> Effect {
        Effect::PostVote {
            proposal: ProposalId(1),
            place: Place::new(CONSOLE, "#general"),
            text: "Proposal #1".into(),
            options: vec![],
        }
    }

    #[test]
    fn posts_edits_and_private_lines_print_as_the_grammar_says() {
        let (c, buf) = console();
        ready(c.member_message(None, "#general", "alice", "hello")).unwrap();
        let posted = perform(&c, 1, &vote(), &[]).message.unwrap();
        assert_eq!(posted, MessageRef::new(CONSOLE, "#general", "2"));
        let edit = Effect::EditVote { proposal: ProposalId(1), text: "Proposal #1 — PASSED".into(), closed: false };
        perform(&c, 2, &edit, std::slice::from_ref(&posted));
        let notify = Effect::Notify { account: AccountRef::new(CONSOLE, "bob"), text: "not counted".into(), at: None };
        perform(&c, 3, &notify, &[]);
        assert_eq!(
            output(&buf),
            "[#general] msg 1 by alice: hello\n[#general] msg 2 by polity: Proposal #1\n\
             [#general] edited msg 2 by polity: Proposal #1 — PASSED\n[only bob] not counted\n"
        );
        assert_eq!(ready(c.message("2")).unwrap(), Some(posted));
        assert_eq!(ready(c.message("9")).unwrap(), None);
        assert_eq!(ready(c.message("x")).unwrap(), None);
    }

    #[test]
    fn an_effect_sent_again_with_its_key_is_printed_once_and_answered_as_before() {
        let (c, buf) = console();
        let first = perform(&c, 7, &vote(), &[]);
        let again = perform(&c, 7, &vote(), &[]);
        assert_eq!(first, again, "the retry gets the message the first attempt posted");
        let notify = Effect::Notify { account: AccountRef::new(CONSOLE, "bob"), text: "hi".into(), at: None };
        perform(&c, 8, &notify, &[]);
        perform(&c, 8, &notify, &[]);
        assert_eq!(output(&buf), "[#general] msg 1 by polity: Proposal #1\n[only bob] hi\n");
        // A new key is a new message.
        assert_eq!(perform(&c, 9, &vote(), &[]).message.unwrap().message, "2");
    }

    #[test]
    fn a_ledger_that_fails_prints_nothing() {
        struct Broken;
        impl Ledger for Broken {
            fn claim<'a>(&'a self, _: Option<&'a str>, _: Option<Posting<'a>>) -> BoxFuture<'a, Result<Claim, String>> {
                Box::pin(std::future::ready(Err("disk full".to_string())))
            }
            fn channel_of(&self, _: u64) -> BoxFuture<'_, Result<Option<String>, String>> {
                Box::pin(std::future::ready(Ok(None)))
            }
        }
        let buf = Arc::new(Mutex::new(Vec::new()));
        let c = ConsolePlatform::with_ledger(buf.clone(), Arc::new(Broken));
        let err =
            ready(c.perform(Request { key: 1, retried: false, effect: &vote(), vote_messages: &[] })).unwrap_err();
        assert!(matches!(err, PlatformError::Transient(ref m) if m == "disk full"), "{err:?}");
        assert!(ready(c.member_message(None, "#general", "a", "x")).is_err());
        assert_eq!(output(&buf), "");
    }
}
