//! SourceCred as a Polity connection: a community's SourceCred instance, read for the cred
//! its policies ask about (`sourcecred.cred(member)`). It is read, never acted on.
//!
//! - **What it reads.** `GET <url>/output/accounts.json` (the file `sourcecred analysis` or
//!   `grain` writes, served by the instance's static site): at start, then every
//!   `refresh_secs` (300; at least 60), conditionally (`If-None-Match` with the last `ETag`,
//!   `If-Modified-Since` with the last `Last-Modified`; a 304 is a good read). Of each
//!   account only the identity's `id`, `name` and alias addresses, the `balance` (atto-grain
//!   in a string, read exactly) and `totalCred` are used; other keys, of any version, are
//!   ignored, a compat header (`[{type, version}, payload]`) is accepted, a body over 32 MiB
//!   is refused. A document that cannot be read keeps the last good one.
//! - **How it matches a member** ([`Accounts::find`]), the first that holds:
//!   1. a linked account on this connection (or on `sourcecred`) that names an identity
//!      (its name, regardless of case, or its id);
//!   2. a linked account that is an identity's alias: the alias's plugin (`discord`,
//!      `github`, `discourse`) is the account's platform (a connection named `discord-eng`
//!      is Discord's) and its last part is the account's id (regardless of case: GitHub
//!      logins);
//!   3. the member's name, as SourceCred makes names, regardless of case.
//!
//!   None: 0 cred and grain, and a reason the member can act on.
//! - **When it errors.** A lookup is an error, never "no cred", while no read has succeeded
//!   yet, and once the last good read is older than `stale_after_secs` (3600) because reads
//!   since failed: each says where and why.
//!
//! [`SourceCredAdapter`] is the host's [`polity_port::Adapter`]; a connection
//! ([`SourceCredConnection`]) announces its instance as its one space, owned by the
//! instance itself, and hands out its [`Instance`] as the community's
//! [`polity_port::CredSource`].

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod accounts;
pub mod adapter;
pub mod config;
pub mod instance;

pub use accounts::{Accounts, Identity, ReadError};
pub use adapter::{SourceCredAdapter, SourceCredConnection};
pub use config::{SPEC, SourceCredConfig};
pub use instance::{Clock, FetchError, Instance, Read, SystemClock};
