//! `scheduled_jobs`: work due at a time, one per `(community, proposal, kind)`. Today the
//! only kind is `deadline`: an open proposal's `closes_at`.

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
enum ScheduledJobs {
    Table,
    Id,
    CommunityId,
    ProposalId,
    Kind,
    DueAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ScheduledJobs::Table)
                    .col(big_pk_auto(ScheduledJobs::Id))
                    .col(big_integer(ScheduledJobs::CommunityId))
                    .col(big_integer(ScheduledJobs::ProposalId))
                    .col(text(ScheduledJobs::Kind))
                    .col(timestamp_with_time_zone(ScheduledJobs::DueAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_scheduled_jobs_proposal")
                            .from(ScheduledJobs::Table, (ScheduledJobs::CommunityId, ScheduledJobs::ProposalId))
                            .to(Proposals::Table, (Proposals::CommunityId, Proposals::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_scheduled_jobs_community_proposal_kind")
                    .table(ScheduledJobs::Table)
                    .col(ScheduledJobs::CommunityId)
                    .col(ScheduledJobs::ProposalId)
                    .col(ScheduledJobs::Kind)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_scheduled_jobs_due_at")
                    .table(ScheduledJobs::Table)
                    .col(ScheduledJobs::DueAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ScheduledJobs::Table).to_owned()).await
    }
}
