//! Votes: specifications, ballots, reactions and tallies.

pub mod ballot;
pub mod emoji;
pub mod spec;
pub mod tally;

pub use ballot::{BallotChange, Choice};
pub use spec::{Quorum, Threshold, VoteKind, VoteSpec, Voters};
pub use tally::{Decision, Tally};
