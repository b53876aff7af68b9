//! Each starter kit, installed in one step and played through a short scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use polity_governance::kits::{starter_kit, starter_kits};
use polity_governance::*;

fn rename(who: &str) -> Action {
    Action::new(ActionType::new("discord.rename_channel").unwrap(), account(who), "chan-1")
        .at(general())
        .with("name", "random")
}

fn grant(who: &str) -> Action {
    Action::new(ActionType::new("polity.role_grant").unwrap(), account(who), "cmd-1")
        .at(general())
        .requested()
        .with("role", "moderator")
}

#[test]
fn every_shipped_kit_parses_and_compiles() {
    let names: Vec<String> = starter_kits().into_iter().map(|k| k.name).collect();
    assert_eq!(names, ["testing", "benevolent-dictator", "moderators", "direct-democracy", "consensus", "jury"]);
    for k in starter_kits() {
        let mut w = World::new(&["alice"]);
        let admin = w.member("admin");
        let ids = w.engine.install_kit(&k, Some(admin)).unwrap();
        assert_eq!(ids.len(), k.policies.len(), "{}", k.name);
        assert!(!k.description.is_empty());
    }
    assert_eq!(starter_kit("nope").unwrap_err(), GovError::UnknownKit("nope".into()));
}

#[test]
fn testing_everything_passes_at_once() {
    let mut w = World::with_kit(&["alice"], "testing");
    let id = w.propose("alice", "Anything");
    assert_eq!(w.state(id), ProposalState::Passed);
    // A governed action passes at once and is left alone: no revert, no repost.
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(s.effects.is_empty(), "{:?}", s.effects);
    // A change to governance passes and is carried out.
    let s = w.push(Inbound::Action { action: grant("alice") }).unwrap();
    assert!(has(&s, |e| matches!(e, Effect::Execute { .. })));
}

#[test]
fn benevolent_dictator_decides_alone() {
    let mut w = World::with_kit(&["alice", "bob"], "benevolent-dictator");
    assert!(w.engine.community.member(w.member("admin")).unwrap().roles.contains("dictator"));
    let id = w.propose("alice", "Add a #music channel");
    w.react("bob", id, "👍");
    assert_eq!(w.engine.proposal(id).unwrap().tally().unwrap().cast, 0, "bob is not the dictator");
    w.react("admin", id, "👎");
    assert_eq!(w.state(id), ProposalState::Failed);
    // The dictator's own actions are never governed.
    let s = w.push(Inbound::Action { action: rename("admin") }).unwrap();
    assert!(s.effects.is_empty());
}

#[test]
fn moderators_decide_members_actions() {
    let mut w = World::with_kit(&["alice", "bob", "carol"], "moderators");
    let bob = w.member("bob");
    w.engine.community.grant_role(bob, "moderator").unwrap();
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(matches!(s.effects[0], Effect::Revert { .. }));
    let id = ProposalId(1);
    w.react("carol", id, "👍");
    w.react("bob", id, "👍");
    let s = w.react("admin", id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    assert!(has(&s, |e| matches!(e, Effect::Execute { .. })));
}

#[test]
fn direct_democracy_a_majority_of_members() {
    let mut w = World::with_kit(&["alice", "bob", "carol", "dave"], "direct-democracy");
    let id = w.propose("alice", "Weekly calls on Fridays");
    // Five members: quorum 34% is two ballots; three yes cannot be outvoted by the other two.
    w.react("alice", id, "👍");
    w.react("bob", id, "👍");
    assert_eq!(w.state(id), ProposalState::Proposed);
    w.react("carol", id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    // Another one fails at its deadline 2 to 1.
    let id = w.propose("bob", "Monthly calls");
    w.react("alice", id, "👎");
    w.react("bob", id, "👍");
    w.react("carol", id, "👎");
    w.wait(hours(72));
    assert_eq!(w.state(id), ProposalState::Failed);
}

#[test]
fn consensus_passes_at_the_deadline_unless_someone_objects() {
    let mut w = World::with_kit(&["alice", "bob", "carol"], "consensus");
    let quiet = w.propose("alice", "Adopt the style guide");
    w.react("bob", quiet, "👍");
    let objected = w.propose("alice", "Delete the wiki");
    let s = w.react("carol", objected, "👎");
    assert_eq!(w.state(objected), ProposalState::Failed, "one objection stops it at once");
    assert!(posts(&s)[0].contains("failed"));
    w.wait(hours(47));
    assert_eq!(w.state(quiet), ProposalState::Proposed);
    w.wait(hours(1));
    assert_eq!(w.state(quiet), ProposalState::Passed);
}

#[test]
fn jury_a_random_jury_drawn_once_decides() {
    let members = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut w = World::with_kit(&members, "jury");
    let id = w.propose("alice", "Ban the spammer");
    let jury = w.engine.proposal(id).unwrap().vote.as_ref().unwrap().eligible.clone();
    assert_eq!(jury.len(), 3);
    assert!(!jury.contains(&w.member("alice")), "the proposer is never on the jury");
    let name = |m: &MemberId| w.engine.community.member(*m).unwrap().name.clone();
    let jurors: Vec<String> = jury.iter().map(name).collect();
    let outsider =
        members.iter().chain(&["admin"]).find(|m| **m != "alice" && !jurors.contains(&m.to_string())).unwrap();
    let s = w.react(outsider, id, "👍");
    assert!(has(&s, |e| matches!(e, Effect::Notify { text, .. } if text.contains("jury"))));
    // The draw is kept: time passing and ballots do not redraw it.
    w.wait(hours(1));
    w.react(&jurors[0], id, "👍");
    assert_eq!(w.engine.proposal(id).unwrap().vote.as_ref().unwrap().eligible, jury);
    w.react(&jurors[1], id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    // Another proposal draws its own jury from the seed.
    w.seed = 99;
    let id2 = w.propose("bob", "Unban them");
    let jury2 = w.engine.proposal(id2).unwrap().vote.as_ref().unwrap().eligible.clone();
    assert_eq!(jury2.len(), 3);
    assert!(!jury2.contains(&w.member("bob")));
}

#[test]
fn a_kit_with_a_broken_policy_installs_nothing() {
    let mut w = World::new(&["alice"]);
    let mut kit = starter_kit("moderators").unwrap();
    kit.policies.push("name = \"broken\"\nkind = \"platfrom\"\n".into());
    let before = w.engine.community.clone();
    let err = w.engine.install_kit(&kit, None).unwrap_err();
    assert!(err.to_string().contains("kit moderators policy 3"), "{err}");
    assert_eq!(w.engine.community, before);
    assert!(w.engine.policies().is_empty());
}
