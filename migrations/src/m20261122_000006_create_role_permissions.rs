//! `role_permissions`: what each role may do (`propose`, `execute`, `vote`) with which
//! actions (`*`, `discord.*`, `discord.rename_channel`).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    CommunityId,
    Name,
}

#[derive(DeriveIden)]
enum RolePermissions {
    Table,
    CommunityId,
    Role,
    Permission,
    Actions,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RolePermissions::Table)
                    .col(big_integer(RolePermissions::CommunityId))
                    .col(text(RolePermissions::Role))
                    .col(text(RolePermissions::Permission))
                    .col(text(RolePermissions::Actions))
                    .primary_key(
                        Index::create()
                            .col(RolePermissions::CommunityId)
                            .col(RolePermissions::Role)
                            .col(RolePermissions::Permission)
                            .col(RolePermissions::Actions),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_role_permissions_role")
                            .from(RolePermissions::Table, (RolePermissions::CommunityId, RolePermissions::Role))
                            .to(Roles::Table, (Roles::CommunityId, Roles::Name))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RolePermissions::Table).to_owned()).await
    }
}
