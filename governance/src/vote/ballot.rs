//! Ballots: what one voter chose, typed or reacted, and how a reaction changes it.

use super::emoji::{self, ABSTAIN, KEYCAPS, NO, YES};
use super::spec::{VoteKind, VoteSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One voter's choice. Options are indexes into [`VoteSpec::labels`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Yes,
    No,
    Abstain,
    /// A choice vote's option.
    One(usize),
    /// An approval vote's options (never empty).
    Approve(BTreeSet<usize>),
    /// A ranked vote's options, most preferred first (never empty, no repeats).
    Rank(Vec<usize>),
}

/// What a reaction does to the voter's ballot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BallotChange {
    /// The voter's ballot becomes this; `replaced` names the emoji of the reaction it supersedes.
    Cast { choice: Choice, replaced: Option<String> },
    /// The voter's ballot is withdrawn.
    Withdraw,
    /// Nothing changes (the emoji is not an option, or its removal is of a superseded reaction).
    Ignore,
}

impl VoteSpec {
    /// The emoji that vote for each option, in order; then 🤷 for abstain.
    pub fn reaction_options(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = match self.kind {
            VoteKind::YesNo => vec![(YES.into(), "yes".into()), (NO.into(), "no".into())],
            _ => self.options.iter().enumerate().map(|(i, o)| (KEYCAPS[i].to_string(), o.clone())).collect(),
        };
        out.push((ABSTAIN.into(), "abstain".into()));
        out
    }

    /// What one press of a button casts for each of [`Self::reaction_options`], as `/vote`
    /// takes it: for yes-no and choice votes only, where one option is a whole ballot.
    pub fn presses(&self) -> Vec<Option<String>> {
        let single = matches!(self.kind, VoteKind::YesNo | VoteKind::Choice);
        self.reaction_options()
            .into_iter()
            .enumerate()
            .map(|(i, (emoji, label))| {
                single.then(|| match self.kind {
                    _ if emoji == ABSTAIN => "abstain".to_string(),
                    VoteKind::YesNo => label,
                    // The option's number, which `/vote` takes for any label.
                    _ => (i + 1).to_string(),
                })
            })
            .collect()
    }

    /// Whether `raw_emoji` votes in this vote (an option or abstain).
    pub fn is_vote_emoji(&self, raw_emoji: &str) -> bool {
        self.option_of_emoji(&emoji::normalize(raw_emoji)).is_some()
    }

    /// The emoji of every option a ballot holds (several for approval and ranked ballots).
    pub fn emojis_of(&self, choice: &Choice) -> Vec<String> {
        let key = |i: &usize| match self.kind {
            VoteKind::YesNo if *i == 0 => Some(YES.to_string()),
            VoteKind::YesNo => Some(NO.to_string()),
            _ => KEYCAPS.get(*i).map(|k| (*k).to_string()),
        };
        match choice {
            Choice::Approve(set) => set.iter().filter_map(key).collect(),
            Choice::Rank(ranks) => ranks.iter().filter_map(key).collect(),
            other => self.emoji_of(other).into_iter().collect(),
        }
    }

    fn option_of_emoji(&self, e: &str) -> Option<Option<usize>> {
        if e == ABSTAIN {
            return Some(None);
        }
        match self.kind {
            VoteKind::YesNo => match e {
                YES => Some(Some(0)),
                NO => Some(Some(1)),
                _ => None,
            },
            _ => KEYCAPS.iter().position(|k| *k == e).filter(|i| *i < self.options.len()).map(Some),
        }
    }

    /// The emoji that stands for a single-option ballot, to remove the reaction it leaves behind.
    pub fn emoji_of(&self, choice: &Choice) -> Option<String> {
        match (self.kind, choice) {
            (_, Choice::Abstain) => Some(ABSTAIN.into()),
            (VoteKind::YesNo, Choice::Yes) => Some(YES.into()),
            (VoteKind::YesNo, Choice::No) => Some(NO.into()),
            (VoteKind::Choice, Choice::One(i)) => KEYCAPS.get(*i).map(|k| (*k).to_string()),
            _ => None,
        }
    }

    /// How a reaction added (`added = true`) or removed by a voter whose ballot is `current`
    /// changes that ballot. Yes/no and choice votes keep one option (a new reaction replaces
    /// the old); approval votes add and remove options; ranked votes rank in the order the
    /// reactions were added.
    pub fn apply_reaction(&self, current: Option<&Choice>, raw_emoji: &str, added: bool) -> BallotChange {
        let e = emoji::normalize(raw_emoji);
        let Some(option) = self.option_of_emoji(&e) else {
            return BallotChange::Ignore;
        };
        let single = |i: usize| match self.kind {
            VoteKind::YesNo if i == 0 => Choice::Yes,
            VoteKind::YesNo => Choice::No,
            _ => Choice::One(i),
        };
        let Some(i) = option else {
            // Abstain replaces whatever was there.
            return match (added, current) {
                (true, Some(Choice::Abstain)) => BallotChange::Ignore,
                (true, cur) => {
                    BallotChange::Cast { choice: Choice::Abstain, replaced: cur.and_then(|c| self.emoji_of(c)) }
                }
                (false, Some(Choice::Abstain)) => BallotChange::Withdraw,
                (false, _) => BallotChange::Ignore,
            };
        };
        match self.kind {
            VoteKind::YesNo | VoteKind::Choice => {
                let choice = single(i);
                match (added, current) {
                    (true, Some(c)) if *c == choice => BallotChange::Ignore,
                    (true, cur) => BallotChange::Cast { choice, replaced: cur.and_then(|c| self.emoji_of(c)) },
                    (false, Some(c)) if *c == choice => BallotChange::Withdraw,
                    (false, _) => BallotChange::Ignore,
                }
            }
            VoteKind::Approval => {
                let mut set = match current {
                    Some(Choice::Approve(s)) => s.clone(),
                    _ => BTreeSet::new(),
                };
                let changed = if added { set.insert(i) } else { set.remove(&i) };
                match (changed, set.is_empty()) {
                    (false, _) => BallotChange::Ignore,
                    (true, true) => BallotChange::Withdraw,
                    (true, false) => BallotChange::Cast {
                        choice: Choice::Approve(set),
                        replaced: (current == Some(&Choice::Abstain)).then(|| ABSTAIN.to_string()),
                    },
                }
            }
            VoteKind::Ranked => {
                let mut ranks = match current {
                    Some(Choice::Rank(r)) => r.clone(),
                    _ => Vec::new(),
                };
                let had = ranks.contains(&i);
                if added && !had {
                    ranks.push(i);
                } else if !added && had {
                    ranks.retain(|r| *r != i);
                } else {
                    return BallotChange::Ignore;
                }
                if ranks.is_empty() {
                    BallotChange::Withdraw
                } else {
                    BallotChange::Cast {
                        choice: Choice::Rank(ranks),
                        replaced: (current == Some(&Choice::Abstain)).then(|| ABSTAIN.to_string()),
                    }
                }
            }
        }
    }

    /// Parses a typed ballot (`/vote 12 yes`): `yes`/`no`/`abstain` (or their emoji), an
    /// option's label or position, `1,3` for approval, `2>1>3` (or `2,1,3`) for ranked.
    ///
    /// # Errors
    /// A sentence listing the choices this vote accepts.
    pub fn parse_choice(&self, text: &str) -> Result<Choice, String> {
        let t = text.trim();
        let lower = t.to_lowercase();
        let e = emoji::normalize(t);
        if matches!(lower.as_str(), "abstain" | "a") || e == ABSTAIN {
            return Ok(Choice::Abstain);
        }
        let labels = self.labels();
        let accepted = || {
            let mut opts: Vec<String> = labels.iter().enumerate().map(|(i, l)| format!("{} ({l})", i + 1)).collect();
            if self.kind == VoteKind::YesNo {
                opts = vec!["yes".into(), "no".into()];
            }
            opts.push("abstain".into());
            let how = match self.kind {
                VoteKind::Approval => " (several, separated by commas)",
                VoteKind::Ranked => " (in order of preference, e.g. 2>1>3)",
                _ => "",
            };
            format!("`{t}` is not a choice in this vote: choose {}{how}", opts.join(", "))
        };
        let one = |part: &str| -> Option<usize> {
            let p = part.trim();
            if let Ok(n) = p.parse::<usize>() {
                return (1..=labels.len()).contains(&n).then(|| n - 1);
            }
            let pe = emoji::normalize(p);
            if let Some(k) = KEYCAPS.iter().position(|k| *k == pe) {
                return (k < labels.len()).then_some(k);
            }
            labels.iter().position(|l| l.eq_ignore_ascii_case(p))
        };
        match self.kind {
            VoteKind::YesNo => match lower.as_str() {
                "yes" | "y" | "aye" => Ok(Choice::Yes),
                "no" | "n" | "nay" => Ok(Choice::No),
                _ if e == YES => Ok(Choice::Yes),
                _ if e == NO => Ok(Choice::No),
                _ => Err(accepted()),
            },
            VoteKind::Choice => one(t).map(Choice::One).ok_or_else(accepted),
            VoteKind::Approval => {
                let set: Option<BTreeSet<usize>> = t.split(',').map(one).collect();
                set.filter(|s| !s.is_empty()).map(Choice::Approve).ok_or_else(accepted)
            }
            VoteKind::Ranked => {
                let parts: Vec<&str> = if t.contains('>') { t.split('>').collect() } else { t.split(',').collect() };
                let ranks: Option<Vec<usize>> = parts.into_iter().map(one).collect();
                let ranks = ranks.ok_or_else(accepted)?;
                let unique: BTreeSet<_> = ranks.iter().collect();
                if unique.len() != ranks.len() {
                    return Err(format!("`{t}` ranks an option twice: rank each option once"));
                }
                Ok(Choice::Rank(ranks))
            }
        }
    }

    /// Whether `choice` is well-formed for this vote (a typed or stored ballot is checked
    /// before it counts).
    pub fn accepts(&self, choice: &Choice) -> bool {
        let n = self.options.len();
        match (self.kind, choice) {
            (_, Choice::Abstain) => true,
            (VoteKind::YesNo, Choice::Yes | Choice::No) => true,
            (VoteKind::Choice, Choice::One(i)) => *i < n,
            (VoteKind::Approval, Choice::Approve(s)) => !s.is_empty() && s.iter().all(|i| *i < n),
            (VoteKind::Ranked, Choice::Rank(r)) => {
                !r.is_empty() && r.iter().all(|i| *i < n) && r.iter().collect::<BTreeSet<_>>().len() == r.len()
            }
            _ => false,
        }
    }

    /// A ballot as people read it: `yes`, `Pizza`, `Pizza, Tacos`, `Tacos > Pizza`.
    pub fn describe(&self, choice: &Choice) -> String {
        let label = |i: &usize| self.options.get(*i).cloned().unwrap_or_else(|| format!("option {}", i + 1));
        match choice {
            Choice::Yes => "yes".into(),
            Choice::No => "no".into(),
            Choice::Abstain => "abstain".into(),
            Choice::One(i) => label(i),
            Choice::Approve(s) => s.iter().map(label).collect::<Vec<_>>().join(", "),
            Choice::Rank(r) => r.iter().map(label).collect::<Vec<_>>().join(" > "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice_spec(kind: VoteKind) -> VoteSpec {
        VoteSpec { kind, options: vec!["Pizza".into(), "Tacos".into(), "Soup".into()], ..VoteSpec::default() }
    }

    #[test]
    fn yes_no_reactions_replace_and_withdraw() {
        let spec = VoteSpec::default();
        assert_eq!(spec.apply_reaction(None, ":+1:", true), BallotChange::Cast { choice: Choice::Yes, replaced: None });
        assert_eq!(
            spec.apply_reaction(Some(&Choice::Yes), "👎", true),
            BallotChange::Cast { choice: Choice::No, replaced: Some(YES.into()) }
        );
        // Removing the superseded reaction changes nothing; removing the current one withdraws.
        assert_eq!(spec.apply_reaction(Some(&Choice::No), "👍", false), BallotChange::Ignore);
        assert_eq!(spec.apply_reaction(Some(&Choice::No), "👎", false), BallotChange::Withdraw);
        assert_eq!(spec.apply_reaction(Some(&Choice::No), "🎉", true), BallotChange::Ignore);
        assert_eq!(spec.apply_reaction(None, "1️⃣", true), BallotChange::Ignore);
        assert_eq!(
            spec.apply_reaction(Some(&Choice::Yes), ":shrug:", true),
            BallotChange::Cast { choice: Choice::Abstain, replaced: Some(YES.into()) }
        );
    }

    #[test]
    fn approval_and_ranked_reactions_accumulate() {
        let a = choice_spec(VoteKind::Approval);
        let BallotChange::Cast { choice, .. } = a.apply_reaction(None, "1️⃣", true) else { panic!() };
        let BallotChange::Cast { choice, .. } = a.apply_reaction(Some(&choice), "3️⃣", true) else { panic!() };
        assert_eq!(choice, Choice::Approve([0, 2].into()));
        assert_eq!(a.apply_reaction(Some(&choice), "4️⃣", true), BallotChange::Ignore);
        let BallotChange::Cast { choice, .. } = a.apply_reaction(Some(&choice), "1️⃣", false) else { panic!() };
        assert_eq!(a.apply_reaction(Some(&choice), "3️⃣", false), BallotChange::Withdraw);

        let r = choice_spec(VoteKind::Ranked);
        let BallotChange::Cast { choice, .. } = r.apply_reaction(None, "2️⃣", true) else { panic!() };
        let BallotChange::Cast { choice, .. } = r.apply_reaction(Some(&choice), "1️⃣", true) else { panic!() };
        assert_eq!(choice, Choice::Rank(vec![1, 0]));
    }

    #[test]
    fn typed_ballots_parse_or_say_what_is_accepted() {
        let yn = VoteSpec::default();
        assert_eq!(yn.parse_choice("Yes"), Ok(Choice::Yes));
        assert_eq!(yn.parse_choice("👎"), Ok(Choice::No));
        assert_eq!(yn.parse_choice("abstain"), Ok(Choice::Abstain));
        assert_eq!(
            yn.parse_choice("maybe").unwrap_err(),
            "`maybe` is not a choice in this vote: choose yes, no, abstain"
        );

        let c = choice_spec(VoteKind::Choice);
        assert_eq!(c.parse_choice("tacos"), Ok(Choice::One(1)));
        assert_eq!(c.parse_choice("3"), Ok(Choice::One(2)));
        assert!(c.parse_choice("4").unwrap_err().contains("1 (Pizza), 2 (Tacos), 3 (Soup)"));

        let a = choice_spec(VoteKind::Approval);
        assert_eq!(a.parse_choice("1, soup"), Ok(Choice::Approve([0, 2].into())));
        let r = choice_spec(VoteKind::Ranked);
        assert_eq!(r.parse_choice("3>1>2"), Ok(Choice::Rank(vec![2, 0, 1])));
        assert!(r.parse_choice("1>1").unwrap_err().contains("twice"));
        assert_eq!(r.describe(&Choice::Rank(vec![2, 0])), "Soup > Pizza");
    }
}
