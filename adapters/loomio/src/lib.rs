//! The Loomio platform: decisions made in a Loomio group. A policy starts a poll there
//! (`loomio.poll`) and the poll's outcome, read through Loomio's API when it closes, decides
//! the proposal; discussions and polls are actions; what happens to the group's polls is a
//! trigger (over reqwest: Loomio's API is plain JSON, and no maintained client crate exists).
//!
//! - [`LoomioAdapter`]: a connection is one group (its space) on one instance, with the API
//!   key of the user Polity acts as (`/api/b2`) or an older instance's group key (`/api/b1`);
//!   the group's members become the community's, at start and every hour; the group's polls
//!   are read every `poll_secs`, so their triggers come even without a webhook.
//! - [`LoomioWebhooks`]: Loomio's webhooks are unsigned text, so they are only hints: the
//!   polls they mention are read from the API, and only its answer is recorded.
//! - [`LoomioPlatform`]: polls (once, even when a start is retried), discussions, members.

mod adapter;
pub mod api;
mod config;
mod platform;
mod webhook;

pub use adapter::{LoomioAdapter, MEMBERS, POLLS};
pub use config::{ApiVersion, LOOMIO_URL, LoomioConfig, SPEC, space_of};
pub use platform::{CREATE_DISCUSSION, CREATE_POLL, LIST_MEMBERS, LoomioPlatform, POLL, POLL_TYPES, actions, hint_of};
pub use webhook::{LoomioWebhooks, MAX_POLLS, POLL_CLOSED, POLL_CREATED, STANCE_CREATED, poll_keys};
