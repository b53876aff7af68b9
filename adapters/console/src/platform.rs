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

#[derive(Default)]
struct Messages {
    next: u64,
    /// Every message by id: its channel, author and text.
    known: BTreeMap<u64, (String, String, String)>,
}

/// Where the console writes and which messages it knows.
pub struct ConsolePlatform {
    out: Arc<Mutex<dyn Write + Send>>,
    messages: Mutex<Messages>,
}

impl ConsolePlatform {
    pub fn new(out: Arc<Mutex<dyn Write + Send>>) -> Self {
        Self { out, messages: Mutex::new(Messages { next: 1, known: BTreeMap::new() }) }
    }

    /// Makes new message ids start after `last` (ids stay unique across restarts).
    pub fn numbered_after(&self, last: u64) {
        let mut m = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        m.next = m.next.max(last + 1);
    }

    /// Remembers a message posted before a restart.
    pub fn remember(&self, message: &MessageRef) {
        if let Ok(id) = message.message.parse::<u64>() {
            let mut m = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            m.known.insert(id, (message.channel.clone(), "polity".into(), String::new()));
            m.next = m.next.max(id + 1);
        }
    }

    /// The message with that id, if the console knows it.
    pub fn message(&self, id: &str) -> Option<MessageRef> {
        let n = id.parse::<u64>().ok()?;
        let m = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        m.known.get(&n).map(|(channel, _, _)| MessageRef::new(CONSOLE, channel.clone(), id))
    }

    /// The last message id handed out.
    pub fn last_message_id(&self) -> u64 {
        self.messages.lock().unwrap_or_else(PoisonError::into_inner).next - 1
    }

    fn post(&self, channel: &str, author: &str, text: &str) -> MessageRef {
        let id = {
            let mut m = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            let id = m.next;
            m.next += 1;
            m.known.insert(id, (channel.to_string(), author.to_string(), text.to_string()));
            id
        };
        self.print(&format!("[{channel}] msg {id} by {author}: {text}"));
        MessageRef::new(CONSOLE, channel, id.to_string())
    }

    /// A member's message: numbered and echoed so others can react to it.
    pub fn member_message(&self, channel: &str, author: &str, text: &str) -> MessageRef {
        self.post(channel, author, text)
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

    fn perform_now(&self, request: Request<'_>) -> Result<Performed, PlatformError> {
        match request.effect {
            Effect::PostVote { place, text, .. } | Effect::Post { place, text } => {
                let message = self.post(Self::channel_of(place), "polity", text);
                Ok(Performed { message: Some(message) })
            }
            Effect::EditVote { text, .. } => {
                for m in request.vote_messages.iter().filter(|m| m.platform.as_str() == CONSOLE) {
                    self.print(&format!("[{}] edited msg {} by polity: {text}", m.channel, m.message));
                }
                Ok(Performed::default())
            }
            Effect::Notify { account, text } => {
                if account.platform.as_str() == CONSOLE {
                    self.reply_to(&account.account, text);
                } else {
                    self.reply_to(&account.to_string(), text);
                }
                Ok(Performed::default())
            }
            Effect::RemoveReaction { message, account, emoji } => {
                self.print(&format!(
                    "[{}] polity removed {}'s {emoji} from msg {}",
                    message.channel, account.account, message.message
                ));
                Ok(Performed::default())
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
                Ok(Performed::default())
            }
            Effect::Execute { action, .. } => {
                let channel = action.place.as_ref().map_or("#general", |p| p.channel.as_str()).to_string();
                if action.kind.as_str() == MESSAGE_ACTION {
                    let text = action.data.get("text").and_then(|t| t.as_str()).unwrap_or_default();
                    let message = self.post(&channel, "polity", &format!("{} wrote: {text}", action.initiator.account));
                    return Ok(Performed { message: Some(message) });
                }
                self.print(&format!("[{channel}] polity did {}", Self::describe(action)));
                Ok(Performed::default())
            }
            Effect::Call { name, params, .. } => {
                self.print(&format!("[polity] called {name} {}", serde_json::Value::Object(params.clone())));
                Ok(Performed::default())
            }
            Effect::StartProcess { proposal, name, params } => {
                self.print(&format!(
                    "[polity] started {name} for proposal {proposal} {}",
                    serde_json::Value::Object(params.clone())
                ));
                Ok(Performed::default())
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
            ..Capabilities::default()
        }
    }

    fn actions(&self) -> Vec<ActionInfo> {
        vec![ActionInfo::new(
            MESSAGE_ACTION,
            ActionKind::Governable,
            "a member's message in a channel: hidden while voted on, reposted on pass",
            &[("text", "the message"), ("channel", "where it was posted")],
        )]
    }

    fn perform<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move { self.perform_now(request) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polity_governance::ids::{AccountRef, ProposalId};

    fn console() -> (ConsolePlatform, Arc<Mutex<Vec<u8>>>) {
        let buf = Arc::new(Mutex::new(Vec::new()));
        (ConsolePlatform::new(buf.clone()), buf)
    }

    fn output(buf: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buf.lock().unwrap().clone()).unwrap()
    }

    fn perform(c: &ConsolePlatform, effect: &Effect, messages: &[MessageRef]) -> Performed {
        let request = Request { key: 1, effect, vote_messages: messages };
        c.perform_now(request).unwrap()
    }

    #[test]
    fn posts_edits_and_private_lines_print_as_the_grammar_says() {
        let (c, buf) = console();
        c.member_message("#general", "alice", "hello");
        let vote = Effect::PostVote {
            proposal: ProposalId(1),
            place: Place::new(CONSOLE, "#general"),
            text: "Proposal #1".into(),
            options: vec![],
        };
        let posted = perform(&c, &vote, &[]).message.unwrap();
        assert_eq!(posted, MessageRef::new(CONSOLE, "#general", "2"));
        let edit = Effect::EditVote { proposal: ProposalId(1), text: "Proposal #1 — PASSED".into(), closed: false };
        perform(&c, &edit, std::slice::from_ref(&posted));
        perform(&c, &Effect::Notify { account: AccountRef::new(CONSOLE, "bob"), text: "not counted".into() }, &[]);
        assert_eq!(
            output(&buf),
            "[#general] msg 1 by alice: hello\n[#general] msg 2 by polity: Proposal #1\n\
             [#general] edited msg 2 by polity: Proposal #1 — PASSED\n[only bob] not counted\n"
        );
        assert_eq!(c.message("2"), Some(posted));
        assert_eq!(c.message("9"), None);
    }

    #[test]
    fn numbering_continues_after_a_restart() {
        let (c, _) = console();
        c.remember(&MessageRef::new(CONSOLE, "#general", "7"));
        c.numbered_after(3);
        assert_eq!(c.member_message("#general", "a", "x").message, "8");
        assert_eq!(c.message("7").unwrap().channel, "#general");
    }
}
