//! Measurements, not tests: how long a tally of a big vote and a re-check of many open
//! proposals take. Run with `cargo bench -p polity-governance`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use polity_governance::action::PROPOSE;
use polity_governance::community::Community;
use polity_governance::ids::MemberId;
use polity_governance::proposal::{Ballot, BallotSource};
use polity_governance::script::Sandbox;
use polity_governance::vote::{Choice, Tally, VoteKind, VoteSpec};
use polity_governance::*;
use std::hint::black_box;
use std::sync::Arc;

fn ballots(n: usize) -> Vec<Choice> {
    (0..n)
        .map(|i| match i % 5 {
            0..=2 => Choice::Yes,
            3 => Choice::No,
            _ => Choice::Abstain,
        })
        .collect()
}

fn tally_100k(c: &mut Criterion) {
    let spec = VoteSpec::default();
    let b = ballots(100_000);
    c.bench_function("tally yes-no, 100k ballots", |bench| {
        bench.iter(|| {
            let t = Tally::new(&spec, 120_000, b.iter());
            black_box(t.early(&spec))
        })
    });

    let ranked =
        VoteSpec { kind: VoteKind::Ranked, options: (0..5).map(|i| format!("o{i}")).collect(), ..VoteSpec::default() };
    let rb: Vec<Choice> = (0..100_000usize)
        .map(|i| {
            Choice::Rank(vec![i % 5, (i / 5 + 1) % 5, (i / 25 + 2) % 5].into_iter().fold(Vec::new(), |mut v, o| {
                if !v.contains(&o) {
                    v.push(o);
                }
                v
            }))
        })
        .collect();
    c.bench_function("tally ranked (instant runoff), 100k ballots", |bench| {
        bench.iter(|| black_box(Tally::new(&ranked, 100_000, rb.iter()).result(&ranked)))
    });
}

/// A `/propose` by the console account `by`, with its source id and text.
fn proposal(by: impl Into<String>, id: impl Into<String>, text: impl Into<String>) -> Action {
    let by: String = by.into();
    Action::new(ActionType::new(PROPOSE).unwrap_or_else(|e| panic!("{e}")), AccountRef::new("console", by), id)
        .at(Place::new("console", "#general"))
        .requested()
        .with("text", text.into())
}

/// A community of `members` members under one policy.
fn engine(members: usize, policy: &str) -> Engine {
    let mut c = Community::new(CommunityId(1), "bench");
    c.add_member("admin", AccountRef::new("console", "admin"), true).ok();
    for i in 0..members {
        c.add_member(&format!("m{i}"), AccountRef::new("console", format!("m{i}")), false).ok();
    }
    let mut e = Engine::new(c, Arc::new(Sandbox::default()));
    if let Err(err) = e.install_policy(policy) {
        panic!("bench policy: {err}");
    }
    e
}

fn ballot_on_a_big_vote(c: &mut Criterion) {
    // The engine re-tallies a proposal on every ballot: this is the cost of one more ballot
    // (a reaction) on a proposal that already has 100k.
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).single().unwrap_or_default();
    let mut e = engine(0, "name = \"big\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"72h\"\n");
    let action = proposal("admin", "p", "big vote");
    let ctx = Ctx::at(now);
    e.step(Inbound::Action { action }, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let mut p = e.proposal(ProposalId(1)).cloned().unwrap_or_else(|| panic!("no proposal"));
    if let Some(v) = &mut p.vote {
        let mut eligible: std::collections::BTreeSet<MemberId> = v.eligible.iter().copied().collect();
        for (i, choice) in ballots(100_000).into_iter().enumerate() {
            let m = MemberId(1_000 + i as i64);
            eligible.insert(m);
            v.ballots.insert(
                m,
                Ballot {
                    choice,
                    account: AccountRef::new("console", format!("m{i}")),
                    cast_at: now,
                    source: BallotSource::Command,
                },
            );
        }
        v.eligible = eligible.into();
    }
    e.restore_proposal(p);
    let mut yes = true;
    c.bench_function("one more ballot on a proposal with 100k ballots", |bench| {
        bench.iter(|| {
            yes = !yes;
            let vote = Inbound::Vote {
                proposal: ProposalId(1),
                voter: AccountRef::new("console", "admin"),
                choice: if yes { "yes" } else { "no" }.into(),
            };
            black_box(e.step(vote, &ctx).map(|s| s.effects.len()))
        })
    });
}

fn recheck_10k(c: &mut Criterion) {
    let policy = r#"
name = "check"
kind = "platform"
check = """
if proposal.tally.yes >= 3 && initiator.roles.contains("everyone") { "passed" } else { () }
"""
[vote]
quorum = 1
early = false
closes = "72h"
"#;
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).single().unwrap_or_default();
    let mut e = engine(20, policy);
    let ctx = Ctx::at(now);
    for i in 0..10_000 {
        let action = proposal(format!("m{}", i % 20), format!("p{i}"), format!("proposal {i}"));
        e.step(Inbound::Action { action }, &ctx).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(e.proposals().filter(|p| p.state.is_open()).count(), 10_000);
    let mut group = c.benchmark_group("re-check");
    group.sample_size(10);
    group.bench_function("tick re-checks 10k open proposals (compiled check block)", |bench| {
        bench.iter_batched(
            || (),
            |_| black_box(e.step(Inbound::Tick, &ctx).map(|s| s.effects.len())),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn reconcile_1k(c: &mut Criterion) {
    // Reading a vote message back: a snapshot of 1,000 reactions that the ballots already
    // match, the cost a vote pays each time its message is reconciled.
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).single().unwrap_or_default();
    let mut e =
        engine(1_000, "name = \"big\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"72h\"\n");
    let ctx = Ctx::at(now);
    let action = proposal("admin", "p", "big vote");
    e.step(Inbound::Action { action }, &ctx).unwrap_or_else(|e| panic!("{e}"));
    let message = MessageRef::new("console", "#general", "vote");
    e.step(Inbound::VoteMessagePosted { proposal: ProposalId(1), message: message.clone(), link: None }, &ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let emoji = ["👍", "👎", "🤷"];
    let mut holders: Vec<Vec<AccountRef>> = vec![Vec::new(); 3];
    for i in 0..1_000 {
        let voter = AccountRef::new("console", format!("m{i}"));
        let reaction = Inbound::Reaction {
            message: message.clone(),
            voter: voter.clone(),
            emoji: emoji[i % 3].into(),
            added: true,
        };
        e.step(reaction, &ctx).unwrap_or_else(|e| panic!("{e}"));
        holders[i % 3].push(voter);
    }
    let reactions: Vec<io::ReactionUsers> = emoji
        .iter()
        .zip(holders)
        .map(|(e, accounts)| io::ReactionUsers { emoji: (*e).to_string(), accounts })
        .collect();
    c.bench_function("reconcile a vote message holding 1k reactions (no change)", |bench| {
        bench.iter(|| {
            let snapshot =
                Inbound::Reactions { message: message.clone(), reactions: reactions.clone(), superseded_kept: false };
            black_box(e.step(snapshot, &ctx).map(|s| s.effects.len()))
        })
    });
}

criterion_group!(benches, tally_100k, ballot_on_a_big_vote, recheck_10k, reconcile_1k);
criterion_main!(benches);
