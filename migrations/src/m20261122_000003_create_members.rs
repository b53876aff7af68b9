//! `members`: the people of a community. The key is `(community_id, id)` where `id` is the
//! engine's `MemberId` (it numbers members per community), so every row that names a member
//! (`linked_accounts`, `member_roles`, `ballots`) stores the same number the engine uses.
//!
//! Names are indexed but not unique: the engine does not refuse two members of one name
//! (two platforms' "alice"), and the store must never refuse a state the engine produced.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Members {
    Table,
    CommunityId,
    Id,
    Name,
    Admin,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Members::Table)
                    .col(big_integer(Members::CommunityId))
                    .col(big_integer(Members::Id))
                    .col(text(Members::Name))
                    .col(boolean(Members::Admin))
                    .col(timestamp_with_time_zone(Members::CreatedAt))
                    .primary_key(Index::create().col(Members::CommunityId).col(Members::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_members_community")
                            .from(Members::Table, Members::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_members_community_name")
                    .table(Members::Table)
                    .col(Members::CommunityId)
                    .col(Members::Name)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Members::Table).to_owned()).await
    }
}
