//! `linked_accounts`: the platform accounts of each member. An account belongs to at most
//! one member of a community; `position` keeps the order the engine lists them in (the
//! first is the account the member first appeared with).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Members {
    Table,
    CommunityId,
    Id,
}

#[derive(DeriveIden)]
enum LinkedAccounts {
    Table,
    Id,
    CommunityId,
    MemberId,
    Platform,
    Account,
    Quality,
    Position,
    LinkedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LinkedAccounts::Table)
                    .col(big_pk_auto(LinkedAccounts::Id))
                    .col(big_integer(LinkedAccounts::CommunityId))
                    .col(big_integer(LinkedAccounts::MemberId))
                    .col(text(LinkedAccounts::Platform))
                    .col(text(LinkedAccounts::Account))
                    .col(text(LinkedAccounts::Quality))
                    .col(integer(LinkedAccounts::Position))
                    .col(timestamp_with_time_zone(LinkedAccounts::LinkedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_linked_accounts_member")
                            .from(LinkedAccounts::Table, (LinkedAccounts::CommunityId, LinkedAccounts::MemberId))
                            .to(Members::Table, (Members::CommunityId, Members::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_linked_accounts_community_platform_account")
                    .table(LinkedAccounts::Table)
                    .col(LinkedAccounts::CommunityId)
                    .col(LinkedAccounts::Platform)
                    .col(LinkedAccounts::Account)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_linked_accounts_member")
                    .table(LinkedAccounts::Table)
                    .col(LinkedAccounts::CommunityId)
                    .col(LinkedAccounts::MemberId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LinkedAccounts::Table).to_owned()).await
    }
}
