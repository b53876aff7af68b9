//! One-time link codes, and the inputs a community received (for dry runs).

use super::codec::{from_json, ts};
use super::entities::{inbox, link_codes, platform_connections};
use super::{ConnectionChange, Store, StoreError};
use chrono::{DateTime, Utc};
use polity_governance::{AccountRef, CommunityId, Inbound, MemberId};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

/// What redeeming a code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was good: link `account` to `member`.
    Linked {
        member: MemberId,
    },
    /// No such code in this community.
    Unknown,
    Expired,
    AlreadyUsed,
    /// The code is for another account.
    OtherAccount(AccountRef),
}

impl Store {
    /// Keeps a code that links `account` to `member` until `expires_at`.
    ///
    /// # Errors
    /// When the store fails (or the code is taken, which the caller avoids by retrying).
    pub async fn put_link_code(
        &self,
        id: CommunityId,
        code: &str,
        member: MemberId,
        account: &AccountRef,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        link_codes::ActiveModel {
            community_id: Set(id.0),
            code: Set(code.to_string()),
            member_id: Set(member.0),
            platform: Set(account.platform.to_string()),
            account: Set(account.account.to_string()),
            expires_at: Set(ts(expires_at)),
            used_at: Set(None),
            created_at: Set(ts(now)),
            ..Default::default()
        }
        .insert(self.db())
        .await?;
        Ok(())
    }

    /// Uses a code typed by `by`: once, before it expires, and only by the account it names.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn redeem_link_code(
        &self,
        id: CommunityId,
        code: &str,
        by: &AccountRef,
        now: DateTime<Utc>,
    ) -> Result<Redeemed, StoreError> {
        let tx = self.db().begin().await?;
        let row = link_codes::Entity::find()
            .filter(link_codes::Column::CommunityId.eq(id.0))
            .filter(link_codes::Column::Code.eq(code))
            .one(&tx)
            .await?;
        let Some(row) = row else {
            return Ok(Redeemed::Unknown);
        };
        let target = AccountRef::new(row.platform.clone(), row.account.clone());
        let outcome = if row.used_at.is_some() {
            Redeemed::AlreadyUsed
        } else if row.expires_at <= now {
            Redeemed::Expired
        } else if &target != by {
            Redeemed::OtherAccount(target)
        } else {
            let member = MemberId(row.member_id);
            let mut used: link_codes::ActiveModel = row.into();
            used.used_at = Set(Some(ts(now)));
            used.update(&tx).await?;
            Redeemed::Linked { member }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// The inputs a community received since `since`, oldest first (for `/policy dry-run`).
    ///
    /// # Errors
    /// When the store fails or a stored input no longer decodes.
    pub async fn inputs_since(
        &self,
        id: CommunityId,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, Inbound)>, StoreError> {
        let rows = inbox::Entity::find()
            .filter(inbox::Column::CommunityId.eq(id.0))
            .filter(inbox::Column::ReceivedAt.gte(ts(since)))
            .order_by_asc(inbox::Column::Id)
            .all(self.db())
            .await?;
        rows.into_iter().map(|r| Ok((r.received_at, from_json(&r.payload, "an inbox input")?))).collect()
    }
}

/// Enables a staged connection (its config's `enabled` becomes true) or removes one, inside
/// the transaction of the step that allowed it. A connection that is not there is left
/// alone: the step's audit says what was asked.
pub(super) async fn change_connection<C: ConnectionTrait>(
    db: &C,
    cid: i64,
    change: &ConnectionChange,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let name = match change {
        ConnectionChange::Enable(n) | ConnectionChange::Remove(n) => n,
        // Staged by `Store::record_step` before the step (it seals the secret).
        ConnectionChange::Stage { .. } => return Ok(()),
    };
    let row = platform_connections::Entity::find()
        .filter(platform_connections::Column::CommunityId.eq(cid))
        .filter(platform_connections::Column::Name.eq(name.as_str()))
        .one(db)
        .await?;
    let Some(row) = row else {
        return Ok(());
    };
    match change {
        ConnectionChange::Stage { .. } => {}
        ConnectionChange::Remove(_) => {
            platform_connections::Entity::delete_by_id(row.id).exec(db).await?;
            // Its polls go with it, in the same transaction.
            super::entities::polls::Entity::delete_many()
                .filter(super::entities::polls::Column::CommunityId.eq(cid))
                .filter(super::entities::polls::Column::Connection.eq(name.as_str()))
                .exec(db)
                .await?;
        }
        ConnectionChange::Enable(_) => {
            let mut config: serde_json::Value = from_json(&row.config, "a connection's config")?;
            if let Some(map) = config.as_object_mut() {
                map.insert("enabled".into(), serde_json::Value::Bool(true));
            }
            let mut active: platform_connections::ActiveModel = row.into();
            active.config = Set(super::codec::to_json(&config, "a connection's config")?);
            active.updated_at = Set(ts(now));
            active.update(db).await?;
        }
    }
    Ok(())
}
