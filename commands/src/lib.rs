//! Polity's slash commands, shared by every platform.
//!
//! - [`catalogue`]: every command, its arguments and help; each platform's surface and
//!   `/help` are built from it.
//! - [`parse`]: text commands (Slack, the console) against the catalogue.
//! - [`ports`]: what handlers need from the runtime; the bot implements it.
//! - [`reply`]: the neutral reply each adapter renders.
//! - One file per command: each handler reads like the story it serves. Permission checks
//!   are the engine's (through the ports), never the adapters'.

pub mod actions;
pub mod audit;
pub mod catalogue;
pub mod export;
pub mod governed;
pub mod help;
pub mod integration;
pub mod kit;
pub mod link;
pub mod parse;
pub mod permission;
pub mod policy;
pub mod ports;
pub mod proposals;
pub mod propose;
pub mod reply;
pub mod role;
pub mod vote;
pub mod whoami;

use catalogue::Handler;
pub use parse::{Parsed, UsageError, parse};
pub use ports::{Invocation, PortError, Ports};
pub use reply::{Attachment, Reply, SecretPrompt};

/// Parses and runs one text command.
///
/// # Errors
/// Internal failures only (the adapter logs them and apologizes); every user mistake is an
/// `Ok` private reply saying what to do instead.
pub async fn handle(ports: &mut dyn Ports, inv: &Invocation, line: &str) -> Result<Reply, PortError> {
    match parse(line) {
        Ok(parsed) => run(ports, inv, &parsed).await,
        Err(e) => Ok(Reply::private(e.0)),
    }
}

/// Runs a parsed command (Discord's adapter builds `Parsed` from its options).
///
/// # Errors
/// Internal failures only.
pub async fn run(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    match args.spec.handler {
        Handler::Propose => propose::run(ports, inv, args).await,
        Handler::Proposals => proposals::list(ports, args).await,
        Handler::Proposal => proposals::show(ports, args).await,
        Handler::Vote => vote::vote(ports, inv, args).await,
        Handler::Unvote => vote::unvote(ports, inv, args).await,
        Handler::Cancel => vote::cancel(ports, inv, args).await,
        Handler::Whoami => Ok(whoami::run(ports, inv)),
        Handler::RoleRequest => role::request(ports, inv, args).await,
        Handler::Help => Ok(help::run(args)),
        Handler::KitList => Ok(kit::list()),
        Handler::KitInstall => kit::install(ports, inv, args).await,
        Handler::PolicyInstall => policy::install(ports, inv, args).await,
        Handler::PolicyList => Ok(policy::list(ports)),
        Handler::PolicyShow => Ok(policy::show(ports, args)),
        Handler::PolicyHistory => policy::history(ports, args).await,
        Handler::PolicyRemove => policy::remove(ports, inv, args).await,
        Handler::RoleCreate => role::create(ports, inv, args).await,
        Handler::RoleDelete => role::delete(ports, inv, args).await,
        Handler::RoleList => Ok(role::list(ports)),
        Handler::RoleGrant => role::grant(ports, inv, args).await,
        Handler::RoleRevoke => role::revoke(ports, inv, args).await,
        Handler::RoleBind => role::bind(ports, inv, args, true).await,
        Handler::RoleUnbind => role::bind(ports, inv, args, false).await,
        Handler::PermissionGrant => permission::change(ports, inv, args, true).await,
        Handler::PermissionRevoke => permission::change(ports, inv, args, false).await,
        Handler::Audit => audit::run(ports, args).await,
        Handler::Link => link::start(ports, inv, args).await,
        Handler::LinkConfirm => link::confirm(ports, inv, args).await,
        Handler::PolicyDryRun => policy::dry_run(ports, args).await,
        Handler::Actions => Ok(actions::run(ports)),
        Handler::Export => export::run(ports, args).await,
        Handler::IntegrationAdd => integration::add(ports, inv, args).await,
        Handler::IntegrationList => integration::list(ports).await,
        Handler::IntegrationTest => integration::test(ports, args).await,
        Handler::IntegrationRemove => integration::remove(ports, inv, args).await,
        Handler::IntegrationConfirm => Ok(integration::confirm()),
    }
}
