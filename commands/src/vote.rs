//! `/vote ID CHOICE` and `/unvote ID`: the same ballots as reactions, typed.

use crate::parse::Parsed;
use crate::ports::{Invocation, PortError, Ports, SubmitError};
use crate::reply::Reply;
use polity_governance::io::Inbound;

async fn submit(ports: &mut dyn Ports, input: Inbound, ok: &str) -> Result<Reply, PortError> {
    match ports.submit(input).await {
        Ok(_) => Ok(Reply::private(ok)),
        Err(SubmitError::Mistake(e)) => Ok(Reply::private(e.to_string())),
        Err(SubmitError::Refused(text)) => Ok(Reply::private(text)),
        Err(SubmitError::Internal(e)) => Err(e),
    }
}

pub async fn vote(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let Some(proposal) = args.proposal("id") else {
        return Ok(Reply::private("Usage: /vote ID CHOICE"));
    };
    let input = Inbound::Vote { proposal, voter: inv.invoker.clone(), choice: args.text("choice").to_string() };
    submit(ports, input, &format!("Your ballot on {proposal} is counted.")).await
}

pub async fn unvote(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let Some(proposal) = args.proposal("id") else {
        return Ok(Reply::private("Usage: /unvote ID"));
    };
    let input = Inbound::Unvote { proposal, voter: inv.invoker.clone() };
    submit(ports, input, &format!("Your ballot on {proposal} is withdrawn.")).await
}

pub async fn cancel(ports: &mut dyn Ports, inv: &Invocation, args: &Parsed) -> Result<Reply, PortError> {
    let Some(proposal) = args.proposal("id") else {
        return Ok(Reply::private("Usage: /cancel ID"));
    };
    let input = Inbound::Cancel { proposal, by: inv.invoker.clone() };
    submit(ports, input, &format!("Proposal {proposal} is cancelled.")).await
}
