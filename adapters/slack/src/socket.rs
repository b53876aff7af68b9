//! Socket Mode: slack-morphism's websocket clients (`apps.connections.open` with the
//! app-level token, reconnects, pings) deliver every frame to Polity's own listener as the
//! raw JSON Slack sent, so every event is read the same way as over HTTP ([`crate::events`])
//! and none is lost to a model that does not know it.
//!
//! | frame | what Polity does | acknowledged |
//! |---|---|---|
//! | `hello` | [`Incoming::Connected`] (`resumed` from the second on): open votes are read back | |
//! | `disconnect` | the client reconnects (`refresh_requested`, `link_disabled`, ...) | |
//! | `events_api` | the callback read into inputs ([`crate::events`]) and handed to the host; `user_change` updates who is an admin | once the host has recorded them in its inbox ([`Incoming::Recorded`]): a frame not recorded (a crash, the store failing) is redelivered by Slack, and its `event_id` makes the redelivery a duplicate |
//! | `slash_commands` (`/polity WORDS`) | [`Incoming::Command`] for the words after `/polity`; the answer goes to the command's `response_url` (ephemeral unless the reply is public) | at once, with no payload (Slack's three seconds never wait for Polity) |
//! | `interactive`, a vote button (`block_actions`) | [`Incoming::Command`] of the `/vote` it stands for; the answer as an ephemeral message | at once |
//! | `interactive`, the secret form (`view_submission`) | [`Incoming::Secret`] for the command that asked; the answer as an ephemeral message in the command's channel | at once (the form closes) |
//!
//! Slack redelivers an envelope that is not acknowledged (`retry_attempt`, the same
//! `event_id`), so a redelivery has the same dedup key and changes nothing.

use crate::api::{Api, Client, Connector};
use crate::events::{Read, Reader};
use crate::known::{Known, Member};
use crate::platform::{VOTE_BUTTON, clip, mrkdwn};
use crate::workspaces::{Opener, Workspace, Workspaces};
use async_trait::async_trait;
use polity_commands::{Invocation, Parsed, Reply, SecretPrompt, parse};
use polity_governance::ids::{AccountRef, Place};
use polity_port::{CommandCall, Event, Incoming, Recorded, SecretTyped};
use serde_json::{Value, json};
use slack_morphism::listener::SlackClientEventsListenerEnvironment;
use slack_morphism::socket_mode::clients_manager::{
    SlackSocketModeClientsManager, SlackSocketModeClientsManagerFactory,
};
use slack_morphism::{
    SlackApiToken, SlackApiTokenValue, SlackClientSocketModeConfig, SlackSocketModeClientListener,
    SlackSocketModeWssClientId,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The slash command Polity answers: `/polity propose ...`, `/polity vote 12 yes`.
pub const COMMAND: &str = "/polity";

/// How long an event waits to be recorded before its acknowledgement is given up (Slack
/// wants one within three seconds).
const RECORD_WAIT: Duration = Duration::from_millis(2500);

/// The `callback_id` of the form that asks for a secret.
pub const SECRET_FORM: &str = "polity_secret";

/// How long a secret form waits for its answer.
const FORM_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A running Socket Mode connection.
pub struct Socket {
    manager: Arc<dyn SlackSocketModeClientsManager + Send + Sync>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").finish_non_exhaustive()
    }
}

impl Socket {
    /// Opens Socket Mode with `app_token` and hands its inputs to `events`.
    ///
    /// # Errors
    /// When slack-morphism cannot register the token.
    pub async fn open(connector: &Connector, app_token: &str, listener: Arc<Listener>) -> Result<Self, String> {
        let environment = Arc::new(SlackClientEventsListenerEnvironment::new(Arc::clone(&listener.client)));
        let manager = connector.new_clients_manager(environment);
        listener.manager.set(Arc::downgrade(&manager)).ok();
        // One connection: each `hello` makes Polity read its open votes back.
        let config = SlackClientSocketModeConfig::new().with_max_connections_count(1);
        let token = SlackApiToken::new(SlackApiTokenValue(app_token.trim().to_string()));
        manager
            .register_new_token(&config, token, listener)
            .await
            .map_err(|e| format!("Slack refused to open Socket Mode: {e}"))?;
        manager.start().await;
        Ok(Self { manager })
    }

    /// Closes the websocket.
    pub async fn shutdown(self) {
        self.manager.shutdown().await;
    }
}

/// A command waiting for its secret form.
struct Pending {
    prompt: SecretPrompt,
    invocation: Invocation,
    space: String,
    name: String,
    shown: tokio::time::Instant,
}

/// Where Socket Mode's frames go.
pub struct Listener {
    connection: String,
    events: mpsc::Sender<Incoming>,
    workspaces: Workspaces,
    client: Arc<Client>,
    /// The Web API with no token: for `response_url`s, which are their own credential.
    anonymous: Api,
    hellos: AtomicU64,
    manager: OnceLock<Weak<dyn SlackSocketModeClientsManager + Send + Sync>>,
    pending: Forms,
}

/// Secret forms shown, waiting for their answer, by key.
type Forms = Arc<Mutex<HashMap<String, Pending>>>;

impl Listener {
    pub fn new(connection: String, events: mpsc::Sender<Incoming>, workspaces: Workspaces, opener: &Opener) -> Self {
        Self {
            connection,
            events,
            workspaces,
            client: Arc::clone(&opener.client),
            anonymous: opener.api(""),
            hellos: AtomicU64::new(0),
            manager: OnceLock::new(),
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn hand(&self, incoming: Incoming) -> bool {
        self.events.send(incoming).await.is_ok()
    }

    /// Hands events over and waits until the host has recorded them: Slack's envelope or
    /// request is acknowledged only then, so a crash before that has Slack deliver it again.
    /// The wait is cut short at [`RECORD_WAIT`], within Slack's three seconds: the events are
    /// still recorded when the serving loop comes to them, and Slack's redelivery is then a
    /// duplicate (meanwhile the frame reader goes on, so the socket's pings are answered).
    async fn record(&self, events: Vec<Event>) -> bool {
        let (recorded, answer) = oneshot::channel();
        if !self.hand(Incoming::Recorded(Recorded { events, recorded })).await {
            return false;
        }
        match tokio::time::timeout(RECORD_WAIT, answer).await {
            Ok(answer) => answer == Ok(true),
            Err(_) => {
                tracing::info!(connection = %self.connection, "events not recorded within Slack's time to acknowledge; Slack delivers them again");
                false
            }
        }
    }

    /// Reads one frame; the acknowledgement to send, if any.
    pub async fn frame(&self, client: Option<&SlackSocketModeWssClientId>, body: &str) -> Option<String> {
        let Ok(frame) = serde_json::from_str::<Value>(body) else {
            tracing::warn!("Slack sent a Socket Mode frame that is not JSON");
            return None;
        };
        let ack = frame.get("envelope_id").and_then(Value::as_str).map(|id| json!({ "envelope_id": id }).to_string());
        match frame.get("type").and_then(Value::as_str).unwrap_or_default() {
            "hello" => {
                let resumed = self.hellos.fetch_add(1, Ordering::SeqCst) > 0;
                self.hand(Incoming::Connected { resumed }).await;
                None
            }
            "disconnect" => {
                tracing::info!(reason = ?frame.get("reason"), "Slack asked Socket Mode to reconnect");
                if let (Some(client), Some(manager)) = (client, self.manager.get().and_then(Weak::upgrade)) {
                    manager.restart_client(client).await;
                }
                None
            }
            "events_api" => {
                let payload = frame.get("payload").cloned().unwrap_or(Value::Null);
                // Not acknowledged when the host could not take it: Slack delivers it again.
                self.callback(&payload).await.then_some(ack).flatten()
            }
            "slash_commands" => {
                self.slash(frame.get("payload").unwrap_or(&Value::Null)).await;
                ack
            }
            "interactive" => {
                self.interactive(frame.get("payload").unwrap_or(&Value::Null)).await;
                ack
            }
            _ => ack,
        }
    }

    /// The workspace a frame or request is from, if Polity acts there.
    fn workspace(&self, team: &str) -> Option<Workspace> {
        let found = self.workspaces.get(team);
        if found.is_none() {
            tracing::info!(workspace = team, "Slack sent something from a workspace Polity's app is not installed in");
        }
        found
    }

    /// An `event_callback`, read and handed over; whether the host recorded it.
    pub async fn callback(&self, payload: &Value) -> bool {
        let team = payload.get("team_id").and_then(Value::as_str).unwrap_or_default();
        let kind = payload.pointer("/event/type").and_then(Value::as_str);
        if kind == Some("app_uninstalled") || kind == Some("tokens_revoked") {
            return self.revoked(team, payload).await;
        }
        let Some(workspace) = self.workspace(team) else { return true };
        let known = &workspace.known;
        // A member's profile or role changed (`user_change`): who controls the workspace is
        // read from it, so a demoted admin no longer says which community governs it.
        if payload.pointer("/event/type").and_then(Value::as_str) == Some("user_change")
            && let Some(user) = payload.pointer("/event/user")
            && let Some(id) = user.get("id").and_then(Value::as_str)
        {
            let deleted = user.get("deleted").and_then(Value::as_bool) == Some(true);
            let admin = !deleted && crate::events::controls_workspace(user);
            let name = crate::events::display_name(user).unwrap_or_else(|| id.to_string());
            known.set_members([(id.to_string(), Member { name, admin })]);
        }
        let bot_user = known.bot_user().unwrap_or_default();
        let names = Arc::clone(known);
        let name = move |user: &str| names.name(user);
        let mine = Arc::clone(known);
        let event_id = payload.get("event_id").and_then(Value::as_str).unwrap_or_default().to_string();
        let own = move |key: &str| mine.was_own(key, &event_id);
        let reader = Reader { connection: &self.connection, bot_user: &bot_user, name: &name, own: &own };
        match reader.read(payload) {
            Read::Events(events) => events.is_empty() || self.record(events).await,
            Read::Joined { team, user, name, event } => {
                known.set_members([(user.clone(), Member { name: name.clone(), admin: false })]);
                let member = (AccountRef::new(self.connection.as_str(), user.as_str()), name);
                self.hand(Incoming::Members { space: team, members: vec![member] }).await
                    && self.record(vec![*event]).await
            }
        }
    }

    /// Whether `user` controls the workspace: an admin or owner, as last read, else asked.
    async fn is_admin(api: &Api, known: &Known, user: &str) -> bool {
        if let Some(member) = known.member(user) {
            return member.admin;
        }
        match api.get("users.info", &[("user", user.to_string())], None).await {
            Ok(info) => {
                let u = info.get("user").unwrap_or(&Value::Null);
                let admin = crate::events::controls_workspace(u);
                let name = crate::events::display_name(u).unwrap_or_else(|| user.to_string());
                known.set_members([(user.to_string(), Member { name, admin })]);
                admin
            }
            Err(f) => {
                tracing::warn!("cannot ask Slack whether {user} is an admin: {}", f.error);
                false
            }
        }
    }

    /// The app removed from a workspace (`app_uninstalled`), or its bot's tokens revoked
    /// (`tokens_revoked` naming the bot): its install is forgotten, unless the workspace's
    /// token still works (an event delivered late, after the app was installed again).
    async fn revoked(&self, team: &str, payload: &Value) -> bool {
        let current = self.workspaces.get(team);
        if payload.pointer("/event/type").and_then(Value::as_str) == Some("tokens_revoked") {
            let bot = current.as_ref().and_then(|w| w.known.bot_user());
            let bots = payload.pointer("/event/tokens/bot").and_then(Value::as_array);
            let named = bots.is_some_and(|b| b.iter().any(|u| u.as_str().is_some() && u.as_str() == bot.as_deref()));
            if !named {
                return true;
            }
        }
        if let Some(workspace) = &current {
            match workspace.api.post("auth.test", &json!({}), None).await {
                Ok(_) => {
                    tracing::info!(workspace = team, "an uninstall event, but the app's token still works: kept");
                    return true;
                }
                Err(f) if f.code.is_none() => {
                    // Slack did not answer: not acknowledged, so it delivers the event again.
                    return false;
                }
                Err(_) => {}
            }
        }
        self.workspaces.remove(team);
        tracing::info!(workspace = team, "Polity's app was removed from the workspace");
        self.hand(Incoming::Uninstalled { space: team.to_string() }).await
    }

    /// A `/polity` command.
    pub(crate) async fn slash(&self, payload: &Value) {
        let field = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let (team, channel, user, response_url) =
            (field("team_id"), field("channel_id"), field("user_id"), field("response_url"));
        if team.is_empty() || channel.is_empty() || user.is_empty() {
            tracing::warn!("a slash command without its team, channel or user");
            return;
        }
        let Some(workspace) = self.workspace(&team) else { return };
        let words = field("text");
        let parsed = match parse(&words) {
            Ok(parsed) => parsed,
            Err(usage) => {
                // Off the frame reader: the answer never holds up the acknowledgement.
                let this = Responder { api: workspace.api.clone(), anonymous: self.anonymous.clone() };
                tokio::spawn(async move { this.deliver(&Answer::Url(response_url), Reply::private(usage.0)).await });
                return;
            }
        };
        let invocation = Invocation {
            invoker: AccountRef::new(self.connection.as_str(), user.as_str()),
            place: Place::new(self.connection.as_str(), channel.as_str()),
            id: field("trigger_id"),
        };
        let name = workspace.known.member(&user).map_or_else(|| field("user_name"), |m| m.name);
        let trigger = Some(field("trigger_id"));
        self.command(&workspace, invocation, name, parsed, Answer::Url(response_url), trigger).await;
    }

    /// Hands a command to the host and sends its answer when it comes.
    async fn command(
        &self,
        workspace: &Workspace,
        invocation: Invocation,
        name: String,
        parsed: Parsed,
        answer_to: Answer,
        trigger: Option<String>,
    ) {
        // Off the frame reader: asking Slack whether the invoker is an admin may take a while,
        // and the command is acknowledged meanwhile.
        let (api, known, events) = (workspace.api.clone(), Arc::clone(&workspace.known), self.events.clone());
        let space = workspace.team.clone();
        let forms = Arc::clone(&self.pending);
        let anonymous = self.anonymous.clone();
        tokio::spawn(async move {
            let this = Responder { api: api.clone(), anonymous };
            let manages_space = Self::is_admin(&api, &known, invocation.invoker.account.as_str()).await;
            let (answer, answered) = oneshot::channel();
            let call = CommandCall {
                space: space.clone(),
                invocation: invocation.clone(),
                name: name.clone(),
                manages_space,
                parsed,
                answer,
            };
            if events.send(Incoming::Command(call)).await.is_err() {
                this.deliver(&answer_to, Reply::private("Polity is restarting; try again in a moment.")).await;
                return;
            }
            let reply =
                answered.await.unwrap_or_else(|_| Reply::private("Sorry, that failed on our side; it is logged."));
            match (reply.secret_prompt.clone(), trigger) {
                (Some(prompt), Some(trigger)) => {
                    let pending = Pending { prompt, invocation, space, name, shown: tokio::time::Instant::now() };
                    this.form(&answer_to, &trigger, pending, &forms).await;
                }
                _ => this.deliver(&answer_to, reply).await,
            }
        });
    }

    /// A button press or a form's answer.
    pub(crate) async fn interactive(&self, payload: &Value) {
        let text = |p: &str| payload.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
        match text("/type").as_str() {
            "block_actions" => {
                let (team, user, channel) = (text("/team/id"), text("/user/id"), text("/channel/id"));
                let Some(action) = payload.pointer("/actions/0") else { return };
                let id = action.get("action_id").and_then(Value::as_str).unwrap_or_default();
                let Some(rest) = id.strip_prefix(VOTE_BUTTON) else { return };
                let Some((proposal, choice)) = rest.split_once(':') else { return };
                let Some(spec) = polity_commands::catalogue::find(&["vote"]) else { return };
                if team.is_empty() || user.is_empty() || channel.is_empty() {
                    return;
                }
                let Some(workspace) = self.workspace(&team) else { return };
                let values = BTreeMap::from([("id", proposal.to_string()), ("choice", choice.to_string())]);
                let invocation = Invocation {
                    invoker: AccountRef::new(self.connection.as_str(), user.as_str()),
                    place: Place::new(self.connection.as_str(), channel.as_str()),
                    id: text("/trigger_id"),
                };
                let name = workspace.known.member(&user).map_or_else(|| text("/user/name"), |m| m.name);
                let to = Answer::Url(text("/response_url"));
                self.command(&workspace, invocation, name, Parsed { spec, values }, to, None).await;
            }
            "view_submission" if text("/view/callback_id") == SECRET_FORM => {
                let key = text("/view/private_metadata");
                let pending = {
                    let mut all = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    all.retain(|_, p| p.shown.elapsed() < FORM_LIFETIME);
                    all.remove(&key)
                };
                let Some(pending) = pending else {
                    tracing::info!("a secret form answered after it expired");
                    return;
                };
                if text("/user/id") != pending.invocation.invoker.account.as_str() || text("/team/id") != pending.space
                {
                    tracing::warn!("a secret form answered by someone it was not shown to");
                    return;
                }
                let Some(workspace) = self.workspace(&pending.space) else { return };
                let secret = text("/view/state/values/secret/secret/value");
                let (answer, answered) = oneshot::channel();
                let to = Answer::Ephemeral {
                    channel: pending.invocation.place.channel.to_string(),
                    user: pending.invocation.invoker.account.to_string(),
                };
                let typed = SecretTyped {
                    space: pending.space,
                    invocation: pending.invocation,
                    name: pending.name,
                    prompt: pending.prompt,
                    secret,
                    answer,
                };
                if !self.hand(Incoming::Secret(typed)).await {
                    return;
                }
                let this = Responder { api: workspace.api.clone(), anonymous: self.anonymous.clone() };
                tokio::spawn(async move {
                    let reply = answered
                        .await
                        .unwrap_or_else(|_| Reply::private("Sorry, that failed on our side; it is logged."));
                    this.deliver(&to, reply).await;
                });
            }
            _ => {}
        }
    }
}

/// Where a command's answer goes.
#[derive(Clone, Debug)]
enum Answer {
    /// The command's or press's `response_url`.
    Url(String),
    /// An ephemeral message to `user` in `channel`.
    Ephemeral { channel: String, user: String },
}

/// Sends answers, off the frame reader.
struct Responder {
    /// The workspace's Web API.
    api: Api,
    /// The Web API with no token, for `response_url`s.
    anonymous: Api,
}

impl Responder {
    async fn deliver(&self, to: &Answer, reply: Reply) {
        let text = rendered(&reply);
        let outcome = match to {
            Answer::Url(url) if url.is_empty() => return,
            Answer::Url(url) => {
                let body = json!({
                    "response_type": if reply.ephemeral { "ephemeral" } else { "in_channel" },
                    "text": text,
                    "replace_original": false,
                });
                self.anonymous.respond(url, &body).await
            }
            Answer::Ephemeral { channel, user } => self
                .api
                .post("chat.postEphemeral", &json!({ "channel": channel, "user": user, "text": text }), Some(channel))
                .await
                .map(|_| ()),
        };
        if let Err(f) = outcome {
            tracing::warn!("cannot give a command's answer on Slack: {}", f.error);
        }
    }

    /// Opens the form that asks for a secret (`views.open` with the command's trigger, which
    /// Slack honours for three seconds), and keeps the command waiting for its answer.
    async fn form(&self, to: &Answer, trigger: &str, pending: Pending, forms: &Forms) {
        let key = trigger.to_string();
        let title = clip(&format!("Connect {}", pending.prompt.platform), 24);
        let label = clip(&format!("Type {}", pending.prompt.label), 2000);
        let view = json!({
            "trigger_id": trigger,
            "view": {
                "type": "modal",
                "callback_id": SECRET_FORM,
                "private_metadata": key,
                "title": { "type": "plain_text", "text": title },
                "submit": { "type": "plain_text", "text": "Connect" },
                "close": { "type": "plain_text", "text": "Cancel" },
                "blocks": [{
                    "type": "input",
                    "block_id": "secret",
                    "label": { "type": "plain_text", "text": label },
                    "element": { "type": "plain_text_input", "action_id": "secret" },
                }],
            },
        });
        {
            let mut all = forms.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            all.retain(|_, p| p.shown.elapsed() < FORM_LIFETIME);
            all.insert(key.clone(), pending);
        }
        if let Err(f) = self.api.post("views.open", &view, None).await {
            forms.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&key);
            tracing::info!("cannot open the secret form: {}", f.error);
            let again = if f.code.as_deref() == Some("expired_trigger_id") {
                "Slack needed the form for the secret sooner than Polity could answer: run the command again."
            } else {
                "Polity could not open the form for the secret on Slack: run the command again."
            };
            self.deliver(to, Reply::private(again)).await;
        }
    }
}

/// A reply as Slack text: escaped, an attachment's content after it in a code block.
fn rendered(reply: &Reply) -> String {
    let mut text = mrkdwn(&reply.text);
    if let Some(file) = &reply.attachment {
        text.push_str(&format!("\n*{}*\n```{}```", mrkdwn(&file.name), mrkdwn(&file.content)));
    }
    clip(&text, 3_900)
}

/// slack-morphism's websocket clients hand every frame here.
#[async_trait]
impl SlackSocketModeClientListener for Listener {
    async fn on_message(&self, client_id: &SlackSocketModeWssClientId, message_body: String) -> Option<String> {
        self.frame(Some(client_id), &message_body).await
    }

    async fn on_error(&self, error: Box<dyn std::error::Error + Send + Sync>) {
        tracing::warn!("Slack Socket Mode: {error}");
    }

    async fn on_disconnect(&self, client_id: &SlackSocketModeWssClientId) {
        tracing::info!("Slack Socket Mode disconnected; reconnecting");
        if let Some(manager) = self.manager.get().and_then(Weak::upgrade) {
            manager.restart_client(client_id).await;
        }
    }
}
