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

mod changes;
mod dispatch;
mod host;
mod intake;
mod reconcile;
mod schedule;

use changes::apply_governance_change;
pub use changes::{polity_actions, request};
pub use dispatch::{DEFAULT_TIMEOUT, Finished};
use intake::{Changes, StepInput};
use reconcile::{Reconciles, engine_has_open_vote};
pub use schedule::until;

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
    /// The community's connections by the platform they are of (`opencollective` -> `oc`):
    /// a policy's `opencollective.process_expense` goes to the community's Open Collective
    /// connection whatever it was named.
    community_kinds: HashMap<(CommunityId, String), String>,
    /// The platform of each of the communities' own connections, by community and name.
    connection_kinds: HashMap<(CommunityId, String), &'static str>,
    edits: dispatch::EditPacing,
    /// The effects being performed.
    flight: dispatch::Flight,
    reconciles: Reconciles,
    /// Open proposals whose decision process a platform runs, and when it is read next.
    process_reads: HashMap<(CommunityId, ProposalId), DateTime<Utc>>,
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
    /// Communities with an open proposal whose check reads the clock or the host's data, and
    /// when they are re-checked next (a tick every [`RECHECK_EVERY`]; due at once after a
    /// load).
    rechecks: HashMap<CommunityId, DateTime<Utc>>,
    /// What communities' connections know of members (SourceCred's cred).
    cred_sources: host::CredSources,
}

/// The inbox key prefix of the scheduler's re-checks.
pub(crate) const RECHECK_KEY: &str = "recheck:";

/// How often a check that reads the clock or the host's data is run again.
pub const RECHECK_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

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

/// How many communities a start reads at once on PostgreSQL.
const LOAD_AT_ONCE: usize = 4;
/// How many communities a start reads together. Measured with 1,001 communities and 10,000
/// open proposals on SQLite: 200 at a time started in 1.6-2.4 s but kept 114 MiB (the rows
/// read leave the heap fragmented), 25 start in 2.1-2.4 s with 93 MiB (one at a time: 3.9-4.5 s,
/// 90 MiB).
const LOAD_CHUNK: usize = 25;
/// How many communities a start reads together on SQLite, whose round trips stay in the
/// process: fewer rows in flight leave fewer holes in the heap. Measured as above, read
/// through one snapshot: 50 at a time kept 64.7 MiB, 25 kept 64.3-64.4, 10 kept 62.8-62.9
/// (ready in 0.9-1.1 s), 5 kept 62.1.
const SQLITE_LOAD_CHUNK: usize = 10;

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
            community_kinds: HashMap::new(),
            connection_kinds: HashMap::new(),
            edits: dispatch::EditPacing::default(),
            flight: dispatch::Flight::default(),
            reconciles: Reconciles::default(),
            process_reads: HashMap::new(),
            invites: HashMap::new(),
            awaited: std::collections::HashSet::new(),
            fallback: None,
            link_failures: HashMap::new(),
            registry: Registry::default(),
            connection_events: Vec::new(),
            connection_tx: None,
            rechecks: HashMap::new(),
            cred_sources: host::CredSources::default(),
        };
        // Communities are read a chunk at a time, each chunk in a dozen queries (one per
        // table, not one per table and community: a start with a thousand communities made
        // some eleven thousand round trips); on PostgreSQL several chunks at once, so that
        // their round trips overlap. Each community is set up in memory as its chunk arrives.
        let at_once = if rt.store.backend_name() == "postgres" { LOAD_AT_ONCE } else { 1 };
        let ids: Vec<CommunityId> = rt.store.communities().await?.into_iter().map(|(id, _)| id).collect();
        if at_once == 1 {
            // SQLite: one read of the whole store, on one connection (see `Store::snapshot`).
            let snapshot = rt.store.snapshot().await?;
            for chunk in ids.chunks(SQLITE_LOAD_CHUNK) {
                for state in rt.store.load_states_in(&snapshot, chunk).await? {
                    rt.install(state.community.id, state)?;
                }
            }
            return Ok(rt);
        }
        let mut chunks = ids.chunks(LOAD_CHUNK).map(<[CommunityId]>::to_vec);
        let mut reads = tokio::task::JoinSet::new();
        loop {
            while reads.len() < at_once {
                let Some(chunk) = chunks.next() else { break };
                let store = rt.store.clone();
                reads.spawn(async move { store.load_states(&chunk).await });
            }
            let Some(read) = reads.join_next().await else { break };
            for state in read.map_err(|e| anyhow!("reading communities failed: {e}"))?? {
                rt.install(state.community.id, state)?;
            }
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
        self.community_kinds.retain(|(c, _), n| !(*c == community && n == name));
        self.connection_kinds.remove(&(community, name.to_string()));
    }

    /// Lets `community`'s scripts read what its connection `name` knows of members.
    pub fn add_cred_source(
        &mut self,
        community: CommunityId,
        name: &str,
        source: Arc<dyn polity_governance::script::CredSource>,
    ) {
        self.cred_sources.add(community, name, source);
    }

    /// Forgets what `community`'s connection `name` knew of members (it stopped).
    pub fn remove_cred_source(&mut self, community: CommunityId, name: &str) {
        self.cred_sources.remove(community, name);
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
    pub fn add_community_platform(&mut self, community: CommunityId, kind: &str, platform: Arc<dyn Platform>) {
        if kind != platform.name() {
            self.community_kinds.insert((community, kind.to_string()), platform.name().to_string());
        }
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
        let stored = self.store.load_states(&[id]).await?.pop();
        let stored = stored.ok_or(crate::store::StoreError::UnknownCommunity(id))?;
        self.install(id, stored)
    }

    /// Sets up a community in memory from what was read of it.
    fn install(&mut self, id: CommunityId, stored: crate::store::CommunityState) -> Result<()> {
        // Memory is rebuilt from the store: so is what the store knows it wrote.
        self.store.forget_written(id);
        let crate::store::CommunityState { community, policies, proposals, last } = stored;
        let mut engine = Engine::new(community, self.sandbox.clone());
        for p in policies {
            engine
                .restore_policy(p.id, &p.source, p.active)
                .map_err(|e| anyhow!("stored policy \"{}\" version {} no longer compiles:\n{e}", p.name, p.version))?;
        }
        for p in proposals {
            engine.restore_proposal(p);
        }
        if let Some(last) = last {
            engine.numbered_after(last);
        }
        // Processes still running are read as soon as the loop runs.
        self.process_reads.retain(|(c, _), _| *c != id);
        for p in engine.proposals().filter(|p| p.state.is_open()) {
            if p.process.as_ref().is_some_and(|pr| pr.status != "closed") {
                self.process_reads.insert((id, p.id), DateTime::<Utc>::MIN_UTC);
            }
        }
        // Re-checked as soon as the loop runs: the clock moved while they were not in memory.
        if engine.has_rechecks() {
            self.rechecks.insert(id, DateTime::<Utc>::MIN_UTC);
        } else {
            self.rechecks.remove(&id);
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
    ) -> Option<(polity_governance::ProposalState, String, Option<String>)> {
        let p = self.engines.get(&community)?.proposal(id)?;
        Some((p.state, p.policy_name.clone(), p.nobody_may_vote()))
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

    /// Links `account`, today a member of its own (`gone`, admitted when it first took part on
    /// its platform), to `member` (a confirmed one-time code): the two are one person, so
    /// `gone` is merged into `member`, with its accounts, roles and place in open votes.
    /// Recorded with an audit line, the community and the changed proposals in one step.
    ///
    /// # Errors
    /// When either is not a member or the store fails.
    pub async fn merge_member(
        &mut self,
        community: CommunityId,
        member: MemberId,
        gone: MemberId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let engine = self.engines.get_mut(&community).ok_or_else(|| anyhow!("no community {community}"))?;
        let changed = engine.merge_members(member, gone)?;
        let kind = polity_governance::ActionType::new("polity.link_account").map_err(|e| anyhow!(e))?;
        let engine = self.engines.get(&community).ok_or_else(|| anyhow!("no community {community}"))?;
        let proposals: Vec<&polity_governance::Proposal> =
            changed.iter().filter_map(|id| engine.proposal(*id)).collect();
        let audit = [Audit::Applied { proposal: None, action: kind }];
        let rec = StepRecord {
            community_state: Some(&engine.community),
            proposals,
            audit: &audit,
            ..StepRecord::new(community, now)
        };
        if let Err(e) = self.store.record_step(rec).await {
            self.load(community).await?;
            return Err(e.into());
        }
        tracing::info!(community = %community, member = %member, merged = %gone, "accounts linked: members merged");
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
                    Effect::Notify { account, text, .. } => format!("tell {account}: {text}"),
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

    /// The connection that acts on platform `name` for `community`: its own, the shared one
    /// of that name, or the fallback (the console, standing in for every platform).
    fn platform_named(&self, community: CommunityId, name: &str) -> Option<Arc<dyn Platform>> {
        self.community_platforms
            .get(&(community, name.to_string()))
            .or_else(|| {
                let connection = self.community_kinds.get(&(community, name.to_string()))?;
                self.community_platforms.get(&(community, connection.clone()))
            })
            .or_else(|| self.platforms.get(name))
            .cloned()
            .or_else(|| self.fallback.clone())
    }

    /// The platform a connection name of `community` is of, as a metrics label: a
    /// community's own connection (`guild`) by its platform (`discord`), so the number of
    /// series never grows with the communities; any other name as it is.
    pub(crate) fn platform_label<'a>(&'a self, community: CommunityId, name: &'a str) -> &'a str {
        if let Some(kind) = self.connection_kinds.get(&(community, name.to_string())) {
            return kind;
        }
        self.community_kinds
            .iter()
            .find(|((c, _), connection)| *c == community && connection.as_str() == name)
            .map_or(name, |((_, kind), _)| kind.as_str())
    }

    /// A community's own connection `name` is of platform `kind` (for the labels of its
    /// inputs and effects), from when it starts.
    pub fn add_connection_kind(&mut self, community: CommunityId, name: &str, kind: &'static str) {
        self.connection_kinds.insert((community, name.to_string()), kind);
    }

    /// The platform an inbox source's inputs came from, as a metrics label: `discord:GUILD`
    /// is `discord`, and a community's own connection (`3.guild:GUILD`) its platform's name.
    pub fn source_platform<'a>(&'a self, source: &'a str) -> &'a str {
        let label = metrics::platform_of_source(source);
        match label.split_once('.').map(|(c, name)| (c.parse::<i64>(), name)) {
            Some((Ok(c), name)) => self.platform_label(CommunityId(c), name),
            _ => label,
        }
    }

    fn can_read_reactions(&self, community: CommunityId, message: &MessageRef) -> bool {
        self.platform_named(community, message.platform.as_str()).is_some_and(|p| p.capabilities().read_reactions)
    }
}

/// The platform each of `community`'s connections is of, by connection name (`guild` ->
/// `discord`), for those whose name is not their platform's (`kinds`: the runtime's
/// `community_kinds`). Asked for only by a step that needs it.
fn connection_kinds(kinds: &HashMap<(CommunityId, String), String>, community: CommunityId) -> HashMap<String, String> {
    kinds.iter().filter(|((c, _), _)| *c == community).map(|((_, kind), name)| (name.clone(), kind.clone())).collect()
}
