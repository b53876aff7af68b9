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
    assert_eq!(
        names,
        [
            "testing",
            "benevolent-dictator",
            "moderators",
            "direct-democracy",
            "consensus",
            "jury",
            "cred-voters",
            "expense-votes"
        ]
    );
    for k in starter_kits() {
        let k = k.configured(if k.name == "expense-votes" { "on=discord:1" } else { "" }).unwrap();
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
    let name = |m: &MemberId| w.engine.community.member(*m).unwrap().name.to_string();
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

#[test]
fn a_kit_with_options_is_installed_with_them_and_refuses_others() {
    let kit = starter_kit("expense-votes").unwrap();
    assert_eq!(
        kit.configured("").unwrap_err(),
        "the kit expense-votes needs on=... (where the votes are held, PLATFORM:CHANNEL (discord:CHANNEL_ID))"
    );
    assert!(kit.configured("on=discord:1 color=red").unwrap_err().contains("has no option `color`"));
    assert!(kit.configured("on=discord:1\"").unwrap_err().contains("is not a value for on"));
    assert!(kit.configured("on").unwrap_err().contains("write key=value"));
    let set = kit.configured("on=discord:42 big=100").unwrap();
    assert!(set.policies.iter().all(|p| !p.contains("${")), "every option is written in");
    assert!(set.policies[0].contains("discord:42") && set.policies[0].contains("action.amount < 100"));
    let voters = starter_kit("cred-voters").unwrap();
    assert!(voters.configured("").unwrap().policies[0].contains(">= 100.0"), "the default threshold");
    assert!(voters.configured("threshold=7").unwrap().policies[0].contains(">= 7.0"));
    assert!(voters.configured("threshold=1.5").unwrap_err().contains("write a whole number"));
    assert!(kit.configured("on=discord:1 big=-3").unwrap_err().contains("write a whole number"));
    assert!(starter_kit("jury").unwrap().configured("x=1").unwrap_err().contains("has no options"));
}

/// SourceCred as a community's connection would answer: alice has 150 cred, bob 20, and
/// carol is unknown to it.
struct Cred {
    down: bool,
}

impl polity_governance::script::HostData for Cred {
    fn cred(&self, _member: &polity_governance::script::MemberQuery) -> Option<f64> {
        None
    }
    fn grain(&self, _member: &polity_governance::script::MemberQuery) -> Option<f64> {
        None
    }
    fn linked_account(&self, _member: &polity_governance::script::MemberQuery, _platform: &str) -> Option<String> {
        None
    }
    fn sourcecred(
        &self,
        member: &polity_governance::script::MemberQuery,
    ) -> Result<polity_governance::script::CredRecord, String> {
        use polity_governance::script::{CredRecord, MemberQuery};
        if self.down {
            return Err("SourceCred at cred.example could not be read: connection refused".into());
        }
        let MemberQuery::Id(id) = member else { return Err("by id only here".into()) };
        Ok(match id.0 {
            2 => CredRecord { cred: 150.0, grain: 3.5, identity: Some("alice".into()), reason: None },
            3 => CredRecord { cred: 20.0, grain: 0.0, identity: Some("bob".into()), reason: None },
            _ => CredRecord::unknown("no linked account of carol's is one of its identities' aliases"),
        })
    }
    fn sourcecred_total(&self) -> Result<f64, String> {
        if self.down {
            Err("SourceCred at cred.example could not be read: connection refused".into())
        } else {
            Ok(170.0)
        }
    }
}

fn request_voter(who: &str) -> Action {
    Action::new(ActionType::new("polity.role_request").unwrap(), account(who), format!("req-{who}"))
        .at(general())
        .requested()
        .with("role", "voter")
}

#[test]
fn cred_voters_grants_the_role_by_cred_and_says_why_not() {
    let mut w = World::with_kit(&["alice", "bob", "carol"], "cred-voters");
    w.host = std::sync::Arc::new(Cred { down: false });
    for (who, id) in [("alice", 2), ("bob", 3), ("carol", 4)] {
        assert_eq!(w.member(who).0, id, "members are numbered as the host answers");
    }
    let s = w.push(Inbound::Action { action: request_voter("alice") }).unwrap();
    assert!(has(&s, |e| matches!(e, Effect::Execute { .. })), "alice has 150 cred: {:?}", s.effects);
    let s = w.push(Inbound::Action { action: request_voter("bob") }).unwrap();
    assert!(!has(&s, |e| matches!(e, Effect::Execute { .. })));
    assert_eq!(posts(&s), ["bob has 20.0 cred on SourceCred; the voter role needs 100."]);
    let s = w.push(Inbound::Action { action: request_voter("carol") }).unwrap();
    assert_eq!(
        posts(&s),
        [
            "carol has 0.0 cred on SourceCred; the voter role needs 100. no linked account of carol's is one of its identities' aliases"
        ]
    );
}

#[test]
fn cred_voters_never_takes_an_unreachable_instance_for_no_cred() {
    let mut w = World::with_kit(&["alice"], "cred-voters");
    w.host = std::sync::Arc::new(Cred { down: true });
    let s = w.push(Inbound::Action { action: request_voter("alice") }).unwrap();
    assert!(posts(&s).is_empty(), "nobody is refused for want of an answer: {:?}", posts(&s));
    assert!(s.audit.iter().any(|a| a.to_string().contains("could not be read")), "{:?}", s.audit);
    let open: Vec<_> = w.engine.proposals().filter(|p| p.state.is_open()).map(|p| p.id).collect();
    assert_eq!(open.len(), 1, "the request waits");
    assert!(w.engine.rechecked(open[0]), "and is checked again every minute");
    w.host = std::sync::Arc::new(Cred { down: false });
    let s = w.wait(chrono::TimeDelta::minutes(1));
    assert!(has(&s, |e| matches!(e, Effect::Execute { .. })), "granted once SourceCred answers: {:?}", s.effects);
}

#[test]
fn voters_by_cred_are_the_members_with_enough_cred_when_the_vote_opens() {
    let policy = "name = \"Cred votes\"\nkind = \"platform\"\n[vote]\nvoters = \"cred >= 100\"\nquorum = 1\n";
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(policy);
    w.host = std::sync::Arc::new(Cred { down: false });
    let id = w.propose("bob", "Fund the sprint");
    let eligible: Vec<MemberId> =
        w.engine.proposal(id).unwrap().vote.as_ref().unwrap().eligible.iter().copied().collect();
    assert_eq!(eligible, [w.member("alice")], "alice has 150 cred, bob 20, carol none");
    let refused = w.vote("bob", id, "yes").unwrap_err().to_string();
    assert!(refused.contains("at least 100 cred on SourceCred"), "{refused}");

    // SourceCred cannot be read when a vote opens: the vote opens and waits for its voters
    // (nobody is taken to have no cred), says so, and decides nothing until they are known.
    w.host = std::sync::Arc::new(Cred { down: true });
    let s = w.push(Inbound::Action { action: proposal_action("alice", "Another") }).unwrap();
    assert!(s.audit.iter().any(|a| a.to_string().contains("is not known yet")), "{:?}", s.audit);
    let id = *s.changed.iter().next().unwrap();
    assert_eq!(w.state(id), ProposalState::Proposed, "not a vote nobody can win");
    let vote = w.engine.proposal(id).unwrap().vote.clone().unwrap();
    assert!(vote.pending && vote.eligible.is_empty());
    assert!(w.engine.proposal(id).unwrap().vote_text().contains("Who may vote (`cred >= 100`) is not known yet"));
    let refused = w.vote("alice", id, "yes").unwrap_err().to_string();
    assert!(refused.contains("not known yet"), "{refused}");
    assert!(w.engine.rechecked(id), "read again every minute");
    let s = w.wait(chrono::TimeDelta::minutes(1));
    assert!(s.changed.is_empty() || w.engine.proposal(id).unwrap().vote.as_ref().unwrap().pending);

    // SourceCred answers again: the voters are read and frozen, and the vote goes on.
    w.host = std::sync::Arc::new(Cred { down: false });
    w.wait(chrono::TimeDelta::minutes(1));
    let vote = w.engine.proposal(id).unwrap().vote.clone().unwrap();
    assert!(!vote.pending);
    assert_eq!(vote.eligible.iter().copied().collect::<Vec<_>>(), [w.member("alice")]);
    assert!(!w.engine.proposal(id).unwrap().vote_text().contains("not known yet"));
    w.vote("alice", id, "yes").unwrap();
    assert_eq!(w.state(id), ProposalState::Passed);
}

#[test]
fn voters_by_cred_must_say_how_much() {
    for (bad, why) in [
        ("cred > 100", "write \"cred >= N\""),
        ("cred >= lots", "`lots` is not a whole amount of cred"),
        ("cred >= -5", "`-5` is not a whole amount of cred"),
        ("cred >= 1.5", "`1.5` is not a whole amount of cred"),
    ] {
        let toml = format!("name = \"P\"\nkind = \"platform\"\n[vote]\nvoters = \"{bad}\"\n");
        let err = polity_governance::policy::CompiledPolicy::compile(
            PolicyId(1),
            &toml,
            &polity_governance::script::Sandbox::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(why), "{bad}: {err}");
    }
}
