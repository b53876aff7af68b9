//! Reconciliation: vote messages read back from their platform (after a start, a reconnect,
//! reaction activity) and handed to the engine as a snapshot of who reacted.

use super::*;

impl Runtime {
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
            self.reconcile_one(community, message, now).await?;
        }
        self.read_processes_due(now).await
    }

    /// Reads a platform's decision process at `at`.
    pub(super) fn read_process_later(&mut self, community: CommunityId, proposal: ProposalId, at: DateTime<Utc>) {
        self.process_reads.insert((community, proposal), at);
    }

    /// An event naming a running decision process (its data's `process_hint` equal to the
    /// process's `hint`, on the platform that runs it: a Loomio poll closed, a Discourse poll's
    /// post edited) has it read now. The event is only a hint: what decides is what the
    /// platform's API answers when the process is read.
    pub(super) fn read_hinted_process(&mut self, community: CommunityId, action: &Action, now: DateTime<Utc>) {
        let Some(hint) = action.data.get("process_hint").and_then(serde_json::Value::as_str) else { return };
        let Some(engine) = self.engines.get(&community) else { return };
        let platform = action.kind.platform();
        let hinted: Vec<ProposalId> = engine
            .proposals()
            .filter(|p| p.state.is_open())
            .filter(|p| {
                p.process.as_ref().is_some_and(|pr| {
                    pr.status != "closed"
                        && pr.outcome.get("hint").and_then(serde_json::Value::as_str) == Some(hint)
                        && pr
                            .outcome
                            .get("process")
                            .and_then(serde_json::Value::as_str)
                            .and_then(|name| name.split_once('.'))
                            .is_some_and(|(kind, _)| kind == platform)
                })
            })
            .map(|p| p.id)
            .collect();
        for proposal in hinted {
            tracing::debug!(%proposal, "an event hints that a decision process changed");
            self.process_reads.insert((community, proposal), now);
        }
    }

    /// When the next decision process is read.
    pub(super) fn next_process_read(&self) -> Option<DateTime<Utc>> {
        self.process_reads.values().min().copied()
    }

    /// Reads the decision processes due (a Discourse poll Polity started), and steps what
    /// changed as a `ProcessUpdate`; one still open is read again after its platform's
    /// interval (a minute unless it says).
    async fn read_processes_due(&mut self, now: DateTime<Utc>) -> Result<()> {
        let due: Vec<(CommunityId, ProposalId)> =
            self.process_reads.iter().filter(|(_, at)| **at <= now).map(|(k, _)| *k).collect();
        for (community, proposal) in due {
            tracing::debug!(%proposal, "reading a decision process");
            self.process_reads.remove(&(community, proposal));
            let Some(engine) = self.engines.get(&community) else { continue };
            let Some(p) = engine.proposal(proposal).filter(|p| p.state.is_open()) else { continue };
            let Some(process) = p.process.clone().filter(|pr| pr.status != "closed") else { continue };
            let Some(name) = process.outcome.get("process").and_then(serde_json::Value::as_str).map(str::to_string)
            else {
                continue;
            };
            let kind = name.split_once('.').map_or(name.as_str(), |(k, _)| k);
            // The connection that started it, where the outcome names it (a community may
            // have two of one platform), else the platform's.
            let started_by = process.outcome.get("connection").and_then(serde_json::Value::as_str);
            let Some(platform) = started_by
                .and_then(|c| self.community_platforms.get(&(community, c.to_string())).cloned())
                .or_else(|| self.platform_named(community, kind))
            else {
                continue;
            };
            let every = platform.capabilities().process_polled.unwrap_or(Duration::from_secs(60));
            let next = next_process_read(&process.outcome, now, every);
            match bounded(self.flight.limit(&*platform), platform.read_process(&process.outcome)).await {
                Ok((status, outcome)) => {
                    let closed = status == "closed";
                    if status != process.status || outcome != process.outcome {
                        let key = format!("process:{}:{}", proposal.0, self.reconciles.next_key(now));
                        let input = Inbound::ProcessUpdate { proposal, status, outcome };
                        match self.handle(community, "process", &key, input, now, false).await {
                            Ok(_) => {}
                            Err(HandleError::Refused(e)) => tracing::warn!(%proposal, "a process's news refused: {e}"),
                            Err(HandleError::Failed(e)) => return Err(e),
                        }
                    }
                    if !closed {
                        self.process_reads.insert((community, proposal), next);
                    }
                }
                Err(e) => {
                    tracing::warn!(%proposal, process = name, "cannot read a decision process: {e}");
                    // A refusal may end (a key replaced, a permission given back): read again,
                    // less often. The proposal's deadline, if it has one, decides meanwhile.
                    let again = match e {
                        PlatformError::Permanent(_) => now + TimeDelta::minutes(15),
                        _ => next,
                    };
                    self.process_reads.insert((community, proposal), again);
                }
            }
        }
        Ok(())
    }

    /// Reads back the open votes of `community` that close by `now` on platforms that send no
    /// event for a reaction (GitHub), so their deadline counts every reaction.
    pub(super) async fn reconcile_closing(&mut self, community: CommunityId, now: DateTime<Utc>) -> Result<()> {
        let Some(engine) = self.engines.get(&community) else { return Ok(()) };
        let closing: Vec<MessageRef> = engine
            .proposals()
            .filter(|p| p.state.is_open() && p.closes_at.is_some_and(|at| at <= now))
            .filter_map(|p| p.vote.as_ref())
            .flat_map(|v| v.messages.iter().cloned())
            .collect();
        for message in closing {
            let polled = self
                .platform_named(community, message.platform.as_str())
                .is_some_and(|p| p.capabilities().reactions_polled.is_some());
            if polled {
                self.reconcile_one(community, message, now).await?;
            }
        }
        Ok(())
    }

    /// Reads one vote message's reactions and hands them to the engine; on a platform that
    /// sends no event for a reaction, it is read again after the platform's interval.
    async fn reconcile_one(&mut self, community: CommunityId, message: MessageRef, now: DateTime<Utc>) -> Result<()> {
        let Some(engine) = self.engines.get(&community) else { return Ok(()) };
        let Some(p) = engine.proposal_by_message(&message).filter(|p| p.state.is_open()) else { return Ok(()) };
        let Some(v) = &p.vote else { return Ok(()) };
        let emoji: Vec<String> = v.spec.reaction_options().into_iter().map(|(e, _)| e).collect();
        let proposal = p.id;
        let pending_removal = self.store.outstanding_effects(community, None).await?.iter().any(|r| {
            matches!(&r.effect, Effect::RemoveReaction { message: m, .. } if *m == message)
                || matches!(&r.effect, Effect::PostVote { proposal: q, .. } if *q == proposal)
        });
        if pending_removal {
            self.reconciles.retry(community, message, now);
            return Ok(());
        }
        let Some(platform) = self.platform_named(community, message.platform.as_str()) else { return Ok(()) };
        if let Some(every) = platform.capabilities().reactions_polled {
            let next = now + TimeDelta::from_std(every).unwrap_or(TimeDelta::minutes(1));
            self.reconciles.due.entry((community, message.clone())).or_insert(next);
        }
        let read = match bounded(self.flight.limit(&*platform), platform.read_reactions(&message, &emoji)).await {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(message = %message, error = %e, "cannot read a vote message's reactions");
                if !matches!(e, PlatformError::Permanent(_)) {
                    self.reconciles.retry(community, message, now);
                }
                return Ok(());
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
        let superseded_kept = !platform.capabilities().remove_others_reactions;
        let input = Inbound::Reactions { message: message.clone(), reactions, superseded_kept };
        match self.handle(community, "reconcile", &key, input, now, changed).await {
            Ok(_) => {}
            Err(HandleError::Refused(e)) => {
                tracing::warn!(message = %message, "reconciling refused: {e}");
            }
            Err(HandleError::Failed(e)) => return Err(e),
        }
        Ok(())
    }
}

/// A read within its time limit, so one that never ends cannot hold the loop: one that did
/// not answer in time is a temporary failure, tried again later.
async fn bounded<T>(
    limit: Duration,
    read: impl std::future::Future<Output = Result<T, PlatformError>>,
) -> Result<T, PlatformError> {
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(PlatformError::Transient(format!("no answer within {} ms", limit.as_millis()))))
}

pub(super) fn engine_has_open_vote(engine: Option<&Engine>, message: &MessageRef) -> bool {
    engine.and_then(|e| e.proposal_by_message(message)).is_some_and(|p| p.state.is_open())
}

/// Vote messages waiting to be read back, and when each was last read.
#[derive(Default)]
pub(super) struct Reconciles {
    pub(super) interval: TimeDelta,
    pub(super) due: HashMap<(CommunityId, MessageRef), DateTime<Utc>>,
    pub(super) last: HashMap<MessageRef, DateTime<Utc>>,
    pub(super) seq: u64,
}

impl Reconciles {
    /// Asks for a read of `message`: now if `at_once`, else no sooner than the interval
    /// after the last read.
    pub(super) fn mark(&mut self, community: CommunityId, message: MessageRef, now: DateTime<Utc>, at_once: bool) {
        let at = match self.last.get(&message) {
            Some(last) if !at_once => (*last + self.interval).max(now),
            _ => now,
        };
        let entry = self.due.entry((community, message)).or_insert(at);
        *entry = (*entry).min(at);
    }

    /// Tries again later: after the interval, and at least a second from now.
    pub(super) fn retry(&mut self, community: CommunityId, message: MessageRef, now: DateTime<Utc>) {
        let at = now + self.interval.max(TimeDelta::seconds(1));
        self.due.entry((community, message)).or_insert(at);
    }

    pub(super) fn take_due(&mut self, now: DateTime<Utc>) -> Vec<(CommunityId, MessageRef)> {
        let ready: Vec<_> = self.due.iter().filter(|(_, at)| **at <= now).map(|(k, _)| k.clone()).collect();
        for k in &ready {
            self.due.remove(k);
            self.last.insert(k.1.clone(), now);
        }
        let interval = self.interval;
        self.last.retain(|_, t| *t + interval > now);
        ready
    }

    pub(super) fn next_due(&self) -> Option<DateTime<Utc>> {
        self.due.values().min().copied()
    }

    /// A key for one reading: readings are states, not events, so each is new.
    pub(super) fn next_key(&mut self, now: DateTime<Utc>) -> String {
        self.seq += 1;
        format!("{}:{}", now.timestamp_millis(), self.seq)
    }
}

/// When a running process is read next: after its platform's interval, or at its closing
/// time (`closes_at` in its outcome, RFC 3339) if that comes first, so its result is read as
/// soon as it is final.
fn next_process_read(outcome: &serde_json::Value, now: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let next = now + TimeDelta::from_std(every).unwrap_or(TimeDelta::minutes(1));
    let closes = outcome
        .get("closes_at")
        .and_then(serde_json::Value::as_str)
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|at| at.with_timezone(&Utc) + TimeDelta::seconds(1));
    match closes {
        Some(at) if at > now && at < next => at,
        _ => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_read_at_its_close_when_that_comes_before_its_interval() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z").unwrap().with_timezone(&Utc);
        let every = Duration::from_secs(300);
        let closing = serde_json::json!({ "closes_at": "2026-12-03T10:02:00.000Z" });
        assert_eq!(next_process_read(&closing, now, every), now + TimeDelta::seconds(121));
        let later = serde_json::json!({ "closes_at": "2026-12-03T11:00:00Z" });
        assert_eq!(next_process_read(&later, now, every), now + TimeDelta::seconds(300));
        let closed = serde_json::json!({ "closes_at": "2026-12-03T09:00:00Z" });
        assert_eq!(next_process_read(&closed, now, every), now + TimeDelta::seconds(300));
        let unreadable = serde_json::json!({ "closes_at": "soon" });
        assert_eq!(next_process_read(&unreadable, now, every), now + TimeDelta::seconds(300));
    }
}
