//! Crash safety: the runtime is killed at chosen points of a vote and started again on the
//! same database. No ballot is lost, no effect is performed twice, and what was in flight is
//! finished. The platform here is a fake that, like Discord with a message nonce, performs a
//! request whose idempotency key it has seen before only once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::runtime::{Handled, Runtime, request};
use polity::store::Store;
use polity_governance::ProposalState;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place, ProposalId};
use polity_governance::io::{Effect, Inbound};
use std::sync::Arc;
use support::{Answer, Messages, Recording, TestDb};
use tokio::sync::mpsc;

/// The platform: like Discord with a message nonce, it performs a request whose idempotency
/// key it has seen before only once (`Log::performed_by_key`). One for a whole scenario,
/// across restarts, as a real platform outlives our process.
fn chat() -> Recording {
    Recording::new("chat").reactions().edits().messages(Messages::VotesAndPosts)
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn account(name: &str) -> AccountRef {
    AccountRef::new("chat", name)
}

async fn start(url: &str, chat: &Arc<Recording>) -> (Runtime, CommunityId) {
    let store = Store::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(chat.clone());
    let c = rt.ensure_community("crash", "admin", account("admin")).await.unwrap();
    (rt, c)
}

const POLICY: &str = "name = \"Majority\"\nkind = \"platform\"\n[vote]\nquorum = 1\ncloses = \"1h\"\n";

async fn setup(rt: &mut Runtime, c: CommunityId) -> ProposalId {
    let install = request("polity.policy_install", account("admin"), Place::new("chat", "#general"), "install")
        .unwrap()
        .with("source", POLICY);
    rt.handle(c, "chat", "install", Inbound::Action { action: install }, t0(), false).await.unwrap();
    for name in ["alice", "bob", "carol", "dave"] {
        assert!(rt.admit(c, &account(name), name));
    }
    rt.save_community(c, t0()).await.unwrap();
    let propose = Action::new(ActionType::new(PROPOSE).unwrap(), account("alice"), "p1")
        .at(Place::new("chat", "#general"))
        .requested()
        .with("text", "Adopt the charter");
    let Handled::Done(step) =
        rt.handle(c, "chat", "p1", Inbound::Action { action: propose }, t0(), false).await.unwrap()
    else {
        panic!("a new input is not a duplicate")
    };
    *step.changed.iter().next().unwrap()
}

fn reaction(vote: &MessageRef, who: &str) -> Inbound {
    Inbound::Reaction { message: vote.clone(), voter: account(who), emoji: "👍".into(), added: true }
}

async fn vote_message(rt: &Runtime, c: CommunityId, p: ProposalId) -> MessageRef {
    rt.store().vote_messages(c, p).await.unwrap().into_iter().next().unwrap()
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn killed_mid_vote(db: &TestDb) {
    // Told when the hanging request has reached the platform.
    let (reached_tx, mut reached) = mpsc::unbounded_channel();
    let chat = Arc::new(chat().notify_hangs(reached_tx));
    run(async {
        // Run 1: the proposal opens and its vote message is posted; alice votes. Killed after
        // alice's step committed but before its effects were performed.
        let (mut rt, c) = start(db.url(), &chat).await;
        let p = setup(&mut rt, c).await;
        rt.dispatch(t0()).await.unwrap();
        let vote = vote_message(&rt, c, p).await;
        rt.handle(c, "chat", "r-alice", reaction(&vote, "alice"), t0(), false).await.unwrap();
        drop(rt);

        // Run 2: the edit alice's ballot caused is still pending and is performed now. bob
        // votes; the platform performs the tally edit but the process dies before hearing back.
        let (mut rt, c) = start(db.url(), &chat).await;
        assert_eq!(rt.engine(c).unwrap().proposal(p).unwrap().tally().unwrap().cast, 1, "alice's ballot survived");
        rt.dispatch(t0()).await.unwrap();
        // A gateway replay of alice's reaction after the restart changes nothing.
        assert!(matches!(
            rt.handle(c, "chat", "r-alice", reaction(&vote, "alice"), t0(), false).await.unwrap(),
            Handled::Duplicate
        ));
        rt.handle(c, "chat", "r-bob", reaction(&vote, "bob"), t0(), false).await.unwrap();
        let next = rt.store().due_effects(t0(), 10).await.unwrap()[0].id;
        // The platform does it, but the answer never reaches us.
        chat.answer_key(next, Some(Answer::Hang));
        // The process is killed while the dispatcher waits for the platform's answer.
        tokio::select! {
            _ = rt.dispatch(t0()) => panic!("the platform call should not have returned"),
            _ = reached.recv() => {}
        }
        drop(rt);
        chat.answer_key(next, None);

        // Run 3: the in-flight edit is sent again with the same key (the platform drops the
        // repeat); carol's ballot decides the proposal.
        let (mut rt, c) = start(db.url(), &chat).await;
        rt.dispatch(t0()).await.unwrap();
        rt.handle(c, "chat", "r-carol", reaction(&vote, "carol"), t0() + TimeDelta::minutes(1), false).await.unwrap();
        rt.dispatch(t0() + TimeDelta::minutes(1)).await.unwrap();

        let stored = rt.store().proposal(c, p).await.unwrap().unwrap();
        assert_eq!(stored.state, ProposalState::Passed);
        assert_eq!(stored.tally().unwrap().cast, 3, "every ballot counted once");
        assert_eq!(rt.store().pending_effects().await.unwrap(), 0, "nothing left in flight");

        let (requests, performed) = (chat.log().keys(), chat.log().performed_by_key());
        assert!(requests.iter().filter(|k| **k == next).count() == 2, "the in-flight effect was retried");
        let announcements = performed.values().filter(|e| matches!(e, Effect::Post { .. })).count();
        assert_eq!(announcements, 1, "the outcome was announced once");
        let votes_posted = performed.values().filter(|e| matches!(e, Effect::PostVote { .. })).count();
        assert_eq!(votes_posted, 1);
        // Every effect the runtime recorded reached the platform exactly once.
        let mut keys = requests.clone();
        keys.dedup();
        assert_eq!(keys.len(), performed.len());
    });
}

fn deadline_while_down(db: &TestDb) {
    let chat = Arc::new(chat());
    run(async {
        let (mut rt, c) = start(db.url(), &chat).await;
        let p = setup(&mut rt, c).await;
        rt.dispatch(t0()).await.unwrap();
        let vote = vote_message(&rt, c, p).await;
        rt.handle(c, "chat", "r-alice", reaction(&vote, "alice"), t0(), false).await.unwrap();
        rt.dispatch(t0()).await.unwrap();
        drop(rt);

        // Down for two hours; the deadline (1h) passed meanwhile.
        let later = t0() + TimeDelta::hours(2);
        let (mut rt, c) = start(db.url(), &chat).await;
        assert_eq!(rt.next_wake().await.unwrap(), Some(t0() + TimeDelta::hours(1)));
        rt.fire_deadlines(later).await.unwrap();
        rt.dispatch(later).await.unwrap();
        assert_eq!(rt.store().proposal(c, p).await.unwrap().unwrap().state, ProposalState::Passed);
        assert_eq!(rt.next_wake().await.unwrap(), None);
    });
}

/// Polls `f` at most `polls` times: `None` when it had not finished by then (it is dropped
/// at that await point, as a killed process stops there).
async fn cut_after<F: std::future::Future>(f: F, polls: usize) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut left = polls;
    std::future::poll_fn(move |cx| {
        if left == 0 {
            return std::task::Poll::Ready(None);
        }
        left -= 1;
        f.as_mut().poll(cx).map(Some)
    })
    .await
}

/// The dispatcher is stopped at each of its await points in turn while it posts a vote
/// message, then started again on the same database: each time the vote message is linked to
/// its proposal once, posted once, and the vote ends right.
/// Runs `scenario(db, platform, cut)` on a fresh database for cut = 1, 2, ... (every third on
/// PostgreSQL, whose databases are slow to make) until it says the stopped work finished
/// before its cut.
fn at_every_cut(db_name: &str, postgres: bool, scenario: impl AsyncFn(&str, &Arc<Recording>, usize) -> bool) {
    let mut cut = 1;
    loop {
        let db = if postgres {
            let Some(db) = TestDb::postgres(db_name) else { return };
            db
        } else {
            TestDb::sqlite(db_name)
        };
        let chat = Arc::new(chat());
        if run(scenario(db.url(), &chat, cut)) {
            assert!(cut > 1, "{db_name}: the work was never stopped midway");
            return;
        }
        cut += if postgres { 3 } else { 1 };
        assert!(cut < 500, "{db_name}: the work never finished");
    }
}

fn killed_at_every_await_of_the_dispatcher(db_name: &str, postgres: bool) {
    at_every_cut(db_name, postgres, async |url, chat, cut| {
        let (mut rt, c) = start(url, chat).await;
        let p = setup(&mut rt, c).await;
        let finished = cut_after(rt.dispatch(t0()), cut).await.is_some();
        drop(rt);

        let (mut rt, c) = start(url, chat).await;
        rt.dispatch(t0()).await.unwrap();
        let messages = rt.store().vote_messages(c, p).await.unwrap();
        assert_eq!(messages.len(), 1, "cut at await {cut}: the vote message is linked once");
        for who in ["alice", "bob", "carol"] {
            let key = format!("r-{who}");
            rt.handle(c, "chat", &key, reaction(&messages[0], who), t0(), false).await.unwrap();
            rt.dispatch(t0()).await.unwrap();
        }
        let stored = rt.store().proposal(c, p).await.unwrap().unwrap();
        assert_eq!(stored.state, ProposalState::Passed, "cut at await {cut}");
        assert_eq!(stored.tally().unwrap().cast, 3, "cut at await {cut}: every ballot counted");
        assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
        let performed = chat.log().performed_by_key();
        let posted = performed.values().filter(|e| matches!(e, Effect::PostVote { .. })).count();
        assert_eq!(posted, 1, "cut at await {cut}: one vote message");
        let announced = performed.values().filter(|e| matches!(e, Effect::Post { .. })).count();
        assert_eq!(announced, 1, "cut at await {cut}: one announcement");
        finished
    });
}

/// A batch of ballots (with a duplicate and a refused vote among them) is stopped at each of
/// its await points in turn, then delivered again, as a gateway replays what it was not
/// sure of: the batch is written whole or not at all, and each ballot counts once.
fn killed_with_a_batch_in_flight(db_name: &str, postgres: bool) {
    use polity::serve::Delivery;
    at_every_cut(db_name, postgres, async |url, chat, cut| {
        let (mut rt, c) = start(url, chat).await;
        let p = setup(&mut rt, c).await;
        rt.dispatch(t0()).await.unwrap();
        let vote = vote_message(&rt, c, p).await;
        let batch = || {
            let d = |key: &str, input: Inbound| Delivery {
                community: c,
                source: "chat".into(),
                dedup_key: key.into(),
                input,
                from: None,
            };
            let refused = Inbound::Vote { proposal: ProposalId(99), voter: account("bob"), choice: "yes".into() };
            vec![
                d("r-alice", reaction(&vote, "alice")),
                d("r-alice", reaction(&vote, "alice")),
                d("v-bob", refused),
                d("r-bob", reaction(&vote, "bob")),
            ]
        };
        let finished = cut_after(rt.handle_batch(batch(), t0()), cut).await.is_some();
        drop(rt);

        let (mut rt, c) = start(url, chat).await;
        let outcomes = rt.handle_batch(batch(), t0()).await.unwrap();
        assert_eq!(outcomes.len(), 4);
        assert!(matches!(outcomes[1], Ok(Handled::Duplicate)), "cut at await {cut}: {outcomes:?}");
        assert!(outcomes[2].is_err(), "cut at await {cut}: the vote on no proposal is refused");
        let stored = rt.store().proposal(c, p).await.unwrap().unwrap();
        assert_eq!(stored.tally().unwrap().cast, 2, "cut at await {cut}: each ballot counted once");
        assert_eq!(rt.engine(c).unwrap().proposal(p).unwrap().tally().unwrap().cast, 2, "memory agrees");
        finished
    });
}

#[test]
fn a_batch_stopped_at_any_await_point_is_written_whole_or_not_at_all() {
    killed_with_a_batch_in_flight("crash_batch", false);
    killed_with_a_batch_in_flight("crash_batch", true);
}

#[test]
fn the_dispatcher_stopped_at_any_await_point_loses_no_vote_message_and_posts_none_twice() {
    killed_at_every_await_of_the_dispatcher("crash_awaits", false);
    killed_at_every_await_of_the_dispatcher("crash_awaits", true);
}

#[test]
fn killed_mid_vote_at_every_stage_the_vote_still_ends_right_and_nothing_happens_twice() {
    killed_mid_vote(&TestDb::sqlite("crash"));
    if let Some(db) = TestDb::postgres("crash") {
        killed_mid_vote(&db);
    }
}

#[test]
fn a_deadline_due_while_the_bot_was_down_is_decided_at_start() {
    deadline_while_down(&TestDb::sqlite("crash_deadline"));
    if let Some(db) = TestDb::postgres("crash_deadline") {
        deadline_while_down(&db);
    }
}
