//! Polity's governance core. Pure: no IO, no clock, no async.
pub mod action;
pub mod community;
pub mod duration;
pub mod ids;
pub mod vote;
