//! `roles`: the roles of a community (including the implicit `everyone`), keyed by name.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    CommunityId,
    Name,
    Description,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(big_integer(Roles::CommunityId))
                    .col(text(Roles::Name))
                    .col(text(Roles::Description))
                    .primary_key(Index::create().col(Roles::CommunityId).col(Roles::Name))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_roles_community")
                            .from(Roles::Table, Roles::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Roles::Table).to_owned()).await
    }
}
