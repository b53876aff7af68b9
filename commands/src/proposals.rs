//! `/proposals [open|all]` and `/proposal ID`: what is being decided, and how it stands.

use crate::parse::Parsed;
use crate::ports::{PortError, Ports};
use crate::reply::Reply;
use polity_governance::proposal::{BallotSource, Proposal};

pub async fn list(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let all = args.get("which") == Some("all");
    let proposals = ports.proposals(!all).await?;
    if proposals.is_empty() {
        return Ok(Reply::private(if all { "There are no proposals yet." } else { "No proposal is open." }));
    }
    let lines: Vec<String> =
        proposals.iter().map(|p| format!("{} [{}] {} — {}", p.id, p.state, p.headline(), p.policy_name)).collect();
    Ok(Reply::private(lines.join("\n")))
}

pub async fn show(ports: &mut dyn Ports, args: &Parsed) -> Result<Reply, PortError> {
    let Some(id) = args.proposal("id") else {
        return Ok(Reply::private("Usage: /proposal ID"));
    };
    let Some(p) = ports.proposal(id).await? else {
        return Ok(Reply::private(format!("There is no proposal {id}: `/proposals all` lists them.")));
    };
    let mut text = describe(ports, &p);
    for failure in ports.proposal_failures(id).await? {
        text.push_str(&format!("\nnot carried out: {failure}"));
    }
    Ok(Reply::private(text))
}

fn describe(ports: &dyn Ports, p: &Proposal) -> String {
    let mut lines =
        vec![format!("Proposal {} [{}]: {}", p.id, p.state, p.headline()), format!("policy: {}", p.policy_name)];
    if let Some(c) = p.closes_at {
        lines.push(format!("closes: {}", c.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    let Some(v) = &p.vote else {
        lines.push("no vote: the policy decides by itself".into());
        return lines.join("\n");
    };
    let name = |m| ports.community().member(m).map_or_else(|| m.to_string(), |m| m.name.to_string());
    let t = v.tally();
    let counts: Vec<String> = v.spec.labels().iter().zip(&t.counts).map(|(l, c)| format!("{l} {c}")).collect();
    lines.push(format!("tally: {} · abstain {} ({} of {} voted)", counts.join(" · "), t.abstain, t.cast, t.eligible));
    lines.push(format!("rule: pass {}, quorum {}", v.spec.pass, v.spec.quorum));
    let eligible: Vec<String> = v.eligible.iter().map(|m| name(*m)).collect();
    lines.push(format!("voters: {}", eligible.join(", ")));
    if v.spec.secret {
        lines.push("ballots are secret".into());
    } else {
        for (m, b) in &v.ballots {
            let via = match b.source {
                BallotSource::Reaction { .. } => "reaction",
                BallotSource::Command => "command",
            };
            lines.push(format!("  {} voted {} ({via})", name(*m), v.spec.describe(&b.choice)));
        }
    }
    lines.join("\n")
}
