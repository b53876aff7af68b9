//! Intake and step: an input deduplicated, stepped by its community's engine, the changes to
//! governance it carries applied, and everything recorded in one transaction (alone, or with
//! the inputs beside it: group commit).

use super::*;

impl Runtime {
    /// Handles one input: deduplicated by `(source, dedup_key)`, applied to the engine, and
    /// recorded with its effects in one transaction.
    ///
    /// # Errors
    /// A user mistake comes back as [`HandleError::Refused`] (nothing of the input is
    /// recorded); a store failure as [`HandleError::Failed`], after the community is reloaded
    /// from the store, so memory never runs ahead of what was recorded.
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
        let input = StepInput { source, dedup_key, input, community_changed, staged, finishes: None, checked: false };
        self.step_and_record(community, input, now).await
    }

    /// The one path for one input: dedup, engine step, governance changes applied, one
    /// transaction.
    pub(super) async fn step_and_record(
        &mut self,
        community: CommunityId,
        input: StepInput<'_>,
        now: DateTime<Utc>,
    ) -> Result<Handled, HandleError> {
        // Most duplicates are dropped here, without taking the write lock a batch takes.
        if self.store.seen(input.source, input.dedup_key).await? {
            tracing::debug!(source = input.source, dedup_key = input.dedup_key, "duplicate input dropped");
            metrics::input_duplicate(self.source_platform(input.source));
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
                metrics::input_handled(self.source_platform(source));
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
                    metrics::input_duplicate(self.source_platform(source));
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
        // Which inputs were recorded before, asked once for the whole batch; the ones this
        // batch records join them as it goes.
        let keys: Vec<(&str, &str)> = deliveries.iter().map(|d| (d.source.as_str(), d.dedup_key.as_str())).collect();
        let mut seen = self.store.seen_many_in(&batch, &keys).await?;
        let mut touched = std::collections::BTreeSet::new();
        let mut outcomes = Vec::with_capacity(deliveries.len());
        let mut reload = false;
        for d in deliveries {
            touched.insert(d.community);
            if !seen.insert((d.source.clone(), d.dedup_key.clone())) {
                tracing::debug!(source = d.source, dedup_key = d.dedup_key, "duplicate input dropped");
                metrics::input_duplicate(self.source_platform(&d.source));
                outcomes.push((Ok(Handled::Duplicate), d.community));
                continue;
            }
            let changed = d.from.as_ref().is_some_and(|(account, name)| self.admit(d.community, account, name));
            let input = StepInput {
                source: &d.source,
                dedup_key: &d.dedup_key,
                input: d.input,
                community_changed: changed,
                staged: Vec::new(),
                finishes: None,
                checked: true,
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
                Ok(Handled::Done(_)) => metrics::input_handled(self.source_platform(&d.source)),
                Ok(Handled::Duplicate) => metrics::input_duplicate(self.source_platform(&d.source)),
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
    pub(super) async fn closed_or(&self, community: CommunityId, e: GovError) -> GovError {
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
    pub(super) async fn step_in(
        &mut self,
        batch: &Batch,
        community: CommunityId,
        input: StepInput<'_>,
        now: DateTime<Utc>,
        reload: &mut bool,
    ) -> Result<Handled, HandleError> {
        let StepInput { source, dedup_key, input, community_changed, staged, finishes, checked } = input;
        let input = without_nul(input);
        let received = std::time::Instant::now();
        if !checked && self.store.seen_in(batch, source, dedup_key).await? {
            tracing::debug!(source, dedup_key, "duplicate input dropped");
            return Ok(Handled::Duplicate);
        }
        if let Inbound::Action { action } = &input {
            self.read_hinted_process(community, action, now);
        }
        let payload = serde_json::to_value(&input)?;
        let reacted = match &input {
            Inbound::Reaction { message, .. } => Some(message.clone()),
            _ => None,
        };
        let Some(engine) = self.engines.get_mut(&community) else {
            return Err(HandleError::Failed(anyhow!("no community {community}")));
        };
        let host: Arc<dyn HostData> = match host::CommunityHost::for_step(engine, &self.cred_sources, || {
            connection_kinds(&self.community_kinds, community)
        }) {
            Some(data) => Arc::new(data),
            None => self.host.clone(),
        };
        let ctx = Ctx { now, seed: entropy(now, dedup_key), host };
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
        // A scheduled re-check that decided nothing, changed nothing and said nothing leaves
        // no trace: one a minute would otherwise fill the inbox.
        if source == "scheduler"
            && dedup_key.starts_with(RECHECK_KEY)
            && step.effects.is_empty()
            && step.changed.is_empty()
            && step.audit.is_empty()
            && !community_changed
        {
            return Ok(Handled::Done(step));
        }
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
        let kinds =
            if internal.is_empty() { HashMap::new() } else { connection_kinds(&self.community_kinds, community) };
        for effect in &internal {
            if let Effect::Execute { action, proposal } = effect {
                match apply_governance_change(engine, action, &kinds) {
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
        step.effects.append(&mut changes.effects);
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
            // Not recorded before: checked above, or by the batch, in this transaction.
            inbox: Some(InboxEntry { source: source.into(), dedup_key: dedup_key.into(), payload, checked: true }),
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
                // A proposal whose check reads the clock is re-checked on a schedule (a
                // rolled back batch leaves at most an extra tick).
                self.schedule_rechecks(community, &step.changed, now);
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
}

/// Entropy for jury draws: not predictable from the proposal alone.
pub(super) fn entropy(now: DateTime<Utc>, key: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(key.as_bytes());
    h.write_i64(now.timestamp_nanos_opt().unwrap_or_default());
    h.finish()
}

/// One input on its way through [`Runtime::step_and_record`].
pub(super) struct StepInput<'a> {
    pub(super) source: &'a str,
    pub(super) dedup_key: &'a str,
    pub(super) input: Inbound,
    pub(super) community_changed: bool,
    /// Connections staged in the same transaction.
    pub(super) staged: Vec<ConnectionChange>,
    /// The outbox row whose result this input records.
    pub(super) finishes: Option<(i64, serde_json::Value)>,
    /// The caller has checked, inside the same transaction, that the input is not
    /// recorded yet (a batch asks once for all its inputs).
    pub(super) checked: bool,
}

#[derive(Default)]
pub(super) struct Changes {
    pub(super) connections: Vec<ConnectionChange>,
    pub(super) community: bool,
    pub(super) installed: Vec<polity_governance::PolicyId>,
    pub(super) removed: Vec<polity_governance::PolicyId>,
    /// Platform calls a change implies (a bound role granted on its platform).
    pub(super) effects: Vec<Effect>,
}

impl Changes {
    pub(super) fn merge(&mut self, other: Changes) {
        self.community |= other.community;
        self.connections.extend(other.connections);
        self.installed.extend(other.installed);
        self.removed.extend(other.removed);
        self.effects.extend(other.effects);
    }
}

/// `input` with every NUL character in its text replaced by U+FFFD: valid UTF-8, but no
/// database keeps it in text (PostgreSQL refuses it), and no member means it.
pub(super) fn without_nul(input: Inbound) -> Inbound {
    pub(super) fn clean(v: &mut serde_json::Value) {
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
