//! `policies`: every version of every policy. The key is `(community_id, id)` where `id` is
//! the engine's `PolicyId`; `version` counts the versions of one name (1, 2, ...), and
//! `active` marks the version in force (at most one per name).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    CommunityId,
    Id,
    Name,
    Version,
    Kind,
    Source,
    Active,
    InstalledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(big_integer(Policies::CommunityId))
                    .col(big_integer(Policies::Id))
                    .col(text(Policies::Name))
                    .col(integer(Policies::Version))
                    .col(text(Policies::Kind))
                    .col(text(Policies::Source))
                    .col(boolean(Policies::Active))
                    .col(timestamp_with_time_zone(Policies::InstalledAt))
                    .primary_key(Index::create().col(Policies::CommunityId).col(Policies::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_policies_community")
                            .from(Policies::Table, Policies::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_policies_community_name_version")
                    .table(Policies::Table)
                    .col(Policies::CommunityId)
                    .col(Policies::Name)
                    .col(Policies::Version)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Policies::Table).to_owned()).await
    }
}
