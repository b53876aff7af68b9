//! The store writes only what a step changed ([`super::shadow`]), and what it reads back is
//! still exactly the engine's proposal: after ballots cast, changed and withdrawn, after a
//! rolled back transaction or savepoint, and after rows changed behind its back.

use super::{Batch, InboxEntry, Recorded, StepRecord, Store, vote_messages_of};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::engine::{Ctx, Engine};
use polity_governance::script::Sandbox;
use polity_governance::{AccountRef, Community, CommunityId, Inbound, MessageRef, Place, Proposal, ProposalId};
use sea_orm::ConnectionTrait;
use std::sync::Arc;

const POLICY: &str = r#"
name = "Majority"
kind = "platform"
[vote]
quorum = 2
pass = "majority"
closes = "24h"
early = false
"#;

fn account(name: &str) -> AccountRef {
    AccountRef::new("console", name)
}

fn message(p: ProposalId) -> MessageRef {
    MessageRef::new("console", "#general", format!("vote-{}", p.0))
}

struct World {
    store: Store,
    engine: Engine,
    now: DateTime<Utc>,
    seq: u64,
}

impl World {
    async fn new() -> Self {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let mut c = Community::new(CommunityId(1), "one");
        c.add_member("admin", account("admin"), true).unwrap();
        for m in ["ann", "bob", "cy", "dee"] {
            c.add_member(m, account(m), false).unwrap();
        }
        store.create_community(&c).await.unwrap();
        let mut engine = Engine::new(c, Arc::new(Sandbox::default()));
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let policy = engine.install_policy(POLICY).unwrap();
        let mut rec = StepRecord::new(CommunityId(1), now);
        rec.new_policies = vec![&*policy];
        store.record_step(rec).await.unwrap();
        Self { store, engine, now, seq: 0 }
    }

    /// Steps the engine and records the step in `batch`.
    async fn record_in(&mut self, batch: &Batch, input: Inbound) {
        self.seq += 1;
        self.now += TimeDelta::seconds(1);
        let step = self.engine.step(input.clone(), &Ctx::at(self.now)).unwrap();
        let proposals: Vec<&Proposal> = step.changed.iter().filter_map(|id| self.engine.proposal(*id)).collect();
        let rec = StepRecord {
            inbox: Some(InboxEntry {
                source: "test".into(),
                dedup_key: format!("k{}", self.seq),
                payload: serde_json::to_value(&input).unwrap(),
                checked: true,
            }),
            proposals,
            effects: &step.effects,
            audit: &step.audit,
            ..StepRecord::new(CommunityId(1), self.now)
        };
        assert!(matches!(self.store.record_in(batch, &rec).await.unwrap(), Recorded::Done { .. }));
    }

    async fn record(&mut self, input: Inbound) {
        let batch = self.store.begin_batch().await.unwrap();
        self.record_in(&batch, input).await;
        batch.commit().await.unwrap();
    }

    async fn propose(&mut self) -> ProposalId {
        let action = Action::new(ActionType::new(PROPOSE).unwrap(), account("admin"), format!("p{}", self.seq))
            .at(Place::new("console", "#general"))
            .requested()
            .with("text", "Paint the shed");
        self.record(Inbound::Action { action }).await;
        let id = self.engine.proposals().map(|p| p.id).max().unwrap();
        self.record(Inbound::VoteMessagePosted { proposal: id, message: message(id), link: None }).await;
        id
    }

    fn react(&self, who: &str, p: ProposalId, emoji: &str, added: bool) -> Inbound {
        Inbound::Reaction { message: message(p), voter: account(who), emoji: emoji.into(), added }
    }

    /// The store holds exactly the engine's proposals, and reads their vote messages as
    /// they are stored.
    async fn assert_stored(&self) {
        for p in self.engine.proposals() {
            assert_eq!(self.store.proposal(CommunityId(1), p.id).await.unwrap().as_ref(), Some(p));
            let stored = vote_messages_of(self.store.db(), 1, p.id).await.unwrap();
            assert_eq!(self.store.vote_messages(CommunityId(1), p.id).await.unwrap(), stored);
        }
    }
}

#[tokio::test]
async fn ballots_cast_changed_and_withdrawn_are_stored_exactly() {
    let mut w = World::new().await;
    let p = w.propose().await;
    assert_eq!(w.store.written_proposals(), 1, "an open proposal written is remembered");
    let vote_column = |s: Store| async move {
        let sql = "SELECT vote FROM proposals WHERE community_id = 1";
        let row = s.db().query_one_raw(sea_orm::Statement::from_string(s.db().get_database_backend(), sql));
        row.await.unwrap().unwrap().try_get_by_index::<String>(0).unwrap()
    };
    let frozen = vote_column(w.store.clone()).await;
    for (who, emoji, added) in
        [("ann", "👍", true), ("bob", "👎", true), ("ann", "👎", true), ("bob", "👎", false), ("cy", "👍", true)]
    {
        let input = w.react(who, p, emoji, added);
        w.record(input).await;
        w.assert_stored().await;
    }
    assert_eq!(vote_column(w.store.clone()).await, frozen);

    // Several steps on one proposal in one transaction, a ballot withdrawn and cast again.
    let batch = w.store.begin_batch().await.unwrap();
    for (who, emoji, added) in [("dee", "👍", true), ("dee", "👍", false), ("dee", "👎", true), ("cy", "👍", false)]
    {
        let input = w.react(who, p, emoji, added);
        w.record_in(&batch, input).await;
    }
    batch.commit().await.unwrap();
    w.assert_stored().await;

    // Decided at its deadline: written, and no longer remembered.
    w.now += TimeDelta::hours(25);
    w.record(Inbound::Tick).await;
    assert!(!w.engine.proposal(p).unwrap().state.is_open());
    w.assert_stored().await;
    assert_eq!(w.store.written_proposals(), 0);
    let audit = w.store.audit(CommunityId(1), 1000).await.unwrap();
    assert!(audit.windows(2).all(|a| a[0].id > a[1].id), "audit lines in order");
}

#[tokio::test]
async fn what_a_rolled_back_transaction_wrote_is_written_again() {
    let mut w = World::new().await;
    let p = w.propose().await;
    w.record(w.react("ann", p, "👍", true)).await;

    // Taken back: the store's memory must not claim bob's ballot is stored.
    let batch = w.store.begin_batch().await.unwrap();
    w.record_in(&batch, w.react("bob", p, "👍", true)).await;
    batch.rollback().await.unwrap();
    w.record(w.react("cy", p, "👎", true)).await;
    w.assert_stored().await;

    // A savepoint taken back inside a batch that commits.
    let batch = w.store.begin_batch().await.unwrap();
    let savepoint = batch.savepoint().await.unwrap();
    w.record_in(&savepoint, w.react("dee", p, "👍", true)).await;
    savepoint.rollback().await.unwrap();
    let savepoint = batch.savepoint().await.unwrap();
    w.record_in(&savepoint, w.react("ann", p, "👎", true)).await;
    savepoint.commit().await.unwrap();
    batch.commit().await.unwrap();
    w.assert_stored().await;
    let audit = w.store.audit(CommunityId(1), 1000).await.unwrap();
    assert!(!audit.iter().any(|a| a.text.contains("dee")), "a savepoint taken back keeps no audit line: {audit:?}");
    assert!(audit.iter().any(|a| a.text.contains("ann")));
}

#[tokio::test]
async fn a_community_forgotten_is_written_whole_again() {
    let mut w = World::new().await;
    let p = w.propose().await;
    w.record(w.react("ann", p, "👍", true)).await;
    w.record(w.react("bob", p, "👍", true)).await;

    // Rows changed behind the store's back (another writer), then the community reloaded.
    w.store.db().execute_unprepared("DELETE FROM ballots").await.unwrap();
    w.store.forget_written(CommunityId(1));
    assert_eq!(w.store.written_proposals(), 0);
    w.record(w.react("cy", p, "👎", true)).await;
    w.assert_stored().await;
}

#[tokio::test]
async fn a_tally_started_meanwhile_never_comes_after_its_proposals_closing_edit() {
    use polity_governance::Effect;
    let mut w = World::new().await;
    let p = w.propose().await;
    w.record(w.react("ann", p, "👍", true)).await;
    let edits = |rows: Vec<super::OutboxRow>| -> Vec<(i64, bool)> {
        rows.into_iter()
            .filter_map(|r| match r.effect {
                Effect::EditVote { closed, .. } => Some((r.id, closed)),
                _ => None,
            })
            .collect()
    };
    let later = w.now + TimeDelta::days(2);
    let waiting = edits(w.store.due_effects(later, 100).await.unwrap());
    let [(tally, false)] = waiting[..] else { panic!("one waiting tally edit: {waiting:?}") };

    // In one transaction: a ballot whose tally replaces the waiting edit's text, the
    // dispatcher starting that edit meanwhile, and the deadline closing the vote.
    let batch = w.store.begin_batch().await.unwrap();
    w.record_in(&batch, w.react("bob", p, "👍", true)).await;
    let started = format!("UPDATE outbox SET status = 'in_flight' WHERE id = {tally}");
    batch.txn.execute_unprepared(&started).await.unwrap();
    w.now += TimeDelta::hours(25);
    w.record_in(&batch, Inbound::Tick).await;
    batch.commit().await.unwrap();

    // The edit in flight is redone (it is due again); the closing edit is the last word.
    let due = edits(w.store.due_effects(later, 100).await.unwrap());
    assert_eq!(due.last().map(|(_, closed)| *closed), Some(true), "{due:?}");
    assert_eq!(due.iter().filter(|(_, closed)| !closed).count(), 1, "no tally after the close: {due:?}");
}

#[tokio::test]
async fn a_vote_messages_notes_are_written_when_they_change_and_read_back() {
    let mut w = World::new().await;
    let p = w.propose().await;
    for text in ["Discord holds back undoing it: 12:10", "Discord holds back undoing it: 12:20"] {
        w.record(Inbound::Note { proposal: p, key: "held:1".into(), text: text.into() }).await;
        w.assert_stored().await;
    }
    let stored = w.store.proposal(CommunityId(1), p).await.unwrap().unwrap();
    let notes: Vec<&str> = stored.vote.as_ref().unwrap().notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["Discord holds back undoing it: 12:20"]);
    // Ballots after it leave the notes as they are.
    let input = w.react("ann", p, "👍", true);
    w.record(input).await;
    w.assert_stored().await;
}

#[tokio::test]
async fn a_start_reads_many_communities_together_exactly_as_one_by_one() {
    let mut w = World::new().await;
    // A second community on the same store, whose proposal #1 shares its number with the
    // first's; the first's #1 is closed, with ballots, the second's open.
    let mut other = Community::new(CommunityId(2), "two");
    other.add_member("admin", AccountRef::new("console", "admin2"), true).unwrap();
    other.add_member("zed", AccountRef::new("console", "zed"), false).unwrap();
    w.store.create_community(&other).await.unwrap();
    let mut engine2 = Engine::new(other, Arc::new(Sandbox::default()));
    let policy = engine2.install_policy(POLICY).unwrap();
    let mut rec = StepRecord::new(CommunityId(2), w.now);
    rec.new_policies = vec![&*policy];
    w.store.record_step(rec).await.unwrap();

    let first = w.propose().await;
    let input = w.react("ann", first, "👍", true);
    w.record(input).await;
    w.record(Inbound::Cancel { proposal: first, by: account("admin") }).await;
    let second = w.propose().await;
    let input = w.react("bob", second, "👎", true);
    w.record(input).await;

    let action = Action::new(ActionType::new(PROPOSE).unwrap(), AccountRef::new("console", "admin2"), "two-1")
        .at(Place::new("console", "#general"))
        .requested()
        .with("text", "Elsewhere");
    let step = engine2.step(Inbound::Action { action }, &Ctx::at(w.now)).unwrap();
    let proposals: Vec<&Proposal> = step.changed.iter().filter_map(|id| engine2.proposal(*id)).collect();
    let rec = StepRecord { proposals, effects: &step.effects, ..StepRecord::new(CommunityId(2), w.now) };
    w.store.record_step(rec).await.unwrap();

    let together = w.store.load_states(&[CommunityId(1), CommunityId(2), CommunityId(9)]).await.unwrap();
    assert_eq!(together.len(), 2, "a community that does not exist is left out");
    for state in together {
        let c = state.community.id;
        assert_eq!(state.community, w.store.load_community(c).await.unwrap());
        assert_eq!(state.policies, w.store.load_policies(c).await.unwrap());
        assert_eq!(state.proposals, w.store.load_proposals(c, true).await.unwrap());
        assert_eq!(state.last, w.store.last_proposal_id(c).await.unwrap());
    }
    let ones = w.store.load_states(&[CommunityId(1)]).await.unwrap();
    let open: Vec<ProposalId> = ones[0].proposals.iter().map(|p| p.id).collect();
    assert_eq!(open, [second], "the closed #1 is not read, the open one with its ballot is");
    assert_eq!(ones[0].proposals[0].vote.as_ref().unwrap().ballots.len(), 1);
    assert_eq!(ones[0].last, Some(second));
}
