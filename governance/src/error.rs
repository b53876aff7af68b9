//! What can go wrong in a governance step, said so the user knows what to do instead.

use crate::community::CommunityError;
use crate::ids::ProposalId;
use crate::policy::PolicyErrors;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GovError {
    #[error("there is no proposal {0}: `/proposals` lists the open ones")]
    UnknownProposal(ProposalId),
    #[error("proposal {0} is closed")]
    Closed(ProposalId),
    #[error("proposal {0} has no vote: its policy decides without ballots")]
    NoVote(ProposalId),
    #[error("{0}")]
    NotEligible(String),
    #[error("{0}")]
    BadChoice(String),
    #[error("you have no ballot on {0}")]
    NoBallot(ProposalId),
    #[error("{0}")]
    NotPermitted(String),
    #[error("there is no policy named \"{0}\": `/policy list` shows the installed ones")]
    UnknownPolicy(String),
    #[error("no policy decides plain proposals yet: install a starter kit (`/kit list`) or a platform policy")]
    NoProposalPolicy,
    #[error("there is no starter kit named \"{0}\": `/kit list` shows them")]
    UnknownKit(String),
    #[error("the policy is not valid:\n{0}")]
    Policy(#[from] PolicyErrors),
    #[error(transparent)]
    Community(#[from] CommunityError),
}
