//! Polity's governance core: everything that decides, nothing that talks.
//!
//! Push an [`Inbound`] and the time into the [`Engine`]; pull out the new state, the
//! [`Effect`]s the platforms must carry out and the [`Audit`] trail. No IO, no clock, no async:
//! the runtime in `bot/` stores the output in one transaction and performs the effects.
//!
//! - [`ids`], [`community`], [`action`]: who and what (typed ids, members and linked accounts,
//!   roles and permissions, actions and their names).
//! - [`io`]: the normalized vocabulary in and out.
//! - [`policy`]: policy documents, their validation and PolicyKit's selection rule.
//! - [`script`]: the rhai sandbox that runs policies' script blocks within limits.
//! - [`vote`]: vote specs, ballots from reactions or text, tallies and early decisions.
//! - [`proposal`], [`engine`]: proposals and the state machine that moves them.
//! - [`kits`]: the starter kits.

pub mod action;
pub mod change;
pub mod community;
pub mod duration;
pub mod engine;
pub mod error;
pub mod ids;
pub mod io;
pub mod kits;
pub mod platform;
pub mod policy;
pub mod proposal;
pub mod script;
pub mod template;
pub mod vote;

pub use action::{Action, ActionData, ActionPattern, ActionStatus, ActionType};
pub use community::{Community, Member, Permission};
pub use engine::{Ctx, Engine, Step};
pub use error::GovError;
pub use ids::{AccountRef, CommunityId, MemberId, MessageRef, Place, PlatformRef, PolicyId, ProposalId};
pub use io::{Audit, Effect, Inbound};
pub use proposal::{Proposal, ProposalState};
