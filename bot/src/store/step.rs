//! The writes of [`super::Store::record_step`], all inside the caller's transaction.

use super::codec::{BallotColumns, proposal_row, to_json, ts};
use super::entities::{audit_log, ballots, inbox, outbox, policies, proposals, scheduled_jobs, vote_messages};
use super::{DEADLINE, Recorded, StepRecord, StoreError, community, effect_proposal, status};
use chrono::{DateTime, Utc};
use polity_governance::policy::CompiledPolicy;
use polity_governance::{MessageRef, Proposal, ProposalId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder};
use std::collections::BTreeMap;

/// Writes the record; [`Recorded::Duplicate`] (having written nothing but an attempt the
/// caller rolls back) when its inbox entry exists.
pub(crate) async fn record<C: ConnectionTrait>(db: &C, rec: &StepRecord<'_>) -> Result<Recorded, StoreError> {
    let cid = rec.community.0;
    let now = ts(rec.now);

    // The inbox first: the unique (source, dedup_key) decides, even against a concurrent
    // writer (on PostgreSQL the second insert waits for the first transaction, then skips).
    if let Some(entry) = &rec.inbox {
        let inserted = inbox::Entity::insert(inbox::ActiveModel {
            community_id: Set(Some(cid)),
            source: Set(entry.source.clone()),
            dedup_key: Set(entry.dedup_key.clone()),
            payload: Set(to_json(&entry.payload, "inbox payload")?),
            received_at: Set(now),
            ..Default::default()
        })
        .on_conflict(OnConflict::columns([inbox::Column::Source, inbox::Column::DedupKey]).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
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
        write_proposal(db, cid, p, now).await?;
    }

    if let Some((id, error)) = &rec.fails {
        let update = super::EffectUpdate { to: super::status::FAILED, error: Some(error), result: None, next: None };
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
        let res = outbox::Entity::insert(outbox::ActiveModel {
            community_id: Set(cid),
            proposal_id: Set(effect_proposal(&json).map(|p| p.0)),
            effect: Set(to_json(&json, "effect")?),
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
        ids.push(res.last_insert_id);
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
        audit_log::Entity::insert_many(rows).exec_without_returning(db).await?;
    }

    Ok(Recorded::Done { outbox: ids })
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

/// Upserts a proposal, brings its ballots in line (only the changed ones are written), adds
/// its new vote messages, and keeps its deadline job in step with it.
async fn write_proposal<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    p: &Proposal,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use proposals::Column as P;
    let row = proposal_row(cid, p)?;
    proposals::Entity::insert(row.into_active_model())
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

    // Ballots: the current one of each voter.
    let stored: BTreeMap<i64, ballots::Model> = ballots::Entity::find()
        .filter(ballots::Column::CommunityId.eq(cid))
        .filter(ballots::Column::ProposalId.eq(p.id.0))
        .all(db)
        .await?
        .into_iter()
        .map(|b| (b.member_id, b))
        .collect();
    let empty = BTreeMap::new();
    let wanted = p.vote.as_ref().map_or(&empty, |v| &v.ballots);
    let mut new_ballots = Vec::new();
    for (member, ballot) in wanted {
        let cols = BallotColumns::of(ballot, &format!("ballot of {member} on {}", p.id))?;
        match stored.get(&member.0) {
            Some(row) if BallotColumns::of_row(row) == cols => {}
            Some(row) => {
                let mut am = row.clone().into_active_model();
                am.choice = Set(cols.choice);
                am.platform = Set(cols.platform);
                am.account = Set(cols.account);
                am.source = Set(cols.source);
                am.cast_at = Set(cols.cast_at);
                am.update(db).await?;
            }
            None => new_ballots.push(ballots::ActiveModel {
                community_id: Set(cid),
                proposal_id: Set(p.id.0),
                member_id: Set(member.0),
                choice: Set(cols.choice),
                platform: Set(cols.platform),
                account: Set(cols.account),
                source: Set(cols.source),
                cast_at: Set(cols.cast_at),
                ..Default::default()
            }),
        }
    }
    let withdrawn: Vec<i64> = stored
        .values()
        .filter(|b| !wanted.contains_key(&polity_governance::MemberId(b.member_id)))
        .map(|b| b.id)
        .collect();
    if !withdrawn.is_empty() {
        ballots::Entity::delete_many().filter(ballots::Column::Id.is_in(withdrawn)).exec(db).await?;
    }
    if !new_ballots.is_empty() {
        ballots::Entity::insert_many(new_ballots).exec_without_returning(db).await?;
    }

    // Vote messages: the ones not stored yet, in order.
    if let Some(v) = &p.vote {
        for m in &v.messages {
            link_vote_message(db, cid, p.id, m, now).await?;
        }
    }

    // The deadline job: there while the proposal is open and has a deadline.
    let job = scheduled_jobs::Entity::delete_many()
        .filter(scheduled_jobs::Column::CommunityId.eq(cid))
        .filter(scheduled_jobs::Column::ProposalId.eq(p.id.0))
        .filter(scheduled_jobs::Column::Kind.eq(DEADLINE));
    match p.closes_at.filter(|_| p.state.is_open()) {
        Some(due) => {
            scheduled_jobs::Entity::insert(scheduled_jobs::ActiveModel {
                community_id: Set(cid),
                proposal_id: Set(p.id.0),
                kind: Set(DEADLINE.to_string()),
                due_at: Set(ts(due)),
                ..Default::default()
            })
            .on_conflict(
                OnConflict::columns([
                    scheduled_jobs::Column::CommunityId,
                    scheduled_jobs::Column::ProposalId,
                    scheduled_jobs::Column::Kind,
                ])
                .update_column(scheduled_jobs::Column::DueAt)
                .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        }
        None => {
            job.exec(db).await?;
        }
    }
    Ok(())
}

/// Links a vote message to its proposal, once (a message already linked is left as it is).
pub(crate) async fn link_vote_message<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    proposal: ProposalId,
    m: &MessageRef,
    now: chrono::DateTime<Utc>,
) -> Result<(), StoreError> {
    vote_messages::Entity::insert(vote_messages::ActiveModel {
        community_id: Set(cid),
        proposal_id: Set(proposal.0),
        platform: Set(m.platform.0.clone()),
        channel: Set(m.channel.clone()),
        message: Set(m.message.clone()),
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
    Ok(())
}
