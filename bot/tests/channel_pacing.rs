//! Tally edits paced per channel, on a clock moved by hand: a platform that allows 5 edits
//! per 5 s in one channel gets no more, whatever the number of proposals voted on there;
//! other channels are not held up, each message ends with its newest text, and the closing
//! edits all go out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::runtime::{Runtime, request};
use polity::serve::{Delivery, Input, deliver, serve};
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place};
use polity_governance::io::{Effect, Inbound};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::{HandClock, Messages, Recording, TestDb};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

const BUSY: &str = "#general";
const QUIET: &str = "#other";
/// What the platform allows: edits per channel per window.
const LIMIT: usize = 5;
const WINDOW: i64 = 5;

fn account(name: &str) -> AccountRef {
    AccountRef::new("chat", name)
}

/// One edit the platform performed: when (seconds after t0), of which message, and how.
#[derive(Clone, Debug)]
struct Edit {
    at: i64,
    channel: String,
    message: String,
    text: String,
    closed: bool,
}

/// A chat platform that allows 5 edits per 5 s in a channel, and records each edit with the
/// clock's time. A proposal's vote message is `m{id}` in the channel it was posted to.
fn chat(clock: Arc<HandClock>) -> Recording {
    Recording::new("chat")
        .reactions()
        .edits()
        .edits_per_channel(LIMIT as u32, Duration::from_secs(WINDOW as u64))
        .messages(Messages::VotesByProposal)
        .clock(clock)
}

/// Every edit `chat` performed, one per vote message it edited.
fn edits_of(chat: &Recording) -> Vec<Edit> {
    let mut edits = Vec::new();
    for c in chat.log().calls() {
        if let Effect::EditVote { text, closed, .. } = &c.effect {
            let at = (c.at.unwrap() - t0()).num_seconds();
            for m in &c.vote_messages {
                edits.push(Edit {
                    at,
                    channel: m.channel.to_string(),
                    message: m.message.to_string(),
                    text: text.clone(),
                    closed: *closed,
                });
            }
        }
    }
    edits
}

struct Running {
    clock: Arc<HandClock>,
    chat: Arc<Recording>,
    community: CommunityId,
    tx: mpsc::Sender<Input>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<Runtime>>,
    seq: u32,
    /// Each proposal's channel, by its message (`m{id}`).
    channels: HashMap<String, String>,
}

/// A community of alice and bob under a vote that decides only at its deadline (1 h), with
/// `busy` proposals open in [`BUSY`] and `quiet` in [`QUIET`], their vote messages posted;
/// the loop runs with tally edits paced to one per `interval` per proposal.
async fn start(db: &TestDb, busy: u64, quiet: u64, interval: i64) -> Running {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(HandClock(watch::channel(t0()).0));
    let chat = Arc::new(chat(clock.clone()));
    let mut rt = Runtime::open(store).await.unwrap();
    rt.add_platform(chat.clone());
    rt.set_edit_interval(TimeDelta::seconds(interval));
    let admin = account("admin");
    let c = rt.ensure_community("pacing", "admin", admin.clone()).await.unwrap();
    let policy = "name = \"Late\"\nkind = \"platform\"\n[vote]\nquorum = 1\nearly = false\ncloses = \"1h\"\n";
    let install =
        request("polity.policy_install", admin.clone(), Place::new("chat", BUSY), "i").unwrap().with("source", policy);
    rt.handle(c, "chat", "i", Inbound::Action { action: install }, t0(), false).await.unwrap();
    for m in ["alice", "bob"] {
        rt.admit(c, &account(m), m);
    }
    rt.save_community(c, t0()).await.unwrap();
    let mut channels = HashMap::new();
    let places = std::iter::repeat_n(BUSY, busy as usize).chain(std::iter::repeat_n(QUIET, quiet as usize));
    for (i, channel) in places.enumerate() {
        let key = format!("p{}", i + 1);
        let propose = Action::new(ActionType::new(PROPOSE).unwrap(), admin.clone(), &key)
            .at(Place::new("chat", channel))
            .requested()
            .with("text", format!("Proposal {}", i + 1));
        rt.handle(c, "chat", &key, Inbound::Action { action: propose }, t0(), false).await.unwrap();
        channels.insert(format!("m{}", i + 1), channel.to_string());
    }
    rt.dispatch(t0()).await.unwrap();
    assert!(edits_of(&chat).is_empty());

    let (tx, rx) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    let loop_clock = clock.clone();
    let server = tokio::spawn(async move {
        serve(rt, rx, &*loop_clock, async {
            let _stop = stopped.await;
        })
        .await
    });
    Running { clock, chat, community: c, tx, stop, server, seq: 0, channels }
}

impl Running {
    /// `who` votes on each of `messages` (`m{id}`) with `emoji`, all at the same instant.
    async fn ballots(&mut self, who: &str, emoji: &str, messages: impl IntoIterator<Item = u64>) {
        let mut all = Vec::new();
        for id in messages {
            self.seq += 1;
            let message = format!("m{id}");
            all.push(Delivery {
                community: self.community,
                source: "chat".into(),
                dedup_key: format!("r{}", self.seq),
                input: Inbound::Reaction {
                    message: MessageRef::new("chat", self.channels[&message].clone(), message),
                    voter: account(who),
                    emoji: emoji.into(),
                    added: true,
                },
                from: Some((account(who), who.into())),
            });
        }
        let job = Input::job(move |rt, now| {
            Box::pin(async move {
                for d in all {
                    deliver(rt, d, now).await?;
                }
                Ok(())
            })
        });
        self.tx.send(job).await.unwrap();
        self.quiet().await;
    }

    /// Waits until everything due now was performed.
    async fn quiet(&self) {
        support::quiet(&self.tx).await;
    }

    /// The clock moves to `seconds` after t0, and what is due then is performed.
    async fn at(&self, seconds: i64) {
        self.clock.0.send_replace(t0() + TimeDelta::seconds(seconds));
        self.quiet().await;
    }

    /// The clock moves a second at a time up to `seconds`.
    async fn until(&self, from: i64, seconds: i64) {
        for s in from..=seconds {
            self.at(s).await;
        }
    }

    fn edits(&self, channel: &str) -> Vec<Edit> {
        edits_of(&self.chat).into_iter().filter(|e| e.channel == channel).collect()
    }

    /// The last edit of each message in `channel`.
    fn last_edits(&self, channel: &str) -> HashMap<String, Edit> {
        self.edits(channel).into_iter().map(|e| (e.message.clone(), e)).collect()
    }

    async fn stop(self) -> Runtime {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap()
    }
}

fn tally(text: &str) -> &str {
    text.rsplit(" — ").find(|part| part.starts_with("tally:")).unwrap_or(text)
}

/// No window of [`WINDOW`] seconds holds more than [`LIMIT`] of `edits`.
fn assert_within_budget(edits: &[Edit]) {
    for e in edits {
        let within: Vec<i64> = edits.iter().map(|x| x.at).filter(|t| *t >= e.at && *t < e.at + WINDOW).collect();
        assert!(within.len() <= LIMIT, "{} edits in the {WINDOW} s from {}: {within:?}", within.len(), e.at);
    }
}

const BOTH: &str = "tally: yes 1 · no 1 · abstain 0 (2 of 3 voted)";

#[tokio::test]
async fn a_channel_takes_at_most_its_budget_of_edits_and_every_message_ends_with_its_newest_tally() {
    let db = TestDb::sqlite("channel_pacing_budget");
    let mut r = start(&db, 12, 0, 3).await;
    r.ballots("alice", "👍", 1..=12).await;
    assert_eq!(r.edits(BUSY).len(), LIMIT, "{:?}", r.edits(BUSY));
    // Newer ballots while most edits wait: those edits are superseded by the newer text.
    r.at(1).await;
    r.ballots("bob", "👎", 1..=12).await;
    r.until(2, 30).await;

    let edits = r.edits(BUSY);
    assert_within_budget(&edits);
    let last = r.last_edits(BUSY);
    assert_eq!(last.len(), 12, "{edits:?}");
    for (message, e) in &last {
        assert_eq!(tally(&e.text), BOTH, "{message}: {edits:?}");
    }
    // Superseded edits were never sent: one per proposal and ballot at most.
    assert!(edits.len() < 24, "{edits:?}");
    let rt = r.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test]
async fn a_busy_channel_does_not_hold_up_edits_in_another() {
    let db = TestDb::sqlite("channel_pacing_other");
    let mut r = start(&db, 12, 1, 0).await;
    // Proposal 13 is in the other channel.
    r.ballots("alice", "👍", 1..=13).await;
    r.at(1).await;
    r.ballots("bob", "👎", 1..=13).await;

    let quiet: Vec<(i64, String)> = r.edits(QUIET).iter().map(|e| (e.at, tally(&e.text).to_string())).collect();
    assert_eq!(quiet, [(0, "tally: yes 1 · no 0 · abstain 0 (1 of 3 voted)".to_string()), (1, BOTH.to_string())]);
    // The busy channel meanwhile took its budget and no more.
    assert_eq!(r.edits(BUSY).len(), LIMIT, "{:?}", r.edits(BUSY));
    r.until(2, 20).await;
    assert_within_budget(&r.edits(BUSY));
    assert_eq!(r.last_edits(BUSY).values().filter(|e| tally(&e.text) == BOTH).count(), 12);
    r.stop().await;
}

#[tokio::test]
async fn closing_edits_go_out_even_when_the_channel_is_saturated() {
    let db = TestDb::sqlite("channel_pacing_close");
    let mut r = start(&db, 12, 0, 3).await;
    r.ballots("alice", "👍", 1..=12).await;
    r.until(1, 15).await;
    // Just before the deadline the channel is saturated again, and most edits wait when
    // every vote closes.
    r.at(3598).await;
    r.ballots("bob", "👎", 1..=12).await;
    assert_eq!(r.edits(BUSY).iter().filter(|e| e.at == 3598).count(), LIMIT);
    r.until(3599, 3630).await;

    let edits = r.edits(BUSY);
    assert_within_budget(&edits);
    let last = r.last_edits(BUSY);
    assert_eq!(last.len(), 12);
    for (message, e) in &last {
        assert!(e.closed, "{message} was not closed: {edits:?}");
    }
    assert_eq!(edits.iter().filter(|e| e.closed).count(), 12, "one closing edit per vote: {edits:?}");
    let rt = r.stop().await;
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test]
async fn proposals_waiting_for_their_channel_keep_their_turn() {
    let db = TestDb::sqlite("channel_pacing_turn");
    let mut r = start(&db, 12, 0, 3).await;
    r.ballots("alice", "👍", 1..=12).await;
    // Proposals 1 to 5 were edited; new ballots on all of them come before the others had
    // their turn. Those that waited go first: by the end of the third window every message
    // was edited at least once.
    r.at(1).await;
    r.ballots("bob", "👎", 1..=12).await;
    r.until(2, 2 * WINDOW).await;
    let edits = r.edits(BUSY);
    assert_within_budget(&edits);
    let mut edited: Vec<&str> = edits.iter().map(|e| e.message.as_str()).collect();
    edited.sort_unstable();
    edited.dedup();
    assert_eq!(edited.len(), 12, "{edits:?}");
    r.until(2 * WINDOW + 1, 30).await;
    assert!(r.last_edits(BUSY).values().all(|e| tally(&e.text) == BOTH));
    r.stop().await;
}
