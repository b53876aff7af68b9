//! The dispatcher: outbox rows performed by their platforms, off the loop that takes input.
//!
//! - Each effect runs on a task of its own, with a timeout ([`DEFAULT_TIMEOUT`]); the loop
//!   only starts tasks and records what they finished ([`Runtime::start_due`],
//!   [`Runtime::record_finished`]), so a hung platform or a long rate limit never stops
//!   intake, deadlines or other platforms.
//! - Effects keep their order per *lane* (one channel's posts, one vote's edits, one
//!   member's messages): a lane runs one effect at a time, and a lane whose effect waits for
//!   a retry (a 429's `retry_after`, a backoff) is parked until then, so nothing overtakes
//!   it. Lanes run in parallel. A platform whose output is one stream (the console) is one
//!   lane ([`Capabilities::serial`]).
//! - Tally edits are paced per proposal ([`Runtime::set_edit_interval`]) and per channel, as
//!   the platform declares ([`Capabilities::edits_per_channel`]): an edit over its channel's
//!   budget is put off until the window allows it (its lane and intake go on meanwhile), a
//!   newer edit of its proposal supersedes it while it waits, and the channel's waiting
//!   proposals take the slots that free up first come, first served.
//! - An effect's result and what it implies are one transaction (a posted vote message is
//!   linked to its proposal as the post is marked done).

use super::{HandleError, Handled, Runtime, StepInput};
use crate::store::{OutboxRow, StepRecord};
use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, ProposalId};
use polity_governance::io::{Audit, Effect, Inbound};
use polity_governance::platform::{Capabilities, Performed, Platform, PlatformError, Request};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// The longest an effect waits between attempts, and how many attempts it gets.
const MAX_BACKOFF: TimeDelta = TimeDelta::minutes(10);
const MAX_ATTEMPTS: i32 = 12;
/// How many times an effect is rate limited before it fails (with waits of up to an hour
/// each, days).
const MAX_RATE_LIMITED_ATTEMPTS: i32 = 200;
/// The longest a platform's Retry-After is waited out.
const MAX_RETRY_AFTER: TimeDelta = TimeDelta::hours(1);
/// A governed change held back this long by a platform's rate limit is worth telling voters
/// when it will show.
const NOTED_WAIT: TimeDelta = TimeDelta::seconds(30);

/// How long one platform request may take before it counts as a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many due rows are read at a time.
const PAGE: u64 = 200;

/// An effect a task finished performing.
pub struct Finished {
    row: OutboxRow,
    lane: String,
    /// The platform it was performed on, for metrics (a tally edit's: its vote messages').
    platform: String,
    /// The connection it went through, for the log (a community's own, or the platform's).
    connection: String,
    outcome: Result<Performed, PlatformError>,
}

impl Flight {
    /// The time limit of a request to `platform`: its own, where it declares one, else
    /// Polity's.
    pub(super) fn limit(&self, platform: &dyn Platform) -> Duration {
        platform.capabilities().request_timeout.unwrap_or(self.timeout)
    }
}

/// The effects in flight in this process, and the lanes they hold.
pub(super) struct Flight {
    tasks: JoinSet<Finished>,
    running: HashSet<i64>,
    busy: HashSet<String>,
    /// Lanes whose first effect waits for a retry, until when.
    parked: HashMap<String, DateTime<Utc>>,
    /// The parked lanes whose wait a platform's rate limit set (not a backoff after a
    /// failure): only those are announced as held back.
    limited: HashSet<String>,
    /// The time limit of a platform request (an effect, a read) unless its platform declares
    /// one ([`Capabilities::request_timeout`]).
    pub(super) timeout: Duration,
    /// When due effects were last looked for.
    looked: Option<DateTime<Utc>>,
    /// The lane of each due effect last looked at, so that one whose lane is busy is passed
    /// over without reading its vote messages again (a tick that closes many proposals
    /// queues hundreds of effects in one channel, looked over each time one ends).
    lanes: HashMap<i64, String>,
}

impl Flight {
    /// When due effects were last looked for: every effect due then was started or waits
    /// for its lane.
    pub(super) fn looked_at(&self) -> Option<DateTime<Utc>> {
        self.looked
    }
}

impl Default for Flight {
    fn default() -> Self {
        Self {
            tasks: JoinSet::new(),
            running: HashSet::new(),
            busy: HashSet::new(),
            parked: HashMap::new(),
            limited: HashSet::new(),
            timeout: DEFAULT_TIMEOUT,
            looked: None,
            lanes: HashMap::new(),
        }
    }
}

/// How long a proposal keeps its turn in a channel's queue of waiting edits when none of its
/// edits comes by (its edit went another way, or its lane was parked), beyond the window.
const TURN_LAPSE: TimeDelta = TimeDelta::minutes(1);

/// One channel of a platform that limits edits per channel: `(community, platform, channel)`.
type ChannelKey = (CommunityId, String, String);

/// When each proposal's vote text was last edited, and each limited channel's recent edits,
/// to pace edits.
#[derive(Default)]
pub(super) struct EditPacing {
    pub(super) interval: TimeDelta,
    last: HashMap<(CommunityId, ProposalId), DateTime<Utc>>,
    channels: HashMap<ChannelKey, ChannelBudget>,
}

/// A channel's recent tally edits and the proposals whose edit waits for a slot.
#[derive(Default)]
struct ChannelBudget {
    window: TimeDelta,
    /// When each edit in the window was started, oldest first.
    sent: VecDeque<DateTime<Utc>>,
    /// Proposals whose edit waits for a slot, first come first, with when each was last seen.
    waiting: Vec<(ProposalId, DateTime<Utc>)>,
}

impl ChannelBudget {
    fn forget_before(&mut self, now: DateTime<Utc>) {
        while self.sent.front().is_some_and(|t| *t + self.window <= now) {
            self.sent.pop_front();
        }
        let lapse = self.window + TURN_LAPSE;
        self.waiting.retain(|(_, seen)| *seen + lapse > now);
    }

    /// `None` when an edit of `proposal` may take a slot now; else when to look again. The
    /// proposals already waiting take the free slots first, so one edited often does not
    /// keep the others waiting.
    fn turn(&mut self, proposal: ProposalId, limit: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.forget_before(now);
        let free = usize::try_from(limit.max(1)).unwrap_or(usize::MAX).saturating_sub(self.sent.len());
        let place = self.waiting.iter().position(|(p, _)| *p == proposal);
        if place.unwrap_or(self.waiting.len()) < free {
            return None;
        }
        match place {
            Some(i) => self.waiting[i].1 = now,
            None => self.waiting.push((proposal, now)),
        }
        // A slot frees when the oldest edit leaves the window; with none in it, the proposals
        // ahead take theirs now, and this one's comes a window later.
        Some(self.sent.front().map_or(now + self.window, |t| *t + self.window))
    }
}

/// The channels a tally edit goes to whose platform limits edits per channel, with the limit.
fn channel_budgets(
    community: CommunityId,
    messages: &[MessageRef],
    capabilities: impl Fn(&MessageRef) -> Option<Capabilities>,
) -> Vec<(ChannelKey, u32, TimeDelta)> {
    let mut out: Vec<(ChannelKey, u32, TimeDelta)> = Vec::new();
    for m in messages {
        let Some((limit, window)) = capabilities(m).and_then(|c| c.edits_per_channel) else { continue };
        // A platform's window is capped like its Retry-After; an empty one limits nothing.
        let window = TimeDelta::from_std(window).map_or(MAX_RETRY_AFTER, |w| w.min(MAX_RETRY_AFTER));
        let key = (community, m.platform.as_str().to_string(), m.channel.to_string());
        if window > TimeDelta::zero() && !out.iter().any(|(k, _, _)| *k == key) {
            out.push((key, limit, window));
        }
    }
    out
}

impl EditPacing {
    fn next_allowed(&self, community: CommunityId, proposal: ProposalId) -> Option<DateTime<Utc>> {
        self.last.get(&(community, proposal)).map(|t| *t + self.interval)
    }

    fn done(&mut self, community: CommunityId, proposal: ProposalId, now: DateTime<Utc>) {
        if self.interval > TimeDelta::zero() {
            self.last.insert((community, proposal), now);
        }
    }

    fn forget_before(&mut self, now: DateTime<Utc>) {
        let interval = self.interval;
        self.last.retain(|_, t| *t + interval > now);
        self.channels.retain(|_, budget| {
            budget.forget_before(now);
            !budget.sent.is_empty() || !budget.waiting.is_empty()
        });
    }

    /// `None` when an edit of `proposal` may go out now in every one of its limited channels;
    /// else when to look again (it then waits its turn in each channel that is full).
    fn channel_turn(
        &mut self,
        proposal: ProposalId,
        budgets: &[(ChannelKey, u32, TimeDelta)],
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let mut until = None;
        for (key, limit, window) in budgets {
            let budget = self.channels.entry(key.clone()).or_default();
            budget.window = *window;
            until = until.max(budget.turn(proposal, *limit, now));
        }
        until
    }

    /// An edit of `proposal` started in its limited channels: it takes a slot, and its turn is over.
    fn channel_used(&mut self, proposal: ProposalId, budgets: &[(ChannelKey, u32, TimeDelta)], now: DateTime<Utc>) {
        for (key, _, window) in budgets {
            let budget = self.channels.entry(key.clone()).or_default();
            budget.window = *window;
            budget.sent.push_back(now);
            budget.waiting.retain(|(p, _)| *p != proposal);
        }
    }

    /// An edit of `proposal` is still around (waiting for its lane, or due again): it keeps
    /// its turn in the channels it waits in.
    fn seen(&mut self, community: CommunityId, proposal: ProposalId, messages: &[MessageRef], now: DateTime<Utc>) {
        for m in messages {
            let key = (community, m.platform.as_str().to_string(), m.channel.to_string());
            if let Some(budget) = self.channels.get_mut(&key) {
                for (_, seen) in budget.waiting.iter_mut().filter(|(p, _)| *p == proposal) {
                    *seen = now;
                }
            }
        }
    }
}

impl Runtime {
    /// How long one platform request may take before it is a transient failure.
    pub fn set_effect_timeout(&mut self, timeout: Duration) {
        self.flight.timeout = timeout;
    }

    /// Performs the effects that are due and waits for them, and for what they make due,
    /// until nothing is left to do now; returns how many were performed. (The serving loop
    /// does not wait: it uses [`Self::start_due`] and [`Self::record_finished`].)
    ///
    /// # Errors
    /// When the store fails.
    pub async fn dispatch(&mut self, now: DateTime<Utc>) -> Result<usize> {
        let mut performed = 0;
        loop {
            self.start_due(now).await?;
            let Some(finished) = self.next_finished().await else {
                return Ok(performed);
            };
            performed += usize::from(self.record_finished(finished?, now).await?);
        }
    }

    /// Whether effects are being performed.
    pub fn effects_in_flight(&self) -> bool {
        !self.flight.tasks.is_empty()
    }

    /// The next effect a task finished; `None` when none is in flight.
    ///
    /// # Errors
    /// When a task panicked.
    pub async fn next_finished(&mut self) -> Option<Result<Finished>> {
        let joined = self.flight.tasks.join_next().await?;
        Some(joined.map_err(|e| anyhow::anyhow!("an effect's task failed: {e}")))
    }

    /// Starts every due effect whose lane is free, each on a task of its own; returns how
    /// many it started.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn start_due(&mut self, now: DateTime<Utc>) -> Result<usize> {
        self.edits.forget_before(now);
        if self.flight.looked.is_none() {
            self.restore_parked(now).await?;
        }
        self.flight.parked.retain(|_, until| *until > now);
        let parked = &self.flight.parked;
        self.flight.limited.retain(|lane| parked.contains_key(lane));
        self.flight.looked = Some(now);
        let mut started = 0;
        let mut after = 0;
        let mut looked_at = HashSet::new();
        loop {
            let due = self.store.due_effects_after(now, after, PAGE).await?;
            let Some(last) = due.last() else { break };
            after = last.id;
            let more = due.len() as u64 == PAGE;
            for row in due {
                looked_at.insert(row.id);
                if self.flight.running.contains(&row.id) {
                    continue;
                }
                if self.flight.lanes.get(&row.id).is_some_and(|lane| self.flight.busy.contains(lane)) {
                    continue;
                }
                started += usize::from(self.start(row, now).await?);
            }
            if !more {
                break;
            }
        }
        // Effects no longer due (done, failed, put off) are forgotten.
        self.flight.lanes.retain(|id, _| looked_at.contains(id));
        Ok(started)
    }

    /// Parks again the lanes whose effect waits for a retry, as an earlier process left them,
    /// so nothing newer overtakes it after a restart.
    async fn restore_parked(&mut self, now: DateTime<Utc>) -> Result<()> {
        for (row, at) in self.store.retrying_effects(now).await? {
            let messages = match proposal_of(&row.effect) {
                Some(p) => self.store.vote_messages(row.community, p).await?,
                None => Vec::new(),
            };
            let targets = self.targets(row.community, &row.effect, &messages);
            let lane = lane(row.community, &row.effect, &targets);
            self.flight.parked.entry(lane).or_insert(at);
        }
        Ok(())
    }

    /// Starts one due effect, unless its lane is busy or parked, or it is not to go out now.
    async fn start(&mut self, row: OutboxRow, now: DateTime<Utc>) -> Result<bool> {
        let messages = match proposal_of(&row.effect) {
            Some(p) => self.store.vote_messages(row.community, p).await?,
            None => Vec::new(),
        };
        let targets = self.targets(row.community, &row.effect, &messages);
        let lane = lane(row.community, &row.effect, &targets);
        self.flight.lanes.insert(row.id, lane.clone());
        if let Effect::EditVote { proposal, .. } = &row.effect {
            self.edits.seen(row.community, *proposal, &messages, now);
        }
        if self.flight.busy.contains(&lane) {
            tracing::debug!(effect = row.id, lane, "waits for its lane");
            return Ok(false);
        }
        if let Some(until) = self.flight.parked.get(&lane).copied() {
            tracing::debug!(effect = row.id, lane, until = %until, "waits for its parked lane");
            // Behind an effect waiting for its retry: after it, in order.
            self.store.postpone_effect(row.id, until, now).await?;
            if until - now >= NOTED_WAIT && self.flight.limited.contains(&lane) {
                self.held_back(&row, until, now).await?;
            }
            return Ok(false);
        }
        if let Effect::EditVote { proposal, .. } = &row.effect
            && !self.edit_now(&row, *proposal, messages.is_empty(), now).await?
        {
            return Ok(false);
        }
        if targets.is_empty()
            && (self.awaited(&row.effect, &messages) || self.connecting(row.community, &row.effect).await?)
        {
            // Its connection is on its way (a guild not yet announced at start): a temporary
            // failure, tried again with backoff.
            self.store.start_effect(row.id, now).await?;
            let e = PlatformError::Transient(format!(
                "the {} connection of this community is not up yet",
                effect_platform(&row.effect)
            ));
            // Not a failure to audit: the connection is still coming up.
            let attempt =
                Attempt { connection: effect_platform(&row.effect), number: row.attempts + 1, audited: false };
            if let Some(at) = self.after_failure(&row, attempt, e, now).await? {
                self.flight.limited.remove(&lane);
                self.flight.parked.insert(lane, at);
            }
            return Ok(false);
        }
        if targets.is_empty() {
            if matches!(row.effect, Effect::EditVote { .. }) {
                // No vote message was posted (yet): there is nothing to edit.
                self.store.finish_effect(row.id, &serde_json::json!({ "edited": 0 }), now).await?;
                return Ok(false);
            }
            crate::metrics::effect_failed(self.platform_label(row.community, effect_platform(&row.effect)));
            let msg = format!("no platform connection performs {}", effect_platform(&row.effect));
            tracing::error!(effect = row.id, "{msg}");
            self.give_up(&row, &msg, now).await?;
            return Ok(false);
        }
        if let Effect::EditVote { proposal, .. } = &row.effect {
            let budgets = channel_budgets(row.community, &messages, |m| {
                self.platform_named(row.community, m.platform.as_str()).map(|p| p.capabilities())
            });
            if let Some(at) = self.edits.channel_turn(*proposal, &budgets, now) {
                // Its channel has used its edits for now: the edit waits (postponed, so its
                // lane and other channels go on), and a newer one of its proposal supersedes it.
                tracing::debug!(effect = row.id, lane, until = %at, "waits for its channel's edit budget");
                self.store.postpone_effect(row.id, at, now).await?;
                return Ok(false);
            }
            self.edits.channel_used(*proposal, &budgets, now);
        }
        self.store.start_effect(row.id, now).await?;
        tracing::debug!(effect = row.id, lane, "started");
        self.flight.running.insert(row.id);
        self.flight.busy.insert(lane.clone());
        // The longest of its targets' time limits.
        let timeout = targets.iter().map(|t| self.flight.limit(&**t)).max().unwrap_or(self.flight.timeout);
        let connection = match (&row.effect, messages.first()) {
            (Effect::EditVote { .. }, Some(m)) => m.platform.as_str(),
            (effect, _) => effect_platform(effect),
        };
        let platform = self.platform_label(row.community, connection).to_string();
        let connection = connection.to_string();
        self.flight.tasks.spawn(async move {
            let outcome = perform(&targets, &row, &messages, timeout).await;
            Finished { row, lane, platform, connection, outcome }
        });
        Ok(true)
    }

    /// Records what a task finished: done (with what it implies, in one transaction), or
    /// retried later (its lane parked until then), or failed. Returns whether it was done.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn record_finished(&mut self, finished: Finished, now: DateTime<Utc>) -> Result<bool> {
        let Finished { row, lane, platform, connection, outcome } = finished;
        tracing::debug!(effect = row.id, lane, ok = outcome.is_ok(), "finished");
        self.flight.running.remove(&row.id);
        self.flight.busy.remove(&lane);
        match outcome {
            Ok(done) => {
                let result = serde_json::json!({ "message": done.message });
                if let Effect::EditVote { proposal, .. } = &row.effect {
                    self.edits.done(row.community, *proposal, now);
                }
                crate::metrics::effect_performed(&platform);
                if let (Effect::StartProcess { proposal, .. }, Some(outcome)) = (&row.effect, done.process.clone()) {
                    return self.process_started(&row, *proposal, outcome, result, now).await.map(|()| true);
                }
                match (&row.effect, done.message, done.kept, done.note) {
                    (Effect::PostVote { proposal, .. }, Some(message), ..) => {
                        self.vote_message_posted(&row, *proposal, message, done.link, result, now).await?;
                    }
                    (Effect::Revert { proposal: Some(proposal), .. }, _, kept, note)
                        if kept.is_some() || note.is_some() =>
                    {
                        self.kept(&row, *proposal, kept.unwrap_or_default(), note, result, now).await?;
                    }
                    _ => self.store.finish_effect(row.id, &result, now).await?,
                }
                Ok(true)
            }
            Err(e) => {
                let platform = platform.as_str();
                let limited = matches!(e, PlatformError::RateLimited { .. });
                let attempt = Attempt { connection: &connection, number: row.attempts + 1, audited: true };
                match self.after_failure(&row, attempt, e, now).await? {
                    Some(at) => {
                        crate::metrics::effect_retried(platform);
                        self.flight.parked.insert(lane.clone(), at);
                        if limited {
                            self.flight.limited.insert(lane.clone());
                        } else {
                            self.flight.limited.remove(&lane);
                        }
                        if limited && at - now >= NOTED_WAIT {
                            self.held_back(&row, at, now).await?;
                        }
                    }
                    None => crate::metrics::effect_failed(platform),
                }
                Ok(false)
            }
        }
    }

    /// Records a posted vote message on its proposal and the post as done, in one
    /// transaction: a crash leaves either both or neither (then the post is sent again with
    /// the same idempotency key, and the platform answers with the same message).
    async fn vote_message_posted(
        &mut self,
        row: &OutboxRow,
        proposal: ProposalId,
        message: MessageRef,
        link: Option<String>,
        result: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        // Reactions can come before Polity knows the message is a vote (the post is
        // performed off the loop): the message is read back as soon as it is linked.
        if self.can_read_reactions(row.community, &message) {
            self.reconciles.mark(row.community, message.clone(), now, true);
        }
        let input = Inbound::VoteMessagePosted { proposal, message: message.clone(), link };
        match self.step_finishing(row, input, &result, now).await {
            Ok(Handled::Done(_)) => Ok(()),
            // Recorded before (with the post marked done), or refused (the proposal was
            // decided meanwhile): the post is done either way.
            Ok(Handled::Duplicate) => self.store.finish_effect(row.id, &result, now).await.map_err(Into::into),
            Err(HandleError::Refused(e)) => {
                // Decided while its message was on its way (and so no longer in memory): the
                // message is linked in the store, so the closing edit waiting for it finds it.
                tracing::info!(effect = row.id, "a vote message posted after its proposal closed: {e}");
                self.store.link_closed_vote_message(row.community, proposal, &message, row.id, &result, now).await?;
                Ok(())
            }
            Err(HandleError::Failed(e)) => Err(e),
        }
    }

    /// Records what a decision process a platform started says of itself on its proposal,
    /// with the start marked done, in one transaction; the process is read from then on.
    async fn process_started(
        &mut self,
        row: &OutboxRow,
        proposal: ProposalId,
        outcome: serde_json::Value,
        result: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let status = outcome.get("status").and_then(serde_json::Value::as_str).unwrap_or("open").to_string();
        let input = Inbound::ProcessUpdate { proposal, status, outcome };
        let stepped = self.step_finishing(row, input, &result, now).await;
        tracing::debug!(effect = row.id, %proposal, ok = stepped.is_ok(), "a decision process started");
        match stepped {
            Ok(Handled::Done(_)) => {
                self.read_process_later(row.community, proposal, now);
                Ok(())
            }
            Ok(Handled::Duplicate) | Err(HandleError::Refused(_)) => {
                self.store.finish_effect(row.id, &result, now).await.map_err(Into::into)
            }
            Err(HandleError::Failed(e)) => Err(e),
        }
    }

    /// Steps what a performed effect told (`input`), with the effect marked done with
    /// `result`, in one transaction; keyed by the outbox row, so it is recorded once.
    async fn step_finishing(
        &mut self,
        row: &OutboxRow,
        input: Inbound,
        result: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Handled, HandleError> {
        let key = format!("outbox:{}", row.id);
        let input = StepInput {
            source: "polity",
            dedup_key: &key,
            input,
            community_changed: false,
            staged: Vec::new(),
            finishes: Some((row.id, result.clone())),
            checked: false,
        };
        self.step_and_record(row.community, input, now).await
    }

    /// Adds what a revert kept (a deleted message's files) to its proposal's action, with the
    /// revert marked done, in one transaction.
    async fn kept(
        &mut self,
        row: &OutboxRow,
        proposal: ProposalId,
        data: serde_json::Map<String, serde_json::Value>,
        note: Option<String>,
        result: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<()> {
        match self.step_finishing(row, Inbound::Kept { proposal, data, note }, &result, now).await {
            Ok(Handled::Done(_)) => Ok(()),
            // Recorded before, or the proposal was decided meanwhile (what was kept is of no
            // use then): the revert is done either way.
            Ok(Handled::Duplicate) | Err(HandleError::Refused(_)) => {
                tracing::debug!(effect = row.id, %proposal, "what a revert kept is not needed any more");
                self.store.finish_effect(row.id, &result, now).await.map_err(Into::into)
            }
            Err(HandleError::Failed(e)) => Err(e),
        }
    }

    /// Says when a governed change the platform holds back (a rename over Discord's two per
    /// ten minutes) will show: on the vote message while its proposal is open (undoing the
    /// change), else in the vote's channel (carrying it out after the decision), once per
    /// effect.
    async fn held_back(&mut self, row: &OutboxRow, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
        let (proposal, doing) = match &row.effect {
            Effect::Revert { proposal: Some(p), .. } => (*p, "undoing it"),
            Effect::Execute { proposal: Some(p), action } if action.kind.platform() != "polity" => {
                (*p, "carrying it out")
            }
            _ => return Ok(()),
        };
        let platform = capitalized(effect_platform(&row.effect));
        let when = at.format("%H:%M:%S UTC");
        let key = format!("held:{}", row.id);
        if matches!(row.effect, Effect::Revert { .. }) {
            let text = format!("{platform} holds back {doing} (rate limit): it shows at about {when}");
            let input = StepInput {
                source: "polity",
                // A later wait of the same effect (or a new time) is a note of its own, which
                // replaces this one on the message.
                dedup_key: &format!("{key}:{}", at.timestamp()),
                input: Inbound::Note { proposal, key: key.clone(), text },
                community_changed: false,
                staged: Vec::new(),
                finishes: None,
                checked: false,
            };
            return match self.step_and_record(row.community, input, now).await {
                Ok(_) | Err(HandleError::Refused(_)) => Ok(()),
                Err(HandleError::Failed(e)) => Err(e),
            };
        }
        let Some(first) = self.store.vote_messages(row.community, proposal).await?.into_iter().next() else {
            return Ok(());
        };
        let place = polity_governance::Place::new(first.platform.as_str(), first.channel);
        let text = format!(
            "Proposal {proposal}: {platform} holds back {doing} (rate limit): it shows at about {when} ({})",
            at.format("%Y-%m-%d")
        );
        let effects = [Effect::Post { place, text }];
        let rec = StepRecord {
            inbox: Some(crate::store::InboxEntry {
                source: "polity".into(),
                dedup_key: key,
                payload: serde_json::json!({ "held_back": row.id, "until": at }),
                checked: false,
            }),
            effects: &effects,
            ..StepRecord::new(row.community, now)
        };
        self.store.record_step(rec).await?;
        Ok(())
    }

    /// Whether a due tally edit goes out now. An edit that a newer one of the same proposal
    /// supersedes is dropped (recorded as done); one that comes sooner than the edit interval
    /// after the last is put off until then.
    async fn edit_now(
        &mut self,
        row: &OutboxRow,
        proposal: ProposalId,
        unposted: bool,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let outstanding = self.store.outstanding_effects(row.community, Some(proposal)).await?;
        if unposted && outstanding.iter().any(|r| matches!(r.effect, Effect::PostVote { .. })) {
            // Its vote message is still on its way (queued in its channel, or waiting for a
            // retry): the edit waits for it, and the post's end wakes the loop.
            return Ok(false);
        }
        if let Some(newer) = outstanding.iter().find(|r| r.id > row.id && matches!(r.effect, Effect::EditVote { .. })) {
            self.store.finish_effect(row.id, &serde_json::json!({ "superseded_by": newer.id }), now).await?;
            return Ok(false);
        }
        // Older edits still waiting (put off by pacing) are superseded by this one now, so a
        // proposal never has more than one edit waiting.
        for older in outstanding.iter().filter(|r| {
            r.id < row.id && matches!(r.effect, Effect::EditVote { .. }) && !self.flight.running.contains(&r.id)
        }) {
            self.store.finish_effect(older.id, &serde_json::json!({ "superseded_by": row.id }), now).await?;
        }
        if let Some(at) = self.edits.next_allowed(row.community, proposal)
            && at > now
        {
            self.store.postpone_effect(row.id, at, now).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Whether an effect's platform has connections that come up per community after start
    /// (see [`Self::await_platform`]).
    fn awaited(&self, effect: &Effect, messages: &[MessageRef]) -> bool {
        match effect {
            Effect::EditVote { .. } => messages.iter().any(|m| self.awaited.contains(m.platform.as_str())),
            other => self.awaited.contains(effect_platform(other)),
        }
    }

    /// Whether `community` has an enabled connection of its own that performs `effect` (by
    /// its name, or of its platform) but that is not up: it starts after Polity does, or
    /// after the step that enabled it, so the effect waits for it rather than failing.
    async fn connecting(&self, community: CommunityId, effect: &Effect) -> Result<bool> {
        let platform = match effect {
            Effect::EditVote { .. } => return Ok(false),
            other => effect_platform(other),
        };
        let connections = self.store.connections(community).await?;
        Ok(connections.iter().any(|c| {
            (c.name == platform || c.platform == platform)
                && c.config.get("enabled").and_then(serde_json::Value::as_bool) != Some(false)
        }))
    }

    /// Says that `platform`'s connections come up per community after start (a Discord
    /// guild's, when the gateway announces the guild): until then its effects wait, with
    /// backoff, instead of failing.
    pub fn await_platform(&mut self, platform: &str) {
        self.awaited.insert(platform.to_string());
    }

    /// The connections that perform an effect: for a tally edit, those of its vote messages.
    fn targets(&self, community: CommunityId, effect: &Effect, messages: &[MessageRef]) -> Vec<Arc<dyn Platform>> {
        let mut out: Vec<Arc<dyn Platform>> = Vec::new();
        let mut add = |p: Option<Arc<dyn Platform>>| {
            if let Some(p) = p
                && !out.iter().any(|q| Arc::ptr_eq(q, &p))
            {
                out.push(p);
            }
        };
        match effect {
            Effect::EditVote { .. } => {
                for m in messages {
                    add(self.platform_named(community, m.platform.as_str()));
                }
            }
            other => add(self.platform_named(community, effect_platform(other))),
        }
        out
    }

    /// Gives up on an effect, in one transaction: the row marked failed, an audit line saying
    /// what could not be done and why, and the admins told by direct message (unless what
    /// failed was itself a direct message, a reaction's removal or a tally edit, which the
    /// audit line records without bothering them).
    async fn give_up(&self, row: &OutboxRow, error: &str, now: DateTime<Utc>) -> Result<()> {
        let (proposal, what) = describe(&row.effect);
        let quiet =
            matches!(row.effect, Effect::Notify { .. } | Effect::RemoveReaction { .. } | Effect::EditVote { .. });
        let admins: Vec<AccountRef> = match (quiet, self.engine(row.community)) {
            (false, Some(engine)) => {
                engine.community.admins().filter_map(|m| m.accounts.first()).map(|l| l.account.clone()).collect()
            }
            _ => Vec::new(),
        };
        let about = proposal.map(|p| format!(" for proposal {p}")).unwrap_or_default();
        let text = format!("Polity could not carry out {what}{about}: {error}");
        let effects: Vec<Effect> =
            admins.into_iter().map(|account| Effect::Notify { account, text: text.clone(), at: None }).collect();
        let audit =
            [Audit::EffectFailed { proposal, effect: what, error: error.to_string(), admins_told: effects.len() }];
        let rec = StepRecord {
            effects: &effects,
            audit: &audit,
            fails: Some((row.id, error.to_string())),
            ..StepRecord::new(row.community, now)
        };
        self.store.record_step(rec).await?;
        Ok(())
    }

    /// Retries or fails an effect after a failed attempt; returns when it is tried again.
    /// Every line in the log names the community and the connection; the first failure of
    /// an effect that is tried again is written to the audit log with why, in the same
    /// transaction that puts it back.
    async fn after_failure(
        &self,
        row: &OutboxRow,
        attempt: Attempt<'_>,
        e: PlatformError,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let Attempt { connection, number: attempts, audited } = attempt;
        let id = row.id;
        let community = row.community;
        let backoff = TimeDelta::seconds(1i64 << attempts.clamp(0, 20)).min(MAX_BACKOFF);
        match e {
            PlatformError::Permanent(msg) => {
                tracing::error!(effect = id, %community, connection, error = %msg, "effect failed");
                self.give_up(row, &msg, now).await?;
                Ok(None)
            }
            // Being told to wait is not failing: a rate limited effect (an edit of a days-old
            // vote message, a rename) waits as long as it takes, up to many attempts.
            PlatformError::RateLimited { retry_after } if attempts < MAX_RATE_LIMITED_ATTEMPTS => {
                // A platform's word is capped: a lane is never parked for longer than an hour.
                let wait = retry_after
                    .and_then(|d| TimeDelta::from_std(d).ok())
                    .map_or(backoff, |d| d.clamp(TimeDelta::milliseconds(1), MAX_RETRY_AFTER));
                tracing::warn!(
                    effect = id,
                    %community,
                    connection,
                    wait_ms = wait.num_milliseconds(),
                    "rate limited; retrying"
                );
                self.store.retry_effect(id, now + wait, &e.to_string(), now).await?;
                Ok(Some(now + wait))
            }
            PlatformError::RateLimited { .. } | PlatformError::Transient(_) if attempts >= MAX_ATTEMPTS => {
                tracing::error!(effect = id, %community, connection, error = %e, attempts, "effect failed after its last attempt");
                self.give_up(row, &format!("{e} (after {attempts} attempts)"), now).await?;
                Ok(None)
            }
            PlatformError::RateLimited { .. } | PlatformError::Transient(_) => {
                tracing::warn!(effect = id, %community, connection, error = %e, attempts, "failed for now; retrying");
                let at = now + backoff;
                if attempts == 1 && audited {
                    let (proposal, what) = describe(&row.effect);
                    let audit = [Audit::EffectRetrying {
                        proposal,
                        effect: what,
                        error: format!("{connection}: {e}"),
                        retry_in_secs: backoff.num_seconds(),
                    }];
                    let rec = StepRecord {
                        audit: &audit,
                        retries: Some((id, e.to_string(), at)),
                        ..StepRecord::new(community, now)
                    };
                    self.store.record_step(rec).await?;
                } else {
                    self.store.retry_effect(id, at, &e.to_string(), now).await?;
                }
                Ok(Some(at))
            }
        }
    }
}

/// A failed attempt at an effect: through which connection, which attempt it was, and
/// whether its first failure goes in the audit log (not while its connection comes up).
struct Attempt<'a> {
    connection: &'a str,
    number: i32,
    audited: bool,
}

/// What an effect was for, in words, and its proposal.
fn describe(effect: &Effect) -> (Option<ProposalId>, String) {
    match effect {
        Effect::PostVote { proposal, .. } => (Some(*proposal), "posting the vote message".into()),
        Effect::EditVote { proposal, .. } => (Some(*proposal), "updating the vote message".into()),
        Effect::Post { place, .. } => (None, format!("posting in {}", place.channel)),
        Effect::Notify { account, .. } => (None, format!("a direct message to {account}")),
        Effect::RemoveReaction { message, account, .. } => {
            (None, format!("removing {account}'s reaction on message {}", message.message))
        }
        Effect::Revert { proposal, action } => (*proposal, format!("undoing {}", action.summary())),
        Effect::Execute { proposal, action } => (*proposal, action.summary()),
        Effect::Call { proposal, name, .. } => (*proposal, format!("the policy's call {name}")),
        Effect::StartProcess { proposal, name, .. } => (Some(*proposal), format!("starting {name}")),
    }
}

/// Performs an effect on each of its connections, each request within `timeout`.
async fn perform(
    targets: &[Arc<dyn Platform>],
    row: &OutboxRow,
    messages: &[MessageRef],
    timeout: Duration,
) -> Result<Performed, PlatformError> {
    let request = Request { key: row.id, retried: row.attempts > 0, effect: &row.effect, vote_messages: messages };
    let mut outcome = Performed::default();
    for platform in targets {
        let done = match tokio::time::timeout(timeout, platform.perform(request)).await {
            Ok(done) => done?,
            Err(_) => {
                tracing::warn!(effect = row.id, connection = platform.name(), "the platform did not answer in time");
                return Err(PlatformError::Transient(format!(
                    "{} did not answer within {} s",
                    platform.name(),
                    timeout.as_secs_f64()
                )));
            }
        };
        if done.message.is_some() {
            outcome.message = done.message;
        }
        if done.kept.is_some() {
            outcome.kept = done.kept;
        }
        if done.note.is_some() {
            outcome.note = done.note;
        }
        if done.link.is_some() {
            outcome.link = done.link;
        }
        if done.process.is_some() {
            outcome.process = done.process;
        }
    }
    Ok(outcome)
}

/// The lane an effect keeps its order in: one channel's posts, one vote's edits, one
/// message's reaction removals, one account's notices. A platform whose output is one stream
/// is one lane.
fn lane(community: CommunityId, effect: &Effect, targets: &[Arc<dyn Platform>]) -> String {
    if let Some(serial) = targets.iter().find(|p| p.capabilities().serial) {
        return format!("serial:{}", serial.name());
    }
    let c = community.0;
    match effect {
        Effect::PostVote { place, .. } | Effect::Post { place, .. } => format!("{c}:{place}"),
        // A vote's edits keep their order among themselves, apart from the channel's posts:
        // an edit Discord holds back (an hour-old message's budget, 30046) never holds up
        // a held message's delete or a new vote. Per-channel pacing is the edit pacer's.
        Effect::EditVote { proposal, .. } => format!("{c}:vote:{proposal}"),
        Effect::Notify { account, .. } => format!("{c}:notify:{account}"),
        Effect::RemoveReaction { message, .. } => format!("{c}:{}:{}", message.platform, message.channel),
        // Undoing and redoing governed actions keep their order in a lane of their own: a
        // rename Discord holds back for ten minutes never holds up the vote on it.
        Effect::Revert { action, .. } | Effect::Execute { action, .. } => match &action.place {
            Some(place) => format!("{c}:governed:{place}"),
            None => format!("{c}:{}", action.kind.platform()),
        },
        Effect::Call { name, .. } | Effect::StartProcess { name, .. } => format!("{c}:{}", name.platform()),
    }
}
/// A platform's name as a word in a sentence: `discord` -> `Discord`.
fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Which platform connection performs an effect.
fn effect_platform(effect: &Effect) -> &str {
    match effect {
        Effect::PostVote { place, .. } | Effect::Post { place, .. } => place.platform.as_str(),
        Effect::EditVote { .. } => "",
        Effect::Notify { account, .. } => account.platform.as_str(),
        Effect::RemoveReaction { message, .. } => message.platform.as_str(),
        Effect::Revert { action, .. } | Effect::Execute { action, .. } => {
            action.place.as_ref().map_or(action.kind.platform(), |p| p.platform.as_str())
        }
        Effect::Call { name, .. } | Effect::StartProcess { name, .. } => name.platform(),
    }
}

fn proposal_of(effect: &Effect) -> Option<ProposalId> {
    match effect {
        Effect::EditVote { proposal, .. } => Some(*proposal),
        _ => None,
    }
}
