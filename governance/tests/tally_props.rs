//! Properties of the tally that must hold for every vote and every set of ballots.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_governance::vote::{Choice, Quorum, Tally, Threshold, VoteKind, VoteSpec};
use proptest::prelude::*;
use std::collections::BTreeSet;

fn spec_strategy() -> impl Strategy<Value = VoteSpec> {
    let kind =
        prop_oneof![Just(VoteKind::YesNo), Just(VoteKind::Choice), Just(VoteKind::Approval), Just(VoteKind::Ranked)];
    let threshold = prop_oneof![
        Just(Threshold::Majority),
        Just(Threshold::Unanimous),
        Just(Threshold::NoObjection),
        Just(Threshold::Plurality),
        (1u32..=4, 0u32..=3).prop_map(|(n, extra)| Threshold::Fraction { num: n, den: n + extra }),
    ];
    let quorum = prop_oneof![(0u32..6).prop_map(Quorum::Count), (0u32..=100).prop_map(Quorum::Percent)];
    (kind, threshold, quorum, 2usize..=4).prop_filter_map("valid spec", |(kind, pass, quorum, n)| {
        let options = if kind == VoteKind::YesNo { vec![] } else { (0..n).map(|i| format!("o{i}")).collect() };
        let spec =
            VoteSpec { kind, pass, quorum, options, closes: Some(chrono::TimeDelta::hours(1)), ..VoteSpec::default() };
        spec.validate().ok().map(|_| spec)
    })
}

/// A ballot for `spec` from a seed: any well-formed choice, abstentions included.
fn choice(spec: &VoteSpec, seed: u64) -> Choice {
    let n = spec.options.len().max(2) as u64;
    let pick = seed % 7;
    if pick == 0 {
        return Choice::Abstain;
    }
    match spec.kind {
        VoteKind::YesNo => {
            if seed.is_multiple_of(2) {
                Choice::Yes
            } else {
                Choice::No
            }
        }
        VoteKind::Choice => Choice::One(((seed / 7) % n) as usize),
        VoteKind::Approval => {
            let mut s: BTreeSet<usize> = (0..n as usize).filter(|i| (seed >> (i + 3)) & 1 == 1).collect();
            if s.is_empty() {
                s.insert(((seed / 7) % n) as usize);
            }
            Choice::Approve(s)
        }
        VoteKind::Ranked => {
            let mut order: Vec<usize> = (0..n as usize).collect();
            let mut x = seed;
            for i in (1..order.len()).rev() {
                order.swap(i, (x % (i as u64 + 1)) as usize);
                x /= i as u64 + 1;
            }
            order.truncate(1 + (seed % n) as usize);
            Choice::Rank(order)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_result_does_not_depend_on_ballot_order(
        spec in spec_strategy(),
        seeds in prop::collection::vec(any::<u64>(), 0..12),
        extra in 0usize..4,
        shuffle in any::<u64>(),
    ) {
        let ballots: Vec<Choice> = seeds.iter().map(|s| choice(&spec, *s)).collect();
        let mut shuffled = ballots.clone();
        let mut x = shuffle;
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            x = x.rotate_left(7) ^ 0x9E37;
        }
        let eligible = ballots.len() + extra;
        let a = Tally::new(&spec, eligible, ballots.iter());
        let b = Tally::new(&spec, eligible, shuffled.iter());
        prop_assert_eq!(a.result(&spec), b.result(&spec));
        prop_assert_eq!(a.early(&spec), b.early(&spec));
    }

    #[test]
    fn an_early_decision_never_differs_from_the_decision_at_the_deadline(
        spec in spec_strategy(),
        cast in prop::collection::vec(any::<u64>(), 0..10),
        rest in prop::collection::vec(prop::option::of(any::<u64>()), 0..6),
    ) {
        let ballots: Vec<Choice> = cast.iter().map(|s| choice(&spec, *s)).collect();
        let eligible = ballots.len() + rest.len();
        let now = Tally::new(&spec, eligible, ballots.iter());
        if let Some(early) = now.early(&spec) {
            // The same ballots at the deadline...
            prop_assert_eq!(now.result(&spec), early);
            // ...and whatever the voters who had not voted then do (or do not do).
            let mut all = ballots.clone();
            all.extend(rest.iter().flatten().map(|s| choice(&spec, *s)));
            let later = Tally::new(&spec, eligible, all.iter());
            prop_assert_eq!(later.result(&spec), early, "early {:?} vs later ballots {:?}", early, all);
        }
    }

    #[test]
    fn ballots_that_do_not_fit_the_vote_never_count(
        spec in spec_strategy(),
        seeds in prop::collection::vec(any::<u64>(), 0..10),
    ) {
        let ballots: Vec<Choice> = seeds.iter().map(|s| choice(&spec, *s)).collect();
        let mut with_junk = ballots.clone();
        with_junk.push(Choice::One(99));
        with_junk.push(Choice::Rank(vec![]));
        with_junk.push(Choice::Approve(BTreeSet::new()));
        let eligible = ballots.len() + 3;
        let a = Tally::new(&spec, eligible, ballots.iter());
        let b = Tally::new(&spec, eligible, with_junk.iter());
        prop_assert_eq!(a, b);
    }
}
