//! `polls`: a connection's polls (a platform without webhooks read on a schedule, or one read
//! again to catch what its webhooks missed), one per `(community, connection, poll)`, with
//! when each is due next, how often it runs and where it got to (the platform's cursor).
//! Stored, so polls join the serving loop's wake-ups and survive restarts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Polls {
    Table,
    Id,
    CommunityId,
    Connection,
    Poll,
    EveryMs,
    DueAt,
    Cursor,
}

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Polls::Table)
                    .col(big_pk_auto(Polls::Id))
                    .col(big_integer(Polls::CommunityId))
                    .col(text(Polls::Connection))
                    .col(text(Polls::Poll))
                    .col(big_integer(Polls::EveryMs))
                    .col(timestamp_with_time_zone(Polls::DueAt))
                    .col(text_null(Polls::Cursor))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_polls_community")
                            .from(Polls::Table, Polls::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_polls_community_connection_poll")
                    .table(Polls::Table)
                    .col(Polls::CommunityId)
                    .col(Polls::Connection)
                    .col(Polls::Poll)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ix_polls_due_at").table(Polls::Table).col(Polls::DueAt).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Polls::Table).to_owned()).await
    }
}
