//! A proposal; `id` is the engine's `ProposalId` within the community. JSON columns are text.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "proposals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub community_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub policy_id: i64,
    pub policy_name: String,
    pub state: String,
    pub proposer_id: Option<i64>,
    pub proposer_name: String,
    pub action: String,
    pub vote: Option<String>,
    pub winner: Option<String>,
    pub data: String,
    pub process: Option<String>,
    pub reverted: bool,
    pub opened_at: DateTimeUtc,
    pub closes_at: Option<DateTimeUtc>,
    pub decided_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
