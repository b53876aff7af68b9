//! `vote_messages`: the messages platforms posted for a proposal's vote, in the order they
//! were reported. A message is unique within a community: `platform` is the community's
//! name for its connection (`discord`, `console`), so it is not unique across communities.

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
enum VoteMessages {
    Table,
    Id,
    CommunityId,
    ProposalId,
    Platform,
    Channel,
    Message,
    PostedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VoteMessages::Table)
                    .col(big_pk_auto(VoteMessages::Id))
                    .col(big_integer(VoteMessages::CommunityId))
                    .col(big_integer(VoteMessages::ProposalId))
                    .col(text(VoteMessages::Platform))
                    .col(text(VoteMessages::Channel))
                    .col(text(VoteMessages::Message))
                    .col(timestamp_with_time_zone(VoteMessages::PostedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_vote_messages_proposal")
                            .from(VoteMessages::Table, (VoteMessages::CommunityId, VoteMessages::ProposalId))
                            .to(Proposals::Table, (Proposals::CommunityId, Proposals::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_vote_messages_community_platform_channel_message")
                    .table(VoteMessages::Table)
                    .col(VoteMessages::CommunityId)
                    .col(VoteMessages::Platform)
                    .col(VoteMessages::Channel)
                    .col(VoteMessages::Message)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_vote_messages_proposal")
                    .table(VoteMessages::Table)
                    .col(VoteMessages::CommunityId)
                    .col(VoteMessages::ProposalId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(VoteMessages::Table).to_owned()).await
    }
}
