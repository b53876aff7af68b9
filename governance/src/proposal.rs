//! Proposals: one run of a policy on one action, from proposed to passed, failed,
//! cancelled or expired, with its frozen vote, its ballots and how it reads on a platform.

use crate::action::{Action, PROPOSE};
use crate::ids::{AccountRef, MemberId, MessageRef, Place, PolicyId, ProposalId};
use crate::vote::{Choice, Decision, Tally, VoteSpec};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalState {
    Proposed,
    Passed,
    Failed,
    Cancelled,
    /// The deadline came before enough ballots did.
    Expired,
}

impl ProposalState {
    pub fn is_open(self) -> bool {
        self == Self::Proposed
    }
}

impl fmt::Display for ProposalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Proposed => "proposed",
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        })
    }
}

/// Where a ballot came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "via")]
pub enum BallotSource {
    /// A reaction on a vote message.
    Reaction { message: MessageRef },
    /// A typed `/vote` or a button.
    Command,
}

/// One voter's ballot: what, when, from which account and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    pub choice: Choice,
    pub account: AccountRef,
    pub cast_at: DateTime<Utc>,
    pub source: BallotSource,
}

/// A vote as it was frozen when the proposal opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenVote {
    pub spec: VoteSpec,
    pub place: Place,
    pub eligible: BTreeSet<MemberId>,
    pub ballots: BTreeMap<MemberId, Ballot>,
    /// The vote messages posted for it, as platforms reported them.
    pub messages: Vec<MessageRef>,
}

impl OpenVote {
    /// Counts the ballots of eligible voters. Both collections are sorted by member, so
    /// they are walked together once rather than looked up ballot by ballot.
    pub fn tally(&self) -> Tally {
        let mut eligible = self.eligible.iter().peekable();
        let counted = self.ballots.iter().filter(move |(m, _)| {
            while eligible.next_if(|e| *e < *m).is_some() {}
            eligible.peek() == Some(m)
        });
        Tally::new(&self.spec, self.eligible.len(), counted.map(|(_, b)| &b.choice))
    }
}

/// The progress an external process reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessState {
    pub status: String,
    pub outcome: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    pub id: ProposalId,
    pub policy: PolicyId,
    pub policy_name: String,
    pub action: Action,
    pub proposer: Option<MemberId>,
    pub proposer_name: String,
    pub state: ProposalState,
    pub opened_at: DateTime<Utc>,
    pub closes_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub vote: Option<OpenVote>,
    /// The winning option's label once passed.
    pub winner: Option<String>,
    /// What the `initialize` block returned.
    pub data: Value,
    pub process: Option<ProcessState>,
    /// Whether the action was reverted when the proposal opened.
    pub reverted: bool,
}

impl Proposal {
    pub fn tally(&self) -> Option<Tally> {
        self.vote.as_ref().map(OpenVote::tally)
    }

    /// Where announcements about it go: the vote's place, else where the action happened.
    pub fn place(&self) -> Option<&Place> {
        self.vote.as_ref().map(|v| &v.place).or(self.action.place.as_ref())
    }

    /// One line saying what is proposed.
    pub fn headline(&self) -> String {
        if self.action.kind.as_str() == PROPOSE {
            format!("{} proposes: {}", self.proposer_name, self.action.summary())
        } else {
            let summary = self.action.summary();
            if summary == self.action.kind.as_str() {
                format!("{} wants {}", self.proposer_name, self.action.kind)
            } else {
                format!("{} wants {}: {}", self.proposer_name, self.action.kind, summary)
            }
        }
    }

    fn tally_line(&self, t: &Tally) -> Option<String> {
        let v = self.vote.as_ref()?;
        let counts: Vec<String> = v
            .spec
            .labels()
            .iter()
            .zip(&t.counts)
            .map(|(l, c)| format!("{l} {c}"))
            .chain(std::iter::once(format!("abstain {}", t.abstain)))
            .collect();
        Some(format!("{} ({} of {} voted)", counts.join(" · "), t.cast, t.eligible))
    }

    /// The vote message: what is proposed, how to vote, the rule, the deadline, the tally,
    /// and the outcome once decided. One line, so every platform shows it whole.
    pub fn vote_text(&self) -> String {
        self.vote_text_with(self.tally().as_ref())
    }

    /// [`Self::vote_text`] with the tally already counted.
    pub fn vote_text_with(&self, tally: Option<&Tally>) -> String {
        let Some(v) = &self.vote else {
            return format!("Proposal {}: {}", self.id, self.headline());
        };
        let how: Vec<String> = v.spec.reaction_options().iter().map(|(e, l)| format!("{e} {l}")).collect();
        let mut rule = format!("pass: {}, quorum {}", v.spec.pass, v.spec.quorum);
        if let Some(j) = v.spec.jury {
            rule.push_str(&format!(", jury of {j}"));
        }
        let mut parts =
            vec![format!("Proposal {}: {}", self.id, self.headline()), format!("vote {}", how.join(" · ")), rule];
        if let Some(c) = self.closes_at {
            parts.push(format!("closes {}", c.format("%Y-%m-%d %H:%M:%S UTC")));
        }
        if let Some(t) = tally.and_then(|t| self.tally_line(t)) {
            parts.push(format!("tally: {t}"));
        }
        if !self.state.is_open() {
            let mut outcome = self.state.to_string().to_uppercase();
            if let (Some(w), true) = (&self.winner, v.spec.kind != crate::vote::VoteKind::YesNo) {
                outcome.push_str(&format!(": {w}"));
            }
            parts.push(outcome);
        }
        parts.join(" — ")
    }

    /// The announcement of the outcome.
    pub fn outcome_text(&self) -> String {
        let what = match self.state {
            ProposalState::Passed => match &self.winner {
                Some(w) if self.vote.as_ref().is_some_and(|v| v.spec.kind != crate::vote::VoteKind::YesNo) => {
                    format!("passed with \"{w}\"")
                }
                _ => "passed".to_string(),
            },
            ProposalState::Failed => "failed".into(),
            ProposalState::Expired => "expired without enough ballots".into(),
            ProposalState::Cancelled => "was cancelled".into(),
            ProposalState::Proposed => "is open".into(),
        };
        match self.tally().and_then(|t| self.tally_line(&t)) {
            Some(t) => format!("Proposal {} {what}: {} ({t})", self.id, self.headline()),
            None => format!("Proposal {} {what}: {}", self.id, self.headline()),
        }
    }

    /// What scripts and templates see as `proposal`.
    pub fn to_json(&self) -> Value {
        self.to_json_with(self.tally().as_ref())
    }

    /// [`Self::to_json`] with the tally already counted.
    pub fn to_json_with(&self, tally: Option<&Tally>) -> Value {
        let tally = self.vote.as_ref().zip(tally).map(|(v, t)| {
            let mut m = serde_json::Map::new();
            for (l, c) in v.spec.labels().iter().zip(&t.counts) {
                m.insert(l.clone(), json!(c));
            }
            m.insert("abstain".into(), json!(t.abstain));
            m.insert("cast".into(), json!(t.cast));
            m.insert("eligible".into(), json!(t.eligible));
            m.insert("remaining".into(), json!(t.remaining()));
            Value::Object(m)
        });
        json!({
            "id": self.id.0,
            "policy": self.policy_name,
            "state": self.state.to_string(),
            "proposer": self.proposer_name,
            "opened_at": self.opened_at.to_rfc3339(),
            "closes_at": self.closes_at.map(|c| c.to_rfc3339()),
            "tally": tally,
            "winner": self.winner,
            "data": self.data,
            "process": self.process.as_ref().map(|p| json!({"status": p.status, "outcome": p.outcome})),
        })
    }
}

/// How a decided proposal ends, from a tally decision.
pub fn state_of(decision: Decision) -> ProposalState {
    match decision {
        Decision::Passed { .. } => ProposalState::Passed,
        Decision::Failed => ProposalState::Failed,
        Decision::NoQuorum => ProposalState::Expired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_eligible_voters_ballots_are_counted() {
        let now = Utc::now();
        let ballot = |c: Choice| Ballot {
            choice: c,
            account: AccountRef::new("console", "x"),
            cast_at: now,
            source: BallotSource::Command,
        };
        let mut v = OpenVote {
            spec: VoteSpec::default(),
            place: Place::new("console", "#general"),
            eligible: [2, 4, 6].into_iter().map(MemberId).collect(),
            ballots: BTreeMap::new(),
            messages: Vec::new(),
        };
        for (m, c) in [(1, Choice::No), (2, Choice::Yes), (3, Choice::No), (4, Choice::Yes), (7, Choice::No)] {
            v.ballots.insert(MemberId(m), ballot(c));
        }
        let t = v.tally();
        assert_eq!((t.counts[0], t.counts[1], t.cast, t.eligible), (2, 0, 2, 3));
    }
}
