//! The serving loop: deadlines fire to the second on a clock moved by hand, effects are
//! performed as they come due, and shutdown finishes what was delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::runtime::{Runtime, request};
use polity::serve::{Delivery, serve};
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, Place};
use polity_governance::io::{Effect, Inbound};
use polity_governance::platform::PlatformError;
use std::sync::Arc;
use support::{Answer, HandClock, Recording, TestDb};
use tokio::sync::{mpsc, watch};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// A community named `name` whose proposals pass 90 s after they open unless someone objects.
async fn community_under_quick_vote(rt: &mut Runtime, name: &str) -> CommunityId {
    let admin = AccountRef::new("chat", "admin");
    let c = rt.ensure_community(name, "admin", admin.clone()).await.unwrap();
    let policy =
        "name = \"Quick\"\nkind = \"platform\"\n[vote]\nquorum = 0\npass = \"no-objection\"\ncloses = \"90s\"\n";
    let install =
        request("polity.policy_install", admin, Place::new("chat", "#general"), "i").unwrap().with("source", policy);
    rt.handle(c, "chat", "i", Inbound::Action { action: install }, t0(), false).await.unwrap();
    c
}

fn alice() -> AccountRef {
    AccountRef::new("chat", "alice")
}

fn delivery(community: CommunityId, key: &str, input: Inbound) -> Delivery {
    Delivery { community, source: "chat".into(), dedup_key: key.into(), input, from: Some((alice(), "alice".into())) }
}

async fn wait_for_effects(rx: &mut mpsc::UnboundedReceiver<()>, n: usize) {
    for _ in 0..n {
        rx.recv().await.unwrap();
    }
}

#[tokio::test]
async fn a_deadline_is_decided_at_its_second_and_shutdown_finishes_what_was_delivered() {
    let db = TestDb::sqlite("serve");
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(HandClock(watch::channel(t0()).0));
    let (performed, mut performed_rx) = mpsc::unbounded_channel();
    // Records each effect with the clock's time when it was performed.
    let chat = Recording::new("chat").clock(clock.clone()).notify_answers(performed);
    let seen = chat.log();
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(Arc::new(chat));
    let c = community_under_quick_vote(&mut rt, "serve").await;

    let (tx, rx) = mpsc::channel(16);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loop_clock = clock.clone();
    let server = tokio::spawn(async move {
        serve(rt, rx, &*loop_clock, async {
            let _stop = stopped.await;
        })
        .await
    });

    let propose = Action::new(ActionType::new(PROPOSE).unwrap(), alice(), "p1")
        .at(Place::new("chat", "#general"))
        .requested()
        .with("text", "Lazy consensus on the roadmap");
    tx.send(delivery(c, "p1", Inbound::Action { action: propose.clone() }).into()).await.unwrap();
    wait_for_effects(&mut performed_rx, 1).await; // the vote message

    // A second later and a second short of the deadline: nothing is decided.
    clock.0.send_replace(t0() + TimeDelta::seconds(89));
    // A duplicate delivery is dropped, and proves the loop has caught up with the clock.
    tx.send(delivery(c, "p1", Inbound::Action { action: propose }).into()).await.unwrap();
    assert_eq!(seen.count(), 1);

    // At the deadline's second, the proposal passes: final edit and announcement.
    clock.0.send_replace(t0() + TimeDelta::seconds(90));
    wait_for_effects(&mut performed_rx, 2).await;
    {
        let seen = seen.timed();
        let (at, effect) = &seen[2];
        assert!(matches!(effect, Effect::Post { text, .. } if text.starts_with("Proposal #1 passed")), "{effect:?}");
        assert_eq!(*at, t0() + TimeDelta::seconds(90));
    }

    // Shutdown right after a delivery: it is still handled and its effects performed.
    let second = Action::new(ActionType::new(PROPOSE).unwrap(), alice(), "p2")
        .at(Place::new("chat", "#general"))
        .requested()
        .with("text", "Another");
    tx.send(delivery(c, "p2", Inbound::Action { action: second }).into()).await.unwrap();
    stop.send(()).unwrap();
    let rt = server.await.unwrap().unwrap();
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert!(rt.store().proposal(c, polity_governance::ProposalId(2)).await.unwrap().is_some());
    assert!(matches!(&seen.timed().last().unwrap().1, Effect::PostVote { .. }));
}

fn proposal_in(channel: &str, id: &str) -> Inbound {
    let action = Action::new(ActionType::new(PROPOSE).unwrap(), alice(), id)
        .at(Place::new("chat", channel))
        .requested()
        .with("text", format!("A proposal in {channel}"));
    Inbound::Action { action }
}

async fn hung_and_rate_limited_channels_hold_up_nothing_else(url: &str) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(HandClock(watch::channel(t0()).0));
    let (performed, mut performed_rx) = mpsc::unbounded_channel();
    // A channel that never answers and one that is rate limited for ten minutes; everything
    // else is performed at once.
    let ten_minutes = PlatformError::RateLimited { retry_after: Some(std::time::Duration::from_secs(600)) };
    let troubled = Recording::new("chat")
        .clock(clock.clone())
        .notify_answers(performed)
        .in_channel("#hang", Answer::Hang)
        .in_channel("#slow", Answer::Fail(ten_minutes));
    let seen = troubled.log();
    let mut rt = Runtime::open(store).await.unwrap();
    // Long enough that the hung request is still hanging when the test ends.
    rt.set_effect_timeout(std::time::Duration::from_secs(3600));
    rt.add_platform(Arc::new(troubled));
    let c = community_under_quick_vote(&mut rt, "troubled").await;

    let (tx, rx) = mpsc::channel(16);
    let loop_clock = clock.clone();
    let server = tokio::spawn(async move { serve(rt, rx, &*loop_clock, std::future::pending()).await });

    // One vote message hangs for good, one is rate limited for ten minutes.
    tx.send(delivery(c, "p-hang", proposal_in("#hang", "p-hang")).into()).await.unwrap();
    tx.send(delivery(c, "p-slow", proposal_in("#slow", "p-slow")).into()).await.unwrap();
    wait_for_effects(&mut performed_rx, 1).await; // the 429
    // Meanwhile a vote in a third channel opens, passes at its deadline and is announced.
    tx.send(delivery(c, "p-vote", proposal_in("#vote", "p-vote")).into()).await.unwrap();
    wait_for_effects(&mut performed_rx, 1).await; // its vote message
    clock.0.send_replace(t0() + TimeDelta::seconds(90));
    wait_for_effects(&mut performed_rx, 2).await; // the final edit and the announcement
    // And a command is answered.
    let (answer, answered) = tokio::sync::oneshot::channel();
    tx.send(polity::serve::Input::job(move |rt, _now| {
        Box::pin(async move {
            let all = rt.store().load_proposals(c, false).await?.len();
            answer.send(all).unwrap();
            Ok(())
        })
    }))
    .await
    .unwrap();
    assert_eq!(answered.await.unwrap(), 3);

    {
        let seen = seen.timed();
        let announced = seen.iter().filter(|(_, e)| matches!(e, Effect::Post { place, text } if place.channel == "#vote" && text.starts_with("Proposal #3 passed"))).count();
        assert_eq!(announced, 1, "{seen:#?}");
        let slow = seen
            .iter()
            .filter(|(_, e)| matches!(e, Effect::PostVote { place, .. } if place.channel == "#slow"))
            .count();
        assert_eq!(slow, 1, "the rate-limited post waits for its 600 s: {seen:#?}");
        // The other two were decided too; their announcements wait behind their channels'
        // first posts, in order.
        let behind =
            seen.iter().filter(|(_, e)| matches!(e, Effect::Post { place, .. } if place.channel != "#vote")).count();
        assert_eq!(behind, 0, "{seen:#?}");
    }
    server.abort();
}

#[tokio::test]
async fn a_hung_channel_and_a_ten_minute_rate_limit_hold_up_nothing_else() {
    let db = TestDb::sqlite("serve_troubled");
    hung_and_rate_limited_channels_hold_up_nothing_else(db.url()).await;
    if let Some(db) = TestDb::postgres("serve_troubled") {
        hung_and_rate_limited_channels_hold_up_nothing_else(db.url()).await;
    }
}

/// An input the store refuses (here a trigger stands in for a value the database cannot keep)
/// is dropped alone: the inputs written in the same batch are kept, the loop goes on, and
/// the input is not half-recorded.
#[tokio::test]
async fn an_input_the_store_refuses_is_dropped_alone_and_the_loop_goes_on() {
    use sea_orm::ConnectionTrait;
    let db = TestDb::sqlite("serve_refused_input");
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
        .db()
        .execute_unprepared(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON inbox WHEN NEW.dedup_key = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'this input cannot be kept'); END;",
        )
        .await
        .unwrap();
    let clock = Arc::new(HandClock(watch::channel(t0()).0));
    let (performed, mut performed_rx) = mpsc::unbounded_channel();
    let chat = Recording::new("chat").clock(clock.clone()).notify_answers(performed);
    let seen = chat.log();
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(Arc::new(chat));
    let c = community_under_quick_vote(&mut rt, "refused").await;

    // Three proposals waiting together, so the loop takes them as one batch; the middle one
    // cannot be written.
    let (tx, rx) = mpsc::channel(16);
    for key in ["first", "poison", "third"] {
        tx.send(delivery(c, key, proposal_in("#general", key)).into()).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let loop_clock = clock.clone();
    let server = tokio::spawn(async move {
        serve(rt, rx, &*loop_clock, async {
            let _stop = stopped.await;
        })
        .await
    });
    wait_for_effects(&mut performed_rx, 2).await; // the two vote messages
    // The loop still takes input.
    tx.send(delivery(c, "fourth", proposal_in("#general", "fourth")).into()).await.unwrap();
    wait_for_effects(&mut performed_rx, 1).await;
    stop.send(()).unwrap();
    let rt = server.await.unwrap().expect("the loop ended without an error");

    let texts: Vec<String> = rt
        .store()
        .load_proposals(c, false)
        .await
        .unwrap()
        .iter()
        .map(|p| serde_json::to_string(&p.action).unwrap())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts.iter().all(|t| !t.contains("poison")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("third")), "{texts:?}");
    assert!(!rt.store().seen("chat", "poison").await.unwrap());
    assert!(rt.store().seen("chat", "first").await.unwrap() && rt.store().seen("chat", "third").await.unwrap());
    let posted = seen.timed().iter().filter(|(_, e)| matches!(e, Effect::PostVote { .. })).count();
    assert_eq!(posted, 3);
}
