//! `polity console`: one community on the console platform, driven by lines of standard
//! input, on the store like any other platform. The session starts as `admin` in `#general`
//! (a named session where it stopped), says so in a banner, and ends at the end of input or
//! at `/quit` (`/exit`).
//!
//! The console keeps the promises every platform keeps. What it prints is claimed in the
//! store's console ledger first ([`StoreLedger`]), so message numbers never repeat and an
//! effect retried after a crash is not printed again; the `/wait` clock is stored. With a
//! session name (`polity console --session NAME`) every input line is numbered by its
//! position, each handled line is acknowledged on standard error (`handled line N`) and
//! recorded with the session's user and channel, and a line sent again after a crash is a
//! duplicate: running the same input again after a kill finishes it exactly once.

use crate::ports::CommunityPorts;
use crate::runtime::{HandleError, Handled, Runtime};
use crate::store::Store;
use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use polity_commands::Invocation;
use polity_console::{CONSOLE, ConsolePlatform, Line, MESSAGE_ACTION, grammar_help, parse_line};
use polity_console::{Claim, Ledger, Posting};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place};
use polity_governance::io::Inbound;
use polity_governance::platform::{ActionInfo, BoxFuture};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

/// The console's community.
pub const COMMUNITY: &str = "console";

/// The setting that holds how far `/wait` has moved the console's clock, in milliseconds.
const CLOCK_SETTING: &str = "console.clock_offset_ms";

/// The console's clock never passes this year (dates stay printable and storable).
const LAST_YEAR: i32 = 9999;

/// The console ledger, kept in the store.
pub struct StoreLedger(pub Store);

impl Ledger for StoreLedger {
    fn claim<'a>(&'a self, effect: Option<&'a str>, post: Option<Posting<'a>>) -> BoxFuture<'a, Result<Claim, String>> {
        Box::pin(async move { self.0.console_claim(effect, post).await.map_err(|e| e.to_string()) })
    }

    fn channel_of(&self, id: u64) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move { self.0.console_channel(id).await.map_err(|e| e.to_string()) })
    }
}

/// A named session's place in its input, stored after each line it handles.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The last line handled.
    line: u64,
    user: String,
    channel: String,
    /// The last line asked for a secret (the next line is it).
    #[serde(default)]
    secret_asked: bool,
    /// How far `/wait` had moved the clock, in milliseconds: written with the line that
    /// moved it, so a `/wait` is never applied twice.
    #[serde(default)]
    offset_ms: Option<i64>,
}

pub struct Session {
    rt: Runtime,
    console: Arc<ConsolePlatform>,
    community: CommunityId,
    user: String,
    channel: String,
    /// How far `/wait` has moved the clock.
    offset: TimeDelta,
    /// Distinguishes this session's inputs from an earlier session's in the inbox.
    session: String,
    /// A named session: its lines are numbered, and its cursor is stored.
    named: Option<String>,
    /// The number of the line being handled (its position, in a named session).
    line_no: u64,
    seq: u64,
    /// A command asked for a secret: the next line is it, and it is never printed.
    pending_secret: Option<(polity_commands::SecretPrompt, Invocation)>,
    /// A named session was stopped while a secret was asked for: the next line is refused.
    lost_secret: bool,
    /// The last line a named session handled.
    handled: u64,
    /// `/quit` was typed: the session ends after this line.
    quit: bool,
}

impl Session {
    /// Opens the console on `store`, writing to `out`.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn open(store: Store, out: Arc<Mutex<dyn Write + Send>>) -> Result<Self> {
        Self::open_named(store, out, None).await
    }

    /// Opens the console; with a session name, its lines are numbered and it goes on after
    /// the last line that session handled (see the module's documentation).
    ///
    /// # Errors
    /// When the store cannot be read, or the name is not a plain name.
    pub async fn open_named(store: Store, out: Arc<Mutex<dyn Write + Send>>, named: Option<&str>) -> Result<Self> {
        let mut session = Self::prepare(store, out, named).await?;
        session.catch_up().await?;
        Ok(session)
    }

    /// The session, before anything is performed.
    async fn prepare(store: Store, out: Arc<Mutex<dyn Write + Send>>, named: Option<&str>) -> Result<Self> {
        if let Some(name) = named
            && (name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.'))
        {
            anyhow::bail!("a session name is up to 64 letters, digits, `-`, `_` and `.`");
        }
        let mut rt = Runtime::open(store.clone()).await?;
        let console = Arc::new(ConsolePlatform::with_ledger(out, Arc::new(StoreLedger(store))));
        rt.add_platform(console.clone());
        rt.set_fallback_platform(console.clone());
        let community = rt.ensure_community(COMMUNITY, "admin", AccountRef::new(CONSOLE, "admin")).await?;
        let offset = match rt.store().setting(CLOCK_SETTING).await? {
            Some(ms) => TimeDelta::milliseconds(ms.parse().unwrap_or_default()),
            None => TimeDelta::zero(),
        };
        let mut session = Self {
            rt,
            console,
            community,
            user: "admin".into(),
            channel: "#general".into(),
            offset,
            session: Utc::now().timestamp_nanos_opt().unwrap_or_default().to_string(),
            named: named.map(str::to_string),
            line_no: 0,
            seq: 0,
            pending_secret: None,
            lost_secret: false,
            handled: 0,
            quit: false,
        };
        if let Some(name) = named {
            session.session = format!("session:{name}");
            if let Some(stored) = session.rt.store().setting(&Self::cursor_key(name)).await? {
                let cursor: Cursor = serde_json::from_str(&stored)?;
                session.handled = cursor.line;
                session.user = cursor.user;
                session.channel = cursor.channel;
                session.lost_secret = cursor.secret_asked;
                if let Some(ms) = cursor.offset_ms {
                    session.offset = TimeDelta::milliseconds(ms);
                }
            }
        }
        Ok(session)
    }

    /// Performs what an earlier run recorded and did not get to perform.
    async fn catch_up(&mut self) -> Result<()> {
        let now = self.now();
        self.rt.fire_deadlines(now).await?;
        self.rt.dispatch(now).await?;
        Ok(())
    }

    /// The line a person sees first: who they are, where, how to get help and how to stop.
    #[must_use]
    pub fn banner(&self) -> String {
        format!(
            "Polity console: you are {} in {} of \"{}\". /help lists commands, /quit ends.",
            self.user,
            self.channel,
            self.community_name()
        )
    }

    /// The line a person sees last, after `/quit`.
    fn goodbye(&self) {
        self.console.print("Goodbye: what happened here is kept, and the next `polity console` goes on from it.");
    }

    /// Whether `/quit` (or `/exit`) was typed: nothing more is read.
    #[must_use]
    pub fn quit_asked(&self) -> bool {
        self.quit
    }

    fn cursor_key(name: &str) -> String {
        format!("console.session.{name}")
    }

    pub fn now(&self) -> DateTime<Utc> {
        clock_at(Utc::now(), self.offset)
    }

    /// Handles the next line of input, numbered by its position: in a named session a line
    /// handled before is skipped, and each one handled is recorded and acknowledged. A line
    /// that could not be read (`Err`, saying why) is refused, and the session goes on.
    ///
    /// # Errors
    /// Internal failures only.
    pub async fn next_line(&mut self, line: Result<&str, String>) -> Result<()> {
        self.line_no += 1;
        let Some(name) = self.named.clone() else {
            return self.read_line(line).await;
        };
        if self.line_no <= self.handled {
            // A `/quit` handled before still ends the session: what came after it was never
            // read, and a run again on the same input must not read it either.
            if line.ok().and_then(|l| parse_line(l).ok()).is_some_and(|l| l.quits() == Ok(true)) {
                self.quit = true;
            }
            return Ok(());
        }
        self.seq = 0;
        if std::mem::take(&mut self.lost_secret) {
            // The secret this line holds was asked for before a restart: it is neither
            // stored nor echoed.
            self.console.reply_to(
                &self.user,
                "Polity restarted while waiting for that secret, so it was not stored (nor shown). Run the command again.",
            );
        } else {
            self.read_line(line).await?;
        }
        self.save_cursor(&name).await?;
        self.handled = self.line_no;
        eprintln!("handled line {}", self.line_no);
        Ok(())
    }

    /// Records that the named session handled the current line, as it stands now.
    async fn save_cursor(&self, name: &str) -> Result<()> {
        let cursor = Cursor {
            line: self.line_no,
            user: self.user.clone(),
            channel: self.channel.clone(),
            secret_asked: self.pending_secret.is_some(),
            offset_ms: Some(self.offset.num_milliseconds()),
        };
        self.rt.store().put_setting(&Self::cursor_key(name), &serde_json::to_string(&cursor)?).await?;
        Ok(())
    }

    async fn read_line(&mut self, line: Result<&str, String>) -> Result<()> {
        match line {
            Ok(line) => self.line(line).await,
            Err(why) => {
                if self.pending_secret.take().is_some() {
                    self.console.reply_to(&self.user, "That secret was not read, so nothing was stored.");
                }
                self.console.reply_to(&self.user, &format!("That line was not read: {why}. Nothing was done."));
                Ok(())
            }
        }
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

    /// The inbox key of the next input of this line: in a named session the line's number,
    /// so a line sent again is a duplicate.
    fn key(&mut self) -> String {
        self.seq += 1;
        if self.named.is_some() {
            format!("{}:{}:{}", self.session, self.line_no, self.seq)
        } else {
            format!("{}:{}", self.session, self.seq)
        }
    }

    /// Handles one line of input and performs what it caused.
    ///
    /// # Errors
    /// Internal failures only; mistakes are answered on the console.
    pub async fn line(&mut self, line: &str) -> Result<()> {
        if let Some((prompt, inv)) = self.pending_secret.take() {
            if parse_line(line).is_ok_and(|l| l.quits() == Ok(true)) {
                // Leaving at the prompt is no secret.
                self.console.reply_to(&self.user, "Nothing was stored.");
                self.quit = true;
                return Ok(());
            }
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
            return Ok(());
        }
        let parsed = match parse_line(line).and_then(|l| l.quits().map(|quits| (l, quits))) {
            Ok((_, true)) => {
                self.quit = true;
                Line::Blank
            }
            Ok((l, false)) => l,
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
                let Some(offset) = self.offset.checked_add(&d).filter(|o| later_than_allowed(*o).is_none()) else {
                    self.console.reply_to(
                        &self.user,
                        &format!("`/wait`: the console's clock cannot go past the year {LAST_YEAR}."),
                    );
                    return Ok(());
                };
                self.offset = offset;
                if let Some(name) = self.named.clone() {
                    // The clock and the line that moved it are one write: sent again after a
                    // crash, the line is a duplicate.
                    self.save_cursor(&name).await?;
                }
                self.rt.store().put_setting(CLOCK_SETTING, &self.offset.num_milliseconds().to_string()).await?;
                let now = self.now();
                self.rt.fire_deadlines(now).await?;
            }
            Line::React { emoji, message, added } => {
                let Some(message) = self.console.message(&message).await.map_err(anyhow::Error::msg)? else {
                    self.console.reply_to(&self.user, &format!("There is no message {message} here."));
                    return Ok(());
                };
                // Governance ignores a reaction that is no ballot; the console says why.
                let why = self.not_a_ballot(&message, &emoji).await?;
                let input = Inbound::Reaction { message, voter: self.account(), emoji, added };
                let key = self.key();
                self.input(input, &key, now, changed).await?;
                if let Some(why) = why {
                    self.console.reply_to(&self.user, &why);
                }
            }
            Line::Command { name, args } => {
                if changed {
                    self.rt.save_community(self.community, now).await?;
                }
                let id = self.key();
                let community = self.community_name();
                let inv = Invocation { invoker: self.account(), place: self.place(), id: id.clone() };
                let line = format!("/{name} {args}");
                let mut ports = CommunityPorts::new(&mut self.rt, self.community, "command:console", &id, now);
                match polity_commands::handle(&mut ports, &inv, &line).await {
                    Ok(mut reply) => {
                        if name == "help" && args.is_empty() {
                            // The console's own lines are not commands: the catalogue does
                            // not know them.
                            reply.text = format!("{}\n{}", reply.text, grammar_help());
                        }
                        if let Some(file) = reply.attachment.take() {
                            // A file is written where the console runs, and named.
                            let said = write_file(&reply.text, &file, &community, now);
                            self.console.reply_to(&self.user, &said);
                        } else if reply.ephemeral {
                            self.console.reply_to(&self.user, &reply.text);
                        } else {
                            self.console.print(&format!("[{}] polity: {}", self.channel, reply.text));
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
                let key = self.key();
                let message = self
                    .console
                    .member_message(self.named.is_some().then_some(key.as_str()), &self.channel, &self.user, &text)
                    .await
                    .map_err(anyhow::Error::msg)?;
                let kind = ActionType::new(MESSAGE_ACTION).map_err(anyhow::Error::msg)?;
                let action = Action::new(kind, self.account(), message.message).at(self.place()).with("text", text);
                self.input(Inbound::Action { action }, &key, now, changed).await?;
            }
        }
        // Deadlines that came due while the line was typed are decided now, to the second.
        let now = self.now();
        self.rt.fire_deadlines(now).await?;
        self.rt.dispatch(now).await?;
        Ok(())
    }

    /// Installs a policy as the admin would (`polity policy test`).
    ///
    /// # Errors
    /// When the policy is invalid or the store fails.
    /// Lets the community's scripts read `source` as its SourceCred instance (a scenario's).
    pub fn set_cred_source(&mut self, source: std::sync::Arc<dyn polity_governance::script::CredSource>) {
        self.rt.add_cred_source(self.community, "sourcecred", source);
    }

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
        let happened = Happened::of(kind, fields, &self.declared_actions()).map_err(anyhow::Error::msg)?;
        let kind = ActionType::new(kind).map_err(anyhow::Error::msg)?;
        let platform = kind.platform().to_string();
        let action = if happened.governable {
            // A member's action on the platform: performed by `by` (the current user by
            // default), where `in` or `channel` says, and governed as it would be there.
            let by = happened.by.unwrap_or_else(|| self.user.clone());
            let account = match by.split_once(':') {
                Some((p, a)) => AccountRef::new(p, a),
                None => AccountRef::new(CONSOLE, &by),
            };
            let place = happened.place.unwrap_or_else(|| self.channel.clone());
            Action::new(kind, account, &key).at(Place::new(platform, place))
        } else {
            // Platform events happen nowhere in particular: a policy must say where it votes.
            Action::new(kind, AccountRef::new(platform, &self.user), &key).event()
        };
        let action = happened.data.into_iter().fold(action, |a, (k, v)| a.with(&k, v));
        self.input(Inbound::Action { action }, &key, now, false).await?;
        self.rt.dispatch(now).await?;
        Ok(())
    }

    /// What Polity, the console and every platform of this build declare.
    pub fn declared_actions(&self) -> Vec<ActionInfo> {
        let mut known = self.rt.actions(self.community);
        known.extend(self.rt.registry().actions());
        known
    }

    /// The state of a proposal, as recorded.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn proposal_state(&self, id: i64) -> Result<Option<String>> {
        let p = self.rt.store().proposal(self.community, polity_governance::ProposalId(id)).await?;
        Ok(p.map(|p| p.state.to_string()))
    }

    /// Why a reaction to `message` is no ballot, if it is not: the message is no vote
    /// message, its proposal is decided, or `emoji` is none of its vote's options.
    ///
    /// # Errors
    /// When the store fails.
    async fn not_a_ballot(&self, message: &MessageRef, emoji: &str) -> Result<Option<String>> {
        if let Some(p) = self.rt.engine(self.community).and_then(|e| e.proposal_by_message(message)) {
            return Ok(why_not_a_ballot(p, emoji));
        }
        // A decided proposal the runtime no longer holds.
        let decided = self.rt.store().load_proposals(self.community, false).await?;
        Ok(match decided.iter().find(|p| p.vote.as_ref().is_some_and(|v| v.messages.contains(message))) {
            Some(p) => why_not_a_ballot(p, emoji),
            None => Some(format!(
                "msg {} is not a vote message: a reaction is a ballot only on a proposal's vote message (`/proposals` lists the open ones).",
                message.message
            )),
        })
    }

    /// The community's name.
    fn community_name(&self) -> String {
        self.rt.engine(self.community).map_or_else(|| COMMUNITY.to_string(), |e| e.community.name.clone())
    }

    async fn input(&mut self, input: Inbound, key: &str, now: DateTime<Utc>, changed: bool) -> Result<()> {
        match self.rt.handle(self.community, CONSOLE, key, input, now, changed).await {
            Ok(Handled::Done(_) | Handled::Duplicate) => Ok(()),
            Err(HandleError::Refused(mistake)) => {
                self.console.reply_to(&self.user, &mistake.to_string());
                Ok(())
            }
            Err(HandleError::Failed(e)) => Err(e),
        }
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

/// Runs a whole console session over `input`; with a session name, as a named session.
/// A line that is not UTF-8 is refused and the session goes on.
///
/// # Errors
/// Internal failures, or when standard input cannot be read.
pub async fn run(
    store: Store,
    mut input: impl BufRead,
    out: Arc<Mutex<dyn Write + Send>>,
    named: Option<&str>,
) -> Result<()> {
    let mut session = Session::prepare(store, out, named).await?;
    session.console.print(&session.banner());
    session.catch_up().await?;
    let mut buf = Vec::new();
    while !session.quit_asked() {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|e| format!("it is not UTF-8 text (byte {} is not)", e.valid_up_to() + 1));
        session.next_line(line).await?;
    }
    session.finish().await?;
    if session.quit_asked() {
        session.goodbye();
    }
    Ok(())
}

/// Why a reaction with `emoji` to `p`'s vote message is no ballot, if it is not.
fn why_not_a_ballot(p: &polity_governance::Proposal, emoji: &str) -> Option<String> {
    if !p.state.is_open() {
        return Some(format!("Proposal {} is closed ({}): its ballots no longer change.", p.id, p.state));
    }
    let spec = &p.vote.as_ref()?.spec;
    if spec.is_vote_emoji(emoji) {
        return None;
    }
    let options: Vec<String> = spec.reaction_options().into_iter().map(|(e, label)| format!("{e} {label}")).collect();
    Some(format!("`{emoji}` is not an option of proposal {}: use {}", p.id, options.join(", ")))
}

/// Writes a command's file in the current directory, under a name of its own (the file's
/// name, the community and the console's time), and says where; or says why it could not,
/// and shows the file instead.
fn write_file(heading: &str, file: &polity_commands::Attachment, community: &str, now: DateTime<Utc>) -> String {
    use std::io::ErrorKind;
    let heading = heading.lines().next().unwrap_or_default().trim_end_matches(':');
    let heading = heading.replace(&format!(" ({})", file.name), "");
    let instead = |why: String| format!("{heading} could not be written: {why}. Here it is instead:\n{}", file.content);
    let (stem, ext) = file.name.rsplit_once('.').unwrap_or((file.name.as_str(), "txt"));
    let community: String =
        community.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let base = format!("{stem}-{community}-{}", now.format("%Y%m%dT%H%M%SZ"));
    let dir = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => return instead(format!("the current directory cannot be found ({e})")),
    };
    // Never over another file: a second export in the same second gets `-2`.
    for n in 1..=100 {
        let name = if n == 1 { format!("{base}.{ext}") } else { format!("{base}-{n}.{ext}") };
        let path = dir.join(name);
        let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return instead(format!("{} ({e})", path.display())),
        };
        return match f.write_all(file.content.as_bytes()).and_then(|()| f.sync_all()) {
            Ok(()) => format!("{heading} is written to {} ({} bytes).", path.display(), file.content.len()),
            Err(e) => {
                drop(f);
                // A part of the file is no record: take it away.
                let _ = std::fs::remove_file(&path);
                instead(format!("{} ({e})", path.display()))
            }
        };
    }
    instead(format!("{base}.{ext} and 99 more names like it exist in {}", dir.display()))
}

/// The console's time: `now` moved by `offset`, held at the last moment the console allows.
fn clock_at(now: DateTime<Utc>, offset: TimeDelta) -> DateTime<Utc> {
    now.checked_add_signed(offset).filter(|t| later_than_allowed_at(*t).is_none()).unwrap_or_else(last_moment)
}

/// The last moment the console's clock may show.
fn last_moment() -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(LAST_YEAR, 12, 31, 23, 59, 59).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `Some(())` when moving today's clock by `offset` would pass the last moment allowed.
fn later_than_allowed(offset: TimeDelta) -> Option<()> {
    match Utc::now().checked_add_signed(offset) {
        Some(t) => later_than_allowed_at(t),
        None => Some(()),
    }
}

fn later_than_allowed_at(t: DateTime<Utc>) -> Option<()> {
    (t > last_moment()).then_some(())
}

/// What a scenario's `event` line says happened, checked against what the platforms declare.
#[derive(Debug, PartialEq)]
pub struct Happened {
    /// A member's action a platform policy governs (else an event for trigger policies).
    pub governable: bool,
    /// `by=NAME`: who did it.
    pub by: Option<String>,
    /// `in=CHANNEL` (or the action's `channel`): where.
    pub place: Option<String>,
    /// The action's own fields.
    pub data: Vec<(String, serde_json::Value)>,
    /// Why it could not be checked, if it could not.
    pub warning: Option<String>,
}

impl Happened {
    /// Checks `kind` and its fields against `known`: an unknown name or field is an error
    /// listing the known ones.
    ///
    /// # Errors
    /// Says what is wrong and what there is instead.
    pub fn of(kind: &str, fields: Vec<(&str, serde_json::Value)>, known: &[ActionInfo]) -> Result<Self, String> {
        use polity_governance::platform::ActionKind;
        let platform = kind.split_once('.').map_or(kind, |(p, _)| p);
        let Some(info) = known.iter().find(|a| a.name == kind) else {
            let of: Vec<&str> = known
                .iter()
                .filter(|a| a.name.starts_with(&format!("{platform}.")))
                .filter(|a| matches!(a.kind, ActionKind::Governable | ActionKind::Trigger))
                .map(|a| a.name.as_str())
                .collect();
            if of.is_empty() && !known.iter().any(|a| a.name.starts_with(&format!("{platform}."))) {
                // A platform this build does not have: an event for trigger policies, its
                // fields taken as they are.
                let mut platforms: Vec<&str> =
                    known.iter().filter_map(|a| a.name.split_once('.').map(|(p, _)| p)).collect();
                platforms.sort_unstable();
                platforms.dedup();
                return Ok(Self {
                    governable: false,
                    by: None,
                    place: None,
                    data: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    warning: Some(format!(
                        "this build has no platform `{platform}` (it has {}): `{kind}` is played as an event with the fields given, unchecked",
                        platforms.join(", ")
                    )),
                });
            }
            return Err(format!("`{kind}` is not something that happens on {platform}: it has {}", of.join(", ")));
        };
        let governable = match info.kind {
            ActionKind::Governable => true,
            ActionKind::Trigger => false,
            _ => {
                return Err(format!(
                    "`{kind}` is something a policy does (in `do` or `polity.act`), not something that happens"
                ));
            }
        };
        let mut out = Self { governable, by: None, place: None, data: Vec::new(), warning: None };
        for (k, v) in fields {
            match k {
                "by" if governable => out.by = Some(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                "in" if governable => out.place = Some(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                _ if info.params.iter().any(|(p, _)| p == k) => {
                    if k == "channel" && governable && out.place.is_none() {
                        out.place = Some(v.as_str().map_or_else(|| v.to_string(), str::to_string));
                    }
                    out.data.push((k.to_string(), v));
                }
                _ => {
                    let mut fields: Vec<String> = info.params.iter().map(|(p, _)| p.clone()).collect();
                    if governable {
                        fields.extend(["by".to_string(), "in".to_string()]);
                    }
                    return Err(format!("`{k}` is not a field of {kind}: its fields are {}", fields.join(", ")));
                }
            }
        }
        Ok(out)
    }
}
