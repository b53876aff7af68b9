//! The slash commands the console understands today: enough to propose, vote and install a
//! starter kit. Each turns into the governance input it means; the engine decides.

use crate::runtime::{Handled, Runtime, request};
use anyhow::Result;
use chrono::{DateTime, Utc};
use polity_governance::action::{Action, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, Place, ProposalId};
use polity_governance::io::Inbound;
use polity_governance::{ActionType, GovError, kits};

/// What the invoker is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// Only the invoker sees it.
    pub ephemeral: bool,
}

impl Reply {
    fn private(text: impl Into<String>) -> Self {
        Self { text: text.into(), ephemeral: true }
    }
}

/// One command invocation.
pub struct Invocation<'a> {
    pub community: CommunityId,
    pub invoker: AccountRef,
    pub place: Place,
    pub name: &'a str,
    pub args: &'a str,
    /// Unique per invocation (the platform's interaction id).
    pub id: &'a str,
    pub now: DateTime<Utc>,
}

const HELP: &str = "Commands:
/propose TEXT [policy:NAME] — put a decision to a vote
/vote ID CHOICE — vote on a proposal (yes, no, abstain, an option); /unvote ID takes it back
/cancel ID — withdraw your open proposal (admins: any)
/proposals — the open proposals
/kit list — the starter kits; /kit install NAME — install one
/help — this list";

/// How a command's success is put to the invoker, once the engine has handled it.
type Describe = fn(&Runtime, CommunityId, &Handled) -> String;

fn proposal_id(text: &str) -> Option<ProposalId> {
    text.trim().trim_start_matches('#').parse().ok().map(ProposalId)
}

/// Handles one command; user mistakes come back as a private reply, internal failures as
/// errors.
///
/// # Errors
/// When the runtime fails (not for user mistakes).
pub async fn handle(rt: &mut Runtime, inv: Invocation<'_>) -> Result<Reply> {
    let source = format!("command:{}", inv.invoker.platform);
    let usage = |u: &str| Ok(Reply::private(format!("Usage: {u}")));
    let (input, describe): (Inbound, Describe) = match inv.name {
        "help" => return Ok(Reply::private(HELP)),
        "propose" => {
            let (text, policy) = match inv.args.rsplit_once(" policy:") {
                Some((t, p)) => (t.trim(), Some(p.trim())),
                None => (inv.args.trim(), None),
            };
            if text.is_empty() {
                return usage("/propose TEXT [policy:NAME]");
            }
            let kind = ActionType::new(PROPOSE).map_err(anyhow::Error::msg)?;
            let mut action =
                Action::new(kind, inv.invoker.clone(), inv.id).at(inv.place.clone()).requested().with("text", text);
            if let Some(p) = policy {
                action = action.with("policy", p);
            }
            (Inbound::Action { action }, |rt, c, h| opened(rt, c, h, "is open"))
        }
        "vote" => {
            let Some((id, choice)) = inv.args.trim().split_once(char::is_whitespace) else {
                return usage("/vote ID CHOICE");
            };
            let Some(proposal) = proposal_id(id) else {
                return usage("/vote ID CHOICE");
            };
            let input = Inbound::Vote { proposal, voter: inv.invoker.clone(), choice: choice.trim().to_string() };
            (input, |_, _, _| "Your ballot is counted.".into())
        }
        "unvote" => {
            let Some(proposal) = proposal_id(inv.args) else {
                return usage("/unvote ID");
            };
            (Inbound::Unvote { proposal, voter: inv.invoker.clone() }, |_, _, _| "Your ballot is withdrawn.".into())
        }
        "cancel" => {
            let Some(proposal) = proposal_id(inv.args) else {
                return usage("/cancel ID");
            };
            (Inbound::Cancel { proposal, by: inv.invoker.clone() }, |_, _, _| "Cancelled.".into())
        }
        "proposals" => {
            let Some(engine) = rt.engine(inv.community) else {
                return Ok(Reply::private("This community is not set up."));
            };
            let open: Vec<String> = engine
                .proposals()
                .filter(|p| p.state.is_open())
                .map(|p| format!("{} {} — {}", p.id, p.headline(), p.policy_name))
                .collect();
            let text = if open.is_empty() { "No proposal is open.".to_string() } else { open.join("\n") };
            return Ok(Reply::private(text));
        }
        "kit" => {
            let args: Vec<&str> = inv.args.split_whitespace().collect();
            match args.as_slice() {
                ["list"] | [] => {
                    let lines: Vec<String> =
                        kits::starter_kits().iter().map(|k| format!("{} — {}", k.name, k.description)).collect();
                    return Ok(Reply::private(lines.join("\n")));
                }
                ["install", name] => {
                    if let Err(e) = kits::starter_kit(name) {
                        return Ok(Reply::private(e.to_string()));
                    }
                    let mut action = request("polity.kit_install", inv.invoker.clone(), inv.place.clone(), inv.id)?;
                    action = action.with("kit", *name);
                    (Inbound::Action { action }, |rt, c, h| match h {
                        Handled::Done(step) if step.changed.is_empty() => "The starter kit is installed.".into(),
                        _ => opened(rt, c, h, "asks to install the kit"),
                    })
                }
                _ => return usage("/kit list | /kit install NAME"),
            }
        }
        other => return Ok(Reply::private(format!("There is no command /{other}: /help lists the commands."))),
    };
    match rt.handle(inv.community, &source, inv.id, input, inv.now, false).await {
        Ok(h) => Ok(Reply::private(describe(rt, inv.community, &h))),
        Err(e) => match e.downcast::<GovError>() {
            Ok(mistake) => Ok(Reply::private(mistake.to_string())),
            Err(e) => Err(e),
        },
    }
}

fn opened(rt: &Runtime, community: CommunityId, handled: &Handled, verb: &str) -> String {
    let Handled::Done(step) = handled else {
        return "Already done.".into();
    };
    let Some(id) = step.changed.iter().next() else {
        return "Done.".into();
    };
    let p = rt.store_proposal_state(community, *id);
    match p {
        Some((state, policy)) if state.is_open() => format!("Proposal {id} {verb}, under \"{policy}\"."),
        Some((state, policy)) => format!("Proposal {id} {state} at once under \"{policy}\"."),
        None => "Done.".into(),
    }
}
