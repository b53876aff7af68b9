//! `/propose TEXT [policy:NAME]`: a decision with no platform action, put to a vote under
//! the named policy or the community's.

use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports, SubmitError};
use crate::reply::Reply;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::io::Inbound;

pub async fn run(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let kind = ActionType::new(PROPOSE).map_err(PortError)?;
    let mut action = Action::new(kind, inv.invoker.clone(), &inv.id)
        .at(inv.place.clone())
        .requested()
        .with("text", args.text("text"));
    if let Some(policy) = args.get("policy") {
        action = action.with("policy", policy);
    }
    match ports.submit(Inbound::Action { action }).await {
        Ok(s) if s.duplicate => Ok(Reply::private("That proposal was already made.")),
        Ok(s) => Ok(Reply::private(match s.proposals.first() {
            Some(t) if t.state.is_open() => format!("Proposal {} is open, under \"{}\".", t.id, t.policy),
            Some(t) => format!(
                "Proposal {} {} at once under \"{}\"{}.",
                t.id,
                t.state,
                t.policy,
                t.why.as_ref().map(|w| format!(": {w}")).unwrap_or_default()
            ),
            None => "No proposal was opened: the audit log (`/audit`) says why.".into(),
        })),
        Err(SubmitError::Mistake(e)) => Ok(Reply::private(e.to_string())),
        Err(SubmitError::Refused(text)) => Ok(Reply::private(text)),
        Err(SubmitError::Internal(e)) => Err(e),
    }
}
