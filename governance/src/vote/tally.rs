//! Counting ballots and deciding: the result if the vote closed now, and whether the
//! outcome is already certain whatever the voters who have not voted yet do.
//!
//! The ballots given here are those of eligible voters only; the caller filters.
//! For an early decision, ballots already cast are taken as they stand: once a proposal
//! is decided it is closed, so a later change of mind cannot reopen it. Policies that want
//! minds to stay changeable until the deadline set `early = false`.

use super::ballot::Choice;
use super::spec::{Threshold, VoteKind, VoteSpec};
use serde::{Deserialize, Serialize};

/// How a vote ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Passed; `winner` is the option that won (`0`, "yes", for yes/no votes).
    Passed { winner: usize },
    /// Enough ballots were cast, and they did not carry it.
    Failed,
    /// Too few ballots were cast to decide.
    NoQuorum,
}

/// The counted ballots of one vote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Per option: yes and no for yes/no votes; ballots for choice; approvals for approval;
    /// first preferences for ranked.
    pub counts: Vec<u64>,
    pub abstain: u64,
    /// Ballots cast, abstentions included.
    pub cast: u64,
    /// Voters who may vote.
    pub eligible: u64,
    /// Ranked ballots, for the runoff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ranks: Vec<Vec<usize>>,
}

impl Tally {
    /// Counts `ballots` (of eligible voters, one each) for `spec` with `eligible` voters.
    /// Ballots that do not fit the vote are not counted.
    pub fn new<'a>(spec: &VoteSpec, eligible: usize, ballots: impl IntoIterator<Item = &'a Choice>) -> Self {
        let n = spec.labels().len();
        let mut t = Self { counts: vec![0; n], abstain: 0, cast: 0, eligible: eligible as u64, ranks: Vec::new() };
        for b in ballots {
            if !spec.accepts(b) {
                continue;
            }
            t.cast += 1;
            match b {
                Choice::Abstain => t.abstain += 1,
                Choice::Yes => t.counts[0] += 1,
                Choice::No => t.counts[1] += 1,
                Choice::One(i) => t.counts[*i] += 1,
                Choice::Approve(s) => s.iter().for_each(|i| t.counts[*i] += 1),
                Choice::Rank(r) => {
                    t.counts[r[0]] += 1;
                    t.ranks.push(r.clone());
                }
            }
        }
        t
    }

    /// Eligible voters who have not voted.
    pub fn remaining(&self) -> u64 {
        self.eligible.saturating_sub(self.cast)
    }

    /// Ballots that chose something (not abstentions).
    pub fn voting(&self) -> u64 {
        self.cast - self.abstain
    }

    fn quorum_needed(&self, spec: &VoteSpec) -> u64 {
        spec.quorum.needed(self.eligible as usize) as u64
    }

    /// The decision if the vote closed now.
    pub fn result(&self, spec: &VoteSpec) -> Decision {
        if self.cast < self.quorum_needed(spec) {
            return Decision::NoQuorum;
        }
        match winner(spec, &self.counts, self.voting(), &self.ranks) {
            Some(w) => Decision::Passed { winner: w },
            None => Decision::Failed,
        }
    }

    /// The decision, if it is already certain whatever the remaining voters do.
    pub fn early(&self, spec: &VoteSpec) -> Option<Decision> {
        if !spec.early {
            return None;
        }
        let r = self.remaining();
        if r == 0 {
            return Some(self.result(spec));
        }
        let needed = self.quorum_needed(spec);
        if self.cast + r < needed {
            return Some(Decision::NoQuorum);
        }
        if self.cast < needed {
            // Whether quorum is reached depends on who still votes: NoQuorum and a
            // decision are both possible.
            return None;
        }
        let total = self.voting();
        if spec.pass == Threshold::NoObjection {
            return (self.counts[1] > 0).then_some(Decision::Failed);
        }
        let current = self.result(spec);
        if let Decision::Passed { winner: w } = current {
            let safe = match spec.kind {
                VoteKind::YesNo | VoteKind::Choice => {
                    // Worst case: every remaining voter backs the strongest rival.
                    let rival = (0..self.counts.len()).filter(|i| *i != w).max_by_key(|i| self.counts[*i]);
                    let mut counts = self.counts.clone();
                    if let Some(rv) = rival {
                        counts[rv] += r;
                    }
                    winner(spec, &counts, total + r, &[]) == Some(w)
                }
                VoteKind::Approval => {
                    // Worst case: every remaining voter approves every option but the winner.
                    let counts: Vec<u64> =
                        self.counts.iter().enumerate().map(|(i, c)| if i == w { *c } else { c + r }).collect();
                    winner(spec, &counts, total + r, &[]) == Some(w)
                }
                // A majority of first preferences among every ballot that could exist wins
                // the first round whatever the rest rank.
                VoteKind::Ranked => self.counts[w] * 2 > total + r,
            };
            return safe.then_some(current);
        }
        if spec.kind == VoteKind::Ranked {
            return None;
        }
        // Failed now; certain if no option could pass even with every remaining voter for it.
        let could_pass = (0..self.counts.len()).any(|o| {
            let mut counts = self.counts.clone();
            counts[o] += r;
            winner(spec, &counts, total + r, &[]) == Some(o)
        });
        (!could_pass).then_some(Decision::Failed)
    }
}

/// The option that carries the vote with these counts, if any. `total` is the number of
/// non-abstaining ballots.
fn winner(spec: &VoteSpec, counts: &[u64], total: u64, ranks: &[Vec<usize>]) -> Option<usize> {
    if spec.kind == VoteKind::Ranked {
        return instant_runoff(counts.len(), ranks);
    }
    if spec.kind == VoteKind::YesNo {
        let (yes, no) = (counts[0], counts[1]);
        let carried = match spec.pass {
            Threshold::NoObjection => no == 0,
            Threshold::Unanimous => yes > 0 && no == 0,
            Threshold::Majority | Threshold::Plurality => yes > no,
            Threshold::Fraction { num, den } => yes > 0 && yes * u64::from(den) >= u64::from(num) * (yes + no),
            Threshold::Yeses(n) => yes >= u64::from(n.max(1)),
        };
        return carried.then_some(0);
    }
    let (top, top_count) = counts.iter().copied().enumerate().max_by_key(|(i, c)| (*c, std::cmp::Reverse(*i)))?;
    let second = counts.iter().enumerate().filter(|(i, _)| *i != top).map(|(_, c)| *c).max().unwrap_or(0);
    if top_count == 0 || top_count == second {
        return None;
    }
    let carried = match spec.pass {
        Threshold::Plurality => true,
        Threshold::Majority => top_count * 2 > total,
        Threshold::Unanimous => top_count == total,
        Threshold::Fraction { num, den } => top_count * u64::from(den) >= u64::from(num) * total,
        Threshold::NoObjection | Threshold::Yeses(_) => false,
    };
    carried.then_some(top)
}

/// Instant runoff: count each ballot for its first continuing option; an option with more
/// than half of the continuing ballots wins; otherwise every option with the fewest is
/// eliminated together (so the result never depends on ballot order) and the count repeats.
fn instant_runoff(options: usize, ranks: &[Vec<usize>]) -> Option<usize> {
    let mut continuing = vec![true; options];
    loop {
        let mut counts = vec![0u64; options];
        let mut active = 0u64;
        for r in ranks {
            if let Some(first) = r.iter().find(|o| continuing[**o]) {
                counts[*first] += 1;
                active += 1;
            }
        }
        if active == 0 {
            return None;
        }
        let live: Vec<usize> = (0..options).filter(|o| continuing[*o]).collect();
        if let Some(w) = live.iter().copied().find(|o| counts[*o] * 2 > active) {
            return Some(w);
        }
        let fewest = live.iter().map(|o| counts[*o]).min()?;
        let out: Vec<usize> = live.iter().copied().filter(|o| counts[*o] == fewest).collect();
        if out.len() == live.len() {
            return None;
        }
        out.into_iter().for_each(|o| continuing[o] = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vote::spec::Quorum;

    fn yn(pass: Threshold, quorum: Quorum) -> VoteSpec {
        VoteSpec { pass, quorum, ..VoteSpec::default() }
    }

    fn tally(spec: &VoteSpec, eligible: usize, ballots: &[Choice]) -> Tally {
        Tally::new(spec, eligible, ballots.iter())
    }

    use Choice::{Abstain, No, Yes};

    #[test]
    fn majority_needs_more_yes_than_no() {
        let s = yn(Threshold::Majority, Quorum::Count(1));
        assert_eq!(tally(&s, 5, &[Yes, No]).result(&s), Decision::Failed);
        assert_eq!(tally(&s, 5, &[Yes, Yes, No]).result(&s), Decision::Passed { winner: 0 });
        assert_eq!(tally(&s, 5, &[]).result(&s), Decision::NoQuorum);
        assert_eq!(tally(&s, 5, &[Abstain]).result(&s), Decision::Failed);
    }

    #[test]
    fn n_yes_counts_yes_ballots_alone_and_decides_as_soon_as_it_is_certain() {
        // Two of the three moderators must approve.
        let s = yn(Threshold::Yeses(2), Quorum::Count(1));
        // Abstentions and no ballots neither help nor block.
        assert_eq!(tally(&s, 3, &[Yes, Abstain]).early(&s), None);
        assert_eq!(tally(&s, 3, &[Yes, No]).early(&s), None);
        assert_eq!(tally(&s, 3, &[Yes, No, Yes]).result(&s), Decision::Passed { winner: 0 });
        assert_eq!(tally(&s, 3, &[Yes, Yes]).early(&s), Some(Decision::Passed { winner: 0 }));
        // Two no of three: two yes can no longer come.
        assert_eq!(tally(&s, 3, &[No, Abstain]).early(&s), Some(Decision::Failed));
        // At the deadline, one yes is not two, whatever else was cast.
        assert_eq!(tally(&s, 3, &[Yes, Abstain]).result(&s), Decision::Failed);
        assert_eq!(tally(&s, 3, &[Yes]).result(&s), Decision::Failed);
        assert_eq!(tally(&s, 3, &[]).result(&s), Decision::NoQuorum);
    }

    #[test]
    fn fraction_and_unanimous_thresholds() {
        let s = yn(Threshold::Fraction { num: 2, den: 3 }, Quorum::Count(1));
        assert_eq!(tally(&s, 9, &[Yes, Yes, No]).result(&s), Decision::Passed { winner: 0 });
        assert_eq!(tally(&s, 9, &[Yes, No]).result(&s), Decision::Failed);
        let u = yn(Threshold::Unanimous, Quorum::Count(1));
        assert_eq!(tally(&u, 9, &[Yes, Yes, Abstain]).result(&u), Decision::Passed { winner: 0 });
        assert_eq!(tally(&u, 9, &[Yes, Yes, No]).result(&u), Decision::Failed);
    }

    #[test]
    fn quorum_by_count_and_share_counts_abstentions() {
        let s = yn(Threshold::Majority, Quorum::Percent(40));
        // 40% of 10 is 4 ballots.
        assert_eq!(tally(&s, 10, &[Yes, Yes, Abstain]).result(&s), Decision::NoQuorum);
        assert_eq!(tally(&s, 10, &[Yes, Yes, Abstain, Abstain]).result(&s), Decision::Passed { winner: 0 });
        let c = yn(Threshold::Majority, Quorum::Count(3));
        assert_eq!(tally(&c, 10, &[Yes, Yes]).result(&c), Decision::NoQuorum);
        // 40% of 7 rounds up to 3.
        assert_eq!(Quorum::Percent(40).needed(7), 3);
    }

    #[test]
    fn early_decision_when_the_rest_cannot_reverse_it() {
        let s = yn(Threshold::Majority, Quorum::Count(3));
        // 5 eligible, 3 yes: the 2 left cannot outvote them.
        assert_eq!(tally(&s, 5, &[Yes, Yes, Yes]).early(&s), Some(Decision::Passed { winner: 0 }));
        // 2 yes, 0 no, 3 left: undecided.
        assert_eq!(tally(&s, 5, &[Yes, Yes]).early(&s), None);
        // 3 no of 5: yes cannot win.
        assert_eq!(tally(&s, 5, &[No, No, No]).early(&s), Some(Decision::Failed));
        // Quorum unreachable.
        let q = yn(Threshold::Majority, Quorum::Count(4));
        assert_eq!(tally(&q, 4, &[]).early(&q), None);
        let mut t = tally(&q, 4, &[Yes]);
        t.eligible = 2;
        assert_eq!(t.early(&q), Some(Decision::NoQuorum));
        // Early decisions can be turned off.
        let late = VoteSpec { early: false, ..s.clone() };
        assert_eq!(tally(&late, 5, &[Yes, Yes, Yes]).early(&late), None);
        assert_eq!(tally(&late, 3, &[Yes, Yes, Yes]).early(&late), None, "minds may change until the deadline");
    }

    #[test]
    fn no_objection_passes_only_at_the_deadline_or_when_everyone_agreed() {
        let s = VoteSpec { pass: Threshold::NoObjection, quorum: Quorum::Count(0), ..VoteSpec::default() };
        assert_eq!(tally(&s, 4, &[Yes, Yes]).early(&s), None);
        assert_eq!(tally(&s, 4, &[]).result(&s), Decision::Passed { winner: 0 });
        assert_eq!(tally(&s, 4, &[Yes, No]).early(&s), Some(Decision::Failed));
        assert_eq!(tally(&s, 2, &[Yes, Abstain]).early(&s), Some(Decision::Passed { winner: 0 }));
    }

    #[test]
    fn choice_and_approval_need_a_clear_leader() {
        let s = VoteSpec {
            kind: VoteKind::Choice,
            options: vec!["a".into(), "b".into(), "c".into()],
            pass: Threshold::Plurality,
            ..VoteSpec::default()
        };
        use Choice::One;
        assert_eq!(tally(&s, 9, &[One(0), One(1)]).result(&s), Decision::Failed);
        assert_eq!(tally(&s, 9, &[One(0), One(1), One(1)]).result(&s), Decision::Passed { winner: 1 });
        // b leads by 5 with 4 voters left: certain.
        let b: Vec<Choice> = vec![One(1); 5];
        assert_eq!(tally(&s, 9, &b).early(&s), Some(Decision::Passed { winner: 1 }));
        assert_eq!(tally(&s, 10, &b).early(&s), None);

        let m = VoteSpec { pass: Threshold::Majority, ..s.clone() };
        assert_eq!(tally(&m, 9, &[One(0), One(1), One(1), One(2)]).result(&m), Decision::Failed);

        let a = VoteSpec { kind: VoteKind::Approval, ..s };
        let ballots = [Choice::Approve([0, 1].into()), Choice::Approve([1].into()), Choice::Approve([2].into())];
        assert_eq!(tally(&a, 3, &ballots).result(&a), Decision::Passed { winner: 1 });
    }

    #[test]
    fn instant_runoff_transfers_eliminated_preferences() {
        let s = VoteSpec {
            kind: VoteKind::Ranked,
            options: vec!["a".into(), "b".into(), "c".into()],
            ..VoteSpec::default()
        };
        use Choice::Rank;
        // First preferences a 2, b 2, c 1: c is eliminated, its ballot goes to b.
        let ballots = [Rank(vec![0]), Rank(vec![0]), Rank(vec![1]), Rank(vec![1]), Rank(vec![2, 1])];
        assert_eq!(tally(&s, 5, &ballots).result(&s), Decision::Passed { winner: 1 });
        // A perfect tie has no winner.
        let tie = [Rank(vec![0, 1]), Rank(vec![1, 0])];
        assert_eq!(tally(&s, 2, &tie).result(&s), Decision::Failed);
        // Majority of every possible first preference: certain at once.
        let lead = [Rank(vec![2]), Rank(vec![2]), Rank(vec![2])];
        assert_eq!(tally(&s, 5, &lead).early(&s), Some(Decision::Passed { winner: 2 }));
        assert_eq!(tally(&s, 6, &lead).early(&s), None);
    }
}
