//! A platform connection of a community; the secret is encrypted.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "platform_connections")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub community_id: i64,
    pub name: String,
    pub platform: String,
    pub config: String,
    pub secret_ciphertext: Option<String>,
    /// The webhook secret Polity generated for it, if its platform delivers webhooks.
    pub hook_secret_ciphertext: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
