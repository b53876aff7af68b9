//! Polity's commands as Discord application commands: poise commands built from the one
//! catalogue in `polity-commands`, each a thin shim that hands the invocation to the bot and
//! renders its neutral [`Reply`]. Vote buttons and the secret form (a modal) are answered the
//! same way.
//!
//! Discord wants an answer to an interaction within three seconds. A command the catalogue
//! marks slow is acknowledged at once ("thinking…", ephemeral) and answered by editing that
//! acknowledgement; any other is answered directly if the bot answers within
//! [`crate::GatewayConfig::answer_within`], and acknowledged then edited if not.

use crate::platform::{COMMAND_USED, VOTE_BUTTON};
use poise::{CommandParameter, CommandParameterChoice};
use polity_commands::catalogue::{Arg, ArgKind, CATALOGUE, Spec};
use polity_commands::{Invocation, Parsed, Reply, SecretPrompt};
use polity_governance::action::{Action, ActionType};
use polity_governance::ids::{AccountRef, Place};
use polity_governance::io::Inbound;
use polity_port::{CommandCall, Event, Incoming, SecretTyped};
use serenity::all::{
    Cache, CommandInteraction, CommandOptionType, ComponentInteraction, CreateActionRow, CreateAllowedMentions,
    CreateAttachment, CreateCommandOption, CreateInputText, CreateInteractionResponse,
    CreateInteractionResponseFollowup, CreateInteractionResponseMessage, CreateModal, EditInteractionResponse, GuildId,
    Http, InputTextStyle, Member, ModalInteraction, ResolvedOption, ResolvedValue, User,
};
use serenity::model::application::ActionRowComponent;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The error type of Polity's poise commands (they answer every mistake themselves).
pub type Error = serenity::Error;
/// One of Polity's commands as poise holds it.
pub type Command = poise::Command<Arc<Bridge>, Error>;

/// The `custom_id` of the secret form: `polity:secret:{interaction that asked}`.
const SECRET_FORM: &str = "polity:secret:";
/// How long a secret form may wait for its answer (Discord's interaction lifetime).
const FORM_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Discord's limits, in characters.
const MAX_CONTENT: usize = 2000;
const MAX_DESCRIPTION: usize = 100;
const MAX_MODAL_TITLE: usize = 45;

const SORRY: &str = "Sorry, that failed on our side; it is logged.";
const SHUTTING_DOWN: &str = "Polity is restarting; try again in a moment.";

/// Where interactions go: the bot's channel, and the secret forms waiting for their answer.
pub struct Bridge {
    pub(crate) connection: String,
    pub(crate) incoming: mpsc::Sender<Incoming>,
    pub(crate) answer_within: Duration,
    pending: Mutex<HashMap<String, Pending>>,
}

/// A secret form shown, waiting for its answer.
struct Pending {
    prompt: SecretPrompt,
    invocation: Invocation,
    guild: String,
    name: String,
    shown: Instant,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").field("connection", &self.connection).finish_non_exhaustive()
    }
}

impl Bridge {
    pub(crate) fn new(connection: String, incoming: mpsc::Sender<Incoming>, answer_within: Duration) -> Self {
        Self { connection, incoming, answer_within, pending: Mutex::new(HashMap::new()) }
    }
}

/// Every command of the catalogue as a poise command: `/propose`, and groups such as
/// `/role grant` as subcommands. Discord cannot run a command that has subcommands, so
/// where the catalogue has both (`/link` and `/link confirm`) the bare one is `/link start`.
#[must_use]
pub fn application_commands() -> Vec<Command> {
    let mut groups: BTreeMap<&str, Vec<&'static Spec>> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for spec in CATALOGUE {
        let word = spec.path[0];
        if !groups.contains_key(word) {
            order.push(word);
        }
        groups.entry(word).or_default().push(spec);
    }
    order
        .into_iter()
        .filter_map(|word| {
            let specs = groups.remove(word)?;
            if let [only] = specs.as_slice()
                && only.path.len() == 1
            {
                return Some(leaf(only, word));
            }
            let children: Vec<Command> =
                specs.iter().map(|s| leaf(s, s.path.get(1).copied().unwrap_or("start"))).collect();
            let names: Vec<String> = children.iter().map(|c| c.name.to_string()).collect();
            Some(Command {
                name: Cow::Borrowed(word),
                identifying_name: Cow::Owned(word.to_string()),
                description: Some(Cow::Owned(clip(&format!("/{word} {}", names.join(", ")), MAX_DESCRIPTION))),
                subcommands: children,
                subcommand_required: true,
                slash_action: Some(slash),
                guild_only: true,
                ..Command::default()
            })
        })
        .collect()
}

fn leaf(spec: &'static Spec, name: &'static str) -> Command {
    Command {
        name: Cow::Borrowed(name),
        identifying_name: Cow::Owned(spec.name()),
        description: Some(Cow::Owned(clip(spec.help, MAX_DESCRIPTION))),
        help_text: Some(Cow::Owned(spec.usage())),
        parameters: spec.args.iter().map(parameter).collect(),
        slash_action: Some(slash),
        guild_only: true,
        custom_data: Box::new(spec),
        ..Command::default()
    }
}

fn parameter(arg: &Arg) -> CommandParameter<Arc<Bridge>, Error> {
    let (choices, type_setter): (Vec<CommandParameterChoice>, fn(CreateCommandOption) -> CreateCommandOption) =
        match arg.kind {
            ArgKind::Proposal => (Vec::new(), |b| b.kind(CommandOptionType::Integer).min_int_value(1)),
            ArgKind::Number => (Vec::new(), |b| b.kind(CommandOptionType::Integer).min_int_value(0)),
            // poise offers choices as numbers: the option's index.
            ArgKind::OneOf(words) => (
                words
                    .iter()
                    .map(|w| CommandParameterChoice {
                        name: Cow::Borrowed(w),
                        localizations: Cow::Borrowed(&[]),
                        __non_exhaustive: (),
                    })
                    .collect(),
                |b| b.kind(CommandOptionType::Integer),
            ),
            ArgKind::Word | ArgKind::Rest | ArgKind::Keyword => (Vec::new(), |b| b.kind(CommandOptionType::String)),
        };
    CommandParameter {
        name: Cow::Borrowed(arg.name),
        name_localizations: Cow::Borrowed(&[]),
        description: Some(Cow::Owned(clip(arg.help, MAX_DESCRIPTION))),
        description_localizations: Cow::Borrowed(&[]),
        required: arg.required,
        channel_types: None,
        choices: Cow::Owned(choices),
        type_setter: Some(type_setter),
        autocomplete_callback: None,
        __non_exhaustive: (),
    }
}

/// An option's value as Discord sent it.
#[derive(Clone, Copy, Debug)]
enum Given<'a> {
    Integer(i64),
    Text(&'a str),
}

/// The arguments of a command, from the options Discord resolved.
fn parsed(spec: &'static Spec, options: &[ResolvedOption<'_>]) -> Parsed {
    let given = options.iter().filter_map(|o| match o.value {
        ResolvedValue::Integer(i) => Some((o.name, Given::Integer(i))),
        ResolvedValue::String(s) => Some((o.name, Given::Text(s))),
        _ => None,
    });
    parsed_from(spec, given)
}

fn parsed_from<'a>(spec: &'static Spec, given: impl Iterator<Item = (&'a str, Given<'a>)>) -> Parsed {
    let given: Vec<(&str, Given<'_>)> = given.collect();
    let mut values = BTreeMap::new();
    for arg in spec.args {
        let Some((_, value)) = given.iter().find(|(name, _)| *name == arg.name) else { continue };
        let value = match (*value, arg.kind) {
            (Given::Integer(i), ArgKind::OneOf(words)) => {
                usize::try_from(i).ok().and_then(|i| words.get(i)).map(|w| (*w).to_string())
            }
            (Given::Integer(i), _) => Some(i.to_string()),
            (Given::Text(s), _) => Some(s.to_string()),
        };
        if let Some(v) = value {
            values.insert(arg.name, v);
        }
    }
    Parsed { spec, values }
}

/// The one slash action every command shares: the catalogue entry rides in `custom_data`.
fn slash(
    ctx: poise::ApplicationContext<'_, Arc<Bridge>, Error>,
) -> poise::BoxFuture<'_, Result<(), poise::FrameworkError<'_, Arc<Bridge>, Error>>> {
    Box::pin(async move {
        let Some(spec) = ctx.command().custom_data.downcast_ref::<&'static Spec>().copied() else {
            return Ok(());
        };
        let parsed = parsed(spec, ctx.args);
        let bridge = Arc::clone(ctx.data());
        let serenity = ctx.serenity_context();
        bridge.command(&serenity.http, &serenity.cache, Asked::Command(ctx.interaction), parsed, spec.slow).await;
        Ok(())
    })
}

/// An interaction Polity answers.
#[derive(Clone, Copy)]
pub(crate) enum Asked<'a> {
    Command(&'a CommandInteraction),
    Component(&'a ComponentInteraction),
    Modal(&'a ModalInteraction),
}

impl Asked<'_> {
    fn id(&self) -> String {
        match self {
            Self::Command(i) => i.id.to_string(),
            Self::Component(i) => i.id.to_string(),
            Self::Modal(i) => i.id.to_string(),
        }
    }

    fn user(&self) -> &User {
        match self {
            Self::Command(i) => &i.user,
            Self::Component(i) => &i.user,
            Self::Modal(i) => &i.user,
        }
    }

    fn display_name(&self) -> String {
        let member = match self {
            Self::Command(i) => i.member.as_deref(),
            Self::Component(i) => i.member.as_ref(),
            Self::Modal(i) => i.member.as_ref(),
        };
        member.map_or_else(|| self.user().display_name().to_string(), |m| m.display_name().to_string())
    }

    fn member(&self) -> Option<&Member> {
        match self {
            Self::Command(i) => i.member.as_deref(),
            Self::Component(i) => i.member.as_ref(),
            Self::Modal(i) => i.member.as_ref(),
        }
    }

    fn guild_id(&self) -> Option<GuildId> {
        match self {
            Self::Command(i) => i.guild_id,
            Self::Component(i) => i.guild_id,
            Self::Modal(i) => i.guild_id,
        }
    }

    fn guild(&self) -> Option<String> {
        self.guild_id().map(|g| g.to_string())
    }

    /// Whether the invoker controls the guild, by Discord's permission model: its owner
    /// (serenity's cache knows who that is), or a member whose permissions include
    /// Administrator or Manage Server. The permissions are Discord's own computation, sent
    /// with the interaction; without them, the cache's from the member's roles.
    fn manages_server(&self, cache: &Cache) -> bool {
        let Some(guild) = self.guild_id() else { return false };
        let member = self.member();
        let (owner, from_roles) = match cache.guild(guild) {
            Some(g) => (g.owner_id == self.user().id, member.map(|m| g.member_permissions(m))),
            None => (false, None),
        };
        let permissions = member.and_then(|m| m.permissions).or(from_roles);
        owner || permissions.is_some_and(|p| p.administrator() || p.manage_guild())
    }

    fn channel(&self) -> String {
        match self {
            Self::Command(i) => i.channel_id,
            Self::Component(i) => i.channel_id,
            Self::Modal(i) => i.channel_id,
        }
        .to_string()
    }

    async fn respond(&self, http: &Http, response: CreateInteractionResponse) -> Result<(), Error> {
        match self {
            Self::Command(i) => i.create_response(http, response).await,
            Self::Component(i) => i.create_response(http, response).await,
            Self::Modal(i) => i.create_response(http, response).await,
        }
    }

    async fn edit(&self, http: &Http, edit: EditInteractionResponse) -> Result<(), Error> {
        match self {
            Self::Command(i) => i.edit_response(http, edit).await.map(drop),
            Self::Component(i) => i.edit_response(http, edit).await.map(drop),
            Self::Modal(i) => i.edit_response(http, edit).await.map(drop),
        }
    }

    async fn follow_up(&self, http: &Http, message: CreateInteractionResponseFollowup) -> Result<(), Error> {
        match self {
            Self::Command(i) => i.create_followup(http, message).await.map(drop),
            Self::Component(i) => i.create_followup(http, message).await.map(drop),
            Self::Modal(i) => i.create_followup(http, message).await.map(drop),
        }
    }
}

/// When an interaction must be answered: `slow` ones are acknowledged at once; others are
/// answered directly if the answer comes before `deadline`; `acknowledged`: already done.
struct Answering {
    slow: bool,
    deadline: tokio::time::Instant,
    acknowledged: bool,
}

/// A reply as Discord takes it: text within the message limit (the whole of a longer text
/// attached as a file) and the reply's own attachment.
fn rendered(reply: &Reply) -> (String, Vec<CreateAttachment>) {
    let mut files = Vec::new();
    let text = if reply.text.chars().count() > MAX_CONTENT {
        files.push(CreateAttachment::bytes(reply.text.clone().into_bytes(), "answer.txt"));
        let first = reply.text.lines().next().unwrap_or_default();
        format!("{}\n(The whole answer is in the attached file.)", clip(first, MAX_CONTENT - 64))
    } else {
        reply.text.clone()
    };
    if let Some(a) = &reply.attachment {
        files.push(CreateAttachment::bytes(a.content.clone().into_bytes(), a.name.clone()));
    }
    (text, files)
}

impl Bridge {
    fn invocation(&self, asked: &Asked<'_>) -> Invocation {
        Invocation {
            invoker: AccountRef::new(self.connection.clone(), asked.user().id.to_string()),
            place: Place::new(self.connection.clone(), asked.channel()),
            id: asked.id(),
        }
    }

    /// Runs a command (a slash command, or a vote button as the `/vote` it stands for) and
    /// answers it.
    pub(crate) async fn command(&self, http: &Http, cache: &Cache, asked: Asked<'_>, parsed: Parsed, slow: bool) {
        // Discord's three seconds run from the interaction's arrival, not from when the bot
        // gets to it: the deadline is fixed here, before any queue.
        let deadline = tokio::time::Instant::now() + self.answer_within;
        let Some(guild) = asked.guild() else {
            let _ = asked.respond(http, message("Polity's commands work in a server, where its community is.")).await;
            return;
        };
        let invocation = self.invocation(&asked);
        let name = asked.display_name();
        let manages_space = asked.manages_server(cache);
        let (answer, answered) = oneshot::channel();
        let call = CommandCall {
            space: guild.clone(),
            invocation: invocation.clone(),
            name: name.clone(),
            manages_space,
            parsed,
            answer,
        };
        let command = call.parsed.spec.name();
        let Some(acknowledged) = self.hand_in(http, &asked, Incoming::Command(call), deadline).await else { return };
        // Using a command is also a trigger event policies can act on; it never holds up
        // the answer.
        if let Ok(kind) = ActionType::new(COMMAND_USED) {
            let action = Action::new(kind, invocation.invoker.clone(), invocation.id.clone())
                .event()
                .at(invocation.place.clone())
                .with("command", command)
                .with("channel", invocation.place.channel.to_string());
            let event = Event {
                dedup_key: format!("command_used:{}", invocation.id),
                space: Some(guild.clone()),
                input: Inbound::Action { action },
                from: Some((invocation.invoker.clone(), name.clone())),
            };
            let incoming = self.incoming.clone();
            tokio::spawn(async move {
                let _ = incoming.send(Incoming::Event(event)).await;
            });
        }
        let when = Answering { slow, deadline, acknowledged };
        self.deliver(http, asked, answered, when, Some((invocation, guild, name))).await;
    }

    /// Hands an interaction's input to the bot. A bot too busy to take it before `deadline`
    /// gets the interaction acknowledged first (the answer follows as an edit). Answers
    /// whether it was acknowledged; `None` when it cannot be answered at all (Discord refused
    /// the acknowledgement, or the bot is shutting down: said so).
    async fn hand_in(
        &self,
        http: &Http,
        asked: &Asked<'_>,
        input: Incoming,
        deadline: tokio::time::Instant,
    ) -> Option<bool> {
        let mut acknowledged = false;
        let permit = match tokio::time::timeout_at(deadline, self.incoming.reserve()).await {
            Ok(permit) => permit,
            Err(_) => {
                acknowledged = self.acknowledge(http, asked).await;
                if !acknowledged {
                    return None;
                }
                self.incoming.reserve().await
            }
        };
        let Ok(permit) = permit else {
            if acknowledged {
                let _ = asked.edit(http, EditInteractionResponse::new().content(SHUTTING_DOWN)).await;
            } else {
                let _ = asked.respond(http, message(SHUTTING_DOWN)).await;
            }
            return None;
        };
        permit.send(input);
        Some(acknowledged)
    }

    /// Acknowledges an interaction (ephemeral "thinking"); false when Discord refused it.
    async fn acknowledge(&self, http: &Http, asked: &Asked<'_>) -> bool {
        let defer = CreateInteractionResponse::Defer(CreateInteractionResponseMessage::new().ephemeral(true));
        match asked.respond(http, defer).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot acknowledge an interaction");
                false
            }
        }
    }

    /// Answers the secret form: the secret goes to the bot with the command that asked for it.
    pub(crate) async fn secret(&self, http: &Http, modal: &ModalInteraction) {
        let deadline = tokio::time::Instant::now() + self.answer_within;
        let asked = Asked::Modal(modal);
        let key = modal.data.custom_id.strip_prefix(SECRET_FORM).unwrap_or_default().to_string();
        let pending = self.pending.lock().ok().and_then(|mut p| p.remove(&key));
        let Some(pending) = pending.filter(|p| p.shown.elapsed() < FORM_LIFETIME) else {
            let _ = asked.respond(http, message("That form has expired: run the command again.")).await;
            return;
        };
        let secret = modal
            .data
            .components
            .iter()
            .flat_map(|row| row.components.iter())
            .find_map(|c| match c {
                ActionRowComponent::InputText(t) => t.value.clone(),
                _ => None,
            })
            .unwrap_or_default();
        let (answer, answered) = oneshot::channel();
        let typed = SecretTyped {
            space: pending.guild,
            invocation: pending.invocation,
            name: pending.name,
            prompt: pending.prompt,
            secret,
            answer,
        };
        let Some(acknowledged) = self.hand_in(http, &asked, Incoming::Secret(typed), deadline).await else { return };
        let when = Answering { slow: false, deadline, acknowledged };
        self.deliver(http, asked, answered, when, None).await;
    }

    /// A press of a vote button: the `/vote` it stands for.
    pub(crate) async fn button(&self, http: &Http, cache: &Cache, press: &ComponentInteraction) {
        let Some(rest) = press.data.custom_id.strip_prefix(VOTE_BUTTON) else { return };
        let Some((proposal, choice)) = rest.split_once(':') else { return };
        let Some(spec) = polity_commands::catalogue::find(&["vote"]) else { return };
        let values = BTreeMap::from([("id", proposal.to_string()), ("choice", choice.to_string())]);
        self.command(http, cache, Asked::Component(press), Parsed { spec, values }, false).await;
    }

    /// Waits for the bot's answer and gives it: at once when it comes in time (the
    /// acknowledgement and the answer in one), else acknowledged first and edited after.
    async fn deliver(
        &self,
        http: &Http,
        asked: Asked<'_>,
        mut answered: oneshot::Receiver<Reply>,
        when: Answering,
        form: Option<(Invocation, String, String)>,
    ) {
        if !when.slow && !when.acknowledged {
            match tokio::time::timeout_at(when.deadline, &mut answered).await {
                Ok(Ok(reply)) => {
                    self.respond(http, asked, reply, form).await;
                    return;
                }
                Ok(Err(_)) => {
                    let _ = asked.respond(http, message(SORRY)).await;
                    return;
                }
                Err(_) => {}
            }
        }
        if !when.acknowledged && !self.acknowledge(http, &asked).await {
            return;
        }
        let mut reply = answered.await.unwrap_or_else(|_| Reply::private(SORRY));
        if reply.secret_prompt.is_some() {
            // A form can only be the first answer, and the first answer was the acknowledgement.
            reply = Reply::private(
                "Discord needed an answer sooner to show the form for the secret: run the command again.",
            );
        }
        let (text, files) = rendered(&reply);
        if !reply.ephemeral {
            // The acknowledgement was private, and an edit keeps it so: a public answer is a
            // follow-up of its own, and the acknowledgement says where it went.
            let note = EditInteractionResponse::new().content("Answered in the channel.");
            if let Err(e) = asked.edit(http, note).await {
                tracing::warn!(error = %e, "cannot answer an interaction");
                return;
            }
            let mut public = CreateInteractionResponseFollowup::new()
                .content(text)
                .ephemeral(false)
                .allowed_mentions(CreateAllowedMentions::new());
            for f in files {
                public = public.add_file(f);
            }
            if let Err(e) = asked.follow_up(http, public).await {
                tracing::warn!(error = %e, "cannot answer an interaction");
            }
            return;
        }
        let mut edit = EditInteractionResponse::new().content(text).allowed_mentions(CreateAllowedMentions::new());
        for f in files {
            edit = edit.new_attachment(f);
        }
        if let Err(e) = asked.edit(http, edit).await {
            tracing::warn!(error = %e, "cannot answer an interaction");
        }
    }

    async fn respond(&self, http: &Http, asked: Asked<'_>, reply: Reply, form: Option<(Invocation, String, String)>) {
        let response = match (reply.secret_prompt.clone(), form) {
            (Some(prompt), Some((invocation, guild, name))) => {
                let key = asked.id();
                let title = clip(&format!("Connect {} as {}", prompt.platform, prompt.name), MAX_MODAL_TITLE);
                let label = clip(&format!("Type {}", prompt.label), MAX_MODAL_TITLE);
                let input = CreateInputText::new(InputTextStyle::Short, label, "secret").required(true);
                let modal = CreateModal::new(format!("{SECRET_FORM}{key}"), title)
                    .components(vec![CreateActionRow::InputText(input)]);
                if let Ok(mut pending) = self.pending.lock() {
                    pending.retain(|_, p| p.shown.elapsed() < FORM_LIFETIME);
                    pending.insert(key, Pending { prompt, invocation, guild, name, shown: Instant::now() });
                }
                CreateInteractionResponse::Modal(modal)
            }
            _ => {
                let (text, files) = rendered(&reply);
                // An answer quotes members' text: it pings nobody.
                let mut m = CreateInteractionResponseMessage::new()
                    .content(text)
                    .ephemeral(reply.ephemeral)
                    .allowed_mentions(CreateAllowedMentions::new());
                for f in files {
                    m = m.add_file(f);
                }
                CreateInteractionResponse::Message(m)
            }
        };
        if let Err(e) = asked.respond(http, response).await {
            tracing::warn!(error = %e, "cannot answer an interaction");
        }
    }
}

fn message(text: &str) -> CreateInteractionResponse {
    CreateInteractionResponse::Message(
        CreateInteractionResponseMessage::new()
            .content(text)
            .ephemeral(true)
            .allowed_mentions(CreateAllowedMentions::new()),
    )
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_command_is_a_valid_application_command() {
        let commands = application_commands();
        let mut seen = 0;
        for c in &commands {
            let built = c.create_as_slash_command();
            assert!(built.is_some(), "/{} cannot be registered", c.name);
            assert!(c.name.len() <= 32 && c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch == '-'));
            let leaves: Vec<&Command> = if c.subcommands.is_empty() { vec![c] } else { c.subcommands.iter().collect() };
            for leaf in leaves {
                seen += 1;
                assert!(leaf.description.as_deref().is_some_and(|d| !d.is_empty() && d.chars().count() <= 100));
                // Discord wants required options before optional ones.
                let required: Vec<bool> = leaf.parameters.iter().map(|p| p.required).collect();
                assert!(required.windows(2).all(|w| w[0] || !w[1]), "/{} {}: {required:?}", c.name, leaf.name);
            }
        }
        assert_eq!(seen, CATALOGUE.len());
        let names: Vec<&str> = commands.iter().map(|c| c.name.as_ref()).collect();
        assert!(names.contains(&"propose") && names.contains(&"role") && names.contains(&"link"));
        let link = commands.iter().find(|c| c.name == "link").unwrap();
        let subs: Vec<&str> = link.subcommands.iter().map(|c| c.name.as_ref()).collect();
        assert_eq!(subs, ["start", "confirm"]);
    }

    #[test]
    fn options_become_the_arguments_a_handler_reads() {
        let spec = polity_commands::catalogue::find(&["proposals"]).unwrap();
        let p = parsed_from(spec, [("which", Given::Integer(1))].into_iter());
        assert_eq!(p.get("which"), Some("all"));
        let spec = polity_commands::catalogue::find(&["vote"]).unwrap();
        let p = parsed_from(spec, [("id", Given::Integer(12)), ("choice", Given::Text("3>1>2"))].into_iter());
        assert_eq!((p.proposal("id").map(|p| p.0), p.text("choice")), (Some(12), "3>1>2"));
    }

    #[test]
    fn a_long_answer_comes_with_the_whole_of_it_attached() {
        let long = format!("Headline\n{}", "x".repeat(3000));
        let (text, files) = rendered(&Reply::private(long));
        assert!(text.starts_with("Headline\n(The whole answer"));
        assert_eq!(files.len(), 1);
        let (text, files) = rendered(&Reply::private("short"));
        assert_eq!((text.as_str(), files.len()), ("short", 0));
    }
}
