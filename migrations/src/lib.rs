//! Polity's schema, one migration per file. Migrations name tables and columns as strings
//! and never import the entities, so old migrations keep compiling as the code moves on.
//!
//! Conventions, on both SQLite and PostgreSQL:
//! - ids are `bigint`; the ids the governance engine allocates (communities, members,
//!   policies, proposals) are stored as given, scoped by `community_id` (composite keys);
//!   rows only the store creates (outbox, audit, ballots ...) have an auto-increment `id`.
//! - timestamps are `timestamp with time zone` (text in RFC 3339 on SQLite, which orders
//!   correctly because every value is written by the same encoder, in UTC).
//! - JSON is kept as `text`: it round-trips exactly on both backends.
//! - rows that belong to a community go with it (`ON DELETE CASCADE`).

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_create_communities;
mod m20261122_000002_create_platform_connections;
mod m20261122_000003_create_members;
mod m20261122_000004_create_linked_accounts;
mod m20261122_000005_create_roles;
mod m20261122_000006_create_role_permissions;
mod m20261122_000007_create_member_roles;
mod m20261122_000008_create_policies;
mod m20261122_000009_create_proposals;
mod m20261122_000010_create_ballots;
mod m20261122_000011_create_vote_messages;
mod m20261122_000012_create_inbox;
mod m20261122_000013_create_outbox;
mod m20261122_000014_create_scheduled_jobs;
mod m20261122_000015_create_audit_log;
mod m20261122_000016_create_settings;
mod m20261122_000017_create_link_codes;
mod m20261201_000018_create_console_ledger;
mod m20261201_000019_create_polls;
mod m20261210_000020_outbox_outstanding_indexes;
mod m20261215_000021_connection_hook_secret_and_role_bindings;
mod m20261220_000022_inbox_dedup_key_first;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_communities::Migration),
            Box::new(m20261122_000002_create_platform_connections::Migration),
            Box::new(m20261122_000003_create_members::Migration),
            Box::new(m20261122_000004_create_linked_accounts::Migration),
            Box::new(m20261122_000005_create_roles::Migration),
            Box::new(m20261122_000006_create_role_permissions::Migration),
            Box::new(m20261122_000007_create_member_roles::Migration),
            Box::new(m20261122_000008_create_policies::Migration),
            Box::new(m20261122_000009_create_proposals::Migration),
            Box::new(m20261122_000010_create_ballots::Migration),
            Box::new(m20261122_000011_create_vote_messages::Migration),
            Box::new(m20261122_000012_create_inbox::Migration),
            Box::new(m20261122_000013_create_outbox::Migration),
            Box::new(m20261122_000014_create_scheduled_jobs::Migration),
            Box::new(m20261122_000015_create_audit_log::Migration),
            Box::new(m20261122_000016_create_settings::Migration),
            Box::new(m20261122_000017_create_link_codes::Migration),
            Box::new(m20261201_000018_create_console_ledger::Migration),
            Box::new(m20261201_000019_create_polls::Migration),
            Box::new(m20261210_000020_outbox_outstanding_indexes::Migration),
            Box::new(m20261215_000021_connection_hook_secret_and_role_bindings::Migration),
            Box::new(m20261220_000022_inbox_dedup_key_first::Migration),
        ]
    }
}
