//! The console platform's ledger in the store: message numbers and the effects the console
//! performed, each claimed in one transaction before the console prints it.

use super::entities::{console_effects, console_messages, settings, vote_messages};
use super::{Store, StoreError};
use polity_console::{Claim, Posting};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

/// Where consoles before the ledger kept their last message number.
const LEGACY_LAST_MESSAGE: &str = "console.last_message";

impl Store {
    /// Claims the console effect `effect` (when it has a key) and, with `post`, the next
    /// message number, in one transaction. An effect claimed before answers
    /// [`Claim::Before`] with the message it posted then.
    ///
    /// # Errors
    /// A database error; nothing is claimed then.
    pub async fn console_claim(&self, effect: Option<&str>, post: Option<Posting<'_>>) -> Result<Claim, StoreError> {
        let txn = self.begin().await?;
        if let Some(key) = effect
            && let Some(row) = console_effects::Entity::find_by_id(key).one(&txn).await?
        {
            let earlier = match row.message_id {
                Some(id) => console_messages::Entity::find_by_id(id).one(&txn).await?.map(|m| (u64_of(id), m.channel)),
                None => None,
            };
            txn.rollback().await?;
            return Ok(Claim::Before(earlier));
        }
        let mut number = None;
        if let Some(p) = post {
            let last = console_messages::Entity::find()
                .order_by_desc(console_messages::Column::Id)
                .one(&txn)
                .await?
                .map_or(0, |m| m.id);
            let legacy = settings::Entity::find_by_id(LEGACY_LAST_MESSAGE)
                .one(&txn)
                .await?
                .and_then(|s| s.value.parse::<i64>().ok())
                .unwrap_or(0);
            let id = last.max(legacy).saturating_add(1);
            console_messages::Entity::insert(console_messages::ActiveModel {
                id: Set(id),
                channel: Set(super::text_safe(p.channel).into_owned()),
                author: Set(super::text_safe(p.author).into_owned()),
                body: Set(super::text_safe(p.text).into_owned()),
            })
            .exec_without_returning(&txn)
            .await?;
            number = Some(id);
        }
        if let Some(key) = effect {
            console_effects::Entity::insert(console_effects::ActiveModel {
                key: Set(key.to_string()),
                message_id: Set(number),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(Claim::First(number.map(u64_of)))
    }

    /// The channel of console message `id`, when the console printed it.
    ///
    /// # Errors
    /// A database error.
    pub async fn console_channel(&self, id: u64) -> Result<Option<String>, StoreError> {
        let Ok(n) = i64::try_from(id) else { return Ok(None) };
        if let Some(m) = console_messages::Entity::find_by_id(n).one(&self.db).await? {
            return Ok(Some(m.channel));
        }
        // A vote message a console posted before the ledger was kept.
        let earlier = vote_messages::Entity::find()
            .filter(vote_messages::Column::Platform.eq(polity_console::CONSOLE))
            .filter(vote_messages::Column::Message.eq(id.to_string()))
            .one(&self.db)
            .await?;
        Ok(earlier.map(|m| m.channel))
    }
}

fn u64_of(id: i64) -> u64 {
    u64::try_from(id).unwrap_or_default()
}
