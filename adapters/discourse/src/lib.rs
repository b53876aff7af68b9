//! The Discourse platform: a forum's webhooks as triggers, new topics and posts in what a
//! policy governs held while they are voted on (deleted at once, their content kept in the
//! action) and recovered on pass, and topic, post and message actions, over the REST API
//! (reqwest with the `Api-Key` and `Api-Username` headers Discourse documents).
//!
//! - [`DiscourseAdapter`]: a connection is one forum (its space) and an API key for a
//!   moderator; `test` checks the user is staff.
//! - [`DiscourseWebhooks`]: deliveries, signature first, the instance checked, Polity's own
//!   doings dropped.
//! - [`DiscoursePlatform`]: deletes and recovers, posts and private messages.

mod adapter;
pub mod api;
mod config;
mod platform;
mod webhook;

pub use adapter::DiscourseAdapter;
pub use config::{DiscourseConfig, SPEC, instance_of};
pub use platform::{CREATE_TOPIC, DELETE, DiscoursePlatform, LOCK, PRIVATE_MESSAGE, RECOVER, REPLY, actions};
pub use webhook::{DiscourseWebhooks, POST_CREATED, TOPIC_CREATED, parse, verify};
