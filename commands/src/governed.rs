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
    Ok(request_with(ports, inv, change, done, what, None).await?.0)
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
) -> Result<(Reply, bool), PortError> {
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
    let reply = match submitted {
        Ok(s) if s.duplicate => Reply::private("That request was already received."),
        Ok(s) if s.applied.contains(&kind) => return Ok((Reply::private(done), true)),
        Ok(s) => {
            return Ok((
                Reply::private(match s.proposals.first() {
                    Some(t) if t.state.is_open() => format!(
                        "Proposal {} asks to {what}; \"{}\" decides, and it happens if it passes.{}",
                        t.id,
                        t.policy,
                        t.why.as_ref().map(|w| format!(" But {w}.")).unwrap_or_default()
                    ),
                    Some(t) => format!(
                        "Proposal {} to {what} {} at once under \"{}\"{}.",
                        t.id,
                        t.state,
                        t.policy,
                        t.why.as_ref().map(|w| format!(": {w}")).unwrap_or_default()
                    ),
                    None => format!("Could not {what}: the audit log (`/audit`) says why."),
                }),
                true,
            ));
        }
        Err(SubmitError::Mistake(e)) => Reply::private(e.to_string()),
        Err(SubmitError::Refused(text)) => Reply::private(text),
        Err(SubmitError::Internal(e)) => return Err(e),
    };
    Ok((reply, false))
}
