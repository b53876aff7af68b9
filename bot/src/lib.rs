//! Polity: the runtime, the store and the command line.
//!
//! - [`config`]: configuration, read once at start.
//! - [`store`]: sea-orm over SQLite (default) or PostgreSQL; the inbox, the outbox and every
//!   governance record.
//! - [`runtime`]: the one path every input takes, and the dispatcher that performs effects.
//! - [`commands`]: the slash commands the console understands.
//! - [`console`]: `polity console`.
//! - [`export`]: `polity export`, the governance record as JSON or CSV.
//! - [`policy_cli`]: `polity policy check`.

pub mod commands;
pub mod config;
pub mod console;
pub mod export;
pub mod policy_cli;
pub mod runtime;
pub mod serve;
pub mod store;
