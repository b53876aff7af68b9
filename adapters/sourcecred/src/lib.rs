//! SourceCred as a Polity connection: a community's SourceCred instance, read for the cred
//! its policies ask about (`sourcecred.cred(member)`). It is read, never acted on.
//!
//! - **What it reads.** `GET <url>/output/accounts.json` (the file `sourcecred analysis` or
//!   `grain` writes, served by the instance's static site): at start, then every
//!   `refresh_secs` (300; at least 60), conditionally (`If-None-Match` with the last `ETag`,
//!   `If-Modified-Since` with the last `Last-Modified`; a 304 is a good read). A redirect is
//!   not followed, to another host or its own: the read fails saying where it pointed, so
//!   the admin gives that address as `url` (a static site serves the file where it is). Of
//!   each account only the identity's `id`, `name`, `subtype` and alias addresses, the
//!   `balance` (atto-grain in a string, read exactly) and `totalCred` are read, into typed
//!   values; every other key, of any version, is skipped unread (the `cred` arrays and
//!   `allocationHistory` that make most of the file take no memory), a compat header
//!   (`[{type, version}, payload]`) is accepted, a body over 32 MiB is refused. A document
//!   that cannot be read (not JSON, or a required value missing or of the wrong type, said
//!   with its path) keeps the last good one.
//! - **How it matches a member** ([`Accounts::find`]), by the accounts the host gives for
//!   them, each named by its platform's kind (`discord`, `github`, `discourse`,
//!   `sourcecred`), never by the connection that brought it; the first that holds:
//!   1. a linked account of the platform `sourcecred` that names an identity (its name,
//!      regardless of case, or its id): a link an admin makes, which members cannot;
//!   2. a linked account that is an identity's alias: the alias's plugin is the account's
//!      platform, exactly, and its account the account's id (regardless of case: GitHub
//!      logins). Only SourceCred's Discord members and GitHub users are matched
//!      ([`accounts::alias_parts`]). Discourse accounts are not: an alias names a user of
//!      one forum (`N\0sourcecred\0discourse\0user\0<forum url>\0<username>\0`), and the
//!      account the host gives names no forum, so a same-named user of another forum would
//!      take the cred; such a member is linked as in 1;
//!   3. only on a connection with `match_names=true`: the member's Polity name, as
//!      SourceCred makes names, regardless of case. Members choose their names (a platform's
//!      display name), so anyone could take another's cred by a name: it is off unless the
//!      community's admins choose members' names.
//!
//!   None: 0 cred and grain, and a reason saying how to become known (SourceCred's operator
//!   adds the alias of a linked account to their identity in the ledger, or the member
//!   links the account SourceCred knows them by).
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
