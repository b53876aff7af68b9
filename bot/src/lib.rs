//! Polity: the runtime, the store and the command line.
//!
//! - [`config`]: configuration, read once at start.
//! - [`store`]: sea-orm over SQLite (default) or PostgreSQL; the inbox, the outbox and every
//!   governance record.
//! - [`runtime`]: the one path every input takes, and the dispatcher that performs effects.
//! - [`ports`]: the runtime as the commands' ports (the commands live in `polity-commands`).
//! - [`serve`]: the loop behind `polity run`.
//! - [`platforms`]: the platforms this build serves (the one file that names them);
//!   [`spaces`]: every connection's spaces governed the same way; [`run`]: `polity run`.
//! - [`http`]: the HTTP server beside it: health, metrics, webhooks; [`metrics`]: what is
//!   counted.
//! - [`console`]: `polity console`.
//! - [`export`]: `polity export`, the governance record as JSON or CSV.
//! - [`policy_cli`]: `polity policy check`.

pub mod config;
pub mod connections;
pub mod console;
pub mod export;
pub mod http;
pub mod init;
pub mod metrics;
pub mod platforms;
pub mod policy_cli;
pub mod ports;
pub mod run;
pub mod runtime;
pub mod serve;
pub mod spaces;
pub mod store;
