//! What handlers need from the runtime. The bot implements it over its store and engine;
//! nothing here does IO itself.

use chrono::{DateTime, Utc};
use polity_governance::GovError;
use polity_governance::action::ActionType;
use polity_governance::community::Community;
use polity_governance::ids::{AccountRef, MemberId, Place, PolicyId, ProposalId};
use polity_governance::io::Inbound;
use polity_governance::platform::{ActionInfo, BoxFuture, PlatformSpec};
use polity_governance::policy::CompiledPolicy;
use polity_governance::proposal::{Proposal, ProposalState};
use std::sync::Arc;

/// Who ran a command, where, and the platform's id for this invocation (so a retried
/// delivery of the same command changes nothing the second time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub invoker: AccountRef,
    pub place: Place,
    pub id: String,
}

/// A proposal a submission opened or decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touched {
    pub id: ProposalId,
    pub state: ProposalState,
    pub policy: String,
    /// Why it ended at once, when that is not the vote's doing (nobody may vote).
    pub why: Option<String>,
}

/// What a submission did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submitted {
    /// The input was delivered before; nothing changed.
    pub duplicate: bool,
    pub proposals: Vec<Touched>,
    /// Governance changes carried out in this step.
    pub applied: Vec<ActionType>,
}

/// A submission the engine refused (a user mistake) or that failed inside.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Mistake(#[from] GovError),
    #[error(transparent)]
    Internal(#[from] PortError),
    /// Refused before it reached the engine, for the reason given (say it as it is).
    #[error("{0}")]
    Refused(String),
}

/// A connection's webhook, as `/integration add` shows it once.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The secret Polity generated, kept with the connection.
    pub secret: String,
    /// Where the platform delivers (with the secret in it, for a platform that does not sign
    /// its deliveries).
    pub url: String,
    /// Whether the secret is in [`Webhook::url`] (else it is pasted as the signing secret).
    pub secret_in_url: bool,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("secret_in_url", &self.secret_in_url).finish_non_exhaustive()
    }
}

/// A platform connection to store with a request, its secret typed privately.
#[derive(Clone, PartialEq, Eq)]
pub struct StagedConnection {
    pub name: String,
    pub platform: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub secret: Option<String>,
    /// The webhook secret Polity generated for it, when its platform delivers webhooks.
    pub hook_secret: Option<String>,
}

impl std::fmt::Debug for StagedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedConnection")
            .field("name", &self.name)
            .field("platform", &self.platform)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("hook_secret", &self.hook_secret.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A failure inside the runtime (the store is down). The adapter logs it and apologizes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// One stored version of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub id: PolicyId,
    pub version: i32,
    pub active: bool,
    pub installed_at: DateTime<Utc>,
    pub source: String,
}

/// One line of the governance record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLine {
    pub at: DateTime<Utc>,
    pub text: String,
}

/// What confirming a link code came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// The account is now linked to this member.
    Linked(String),
    Unknown,
    Expired,
    AlreadyUsed,
    /// The code is for another account.
    OtherAccount(AccountRef),
    /// The account already belongs to this member.
    AlreadyMember(String),
    /// Too many wrong codes lately: try again after a while.
    TooManyTries,
}

/// A platform connection as commands may show it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub name: String,
    pub platform: String,
    /// Allowed: by an admin, or by the proposal that connected it.
    pub enabled: bool,
    pub has_secret: bool,
}

pub trait Ports: Send {
    /// The community as it is now.
    fn community(&self) -> &Community;
    /// The active policies, in install order.
    fn policies(&self) -> Vec<Arc<CompiledPolicy>>;
    /// Hands a governance input to the engine, recorded under the invocation's id.
    fn submit<'a>(&'a mut self, input: Inbound) -> BoxFuture<'a, Result<Submitted, SubmitError>>;
    fn proposals(&self, open_only: bool) -> BoxFuture<'_, Result<Vec<Proposal>, PortError>>;
    fn proposal(&self, id: ProposalId) -> BoxFuture<'_, Result<Option<Proposal>, PortError>>;
    /// What Polity could not carry out for a proposal, with the platform's reason (and the
    /// fix, where the platform knows it), oldest first.
    fn proposal_failures(&self, id: ProposalId) -> BoxFuture<'_, Result<Vec<String>, PortError>>;
    fn policy_history<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Vec<PolicyVersion>, PortError>>;
    /// The latest `count` lines, newest first.
    fn audit(&self, count: u64) -> BoxFuture<'_, Result<Vec<AuditLine>, PortError>>;
    /// Makes a one-time code that links `account` to `member` when typed by that account.
    fn start_link(&mut self, member: MemberId, account: AccountRef) -> BoxFuture<'_, Result<String, PortError>>;
    /// Redeems a code typed by `by`.
    fn confirm_link<'a>(&'a mut self, code: &'a str, by: AccountRef) -> BoxFuture<'a, Result<LinkOutcome, PortError>>;
    /// What `policy` would have done with the inputs since `since`, without doing any of it:
    /// one line per decision.
    fn dry_run<'a>(&'a self, policy: &'a str, since: DateTime<Utc>) -> BoxFuture<'a, Result<Vec<String>, PortError>>;
    /// The time of this invocation.
    fn now(&self) -> DateTime<Utc>;
    /// The actions, triggers and processes of this community's platforms and of Polity.
    fn actions(&self) -> Vec<ActionInfo>;
    /// Whether a secret typed now can be stored (the store has its secret key).
    fn can_store_secrets(&self) -> bool {
        true
    }
    /// What every platform of this build declares (connected here or not), and Polity's own.
    fn declared_actions(&self) -> Vec<ActionInfo> {
        self.actions()
    }
    /// This community's record, as JSON or CSV.
    fn export(&self, csv: bool) -> BoxFuture<'_, Result<String, PortError>>;
    fn connections(&self) -> BoxFuture<'_, Result<Vec<ConnectionInfo>, PortError>>;
    /// [`Ports::submit`], storing `connection` (its secret sealed, not yet enabled) in the
    /// same step; refused when the name is taken or secrets cannot be stored.
    fn submit_with_connection(
        &mut self,
        input: Inbound,
        connection: StagedConnection,
    ) -> BoxFuture<'_, Result<Submitted, SubmitError>>;
    /// The platforms this Polity connects to, as their adapters declare them.
    fn platforms(&self) -> Vec<PlatformSpec>;
    /// Whether Polity can reach the connection, in words.
    fn test_connection<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<String, PortError>>;
    /// A new one-time code, unpredictable from outside Polity: what a server's owner or admin
    /// types inside it to confirm that it joins this community (`/integration confirm`).
    fn one_time_code(&mut self) -> String;
    /// The link that adds Polity's own running bot on `platform` to a server (Discord's
    /// invite link), when it runs one: such a connection needs no secret of its own.
    fn bot_invite(&self, platform: &str) -> Option<String> {
        let _ = platform;
        None
    }
    /// For a platform that delivers webhooks to Polity: a new webhook secret (long, random),
    /// and where the platform is to deliver a connection `name`'s webhooks with it, as the
    /// admin pastes it into the platform's settings. `None` for other platforms.
    fn new_webhook(&mut self, platform: &str, name: &str) -> Option<Webhook> {
        let _ = (platform, name);
        None
    }
}
