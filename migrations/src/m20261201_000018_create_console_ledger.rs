//! `console_messages` and `console_effects`: the console platform's ledger. Every message
//! the console prints gets its number here before it is printed, and every effect it
//! performs is claimed here by its idempotency key (`outbox:ID`, or `line:SESSION:N` for a
//! member's message typed on a numbered line), so a restarted console numbers on and never
//! prints an effect twice.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConsoleMessages {
    Table,
    Id,
    Channel,
    Author,
    Body,
}

#[derive(DeriveIden)]
enum ConsoleEffects {
    Table,
    Key,
    MessageId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConsoleMessages::Table)
                    .col(big_integer(ConsoleMessages::Id).primary_key())
                    .col(text(ConsoleMessages::Channel))
                    .col(text(ConsoleMessages::Author))
                    .col(text(ConsoleMessages::Body))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ConsoleEffects::Table)
                    .col(text(ConsoleEffects::Key).primary_key())
                    .col(big_integer_null(ConsoleEffects::MessageId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ConsoleEffects::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ConsoleMessages::Table).to_owned()).await
    }
}
