//! The writes of [`super::Store::record_step`], all inside the caller's transaction.

use super::codec::{BallotColumns, proposal_row, to_json, ts, vote_column, vote_key};
use super::entities::{audit_log, ballots, inbox, outbox, policies, proposals, scheduled_jobs, vote_messages};
use super::shadow::{Pending, VoteKey, Written};
use super::{DEADLINE, Recorded, StepRecord, StoreError, community, effect_proposal, status};
use chrono::{DateTime, Utc};
use polity_governance::policy::CompiledPolicy;
use polity_governance::proposal::{Ballot, Ballots};
use polity_governance::{Effect, MemberId, MessageRef, Proposal, ProposalId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use std::collections::BTreeMap;

/// Writes the record; [`Recorded::Duplicate`] (having written nothing but an attempt the
/// caller rolls back) when its inbox entry exists.
pub(crate) async fn record<C: ConnectionTrait>(
    db: &C,
    written: &Pending,
    rec: &StepRecord<'_>,
) -> Result<Recorded, StoreError> {
    let cid = rec.community.0;
    let now = ts(rec.now);

    // The inbox first: the unique (source, dedup_key) decides, even against a concurrent
    // writer (on PostgreSQL the second insert waits for the first transaction, then skips;
    // a held row that another writer recorded meanwhile fails the commit).
    if let Some(entry) = &rec.inbox {
        let row = inbox::ActiveModel {
            community_id: Set(Some(cid)),
            source: Set(entry.source.clone()),
            dedup_key: Set(entry.dedup_key.clone()),
            payload: Set(to_json(&entry.payload, "inbox payload")?),
            received_at: Set(now),
            ..Default::default()
        };
        let inserted = if entry.checked {
            // Known to be new: written with the transaction's other inputs at the commit.
            u64::from(written.hold_input(row, &entry.source, &entry.dedup_key))
        } else {
            inbox::Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([inbox::Column::Source, inbox::Column::DedupKey]).do_nothing().to_owned(),
                )
                .exec_without_returning(db)
                .await?
        };
        if inserted == 0 {
            return Ok(Recorded::Duplicate);
        }
    }

    if let Some(c) = rec.community_state {
        community::sync_community(db, c, now).await?;
    }

    for p in &rec.new_policies {
        install_policy(db, cid, p, now).await?;
    }
    if !rec.removed_policies.is_empty() {
        policies::Entity::update_many()
            .col_expr(policies::Column::Active, Expr::value(false))
            .filter(policies::Column::CommunityId.eq(cid))
            .filter(policies::Column::Id.is_in(rec.removed_policies.iter().map(|p| p.0)))
            .exec(db)
            .await?;
    }

    for change in &rec.connections {
        super::links::change_connection(db, cid, change, now).await?;
    }

    for p in &rec.proposals {
        write_proposal(db, written, cid, p, now).await?;
    }

    if let Some((id, error)) = &rec.fails {
        let update = super::EffectUpdate { to: super::status::FAILED, error: Some(error), result: None, next: None };
        super::set_effect(db, *id, update, rec.now).await?;
    }

    if let Some((id, error, at)) = &rec.retries {
        let update =
            super::EffectUpdate { to: super::status::PENDING, error: Some(error), result: None, next: Some(*at) };
        super::set_effect(db, *id, update, rec.now).await?;
    }

    if let Some((id, result)) = &rec.finishes {
        let result = Some(to_json(result, "effect result")?);
        let update = super::EffectUpdate { to: super::status::DONE, error: None, result, next: None };
        super::set_effect(db, *id, update, rec.now).await?;
    }

    let mut ids = Vec::with_capacity(rec.effects.len());
    for e in rec.effects {
        let json =
            serde_json::to_value(e).map_err(|err| StoreError::Corrupt(format!("an effect does not encode: {err}")))?;
        // A tally edit replaces the text of its proposal's edit that waits (paced, or behind
        // its lane): one row per proposal instead of one per ballot. The closing edit
        // always gets a row of its own.
        let tally = match e {
            Effect::EditVote { proposal, closed: false, .. } => Some((cid, proposal.0)),
            Effect::EditVote { proposal, closed: true, .. } => {
                written.hold_closed((cid, proposal.0));
                None
            }
            _ => None,
        };
        if let Some((key, id)) = tally.and_then(|key| Some((key, written.edit_row(key)?))) {
            // Written at the commit, if the row still waits then (else a row of its own).
            written.hold_edit(id, key, to_json(&json, "effect")?, now);
            ids.push(id);
            continue;
        }
        let id = insert_effect(db, cid, effect_proposal(&json).map(|p| p.0), to_json(&json, "effect")?, now).await?;
        if let Some(key) = tally {
            written.set_edit_row(key, id);
        }
        ids.push(id);
    }

    if !rec.audit.is_empty() {
        let mut rows = Vec::with_capacity(rec.audit.len());
        for a in rec.audit {
            rows.push(audit_log::ActiveModel {
                community_id: Set(cid),
                at: Set(now),
                event: Set(to_json(a, "audit event")?),
                text: Set(a.to_string()),
                ..Default::default()
            });
        }
        // Written with the other steps' lines when the transaction commits (one statement
        // for a batch), inside it.
        written.hold_audit(rows);
    }

    Ok(Recorded::Done { outbox: ids })
}

/// Adds an effect to the outbox, due now; returns its row id.
async fn insert_effect<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    proposal: Option<i64>,
    effect: String,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let res = outbox::Entity::insert(outbox::ActiveModel {
        community_id: Set(cid),
        proposal_id: Set(proposal),
        effect: Set(effect),
        status: Set(status::PENDING.to_string()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        result: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(db)
    .await?;
    Ok(res.last_insert_id)
}

/// Writes what a transaction held back until its commit, a few statements for all of it:
/// its inputs' inbox rows, its ballots, the new texts of its waiting tally edits, its audit
/// lines.
pub(crate) async fn write_held<C: ConnectionTrait>(db: &C, pending: &Pending) -> Result<(), StoreError> {
    let held = pending.held_to_write();
    // In chunks, well below the bound parameters a statement may have (5 columns a row).
    let expected = held.inbox.len();
    let mut inserted = 0;
    let mut rows = held.inbox.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(500).collect();
        inserted += inbox::Entity::insert_many(chunk)
            .on_conflict(OnConflict::columns([inbox::Column::Source, inbox::Column::DedupKey]).do_nothing().to_owned())
            .exec_without_returning(db)
            .await?;
    }
    if inserted < expected as u64 {
        // Another writer recorded some of these inputs after they were checked: what this
        // transaction did with them is not to be kept.
        return Err(StoreError::RecordedElsewhere(expected - usize::try_from(inserted).unwrap_or(expected)));
    }
    write_ballot_rows(db, held.ballots).await?;
    write_edits(db, pending, held.edits, &held.closed).await?;
    write_audit(db, held.audit).await
}

/// How many tally edits one statement replaces.
const EDITS_PER_STATEMENT: usize = 16;

/// Replaces the texts of waiting tally edits, in one statement per chunk. A row that was
/// started meanwhile (or is gone) is left alone, and its new text gets a row of its own.
async fn write_edits<C: ConnectionTrait>(
    db: &C,
    pending: &Pending,
    edits: BTreeMap<i64, super::shadow::HeldEdit>,
    closed: &std::collections::HashSet<super::shadow::Key>,
) -> Result<(), StoreError> {
    use outbox::Column as O;
    let edits: Vec<(i64, super::shadow::HeldEdit)> = edits.into_iter().collect();
    for chunk in edits.chunks(EDITS_PER_STATEMENT) {
        // Every statement has the same shape (a short chunk is padded with row 0, which no
        // row has), so the database prepares it once.
        let mut ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        ids.resize(EDITS_PER_STATEMENT, 0);
        let texts = chunk.iter().map(|(_, (_, text, _))| text.as_str()).chain(std::iter::repeat(""));
        let case = ids
            .iter()
            .zip(texts)
            .fold(CaseStatement::new(), |case, (id, text)| case.case(O::Id.eq(*id), text.to_string()));
        let Some(at) = chunk.iter().map(|(_, (_, _, at))| *at).max() else { continue };
        let res = outbox::Entity::update_many()
            .col_expr(O::Effect, case.finally(Expr::col(O::Effect)).into())
            .col_expr(O::UpdatedAt, Expr::value(at))
            .filter(O::Id.is_in(ids.iter().copied()))
            .filter(O::Status.eq(status::PENDING))
            .exec(db)
            .await?;
        if res.rows_affected == chunk.len() as u64 {
            continue;
        }
        let waiting: std::collections::HashSet<i64> = outbox::Entity::find()
            .select_only()
            .column(O::Id)
            .filter(O::Id.is_in(ids.iter().copied()))
            .filter(O::Status.eq(status::PENDING))
            .into_tuple::<i64>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        for (id, (key, text, at)) in chunk {
            // A closed proposal's closing edit shows its final tally already.
            if !waiting.contains(id) && !closed.contains(key) {
                let new = insert_effect(db, key.0, Some(key.1), text.clone(), *at).await?;
                pending.set_edit_row(*key, new);
            }
        }
    }
    Ok(())
}

/// Writes audit lines held back until the commit, in order.
async fn write_audit<C: ConnectionTrait>(db: &C, rows: Vec<audit_log::ActiveModel>) -> Result<(), StoreError> {
    // In chunks, well below the bound parameters a statement may have (4 columns a row).
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        audit_log::Entity::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Policy names are compared without regard to case, as people type them.
fn same_name(name: &str) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Expr, ExprTrait, Func};
    Expr::expr(Func::lower(Expr::col(policies::Column::Name))).eq(name.to_lowercase())
}

/// A new version of a policy, active; the version it replaces, inactive.
async fn install_policy<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    p: &CompiledPolicy,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let name = p.name().to_string();
    let last = policies::Entity::find()
        .filter(policies::Column::CommunityId.eq(cid))
        .filter(same_name(&name))
        .order_by_desc(policies::Column::Version)
        .one(db)
        .await?;
    policies::Entity::update_many()
        .col_expr(policies::Column::Active, Expr::value(false))
        .filter(policies::Column::CommunityId.eq(cid))
        .filter(same_name(&name))
        .filter(policies::Column::Active.eq(true))
        .exec(db)
        .await?;
    policies::Entity::insert(policies::ActiveModel {
        community_id: Set(cid),
        id: Set(p.id.0),
        name: Set(name),
        version: Set(last.map_or(1, |r| r.version + 1)),
        kind: Set(p.policy.kind.to_string()),
        source: Set(p.source.clone()),
        active: Set(true),
        installed_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Writes a proposal as it is now: only what changed since this process last wrote it (see
/// [`shadow`](super::shadow)), or, when it has no record of that, the whole proposal.
async fn write_proposal<C: ConnectionTrait>(
    db: &C,
    written: &Pending,
    cid: i64,
    p: &Proposal,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let key = (cid, p.id.0);
    let row = proposal_row(cid, p)?;
    let vote = vote_key(p)?;
    // Taken out while it is written: if the write fails, the proposal is written whole
    // next time.
    let entry = match written.take(key) {
        Some(before) => write_changes(db, written, cid, p, before, row, vote, now).await?,
        None => write_whole(db, written, cid, p, row, vote, now).await?,
    };
    // A proposal no longer open is not written again: no need to remember it.
    written.put(key, p.state.is_open().then_some(entry));
    Ok(())
}

/// Upserts a proposal, brings its ballots in line with what is stored (only the changed
/// ones are written), adds its new vote messages, and keeps its deadline job in step.
async fn write_whole<C: ConnectionTrait>(
    db: &C,
    written: &Pending,
    cid: i64,
    p: &Proposal,
    row: proposals::Model,
    vote: Option<VoteKey>,
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    use proposals::Column as P;
    let mut am = row.clone().into_active_model();
    am.vote = Set(vote_column(p)?);
    proposals::Entity::insert(am)
        .on_conflict(
            OnConflict::columns([P::CommunityId, P::Id])
                .update_columns([
                    P::PolicyId,
                    P::PolicyName,
                    P::State,
                    P::ProposerId,
                    P::ProposerName,
                    P::Action,
                    P::Vote,
                    P::Winner,
                    P::Data,
                    P::Process,
                    P::Reverted,
                    P::OpenedAt,
                    P::ClosesAt,
                    P::DecidedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;

    // Ballots: the current one of each voter, as stored with what this transaction holds.
    write_ballot_rows(db, written.take_held_ballots()).await?;
    let stored: BTreeMap<i64, ballots::Model> = ballots::Entity::find()
        .filter(ballots::Column::CommunityId.eq(cid))
        .filter(ballots::Column::ProposalId.eq(p.id.0))
        .all(db)
        .await?
        .into_iter()
        .map(|b| (b.member_id, b))
        .collect();
    let empty = Ballots::new();
    let wanted = p.vote.as_ref().map_or(&empty, |v| &v.ballots);
    let mut changed = Vec::new();
    for (member, ballot) in wanted {
        let cols = BallotColumns::of(ballot, &format!("ballot of {member} on {}", p.id))?;
        match stored.get(&member.0) {
            Some(row) if BallotColumns::of_row(row) == cols => {}
            _ => changed.push((*member, ballot)),
        }
    }
    let withdrawn: Vec<i64> = stored.keys().filter(|m| !wanted.contains_key(&MemberId(**m))).copied().collect();
    hold_ballots(written, cid, p.id, changed.into_iter(), &withdrawn)?;

    // Vote messages: the ones not stored yet, in order; then what is stored, as it is.
    for m in p.vote.iter().flat_map(|v| &v.messages) {
        link_vote_message(db, cid, p.id, m, now).await?;
    }
    let messages = super::vote_messages_of(db, cid, p.id).await?;

    let deadline = deadline_of(p);
    write_deadline(db, cid, p.id, deadline).await?;
    Ok(Written { row, vote, ballots: wanted.clone(), messages, deadline, edit: None })
}

/// Writes what changed of a proposal since `before`, the state the last committed write
/// left: the row's changed columns, the changed ballots, the new vote messages, the deadline
/// job if it moved. A ballot cast is one ballot row.
#[allow(clippy::too_many_arguments)]
async fn write_changes<C: ConnectionTrait>(
    db: &C,
    written: &Pending,
    cid: i64,
    p: &Proposal,
    mut before: Written,
    row: proposals::Model,
    vote: Option<VoteKey>,
    now: DateTime<Utc>,
) -> Result<Written, StoreError> {
    use proposals::Column as P;
    let mut am = proposals::ActiveModel::default();
    let mut changed = false;
    macro_rules! column {
        ($($field:ident),*) => {$(
            if before.row.$field != row.$field {
                am.$field = Set(row.$field.clone());
                changed = true;
            }
        )*};
    }
    column!(
        policy_id,
        policy_name,
        state,
        proposer_id,
        proposer_name,
        action,
        winner,
        data,
        process,
        reverted,
        opened_at,
        closes_at,
        decided_at
    );
    if before.vote != vote {
        // Written when the proposal opened; again only when its notes, links or waiting
        // voters changed.
        am.vote = Set(vote_column(p)?);
        changed = true;
    }
    if changed {
        proposals::Entity::update_many()
            .set(am)
            .filter(P::CommunityId.eq(cid))
            .filter(P::Id.eq(p.id.0))
            .exec(db)
            .await?;
        before.row = row;
        before.vote = vote;
    }

    // Ballots: both maps are ordered by member, so they are walked together once.
    let empty = Ballots::new();
    let wanted = p.vote.as_ref().map_or(&empty, |v| &v.ballots);
    let mut cast = Vec::new();
    let mut withdrawn = Vec::new();
    {
        let mut old = before.ballots.iter_stamped().peekable();
        for (member, ballot, stamp) in wanted.iter_stamped() {
            while let Some((gone, _, _)) = old.next_if(|(m, _, _)| *m < member) {
                withdrawn.push(gone.0);
            }
            match old.next_if(|(m, _, _)| *m == member) {
                // The same stamp is the same ballot; else compared (a reloaded one, say).
                Some((_, _, s)) if s == stamp => {}
                Some((_, stored, _)) if same_ballot(stored, ballot) => {}
                _ => cast.push((*member, ballot, stamp)),
            }
        }
        withdrawn.extend(old.map(|(m, _, _)| m.0));
    }
    if !cast.is_empty() || !withdrawn.is_empty() {
        hold_ballots(written, cid, p.id, cast.iter().map(|(m, b, _)| (*m, *b)), &withdrawn)?;
        for m in &withdrawn {
            before.ballots.remove(&MemberId(*m));
        }
        // Under the engine's stamps: unchanged, they are known at once next time.
        for (m, b, stamp) in cast {
            before.ballots.insert_stamped(m, b.clone(), stamp);
        }
    }

    // Vote messages: only ever added. One another proposal holds already is not linked
    // (and is tried again next time, as before).
    let messages = p.vote.as_ref().map_or(&[][..], |v| v.messages.as_slice());
    if before.messages != messages {
        for m in messages {
            if !before.messages.contains(m) && link_vote_message(db, cid, p.id, m, now).await? {
                before.messages.push(m.clone());
            }
        }
    }

    let deadline = deadline_of(p);
    if before.deadline != deadline {
        write_deadline(db, cid, p.id, deadline).await?;
        before.deadline = deadline;
    }
    Ok(before)
}

/// Whether two ballots are the same, cheapest comparisons first (a changed ballot almost
/// always has a new cast time).
fn same_ballot(a: &Ballot, b: &Ballot) -> bool {
    a.cast_at == b.cast_at && a.choice == b.choice && a.account == b.account && a.source == b.source
}

/// Holds the ballots cast and withdrawn back until the commit (see [`write_ballot_rows`]).
fn hold_ballots<'a>(
    written: &Pending,
    cid: i64,
    proposal: ProposalId,
    cast: impl ExactSizeIterator<Item = (MemberId, &'a Ballot)>,
    withdrawn: &[i64],
) -> Result<(), StoreError> {
    let mut rows = Vec::with_capacity(cast.len() + withdrawn.len());
    for (member, ballot) in cast {
        let cols = BallotColumns::of(ballot, &format!("ballot of {member} on {proposal}"))?;
        rows.push(((cid, proposal.0, member.0), Some(cols)));
    }
    rows.extend(withdrawn.iter().map(|m| ((cid, proposal.0, *m), None)));
    written.hold_ballots(rows);
    Ok(())
}

/// Upserts the ballots cast (one row per voter, by proposal and member) and deletes the
/// withdrawn ones, a statement per chunk of each.
async fn write_ballot_rows<C: ConnectionTrait>(
    db: &C,
    ballots: BTreeMap<super::shadow::BallotKey, Option<BallotColumns>>,
) -> Result<(), StoreError> {
    use ballots::Column as B;
    let (cast, withdrawn): (Vec<_>, Vec<_>) = ballots.into_iter().partition(|(_, cols)| cols.is_some());
    // Withdrawn: by proposal, the members in one list.
    let mut by_proposal: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for ((cid, pid, member), _) in withdrawn {
        by_proposal.entry((cid, pid)).or_default().push(member);
    }
    for ((cid, pid), members) in by_proposal {
        for chunk in members.chunks(500) {
            ballots::Entity::delete_many()
                .filter(B::CommunityId.eq(cid))
                .filter(B::ProposalId.eq(pid))
                .filter(B::MemberId.is_in(chunk.iter().copied()))
                .exec(db)
                .await?;
        }
    }
    // In chunks, well below the bound parameters a statement may have (8 columns a row).
    let mut cast = cast.into_iter().peekable();
    while cast.peek().is_some() {
        let rows: Vec<ballots::ActiveModel> = cast
            .by_ref()
            .take(500)
            .filter_map(|((cid, pid, member), cols)| {
                let cols = cols?;
                Some(ballots::ActiveModel {
                    community_id: Set(cid),
                    proposal_id: Set(pid),
                    member_id: Set(member),
                    choice: Set(cols.choice),
                    platform: Set(cols.platform),
                    account: Set(cols.account),
                    source: Set(cols.source),
                    cast_at: Set(cols.cast_at),
                    ..Default::default()
                })
            })
            .collect();
        ballots::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([B::CommunityId, B::ProposalId, B::MemberId])
                    .update_columns([B::Choice, B::Platform, B::Account, B::Source, B::CastAt])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// When a proposal's deadline job is due: while it is open and has a deadline.
fn deadline_of(p: &Proposal) -> Option<DateTime<Utc>> {
    p.closes_at.filter(|_| p.state.is_open()).map(ts)
}

/// Makes the proposal's deadline job due at `due`, or removes it.
async fn write_deadline<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    proposal: ProposalId,
    due: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    use scheduled_jobs::Column as J;
    match due {
        Some(due) => {
            scheduled_jobs::Entity::insert(scheduled_jobs::ActiveModel {
                community_id: Set(cid),
                proposal_id: Set(proposal.0),
                kind: Set(DEADLINE.to_string()),
                due_at: Set(due),
                ..Default::default()
            })
            .on_conflict(
                OnConflict::columns([J::CommunityId, J::ProposalId, J::Kind]).update_column(J::DueAt).to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        }
        None => {
            scheduled_jobs::Entity::delete_many()
                .filter(J::CommunityId.eq(cid))
                .filter(J::ProposalId.eq(proposal.0))
                .filter(J::Kind.eq(DEADLINE))
                .exec(db)
                .await?;
        }
    }
    Ok(())
}

/// Links a vote message to its proposal, once (a message already linked is left as it is);
/// says whether it linked it now.
pub(crate) async fn link_vote_message<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    proposal: ProposalId,
    m: &MessageRef,
    now: chrono::DateTime<Utc>,
) -> Result<bool, StoreError> {
    let linked = vote_messages::Entity::insert(vote_messages::ActiveModel {
        community_id: Set(cid),
        proposal_id: Set(proposal.0),
        platform: Set(m.platform.0.to_string()),
        channel: Set(m.channel.to_string()),
        message: Set(m.message.to_string()),
        posted_at: Set(now),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([
            vote_messages::Column::CommunityId,
            vote_messages::Column::Platform,
            vote_messages::Column::Channel,
            vote_messages::Column::Message,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(linked > 0)
}
