//! What a vote is: its type, options, voters, quorum, threshold and deadline.
//! A spec is frozen into the proposal when the vote opens.

use crate::ids::Place;
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The most options a vote can have: one per keycap emoji 1️⃣ … 🔟.
pub const MAX_OPTIONS: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VoteKind {
    /// yes / no / abstain.
    YesNo,
    /// One option per voter.
    Choice,
    /// Any number of options per voter; the most approved wins.
    Approval,
    /// Options in order of preference, decided by instant runoff.
    Ranked,
}

impl fmt::Display for VoteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::YesNo => "yes-no",
            Self::Choice => "choice",
            Self::Approval => "approval",
            Self::Ranked => "ranked",
        })
    }
}

/// Who may vote, before proposer exclusion and the jury draw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Voters {
    Everyone,
    Role(String),
    /// Members by name.
    Members(Vec<String>),
    /// Members with at least this much cred on the community's SourceCred instance when the
    /// vote opens (`voters = "cred >= 100"`).
    Cred(u64),
}

impl fmt::Display for Voters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str("everyone"),
            Self::Role(r) => write!(f, "role:{r}"),
            Self::Members(m) => f.write_str(&m.join(", ")),
            Self::Cred(n) => write!(f, "cred >= {n}"),
        }
    }
}

/// How many ballots (abstentions count) a decision needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quorum {
    Count(u32),
    /// A share of the eligible voters, in percent (0–100).
    Percent(u32),
}

impl Quorum {
    /// The number of ballots needed with `eligible` voters.
    pub fn needed(self, eligible: usize) -> usize {
        match self {
            Self::Count(n) => n as usize,
            Self::Percent(p) => (eligible * p as usize).div_ceil(100),
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// What share of the (non-abstaining) ballots the leading option needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threshold {
    /// More than half.
    Majority,
    /// At least `num/den` (and at least one ballot).
    Fraction { num: u32, den: u32 },
    /// Every ballot, and at least one.
    Unanimous,
    /// Consensus: passes at the deadline if nobody voted no (yes/no votes only).
    NoObjection,
    /// More than any other option (choice and approval votes).
    Plurality,
    /// At least this many yes ballots, whatever the no ballots and abstentions (yes-no votes
    /// only): "2 of the 3 moderators must approve" is `2 yes`.
    Yeses(u32),
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Majority => f.write_str("majority"),
            Self::Fraction { num, den } => write!(f, "{num}/{den}"),
            Self::Unanimous => f.write_str("unanimous"),
            Self::NoObjection => f.write_str("no-objection"),
            Self::Plurality => f.write_str("plurality"),
            Self::Yeses(n) => write!(f, "{n} yes"),
        }
    }
}

/// A whole vote specification, as a policy's `[vote]` table describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteSpec {
    /// Where the vote message goes; `None`: where the action happened.
    pub on: Option<Place>,
    /// Further places the vote is held in at once (`on = ["discord:#general",
    /// "slack:#general"]`): a vote message in each, each with the combined tally. A member
    /// has one ballot wherever they vote (their linked accounts are one member): the latest
    /// counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Place>,
    pub kind: VoteKind,
    /// Option labels for choice, approval and ranked votes.
    pub options: Vec<String>,
    pub voters: Voters,
    /// Draw this many voters at random from `voters` when the vote opens (a jury).
    pub jury: Option<u32>,
    pub exclude_proposer: bool,
    pub quorum: Quorum,
    pub pass: Threshold,
    pub closes: Option<TimeDelta>,
    /// Decide the moment the outcome can no longer change (default), or only at the deadline.
    pub early: bool,
    /// Hide who voted what (the tally stays public).
    pub secret: bool,
}

impl Default for VoteSpec {
    fn default() -> Self {
        Self {
            on: None,
            also: Vec::new(),
            kind: VoteKind::YesNo,
            options: Vec::new(),
            voters: Voters::Everyone,
            jury: None,
            exclude_proposer: false,
            quorum: Quorum::Count(1),
            pass: Threshold::Majority,
            closes: None,
            early: true,
            secret: false,
        }
    }
}

impl VoteSpec {
    /// The labels of the options ballots choose among.
    pub fn labels(&self) -> Vec<String> {
        match self.kind {
            VoteKind::YesNo => vec!["yes".into(), "no".into()],
            _ => self.options.clone(),
        }
    }

    /// Checks the combination of settings.
    ///
    /// # Errors
    /// A sentence saying which setting is wrong and what to write instead.
    pub fn validate(&self) -> Result<(), String> {
        match self.kind {
            VoteKind::YesNo if !self.options.is_empty() => {
                return Err("a yes-no vote takes no `options`: remove them or use type = \"choice\"".into());
            }
            VoteKind::YesNo => {}
            kind => {
                if self.options.len() < 2 {
                    return Err(format!("a {kind} vote needs at least two `options`"));
                }
                if self.options.len() > MAX_OPTIONS {
                    return Err(format!("a vote can have at most {MAX_OPTIONS} options (one per 1️⃣ … 🔟 reaction)"));
                }
                let mut seen = std::collections::BTreeSet::new();
                for o in &self.options {
                    if o.trim().is_empty() || !seen.insert(o.to_lowercase()) {
                        return Err(format!("option `{o}` is empty or given twice"));
                    }
                    if o.parse::<usize>().is_ok() {
                        return Err(format!(
                            "option `{o}` is a number, which would be confused with the option's position"
                        ));
                    }
                }
            }
        }
        match (self.kind, self.pass) {
            (VoteKind::YesNo, _) => {}
            (_, Threshold::NoObjection) => {
                return Err("`no-objection` applies to yes-no votes only".into());
            }
            (_, Threshold::Yeses(n)) => {
                return Err(format!("`{n} yes` applies to yes-no votes only"));
            }
            (VoteKind::Ranked, Threshold::Majority | Threshold::Plurality) => {}
            (VoteKind::Ranked, t) => {
                return Err(format!(
                    "a ranked vote is decided by instant runoff, which needs a majority: `pass = \"{t}\"` cannot apply"
                ));
            }
            _ => {}
        }
        if let Threshold::Fraction { num, den } = self.pass
            && (num == 0 || den == 0 || num > den)
        {
            return Err(format!("`{num}/{den}` is not a threshold: use a fraction between 0 and 1, e.g. 2/3"));
        }
        if let Quorum::Percent(p) = self.quorum
            && p > 100
        {
            return Err(format!("a quorum of {p}% is more than everyone"));
        }
        if self.pass == Threshold::Yeses(0) {
            return Err("`0 yes` would pass with no one in favour: ask for at least 1 yes".into());
        }
        if self.jury == Some(0) {
            return Err("a jury needs at least one member".into());
        }
        if self.pass == Threshold::NoObjection && self.closes.is_none() {
            return Err("a no-objection vote passes at its deadline, so it needs `closes` (e.g. \"72h\")".into());
        }
        Ok(())
    }
}
