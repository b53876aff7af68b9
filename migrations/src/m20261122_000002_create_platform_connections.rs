//! `platform_connections`: the platforms a community is connected to, by the name the
//! community gave each (`discord`, `slack-eng`), with their settings and, encrypted, their
//! secret (a token, an API key, a webhook secret).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PlatformConnections {
    Table,
    Id,
    CommunityId,
    Name,
    Platform,
    Config,
    SecretCiphertext,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PlatformConnections::Table)
                    .col(big_pk_auto(PlatformConnections::Id))
                    .col(big_integer(PlatformConnections::CommunityId))
                    .col(text(PlatformConnections::Name))
                    .col(text(PlatformConnections::Platform))
                    .col(text(PlatformConnections::Config))
                    .col(text_null(PlatformConnections::SecretCiphertext))
                    .col(timestamp_with_time_zone(PlatformConnections::CreatedAt))
                    .col(timestamp_with_time_zone(PlatformConnections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_platform_connections_community")
                            .from(PlatformConnections::Table, PlatformConnections::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_platform_connections_community_name")
                    .table(PlatformConnections::Table)
                    .col(PlatformConnections::CommunityId)
                    .col(PlatformConnections::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(PlatformConnections::Table).to_owned()).await
    }
}
