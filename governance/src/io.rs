//! The normalized vocabulary of what comes in ([`Inbound`]) and what goes out ([`Effect`]),
//! and the audit trail every step leaves ([`Audit`]).

use crate::action::{Action, ActionType};
use crate::ids::{AccountRef, MessageRef, Place, PolicyId, ProposalId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// Something that happened, already translated from the platform's own words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Inbound {
    /// A governable action that happened (a message in a governed channel, a rename), a
    /// request to change something (`polity.role_grant`, `polity.propose`), or a trigger event.
    Action { action: Action },
    /// A reaction added to or removed from a message.
    Reaction { message: MessageRef, voter: AccountRef, emoji: String, added: bool },
    /// The reactions on a vote message as the platform reports them now (read back on start,
    /// after a reconnect, or after a burst of reaction events that may have arrived out of
    /// order). Ballots cast by reactions on that message are brought in line with it: a
    /// ballot whose reaction is gone is withdrawn, a reaction no ballot accounts for counts as
    /// added now. Only the emoji listed were read; the others are left as they are.
    ///
    /// `superseded_kept`: the platform keeps the reactions a ballot superseded (a Slack bot
    /// cannot remove others' reactions), so beside a single-choice ballot's own reaction, still
    /// held, another one is an older choice, not a new ballot.
    Reactions {
        message: MessageRef,
        reactions: Vec<ReactionUsers>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        superseded_kept: bool,
    },
    /// A typed or button ballot: `/vote 12 yes`.
    Vote { proposal: ProposalId, voter: AccountRef, choice: String },
    /// `/unvote 12`.
    Unvote { proposal: ProposalId, voter: AccountRef },
    /// `/cancel 12`, by the proposer or an admin.
    Cancel { proposal: ProposalId, by: AccountRef },
    /// A platform posted a vote message: reactions on it are ballots from now on.
    VoteMessagePosted {
        proposal: ProposalId,
        message: MessageRef,
        /// Where people open it, if its platform said (`proposal.link`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    /// What a platform kept while undoing a governed action (a deleted message's files),
    /// added to the proposal's action so that re-executing it restores them.
    /// `note` says what it could not keep, on the vote message.
    Kept {
        proposal: ProposalId,
        data: serde_json::Map<String, serde_json::Value>,
        #[serde(default)]
        note: Option<String>,
    },
    /// Something the vote message of an open proposal should say (a change of its that the
    /// platform holds back, and until when); a note with the same key replaces the last.
    Note { proposal: ProposalId, key: String, text: String },
    /// An external process (a Loomio poll, a GitHub issue vote) reported progress.
    ProcessUpdate { proposal: ProposalId, status: String, outcome: Value },
    /// The clock moved: deadlines up to now are due.
    Tick,
}

/// Something the bot must do on a platform. Effects are recorded before they are performed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Effect {
    /// Post the vote message of a proposal and seed its reactions (and buttons, where the
    /// platform has them). The platform reports the message back with
    /// [`Inbound::VoteMessagePosted`].
    PostVote { proposal: ProposalId, place: Place, text: String, options: Vec<VoteOption> },
    /// Replace the text of every vote message of a proposal (the live tally, the outcome).
    /// `closed`: the vote is over, so platforms take its buttons away.
    EditVote {
        proposal: ProposalId,
        text: String,
        #[serde(default)]
        closed: bool,
    },
    /// Post a message.
    Post { place: Place, text: String },
    /// Tell one person something only they see (a DM or an ephemeral reply).
    Notify {
        account: AccountRef,
        text: String,
        /// Where they are, when it is about what they did there (a reaction on a vote
        /// message): a platform that shows one person a message inside a channel (Slack's
        /// ephemeral messages) says it there; others send a direct message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Place>,
    },
    /// Remove someone's reaction (a superseded or ineligible ballot). Platforms that cannot
    /// remove others' reactions skip it; their tally counts the latest reaction.
    RemoveReaction { message: MessageRef, account: AccountRef, emoji: String },
    /// Undo a governable action while it is voted on.
    Revert { proposal: Option<ProposalId>, action: Action },
    /// Carry out an action: re-execute a reverted one, or perform an allowed request.
    Execute { proposal: Option<ProposalId>, action: Action },
    /// Call a platform action by name (`opencollective.process_expense`).
    Call { proposal: Option<ProposalId>, name: ActionType, params: Map<String, Value> },
    /// Start an external decision process (`loomio.poll`).
    StartProcess { proposal: ProposalId, name: ActionType, params: Map<String, Value> },
}

/// An option of a vote message: the reaction that votes for it and its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteOption {
    pub emoji: String,
    pub label: String,
    /// What a button for this option casts, as `/vote` would take it; `None` where one press
    /// cannot make a whole ballot (approval and ranked votes), so no button is shown.
    #[serde(default)]
    pub press: Option<String>,
}

/// Who reacted with one emoji on a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionUsers {
    pub emoji: String,
    pub accounts: Vec<AccountRef>,
}

/// One line of the governance record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Audit {
    /// No policy governs the action, so it stands (or, for a request, is carried out).
    Allowed {
        action: ActionType,
        initiator: AccountRef,
    },
    /// The initiator may execute the action without a vote.
    ExecutedByPermission {
        action: ActionType,
        initiator: AccountRef,
    },
    /// The initiator may not propose this action, so it was refused.
    Refused {
        action: ActionType,
        initiator: AccountRef,
        reason: String,
    },
    Proposed {
        proposal: ProposalId,
        policy: PolicyId,
        policy_name: String,
        action: ActionType,
    },
    BallotCast {
        proposal: ProposalId,
        voter: AccountRef,
        choice: String,
    },
    BallotWithdrawn {
        proposal: ProposalId,
        voter: AccountRef,
    },
    BallotRejected {
        proposal: ProposalId,
        voter: AccountRef,
        reason: String,
    },
    Decided {
        proposal: ProposalId,
        outcome: String,
    },
    /// A change to governance itself was carried out (by permission, with no policy, or
    /// because its proposal passed).
    Applied {
        proposal: Option<ProposalId>,
        action: ActionType,
    },
    /// A script block failed; the policy is treated as not matching (filter) or the step is
    /// skipped, and the error is kept here.
    ScriptFailed {
        policy_name: String,
        error: String,
    },
    /// The step's script budget (in milliseconds) was spent, so these scripts were not run;
    /// each counts as a failing script does (a filter as no match, a check as letting the
    /// vote decide).
    ScriptBudgetSpent {
        budget_ms: u64,
        skipped: Vec<SkippedScript>,
    },
    /// A policy's script block ran out of time on `runs` runs in a row; the admins were told
    /// (once per streak).
    ScriptTimingOut {
        policy: PolicyId,
        policy_name: String,
        block: String,
        runs: u32,
        admins_told: usize,
    },
    /// Polity gave up on an effect: the platform refused it for good, or it failed on every
    /// attempt. What it was and why, as the platform said it; the admins were told.
    EffectFailed {
        proposal: Option<ProposalId>,
        effect: String,
        error: String,
        admins_told: usize,
    },
    /// An effect failed for now (a timeout, a server error) and is tried again after
    /// `retry_in_secs`: said once per effect, at its first failure.
    EffectRetrying {
        proposal: Option<ProposalId>,
        effect: String,
        error: String,
        retry_in_secs: i64,
    },
}

/// A script a step did not run: its policy and block (`filter`, `check`, `pass.script`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedScript {
    pub policy_name: String,
    pub block: String,
}

impl fmt::Display for SkippedScript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy \"{}\"'s {}", self.policy_name, self.block)
    }
}

/// How many skipped scripts an audit line names before it only counts the rest.
const SKIPPED_NAMED: usize = 3;

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed { action, initiator } => write!(f, "{action} by {initiator} allowed: no policy governs it"),
            Self::ExecutedByPermission { action, initiator } => {
                write!(f, "{action} by {initiator} carried out: the initiator may execute it")
            }
            Self::Refused { action, initiator, reason } => write!(f, "{action} by {initiator} refused: {reason}"),
            Self::Proposed { proposal, policy_name, action, .. } => {
                write!(f, "proposal {proposal} opened for {action} under \"{policy_name}\"")
            }
            Self::BallotCast { proposal, voter, choice } => write!(f, "{voter} voted {choice} on {proposal}"),
            Self::BallotWithdrawn { proposal, voter } => write!(f, "{voter} withdrew their ballot on {proposal}"),
            Self::BallotRejected { proposal, voter, reason } => {
                write!(f, "ballot of {voter} on {proposal} rejected: {reason}")
            }
            Self::Decided { proposal, outcome } => write!(f, "proposal {proposal} {outcome}"),
            Self::Applied { proposal: Some(p), action } => write!(f, "{action} carried out (proposal {p})"),
            Self::Applied { proposal: None, action } => write!(f, "{action} carried out"),
            Self::ScriptFailed { policy_name, error } => write!(f, "policy \"{policy_name}\": {error}"),
            Self::ScriptBudgetSpent { budget_ms, skipped } => {
                let budget = crate::script::show_duration(std::time::Duration::from_millis(*budget_ms));
                write!(f, "the step's script budget of {budget} was spent, so ")?;
                match skipped.as_slice() {
                    [one] => write!(f, "{one} was not run (it counts as failing)"),
                    many => {
                        let named: Vec<String> = many.iter().take(SKIPPED_NAMED).map(ToString::to_string).collect();
                        write!(
                            f,
                            "{} scripts were not run (each counts as failing): {}",
                            many.len(),
                            named.join(", ")
                        )?;
                        match many.len().saturating_sub(SKIPPED_NAMED) {
                            0 => Ok(()),
                            rest => write!(f, " and {rest} more"),
                        }
                    }
                }
            }
            Self::EffectFailed { proposal, effect, error, admins_told } => {
                match proposal {
                    Some(p) => write!(f, "{effect} (proposal {p}) could not be carried out: {error}; ")?,
                    None => write!(f, "{effect} could not be carried out: {error}; ")?,
                }
                match admins_told {
                    0 => f.write_str("there is no admin to tell"),
                    1 => f.write_str("the admin was told"),
                    n => write!(f, "{n} admins were told"),
                }
            }
            Self::EffectRetrying { proposal, effect, error, retry_in_secs } => {
                match proposal {
                    Some(p) => write!(f, "{effect} (proposal {p}) failed for now: {error}; ")?,
                    None => write!(f, "{effect} failed for now: {error}; ")?,
                }
                write!(f, "tried again in {retry_in_secs} s, and the admins are told if it never succeeds")
            }
            Self::ScriptTimingOut { policy_name, block, runs, admins_told, .. } => {
                write!(f, "policy \"{policy_name}\"'s {block} ran out of time on {runs} runs in a row; ")?;
                match admins_told {
                    0 => f.write_str("there is no admin to tell"),
                    1 => f.write_str("the admin was told"),
                    n => write!(f, "{n} admins were told"),
                }
            }
        }
    }
}
