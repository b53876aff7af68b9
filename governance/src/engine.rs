//! The engine: push an [`Inbound`] and the time in, pull the state changes, the [`Effect`]s
//! and the [`Audit`] trail out. It never performs anything itself, never reads a clock and
//! never waits; the runtime records its output in one transaction and performs the effects.
//!
//! The scripts one step runs share a budget ([`Engine::set_script_budget`],
//! [`DEFAULT_STEP_BUDGET`] by default): once it is spent, the step's remaining scripts are not
//! run and count as failing, and the audit trail says which. A policy whose script block runs
//! out of time on [`TIMEOUT_STREAK`] runs in a row is reported to the admins, once per streak.

use crate::action::{Action, ActionStatus, ActionType, PROPOSE, REACTION_ADDED, REACTION_REMOVED};
use crate::community::{Community, Permission};
use crate::error::GovError;
use crate::ids::{AccountRef, MemberId, MessageRef, Place, PolicyId, ProposalId};
use crate::io::{Audit, Effect, Inbound, ReactionUsers, SkippedScript, VoteOption};
use crate::policy::{CompiledPolicy, DoAction, PolicyErrors, PolicyKind, select};
use crate::proposal::{
    Ballot, BallotSource, Eligible, OpenVote, ProcessState, Proposal, ProposalState, VoteNote, state_of,
};
use crate::script::{
    Block, HostData, NoHostData, Sandbox, Script, ScriptAction, ScriptError, ScriptErrorKind, ScriptInput,
    ScriptOutput, StepBudget,
};
use crate::template;
use crate::vote::{BallotChange, Choice, Decision, Tally, VoteSpec, Voters};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

pub use crate::script::DEFAULT_STEP_BUDGET;

/// How many runs in a row a policy's script block may run out of time (its operation or
/// wall-clock limit) before the admins are told.
pub const TIMEOUT_STREAK: u32 = 3;

/// What one step needs from outside: the time, entropy for jury draws, and host data for
/// scripts.
#[derive(Clone)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// Randomness for draws (juries); the runtime passes fresh entropy, tests a fixed value.
    pub seed: u64,
    pub host: Arc<dyn HostData>,
}

impl Ctx {
    /// A context with no host data.
    pub fn at(now: DateTime<Utc>) -> Self {
        Self { now, seed: 0, host: Arc::new(NoHostData) }
    }
}

/// What one step produced.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    pub effects: Vec<Effect>,
    pub audit: Vec<Audit>,
    /// Proposals whose state changed in this step (opened, ballots, decided).
    pub changed: BTreeSet<ProposalId>,
}

impl Step {
    /// Keeps only the last text edit of each proposal's vote: one input can change a tally
    /// several times (a reaction snapshot), and only the final text is worth sending.
    fn keep_last_edits(&mut self) {
        let mut seen = BTreeSet::new();
        let mut kept: Vec<Effect> = Vec::with_capacity(self.effects.len());
        for e in self.effects.drain(..).rev() {
            if let Effect::EditVote { proposal, .. } = &e
                && !seen.insert(*proposal)
            {
                continue;
            }
            kept.push(e);
        }
        kept.reverse();
        self.effects = kept;
    }
}

/// A step being made: what it produced so far ([`Step`], which it derefs to) and what its
/// scripts spent.
struct Work {
    out: Step,
    budget: StepBudget,
    /// Scripts not run because the budget was spent: policy name and block.
    skipped: Vec<(String, Block)>,
    /// How each run of a policy version's block ended, in order.
    runs: Vec<((PolicyId, Block), RunEnd)>,
}

impl Work {
    fn new(budget: Duration) -> Self {
        Self { out: Step::default(), budget: StepBudget::new(budget), skipped: Vec::new(), runs: Vec::new() }
    }
}

impl Deref for Work {
    type Target = Step;
    fn deref(&self) -> &Step {
        &self.out
    }
}

impl DerefMut for Work {
    fn deref_mut(&mut self) -> &mut Step {
        &mut self.out
    }
}

/// How a script run ended, for the timeout streaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunEnd {
    /// Stopped by its own operation or wall-clock limit.
    OutOfTime,
    /// Cut short by the step's budget: says nothing about the script.
    Cut,
    /// Finished, or failed otherwise.
    Ended,
}

impl RunEnd {
    fn of(result: &Result<ScriptOutput, ScriptError>) -> Self {
        match result {
            Err(e) => match e.kind {
                ScriptErrorKind::TooManyOperations { .. } | ScriptErrorKind::Timeout { .. } => Self::OutOfTime,
                ScriptErrorKind::StepBudgetSpent { .. } => Self::Cut,
                _ => Self::Ended,
            },
            Ok(_) => Self::Ended,
        }
    }
}

/// The latest runs in a row of one policy version's block that ran out of time.
#[derive(Clone, Copy, Debug, Default)]
struct Streak {
    runs: u32,
    /// The admins were told about this streak.
    told: bool,
}

/// How a proposal ends, as decided by its check block or its tally.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    Passed(Option<String>),
    Failed,
    Expired,
}

/// The governance state of one community and the rules that change it.
pub struct Engine {
    pub community: Community,
    sandbox: Arc<Sandbox>,
    active: Vec<Arc<CompiledPolicy>>,
    versions: BTreeMap<PolicyId, Arc<CompiledPolicy>>,
    proposals: BTreeMap<ProposalId, Proposal>,
    by_message: HashMap<MessageRef, ProposalId>,
    /// The number the next proposal gets: proposals are numbered per community, and closed
    /// ones may be dropped from memory without their numbers being reused.
    next_proposal: i64,
    /// What the scripts of one step may spend together.
    script_budget: Duration,
    /// Per policy version and block, its current streak of runs that ran out of time (kept in
    /// memory only: a reload starts every streak again).
    timeouts: BTreeMap<(PolicyId, Block), Streak>,
    /// The voter sets of open proposals, by fingerprint, so that equal ones are held once.
    eligible_sets: HashMap<u64, std::sync::Weak<crate::proposal::EligibleSet>>,
    /// Whether a proposal held in memory may have closed since [`Engine::forget_closed`]
    /// last ran: set wherever one closes, so that the sweep runs only then.
    closed_held: bool,
    /// Who was told their reaction on an open vote does not count (kept in memory only): a
    /// reaction a platform cannot remove is found again by every read, and is explained once.
    told_ineligible: BTreeSet<(ProposalId, AccountRef)>,
}

impl Engine {
    pub fn new(community: Community, sandbox: Arc<Sandbox>) -> Self {
        Self {
            community,
            sandbox,
            active: Vec::new(),
            versions: BTreeMap::new(),
            proposals: BTreeMap::new(),
            by_message: HashMap::new(),
            told_ineligible: BTreeSet::new(),
            next_proposal: 1,
            script_budget: DEFAULT_STEP_BUDGET,
            timeouts: BTreeMap::new(),
            eligible_sets: HashMap::new(),
            closed_held: false,
        }
    }

    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// Sets the script time one step may spend, all its scripts together (default
    /// [`DEFAULT_STEP_BUDGET`]; `Duration::MAX` for none). Once a step has spent it, its
    /// remaining scripts are not run and count as failing.
    pub fn set_script_budget(&mut self, budget: Duration) {
        self.script_budget = budget;
    }

    /// The script time one step may spend.
    pub fn script_budget(&self) -> Duration {
        self.script_budget
    }

    // ----- policies -----

    /// Installs a policy; a policy of the same name is replaced (its old version is kept, and
    /// proposals already open under it finish under it).
    ///
    /// # Errors
    /// Every mistake in the file, with lines.
    pub fn install_policy(&mut self, source: &str) -> Result<Arc<CompiledPolicy>, PolicyErrors> {
        let id = PolicyId(self.versions.keys().next_back().map_or(1, |p| p.0 + 1));
        let compiled = Arc::new(CompiledPolicy::compile(id, source, &self.sandbox)?);
        self.active.retain(|p| !p.name().eq_ignore_ascii_case(compiled.name()));
        self.active.push(compiled.clone());
        self.versions.insert(id, compiled.clone());
        Ok(compiled)
    }

    /// Restores a stored policy version (the runtime reloading its state).
    ///
    /// # Errors
    /// When the stored source no longer compiles.
    pub fn restore_policy(&mut self, id: PolicyId, source: &str, active: bool) -> Result<(), PolicyErrors> {
        let compiled = Arc::new(CompiledPolicy::compile(id, source, &self.sandbox)?);
        if active {
            self.active.retain(|p| !p.name().eq_ignore_ascii_case(compiled.name()));
            self.active.push(compiled.clone());
        }
        self.versions.insert(id, compiled);
        Ok(())
    }

    /// # Errors
    /// When no active policy has that name.
    pub fn remove_policy(&mut self, name: &str) -> Result<PolicyId, GovError> {
        let pos = self
            .active
            .iter()
            .position(|p| p.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| GovError::UnknownPolicy(name.into()))?;
        Ok(self.active.remove(pos).id)
    }

    /// Whether a script of any policy this engine runs (an old version deciding an open
    /// proposal included) reads the host's data.
    pub fn reads_host(&self) -> bool {
        self.versions.values().any(|p| p.reads_host())
    }

    /// The active policies, in install order.
    pub fn policies(&self) -> &[Arc<CompiledPolicy>] {
        &self.active
    }

    pub fn policy(&self, name: &str) -> Option<&Arc<CompiledPolicy>> {
        self.active.iter().find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Every version of the named policy, oldest first.
    pub fn history(&self, name: &str) -> Vec<&Arc<CompiledPolicy>> {
        self.versions.values().filter(|p| p.name().eq_ignore_ascii_case(name)).collect()
    }

    // ----- proposals -----

    pub fn proposal(&self, id: ProposalId) -> Option<&Proposal> {
        self.proposals.get(&id)
    }

    /// The open or recent proposal whose vote message this is.
    pub fn proposal_by_message(&self, message: &MessageRef) -> Option<&Proposal> {
        self.by_message.get(message).and_then(|id| self.proposals.get(id))
    }

    pub fn proposals(&self) -> impl Iterator<Item = &Proposal> {
        self.proposals.values()
    }

    /// Whether a proposal is open and its check may decide differently with no input (it
    /// reads the clock, `now`, or the host's data, `polity`): such a proposal is re-checked on
    /// a schedule ([`Inbound::Tick`]).
    pub fn rechecked(&self, id: ProposalId) -> bool {
        self.proposals.get(&id).filter(|p| p.state.is_open()).is_some_and(|p| {
            p.vote.as_ref().is_some_and(|v| v.pending)
                || self
                    .versions
                    .get(&p.policy)
                    .and_then(|pol| pol.check.as_ref())
                    .is_some_and(|c| c.uses("now") || c.uses("polity") || c.uses("sourcecred"))
        })
    }

    /// Whether any open proposal is [`Self::rechecked`].
    pub fn has_rechecks(&self) -> bool {
        self.proposals.keys().any(|id| self.rechecked(*id))
    }

    /// Restores a stored proposal (the runtime reloading its state).
    pub fn restore_proposal(&mut self, mut proposal: Proposal) {
        if let Some(v) = &mut proposal.vote {
            v.eligible = self.share_eligible(std::mem::take(&mut v.eligible));
        }
        if let Some(v) = &proposal.vote {
            for m in &v.messages {
                self.by_message.insert(m.clone(), proposal.id);
            }
        }
        self.next_proposal = self.next_proposal.max(proposal.id.0 + 1);
        self.closed_held |= !proposal.state.is_open();
        self.proposals.insert(proposal.id, proposal);
    }

    /// The same set another open proposal holds, if one holds an equal set; else `set`,
    /// remembered for the next.
    fn share_eligible(&mut self, set: Eligible) -> Eligible {
        let key = set.fingerprint();
        if let Some(shared) = self.eligible_sets.get(&key).and_then(std::sync::Weak::upgrade)
            && shared.members == *set
        {
            return Eligible::from_shared(shared);
        }
        if self.eligible_sets.len() >= 64 && self.eligible_sets.len().is_power_of_two() {
            // Sets no proposal holds any more are forgotten now and then.
            self.eligible_sets.retain(|_, w| w.strong_count() > 0);
        }
        self.eligible_sets.insert(key, set.downgrade());
        set
    }

    /// Merges member `gone` into `keep` (see [`crate::community::Community::merge_members`]), and carries
    /// `gone`'s place in every open vote over to `keep`: eligible where either was, with one
    /// ballot (`keep`'s own if both had voted, so nobody votes twice). Answers the proposals
    /// changed.
    ///
    /// # Errors
    /// When either is not a member, or they are the same.
    pub fn merge_members(
        &mut self,
        keep: MemberId,
        gone: MemberId,
    ) -> Result<Vec<ProposalId>, crate::community::CommunityError> {
        self.community.merge_members(keep, gone)?;
        let mut changed = Vec::new();
        let mut sets = Vec::new();
        for p in self.proposals.values_mut() {
            // Whoever proposed it is the one member now, open or not.
            if p.proposer == Some(gone) {
                p.proposer = Some(keep);
                changed.push(p.id);
            }
        }
        for p in self.proposals.values_mut().filter(|p| p.state.is_open()) {
            let Some(v) = p.vote.as_mut() else { continue };
            let mut touched = false;
            if v.eligible.contains(&gone) {
                let mut set: std::collections::BTreeSet<MemberId> = (*v.eligible).clone();
                set.remove(&gone);
                set.insert(keep);
                sets.push((p.id, Eligible::from(set)));
                touched = true;
            }
            if let Some(ballot) = v.ballots.remove(&gone) {
                if !v.ballots.contains_key(&keep) {
                    v.ballots.insert(keep, ballot);
                }
                touched = true;
            }
            if touched && !changed.contains(&p.id) {
                changed.push(p.id);
            }
        }
        for (id, set) in sets {
            let set = self.share_eligible(set);
            if let Some(v) = self.proposals.get_mut(&id).and_then(|p| p.vote.as_mut()) {
                v.eligible = set;
            }
        }
        Ok(changed)
    }

    /// Makes sure new proposals are numbered after `last` (the runtime restoring its state
    /// without loading closed proposals).
    pub fn numbered_after(&mut self, last: ProposalId) {
        self.next_proposal = self.next_proposal.max(last.0 + 1);
    }

    /// Drops closed proposals from memory (they stay in the store); their numbers are not
    /// reused.
    pub fn forget_closed(&mut self) {
        if !std::mem::take(&mut self.closed_held) {
            return;
        }
        self.proposals.retain(|_, p| p.state.is_open());
        let proposals = &self.proposals;
        self.by_message.retain(|_, id| proposals.contains_key(id));
        self.told_ineligible.retain(|(id, _)| proposals.contains_key(id));
    }

    /// The earliest deadline of an open proposal: when the scheduler must tick next.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.proposals.values().filter(|p| p.state.is_open()).filter_map(|p| p.closes_at).min()
    }

    fn next_proposal_id(&mut self) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        id
    }

    // ----- the step -----

    /// Applies one input.
    ///
    /// # Errors
    /// A user mistake (unknown proposal, ineligible voter, bad choice, missing permission); the
    /// state is unchanged when it is returned.
    pub fn step(&mut self, input: Inbound, ctx: &Ctx) -> Result<Step, GovError> {
        // One thread with a stack big enough for scripts serves the whole step, rather than
        // one per script run. A community whose policies have no scripts steps on the
        // caller's thread: starting a thread per input would cost more than the step (a
        // script of an older policy version, should one run, still gets a thread of its own).
        if self.active.iter().any(|p| p.has_scripts()) {
            crate::script::with_script_stack(|| self.step_inner(input, ctx))
        } else {
            self.step_inner(input, ctx)
        }
    }

    fn step_inner(&mut self, input: Inbound, ctx: &Ctx) -> Result<Step, GovError> {
        let mut work = Work::new(self.script_budget);
        let applied = self.apply(input, ctx, &mut work);
        // Streaks count the scripts that ran even when the input is then refused: a filter
        // that times out on every request would otherwise never be reported. The notice goes
        // out with the next step that succeeds.
        self.count_timeouts(&work.runs);
        applied?;
        self.report_scripts(&mut work);
        let mut step = work.out;
        step.keep_last_edits();
        Ok(step)
    }

    fn apply(&mut self, input: Inbound, ctx: &Ctx, step: &mut Work) -> Result<(), GovError> {
        match input {
            Inbound::Action { action } => self.on_action(action, ctx, step)?,
            Inbound::Reaction { message, voter, emoji, added } => {
                self.on_reaction(&message, &voter, &emoji, added, ctx, step);
                self.reaction_triggers(&message, &voter, &emoji, added, ctx, step);
            }
            Inbound::Reactions { message, reactions, superseded_kept } => {
                self.on_reactions(&message, &reactions, superseded_kept, ctx, step);
            }
            Inbound::Vote { proposal, voter, choice } => self.on_vote(proposal, &voter, &choice, ctx, step)?,
            Inbound::Unvote { proposal, voter } => self.on_unvote(proposal, &voter, ctx, step)?,
            Inbound::Cancel { proposal, by } => self.on_cancel(proposal, &by, ctx, step)?,
            Inbound::VoteMessagePosted { proposal, message, link } => {
                let p = self.proposals.get_mut(&proposal).ok_or(GovError::UnknownProposal(proposal))?;
                if let Some(v) = &mut p.vote {
                    if !v.messages.contains(&message) {
                        v.messages.push(message.clone());
                        step.changed.insert(proposal);
                    }
                    if let Some(link) = link.filter(|l| !v.links.contains(l)) {
                        v.links.push(link);
                        step.changed.insert(proposal);
                    }
                    self.by_message.insert(message, proposal);
                }
            }
            Inbound::Kept { proposal, data, note } => {
                let p = self.proposals.get_mut(&proposal).ok_or(GovError::UnknownProposal(proposal))?;
                if p.state.is_open() {
                    p.action.data.extend(data);
                    step.changed.insert(proposal);
                    if let Some(text) = note {
                        self.add_note(proposal, "kept", &text, step);
                    }
                }
            }
            Inbound::Note { proposal, key, text } => {
                self.proposals.get(&proposal).ok_or(GovError::UnknownProposal(proposal))?;
                self.add_note(proposal, &key, &text, step);
            }
            Inbound::ProcessUpdate { proposal, status, outcome } => {
                let p = self.proposals.get_mut(&proposal).ok_or(GovError::UnknownProposal(proposal))?;
                if p.state.is_open() {
                    p.process = Some(ProcessState { status, outcome });
                    step.changed.insert(proposal);
                    self.reevaluate(proposal, false, ctx, step);
                }
            }
            Inbound::Tick => self.on_tick(ctx, step),
        }
        Ok(())
    }

    /// Updates the timeout streaks with how this step's runs ended.
    fn count_timeouts(&mut self, runs: &[((PolicyId, Block), RunEnd)]) {
        for (key, end) in runs {
            match end {
                RunEnd::OutOfTime => {
                    let streak = self.timeouts.entry(*key).or_default();
                    streak.runs = streak.runs.saturating_add(1);
                }
                RunEnd::Ended => {
                    self.timeouts.remove(key);
                }
                RunEnd::Cut => {}
            }
        }
    }

    /// Closes the step's script record: the scripts the budget left unrun, and a notice to the
    /// admins for each streak of timeouts that reached [`TIMEOUT_STREAK`] and was not reported.
    fn report_scripts(&mut self, step: &mut Work) {
        if !step.skipped.is_empty() {
            let skipped = std::mem::take(&mut step.skipped)
                .into_iter()
                .map(|(policy_name, block)| SkippedScript { policy_name, block: block.to_string() })
                .collect();
            let budget_ms = u64::try_from(step.budget.total().as_millis()).unwrap_or(u64::MAX);
            step.audit.push(Audit::ScriptBudgetSpent { budget_ms, skipped });
        }
        let admins: Vec<AccountRef> =
            self.community.admins().filter_map(|m| m.accounts.first()).map(|l| l.account.clone()).collect();
        for ((policy, block), streak) in &mut self.timeouts {
            if streak.told || streak.runs < TIMEOUT_STREAK {
                continue;
            }
            streak.told = true;
            let Some(compiled) = self.versions.get(policy) else {
                continue;
            };
            let name = compiled.name();
            let text = format!(
                "Policy \"{name}\": its {block} ran out of time on its last {} runs; until it is fixed {}. See /policy show {name}",
                streak.runs,
                while_failing(*block),
            );
            for account in &admins {
                step.effects.push(Effect::Notify { account: account.clone(), text: text.clone(), at: None });
            }
            step.audit.push(Audit::ScriptTimingOut {
                policy: *policy,
                policy_name: name.to_string(),
                block: block.to_string(),
                runs: streak.runs,
                admins_told: admins.len(),
            });
        }
    }

    fn member_of(&self, account: &AccountRef) -> Option<MemberId> {
        self.community.member_by_account(account).map(|m| m.id)
    }

    fn on_action(&mut self, action: Action, ctx: &Ctx, step: &mut Work) -> Result<(), GovError> {
        let initiator = self.member_of(&action.initiator);
        if action.kind.as_str() == PROPOSE {
            return self.on_plain_proposal(action, initiator, ctx, step);
        }
        if action.status != ActionStatus::Event {
            self.govern(&action, initiator, ctx, step)?;
        }
        let triggers: Vec<Arc<CompiledPolicy>> =
            select::candidates(&self.active, PolicyKind::Trigger, &action.kind).into_iter().cloned().collect();
        for policy in triggers {
            if self.filter_passes(&policy, &action, initiator, ctx, step) {
                self.open(&policy, action.clone(), initiator, ctx, step);
            }
        }
        Ok(())
    }

    /// A `/propose`: under the named policy, or the most specific platform policy for plain
    /// proposals.
    fn on_plain_proposal(
        &mut self,
        action: Action,
        initiator: Option<MemberId>,
        ctx: &Ctx,
        step: &mut Work,
    ) -> Result<(), GovError> {
        if !self.community.can(initiator, Permission::Propose, &action.kind) {
            return Err(GovError::NotPermitted(
                "you may not make proposals here: ask an admin for a role with the propose permission".into(),
            ));
        }
        let policy = match action.data.get("policy").and_then(Value::as_str) {
            Some(name) => self.policy(name).cloned().ok_or_else(|| GovError::UnknownPolicy(name.into()))?,
            None => select::candidates(&self.active, PolicyKind::Platform, &action.kind)
                .into_iter()
                .find(|&p| self.filter_passes(p, &action, initiator, ctx, step))
                .cloned()
                .ok_or(GovError::NoProposalPolicy)?,
        };
        if policy.vote_place(&action).is_none() {
            return Err(GovError::NotPermitted(format!(
                "the policy \"{}\" has no place to hold its vote: give its [vote] an `on`",
                policy.name()
            )));
        }
        self.open(&policy, action, initiator, ctx, step);
        Ok(())
    }

    /// Platform and constitution governance of an action that happened or was requested.
    fn govern(
        &mut self,
        action: &Action,
        initiator: Option<MemberId>,
        ctx: &Ctx,
        step: &mut Work,
    ) -> Result<(), GovError> {
        let kind = if action.kind.is_constitutional() { PolicyKind::Constitution } else { PolicyKind::Platform };
        if self.community.can(initiator, Permission::Execute, &action.kind) {
            step.audit
                .push(Audit::ExecutedByPermission { action: action.kind.clone(), initiator: action.initiator.clone() });
            if action.status == ActionStatus::Requested {
                step.effects.push(Effect::Execute { proposal: None, action: action.clone() });
            }
            return Ok(());
        }
        let candidates: Vec<Arc<CompiledPolicy>> =
            select::candidates(&self.active, kind, &action.kind).into_iter().cloned().collect();
        let chosen = candidates.into_iter().find(|p| self.filter_passes(p, action, initiator, ctx, step));
        let Some(policy) = chosen else {
            // Governance itself is never ungoverned: with no constitution policy, only a
            // member who may execute a change makes it (otherwise anyone could install a kit
            // that crowns them).
            if kind == PolicyKind::Constitution {
                return Err(GovError::NotPermitted(format!(
                    "no constitution policy lets members ask for {} yet: an admin can do it, or install a starter kit with a constitution",
                    action.kind
                )));
            }
            step.audit.push(Audit::Allowed { action: action.kind.clone(), initiator: action.initiator.clone() });
            if action.status == ActionStatus::Requested {
                step.effects.push(Effect::Execute { proposal: None, action: action.clone() });
            }
            return Ok(());
        };
        if !self.community.can(initiator, Permission::Propose, &action.kind) {
            let reason = format!("you may not propose {}: the policy \"{}\" governs it", action.kind, policy.name());
            if action.status == ActionStatus::Requested {
                return Err(GovError::NotPermitted(reason));
            }
            step.audit.push(Audit::Refused {
                action: action.kind.clone(),
                initiator: action.initiator.clone(),
                reason: reason.clone(),
            });
            step.effects.push(Effect::Revert { proposal: None, action: action.clone() });
            step.effects.push(Effect::Notify {
                account: action.initiator.clone(),
                text: format!("Undone: {reason}."),
                at: None,
            });
            return Ok(());
        }
        self.open(&policy, action.clone(), initiator, ctx, step);
        Ok(())
    }

    fn initiator_json(&self, member: Option<MemberId>, account: &AccountRef) -> Value {
        match member.and_then(|m| self.community.member(m)) {
            Some(m) => json!({
                "id": m.id.0,
                "name": m.name,
                "roles": self.community.roles_of(m.id),
                "admin": m.admin,
                "account": account.to_string(),
            }),
            None => {
                json!({ "id": (), "name": account.account, "roles": [], "admin": false, "account": account.to_string() })
            }
        }
    }

    /// What `script` sees; inputs it never mentions are left empty rather than built.
    fn input(
        &self,
        script: &Script,
        action: &Action,
        proposal: impl FnOnce() -> Value,
        initiator: Option<MemberId>,
    ) -> ScriptInput {
        ScriptInput {
            action: if script.uses("action") { action.to_json() } else { Value::Null },
            proposal: if script.uses("proposal") { proposal() } else { Value::Null },
            initiator: if script.uses("initiator") {
                self.initiator_json(initiator, &action.initiator)
            } else {
                Value::Null
            },
            // Set by `run_script` (the clock) and `verdict` (the deadline).
            now: 0,
            deadline: false,
        }
    }

    /// Runs one script within the step's budget. `None` when it failed (the failure is in the
    /// audit trail) or was not run because the budget was spent; callers treat both alike.
    fn run_script(
        &self,
        policy: &CompiledPolicy,
        script: &Script,
        mut input: ScriptInput,
        ctx: &Ctx,
        step: &mut Work,
    ) -> Option<(Value, Vec<ScriptAction>)> {
        input.now = ctx.now.timestamp();
        if step.budget.is_spent() {
            step.skipped.push((policy.name().to_string(), script.block()));
            return None;
        }
        let result = self.sandbox.run_within(script, &input, ctx.host.clone(), &mut step.budget);
        step.runs.push(((policy.id, script.block()), RunEnd::of(&result)));
        match result {
            Ok(out) => Some((out.value, out.actions)),
            Err(e) => {
                step.audit.push(Audit::ScriptFailed { policy_name: policy.name().to_string(), error: e.to_string() });
                None
            }
        }
    }

    /// A filter that fails (or errs) counts as no match.
    fn filter_passes(
        &self,
        policy: &CompiledPolicy,
        action: &Action,
        initiator: Option<MemberId>,
        ctx: &Ctx,
        step: &mut Work,
    ) -> bool {
        let Some(filter) = &policy.filter else {
            return true;
        };
        match self.run_script(policy, filter, self.input(filter, action, || Value::Null, initiator), ctx, step) {
            Some((Value::Bool(b), _)) => b,
            Some((other, _)) => {
                step.audit.push(Audit::ScriptFailed {
                    policy_name: policy.name().to_string(),
                    error: format!("filter returned {other} instead of true or false; counted as no match"),
                });
                false
            }
            None => false,
        }
    }

    fn eligible(
        &self,
        spec: &VoteSpec,
        action: &ActionType,
        proposer: Option<MemberId>,
        seed: u64,
        ctx: &Ctx,
    ) -> BTreeSet<MemberId> {
        let base: Vec<MemberId> = self
            .community
            .members
            .values()
            .filter(|m| match &spec.voters {
                Voters::Everyone => true,
                Voters::Role(r) => m.has_role(r),
                Voters::Members(names) => names.iter().any(|n| n.eq_ignore_ascii_case(&m.name)),
                Voters::Cred(n) => {
                    ctx.host.sourcecred(&crate::script::MemberQuery::Id(m.id)).is_ok_and(|r| r.cred >= *n as f64)
                }
            })
            .filter(|m| self.community.can(Some(m.id), Permission::Vote, action))
            .filter(|m| !(spec.exclude_proposer && Some(m.id) == proposer))
            .map(|m| m.id)
            .collect();
        match spec.jury {
            Some(n) => draw(base, n as usize, seed),
            None => base.into_iter().collect(),
        }
    }

    /// Opens a proposal of `policy` on `action`: initialize, check, then revert and vote.
    fn open(
        &mut self,
        policy: &Arc<CompiledPolicy>,
        action: Action,
        initiator: Option<MemberId>,
        ctx: &Ctx,
        step: &mut Work,
    ) {
        let proposer_name = initiator
            .and_then(|m| self.community.member(m))
            .map_or_else(|| action.initiator.account.to_string(), |m| m.name.to_string());
        let place = policy.vote_place(&action);
        if policy.policy.vote.is_some() && place.is_none() {
            step.audit.push(Audit::ScriptFailed {
                policy_name: policy.name().to_string(),
                error: format!(
                    "no proposal opened for {}: the vote has no `on` and the action happened nowhere",
                    action.kind
                ),
            });
            return;
        }
        let id = self.next_proposal_id();
        let mut proposal = Proposal {
            id,
            policy: policy.id,
            policy_name: policy.name().to_string(),
            action,
            proposer: initiator,
            proposer_name,
            state: ProposalState::Proposed,
            opened_at: ctx.now,
            closes_at: None,
            decided_at: None,
            vote: None,
            winner: None,
            data: Value::Null,
            process: None,
            reverted: false,
        };
        step.audit.push(Audit::Proposed {
            proposal: id,
            policy: policy.id,
            policy_name: policy.name().to_string(),
            action: proposal.action.kind.clone(),
        });
        step.changed.insert(id);
        let mut pending = Vec::new();
        if let Some(init) = &policy.initialize
            && let Some((value, actions)) = self.run_script(
                policy,
                init,
                self.input(init, &proposal.action, || proposal.to_json(), initiator),
                ctx,
                step,
            )
        {
            proposal.data = value;
            pending = actions;
        }
        if let (Some(spec), Some(place)) = (&policy.policy.vote, place) {
            proposal.closes_at = spec.closes.map(|d| ctx.now + d);
            // Voters by cred while SourceCred cannot be read: nobody is taken to have none for
            // want of an answer; the vote waits for them (`OpenVote::pending`).
            let pending = voters_unknown(spec, ctx).map(|e| {
                step.audit.push(Audit::ScriptFailed {
                    policy_name: policy.name().to_string(),
                    error: format!("who may vote on proposal {id} (`voters = \"{}\"`) is not known yet: {e}", spec.voters),
                });
                format!(
                    "Who may vote (`{}`) is not known yet: SourceCred could not be read. Polity tries again every minute.",
                    spec.voters
                )
            });
            proposal.vote = Some(OpenVote {
                spec: spec.clone(),
                place,
                eligible: {
                    let set = self.eligible(spec, &proposal.action.kind, initiator, ctx.seed ^ (id.0 as u64), ctx);
                    self.share_eligible(set.into())
                },
                ballots: crate::proposal::Ballots::new(),
                notes: pending.iter().map(|why| VoteNote { key: PENDING_NOTE.into(), text: why.clone() }).collect(),
                links: Vec::new(),
                pending: pending.is_some(),
                messages: Vec::new(),
            });
        }
        let verdict = self.verdict(policy, &proposal, false, proposal.tally().as_ref(), ctx, step);
        let immediate = verdict.is_some() || (policy.check.is_none() && proposal.vote.is_none());
        let performed = proposal.action.status == ActionStatus::Performed;
        self.proposals.insert(id, proposal);
        self.push_script_actions(id, pending, step);
        if immediate {
            // Decided before anyone voted: a performed action that passes is simply left alone,
            // one that fails is reverted; no vote message is posted.
            let verdict = verdict.unwrap_or(Verdict::Passed(None));
            if performed && !matches!(verdict, Verdict::Passed(_)) {
                self.revert(id, step);
            }
            self.decide(id, verdict, ctx, step, true);
            return;
        }
        if performed {
            self.revert(id, step);
        }
        if let Some(p) = self.proposals.get(&id)
            && let Some(v) = &p.vote
        {
            let options = v
                .spec
                .reaction_options()
                .into_iter()
                .zip(v.spec.presses())
                .map(|((emoji, label), press)| VoteOption { emoji, label, press })
                .collect::<Vec<_>>();
            let text = p.vote_text();
            // The vote's own place first, then each further place it is held in.
            let mut places = vec![v.place.clone()];
            places.extend(v.spec.also.iter().filter(|a| **a != v.place).cloned());
            for place in places {
                step.effects.push(Effect::PostVote {
                    proposal: id,
                    place,
                    text: text.clone(),
                    options: options.clone(),
                });
            }
        }
        if let Some(notify) = &policy.notify {
            let (action, pj) = match self.proposals.get(&id) {
                Some(p) => (p.action.clone(), p.to_json()),
                None => return,
            };
            if let Some((_, actions)) =
                self.run_script(policy, notify, self.input(notify, &action, || pj, initiator), ctx, step)
            {
                self.push_script_actions(id, actions, step);
            }
        }
    }

    fn revert(&mut self, id: ProposalId, step: &mut Work) {
        if let Some(p) = self.proposals.get_mut(&id) {
            p.reverted = true;
            step.effects.push(Effect::Revert { proposal: Some(id), action: p.action.clone() });
        }
    }

    /// The verdict of the check block, else of the tally (certain now, or at the deadline).
    fn verdict(
        &self,
        policy: &CompiledPolicy,
        p: &Proposal,
        at_deadline: bool,
        tally: Option<&Tally>,
        ctx: &Ctx,
        step: &mut Work,
    ) -> Option<Verdict> {
        if let Some(check) = &policy.check
            && let Some((value, _)) = self.run_script(
                policy,
                check,
                ScriptInput {
                    deadline: at_deadline,
                    ..self.input(check, &p.action, || p.to_json_with(tally), p.proposer)
                },
                ctx,
                step,
            )
        {
            match value {
                    Value::Bool(true) => return Some(Verdict::Passed(None)),
                    Value::Bool(false) => return Some(Verdict::Failed),
                    Value::String(s) if s.eq_ignore_ascii_case("passed") => return Some(Verdict::Passed(None)),
                    Value::String(s) if s.eq_ignore_ascii_case("failed") => return Some(Verdict::Failed),
                    Value::Null => {}
                    Value::String(s) if s.eq_ignore_ascii_case("proposed") => {}
                    other => step.audit.push(Audit::ScriptFailed {
                        policy_name: policy.name().to_string(),
                        error: format!(
                            "check returned {other}: return \"passed\", \"failed\", \"proposed\" or nothing (to let the vote decide)"
                        ),
                    }),
                }
        }
        let (v, tally) = p.vote.as_ref().zip(tally)?;
        if v.pending && !at_deadline {
            // Nobody may vote until its voters are known: not a vote nobody can win.
            return None;
        }
        let decision = if at_deadline { Some(tally.result(&v.spec)) } else { tally.early(&v.spec) }?;
        Some(match decision {
            Decision::Passed { winner } => Verdict::Passed(v.spec.labels().get(winner).cloned()),
            Decision::Failed => Verdict::Failed,
            Decision::NoQuorum => Verdict::Expired,
        })
    }

    /// Adds a note to an open proposal's vote message and edits the message to show it.
    fn add_note(&mut self, id: ProposalId, key: &str, text: &str, step: &mut Work) {
        let Some(p) = self.proposals.get_mut(&id) else { return };
        if !p.state.is_open() {
            return;
        }
        let Some(v) = &mut p.vote else { return };
        if v.note(key, text) {
            step.changed.insert(id);
            step.effects.push(Effect::EditVote { proposal: id, text: p.vote_text(), closed: false });
        }
    }

    /// Re-checks an open proposal after a ballot, a process update or a tick.
    fn reevaluate(&mut self, id: ProposalId, at_deadline: bool, ctx: &Ctx, step: &mut Work) {
        let Some(p) = self.proposals.get(&id).filter(|p| p.state.is_open()) else {
            return;
        };
        let Some(policy) = self.versions.get(&p.policy).cloned() else {
            return;
        };
        let tally = p.tally();
        let verdict = match self.verdict(&policy, p, at_deadline, tally.as_ref(), ctx, step) {
            Some(v) => Some(v),
            // At the deadline a proposal without a vote whose check has not decided fails.
            None if at_deadline => Some(Verdict::Failed),
            None => None,
        };
        match verdict {
            Some(v) => self.decide(id, v, ctx, step, false),
            None if p.vote.is_some() => {
                step.effects.push(Effect::EditVote {
                    proposal: id,
                    text: p.vote_text_with(tally.as_ref()),
                    closed: false,
                });
            }
            None => {}
        }
    }

    /// Closes an open proposal with its verdict and produces the effects of that transition,
    /// once: a closed proposal is never decided again. `immediate` is a decision taken as the
    /// proposal opened, before any vote message was posted: nothing is announced, and a
    /// performed action that passes was never reverted, so it is not executed again.
    fn decide(&mut self, id: ProposalId, verdict: Verdict, ctx: &Ctx, step: &mut Work, immediate: bool) {
        let Some(p) = self.proposals.get_mut(&id).filter(|p| p.state.is_open()) else {
            return;
        };
        let Some(policy) = self.versions.get(&p.policy).cloned() else {
            return;
        };
        let passed = matches!(verdict, Verdict::Passed(_));
        self.closed_held = true;
        p.state = match &verdict {
            Verdict::Passed(w) => {
                p.winner = w.clone();
                ProposalState::Passed
            }
            Verdict::Failed => ProposalState::Failed,
            Verdict::Expired => ProposalState::Expired,
        };
        p.decided_at = Some(ctx.now);
        step.changed.insert(id);
        step.audit.push(Audit::Decided { proposal: id, outcome: p.state.to_string() });
        let p = p.clone();
        if p.vote.is_some() && !immediate {
            step.effects.push(Effect::EditVote { proposal: id, text: p.vote_text(), closed: true });
            if policy.policy.announce
                && let Some(place) = p.place()
            {
                // Announced wherever it was voted on: its own place, then each further one.
                let mut places = vec![place.clone()];
                for also in p.vote.iter().flat_map(|v| &v.spec.also) {
                    if !places.contains(also) {
                        places.push(also.clone());
                    }
                }
                let text = p.outcome_text();
                for place in places {
                    step.effects.push(Effect::Post { place, text: text.clone() });
                }
            }
        }
        let execute = match p.action.status {
            ActionStatus::Requested => p.action.kind.as_str() != PROPOSE,
            ActionStatus::Performed => p.reverted,
            ActionStatus::Event => false,
        };
        if passed && execute {
            step.effects.push(Effect::Execute { proposal: Some(id), action: p.action.clone() });
        }
        let outcome = if passed { &policy.policy.on_pass } else { &policy.policy.on_fail };
        let ctx_json = json!({
            "action": p.action.to_json(),
            "proposal": p.to_json(),
            "initiator": self.initiator_json(p.proposer, &p.action.initiator),
        });
        for d in &outcome.actions {
            self.push_do(id, &p, d, &ctx_json, step);
        }
        let script = if passed { &policy.pass_script } else { &policy.fail_script };
        if let Some(s) = script
            && let Some((_, actions)) =
                self.run_script(&policy, s, self.input(s, &p.action, || p.to_json(), p.proposer), ctx, step)
        {
            self.push_script_actions(id, actions, step);
        }
    }

    fn push_do(&self, id: ProposalId, p: &Proposal, d: &DoAction, ctx_json: &Value, step: &mut Work) {
        let params = match template::render(&Value::Object(d.params.clone()), ctx_json) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.push_named(id, p, &d.action, params, step);
    }

    fn push_script_actions(&self, id: ProposalId, actions: Vec<ScriptAction>, step: &mut Work) {
        let Some(p) = self.proposals.get(&id) else {
            return;
        };
        for a in actions {
            if a.name == "start_process" {
                let name = a.params.get("process").and_then(Value::as_str).map(ActionType::new);
                let params = match a.params.get("params") {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                match name {
                    Some(Ok(name)) => step.effects.push(Effect::StartProcess { proposal: id, name, params }),
                    _ => step.audit.push(Audit::ScriptFailed {
                        policy_name: p.policy_name.clone(),
                        error: "start_process needs a process name like loomio.poll".into(),
                    }),
                }
            } else {
                self.push_named(id, p, &a.name, a.params, step);
            }
        }
    }

    fn push_named(&self, id: ProposalId, p: &Proposal, name: &str, mut params: Map<String, Value>, step: &mut Work) {
        if name == "message" {
            let text = params.remove("text").and_then(|t| t.as_str().map(str::to_string)).unwrap_or_default();
            let place = params
                .get("on")
                .and_then(Value::as_str)
                .and_then(|s| Place::parse(s).ok())
                .or_else(|| p.place().cloned());
            match place {
                Some(place) => step.effects.push(Effect::Post { place, text }),
                None => step.audit.push(Audit::ScriptFailed {
                    policy_name: p.policy_name.clone(),
                    error: "a message has nowhere to go: give it `on = \"PLATFORM:CHANNEL\"`".into(),
                }),
            }
            return;
        }
        match ActionType::new(name) {
            Ok(name) => step.effects.push(Effect::Call { proposal: Some(id), name, params }),
            Err(e) => step.audit.push(Audit::ScriptFailed { policy_name: p.policy_name.clone(), error: e }),
        }
    }

    // ----- ballots -----

    /// Why `member` may not vote on `p`, if they may not.
    fn ineligibility(&self, p: &Proposal, v: &OpenVote, member: Option<MemberId>) -> Option<String> {
        let id = p.id;
        let Some(m) = member else {
            return Some(format!("only members of this community can vote on proposal {id}"));
        };
        if v.eligible.contains(&m) {
            return None;
        }
        if v.pending {
            return Some(format!(
                "who may vote on proposal {id} is not known yet (SourceCred could not be read): vote again in a minute or two"
            ));
        }
        Some(if v.spec.exclude_proposer && p.proposer == Some(m) {
            format!("you proposed {id}, and its policy does not let the proposer vote")
        } else if v.spec.jury.is_some() {
            format!("proposal {id} is decided by a jury drawn when it opened, and you are not on it")
        } else {
            match &v.spec.voters {
                Voters::Role(r) => format!("only members with the role {r} can vote on proposal {id}"),
                Voters::Members(names) => format!("only {} can vote on proposal {id}", names.join(", ")),
                Voters::Cred(n) => format!(
                    "only members with at least {n} cred on SourceCred when proposal {id} opened can vote on it"
                ),
                Voters::Everyone => format!("you do not have the vote permission for proposal {id}"),
            }
        })
    }

    fn on_reaction(
        &mut self,
        message: &MessageRef,
        voter: &AccountRef,
        emoji: &str,
        added: bool,
        ctx: &Ctx,
        step: &mut Work,
    ) {
        let Some(&id) = self.by_message.get(message) else {
            return;
        };
        let member = self.member_of(voter);
        let Some(p) = self.proposals.get(&id).filter(|p| p.state.is_open()) else {
            return;
        };
        let Some(v) = &p.vote else {
            return;
        };
        if let Some(reason) = self.ineligibility(p, v, member) {
            if added && v.spec.apply_reaction(None, emoji, true) != BallotChange::Ignore {
                step.effects.push(Effect::RemoveReaction {
                    message: message.clone(),
                    account: voter.clone(),
                    emoji: emoji.to_string(),
                });
                if !self.told_ineligible.insert((id, voter.clone())) {
                    return;
                }
                step.audit.push(Audit::BallotRejected { proposal: id, voter: voter.clone(), reason: reason.clone() });
                step.effects.push(Effect::Notify {
                    account: voter.clone(),
                    text: format!("Your vote was not counted: {reason}."),
                    at: Some(Place::new(message.platform.as_str(), message.channel.as_str())),
                });
            }
            return;
        }
        let Some(m) = member else {
            return;
        };
        let current = v.ballots.get(&m).map(|b| &b.choice);
        let change = v.spec.apply_reaction(current, emoji, added);
        let source = BallotSource::Reaction { message: message.clone() };
        self.apply_change(id, (m, voter), change, source, ctx, step);
    }

    /// A reaction added or taken back is also a trigger event (`{platform}.reaction_added`,
    /// `{platform}.reaction_removed`) that trigger policies may open proposals on (three 📌
    /// pin a message, say).
    fn reaction_triggers(
        &mut self,
        message: &MessageRef,
        voter: &AccountRef,
        emoji: &str,
        added: bool,
        ctx: &Ctx,
        step: &mut Work,
    ) {
        let event = if added { REACTION_ADDED } else { REACTION_REMOVED };
        let Ok(kind) = ActionType::new(&format!("{}.{event}", message.platform)) else {
            return;
        };
        if select::candidates(&self.active, PolicyKind::Trigger, &kind).is_empty() {
            return;
        }
        let emoji = crate::vote::emoji::normalize(emoji);
        let id = format!("{}:{}:{emoji}{}", message.message, voter.account, if added { "" } else { ":removed" });
        let action = Action::new(kind, voter.clone(), id)
            .event()
            .at(Place::new(message.platform.as_str(), message.channel.as_str()))
            .with("message", message.message.as_str())
            .with("channel", message.channel.as_str())
            .with("emoji", emoji);
        // An event is never refused: only trigger policies act on it.
        let _triggers = self.on_action(action, ctx, step);
    }

    /// Brings the ballots cast by reactions on `message` in line with the reactions it holds
    /// now: each difference is applied as the reaction event that was missed (or arrived out
    /// of order) would have been, so eligibility, replacement and removal work as they do
    /// for live reactions.
    fn on_reactions(
        &mut self,
        message: &MessageRef,
        reactions: &[ReactionUsers],
        superseded_kept: bool,
        ctx: &Ctx,
        step: &mut Work,
    ) {
        let Some(&id) = self.by_message.get(message) else {
            return;
        };
        let Some(p) = self.proposals.get(&id).filter(|p| p.state.is_open()) else {
            return;
        };
        let Some(v) = p.vote.as_ref() else {
            return;
        };
        // The vote's emoji that were read, in option order, with who holds each.
        let options: Vec<String> = v.spec.reaction_options().into_iter().map(|(e, _)| e).collect();
        let mut read: BTreeMap<&str, BTreeSet<&AccountRef>> = BTreeMap::new();
        for r in reactions {
            let e = crate::vote::emoji::normalize(&r.emoji);
            if let Some(option) = options.iter().find(|o| **o == e) {
                read.entry(option.as_str()).or_default().extend(r.accounts.iter());
            }
        }
        // What each account's ballot holds by reactions on this message (a ballot cast
        // otherwise holds none here).
        let mut held_by: BTreeMap<&AccountRef, Vec<String>> = BTreeMap::new();
        // Single-choice ballots whose reaction is still there, where the platform keeps
        // superseded reactions: their other reactions are older choices.
        let mut settled: BTreeSet<&AccountRef> = BTreeSet::new();
        for b in v.ballots.values() {
            if matches!(&b.source, BallotSource::Reaction { message: m } if m == message) {
                let emojis = v.spec.emojis_of(&b.choice);
                let single = !matches!(b.choice, Choice::Approve(_) | Choice::Rank(_));
                let still_held = !emojis.is_empty()
                    && emojis.iter().all(|e| read.get(e.as_str()).is_some_and(|h| h.contains(&b.account)));
                if superseded_kept && single && still_held {
                    settled.insert(&b.account);
                }
                held_by.insert(&b.account, emojis);
            }
        }
        let mut accounts: BTreeSet<&AccountRef> = read.values().flatten().copied().collect();
        accounts.extend(held_by.keys().copied());
        // Where superseded reactions stay, a reaction a read finds is only news from a member
        // without a ballot: one cast otherwise (a button, `/vote`, a reaction elsewhere, on
        // a linked account) is newer than whatever they left here; and 🤷 left beside
        // approvals or a ranking is the older. (An ineligible member's reaction is explained
        // once, however often a read finds it.)
        let skip = |account: &AccountRef| -> bool {
            if !superseded_kept {
                return false;
            }
            if settled.contains(account) {
                return true;
            }
            let member = self.member_of(account);
            member.and_then(|m| v.ballots.get(&m)).is_some_and(
                |b| !matches!(&b.source, BallotSource::Reaction { message: m } if m == message && b.account == *account),
            )
        };
        let abstain_kept = |account: &AccountRef| -> bool {
            superseded_kept
                && self
                    .member_of(account)
                    .and_then(|m| v.ballots.get(&m))
                    .is_some_and(|b| matches!(b.choice, Choice::Approve(_) | Choice::Rank(_)))
        };
        let mut changes: Vec<(AccountRef, String, bool)> = Vec::new();
        for account in accounts {
            if skip(account) {
                continue;
            }
            let held = held_by.get(account).map(Vec::as_slice).unwrap_or_default();
            for option in &options {
                let Some(holders) = read.get(option.as_str()) else {
                    continue;
                };
                let has = holders.contains(account);
                if has && !held.contains(option) && *option == crate::vote::emoji::ABSTAIN && abstain_kept(account) {
                    continue;
                }
                if has != held.contains(option) {
                    changes.push((account.clone(), option.clone(), has));
                }
            }
        }
        // Removals first, so a replaced option is withdrawn before its successor is cast.
        changes.sort_by_key(|(_, _, added)| *added);
        for (account, emoji, added) in changes {
            self.on_reaction(message, &account, &emoji, added, ctx, step);
        }
    }

    fn apply_change(
        &mut self,
        id: ProposalId,
        (member, voter): (MemberId, &AccountRef),
        change: BallotChange,
        source: BallotSource,
        ctx: &Ctx,
        step: &mut Work,
    ) {
        let Some(v) = self.proposals.get_mut(&id).and_then(|p| p.vote.as_mut()) else {
            return;
        };
        match change {
            BallotChange::Ignore => return,
            BallotChange::Withdraw => {
                v.ballots.remove(&member);
                step.audit.push(Audit::BallotWithdrawn { proposal: id, voter: voter.clone() });
            }
            BallotChange::Cast { choice, replaced } => {
                let old = v.ballots.insert(
                    member,
                    Ballot { choice: choice.clone(), account: voter.clone(), cast_at: ctx.now, source: source.clone() },
                );
                // The reaction a new ballot supersedes is removed, where it was a reaction.
                let old_reaction = match (&old, replaced) {
                    (Some(Ballot { source: BallotSource::Reaction { message }, account, choice: c, .. }), r) => {
                        r.or_else(|| v.spec.emoji_of(c)).map(|e| (message.clone(), account.clone(), e))
                    }
                    _ => None,
                };
                if let Some((message, account, emoji)) = old_reaction {
                    let same_reaction = matches!(&source, BallotSource::Reaction { message: m } if *m == message)
                        && v.spec.emoji_of(&choice).as_deref() == Some(emoji.as_str());
                    if !same_reaction && !matches!(choice, Choice::Approve(_) | Choice::Rank(_)) {
                        step.effects.push(Effect::RemoveReaction { message, account, emoji });
                    }
                }
                // A secret ballot's choice stays out of the record anyone can read.
                let shown = if v.spec.secret { "secretly".to_string() } else { v.spec.describe(&choice) };
                step.audit.push(Audit::BallotCast { proposal: id, voter: voter.clone(), choice: shown });
            }
        }
        step.changed.insert(id);
        self.reevaluate(id, false, ctx, step);
    }

    fn open_vote(&self, id: ProposalId) -> Result<(&Proposal, &OpenVote), GovError> {
        let p = self.proposals.get(&id).ok_or(GovError::UnknownProposal(id))?;
        if !p.state.is_open() {
            return Err(GovError::Closed(id));
        }
        let v = p.vote.as_ref().ok_or(GovError::NoVote(id))?;
        Ok((p, v))
    }

    fn on_vote(
        &mut self,
        id: ProposalId,
        voter: &AccountRef,
        text: &str,
        ctx: &Ctx,
        step: &mut Work,
    ) -> Result<(), GovError> {
        let member = self.member_of(voter);
        let (p, v) = self.open_vote(id)?;
        if let Some(reason) = self.ineligibility(p, v, member) {
            return Err(GovError::NotEligible(reason));
        }
        let choice = v.spec.parse_choice(text).map_err(GovError::BadChoice)?;
        let Some(m) = member else {
            return Ok(());
        };
        if v.ballots.get(&m).is_some_and(|b| b.choice == choice) {
            return Ok(());
        }
        let change = BallotChange::Cast { choice, replaced: None };
        self.apply_change(id, (m, voter), change, BallotSource::Command, ctx, step);
        Ok(())
    }

    fn on_unvote(&mut self, id: ProposalId, voter: &AccountRef, ctx: &Ctx, step: &mut Work) -> Result<(), GovError> {
        let member = self.member_of(voter);
        let (_, v) = self.open_vote(id)?;
        let m = member.filter(|m| v.ballots.contains_key(m)).ok_or(GovError::NoBallot(id))?;
        if let Some(Ballot { source: BallotSource::Reaction { message }, account, choice, .. }) = v.ballots.get(&m)
            && let Some(emoji) = v.spec.emoji_of(choice)
        {
            step.effects.push(Effect::RemoveReaction { message: message.clone(), account: account.clone(), emoji });
        }
        self.apply_change(id, (m, voter), BallotChange::Withdraw, BallotSource::Command, ctx, step);
        Ok(())
    }

    fn on_cancel(&mut self, id: ProposalId, by: &AccountRef, ctx: &Ctx, step: &mut Work) -> Result<(), GovError> {
        let member = self.member_of(by);
        let is_admin = member.and_then(|m| self.community.member(m)).is_some_and(|m| m.admin);
        let p = self.proposals.get_mut(&id).ok_or(GovError::UnknownProposal(id))?;
        if !p.state.is_open() {
            return Err(GovError::Closed(id));
        }
        if !(is_admin || (member.is_some() && member == p.proposer)) {
            return Err(GovError::NotPermitted(format!("only the proposer or an admin can cancel proposal {id}")));
        }
        p.state = ProposalState::Cancelled;
        self.closed_held = true;
        p.decided_at = Some(ctx.now);
        step.changed.insert(id);
        step.audit.push(Audit::Decided { proposal: id, outcome: "cancelled".into() });
        if p.vote.is_some() {
            step.effects.push(Effect::EditVote { proposal: id, text: p.vote_text(), closed: true });
            if let Some(place) = p.place() {
                step.effects.push(Effect::Post { place: place.clone(), text: p.outcome_text() });
            }
        }
        Ok(())
    }

    /// Reads the voters of a vote whose voters were not known when it opened, once they can
    /// be: the set is frozen then, and the vote message shows it.
    fn settle_voters(&mut self, id: ProposalId, ctx: &Ctx, step: &mut Work) {
        let Some(p) = self.proposals.get(&id) else { return };
        let Some(v) = p.vote.as_ref().filter(|v| v.pending) else { return };
        if voters_unknown(&v.spec, ctx).is_some() {
            return;
        }
        let spec = v.spec.clone();
        let (kind, proposer) = (p.action.kind.clone(), p.proposer);
        let set = self.eligible(&spec, &kind, proposer, ctx.seed ^ (id.0 as u64), ctx);
        let set = self.share_eligible(set.into());
        let Some(p) = self.proposals.get_mut(&id) else { return };
        let Some(v) = p.vote.as_mut() else { return };
        v.eligible = set;
        v.pending = false;
        v.notes.retain(|n| n.key != PENDING_NOTE);
        step.changed.insert(id);
        step.effects.push(Effect::EditVote { proposal: id, text: p.vote_text(), closed: false });
    }

    fn on_tick(&mut self, ctx: &Ctx, step: &mut Work) {
        let open: Vec<(ProposalId, bool, bool)> = self
            .proposals
            .values()
            .filter(|p| p.state.is_open())
            .map(|p| {
                let due = p.closes_at.is_some_and(|c| c <= ctx.now);
                // Only a check that reads the clock or the host's data can change without an
                // input; the others are not run again.
                (p.id, due, self.rechecked(p.id))
            })
            .collect();
        for (id, due, has_check) in open {
            if due {
                self.reevaluate(id, true, ctx, step);
            } else if has_check {
                self.recheck(id, ctx, step);
            }
        }
    }

    /// Re-runs the check block of a proposal not yet due; only a decision produces output.
    fn recheck(&mut self, id: ProposalId, ctx: &Ctx, step: &mut Work) {
        self.settle_voters(id, ctx, step);
        let Some(p) = self.proposals.get(&id) else {
            return;
        };
        let Some(policy) = self.versions.get(&p.policy).cloned() else {
            return;
        };
        if let Some(v) = self.verdict(&policy, p, false, p.tally().as_ref(), ctx, step) {
            self.decide(id, v, ctx, step, false);
        }
    }
}

/// The note a vote whose voters are not known yet carries.
const PENDING_NOTE: &str = "voters";

/// Why a vote's voters cannot be known now, if they cannot: members with enough cred while
/// the community's SourceCred instance cannot be read.
fn voters_unknown(spec: &VoteSpec, ctx: &Ctx) -> Option<String> {
    match spec.voters {
        Voters::Cred(_) => ctx.host.sourcecred_total().err(),
        _ => None,
    }
}

/// What a policy does while its `block` keeps failing, as the admins' notice says it.
fn while_failing(block: Block) -> String {
    match block {
        Block::Filter => "the policy counts as not matching".into(),
        Block::Initialize => "its proposals open without the data it returns".into(),
        Block::Check => "its check is skipped and the vote alone decides".into(),
        Block::Notify | Block::Pass | Block::Fail => format!("its {block} does nothing"),
    }
}

impl CompiledPolicy {
    /// Where this policy holds its vote on `action`.
    pub fn vote_place(&self, action: &Action) -> Option<Place> {
        self.policy.vote.as_ref().and_then(|v| v.on.clone()).or_else(|| action.place.clone())
    }
}

/// Draws `n` of `pool` with a seeded generator (splitmix64, partial Fisher-Yates), so a draw
/// is reproducible from its seed and independent of anything else.
pub fn draw(mut pool: Vec<MemberId>, n: usize, seed: u64) -> BTreeSet<MemberId> {
    pool.sort();
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let k = n.min(pool.len());
    for i in 0..k {
        let j = i + (next() % (pool.len() - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool.into_iter().collect()
}

impl From<Decision> for ProposalState {
    fn from(d: Decision) -> Self {
        state_of(d)
    }
}
