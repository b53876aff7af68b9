//! Properties of ballots as the engine keeps them: one per voter, withdrawal and re-casting,
//! and ineligible voters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use polity_governance::*;
use proptest::prelude::*;

const EMOJI: [&str; 3] = ["👍", "👎", "🤷"];

#[derive(Clone, Debug)]
enum Op {
    React(usize, usize),
    Unreact(usize, usize),
    Vote(usize, usize),
    Unvote(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5usize, 0..3usize).prop_map(|(m, e)| Op::React(m, e)),
        (0..5usize, 0..3usize).prop_map(|(m, e)| Op::Unreact(m, e)),
        (0..5usize, 0..3usize).prop_map(|(m, e)| Op::Vote(m, e)),
        (0..5usize).prop_map(Op::Unvote),
    ]
}

fn apply(w: &mut World, id: ProposalId, op: &Op) {
    // User mistakes (voting while ineligible, unvoting with no ballot) are errors that
    // change nothing; the property is about what does count.
    let _ignored = match op {
        Op::React(m, e) => Ok(w.react(MEMBERS[*m], id, EMOJI[*e])),
        Op::Unreact(m, e) => Ok(w.unreact(MEMBERS[*m], id, EMOJI[*e])),
        Op::Vote(m, e) => w.vote(MEMBERS[*m], id, ["yes", "no", "abstain"][*e]),
        Op::Unvote(m) => w.push(Inbound::Unvote { proposal: id, voter: account(MEMBERS[*m]) }),
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn withdrawing_and_recasting_is_the_same_as_casting_once(
        history in prop::collection::vec(op(), 0..12),
        voter in 0usize..3,
        first in 0usize..3,
        last in 0usize..3,
    ) {
        let (mut a, id) = voters_world();
        let (mut b, _) = voters_world();
        for o in &history {
            apply(&mut a, id, o);
            apply(&mut b, id, o);
        }
        // a: cast, withdraw, cast again. b: cast once.
        let who = MEMBERS[voter];
        a.vote(who, id, ["yes", "no", "abstain"][first]).unwrap();
        a.push(Inbound::Unvote { proposal: id, voter: account(who) }).unwrap();
        a.vote(who, id, ["yes", "no", "abstain"][last]).unwrap();
        b.vote(who, id, ["yes", "no", "abstain"][last]).unwrap();
        let (ta, tb) = (a.engine.proposal(id).unwrap().tally(), b.engine.proposal(id).unwrap().tally());
        prop_assert_eq!(ta, tb);
        a.wait(hours(1));
        b.wait(hours(1));
        prop_assert_eq!(a.state(id), b.state(id));
    }

    #[test]
    fn one_ballot_per_voter_and_ineligible_ballots_never_count(history in prop::collection::vec(op(), 0..20)) {
        let (mut all, id) = voters_world();
        let (mut eligible_only, _) = voters_world();
        for o in &history {
            apply(&mut all, id, o);
            let by_eligible = match o {
                Op::React(m, _) | Op::Unreact(m, _) | Op::Vote(m, _) | Op::Unvote(m) => *m < 3,
            };
            if by_eligible {
                apply(&mut eligible_only, id, o);
            }
        }
        let t = all.engine.proposal(id).unwrap().tally().unwrap();
        prop_assert!(t.cast <= 3);
        prop_assert_eq!(Some(t), eligible_only.engine.proposal(id).unwrap().tally());
        all.wait(hours(1));
        eligible_only.wait(hours(1));
        prop_assert_eq!(all.state(id), eligible_only.state(id));
    }
}
