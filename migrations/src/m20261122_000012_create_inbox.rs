//! `inbox`: every input the engine has taken, by its source and dedup key (the platform's
//! own ids), so a second delivery of the same input changes nothing.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Inbox {
    Table,
    Id,
    CommunityId,
    Source,
    DedupKey,
    Payload,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Inbox::Table)
                    .col(big_pk_auto(Inbox::Id))
                    .col(big_integer_null(Inbox::CommunityId))
                    .col(text(Inbox::Source))
                    .col(text(Inbox::DedupKey))
                    .col(text(Inbox::Payload))
                    .col(timestamp_with_time_zone(Inbox::ReceivedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_inbox_community")
                            .from(Inbox::Table, Inbox::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_inbox_source_dedup_key")
                    .table(Inbox::Table)
                    .col(Inbox::Source)
                    .col(Inbox::DedupKey)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Inbox::Table).to_owned()).await
    }
}
