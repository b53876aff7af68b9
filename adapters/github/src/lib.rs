//! The GitHub platform: a repository's webhooks as triggers, votes on its issues and pull
//! requests by reactions on Polity's comment, and issue and pull request actions, over the
//! REST API (reqwest: GitHub's API is plain JSON over HTTPS, and the few routes Polity uses
//! need no client crate's model of every type; the rate limits, retries and exactly-once
//! marks are Polity's own either way).
//!
//! - [`GitHubAdapter`]: the host's adapter. A connection is one repository (its space),
//!   with a fine-grained personal access token or a GitHub App's id and private key
//!   ([`jwt`]: the App's JWT; [`api`]: its installation token, kept until it nearly expires).
//! - [`GitHubWebhooks`]: deliveries, `X-Hub-Signature-256` checked first; every event a
//!   trigger `github.EVENT_ACTION`.
//! - [`Redeliveries`]: GitHub never delivers a failed delivery again by itself; this poll
//!   asks it to.
//! - [`GitHubPlatform`]: comments, issues, labels, reviews, merges, and votes: Polity's
//!   comment on the issue, voted on with reactions, read back every `reactions_secs`
//!   (GitHub sends no event for a reaction) and at the deadline.

mod adapter;
pub mod api;
mod config;
pub mod jwt;
mod platform;
mod poll;
mod webhook;

pub use adapter::GitHubAdapter;
pub use config::{API_URL, GitHubConfig, SPEC, is_repo};
pub use platform::{
    ADD_LABELS, CLOSE, COMMENT, CREATE_ISSUE, GitHubPlatform, HOW_TO_VOTE, MERGE, REMOVE_LABEL, REOPEN, REQUEST_REVIEW,
    actions, issue_place, reaction_of,
};
pub use poll::{MAX_ATTEMPTS, REDELIVERIES, Redeliveries};
pub use webhook::{GitHubWebhooks, MARK, parse, verify};
