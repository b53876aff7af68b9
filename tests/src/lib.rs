#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Test support for Polity's end-to-end tests. Everything here runs inside tests only, so a
//! broken invariant is a panic with a message rather than an error to handle.
//!
//! - [`discord`]: a stateful fake of Discord (REST API v10 and the gateway websocket) that a
//!   real serenity client connects to, and that tests drive as Discord's users would.
//! - [`opencollective`]: a stateful fake of Open Collective's GraphQL API v2 (expenses, their
//!   activities and comments, personal tokens), with the webhook deliveries it would send.
//! - [`slack`]: a stateful fake of Slack (the Web API, the Socket Mode websocket, `response_url`s
//!   and request signing) that slack-morphism connects to, and that tests drive as Slack's users
//!   would.
//! - [`discourse`]: a stateful fake of a Discourse forum's REST API (topics, posts, private
//!   messages, deletions and recoveries by staff), with the signed webhook deliveries
//!   Discourse would send.
//! - [`github`]: a stateful fake of GitHub's REST API (issues, pull requests, comments and
//!   their reactions, labels, merges, a webhook's deliveries), with the signed webhook
//!   deliveries GitHub would send.
//! - [`loomio`]: a stateful fake of a Loomio instance's API (groups, their members, polls and
//!   their votes, discussions), with the unsigned webhook texts Loomio would send.
//! - [`reddit`]: a stateful fake of Reddit's OAuth token endpoint and API for one subreddit
//!   (listings, comments, moderation, messages, access tokens that expire, its rate limit).
//! - [`db`]: a database of a test's own, SQLite or (when `POLITY_TEST_DATABASE_URL` is set)
//!   PostgreSQL, dropped when the test ends.
//! - [`sourcecred`]: a fake SourceCred instance's site serving `output/accounts.json` (with
//!   `ETag`, `Last-Modified` and 304s), and builders for the document in SourceCred's shape.

pub mod db;
pub mod discord;
pub mod discourse;
pub mod github;
pub mod loomio;
pub mod opencollective;
pub mod reddit;
pub mod slack;
pub mod sourcecred;
