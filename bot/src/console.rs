//! `polity console`: one community on the console platform, driven by lines of standard
//! input, on the store like any other platform. The session starts as `admin` in `#general`.
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
use polity_console::{CONSOLE, ConsolePlatform, Line, MESSAGE_ACTION, parse_line};
use polity_console::{Claim, Ledger, Posting};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, CommunityId, Place};
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
        // What an earlier run recorded and did not get to perform comes first.
        let now = session.now();
        session.rt.fire_deadlines(now).await?;
        session.rt.dispatch(now).await?;
        Ok(session)
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
    let mut session = Session::open_named(store, out, named).await?;
    let mut buf = Vec::new();
    loop {
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
    session.finish().await
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
