//! Where Polity's own app is installed through a platform's install flow (Slack's OAuth):
//! per platform and space, the secret that acts there, encrypted like a connection's, in the
//! settings table under `install {platform} {space}`.

use super::entities::settings;
use super::{Secret, Store, StoreError};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};

fn key(platform: &str, space: &str) -> String {
    format!("install {platform} {space}")
}

/// What a stored install's ciphertext is bound to, so it opens only in its own row.
fn context(platform: &str, space: &str) -> String {
    format!("polity install {platform} {space}")
}

impl Store {
    /// Stores (or replaces) the install of `platform`'s app in `space`.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] or [`StoreError::SecretKeyWrong`], or a database error.
    pub async fn save_install(&self, platform: &str, space: &str, secret: &Secret) -> Result<(), StoreError> {
        if space.is_empty() || space.contains(char::is_whitespace) {
            return Err(StoreError::Corrupt(format!("`{space}` cannot name a space")));
        }
        let txn = self.db().begin().await?;
        let sealed = self
            .checked_key(&txn)
            .await?
            .seal(secret.expose(), &context(platform, space))
            .map_err(StoreError::Corrupt)?;
        settings::Entity::insert(settings::ActiveModel { key: Set(key(platform, space)), value: Set(sealed) })
            .on_conflict(OnConflict::column(settings::Column::Key).update_column(settings::Column::Value).to_owned())
            .exec_without_returning(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Forgets the install of `platform`'s app in `space` (nothing when there is none).
    ///
    /// # Errors
    /// A database error.
    pub async fn remove_install(&self, platform: &str, space: &str) -> Result<(), StoreError> {
        settings::Entity::delete_by_id(key(platform, space)).exec(self.db()).await?;
        Ok(())
    }

    /// Every stored install of `platform`'s app: the space and its secret.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] or [`StoreError::SecretKeyWrong`] when there are
    /// installs this key cannot open, or a database error.
    pub async fn installs(&self, platform: &str) -> Result<Vec<(String, Secret)>, StoreError> {
        let prefix = key(platform, "");
        let rows = settings::Entity::find().filter(settings::Column::Key.starts_with(&prefix)).all(self.db()).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.secret_key()?.ok_or(StoreError::SecretKeyMissing)?;
        rows.into_iter()
            .filter_map(|row| row.key.strip_prefix(&prefix).map(str::to_string).map(|space| (space, row.value)))
            .map(|(space, sealed)| {
                let plain = key.open(&sealed, &context(platform, &space)).ok_or(StoreError::SecretKeyWrong)?;
                Ok((space, Secret::new(plain)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        let key = super::super::SecretKey::generate();
        let store = Store::connect("sqlite::memory:").await.unwrap().with_secret_key(Some(&key));
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn an_install_is_stored_encrypted_replaced_and_forgotten() {
        let store = store().await;
        store.save_install("slack", "T1", &Secret::new("xoxb-1 xoxp-1")).await.unwrap();
        store.save_install("slack", "T2", &Secret::new("xoxb-2")).await.unwrap();
        store.save_install("discord", "T1", &Secret::new("other")).await.unwrap();
        store.save_install("slack", "T1", &Secret::new("xoxb-3 xoxp-3")).await.unwrap();
        let raw = store.setting("install slack T1").await.unwrap().unwrap();
        assert!(!raw.contains("xoxb"), "stored encrypted");
        let mut all = store.installs("slack").await.unwrap();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let plain: Vec<(&str, &str)> = all.iter().map(|(s, k)| (s.as_str(), k.expose())).collect();
        assert_eq!(plain, [("T1", "xoxb-3 xoxp-3"), ("T2", "xoxb-2")]);
        store.remove_install("slack", "T1").await.unwrap();
        assert_eq!(store.installs("slack").await.unwrap().len(), 1);
        assert!(store.save_install("slack", "T 3", &Secret::new("x")).await.is_err());
        // Another key does not open them.
        let other = store.clone().with_secret_key(Some(&super::super::SecretKey::generate()));
        assert!(matches!(other.installs("slack").await, Err(StoreError::SecretKeyWrong)));
    }
}
