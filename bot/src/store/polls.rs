//! Connections' polls: when each is due, how often it runs, and the platform's cursor.

use super::codec::ts;
use super::entities::polls;
use super::{Store, StoreError};
use chrono::{DateTime, TimeDelta, Utc};
use polity_governance::CommunityId;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

/// A poll that is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuePoll {
    pub community: CommunityId,
    pub connection: String,
    pub poll: String,
    /// Where the last poll got to, as the platform said it.
    pub cursor: Option<String>,
}

impl Store {
    /// Keeps a poll of `community`'s `connection`, running every `every`: a new one is due at
    /// `first`; one that exists keeps when it is due and its cursor (a restart neither
    /// repeats nor skips it) and takes the new interval.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn ensure_poll(
        &self,
        community: CommunityId,
        connection: &str,
        poll: &str,
        every: TimeDelta,
        first: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        polls::Entity::insert(polls::ActiveModel {
            community_id: Set(community.0),
            connection: Set(connection.to_string()),
            poll: Set(poll.to_string()),
            every_ms: Set(every.num_milliseconds().max(1)),
            due_at: Set(ts(first)),
            cursor: Set(None),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([polls::Column::CommunityId, polls::Column::Connection, polls::Column::Poll])
                .update_column(polls::Column::EveryMs)
                .to_owned(),
        )
        .exec_without_returning(self.db())
        .await?;
        Ok(())
    }

    /// When the next poll is due.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn next_poll_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = polls::Entity::find().order_by_asc(polls::Column::DueAt).one(self.db()).await?;
        Ok(row.map(|r| r.due_at))
    }

    /// Takes the polls due at `now`: each is due again one interval from `now` before it is
    /// handed out, so a poll that fails or is lost in a crash runs again at its next time.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn take_due_polls(&self, now: DateTime<Utc>) -> Result<Vec<DuePoll>, StoreError> {
        let rows = polls::Entity::find()
            .filter(polls::Column::DueAt.lte(ts(now)))
            .order_by_asc(polls::Column::DueAt)
            .order_by_asc(polls::Column::Id)
            .all(self.db())
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let every = TimeDelta::milliseconds(row.every_ms.clamp(1, 7 * 24 * 3600 * 1000));
            let next = now.checked_add_signed(every).unwrap_or(now);
            polls::Entity::update_many()
                .col_expr(polls::Column::DueAt, Expr::value(ts(next)))
                .filter(polls::Column::Id.eq(row.id))
                .exec(self.db())
                .await?;
            due.push(DuePoll {
                community: CommunityId(row.community_id),
                connection: row.connection,
                poll: row.poll,
                cursor: row.cursor,
            });
        }
        Ok(due)
    }

    /// Records where a poll got to, once what it read is recorded.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn set_poll_cursor(
        &self,
        community: CommunityId,
        connection: &str,
        poll: &str,
        cursor: &str,
    ) -> Result<(), StoreError> {
        polls::Entity::update_many()
            .col_expr(polls::Column::Cursor, Expr::value(cursor.to_string()))
            .filter(polls::Column::CommunityId.eq(community.0))
            .filter(polls::Column::Connection.eq(connection))
            .filter(polls::Column::Poll.eq(poll))
            .exec(self.db())
            .await?;
        Ok(())
    }
}
