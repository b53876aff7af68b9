//! `polity console`: one community on the console platform, driven by lines of standard
//! input, on the store like any other platform. The session starts as `admin` in `#general`.

use crate::ports::CommunityPorts;
use crate::runtime::{Handled, Runtime};
use crate::store::Store;
use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use polity_commands::Invocation;
use polity_console::{CONSOLE, ConsolePlatform, Line, MESSAGE_ACTION, parse_line};
use polity_governance::GovError;
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, CommunityId, Place};
use polity_governance::io::Inbound;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

/// The console's community.
pub const COMMUNITY: &str = "console";

pub struct Session {
    rt: Runtime,
    console: Arc<ConsolePlatform>,
    community: CommunityId,
    user: String,
    channel: String,
    /// How far `/wait` has moved the clock.
    offset: TimeDelta,
    /// Distinguishes this session's inputs from an earlier session's in the inbox.
    session: i64,
    seq: u64,
    /// A command asked for a secret: the next line is it, and it is never printed.
    pending_secret: Option<(polity_commands::SecretPrompt, Invocation)>,
    /// The last message number written to the store.
    saved_numbering: u64,
}

impl Session {
    /// Opens the console on `store`, writing to `out`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn open(store: Store, out: Arc<Mutex<dyn Write + Send>>) -> Result<Self> {
        let mut rt = Runtime::open(store).await?;
        let console = Arc::new(ConsolePlatform::new(out));
        rt.add_platform(console.clone());
        rt.set_fallback_platform(console.clone());
        let community = rt.ensure_community(COMMUNITY, "admin", AccountRef::new(CONSOLE, "admin")).await?;
        for p in rt.store().load_proposals(community, false).await? {
            for m in p.vote.iter().flat_map(|v| v.messages.iter()) {
                console.remember(m);
            }
        }
        if let Some(last) = rt.store().setting("console.last_message").await? {
            console.numbered_after(last.parse().unwrap_or(0));
        }
        let session = Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Ok(Self {
            rt,
            console,
            community,
            user: "admin".into(),
            channel: "#general".into(),
            offset: TimeDelta::zero(),
            session,
            seq: 0,
            pending_secret: None,
            saved_numbering: 0,
        })
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }

    /// The current user's account: on the console, or `PLATFORM:ACCOUNT` elsewhere.
    fn account(&self) -> AccountRef {
        match self.user.split_once(':') {
            Some((platform, account)) => AccountRef::new(platform, account),
            None => AccountRef::new(CONSOLE, &self.user),
        }
    }

    fn place(&self) -> Place {
        Place::new(CONSOLE, &self.channel)
    }

    fn key(&mut self) -> String {
        self.seq += 1;
        format!("{}:{}", self.session, self.seq)
    }

    /// Handles one line of input and performs what it caused.
    ///
    /// # Errors
    /// Internal failures only; mistakes are answered on the console.
    pub async fn line(&mut self, line: &str) -> Result<()> {
        if let Some((prompt, inv)) = self.pending_secret.take() {
            let now = self.now();
            let mut ports = CommunityPorts::new(&mut self.rt, self.community, "command:console", &inv.id, now);
            match polity_commands::integration::add_with_secret(&mut ports, &inv, prompt, line).await {
                Ok(reply) => self.console.reply_to(&self.user, &reply.text),
                Err(e) => {
                    tracing::error!(error = %e, "storing a connection failed");
                    self.console.reply_to(&self.user, "Sorry, that failed on our side; it is logged.");
                }
            }
            self.rt.dispatch(self.now()).await?;
            return self.remember_numbering().await;
        }
        let parsed = match parse_line(line) {
            Ok(l) => l,
            Err(e) => {
                self.console.reply_to(&self.user, &e.to_string());
                return Ok(());
            }
        };
        let now = self.now();
        // Whoever takes part becomes a member, except an account from another platform
        // confirming a link (it is about to join an existing member).
        let confirming = matches!(&parsed, Line::Command { name, args } if name == "link" && args.trim_start().starts_with("confirm"));
        let changed = !confirming && self.rt.admit(self.community, &self.account(), &self.user.clone());
        match parsed {
            Line::Blank => {}
            Line::As(name) => {
                self.user = name;
                let account = self.account();
                if account.platform.as_str() == CONSOLE && self.rt.admit(self.community, &account, &self.user.clone()) {
                    self.rt.save_community(self.community, now).await?;
                }
            }
            Line::In(channel) => self.channel = channel,
            Line::Wait(d) => {
                self.offset += d;
                let now = self.now();
                self.rt.fire_deadlines(now).await?;
            }
            Line::React { emoji, message, added } => {
                let Some(message) = self.console.message(&message) else {
                    self.console.reply_to(&self.user, &format!("There is no message {message} here."));
                    return Ok(());
                };
                let input = Inbound::Reaction { message, voter: self.account(), emoji, added };
                let key = self.key();
                self.input(input, &key, now, changed).await?;
            }
            Line::Command { name, args } => {
                if changed {
                    self.rt.save_community(self.community, now).await?;
                }
                let id = self.key();
                let inv = Invocation { invoker: self.account(), place: self.place(), id: id.clone() };
                let line = format!("/{name} {args}");
                let mut ports = CommunityPorts::new(&mut self.rt, self.community, "command:console", &id, now);
                match polity_commands::handle(&mut ports, &inv, &line).await {
                    Ok(reply) => {
                        if reply.ephemeral {
                            self.console.reply_to(&self.user, &reply.text);
                        } else {
                            self.console.print(&format!("[{}] polity: {}", self.channel, reply.text));
                        }
                        if let Some(file) = reply.attachment {
                            self.console.reply_to(&self.user, &file.content);
                        }
                        if let Some(prompt) = reply.secret_prompt {
                            self.pending_secret = Some((prompt, inv.clone()));
                        }
                    }
                    Err(e) => {
                        tracing::error!(command = %name, error = %e, "command failed");
                        self.console.reply_to(&self.user, "Sorry, that failed on our side; it is logged.");
                    }
                }
            }
            Line::Message(text) => {
                let message = self.console.member_message(&self.channel, &self.user, &text);
                self.remember_numbering().await?;
                let kind = ActionType::new(MESSAGE_ACTION).map_err(anyhow::Error::msg)?;
                let action = Action::new(kind, self.account(), message.message).at(self.place()).with("text", text);
                let key = self.key();
                self.input(Inbound::Action { action }, &key, now, changed).await?;
            }
        }
        // Deadlines that came due while the line was typed are decided now, to the second.
        let now = self.now();
        self.rt.fire_deadlines(now).await?;
        self.rt.dispatch(now).await?;
        self.remember_numbering().await
    }

    /// Installs a policy as the admin would (`polity policy test`).
    ///
    /// # Errors
    /// When the policy is invalid or the store fails.
    pub async fn install_policy(&mut self, source: &str) -> Result<()> {
        let now = self.now();
        let key = self.key();
        let action =
            crate::runtime::request("polity.policy_install", AccountRef::new(CONSOLE, "admin"), self.place(), &key)?
                .with("source", source);
        self.rt.handle(self.community, "policy-test", &key, Inbound::Action { action }, now, false).await?;
        self.rt.dispatch(now).await?;
        Ok(())
    }

    /// A trigger event from a platform (`polity policy test`'s `event` lines).
    ///
    /// # Errors
    /// When the event's name is malformed or the store fails.
    pub async fn event(&mut self, kind: &str, fields: Vec<(&str, serde_json::Value)>) -> Result<()> {
        let now = self.now();
        let key = self.key();
        let kind = ActionType::new(kind).map_err(anyhow::Error::msg)?;
        let platform = kind.platform().to_string();
        // Platform events happen nowhere in particular: a policy must say where it votes.
        let mut action = Action::new(kind, AccountRef::new(platform, &self.user), &key).event();
        for (k, v) in fields {
            action = action.with(k, v);
        }
        self.input(Inbound::Action { action }, &key, now, false).await?;
        self.rt.dispatch(now).await?;
        self.remember_numbering().await
    }

    /// The state of a proposal, as recorded.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn proposal_state(&self, id: i64) -> Result<Option<String>> {
        let p = self.rt.store().proposal(self.community, polity_governance::ProposalId(id)).await?;
        Ok(p.map(|p| p.state.to_string()))
    }

    async fn input(&mut self, input: Inbound, key: &str, now: DateTime<Utc>, changed: bool) -> Result<()> {
        match self.rt.handle(self.community, CONSOLE, key, input, now, changed).await {
            Ok(Handled::Done(_) | Handled::Duplicate) => Ok(()),
            Err(e) => match e.downcast::<GovError>() {
                Ok(mistake) => {
                    self.console.reply_to(&self.user, &mistake.to_string());
                    Ok(())
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Keeps message numbers unique across restarts: writes the last one when it moved.
    async fn remember_numbering(&mut self) -> Result<()> {
        let last = self.console.last_message_id();
        if last != self.saved_numbering {
            self.rt.store().put_setting("console.last_message", &last.to_string()).await?;
            self.saved_numbering = last;
        }
        Ok(())
    }

    /// Performs whatever is still pending (called when input ends).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn finish(&mut self) -> Result<()> {
        let now = self.now();
        self.rt.fire_deadlines(now).await?;
        self.rt.dispatch(now).await?;
        let left = self.rt.store().pending_effects().await?;
        if left > 0 {
            tracing::warn!(left, "effects still waiting for a retry; they are performed at the next start");
        }
        Ok(())
    }
}

/// Runs a whole console session over `input`.
///
/// # Errors
/// Internal failures.
pub async fn run(store: Store, input: impl BufRead, out: Arc<Mutex<dyn Write + Send>>) -> Result<()> {
    let mut session = Session::open(store, out).await?;
    for line in input.lines() {
        session.line(&line?).await?;
    }
    session.finish().await
}
