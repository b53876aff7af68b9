#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Test support for Polity's end-to-end tests. Everything here runs inside tests only, so a
//! broken invariant is a panic with a message rather than an error to handle.
//!
//! - [`discord`]: a stateful fake of Discord (REST API v10 and the gateway websocket) that a
//!   real serenity client connects to, and that tests drive as Discord's users would.
//! - [`db`]: a database of a test's own, SQLite or (when `POLITY_TEST_DATABASE_URL` is set)
//!   PostgreSQL, dropped when the test ends.

pub mod db;
pub mod discord;
