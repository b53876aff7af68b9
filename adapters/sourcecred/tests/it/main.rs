//! The SourceCred adapter as the host runs it, against a fake instance's site
//! (`polity_tests::sourcecred`). One binary: each file is a concern.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod failures;
mod fake;
mod host;
mod refresh;
mod support;
