//! Reaction snapshots: the reactions a platform reports on a vote message bring the ballots
//! in line, whatever events were missed or arrived out of order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use polity_governance::io::{Audit, ReactionUsers};
use polity_governance::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const EMOJI: [&str; 3] = ["👍", "👎", "🤷"];

fn snapshot(id: ProposalId, reactions: &[(&str, &[&str])]) -> Inbound {
    Inbound::Reactions {
        message: vote_message(id),
        reactions: reactions
            .iter()
            .map(|(emoji, who)| ReactionUsers {
                emoji: (*emoji).to_string(),
                accounts: who.iter().map(|w| account(w)).collect(),
            })
            .collect(),
        superseded_kept: false,
    }
}

/// Each voter's ballot as its choice's description.
fn ballots(w: &World, id: ProposalId) -> BTreeMap<String, String> {
    let p = w.engine.proposal(id).unwrap();
    let v = p.vote.as_ref().unwrap();
    v.ballots.values().map(|b| (b.account.account.to_string(), v.spec.describe(&b.choice))).collect()
}

fn edits(step: &Step) -> usize {
    step.effects.iter().filter(|e| matches!(e, Effect::EditVote { .. })).count()
}

#[test]
fn a_missed_reaction_counts_and_a_missed_removal_withdraws() {
    let (mut w, id) = voters_world();
    w.react("alice", id, "👍");
    // While the bot was away, alice took her 👍 back and bob and carol voted.
    let s = w.push(snapshot(id, &[("👍", &["carol"]), ("👎", &["bob"]), ("🤷", &[])])).unwrap();
    assert_eq!(ballots(&w, id), BTreeMap::from([("bob".into(), "no".into()), ("carol".into(), "yes".into())]));
    assert!(s.audit.iter().any(|a| matches!(a, Audit::BallotWithdrawn { voter, .. } if voter == &account("alice"))));
    // Three changes, one edit of the tally.
    assert_eq!(edits(&s), 1);
    // The same snapshot again changes nothing and produces nothing.
    let again = w.push(snapshot(id, &[("👍", &["carol"]), ("👎", &["bob"]), ("🤷", &[])])).unwrap();
    assert!(again.effects.is_empty() && again.audit.is_empty(), "{again:?}");
}

#[test]
fn of_two_reactions_the_one_no_ballot_accounts_for_is_the_newer() {
    let (mut w, id) = voters_world();
    w.react("bob", id, "👍");
    // bob added 👎 while the bot was away: it replaces 👍, which is removed.
    let s = w.push(snapshot(id, &[("👍", &["bob"]), ("👎", &["bob"])])).unwrap();
    assert_eq!(ballots(&w, id), BTreeMap::from([("bob".into(), "no".into())]));
    assert!(s.effects.iter().any(
        |e| matches!(e, Effect::RemoveReaction { emoji, account: a, .. } if emoji == "👍" && a == &account("bob"))
    ));
}

#[test]
fn where_superseded_reactions_stay_the_ballots_own_reaction_is_the_newer() {
    let (mut w, id) = voters_world();
    // On Slack bob's 👍 stays after he chose 👎: his ballot is the 👎 the events said.
    w.react("bob", id, "👍");
    w.react("bob", id, "👎");
    let s = w.push(kept(id, &[("👍", &["bob"]), ("👎", &["bob"]), ("🤷", &[])])).unwrap();
    assert!(s.effects.is_empty() && s.audit.is_empty(), "{s:?}");
    assert_eq!(ballots(&w, id), BTreeMap::from([("bob".into(), "no".into())]));
    // Once he takes 👎 back, the 👍 he still holds is his ballot.
    w.push(kept(id, &[("👍", &["bob"]), ("👎", &[]), ("🤷", &[])])).unwrap();
    assert_eq!(ballots(&w, id), BTreeMap::from([("bob".into(), "yes".into())]));
    // A member with no ballot yet: what they hold counts, as on any platform.
    w.push(kept(id, &[("👍", &["bob", "carol"]), ("👎", &[]), ("🤷", &[])])).unwrap();
    assert_eq!(ballots(&w, id).get("carol").map(String::as_str), Some("yes"));
}

fn kept(id: ProposalId, reactions: &[(&str, &[&str])]) -> Inbound {
    match snapshot(id, reactions) {
        Inbound::Reactions { message, reactions, .. } => {
            Inbound::Reactions { message, reactions, superseded_kept: true }
        }
        other => other,
    }
}

#[test]
fn where_superseded_reactions_stay_a_ballot_cast_otherwise_is_newer_than_any_reaction() {
    let (mut w, id) = voters_world();
    // bob reacted 👍, then pressed "no" (a typed ballot): his 👍 stays on the message.
    w.react("bob", id, "👍");
    w.vote("bob", id, "no").unwrap();
    let s = w.push(kept(id, &[("👍", &["bob"]), ("👎", &[]), ("🤷", &[])])).unwrap();
    assert!(s.effects.is_empty() && s.audit.is_empty(), "{s:?}");
    assert_eq!(ballots(&w, id), BTreeMap::from([("bob".into(), "no".into())]));
}

#[test]
fn where_superseded_reactions_stay_an_ineligible_reaction_is_explained_once() {
    let (mut w, id) = voters_world();
    let told = |s: &Step| s.effects.iter().filter(|e| matches!(e, Effect::Notify { .. })).count();
    let first = w
        .push(Inbound::Reaction {
            message: vote_message(id), voter: account("dave"), emoji: "👍".into(), added: true
        })
        .unwrap();
    assert_eq!(told(&first), 1);
    // Every read finds dave's reaction again (the bot cannot remove it): nothing more is said.
    for _ in 0..3 {
        let s = w.push(kept(id, &[("👍", &["dave"]), ("👎", &[]), ("🤷", &[])])).unwrap();
        assert_eq!(told(&s), 0, "{s:?}");
    }
}

#[test]
fn an_ineligible_reaction_in_a_snapshot_is_removed_and_explained() {
    let (mut w, id) = voters_world();
    let s = w.push(snapshot(id, &[("👍", &["dave"])])).unwrap();
    assert!(ballots(&w, id).is_empty());
    assert!(s.effects.iter().any(|e| matches!(e, Effect::RemoveReaction { account: a, .. } if a == &account("dave"))));
    assert!(s.effects.iter().any(|e| matches!(e, Effect::Notify { account: a, .. } if a == &account("dave"))));
}

#[test]
fn emoji_that_were_not_read_and_typed_ballots_are_left_alone() {
    let (mut w, id) = voters_world();
    w.react("alice", id, "👍");
    w.vote("bob", id, "no").unwrap();
    // Only 👎 was read (reading 👍 failed): alice's 👍 ballot stands; bob's typed ballot
    // stands with no 👎 reaction of his.
    let s = w.push(snapshot(id, &[("👎", &[])])).unwrap();
    assert!(s.effects.is_empty(), "{s:?}");
    assert_eq!(ballots(&w, id), BTreeMap::from([("alice".into(), "yes".into()), ("bob".into(), "no".into())]));
    // A reaction that is no option is ignored.
    let s = w.push(snapshot(id, &[("🎉", &["carol"])])).unwrap();
    assert!(s.effects.is_empty());
}

#[test]
fn a_snapshot_can_decide_a_proposal() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(
        r#"
name = "Majority"
kind = "platform"
[vote]
quorum = 2
closes = "24h"
"#,
    );
    let id = w.propose("alice", "x");
    let s = w.push(snapshot(id, &[("👍", &["alice", "bob", "admin"])])).unwrap();
    assert_eq!(w.state(id), ProposalState::Passed);
    assert_eq!(posts(&s).len(), 1);
    // The decided text is the one edit.
    assert_eq!(edits(&s), 1);
    assert!(s.effects.iter().any(|e| matches!(e, Effect::EditVote { text, .. } if text.ends_with("PASSED"))));
}

#[test]
fn buttons_are_offered_where_one_press_is_a_whole_ballot() {
    let (mut w, _) = voters_world();
    let presses = |w: &mut World, vote: &str| {
        w.install(&format!("name = \"Kind\"\nkind = \"platform\"\n[vote]\n{vote}\n"));
        let step = w.push(Inbound::Action { action: proposal_action("admin", "y") }).unwrap();
        let options = step
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::PostVote { options, .. } => Some(options.clone()),
                _ => None,
            })
            .unwrap();
        options.into_iter().map(|o| o.press).collect::<Vec<_>>()
    };
    let some = |s: &str| Some(s.to_string());
    assert_eq!(presses(&mut w, ""), [some("yes"), some("no"), some("abstain")]);
    assert_eq!(
        presses(&mut w, "type = \"choice\"\noptions = [\"Coffee\", \"Tea\"]"),
        [some("1"), some("2"), some("abstain")]
    );
    assert_eq!(presses(&mut w, "type = \"approval\"\noptions = [\"A\", \"B\"]"), [None, None, None]);
}

/// What a user does on the platform.
#[derive(Clone, Debug)]
enum Act {
    Add(usize, usize),
    Remove(usize, usize),
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        (0..5usize, 0..3usize).prop_map(|(m, e)| Act::Add(m, e)),
        (0..5usize, 0..3usize).prop_map(|(m, e)| Act::Remove(m, e)),
    ]
}

/// The platform's reactions on the vote message: who holds which emoji.
type Held = BTreeSet<(usize, usize)>;

fn apply_removals(held: &mut Held, step: &Step) {
    for e in &step.effects {
        if let Effect::RemoveReaction { account: a, emoji, .. } = e {
            let m = MEMBERS.iter().position(|n| *n == a.account).unwrap();
            let e = EMOJI.iter().position(|x| x == emoji).unwrap();
            held.remove(&(m, e));
        }
    }
}

fn snapshot_of(id: ProposalId, held: &Held) -> Inbound {
    let reactions = (0..EMOJI.len())
        .map(|e| ReactionUsers {
            emoji: EMOJI[e].to_string(),
            accounts: held.iter().filter(|(_, x)| *x == e).map(|(m, _)| account(MEMBERS[*m])).collect(),
        })
        .collect();
    Inbound::Reactions { message: vote_message(id), reactions, superseded_kept: false }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// However the events were delivered (reordered, some lost), once the platform's state is
    /// read back the ballots match it: each eligible voter's ballot is the one reaction they
    /// hold, the bot removed any other, and reading again changes nothing.
    #[test]
    fn snapshots_converge_on_the_platforms_state(
        acts in prop::collection::vec(act(), 0..24),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        lost in prop::collection::vec(any::<bool>(), 0..24),
    ) {
        let (mut w, id) = voters_world();
        let mut held = Held::new();
        let mut events = Vec::new();
        for a in &acts {
            let (m, e, added) = match *a {
                Act::Add(m, e) => (m, e, true),
                Act::Remove(m, e) => (m, e, false),
            };
            // The platform only reports what changed its state.
            let changed = if added { held.insert((m, e)) } else { held.remove(&(m, e)) };
            if changed {
                events.push((m, e, added));
            }
        }
        // Deliver in a shuffled order, dropping some; the bot's removals land on the platform.
        for (i, ix) in order.iter().enumerate() {
            if events.is_empty() { break; }
            let (m, e, added) = events.remove(ix.index(events.len()));
            if lost.get(i).copied().unwrap_or(false) { continue; }
            let input = Inbound::Reaction { message: vote_message(id), voter: account(MEMBERS[m]), emoji: EMOJI[e].into(), added };
            let step = w.push(input).unwrap();
            apply_removals(&mut held, &step);
        }
        let step = w.push(snapshot_of(id, &held)).unwrap();
        apply_removals(&mut held, &step);
        let settled = w.push(snapshot_of(id, &held)).unwrap();
        prop_assert!(settled.effects.is_empty(), "a second read changed something: {:?}", settled);

        let ballots = ballots(&w, id);
        for (m, name) in MEMBERS.iter().enumerate() {
            let mine: Vec<usize> = held.iter().filter(|(x, _)| *x == m).map(|(_, e)| *e).collect();
            if m >= 3 {
                // Ineligible: never a ballot, and their reactions were removed.
                prop_assert!(!ballots.contains_key(*name));
                prop_assert!(mine.is_empty(), "{name} still holds {mine:?}");
                continue;
            }
            prop_assert!(mine.len() <= 1, "{name} holds {mine:?}");
            let expected = mine.first().map(|e| ["yes", "no", "abstain"][*e].to_string());
            prop_assert_eq!(ballots.get(*name).cloned(), expected, "ballot of {}", name);
        }
    }
}
