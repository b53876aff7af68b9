//! `audit_log`: the governance record, one line per event: `text` as people read it,
//! `event` as JSON.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    CommunityId,
    At,
    Event,
    Text,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer(AuditLog::CommunityId))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(text(AuditLog::Event))
                    .col(text(AuditLog::Text))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_audit_log_community")
                            .from(AuditLog::Table, AuditLog::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_log_community_id")
                    .table(AuditLog::Table)
                    .col(AuditLog::CommunityId)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await
    }
}
