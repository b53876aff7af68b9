//! Scenarios played through the engine: proposals, reactions, deadlines, governed actions,
//! policy selection, triggers, the constitution and scripts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use polity_governance::engine::DEFAULT_STEP_BUDGET;
use polity_governance::io::Audit;
use polity_governance::script::{HostData, Limits, MemberQuery, Sandbox};
use polity_governance::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const MAJORITY: &str = r#"
name = "Majority"
kind = "platform"
[vote]
quorum = 2
pass = "majority"
closes = "24h"
"#;

#[test]
fn a_plain_proposal_passes_early_by_reactions_and_is_announced() {
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    w.install(MAJORITY);
    let step = w.push(Inbound::Action { action: proposal_action("alice", "Buy a new server") }).unwrap();
    let id = ProposalId(1);
    let Some(Effect::PostVote { text, options, place, .. }) = step.effects.first() else {
        panic!("no vote message: {step:?}")
    };
    assert_eq!(place, &general());
    assert!(text.contains("alice proposes: Buy a new server"), "{text}");
    assert!(text.contains("closes 2026-11-23 12:00:00 UTC"), "{text}");
    let emoji: Vec<&str> = options.iter().map(|o| o.emoji.as_str()).collect();
    assert_eq!(emoji, ["👍", "👎", "🤷"]);

    // Five eligible voters: two yes is not yet certain, three is.
    let s = w.react("bob", id, ":+1:");
    assert!(has(
        &s,
        |e| matches!(e, Effect::EditVote { text, .. } if text.contains("yes 1 · no 0 · abstain 0 (1 of 5 voted)"))
    ));
    w.react("carol", id, "👍");
    assert_eq!(w.state(id), ProposalState::Proposed);
    let s = w.react("dave", id, "thumbsup");
    assert_eq!(w.state(id), ProposalState::Passed);
    assert_eq!(
        posts(&s),
        ["Proposal #1 passed: alice proposes: Buy a new server (yes 3 · no 0 · abstain 0 (3 of 5 voted))"]
    );
    assert!(has(&s, |e| matches!(e, Effect::EditVote { text, .. } if text.ends_with("PASSED"))));
    // A plain proposal has nothing to execute.
    assert!(!has(&s, |e| matches!(e, Effect::Execute { .. })));
}

#[test]
fn the_effects_of_a_transition_come_once() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(MAJORITY);
    let id = w.propose("alice", "x");
    w.react("alice", id, "👍");
    w.react("bob", id, "👍");
    w.react("carol", id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    // Later reactions, votes and ticks change nothing and produce nothing.
    assert!(w.react("admin", id, "👎").effects.is_empty());
    assert!(w.wait(hours(48)).effects.is_empty());
    assert!(matches!(w.vote("admin", id, "no"), Err(GovError::Closed(_))));
    let announcements = w.log.iter().filter(|e| matches!(e, Effect::Post { .. })).count();
    assert_eq!(announcements, 1);
}

#[test]
fn a_changed_reaction_replaces_the_ballot_and_the_old_reaction_is_removed() {
    let mut w = World::new(&["alice", "bob", "carol", "dave"]);
    w.install(MAJORITY);
    let id = w.propose("alice", "x");
    w.react("bob", id, "👍");
    let s = w.react("bob", id, "👎");
    assert!(has(
        &s,
        |e| matches!(e, Effect::RemoveReaction { emoji, account, .. } if emoji == "👍" && account == &common::account("bob"))
    ));
    let t = w.engine.proposal(id).unwrap().tally().unwrap();
    assert_eq!((t.counts[0], t.counts[1], t.cast), (0, 1, 1));
    // The platform then reports the removal of the old reaction: nothing changes.
    let s = w.unreact("bob", id, "👍");
    assert!(s.effects.is_empty());
    // Removing the current reaction withdraws the ballot.
    w.unreact("bob", id, "👎");
    assert_eq!(w.engine.proposal(id).unwrap().tally().unwrap().cast, 0);
}

#[test]
fn an_ineligible_reaction_is_removed_and_explained() {
    let mut w = World::with_kit(&["alice", "bob"], "moderators");
    let id = w.propose("alice", "Pin the rules");
    let s = w.react("bob", id, "👍");
    assert!(has(&s, |e| matches!(e, Effect::RemoveReaction { emoji, .. } if emoji == "👍")));
    assert!(has(
        &s,
        |e| matches!(e, Effect::Notify { text, .. } if text.contains("only members with the role moderator can vote on proposal #1"))
    ));
    assert_eq!(w.engine.proposal(id).unwrap().tally().unwrap().cast, 0);
    // A reaction that is no option is left alone.
    assert!(w.react("bob", id, "🎉").effects.is_empty());
    // A typed ballot gets the same explanation as an error.
    let err = w.vote("bob", id, "yes").unwrap_err();
    assert!(err.to_string().contains("only members with the role moderator"));
}

#[test]
fn the_proposer_is_excluded_when_the_policy_says_so() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(&MAJORITY.replace("[vote]", "[vote]\nexclude_proposer = true"));
    let id = w.propose("alice", "x");
    let err = w.vote("alice", id, "yes").unwrap_err();
    assert_eq!(err.to_string(), "you proposed #1, and its policy does not let the proposer vote");
}

const TWO_YES_WITHIN_A_DAY: &str = r#"
name = "Two yes within a day"
kind = "platform"
check = """
if proposal.tally.yes >= 2 { "passed" } else if now - proposal.opened >= 86400 { "failed" }
"""
[vote]
early = false
"#;

#[test]
fn a_check_that_reads_the_clock_decides_on_a_tick_without_any_ballot() {
    let mut w = World::new(&["alice", "bob", "cy"]);
    w.install(TWO_YES_WITHIN_A_DAY);
    let id = w.propose("alice", "Paint the shed");
    assert!(w.engine.rechecked(id) && w.engine.has_rechecks());
    w.vote("bob", id, "yes").unwrap();
    // An hour on, nothing has changed.
    w.wait(hours(1));
    assert_eq!(w.state(id), ProposalState::Proposed);
    // A day on, with one yes, the clock alone fails it.
    let s = w.wait(hours(24));
    assert_eq!(w.state(id), ProposalState::Failed);
    assert!(posts(&s).iter().any(|p| p.contains("failed")), "{:?}", posts(&s));
    assert!(!w.engine.has_rechecks());
}

#[test]
fn a_check_that_reads_neither_clock_nor_host_is_not_rechecked_and_may_decide_at_the_deadline() {
    let mut w = World::new(&["alice", "bob", "cy"]);
    w.install(
        r#"
name = "Two yes by the deadline"
kind = "platform"
check = """
if deadline { if proposal.tally.yes >= 2 { "passed" } else { "failed" } }
"""
[vote]
closes = "48h"
early = false
"#,
    );
    let id = w.propose("alice", "Paint the shed");
    assert!(!w.engine.rechecked(id), "nothing but an input or the deadline can change its verdict");
    w.vote("bob", id, "yes").unwrap();
    w.wait(hours(47));
    assert_eq!(w.state(id), ProposalState::Proposed);
    // At the deadline the check decides: one yes is not two, though the vote alone (a
    // majority of the ballots) would have passed it.
    w.wait(hours(2));
    assert_eq!(w.state(id), ProposalState::Failed);
}

#[test]
fn the_deadline_decides_and_expires_without_quorum() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(MAJORITY);
    let a = w.propose("alice", "a");
    let b = w.propose("bob", "b");
    w.react("alice", a, "👍");
    w.react("bob", a, "👎");
    w.react("carol", a, "👍");
    w.react("carol", b, "👍");
    assert_eq!(w.engine.next_deadline(), Some(w.now + hours(24)));
    assert!(w.wait(hours(23)).effects.is_empty());
    let s = w.wait(hours(1));
    assert_eq!(w.state(a), ProposalState::Passed);
    assert_eq!(w.state(b), ProposalState::Expired);
    assert!(posts(&s).iter().any(|p| p.starts_with("Proposal #2 expired without enough ballots")));
    assert_eq!(w.engine.next_deadline(), None);
}

const RENAMES: &str = r#"
name = "Renames need a vote"
kind = "platform"
actions = ["discord.rename_channel"]
[vote]
quorum = 1
pass = "majority"
closes = "1h"
"#;

fn rename(who: &str) -> Action {
    Action::new(ActionType::new("discord.rename_channel").unwrap(), account(who), "chan-1")
        .at(general())
        .with("old_name", "general")
        .with("name", "random")
}

#[test]
fn a_governed_action_is_reverted_voted_on_and_re_executed() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(RENAMES);
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(matches!(&s.effects[0], Effect::Revert { action, .. } if action.data["old_name"] == "general"));
    assert!(
        matches!(&s.effects[1], Effect::PostVote { text, .. } if text.contains("alice renamed #general to random"))
    );
    let id = ProposalId(1);
    // Three eligible voters: the second yes makes it certain.
    let s = w.react("bob", id, "👍");
    assert!(!has(&s, |e| matches!(e, Effect::Execute { .. })));
    let s = w.react("admin", id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    assert!(has(
        &s,
        |e| matches!(e, Effect::Execute { proposal: Some(p), action } if *p == id && action.data["name"] == "random")
    ));
}

#[test]
fn a_note_shows_on_the_vote_message_replaces_its_own_key_and_is_kept_to_the_end() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(RENAMES);
    w.push(Inbound::Action { action: rename("alice") }).unwrap();
    let id = ProposalId(1);
    let note = |w: &mut World, key: &str, text: &str| {
        w.push(Inbound::Note { proposal: id, key: key.into(), text: text.into() }).unwrap()
    };
    let edited = |s: &Step| {
        s.effects.iter().find_map(|e| match e {
            Effect::EditVote { text, .. } => Some(text.clone()),
            _ => None,
        })
    };
    let s = note(&mut w, "held:1", "Discord holds back undoing it: it shows at about 10:10:00 UTC");
    assert!(edited(&s).unwrap().contains("— Discord holds back undoing it: it shows at about 10:10:00 UTC"));
    // The same note again changes nothing; a newer one under its key replaces it.
    assert_eq!(edited(&note(&mut w, "held:1", "Discord holds back undoing it: it shows at about 10:10:00 UTC")), None);
    let text =
        edited(&note(&mut w, "held:1", "Discord holds back undoing it: it shows at about 10:20:00 UTC")).unwrap();
    assert!(text.contains("10:20:00") && !text.contains("10:10:00"), "{text}");
    // Notes under other keys add up, the oldest dropped past five.
    for n in 0..5 {
        note(&mut w, &format!("other:{n}"), &format!("note {n}"));
    }
    let p = w.engine.proposal(id).unwrap();
    let notes: Vec<&str> = p.vote.as_ref().unwrap().notes.iter().map(|n| n.text.as_str()).collect();
    assert_eq!(notes, ["note 0", "note 1", "note 2", "note 3", "note 4"]);
    // The closing edit still shows them.
    w.react("bob", id, "👍");
    let s = w.react("admin", id, "👍");
    let closing = s
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::EditVote { text, closed: true, .. } => Some(text.clone()),
            _ => None,
        })
        .unwrap();
    assert!(closing.contains("note 4 — PASSED"), "{closing}");
    // A decided proposal takes no more notes.
    assert_eq!(edited(&note(&mut w, "late", "too late")), None);
}

#[test]
fn an_initiator_with_execute_permission_is_never_governed() {
    let mut w = World::new(&["alice"]);
    w.install(RENAMES);
    let s = w.push(Inbound::Action { action: rename("admin") }).unwrap();
    assert!(s.effects.is_empty());
    assert!(matches!(&s.audit[0], Audit::ExecutedByPermission { .. }));
    assert_eq!(w.engine.proposals().count(), 0);
}

#[test]
fn a_platform_policy_that_names_no_action_decides_proposals_only() {
    let mut w = World::new(&["alice"]);
    w.install(MAJORITY);
    // Every member's every message is not put to a vote because a kit was installed.
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(s.effects.is_empty());
    assert_eq!(s.audit[0].to_string(), "discord.rename_channel by console:alice allowed: no policy governs it");
    // A proposal is.
    w.propose("alice", "x");
    assert_eq!(w.engine.proposal(ProposalId(1)).unwrap().policy_name, "Majority");
}

#[test]
fn with_no_policy_an_action_is_allowed_and_that_is_logged() {
    let mut w = World::new(&["alice"]);
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(s.effects.is_empty());
    assert_eq!(s.audit[0].to_string(), "discord.rename_channel by console:alice allowed: no policy governs it");
    // A change to governance itself is never ungoverned: with no constitution policy only
    // an admin makes it, and it is carried out.
    let grant = |who: &str| Action::new(ActionType::new("polity.role_grant").unwrap(), account(who), "c1").requested();
    let err = w.push(Inbound::Action { action: grant("alice") }).unwrap_err();
    assert!(err.to_string().starts_with("no constitution policy lets members ask for polity.role_grant yet"), "{err}");
    let s = w.push(Inbound::Action { action: grant("admin") }).unwrap();
    assert!(matches!(&s.effects[0], Effect::Execute { proposal: None, .. }));
    // A plain proposal with no policy is a mistake the proposer is told about.
    let err = w.push(Inbound::Action { action: proposal_action("alice", "x") }).unwrap_err();
    assert_eq!(err, GovError::NoProposalPolicy);
}

#[test]
fn the_most_specific_matching_policy_wins_and_a_failing_filter_is_no_match() {
    let mut w = World::new(&["alice", "bob"]);
    let general_policy = r#"
name = "Everything by majority"
kind = "platform"
actions = ["*"]
[vote]
quorum = 1
"#;
    let discord = r#"
name = "Discord by the admin"
kind = "platform"
actions = ["discord.*"]
[vote]
voters = ["admin"]
"#;
    let exact = r#"
name = "Renames to random"
kind = "platform"
actions = ["discord.rename_channel"]
filter = "action.name == \"random\""
[vote]
voters = ["bob"]
"#;
    let broken = r#"
name = "Broken filter"
kind = "platform"
actions = ["discord.rename_channel"]
priority = 10
filter = "action.no_such_field.length > 2"
"#;
    for p in [general_policy, discord, exact, broken] {
        w.install(p);
    }
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    // The broken filter errs (audited) and counts as no match; the exact one matches.
    assert!(
        s.audit.iter().any(|a| matches!(a, Audit::ScriptFailed { policy_name, .. } if policy_name == "Broken filter"))
    );
    assert_eq!(w.engine.proposal(ProposalId(1)).unwrap().policy_name, "Renames to random");
    // A rename to another name fails the exact filter: the platform-wide policy decides.
    let other = rename("alice").with("name", "news");
    w.push(Inbound::Action { action: other }).unwrap();
    assert_eq!(w.engine.proposal(ProposalId(2)).unwrap().policy_name, "Discord by the admin");
    // A non-Discord action falls to the catch-all.
    let slack =
        Action::new(ActionType::new("slack.rename_conversation").unwrap(), account("alice"), "s1").at(general());
    w.push(Inbound::Action { action: slack }).unwrap();
    assert_eq!(w.engine.proposal(ProposalId(3)).unwrap().policy_name, "Everything by majority");
}

#[test]
fn a_member_without_the_propose_permission_is_undone_and_told() {
    let mut w = World::with_kit(&["alice"], "moderators");
    w.install(RENAMES);
    w.engine.community.revoke_permission("everyone", Permission::Propose, &ActionPattern::any()).unwrap();
    let s = w.push(Inbound::Action { action: rename("alice") }).unwrap();
    assert!(matches!(&s.effects[0], Effect::Revert { proposal: None, .. }));
    assert!(
        matches!(&s.effects[1], Effect::Notify { text, .. } if text.contains("you may not propose discord.rename_channel"))
    );
    assert!(w.push(Inbound::Action { action: proposal_action("alice", "x") }).is_err());
}

const EXPENSES: &str = r#"
name = "Big expenses need a vote"
kind = "trigger"
actions = ["opencollective.expense_created"]
filter = "action.amount > 50000"
[vote]
on = "console:#finance"
voters = "role:member"
exclude_proposer = true
quorum = 2
pass = "2/3"
closes = "72h"
[pass]
do = [{ action = "opencollective.process_expense", expense_id = "{{action.id}}", decision = "APPROVE" }]
[fail]
do = [{ action = "message", text = "Rejected: {{action.description}}" }]
"#;

fn expense(amount: i64) -> Action {
    Action::new(
        ActionType::new("opencollective.expense_created").unwrap(),
        AccountRef::new("opencollective", "anne"),
        "exp-1",
    )
    .event()
    .with("id", 4242)
    .with("amount", amount)
    .with("description", "New laptop")
}

fn with_members_role(w: &mut World, names: &[&str]) {
    w.engine.community.create_role("member", "").unwrap();
    w.engine.community.grant_permission("everyone", Permission::Vote, ActionPattern::any()).unwrap();
    for n in names {
        let m = w.member(n);
        w.engine.community.grant_role(m, "member").unwrap();
    }
}

#[test]
fn an_expense_trigger_opens_a_vote_and_approves_on_pass() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    with_members_role(&mut w, &["alice", "bob", "carol"]);
    w.install(EXPENSES);
    // Small expenses do not match the filter.
    let s = w.push(Inbound::Action { action: expense(100) }).unwrap();
    assert!(s.effects.is_empty());
    let s = w.push(Inbound::Action { action: expense(60_000) }).unwrap();
    assert!(matches!(&s.effects[0], Effect::PostVote { place, .. } if place == &Place::new("console", "#finance")));
    let id = ProposalId(1);
    // The vote message lives in #finance here; the world reports it under #general, which is fine.
    w.react("alice", id, "👍");
    let s = w.react("bob", id, "👍");
    assert_eq!(w.state(id), ProposalState::Passed);
    let call = s.effects.iter().find_map(|e| match e {
        Effect::Call { name, params, .. } => Some((name.to_string(), params.clone())),
        _ => None,
    });
    let (name, params) = call.unwrap();
    assert_eq!(name, "opencollective.process_expense");
    assert_eq!(serde_json::Value::Object(params), json!({"expense_id": 4242, "decision": "APPROVE"}));
}

#[test]
fn an_expense_rejected_posts_the_fail_message() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    with_members_role(&mut w, &["alice", "bob", "carol"]);
    w.install(EXPENSES);
    w.push(Inbound::Action { action: expense(60_000) }).unwrap();
    let id = ProposalId(1);
    w.react("alice", id, "👎");
    let s = w.react("bob", id, "👎");
    assert_eq!(w.state(id), ProposalState::Failed);
    assert!(posts(&s).contains(&"Rejected: New laptop".to_string()));
    assert!(!has(&s, |e| matches!(e, Effect::Call { .. })));
}

#[test]
fn every_matching_trigger_policy_opens_its_own_proposal() {
    let mut w = World::new(&["alice"]);
    w.install(EXPENSES);
    w.install(
        &EXPENSES
            .replace("Big expenses need a vote", "Also tell the treasurer")
            .replace("filter = \"action.amount > 50000\"", ""),
    );
    let s = w.push(Inbound::Action { action: expense(60_000) }).unwrap();
    assert_eq!(s.changed.len(), 2);
}

#[test]
fn a_non_admin_role_grant_becomes_a_constitution_proposal_and_is_granted_on_pass() {
    let mut w = World::with_kit(&["alice", "bob", "carol"], "direct-democracy");
    let grant = Action::new(ActionType::new("polity.role_grant").unwrap(), account("alice"), "cmd-1")
        .at(general())
        .requested()
        .with("role", "treasurer")
        .with("member", "bob");
    let s = w.push(Inbound::Action { action: grant }).unwrap();
    assert!(!has(&s, |e| matches!(e, Effect::Revert { .. })), "a request is not reverted");
    let id = ProposalId(1);
    assert_eq!(w.engine.proposal(id).unwrap().policy_name, "Majority of members changes governance");
    w.react("alice", id, "👍");
    w.react("bob", id, "👍");
    let s = w.react("carol", id, "👍");
    assert!(has(&s, |e| matches!(e, Effect::Execute { action, .. } if action.kind.as_str() == "polity.role_grant")));
}

struct Cred;
impl HostData for Cred {
    fn cred(&self, member: &MemberQuery) -> Option<f64> {
        match member {
            MemberQuery::Id(MemberId(2)) => Some(42.0),
            MemberQuery::Id(_) => Some(3.0),
            MemberQuery::Name(_) => None,
        }
    }
    fn grain(&self, _: &MemberQuery) -> Option<f64> {
        None
    }
    fn linked_account(&self, _: &MemberQuery, _: &str) -> Option<String> {
        None
    }
}

#[test]
fn a_cred_gated_role_request_is_decided_by_the_check_block() {
    let mut w = World::new(&["alice", "bob"]);
    w.host = Arc::new(Cred);
    w.engine.community.grant_permission("everyone", Permission::Propose, ActionPattern::any()).unwrap();
    w.install(
        r#"
name = "Voters need cred"
kind = "constitution"
actions = ["polity.role_request"]
filter = "action.role == \"voter\""
check = """
if polity.cred(initiator.id) >= 10.0 { "passed" } else { "failed" }
"""
[fail]
do = [{ action = "message", text = "{{initiator.name}} needs 10 cred for the voter role" }]
"#,
    );
    let request = |who: &str| {
        Action::new(ActionType::new("polity.role_request").unwrap(), account(who), format!("req-{who}"))
            .at(general())
            .requested()
            .with("role", "voter")
    };
    // alice is member 2 with 42 cred: granted at once.
    let s = w.push(Inbound::Action { action: request("alice") }).unwrap();
    assert_eq!(w.state(ProposalId(1)), ProposalState::Passed);
    assert!(has(&s, |e| matches!(e, Effect::Execute { action, .. } if action.kind.as_str() == "polity.role_request")));
    // bob has 3: refused with the reason.
    let s = w.push(Inbound::Action { action: request("bob") }).unwrap();
    assert_eq!(w.state(ProposalId(2)), ProposalState::Failed);
    assert_eq!(posts(&s), ["bob needs 10 cred for the voter role"]);
    assert!(!has(&s, |e| matches!(e, Effect::Execute { .. })));
}

#[test]
fn a_process_update_is_seen_by_the_check_block() {
    let mut w = World::new(&["alice"]);
    w.engine.community.grant_permission("everyone", Permission::Propose, ActionPattern::any()).unwrap();
    w.install(
        r#"
name = "Loomio decides"
kind = "platform"
notify = 'polity.start_process("loomio.poll", #{title: action.text})'
check = """
if proposal.process == () { return (); }
if proposal.process.status != "closed" { return "proposed"; }
if proposal.process.outcome.agree > proposal.process.outcome.disagree { "passed" } else { "failed" }
"""
"#,
    );
    let s = w.push(Inbound::Action { action: proposal_action("alice", "Adopt the code of conduct") }).unwrap();
    assert!(has(
        &s,
        |e| matches!(e, Effect::StartProcess { name, params, .. } if name.as_str() == "loomio.poll" && params["title"] == "Adopt the code of conduct")
    ));
    let id = ProposalId(1);
    let update = |status: &str| Inbound::ProcessUpdate {
        proposal: id,
        status: status.into(),
        outcome: json!({"agree": 5, "disagree": 1}),
    };
    w.push(update("open")).unwrap();
    assert_eq!(w.state(id), ProposalState::Proposed);
    w.push(update("closed")).unwrap();
    assert_eq!(w.state(id), ProposalState::Passed);
}

#[test]
fn a_vote_message_links_the_process_that_runs_beside_it() {
    let mut w = World::new(&["alice", "bob"]);
    w.engine.community.grant_permission("everyone", Permission::Propose, ActionPattern::any()).unwrap();
    w.install(
        r#"
name = "Loomio and chat"
kind = "platform"
notify = 'polity.start_process("loomio.poll", #{title: action.text})'

[vote]
pass = "majority"
"#,
    );
    w.push(Inbound::Action { action: proposal_action("alice", "Adopt the code of conduct") }).unwrap();
    let id = ProposalId(1);
    let s = w
        .push(Inbound::ProcessUpdate {
            proposal: id,
            status: "open".into(),
            outcome: json!({"process": "loomio.poll", "url": "https://www.loomio.com/p/Ab12Cd34", "agree": 0}),
        })
        .unwrap();
    assert!(
        has(
            &s,
            |e| matches!(e, Effect::EditVote { text, .. } if text.contains("loomio.poll: https://www.loomio.com/p/Ab12Cd34"))
        ),
        "{:?}",
        s.effects
    );
    // Only a web address is shown.
    let s = w
        .push(Inbound::ProcessUpdate {
            proposal: id,
            status: "open".into(),
            outcome: json!({"process": "loomio.poll", "url": "javascript:alert(1)"}),
        })
        .unwrap();
    assert!(has(&s, |e| matches!(e, Effect::EditVote { text, .. } if !text.contains("javascript"))));
}

#[test]
fn typed_votes_and_their_mistakes() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(MAJORITY);
    let id = w.propose("alice", "x");
    assert_eq!(
        w.vote("bob", ProposalId(99), "yes").unwrap_err().to_string(),
        "there is no proposal #99: `/proposals` lists the open ones"
    );
    assert!(w.vote("bob", id, "perhaps").unwrap_err().to_string().contains("choose yes, no, abstain"));
    assert!(matches!(w.vote("nobody", id, "yes"), Err(GovError::NotEligible(_))));
    w.vote("bob", id, "yes").unwrap();
    // Voting the same again changes nothing.
    assert!(w.vote("bob", id, "yes").unwrap().effects.is_empty());
    assert_eq!(w.push(Inbound::Unvote { proposal: id, voter: account("carol") }).unwrap_err(), GovError::NoBallot(id));
    w.push(Inbound::Unvote { proposal: id, voter: account("bob") }).unwrap();
    assert_eq!(w.engine.proposal(id).unwrap().tally().unwrap().cast, 0);
    // A typed ballot replacing a reaction removes the reaction.
    w.react("carol", id, "👍");
    let s = w.vote("carol", id, "no").unwrap();
    assert!(has(&s, |e| matches!(e, Effect::RemoveReaction { emoji, .. } if emoji == "👍")));
}

#[test]
fn only_the_proposer_or_an_admin_cancels() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(MAJORITY);
    let id = w.propose("alice", "x");
    let err = w.push(Inbound::Cancel { proposal: id, by: account("bob") }).unwrap_err();
    assert_eq!(err.to_string(), "only the proposer or an admin can cancel proposal #1");
    let s = w.push(Inbound::Cancel { proposal: id, by: account("alice") }).unwrap();
    assert_eq!(w.state(id), ProposalState::Cancelled);
    assert_eq!(posts(&s), ["Proposal #1 was cancelled: alice proposes: x (yes 0 · no 0 · abstain 0 (0 of 3 voted))"]);
    assert_eq!(w.push(Inbound::Cancel { proposal: id, by: account("admin") }).unwrap_err(), GovError::Closed(id));
    let id2 = w.propose("alice", "y");
    w.push(Inbound::Cancel { proposal: id2, by: account("admin") }).unwrap();
    assert_eq!(w.state(id2), ProposalState::Cancelled);
}

#[test]
fn a_choice_vote_by_keycap_reactions() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(
        r#"
name = "Lunch"
kind = "platform"
[vote]
type = "choice"
options = ["Pizza", "Tacos", "Soup"]
closes = "1h"
"#,
    );
    let s = w.push(Inbound::Action { action: proposal_action("alice", "Lunch?") }).unwrap();
    assert!(
        matches!(&s.effects[0], Effect::PostVote { options, .. } if options.iter().map(|o| o.emoji.as_str()).collect::<Vec<_>>() == ["1️⃣", "2️⃣", "3️⃣", "🤷"])
    );
    let id = ProposalId(1);
    w.react("alice", id, ":two:");
    w.react("bob", id, "2️⃣");
    w.react("carol", id, "1️⃣");
    let s = w.wait(hours(1));
    assert_eq!(w.engine.proposal(id).unwrap().winner.as_deref(), Some("Tacos"));
    assert!(posts(&s)[0].contains("passed with \"Tacos\""));
}

#[test]
fn restored_state_continues_where_it_stopped() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(MAJORITY);
    let id = w.propose("alice", "x");
    w.react("alice", id, "👍");
    let saved = w.engine.proposal(id).unwrap().clone();
    let policy = w.engine.policies()[0].clone();

    let mut fresh = World::new(&["alice", "bob", "carol"]);
    fresh.engine.restore_policy(policy.id, &policy.source, true).unwrap();
    fresh.engine.restore_proposal(saved);
    fresh.react("bob", id, "👍");
    fresh.react("carol", id, "👍");
    assert_eq!(fresh.state(id), ProposalState::Passed);
}

#[test]
fn closed_proposals_can_leave_memory_without_their_numbers_being_reused() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(MAJORITY);
    let a = w.propose("alice", "a");
    w.push(Inbound::Cancel { proposal: a, by: account("alice") }).unwrap();
    let b = w.propose("alice", "b");
    w.engine.forget_closed();
    assert!(w.engine.proposal(a).is_none());
    assert!(w.engine.proposal(b).is_some());
    assert_eq!(w.propose("bob", "c"), ProposalId(3));

    let mut fresh = World::new(&["alice", "bob"]);
    fresh.install(MAJORITY);
    fresh.engine.numbered_after(ProposalId(41));
    assert_eq!(fresh.propose("bob", "d"), ProposalId(42));
}

#[test]
fn a_secret_ballot_is_counted_but_its_choice_stays_out_of_the_audit_log() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(&MAJORITY.replace("[vote]", "[vote]\nsecret = true"));
    let id = w.propose("alice", "x");
    let s = w.react("bob", id, "👎");
    assert_eq!(s.audit[0].to_string(), "console:bob voted secretly on #1");
    assert_eq!(w.engine.proposal(id).unwrap().tally().unwrap().counts[1], 1);
}

#[test]
fn a_reaction_is_a_trigger_event_policies_can_filter_on() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(
        r#"
name = "Pins need a vote"
kind = "trigger"
actions = ["console.reaction_added"]
filter = "action.emoji == \"📌\""
[vote]
quorum = 1
[pass]
do = [{ action = "console.pin", message = "{{action.message}}" }]
"#,
    );
    let message = MessageRef::new(PLATFORM, "#general", "42");
    let react = |emoji: &str| Inbound::Reaction {
        message: message.clone(),
        voter: account("alice"),
        emoji: emoji.into(),
        added: true,
    };
    // Another emoji, or a reaction taken away, opens nothing.
    assert!(w.push(react("🎉")).unwrap().effects.is_empty());
    let removed =
        Inbound::Reaction { message: message.clone(), voter: account("alice"), emoji: "📌".into(), added: false };
    assert!(w.push(removed).unwrap().effects.is_empty());
    let s = w.push(react("📌")).unwrap();
    let p = w.engine.proposal(ProposalId(1)).unwrap();
    assert_eq!(p.policy_name, "Pins need a vote");
    assert_eq!(p.action.data["message"], "42");
    assert_eq!(p.action.initiator, account("alice"));
    assert!(s.effects.iter().any(|e| matches!(e, Effect::PostVote { place, .. } if place == &general())));
    w.react("alice", ProposalId(1), "👍");
    let s = w.react("bob", ProposalId(1), "👍");
    assert_eq!(w.state(ProposalId(1)), ProposalState::Passed);
    assert!(s.effects.iter().any(
        |e| matches!(e, Effect::Call { name, params, .. } if name.as_str() == "console.pin" && params["message"] == "42")
    ));
}

#[test]
fn a_reaction_taken_back_is_a_trigger_event_of_its_own() {
    let mut w = World::new(&["alice", "bob"]);
    w.install(
        r#"
name = "Unpins are told"
kind = "trigger"
actions = ["console.reaction_removed"]
filter = "action.emoji == \"📌\""
check = "\"passed\""
[pass]
do = [{ action = "message", text = "{{action.message}} lost a pin" }]
"#,
    );
    let message = MessageRef::new(PLATFORM, "#general", "42");
    let react = |added: bool| Inbound::Reaction {
        message: message.clone(),
        voter: account("alice"),
        emoji: "📌".into(),
        added,
    };
    // Added, it opens nothing under this policy; taken back, it does.
    assert!(w.push(react(true)).unwrap().effects.is_empty());
    let s = w.push(react(false)).unwrap();
    assert!(
        s.effects.iter().any(|e| matches!(e, Effect::Post { text, .. } if text == "42 lost a pin")),
        "{:?}",
        s.effects
    );
}

// ----- the step's script budget -----

/// A chat message: the input every installed message policy's filter sees.
fn chat(who: &str, text: &str) -> Inbound {
    let action = Action::new(ActionType::new("discord.message").unwrap(), account(who), format!("msg-{text}"))
        .at(general())
        .with("text", text);
    Inbound::Action { action }
}

/// A message policy whose filter loops forever, unless the message says "quick".
fn runaway(name: &str) -> String {
    format!(
        "name = \"{name}\"\nkind = \"platform\"\nactions = [\"discord.message\"]\nfilter = 'if action.text == \"quick\" {{ false }} else {{ loop {{}} }}'\n[vote]\nquorum = 1\ncloses = \"24h\"\n"
    )
}

/// `members` and two admins (`admin`, `root`); scripts stop after 10 000 operations, with a
/// wall clock so generous that the operation limit is what stops a runaway: each one is then
/// charged the whole wall clock against the step's budget, whatever the machine's speed.
fn runaway_world(members: &[&str]) -> World {
    let mut w = World::new(members);
    w.engine.community.add_member("root", account("root"), true).unwrap();
    let limits = Limits { max_operations: 10_000, wall_clock: Duration::from_secs(2), ..Limits::default() };
    w.engine = Engine::new(w.engine.community.clone(), Arc::new(Sandbox::new(limits)));
    w
}

fn notices(step: &Step) -> Vec<(String, String)> {
    step.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify { account, text, .. } => Some((account.account.to_string(), text.clone())),
            _ => None,
        })
        .collect()
}

fn failed_scripts(step: &Step) -> Vec<&str> {
    step.audit
        .iter()
        .filter_map(|a| match a {
            Audit::ScriptFailed { policy_name, .. } => Some(policy_name.as_str()),
            _ => None,
        })
        .collect()
}

fn skipped_scripts(step: &Step) -> Vec<String> {
    step.audit
        .iter()
        .filter_map(|a| match a {
            Audit::ScriptBudgetSpent { skipped, .. } => Some(skipped.iter().map(ToString::to_string)),
            _ => None,
        })
        .flatten()
        .collect()
}

#[test]
fn a_step_runs_no_more_scripts_once_its_budget_is_spent_and_admins_hear_of_runaways_once() {
    let mut w = runaway_world(&["alice"]);
    // Three runaways' worth: each is charged its 2 s wall clock.
    w.engine.set_script_budget(Duration::from_secs(6));
    for i in 1..=40 {
        w.install(&runaway(&format!("Slow {i}")));
    }
    // Equally specific: the most recently installed is asked first.
    let s = w.push(chat("alice", "hello")).unwrap();
    assert_eq!(failed_scripts(&s), ["Slow 40", "Slow 39", "Slow 38"]);
    let skipped = skipped_scripts(&s);
    assert_eq!(skipped.len(), 37);
    assert_eq!(skipped[0], "policy \"Slow 37\"'s filter");
    assert_eq!(skipped[36], "policy \"Slow 1\"'s filter");
    let line = s.audit.iter().find(|a| matches!(a, Audit::ScriptBudgetSpent { .. })).unwrap();
    assert_eq!(
        line.to_string(),
        "the step's script budget of 6 s was spent, so 37 scripts were not run (each counts as failing): policy \"Slow 37\"'s filter, policy \"Slow 36\"'s filter, policy \"Slow 35\"'s filter and 34 more"
    );
    // A filter not run counts as no match, as a failing one does: nothing governs the message.
    assert!(s.audit.iter().any(|a| matches!(a, Audit::Allowed { .. })), "{:?}", s.audit);
    assert!(notices(&s).is_empty());

    // The same three run out of time on the next inputs; the third time in a row, the admins
    // hear of each of them once. The 37 never run: they are no streak.
    assert!(notices(&w.push(chat("alice", "again")).unwrap()).is_empty());
    let s = w.push(chat("alice", "and again")).unwrap();
    let told = notices(&s);
    assert_eq!(told.len(), 6, "{told:?}");
    assert_eq!(
        told[0],
        (
            "admin".to_string(),
            "Policy \"Slow 38\": its filter ran out of time on its last 3 runs; until it is fixed the policy counts as not matching. See /policy show Slow 38".to_string()
        )
    );
    assert_eq!(told.iter().filter(|(who, _)| who == "root").count(), 3);
    let reported: Vec<String> =
        s.audit.iter().filter(|a| matches!(a, Audit::ScriptTimingOut { .. })).map(ToString::to_string).collect();
    assert_eq!(reported.len(), 3);
    assert_eq!(reported[0], "policy \"Slow 38\"'s filter ran out of time on 3 runs in a row; 2 admins were told");

    // Once per streak: the fourth timeout in a row tells nobody.
    let s = w.push(chat("alice", "still")).unwrap();
    assert_eq!(failed_scripts(&s).len(), 3);
    assert!(notices(&s).is_empty());
    assert!(!s.audit.iter().any(|a| matches!(a, Audit::ScriptTimingOut { .. })));
}

#[test]
fn a_streak_broken_by_a_run_that_finishes_is_reported_again_when_it_comes_back() {
    let mut w = runaway_world(&["alice"]);
    w.install(&runaway("Slow"));
    for text in ["a", "b"] {
        assert!(notices(&w.push(chat("alice", text)).unwrap()).is_empty());
    }
    assert_eq!(notices(&w.push(chat("alice", "c")).unwrap()).len(), 2);
    assert!(notices(&w.push(chat("alice", "d")).unwrap()).is_empty());
    // The filter answers (false) once: the streak is over.
    let s = w.push(chat("alice", "quick")).unwrap();
    assert!(failed_scripts(&s).is_empty() && notices(&s).is_empty());
    for text in ["e", "f"] {
        assert!(notices(&w.push(chat("alice", text)).unwrap()).is_empty());
    }
    let told = notices(&w.push(chat("alice", "g")).unwrap());
    assert_eq!(told.iter().map(|(who, _)| who.as_str()).collect::<Vec<_>>(), ["admin", "root"]);
}

#[test]
fn a_streak_reached_by_refused_requests_is_reported_with_the_next_step() {
    let mut w = runaway_world(&["alice"]);
    let constitution = "name = \"Slow changes\"\nkind = \"constitution\"\nfilter = 'loop {}'\n";
    w.install(constitution);
    let grant = |n: usize| {
        Action::new(ActionType::new("polity.role_grant").unwrap(), account("alice"), format!("grant-{n}")).requested()
    };
    // The filter never matches, so alice's requests are refused: the state is unchanged,
    // but the runs that timed out still count.
    for n in 0..3 {
        assert!(matches!(w.push(Inbound::Action { action: grant(n) }), Err(GovError::NotPermitted(_))));
    }
    let s = w.push(Inbound::Tick).unwrap();
    assert_eq!(notices(&s).len(), 2);
    assert!(notices(&s)[0].1.starts_with("Policy \"Slow changes\": its filter ran out of time on its last 3 runs"));
}

#[test]
fn with_no_script_budget_no_script_runs_and_each_counts_as_failing() {
    let mut w = World::new(&["alice", "bob"]);
    w.engine.set_script_budget(Duration::ZERO);
    assert_eq!(w.engine.script_budget(), Duration::ZERO);
    w.install(
        "name = \"Greetings\"\nkind = \"platform\"\nactions = [\"discord.message\"]\nfilter = \"true\"\n[vote]\nquorum = 1\n",
    );
    let s = w.push(chat("alice", "hi")).unwrap();
    assert_eq!(
        s.audit.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "discord.message by console:alice allowed: no policy governs it",
            "the step's script budget of 0 ms was spent, so policy \"Greetings\"'s filter was not run (it counts as failing)",
        ]
    );
    assert_eq!(w.engine.proposals().count(), 0);
    // With its budget back, the same message is governed.
    w.engine.set_script_budget(DEFAULT_STEP_BUDGET);
    w.push(chat("alice", "hi again")).unwrap();
    assert_eq!(w.engine.proposal(ProposalId(1)).unwrap().policy_name, "Greetings");
}

#[test]
fn by_default_a_step_affords_at_most_four_runaway_scripts() {
    let mut w = World::new(&["alice"]);
    assert_eq!(w.engine.script_budget(), DEFAULT_STEP_BUDGET);
    for i in 1..=40 {
        w.install(&runaway(&format!("Slow {i}")));
    }
    let s = w.push(chat("alice", "hello")).unwrap();
    // Each runaway is charged at least its 250 ms wall clock (all of what was left, at the
    // end) against the 1 s budget: four spend it, fewer if a run overshoots.
    let ran = failed_scripts(&s).len();
    assert!((1..=4).contains(&ran), "{ran} ran");
    assert_eq!(ran + skipped_scripts(&s).len(), 40);
    let line = s.audit.iter().find(|a| matches!(a, Audit::ScriptBudgetSpent { .. })).unwrap().to_string();
    assert!(line.starts_with("the step's script budget of 1 s was spent, so "), "{line}");
}

#[test]
fn proposals_with_the_same_voters_share_one_set_and_a_restored_one_joins_it() {
    let mut w = World::new(&["alice", "bob", "carol"]);
    w.install(MAJORITY);
    let a = w.propose("alice", "Paint the shed");
    let b = w.propose("bob", "Fix the gate");
    let eligible = |w: &World, id| w.engine.proposal(id).unwrap().vote.as_ref().unwrap().eligible.clone();
    let (ea, eb) = (eligible(&w, a), eligible(&w, b));
    assert_eq!(ea.len(), 4);
    assert!(ea.shares(&eb));

    // A proposal restored with an equal set (as the store gives it back) shares it too, and
    // one with other voters keeps its own.
    let mut copy = w.engine.proposal(a).unwrap().clone();
    copy.id = ProposalId(10);
    if let Some(v) = copy.vote.as_mut() {
        v.messages.clear();
        v.eligible = v.eligible.iter().copied().collect();
        assert!(!v.eligible.shares(&ea));
    }
    w.engine.restore_proposal(copy);
    assert!(eligible(&w, ProposalId(10)).shares(&ea));
    let mut other = w.engine.proposal(a).unwrap().clone();
    other.id = ProposalId(11);
    if let Some(v) = other.vote.as_mut() {
        v.messages.clear();
        v.eligible = v.eligible.iter().copied().take(2).collect();
    }
    w.engine.restore_proposal(other);
    let e11 = eligible(&w, ProposalId(11));
    assert_eq!(e11.len(), 2);
    assert!(!e11.shares(&ea));
    // Ballots stay each proposal's own.
    w.react("carol", a, "👍");
    assert_eq!(w.engine.proposal(a).unwrap().tally().unwrap().cast, 1);
    assert_eq!(w.engine.proposal(b).unwrap().tally().unwrap().cast, 0);
    assert_eq!(w.engine.proposal(ProposalId(10)).unwrap().tally().unwrap().eligible, 4);
}
