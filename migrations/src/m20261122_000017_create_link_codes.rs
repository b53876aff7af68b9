//! `link_codes`: one-time codes that link an account on one platform to a member known on
//! another. A code is shown to the member and typed by the account; it expires and is used
//! once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum LinkCodes {
    Table,
    Id,
    CommunityId,
    Code,
    MemberId,
    Platform,
    Account,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(LinkCodes::Table)
                    .col(big_pk_auto(LinkCodes::Id))
                    .col(big_integer(LinkCodes::CommunityId))
                    .col(text(LinkCodes::Code))
                    .col(big_integer(LinkCodes::MemberId))
                    .col(text(LinkCodes::Platform))
                    .col(text(LinkCodes::Account))
                    .col(timestamp_with_time_zone(LinkCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(LinkCodes::UsedAt))
                    .col(timestamp_with_time_zone(LinkCodes::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_link_codes_community")
                            .from(LinkCodes::Table, LinkCodes::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_link_codes_community_code")
                    .table(LinkCodes::Table)
                    .col(LinkCodes::CommunityId)
                    .col(LinkCodes::Code)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(LinkCodes::Table).to_owned()).await
    }
}
