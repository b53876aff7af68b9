//! The Reddit platform: a subreddit governed by its members. Reddit has no webhooks, so
//! Polity polls the subreddit's new posts, comments and moderation queue (stored cursors);
//! a new post a policy governs is removed at once, voted on (by `+1` / `-1` replies to
//! Polity's comment under it, or in a chat) and approved on pass; moderation and posting
//! are actions. Over reqwest: Reddit's API is form posts and JSON listings, and the OAuth
//! refresh, rate budget and exactly-once marks are Polity's own either way.
//!
//! - [`RedditAdapter`]: a connection is one subreddit (its space), an OAuth app, and the
//!   moderator account Polity acts as (a refresh token, or a script app's password); its
//!   moderators and approved users are the community's members.
//! - [`api`]: access tokens refreshed before they expire (and at once on a 401), the
//!   User-Agent Reddit requires, and the rate budget from `X-Ratelimit-*`.
//! - [`RedditPoller`]: the three polls.
//! - [`RedditPlatform`]: removals and approvals, comments, votes, messages.

mod adapter;
pub mod api;
mod config;
mod platform;
mod poll;

pub use adapter::RedditAdapter;
pub use config::{API_URL, AUTH_URL, Grant, RedditConfig, SPEC, subreddit_of};
pub use platform::{APPROVE, COMMENT, HOW_TO_VOTE, LOCK, MESSAGE, REMOVE, RedditPlatform, SUBMIT, actions, vote_of};
pub use poll::{COMMENT_CREATED, COMMENTS, MODQUEUE, MODQUEUE_ITEM, POST_SUBMITTED, POSTS, RedditPoller};
