//! The runtime: the one path every input takes.
//!
//! ```text
//! input ─> seen in the inbox? ─> engine step ─> changes to governance itself applied
//!        ─> one transaction: inbox row, proposals, ballots, community, policies, audit, outbox
//!        ─> dispatcher: outbox rows performed by their platform, with retry and backoff
//! ```
//! A crash anywhere loses nothing: an input whose transaction did not commit is delivered
//! again and handled as new; an effect is marked in flight before its platform call and
//! performed again after a crash with the same idempotency key.

mod dispatch;

pub use dispatch::{DEFAULT_TIMEOUT, Finished};

use crate::metrics;
use crate::platforms::Registry;
use crate::store::{Batch, ConnectionChange, InboxEntry, Recorded, StepRecord, Store};
use anyhow::{Context, Result, anyhow};
use chrono::{DateTime, TimeDelta, Utc};
use polity_governance::action::{Action, ActionStatus};
use polity_governance::change::{Change as GovernanceChange, ChangeKind};
use polity_governance::community::{Community, LinkQuality, Permission};
use polity_governance::engine::{Ctx, Engine, Step};
use polity_governance::ids::{AccountRef, CommunityId, MemberId, MessageRef, ProposalId};
use polity_governance::io::{Audit, Effect, Inbound, ReactionUsers};
use polity_governance::kits;
use polity_governance::platform::{ActionInfo, Platform, PlatformError};
use polity_governance::policy::CompiledPolicy;
use polity_governance::script::{HostData, NoHostData, Sandbox};
use polity_governance::{ActionPattern, GovError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How an input ended.
#[derive(Debug)]
pub enum Handled {
    /// Delivered before: nothing changed.
    Duplicate,
    /// Applied and recorded.
    Done(Step),
}

/// Why an input was not handled.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Governance refused it: a member's mistake (a vote on a closed proposal, a role that
    /// does not exist). Nothing of it is recorded but a member it admitted.
    #[error(transparent)]
    Refused(#[from] GovError),
    /// The store failed (memory was reloaded from it): nothing of the input is recorded.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for HandleError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Failed(e.into())
    }
}

impl From<serde_json::Error> for HandleError {
    fn from(e: serde_json::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// How many wrong link codes an account may type in a window.
pub const LINK_TRIES: usize = 5;
pub const LINK_TRY_WINDOW: TimeDelta = TimeDelta::minutes(15);

pub struct Runtime {
    store: Store,
    sandbox: Arc<Sandbox>,
    host: Arc<dyn HostData>,
    engines: HashMap<CommunityId, Engine>,
    platforms: HashMap<String, Arc<dyn Platform>>,
    /// Connections that act for one community only (a Discord guild's), looked up first.
    community_platforms: HashMap<(CommunityId, String), Arc<dyn Platform>>,
    edits: dispatch::EditPacing,
    /// The effects being performed.
    flight: dispatch::Flight,
    reconciles: Reconciles,
    /// Links that add Polity's own bots to a server, by platform.
    invites: HashMap<String, String>,
    /// Platforms whose connections come up per community after start.
    awaited: std::collections::HashSet<String>,
    /// Performs what no connection of its own platform does (the console stands in for
    /// every platform when trying Polity locally).
    fallback: Option<Arc<dyn Platform>>,
    /// Recent wrong link codes per account, to stop guessing.
    link_failures: HashMap<(CommunityId, AccountRef), Vec<DateTime<Utc>>>,
    /// The platforms' adapters, and the bots running.
    registry: Registry,
    /// Connections enabled or removed by steps not yet committed.
    connection_events: Vec<ConnectionEvent>,
    /// Where committed connection changes go (the host, which starts and stops them).
    connection_tx: Option<tokio::sync::mpsc::UnboundedSender<ConnectionEvent>>,
}

/// A platform connection a committed step enabled or removed: the host starts or stops it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    Enabled {
        community: CommunityId,
        name: String,
    },
    Removed {
        community: CommunityId,
        name: String,
    },
    /// A connection's poll is due.
    PollDue(crate::store::polls::DuePoll),
}

impl Runtime {
    /// Loads every community's state from the store.
    ///
    /// # Errors
    /// When the store cannot be read or a stored policy no longer compiles.
    pub async fn open(store: Store) -> Result<Self> {
        let mut rt = Self {
            store,
            sandbox: Arc::new(Sandbox::default()),
            host: Arc::new(NoHostData),
            engines: HashMap::new(),
            platforms: HashMap::new(),
            community_platforms: HashMap::new(),
            edits: dispatch::EditPacing::default(),
            flight: dispatch::Flight::default(),
            reconciles: Reconciles::default(),
            invites: HashMap::new(),
            awaited: std::collections::HashSet::new(),
            fallback: None,
            link_failures: HashMap::new(),
            registry: Registry::default(),
            connection_events: Vec::new(),
            connection_tx: None,
        };
        for (id, _) in rt.store.communities().await? {
            rt.load(id).await?;
        }
        Ok(rt)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The platforms' adapters, and the bots running.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The platforms' adapters, to register one or record a running bot.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Sends every connection change a committed step makes to `tx`.
    pub fn on_connection_change(&mut self, tx: tokio::sync::mpsc::UnboundedSender<ConnectionEvent>) {
        self.connection_tx = Some(tx);
    }

    /// The connection changes of what was just committed go to the host; those of what was
    /// not are forgotten.
    fn connection_changes_settled(&mut self, committed: bool) {
        let events = std::mem::take(&mut self.connection_events);
        if !committed {
            return;
        }
        if let Some(tx) = &self.connection_tx {
            for event in events {
                if tx.send(event).is_err() {
                    tracing::debug!("a connection change came after the host stopped listening");
                }
            }
        }
    }

    /// Stops using a community's connection (it was removed, or stopped).
    pub fn remove_community_platform(&mut self, community: CommunityId, name: &str) {
        self.community_platforms.remove(&(community, name.to_string()));
    }

    /// Lets `platform` perform effects for platforms that have no connection.
    pub fn set_fallback_platform(&mut self, platform: Arc<dyn Platform>) {
        self.fallback = Some(platform);
    }

    /// Whether `account` may try another link code now: at most [`LINK_TRIES`] wrong codes
    /// in [`LINK_TRY_WINDOW`].
    pub fn may_try_link(&mut self, community: CommunityId, account: &AccountRef, now: DateTime<Utc>) -> bool {
        let recent = self.link_failures.entry((community, account.clone())).or_default();
        recent.retain(|t| now - *t < LINK_TRY_WINDOW);
        recent.len() < LINK_TRIES
    }

    /// Counts a wrong link code.
    pub fn link_failed(&mut self, community: CommunityId, account: &AccountRef, now: DateTime<Utc>) {
        self.link_failures.entry((community, account.clone())).or_default().push(now);
    }

    /// Whether a connection of that name is running for `community`.
    pub fn has_platform(&self, community: CommunityId, name: &str) -> bool {
        self.platforms.contains_key(name) || self.community_platforms.contains_key(&(community, name.to_string()))
    }

    /// Remembers the link that adds Polity's own bot on `platform` to a server (Discord's
    /// invite link), for `/integration add`.
    pub fn set_invite(&mut self, platform: &str, link: String) {
        self.invites.insert(platform.to_string(), link);
    }

    /// The link that adds Polity's running bot on `platform` to a server, if it runs one.
    pub fn invite(&self, platform: &str) -> Option<&str> {
        self.invites.get(platform).map(String::as_str)
    }

    pub fn add_platform(&mut self, platform: Arc<dyn Platform>) {
        self.platforms.insert(platform.name().to_string(), platform);
    }

    /// A connection that performs the effects of one community only, under its name (each
    /// Discord guild's connection knows its guild and refuses other guilds' channels).
    pub fn add_community_platform(&mut self, community: CommunityId, platform: Arc<dyn Platform>) {
        self.community_platforms.insert((community, platform.name().to_string()), platform);
    }

    /// Edits of one proposal's vote text are sent at most once per `interval`: an edit that
    /// comes sooner waits, and an edit superseded by a newer one while it waited is dropped.
    pub fn set_edit_interval(&mut self, interval: TimeDelta) {
        self.edits.interval = interval;
    }

    /// A vote message whose reactions changed is read back and reconciled at most once per
    /// `interval`.
    pub fn set_reconcile_interval(&mut self, interval: TimeDelta) {
        self.reconciles.interval = interval;
    }

    async fn load(&mut self, id: CommunityId) -> Result<()> {
        // Memory is rebuilt from the store: so is what the store knows it wrote.
        self.store.forget_written(id);
        let community = self.store.load_community(id).await?;
        let mut engine = Engine::new(community, self.sandbox.clone());
        for p in self.store.load_policies(id).await? {
            engine
                .restore_policy(p.id, &p.source, p.active)
                .map_err(|e| anyhow!("stored policy \"{}\" version {} no longer compiles:\n{e}", p.name, p.version))?;
        }
        for p in self.store.load_proposals(id, true).await? {
            engine.restore_proposal(p);
        }
        if let Some(last) = self.store.last_proposal_id(id).await? {
            engine.numbered_after(last);
        }
        self.engines.insert(id, engine);
        Ok(())
    }

    /// What Polity itself and every platform connected for `community` offer policies.
    pub fn actions(&self, community: CommunityId) -> Vec<ActionInfo> {
        let mut all = polity_actions();
        let mut names: Vec<&String> = self.platforms.keys().collect();
        names.extend(self.community_platforms.keys().filter(|(c, _)| *c == community).map(|(_, n)| n));
        names.sort();
        names.dedup();
        for name in names {
            if let Some(p) = self.platform_named(community, name) {
                all.extend(p.actions());
            }
        }
        all
    }

    pub fn engine(&self, id: CommunityId) -> Option<&Engine> {
        self.engines.get(&id)
    }

    /// How many proposals are open, in every community.
    pub fn open_proposals(&self) -> usize {
        self.engines.values().map(|e| e.proposals().filter(|p| p.state.is_open()).count()).sum()
    }

    /// The state and policy of a proposal still in memory (open, or decided in the last step).
    pub fn proposal_state(
        &self,
        community: CommunityId,
        id: ProposalId,
    ) -> Option<(polity_governance::ProposalState, String)> {
        let p = self.engines.get(&community)?.proposal(id)?;
        Some((p.state, p.policy_name.clone()))
    }

    /// The community of that name, created with `admin` as its first member and admin if it
    /// does not exist yet.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn ensure_community(&mut self, name: &str, admin_name: &str, admin: AccountRef) -> Result<CommunityId> {
        if let Some(id) = self.store.community_id(name).await? {
            if !self.engines.contains_key(&id) {
                self.load(id).await?;
            }
            return Ok(id);
        }
        let id = self.store.next_community_id().await?;
        let mut community = Community::new(id, name);
        community.add_member(admin_name, admin, true)?;
        self.store.create_community(&community).await?;
        self.engines.insert(id, Engine::new(community, self.sandbox.clone()));
        tracing::info!(community = %id, name, "community created");
        Ok(id)
    }

    /// The member an account belongs to, adding a new member for an account never seen
    /// (recorded with the next step).
    fn member_for(engine: &mut Engine, account: &AccountRef, name: &str) -> (Option<MemberId>, bool) {
        if let Some(m) = engine.community.member_by_account(account) {
            return (Some(m.id), false);
        }
        if account.account.contains('\0') || account.platform.as_str().contains('\0') {
            // No platform names an account so; the store could not keep it.
            return (None, false);
        }
        let name = crate::store::text_safe(name);
        let name = name.as_ref();
        let mut candidate = name.to_string();
        let mut n = 2;
        while engine.community.member_by_name(&candidate).is_some() {
            candidate = format!("{name}{n}");
            n += 1;
        }
        match engine.community.add_member(&candidate, account.clone(), false) {
            Ok(id) => (Some(id), true),
            Err(_) => (None, false),
        }
    }

    /// Records the community's members and roles as they are now (a new member joined).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn save_community(&mut self, community: CommunityId, now: DateTime<Utc>) -> Result<()> {
        self.record_community(community, now, &[]).await
    }

    /// Links `account` to `member` (a confirmed one-time code), recorded with an audit line.
    ///
    /// # Errors
    /// When the account belongs to someone else or the store fails.
    pub async fn link_account(
        &mut self,
        community: CommunityId,
        member: MemberId,
        account: &AccountRef,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let engine = self.engines.get_mut(&community).ok_or_else(|| anyhow!("no community {community}"))?;
        engine.community.link_account(member, account.clone(), LinkQuality::CodeConfirmed)?;
        let kind = polity_governance::ActionType::new("polity.link_account").map_err(|e| anyhow!(e))?;
        self.record_community(community, now, &[Audit::Applied { proposal: None, action: kind }]).await?;
        tracing::info!(community = %community, member = %member, account = %account, "account linked");
        Ok(())
    }

    /// Writes the community as it is in memory, with `audit`. If the write fails, memory is
    /// reloaded from the store, so it never runs ahead of the record.
    async fn record_community(&mut self, community: CommunityId, now: DateTime<Utc>, audit: &[Audit]) -> Result<()> {
        let engine = self.engines.get(&community).ok_or_else(|| anyhow!("no community {community}"))?;
        let rec = StepRecord { community_state: Some(&engine.community), audit, ..StepRecord::new(community, now) };
        if let Err(e) = self.store.record_step(rec).await {
            self.load(community).await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// What the policy `name` alone would have done with the platform actions and requests
    /// received since `since`, played on a copy of the community: one line per thing it
    /// would have done. Nothing is recorded or performed.
    ///
    /// # Errors
    /// When the policy is unknown or the store fails.
    pub async fn dry_run(
        &self,
        community: CommunityId,
        name: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let engine = self.engines.get(&community).ok_or_else(|| anyhow!("no community {community}"))?;
        let policy = engine.policy(name).ok_or_else(|| anyhow!("no policy named {name}"))?;
        let mut scratch = Engine::new(engine.community.clone(), self.sandbox.clone());
        scratch.install_policy(&policy.source).map_err(|e| anyhow!("{e}"))?;
        let mut lines = Vec::new();
        let inputs = self.store.inputs_since(community, since).await?;
        // Only what this policy covers: everything else is other policies' business.
        let covered = |i: &Inbound| matches!(i, Inbound::Action { action } if policy.covers(&action.kind).is_some());
        let actions = inputs.into_iter().filter(|(_, i)| covered(i));
        let replay = actions.chain(std::iter::once((now, Inbound::Tick)));
        for (at, input) in replay {
            let ctx = Ctx { now: at, seed: 0, host: Arc::new(NoHostData) };
            // A mistake (a refused request) is part of what would have happened.
            let step = match scratch.step(input, &ctx) {
                Ok(step) => step,
                Err(e) => {
                    lines.push(format!("{}: would refuse: {e}", at.format("%Y-%m-%d %H:%M")));
                    continue;
                }
            };
            for e in &step.effects {
                let what = match e {
                    Effect::Revert { action, .. } => format!("undo {} by {}", action.kind, action.initiator),
                    Effect::PostVote { proposal, .. } => {
                        let headline = scratch.proposal(*proposal).map(|p| p.headline()).unwrap_or_default();
                        format!("open proposal {proposal} and its vote: {headline}")
                    }
                    // Carried out by permission or with no policy: not this policy's doing.
                    Effect::Execute { proposal: None, .. } => continue,
                    Effect::Execute { action, .. } => format!("carry out {}", action.kind),
                    Effect::Call { name, params, .. } => {
                        format!("call {name} {}", serde_json::Value::Object(params.clone()))
                    }
                    Effect::Post { text, .. } => format!("post \"{text}\""),
                    Effect::StartProcess { name, .. } => format!("start {name}"),
                    Effect::Notify { account, text } => format!("tell {account}: {text}"),
                    Effect::EditVote { .. } | Effect::RemoveReaction { .. } => continue,
                };
                lines.push(format!("{}: would {what}", at.format("%Y-%m-%d %H:%M")));
            }
            for a in &step.audit {
                if let Audit::Decided { proposal, outcome } = a {
                    lines.push(format!(
                        "{}: proposal {proposal} would be {outcome} (with no ballots cast)",
                        at.format("%Y-%m-%d %H:%M")
                    ));
                }
            }
        }
        Ok(lines)
    }

    /// Registers the account behind an input as a member if it is new. Returns whether the
    /// community changed.
    pub fn admit(&mut self, community: CommunityId, account: &AccountRef, name: &str) -> bool {
        self.engines.get_mut(&community).is_some_and(|e| Self::member_for(e, account, name).1)
    }

    /// Handles one input: deduplicated by `(source, dedup_key)`, applied to the engine, and
    /// recorded with its effects in one transaction.
    ///
    /// # Errors
    /// A user mistake comes back as a [`GovError`] (inside the `anyhow::Error`; nothing is
    /// recorded); a store failure reloads the community from the store, so memory never
    /// runs ahead of what was recorded.
    pub async fn handle(
        &mut self,
        community: CommunityId,
        source: &str,
        dedup_key: &str,
        input: Inbound,
        now: DateTime<Utc>,
        community_changed: bool,
    ) -> Result<Handled, HandleError> {
        self.handle_with(community, source, dedup_key, input, now, community_changed, Vec::new()).await
    }

    /// [`Self::handle`], with platform connections staged in the same transaction (a
    /// connection's secret waits, sealed, for the decision on the request that names it).
    ///
    /// # Errors
    /// As [`Self::handle`].
    #[allow(clippy::too_many_arguments)]
    pub async fn handle_with(
        &mut self,
        community: CommunityId,
        source: &str,
        dedup_key: &str,
        input: Inbound,
        now: DateTime<Utc>,
        community_changed: bool,
        staged: Vec<ConnectionChange>,
    ) -> Result<Handled, HandleError> {
        let input = StepInput { source, dedup_key, input, community_changed, staged, finishes: None };
        self.step_and_record(community, input, now).await
    }

    /// The one path for one input: dedup, engine step, governance changes applied, one
    /// transaction.
    async fn step_and_record(
        &mut self,
        community: CommunityId,
        input: StepInput<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled, HandleError> {
        // Most duplicates are dropped here, without taking the write lock a batch takes.
        if self.store.seen(input.source, input.dedup_key).await? {
            tracing::debug!(source = input.source, dedup_key = input.dedup_key, "duplicate input dropped");
            metrics::input_duplicate(input.source);
            return Ok(Handled::Duplicate);
        }
        let batch = self.store.begin_batch().await?;
        let mut reload = false;
        let source = input.source;
        match self.step_in(&batch, community, input, now, &mut reload).await {
            Ok(Handled::Done(step)) => {
                if let Err(e) = batch.commit().await {
                    self.connection_changes_settled(false);
                    self.load(community).await.context("reloading after a failed write")?;
                    return Err(HandleError::from(e));
                }
                self.connection_changes_settled(true);
                metrics::input_handled(source);
                Ok(Handled::Done(step))
            }
            // A member's mistake: nothing of the input is written, but a member it admitted
            // is kept.
            Err(HandleError::Refused(e)) => {
                batch.commit().await?;
                Err(HandleError::Refused(self.closed_or(community, e).await))
            }
            other => {
                self.connection_changes_settled(false);
                let rolled_back = batch.rollback().await;
                if reload || rolled_back.is_err() {
                    self.load(community).await.context("reloading after a failed write")?;
                }
                rolled_back?;
                if matches!(other, Ok(Handled::Duplicate)) {
                    metrics::input_duplicate(source);
                }
                other
            }
        }
    }

    /// Inputs delivered together, recorded in one transaction (group commit): each is still
    /// deduplicated, stepped and audited on its own, and one that is refused (a member's
    /// mistake) is left out without touching the others. Returns each input's outcome, in
    /// order; an `Err` for the whole batch means nothing of it was written.
    ///
    /// # Errors
    /// When the store fails: the communities the batch touched are reloaded.
    pub async fn handle_batch(
        &mut self,
        deliveries: Vec<crate::serve::Delivery>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<Handled, HandleError>>> {
        let batch = self.store.begin_batch().await?;
        let mut touched = std::collections::BTreeSet::new();
        let mut outcomes = Vec::with_capacity(deliveries.len());
        let mut reload = false;
        for d in deliveries {
            touched.insert(d.community);
            let changed = d.from.as_ref().is_some_and(|(account, name)| self.admit(d.community, account, name));
            let input = StepInput {
                source: &d.source,
                dedup_key: &d.dedup_key,
                input: d.input,
                community_changed: changed,
                staged: Vec::new(),
                finishes: None,
            };
            let stepped = self.step_in(&batch, d.community, input, now, &mut reload).await;
            if let Err(HandleError::Failed(e)) = stepped {
                // The store failed: nothing of the batch is kept, in the store or here.
                drop(batch);
                self.connection_changes_settled(false);
                for c in touched {
                    self.load(c).await.context("reloading after a failed write")?;
                }
                return Err(e);
            }
            match &stepped {
                Ok(Handled::Done(_)) => metrics::input_handled(&d.source),
                Ok(Handled::Duplicate) => metrics::input_duplicate(&d.source),
                Err(_) => {}
            }
            outcomes.push((stepped, d.community));
        }
        let committed = batch.commit().await;
        self.connection_changes_settled(committed.is_ok());
        if committed.is_err() || reload {
            for c in &touched {
                self.load(*c).await.context("reloading after a failed write")?;
            }
        }
        committed?;
        let mut said = Vec::with_capacity(outcomes.len());
        for (outcome, community) in outcomes {
            said.push(match outcome {
                Err(HandleError::Refused(e)) => Err(HandleError::Refused(self.closed_or(community, e).await)),
                other => other,
            });
        }
        Ok(said)
    }

    /// A refusal as members should read it: a proposal the engine no longer holds in memory
    /// but the store knows was closed, not unknown.
    ///
    /// When the store cannot tell, the refusal stays as it was.
    async fn closed_or(&self, community: CommunityId, e: GovError) -> GovError {
        if let GovError::UnknownProposal(id) = &e {
            match self.store.proposal(community, *id).await {
                Ok(Some(_)) => return GovError::Closed(*id),
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "cannot tell whether proposal {id} was closed"),
            }
        }
        e
    }

    /// Steps one input and records it inside `batch`. Sets `reload` when memory ran ahead
    /// of what the batch holds (an input another writer recorded first).
    async fn step_in(
        &mut self,
        batch: &Batch,
        community: CommunityId,
        input: StepInput<'_>,
        now: DateTime<Utc>,
        reload: &mut bool,
    ) -> Result<Handled, HandleError> {
        let StepInput { source, dedup_key, input, community_changed, staged, finishes } = input;
        let input = without_nul(input);
        let received = std::time::Instant::now();
        if self.store.seen_in(batch, source, dedup_key).await? {
            tracing::debug!(source, dedup_key, "duplicate input dropped");
            return Ok(Handled::Duplicate);
        }
        let payload = serde_json::to_value(&input)?;
        let reacted = match &input {
            Inbound::Reaction { message, .. } => Some(message.clone()),
            _ => None,
        };
        let ctx = Ctx { now, seed: entropy(now, dedup_key), host: self.host.clone() };
        let Some(engine) = self.engines.get_mut(&community) else {
            return Err(HandleError::Failed(anyhow!("no community {community}")));
        };
        // What the previous step decided has been recorded and answered; keep memory to the
        // open proposals.
        engine.forget_closed();
        let mut step = match engine.step(input, &ctx) {
            Ok(step) => step,
            Err(e) => {
                if community_changed {
                    // Keep the newly admitted member even though the input was refused.
                    let rec =
                        StepRecord { community_state: Some(&engine.community), ..StepRecord::new(community, now) };
                    self.store.record_in(batch, &rec).await?;
                }
                return Err(e.into());
            }
        };
        let (internal, effects): (Vec<Effect>, Vec<Effect>) = step
            .effects
            .drain(..)
            .partition(|e| matches!(e, Effect::Execute { action, .. } if action.kind.platform() == "polity"));
        let mut changes = Changes { community: community_changed, connections: staged, ..Changes::default() };
        // A connection whose request failed, expired or was cancelled is forgotten with its secret.
        for a in &step.audit {
            if let Audit::Decided { proposal, outcome } = a
                && outcome != "passed"
                && let Some(p) = engine.proposal(*proposal)
                && p.action.kind.as_str() == ChangeKind::IntegrationAdd.name()
                && let Some(name) = p.action.data.get("name").and_then(|v| v.as_str())
            {
                changes.connections.push(ConnectionChange::Remove(name.to_string()));
            }
        }
        let mut unapplied = Vec::new();
        for effect in &internal {
            if let Effect::Execute { action, proposal } = effect {
                match apply_governance_change(engine, action) {
                    Ok(change) => {
                        changes.merge(change);
                        step.audit.push(Audit::Applied { proposal: *proposal, action: action.kind.clone() });
                    }
                    Err(e) => {
                        tracing::warn!(action = %action.kind, error = %e, "a governance change could not be applied");
                        step.audit.push(Audit::ScriptFailed {
                            policy_name: "polity".into(),
                            error: format!("{} could not be applied: {e}", action.kind),
                        });
                        // Whoever decided it is told, where it was asked for.
                        if let (Some(p), Some(place)) = (proposal, &action.place) {
                            unapplied.push(Effect::Post {
                                place: place.clone(),
                                text: format!(
                                    "Proposal {p} passed, but {} could not be carried out: {e}",
                                    action.summary()
                                ),
                            });
                        }
                    }
                }
            }
        }
        step.effects = effects;
        step.effects.extend(unapplied);
        for a in &step.audit {
            tracing::info!(community = %community, "{a}");
        }
        let proposals: Vec<_> = step.changed.iter().filter_map(|id| engine.proposal(*id)).collect();
        let new_policies: Vec<&CompiledPolicy> = changes
            .installed
            .iter()
            .filter_map(|id| engine.policies().iter().find(|p| p.id == *id))
            .map(|p| &**p)
            .collect();
        let connection_events: Vec<ConnectionEvent> = changes
            .connections
            .iter()
            .filter_map(|c| match c {
                ConnectionChange::Enable(name) => Some(ConnectionEvent::Enabled { community, name: name.clone() }),
                ConnectionChange::Remove(name) => Some(ConnectionEvent::Removed { community, name: name.clone() }),
                ConnectionChange::Stage { .. } => None,
            })
            .collect();
        let rec = StepRecord {
            inbox: Some(InboxEntry { source: source.into(), dedup_key: dedup_key.into(), payload }),
            proposals,
            community_state: changes.community.then_some(&engine.community),
            new_policies,
            removed_policies: std::mem::take(&mut changes.removed),
            effects: &step.effects,
            audit: &step.audit,
            connections: std::mem::take(&mut changes.connections),
            finishes,
            ..StepRecord::new(community, now)
        };
        match self.store.record_in(batch, &rec).await {
            Ok(Recorded::Done { .. }) => {
                self.connection_events.extend(connection_events);
                if step.audit.iter().any(|a| matches!(a, Audit::Decided { .. })) {
                    metrics::decision_latency(received.elapsed());
                }
                // Reaction events may have come out of order or been missed: the message is
                // read back once things are quiet.
                if let Some(message) = reacted
                    && self.can_read_reactions(community, &message)
                    && engine_has_open_vote(self.engines.get(&community), &message)
                {
                    self.reconciles.mark(community, message, now, false);
                }
                Ok(Handled::Done(step))
            }
            Ok(Recorded::Duplicate) => {
                *reload = true;
                Ok(Handled::Duplicate)
            }
            Err(e) => {
                *reload = true;
                Err(e.into())
            }
        }
    }

    /// The connection that acts on platform `name` for `community`: its own, the shared one
    /// of that name, or the fallback (the console, standing in for every platform).
    fn platform_named(&self, community: CommunityId, name: &str) -> Option<Arc<dyn Platform>> {
        self.community_platforms
            .get(&(community, name.to_string()))
            .or_else(|| self.platforms.get(name))
            .cloned()
            .or_else(|| self.fallback.clone())
    }

    fn can_read_reactions(&self, community: CommunityId, message: &MessageRef) -> bool {
        self.platform_named(community, message.platform.as_str()).is_some_and(|p| p.capabilities().read_reactions)
    }

    /// Reads back the reactions on every open vote message of `community` on `platform`
    /// (after a start or a reconnect, when events may have been missed), as soon as the
    /// runtime is idle.
    pub fn reconcile_open_votes(&mut self, community: CommunityId, platform: &str, now: DateTime<Utc>) {
        let Some(engine) = self.engines.get(&community) else {
            return;
        };
        let messages: Vec<MessageRef> = engine
            .proposals()
            .filter(|p| p.state.is_open())
            .filter_map(|p| p.vote.as_ref())
            .flat_map(|v| v.messages.iter().filter(|m| m.platform.as_str() == platform).cloned())
            .collect();
        for m in messages {
            self.reconciles.mark(community, m, now, true);
        }
    }

    /// Reconciles the vote messages whose time has come: their reactions are read from the
    /// platform and handed to the engine as a snapshot. A message with a reaction removal
    /// still outstanding waits (its snapshot would show the reaction about to go).
    ///
    /// # Errors
    /// When the store fails.
    pub async fn reconcile_due(&mut self, now: DateTime<Utc>) -> Result<()> {
        for (community, message) in self.reconciles.take_due(now) {
            let Some(engine) = self.engines.get(&community) else { continue };
            let Some(p) = engine.proposal_by_message(&message).filter(|p| p.state.is_open()) else { continue };
            let Some(v) = &p.vote else { continue };
            let emoji: Vec<String> = v.spec.reaction_options().into_iter().map(|(e, _)| e).collect();
            let proposal = p.id;
            let pending_removal = self.store.outstanding_effects(community, None).await?.iter().any(|r| {
                matches!(&r.effect, Effect::RemoveReaction { message: m, .. } if *m == message)
                    || matches!(&r.effect, Effect::PostVote { proposal: q, .. } if *q == proposal)
            });
            if pending_removal {
                self.reconciles.retry(community, message, now);
                continue;
            }
            let Some(platform) = self.platform_named(community, message.platform.as_str()) else { continue };
            let read = match platform.read_reactions(&message, &emoji).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(message = %message, error = %e, "cannot read a vote message's reactions");
                    if !matches!(e, PlatformError::Permanent(_)) {
                        self.reconciles.retry(community, message, now);
                    }
                    continue;
                }
            };
            let mut changed = false;
            for (account, name) in read.iter().flat_map(|r| r.users.iter()) {
                changed |= self.admit(community, account, name);
            }
            let reactions = read
                .into_iter()
                .map(|r| ReactionUsers { emoji: r.emoji, accounts: r.users.into_iter().map(|(a, _)| a).collect() })
                .collect();
            let key = format!("{message}:{}", self.reconciles.next_key(now));
            let input = Inbound::Reactions { message: message.clone(), reactions };
            match self.handle(community, "reconcile", &key, input, now, changed).await {
                Ok(_) => {}
                Err(HandleError::Refused(e)) => {
                    tracing::warn!(message = %message, "reconciling refused: {e}");
                }
                Err(HandleError::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Fires the deadlines that are due: each community with a due deadline gets a tick.
    ///
    /// # Errors
    /// When the store fails.
    /// Hands the polls due at `now` to the host, which runs them off the loop; each is due
    /// again one interval later.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn fire_polls(&mut self, now: DateTime<Utc>) -> Result<()> {
        let Some(tx) = &self.connection_tx else {
            return Ok(());
        };
        for due in self.store.take_due_polls(now).await? {
            if tx.send(ConnectionEvent::PollDue(due)).is_err() {
                tracing::debug!("a poll came due after the host stopped listening");
            }
        }
        Ok(())
    }

    pub async fn fire_deadlines(&mut self, now: DateTime<Utc>) -> Result<()> {
        while let Some((community, due)) = self.store.next_deadline().await? {
            if due > now {
                break;
            }
            let key = format!("deadline:{}:{}", community.0, due.timestamp_millis());
            if let Handled::Duplicate = self.handle(community, "scheduler", &key, Inbound::Tick, now, false).await? {
                break;
            }
        }
        Ok(())
    }

    /// When the scheduler must wake next: the next deadline or the next effect retry.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_wake(&self) -> Result<Option<DateTime<Utc>>> {
        let deadline = self.store.next_deadline().await?.map(|(_, at)| at);
        // Polls are run by the host's supervisor: without one, none are kept.
        let poll = match self.connection_tx {
            Some(_) => self.store.next_poll_due().await?,
            None => None,
        };
        // Effects due when the dispatcher last looked were started, or wait for a lane whose
        // effect is in flight (its end wakes the loop): only later ones are a reason to wake.
        let retry = match self.flight.looked_at() {
            Some(at) => self.store.next_effect_after(at).await?,
            None => self.store.next_effect_at().await?,
        };
        let reconcile = self.reconciles.next_due();
        Ok([deadline, poll, retry, reconcile].into_iter().flatten().min())
    }
}

fn engine_has_open_vote(engine: Option<&Engine>, message: &MessageRef) -> bool {
    engine.and_then(|e| e.proposal_by_message(message)).is_some_and(|p| p.state.is_open())
}

/// Vote messages waiting to be read back, and when each was last read.
#[derive(Default)]
struct Reconciles {
    interval: TimeDelta,
    due: HashMap<(CommunityId, MessageRef), DateTime<Utc>>,
    last: HashMap<MessageRef, DateTime<Utc>>,
    seq: u64,
}

impl Reconciles {
    /// Asks for a read of `message`: now if `at_once`, else no sooner than the interval
    /// after the last read.
    fn mark(&mut self, community: CommunityId, message: MessageRef, now: DateTime<Utc>, at_once: bool) {
        let at = match self.last.get(&message) {
            Some(last) if !at_once => (*last + self.interval).max(now),
            _ => now,
        };
        let entry = self.due.entry((community, message)).or_insert(at);
        *entry = (*entry).min(at);
    }

    /// Tries again later: after the interval, and at least a second from now.
    fn retry(&mut self, community: CommunityId, message: MessageRef, now: DateTime<Utc>) {
        let at = now + self.interval.max(TimeDelta::seconds(1));
        self.due.entry((community, message)).or_insert(at);
    }

    fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(CommunityId, MessageRef)> {
        let ready: Vec<_> = self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for k in &ready {
            self.due.remove(k);
            self.last.insert(k.1.clone(), now);
        }
        let interval = self.interval;
        self.last.retain(|_, t| *t + interval > now);
        ready
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.values().min().copied()
    }

    /// A key for one reading: readings are states, not events, so each is new.
    fn next_key(&mut self, now: DateTime<Utc>) -> String {
        self.seq += 1;
        format!("{}:{}", now.timestamp_millis(), self.seq)
    }
}

/// Entropy for jury draws: not predictable from the proposal alone.
fn entropy(now: DateTime<Utc>, key: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(key.as_bytes());
    h.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
    h.finish()
}

/// One input on its way through [`Runtime::step_and_record`].
struct StepInput<'a> {
    source: &'a str,
    dedup_key: &'a str,
    input: Inbound,
    community_changed: bool,
    /// Connections staged in the same transaction.
    staged: Vec<ConnectionChange>,
    /// The outbox row whose result this input records.
    finishes: Option<(i64, serde_json::Value)>,
}

#[derive(Default)]
struct Changes {
    connections: Vec<ConnectionChange>,
    community: bool,
    installed: Vec<polity_governance::PolicyId>,
    removed: Vec<polity_governance::PolicyId>,
}

impl Changes {
    fn merge(&mut self, other: Changes) {
        self.community |= other.community;
        self.connections.extend(other.connections);
        self.installed.extend(other.installed);
        self.removed.extend(other.removed);
    }
}

/// The actions Polity itself offers policies: posting, and the changes to governance it
/// carries out (see [`apply_governance_change`]).
pub fn polity_actions() -> Vec<ActionInfo> {
    use polity_governance::platform::ActionKind::{Action as Act, Governable};
    let mut all = vec![
        ActionInfo::new(
            "message",
            Act,
            "post where the vote was held",
            &[("text", "what to say"), ("on", "PLATFORM:CHANNEL, optional")],
        ),
        ActionInfo::new(
            "polity.propose",
            Governable,
            "a plain proposal (/propose)",
            &[("text", "the proposal"), ("policy", "optional")],
        ),
    ];
    all.extend(ChangeKind::ALL.into_iter().map(ChangeKind::info));
    all
}

/// `input` with every NUL character in its text replaced by U+FFFD: valid UTF-8, but no
/// database keeps it in text (PostgreSQL refuses it), and no member means it.
fn without_nul(input: Inbound) -> Inbound {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(map) => {
                let keys: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
                for k in keys {
                    if let Some(value) = map.remove(&k) {
                        map.insert(k.replace('\0', "\u{FFFD}"), value);
                    }
                }
                map.values_mut().for_each(clean);
            }
            _ => {}
        }
    }
    // serde_json writes a NUL in a string as `\u0000`: most inputs have none.
    match serde_json::to_string(&input) {
        Ok(text) if text.contains("\\u0000") => {}
        _ => return input,
    }
    let Ok(mut value) = serde_json::to_value(&input) else { return input };
    clean(&mut value);
    serde_json::from_value(value).unwrap_or(input)
}

/// Carries out a change to governance itself (a `polity.*` action that was allowed or
/// passed), on the engine's state; the caller records it in the same transaction.
fn apply_governance_change(engine: &mut Engine, action: &Action) -> Result<Changes> {
    let mut changes = Changes::default();
    let initiator = engine.community.member_by_account(&action.initiator).map(|m| m.id);
    let member_named = |engine: &Engine, name: &str| -> Result<MemberId> {
        engine.community.member_by_name(name).map(|m| m.id).ok_or_else(|| anyhow!("there is no member named {name}"))
    };
    match GovernanceChange::from_action(action).map_err(|e| anyhow!(e))? {
        GovernanceChange::RoleCreate { role, description } => {
            engine.community.create_role(&role, &description)?;
            changes.community = true;
        }
        GovernanceChange::RoleDelete { role } => {
            engine.community.roles.remove(&role).ok_or_else(|| anyhow!("there is no role {role}"))?;
            for m in engine.community.members.values_mut() {
                m.roles.remove(&role);
            }
            changes.community = true;
        }
        GovernanceChange::RoleGrant { role, member } => {
            let member = member_named(engine, &member)?;
            engine.community.grant_role(member, &role)?;
            changes.community = true;
        }
        GovernanceChange::RoleRevoke { role, member } => {
            let member = member_named(engine, &member)?;
            engine.community.revoke_role(member, &role)?;
            changes.community = true;
        }
        GovernanceChange::RoleRequest { role } => {
            let member = initiator.ok_or_else(|| anyhow!("the requester is not a member"))?;
            engine.community.grant_role(member, &role)?;
            changes.community = true;
        }
        GovernanceChange::PermissionGrant { role, permission, actions } => {
            let permission = Permission::parse(&permission).map_err(|e| anyhow!(e))?;
            let pattern = ActionPattern::new(&actions).map_err(|e| anyhow!(e))?;
            engine.community.grant_permission(&role, permission, pattern)?;
            changes.community = true;
        }
        GovernanceChange::PermissionRevoke { role, permission, actions } => {
            let permission = Permission::parse(&permission).map_err(|e| anyhow!(e))?;
            let pattern = ActionPattern::new(&actions).map_err(|e| anyhow!(e))?;
            engine.community.revoke_permission(&role, permission, &pattern)?;
            changes.community = true;
        }
        GovernanceChange::PolicyInstall { source } => {
            let installed = engine.install_policy(&source).map_err(GovError::from)?;
            changes.installed.push(installed.id);
        }
        GovernanceChange::PolicyRemove { name } => {
            changes.removed.push(engine.remove_policy(&name)?);
        }
        GovernanceChange::IntegrationAdd { name, .. } => changes.connections.push(ConnectionChange::Enable(name)),
        GovernanceChange::IntegrationRemove { name } => changes.connections.push(ConnectionChange::Remove(name)),
        GovernanceChange::KitInstall { kit } => {
            let kit = kits::starter_kit(&kit)?;
            changes.installed = engine.install_kit(&kit, initiator)?;
            changes.community = true;
        }
    }
    Ok(changes)
}

/// A governance change requested by a member (a command that changes governance).
pub fn request(kind: &str, initiator: AccountRef, place: polity_governance::Place, id: &str) -> Result<Action> {
    let kind = polity_governance::ActionType::new(kind).map_err(|e| anyhow!(e))?;
    let mut a = Action::new(kind, initiator, id).at(place);
    a.status = ActionStatus::Requested;
    Ok(a)
}

/// The time to sleep until `at`, from `now` (zero when it has passed).
pub fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}
