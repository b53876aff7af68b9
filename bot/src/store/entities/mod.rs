//! The tables as sea-orm entities. JSON is kept in text columns and decoded by the store.

pub mod audit_log;
pub mod ballots;
pub mod communities;
pub mod console_effects;
pub mod console_messages;
pub mod inbox;
pub mod link_codes;
pub mod linked_accounts;
pub mod member_roles;
pub mod members;
pub mod outbox;
pub mod platform_connections;
pub mod policies;
pub mod polls;
pub mod proposals;
pub mod role_permissions;
pub mod roles;
pub mod scheduled_jobs;
pub mod settings;
pub mod vote_messages;
