//! `member_roles`: which member holds which role (`everyone` is implicit and not stored).
//! The role is not a foreign key: the store mirrors the engine's state as it is, and the
//! engine, not the database, keeps roles and grants consistent.

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
enum MemberRoles {
    Table,
    CommunityId,
    MemberId,
    Role,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MemberRoles::Table)
                    .col(big_integer(MemberRoles::CommunityId))
                    .col(big_integer(MemberRoles::MemberId))
                    .col(text(MemberRoles::Role))
                    .primary_key(
                        Index::create().col(MemberRoles::CommunityId).col(MemberRoles::MemberId).col(MemberRoles::Role),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_member_roles_member")
                            .from(MemberRoles::Table, (MemberRoles::CommunityId, MemberRoles::MemberId))
                            .to(Members::Table, (Members::CommunityId, Members::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MemberRoles::Table).to_owned()).await
    }
}
