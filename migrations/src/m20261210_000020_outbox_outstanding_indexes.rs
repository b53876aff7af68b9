//! The outbox's outstanding rows (`pending`, `in_flight`) and its failed rows get partial
//! indexes of their own, in place of the index on `(status, next_attempt_at)`.
//!
//! Every outbox row changes status two or three times (pending, in flight, done), and each
//! change leaves the old row version behind until it is vacuumed (on PostgreSQL; at once
//! when autovacuum is off). An index over every status kept those versions, so reading the
//! few due rows walked every row ever performed, and a database used before grew slower with
//! every run. These indexes hold only what the dispatcher looks for, by id (its paging order)
//! and by proposal (a tally edit looks for newer and older edits of its proposal). Queries
//! must repeat each predicate as written here, with the statuses as literals, for either
//! database to use them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    CommunityId,
    ProposalId,
    Status,
    NextAttemptAt,
}

const OUTSTANDING: [&str; 2] = ["pending", "in_flight"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("ix_outbox_status_next_attempt_at").table(Outbox::Table).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_outstanding")
                    .table(Outbox::Table)
                    .col(Outbox::Id)
                    .and_where(Expr::col(Outbox::Status).is_in(OUTSTANDING))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_outstanding_proposal")
                    .table(Outbox::Table)
                    .col(Outbox::CommunityId)
                    .col(Outbox::ProposalId)
                    .and_where(Expr::col(Outbox::Status).is_in(OUTSTANDING))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_failed")
                    .table(Outbox::Table)
                    .col(Outbox::Id)
                    .and_where(Expr::col(Outbox::Status).eq("failed"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in ["ix_outbox_failed", "ix_outbox_outstanding_proposal", "ix_outbox_outstanding"] {
            manager.drop_index(Index::drop().name(name).table(Outbox::Table).to_owned()).await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_outbox_status_next_attempt_at")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }
}
