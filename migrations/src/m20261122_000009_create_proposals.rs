//! `proposals`: one run of a policy on one action. The key is `(community_id, id)` where `id`
//! is the engine's per-community `ProposalId`. `action`, `vote` (the frozen spec, place and
//! eligible voters; ballots and messages have their own tables), `data` and `process` are
//! JSON text.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Communities {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Proposals {
    Table,
    CommunityId,
    Id,
    PolicyId,
    PolicyName,
    State,
    ProposerId,
    ProposerName,
    Action,
    Vote,
    Winner,
    Data,
    Process,
    Reverted,
    OpenedAt,
    ClosesAt,
    DecidedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Proposals::Table)
                    .col(big_integer(Proposals::CommunityId))
                    .col(big_integer(Proposals::Id))
                    .col(big_integer(Proposals::PolicyId))
                    .col(text(Proposals::PolicyName))
                    .col(text(Proposals::State))
                    .col(big_integer_null(Proposals::ProposerId))
                    .col(text(Proposals::ProposerName))
                    .col(text(Proposals::Action))
                    .col(text_null(Proposals::Vote))
                    .col(text_null(Proposals::Winner))
                    .col(text(Proposals::Data))
                    .col(text_null(Proposals::Process))
                    .col(boolean(Proposals::Reverted))
                    .col(timestamp_with_time_zone(Proposals::OpenedAt))
                    .col(timestamp_with_time_zone_null(Proposals::ClosesAt))
                    .col(timestamp_with_time_zone_null(Proposals::DecidedAt))
                    .primary_key(Index::create().col(Proposals::CommunityId).col(Proposals::Id))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_proposals_community")
                            .from(Proposals::Table, Proposals::CommunityId)
                            .to(Communities::Table, Communities::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_proposals_community_state")
                    .table(Proposals::Table)
                    .col(Proposals::CommunityId)
                    .col(Proposals::State)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Proposals::Table).to_owned()).await
    }
}
