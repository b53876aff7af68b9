//! The serving loop on a clock moved by hand: tally edits are paced (one per interval, the
//! newest text), and vote messages whose reactions changed are read back and reconciled
//! once no input waits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::runtime::{Runtime, request};
use polity::serve::{Delivery, Input, deliver, serve};
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place, ProposalId};
use polity_governance::io::{Effect, Inbound};
use std::sync::Arc;
use support::{HandClock, Messages, Recording, TestDb};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

const VOTE: &str = "m1";

fn vote_message() -> MessageRef {
    MessageRef::new("chat", "#general", VOTE)
}

fn account(name: &str) -> AccountRef {
    AccountRef::new("chat", name)
}

struct Running {
    clock: Arc<HandClock>,
    /// Records edits with the clock's time, and holds the reactions on its one vote message
    /// (`m1`) as the truth a read returns.
    chat: Arc<Recording>,
    community: CommunityId,
    tx: mpsc::Sender<Input>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<Runtime>>,
    seq: u32,
    reads: mpsc::UnboundedReceiver<()>,
}

/// A community of `members` under a vote that decides only at its deadline, one proposal
/// open, its vote message posted; the loop runs with the given pacing.
async fn start(db: &TestDb, members: &[&str], edit: i64, reconcile: i64) -> Running {
    start_tuned(db, members, edit, reconcile, |_| {}).await
}

/// [`start`], with the runtime tuned by `tune` before the loop takes it.
async fn start_tuned(
    db: &TestDb,
    members: &[&str],
    edit: i64,
    reconcile: i64,
    tune: impl FnOnce(&mut Runtime),
) -> Running {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(HandClock(watch::channel(t0()).0));
    let (read, reads) = mpsc::unbounded_channel();
    let chat = Recording::new("chat")
        .reactions()
        .edits()
        .reads_reactions()
        .messages(Messages::VotesByProposal)
        .clock(clock.clone())
        .notify_reads(read);
    let chat = Arc::new(chat);
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(chat.clone());
    rt.set_edit_interval(TimeDelta::seconds(edit));
    rt.set_reconcile_interval(TimeDelta::seconds(reconcile));
    tune(&mut rt);
    let admin = account("admin");
    let c = rt.ensure_community("pacing", "admin", admin.clone()).await.unwrap();
    let policy = "name = \"Late\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"1h\"\n";
    let install = request("polity.policy_install", admin.clone(), Place::new("chat", "#general"), "i")
        .unwrap()
        .with("source", policy);
    rt.handle(c, "chat", "i", Inbound::Action { action: install }, t0(), false).await.unwrap();
    for m in members {
        rt.admit(c, &account(m), m);
    }
    rt.save_community(c, t0()).await.unwrap();
    let propose = Action::new(ActionType::new(PROPOSE).unwrap(), admin, "p1")
        .at(Place::new("chat", "#general"))
        .requested()
        .with("text", "Paint the shed");
    rt.handle(c, "chat", "p1", Inbound::Action { action: propose }, t0(), false).await.unwrap();
    rt.dispatch(t0()).await.unwrap();

    let (tx, rx) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let loop_clock = clock.clone();
    let server = tokio::spawn(async move {
        serve(rt, rx, &*loop_clock, async {
            let _stop = stopped.await;
        })
        .await
    });
    Running { clock, chat, community: c, tx, stop, server, seq: 0, reads }
}

impl Running {
    /// `who` reacts on the platform, and its event is delivered.
    async fn react(&mut self, who: &str, emoji: &str, added: bool) {
        self.hold(who, emoji, added);
        self.event(who, emoji, added).await;
    }

    /// The platform's state changes, without an event.
    fn hold(&self, who: &str, emoji: &str, added: bool) {
        self.chat.hold(&vote_message(), &account(who), emoji, added);
    }

    fn delivery(&mut self, who: &str, emoji: &str, added: bool) -> Delivery {
        self.seq += 1;
        Delivery {
            community: self.community,
            source: "chat".into(),
            dedup_key: format!("r{}", self.seq),
            input: Inbound::Reaction { message: vote_message(), voter: account(who), emoji: emoji.into(), added },
            from: Some((account(who), who.into())),
        }
    }

    /// An event is delivered, whatever the platform holds.
    async fn event(&mut self, who: &str, emoji: &str, added: bool) {
        let d = self.delivery(who, emoji, added);
        self.tx.send(d.into()).await.unwrap();
    }

    /// Events delivered back to back, with no idle moment between them.
    async fn burst(&mut self, events: &[(&str, &str, bool)]) {
        let all: Vec<Delivery> = events.iter().map(|(w, e, a)| self.delivery(w, e, *a)).collect();
        let job = Input::job(move |rt, now| {
            Box::pin(async move {
                for d in all {
                    deliver(rt, d, now).await?;
                }
                Ok(())
            })
        });
        self.tx.send(job).await.unwrap();
    }

    /// Waits for the next read of the vote message's reactions.
    async fn next_read(&mut self) {
        self.reads.recv().await.unwrap();
    }

    fn read_count(&self) -> u32 {
        self.chat.reads()
    }

    /// Waits until the loop has taken everything sent before and performed what was due.
    async fn settle(&self) {
        support::quiet(&self.tx).await;
    }

    /// The proposal's tally edits still to perform, as the outbox holds them: row and text.
    async fn waiting_edits(&self) -> Vec<(i64, String)> {
        let (done, rows) = oneshot::channel();
        let community = self.community;
        let job = Input::job(move |rt, _now| {
            Box::pin(async move {
                let rows = rt.store().outstanding_effects(community, Some(ProposalId(1))).await?;
                let edits = rows
                    .into_iter()
                    .filter_map(|r| match r.effect {
                        Effect::EditVote { text, .. } => Some((r.id, text)),
                        _ => None,
                    })
                    .collect();
                let _ = done.send(edits);
                Ok(())
            })
        });
        self.tx.send(job).await.unwrap();
        rows.await.unwrap()
    }

    fn at(&self, seconds: i64) {
        self.clock.0.send_replace(t0() + TimeDelta::seconds(seconds));
    }

    fn edits(&self) -> Vec<(i64, String)> {
        let calls = self.chat.log().calls();
        calls
            .into_iter()
            .filter_map(|c| match c.effect {
                Effect::EditVote { text, .. } => Some(((c.at.unwrap() - t0()).num_seconds(), text)),
                _ => None,
            })
            .collect()
    }

    async fn stop(self) -> Runtime {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap()
    }
}

fn tally(text: &str) -> &str {
    text.rsplit(" — ").find(|part| part.starts_with("tally:")).unwrap()
}

#[tokio::test]
async fn tally_edits_go_out_at_most_once_per_interval_with_the_newest_text() {
    let db = TestDb::sqlite("pacing_edits");
    let mut r = start(&db, &["alice", "bob", "carol", "dave"], 3, 60).await;
    r.react("alice", "👍", true).await;
    r.settle().await;
    // The first edit goes out at once.
    assert_eq!(r.edits().len(), 1);
    assert_eq!(tally(&r.edits()[0].1), "tally: yes 1 · no 0 · abstain 0 (1 of 5 voted)");

    // Three more ballots within the interval: no edit yet.
    r.react("bob", "👍", true).await;
    r.settle().await;
    let first = r.waiting_edits().await;
    assert_eq!(first.len(), 1, "{first:?}");
    r.react("carol", "👎", true).await;
    r.at(1);
    r.react("dave", "👍", true).await;
    r.settle().await;
    assert_eq!(r.edits().len(), 1);
    // The edit that waits holds the newest tally: one row, its text replaced by each ballot
    // (not a row per ballot, each superseding the one before).
    let waiting = r.waiting_edits().await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0].0, first[0].0);
    assert_eq!(tally(&waiting[0].1), "tally: yes 3 · no 1 · abstain 0 (4 of 5 voted)");
    // At the end of the interval one edit goes out, with the newest tally; the others are dropped.
    r.at(3);
    r.settle().await;
    let edits = r.edits();
    assert_eq!(edits.len(), 2, "{edits:?}");
    assert_eq!(edits[1].0, 3);
    assert_eq!(tally(&edits[1].1), "tally: yes 3 · no 1 · abstain 0 (4 of 5 voted)");
    let rt = r.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test]
async fn with_no_interval_every_edit_goes_out() {
    let db = TestDb::sqlite("pacing_none");
    let mut r = start(&db, &["alice", "bob"], 0, 60).await;
    r.react("alice", "👍", true).await;
    r.settle().await;
    r.react("bob", "👍", true).await;
    r.settle().await;
    assert_eq!(r.edits().len(), 2);
    r.stop().await;
}

#[tokio::test]
async fn reactions_that_arrived_out_of_order_are_corrected_by_reading_the_message_back() {
    let db = TestDb::sqlite("pacing_reconcile");
    let mut r = start(&db, &["alice", "bob"], 0, 0).await;
    // bob added 👍 and took it back; the platform holds nothing of his, but the events came
    // reversed: the removal (ignored: no ballot yet), then the addition.
    // alice's 👎 is on the platform, and its event was lost.
    r.hold("alice", "👎", true);
    r.burst(&[("bob", "👍", false), ("bob", "👍", true)]).await;
    r.next_read().await;
    r.settle().await;
    let rt = r.stop().await;
    let p = rt.store().proposal(CommunityId(1), ProposalId(1)).await.unwrap().unwrap();
    let v = p.vote.unwrap();
    let ballots: Vec<(String, String)> =
        v.ballots.values().map(|b| (b.account.account.to_string(), v.spec.describe(&b.choice))).collect();
    assert_eq!(ballots, [("alice".to_string(), "no".to_string())]);
}

#[tokio::test]
async fn a_message_is_read_back_at_most_once_per_interval_and_after_a_reconnect_at_once() {
    let db = TestDb::sqlite("pacing_interval");
    let mut r = start(&db, &["alice", "bob"], 0, 10).await;
    r.react("alice", "👍", true).await;
    r.next_read().await;
    // More reactions within the interval wait for it: the next read comes at its end.
    r.react("bob", "👎", true).await;
    r.settle().await;
    r.at(10);
    r.next_read().await;
    r.settle().await;
    assert_eq!(r.read_count(), 2);
    // A reconnect asks for every open vote at once, interval or not.
    let c = r.community;
    r.tx.send(Input::job(move |rt, now| {
        Box::pin(async move {
            rt.reconcile_open_votes(c, "chat", now);
            Ok(())
        })
    }))
    .await
    .unwrap();
    r.next_read().await;
    r.settle().await;
    assert_eq!(r.read_count(), 3);
    let rt = r.stop().await;
    let p = rt.store().proposal(CommunityId(1), ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.tally().unwrap().cast, 2);
}

/// On a platform that sends no event for a reaction (GitHub), the reactions a vote gathered
/// since it was last read are read when its deadline fires, before the tick decides it.
#[tokio::test]
async fn a_polled_platforms_vote_is_read_at_its_deadline_before_it_is_decided() {
    let db = TestDb::sqlite("pacing_polled_deadline");
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let chat = Arc::new(
        Recording::new("chat")
            .reactions()
            .edits()
            .reads_reactions()
            .reactions_polled(std::time::Duration::from_secs(24 * 3600))
            .messages(Messages::VotesByProposal),
    );
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(chat.clone());
    let admin = account("admin");
    let c = rt.ensure_community("polled", "admin", admin.clone()).await.unwrap();
    let policy = "name = \"Late\"\nkind = \"platform\"\n[vote]\nquorum = 2\nearly = false\ncloses = \"1h\"\n";
    let install = request("polity.policy_install", admin.clone(), Place::new("chat", "#general"), "i")
        .unwrap()
        .with("source", policy);
    rt.handle(c, "chat", "i", Inbound::Action { action: install }, t0(), false).await.unwrap();
    for m in ["alice", "bob"] {
        rt.admit(c, &account(m), m);
    }
    rt.save_community(c, t0()).await.unwrap();
    let propose = Action::new(ActionType::new(PROPOSE).unwrap(), admin, "p1")
        .at(Place::new("chat", "#general"))
        .requested()
        .with("text", "Paint the shed");
    rt.handle(c, "chat", "p1", Inbound::Action { action: propose }, t0(), false).await.unwrap();
    rt.dispatch(t0()).await.unwrap();
    // Read once when the vote message was linked, with nothing on it yet.
    rt.reconcile_due(t0()).await.unwrap();
    let read_before = chat.reads();
    // Alice and Bob vote 👍 on the platform, which tells nobody.
    chat.hold(&vote_message(), &account("alice"), "👍", true);
    chat.hold(&vote_message(), &account("bob"), "👍", true);
    rt.fire_deadlines(t0() + TimeDelta::hours(2)).await.unwrap();
    assert_eq!(chat.reads(), read_before + 1, "read at the deadline");
    let p = rt.store().proposal(c, ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.state, polity_governance::ProposalState::Passed, "{p:?}");
}

#[tokio::test]
async fn a_read_of_reactions_that_never_answers_times_out_and_holds_up_nothing() {
    let db = TestDb::sqlite("pacing_hung_read");
    let mut r = start_tuned(&db, &["alice", "bob"], 0, 0, |rt| {
        rt.set_effect_timeout(std::time::Duration::from_millis(300));
    })
    .await;
    r.chat.hang_reads(true);
    r.react("alice", "👍", true).await;
    // Once the loop is idle it reads the vote message back, and the platform never answers.
    r.next_read().await;
    // The loop still takes input: the read gave up at its time limit.
    r.react("bob", "👍", true).await;
    tokio::time::timeout(std::time::Duration::from_secs(60), r.settle())
        .await
        .expect("a hung read held up the serving loop");
    let edits = r.edits();
    assert_eq!(tally(&edits.last().unwrap().1), "tally: yes 2 · no 0 · abstain 0 (2 of 3 voted)", "{edits:?}");
    r.stop().await;
}
