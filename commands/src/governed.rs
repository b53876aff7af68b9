//! Commands that change governance request a `polity.*` action: a member who may execute it
//! changes things at once; anyone else's request becomes a proposal under the constitution.

use crate::ports::{Invocation, PortError, Ports, StagedConnection, SubmitError};
use crate::reply::Reply;
use polity_governance::action::Action;
use polity_governance::change::Change;
use polity_governance::io::Inbound;

/// Requests `change`; `done` is said when it was carried out at once, `what` describes the
/// change when it goes to a vote.
///
/// # Errors
/// Internal failures only.
pub async fn request(
    ports: &mut dyn Ports,
    inv: &Invocation,
    change: Change,
    done: String,
    what: String,
) -> Result<Reply, PortError> {
    request_with(ports, inv, change, done, what, None).await
}

/// [`request`], storing a platform connection with the request.
///
/// # Errors
/// Internal failures only.
pub async fn request_with(
    ports: &mut dyn Ports,
    inv: &Invocation,
    change: Change,
    done: String,
    what: String,
    connection: Option<StagedConnection>,
) -> Result<Reply, PortError> {
    let kind = change.kind().action_type();
    // The description is what the vote message says is proposed.
    let action = Action::new(kind.clone(), inv.invoker.clone(), &inv.id)
        .at(inv.place.clone())
        .requested()
        .with("summary", what.as_str());
    let action = change.write(action);
    let submitted = match connection {
        Some(c) => ports.submit_with_connection(Inbound::Action { action }, c).await,
        None => ports.submit(Inbound::Action { action }).await,
    };
    match submitted {
        Ok(s) if s.duplicate => Ok(Reply::private("That request was already received.")),
        Ok(s) if s.applied.contains(&kind) => Ok(Reply::private(done)),
        Ok(s) => Ok(Reply::private(match s.proposals.first() {
            Some(t) if t.state.is_open() => {
                format!("Proposal {} asks to {what}; \"{}\" decides, and it happens if it passes.", t.id, t.policy)
            }
            Some(t) => format!(
                "Proposal {} to {what} {} at once under \"{}\"{}.",
                t.id,
                t.state,
                t.policy,
                t.why.as_ref().map(|w| format!(": {w}")).unwrap_or_default()
            ),
            None => format!("Could not {what}: the audit log (`/audit`) says why."),
        })),
        Err(SubmitError::Mistake(e)) => Ok(Reply::private(e.to_string())),
        Err(SubmitError::Refused(text)) => Ok(Reply::private(text)),
        Err(SubmitError::Internal(e)) => Err(e),
    }
}
