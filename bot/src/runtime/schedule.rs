//! What the serving loop wakes for: deadlines, polls, effects due, reads due.

use super::*;

impl Runtime {
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

    /// Fires the deadlines that are due: each community with a due deadline gets a tick.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn fire_deadlines(&mut self, now: DateTime<Utc>) -> Result<()> {
        while let Some((community, due)) = self.store.next_deadline().await? {
            if due > now {
                break;
            }
            // A vote on a platform that sends no event for a reaction is read at its close.
            self.reconcile_closing(community, now).await?;
            let key = format!("deadline:{}:{}", community.0, due.timestamp_millis());
            if let Handled::Duplicate = self.handle(community, "scheduler", &key, Inbound::Tick, now, false).await? {
                break;
            }
        }
        self.fire_rechecks(now).await
    }

    /// Ticks the communities whose clock-reading checks are due to run again, and keeps them
    /// on the schedule while they have such proposals open.
    async fn fire_rechecks(&mut self, now: DateTime<Utc>) -> Result<()> {
        let due: Vec<(CommunityId, DateTime<Utc>)> =
            self.rechecks.iter().filter(|(_, at)| **at <= now).map(|(c, at)| (*c, *at)).collect();
        for (community, at) in due {
            self.rechecks.remove(&community);
            let key = format!("{RECHECK_KEY}{}:{}", community.0, now.timestamp_millis().max(at.timestamp_millis()));
            match self.handle(community, "scheduler", &key, Inbound::Tick, now, false).await {
                Ok(_) | Err(HandleError::Refused(_)) => {}
                Err(HandleError::Failed(e)) => return Err(e),
            }
            if self.engines.get(&community).is_some_and(Engine::has_rechecks) {
                self.rechecks.entry(community).or_insert(now + RECHECK_EVERY);
            }
        }
        Ok(())
    }

    /// Puts a community on the re-check schedule when a proposal of this step needs it.
    pub(super) fn schedule_rechecks(
        &mut self,
        community: CommunityId,
        changed: &std::collections::BTreeSet<ProposalId>,
        now: DateTime<Utc>,
    ) {
        if self.rechecks.contains_key(&community) {
            return;
        }
        if let Some(engine) = self.engines.get(&community)
            && changed.iter().any(|id| engine.rechecked(*id))
        {
            self.rechecks.insert(community, now + RECHECK_EVERY);
        }
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
        let recheck = self.rechecks.values().min().copied();
        let process = self.next_process_read();
        Ok([deadline, poll, retry, reconcile, recheck, process].into_iter().flatten().min())
    }
}

/// The time to sleep until `at`, from `now` (zero when it has passed).
pub fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (at - now).to_std().unwrap_or(Duration::ZERO)
}
