//! `ballots`: the current ballot of each voter on each proposal (the audit log keeps the
//! history). `member_id` is not a foreign key: a ballot outlives its voter's membership.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Proposals {
    Table,
    CommunityId,
    Id,
}

#[derive(DeriveIden)]
enum Ballots {
    Table,
    Id,
    CommunityId,
    ProposalId,
    MemberId,
    Choice,
    Platform,
    Account,
    Source,
    CastAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Ballots::Table)
                    .col(big_pk_auto(Ballots::Id))
                    .col(big_integer(Ballots::CommunityId))
                    .col(big_integer(Ballots::ProposalId))
                    .col(big_integer(Ballots::MemberId))
                    .col(text(Ballots::Choice))
                    .col(text(Ballots::Platform))
                    .col(text(Ballots::Account))
                    .col(text(Ballots::Source))
                    .col(timestamp_with_time_zone(Ballots::CastAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ballots_proposal")
                            .from(Ballots::Table, (Ballots::CommunityId, Ballots::ProposalId))
                            .to(Proposals::Table, (Proposals::CommunityId, Proposals::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_ballots_community_proposal_member")
                    .table(Ballots::Table)
                    .col(Ballots::CommunityId)
                    .col(Ballots::ProposalId)
                    .col(Ballots::MemberId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Ballots::Table).to_owned()).await
    }
}
