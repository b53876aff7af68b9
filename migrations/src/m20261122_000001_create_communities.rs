//! `communities`: one row per governed community. The id is the engine's `CommunityId`
//! (the store hands out `max + 1`), so it is a plain key, not a sequence.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Communities::Table)
                    .col(big_integer(Communities::Id).primary_key())
                    .col(text(Communities::Name))
                    .col(timestamp_with_time_zone(Communities::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_communities_name")
                    .table(Communities::Table)
                    .col(Communities::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Communities::Table).to_owned()).await
    }
}
