//! The dispatcher's handling of platform failures: a 429's Retry-After is honoured, a
//! temporary failure is retried with backoff, a permanent one (a 403) is never retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::runtime::{Runtime, request};
use polity::store::Store;
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, Place};
use polity_governance::io::{Effect, Inbound};
use polity_governance::platform::{BoxFuture, Capabilities, Performed, Platform, PlatformError, Request};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::TestDb;

/// Answers each request with the next scripted answer (success once the script runs out),
/// and counts the requests.
struct Scripted {
    answers: Mutex<VecDeque<PlatformError>>,
    calls: Mutex<u32>,
    /// What was performed, in order.
    done: Mutex<Vec<Effect>>,
}

impl Platform for Scripted {
    fn name(&self) -> &str {
        "chat"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn perform<'a>(&'a self, r: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(async move {
            *self.calls.lock().unwrap() += 1;
            if let Some(e) = self.answers.lock().unwrap().pop_front() {
                return Err(e);
            }
            if let Effect::EditVote { .. } = r.effect {
                assert!(!r.vote_messages.is_empty(), "an edit with no message to edit");
            }
            self.done.lock().unwrap().push(r.effect.clone());
            let message = matches!(r.effect, Effect::PostVote { .. })
                .then(|| polity_governance::ids::MessageRef::new("chat", "#g", format!("m{}", r.key)));
            Ok(Performed { message })
        })
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// A community whose first effect (an announcement) meets `answers`.
async fn with_one_effect(db: &TestDb, answers: Vec<PlatformError>) -> (Runtime, Arc<Scripted>) {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let mut rt = Runtime::open(store).await.unwrap();
    let platform =
        Arc::new(Scripted { answers: Mutex::new(answers.into()), calls: Mutex::new(0), done: Mutex::new(Vec::new()) });
    rt.add_platform(platform.clone());
    let admin = AccountRef::new("chat", "admin");
    let c: CommunityId = rt.ensure_community("d", "admin", admin.clone()).await.unwrap();
    let policy = "name = \"p\"\nkind = \"platform\"\n[vote]\nquorum = 1\n";
    let install =
        request("polity.policy_install", admin.clone(), Place::new("chat", "#g"), "i").unwrap().with("source", policy);
    rt.handle(c, "chat", "i", Inbound::Action { action: install }, t0(), false).await.unwrap();
    let propose = Action::new(ActionType::new(PROPOSE).unwrap(), admin, "p")
        .at(Place::new("chat", "#g"))
        .requested()
        .with("text", "x");
    rt.handle(c, "chat", "p", Inbound::Action { action: propose }, t0(), false).await.unwrap();
    assert_eq!(rt.store().pending_effects().await.unwrap(), 1);
    (rt, platform)
}

fn calls(p: &Scripted) -> u32 {
    *p.calls.lock().unwrap()
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let db = TestDb::sqlite("retry_after");
    let limited = PlatformError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
    let (mut rt, p) = with_one_effect(&db, vec![limited]).await;
    rt.dispatch(t0()).await.unwrap();
    assert_eq!(calls(&p), 1);
    assert_eq!(rt.next_wake().await.unwrap(), Some(t0() + TimeDelta::seconds(30)));
    rt.dispatch(t0() + TimeDelta::seconds(29)).await.unwrap();
    assert_eq!(calls(&p), 1, "not before the platform said");
    rt.dispatch(t0() + TimeDelta::seconds(30)).await.unwrap();
    assert_eq!(calls(&p), 2);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

#[tokio::test]
async fn temporary_failures_back_off_and_permanent_ones_are_not_retried() {
    let db = TestDb::sqlite("backoff");
    let flaky = || PlatformError::Transient("502 Bad Gateway".into());
    let (mut rt, p) = with_one_effect(&db, vec![flaky(), flaky()]).await;
    rt.dispatch(t0()).await.unwrap();
    let first = rt.next_wake().await.unwrap().unwrap() - t0();
    rt.dispatch(t0() + first).await.unwrap();
    let second = rt.next_wake().await.unwrap().unwrap() - (t0() + first);
    assert!(second > first, "backoff grows: {first} then {second}");
    rt.dispatch(t0() + first + second).await.unwrap();
    assert_eq!(calls(&p), 3);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);

    let db = TestDb::sqlite("forbidden");
    let (mut rt, p) = with_one_effect(&db, vec![PlatformError::Permanent("403 Missing Permissions".into())]).await;
    rt.dispatch(t0()).await.unwrap();
    rt.dispatch(t0() + TimeDelta::hours(1)).await.unwrap();
    assert_eq!(calls(&p), 1, "a 403 is never retried");
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert_eq!(rt.next_wake().await.unwrap(), None);
}

/// Never answers: a platform that hangs.
struct Hung;

impl Platform for Hung {
    fn name(&self) -> &str {
        "chat"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    fn perform<'a>(&'a self, _: Request<'a>) -> BoxFuture<'a, Result<Performed, PlatformError>> {
        Box::pin(std::future::pending())
    }
}

#[tokio::test]
async fn a_request_that_never_ends_times_out_and_is_retried_with_backoff() {
    let db = TestDb::sqlite("timeout");
    let (mut rt, _) = with_one_effect(&db, vec![]).await;
    rt.add_platform(Arc::new(Hung));
    rt.set_effect_timeout(Duration::from_millis(1));
    assert_eq!(rt.dispatch(t0()).await.unwrap(), 0, "nothing was performed, and dispatch returned");
    // Still to do, tried again after the backoff: a timeout is a temporary failure.
    assert_eq!(rt.store().pending_effects().await.unwrap(), 1);
    assert_eq!(rt.next_wake().await.unwrap(), Some(t0() + TimeDelta::seconds(2)));
    assert!(rt.store().failed_effects().await.unwrap().is_empty());
}

/// A vote decided while its message waits out a rate limit: the closing edit waits for the
/// message instead of being dropped, and reaches it once it is posted.
#[tokio::test]
async fn a_vote_decided_before_its_message_is_posted_still_gets_its_closing_edit() {
    let db = TestDb::sqlite("decided_before_posted");
    let limited = PlatformError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
    let (mut rt, p) = with_one_effect(&db, vec![limited]).await;
    rt.dispatch(t0()).await.unwrap();
    assert!(p.done.lock().unwrap().is_empty(), "the vote message waits for its 30 s");
    let c = CommunityId(1);
    let vote = Inbound::Vote {
        proposal: polity_governance::ProposalId(1),
        voter: AccountRef::new("chat", "admin"),
        choice: "yes".into(),
    };
    rt.handle(c, "chat", "v", vote, t0() + TimeDelta::seconds(1), false).await.unwrap();
    rt.dispatch(t0() + TimeDelta::seconds(1)).await.unwrap();
    assert!(p.done.lock().unwrap().is_empty(), "the edit and the announcement wait behind the post");
    rt.dispatch(t0() + TimeDelta::seconds(31)).await.unwrap();
    let done = p.done.lock().unwrap().clone();
    assert!(matches!(done[0], Effect::PostVote { .. }), "{done:#?}");
    assert!(
        matches!(done[1], Effect::EditVote { closed: true, .. })
            || matches!(done[2], Effect::EditVote { closed: true, .. }),
        "{done:#?}"
    );
    assert!(done.iter().any(|e| matches!(e, Effect::Post { text, .. } if text.contains("passed"))), "{done:#?}");
    assert_eq!(rt.store().vote_messages(c, polity_governance::ProposalId(1)).await.unwrap().len(), 1);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
}

/// A rate-limited vote message keeps its place in its channel across a restart: the
/// announcement decided meanwhile does not go out before it.
#[tokio::test]
async fn a_lane_waiting_for_a_retry_stays_parked_across_a_restart() {
    let db = TestDb::sqlite("parked_restart");
    let limited = PlatformError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
    let (mut rt, _) = with_one_effect(&db, vec![limited]).await;
    rt.dispatch(t0()).await.unwrap();
    drop(rt);

    let store = Store::connect(db.url()).await.unwrap();
    let mut rt = Runtime::open(store).await.unwrap();
    let platform =
        Arc::new(Scripted { answers: Mutex::new(VecDeque::new()), calls: Mutex::new(0), done: Mutex::new(Vec::new()) });
    rt.add_platform(platform.clone());
    let vote = Inbound::Vote {
        proposal: polity_governance::ProposalId(1),
        voter: AccountRef::new("chat", "admin"),
        choice: "yes".into(),
    };
    rt.handle(CommunityId(1), "chat", "v", vote, t0() + TimeDelta::seconds(1), false).await.unwrap();
    rt.dispatch(t0() + TimeDelta::seconds(1)).await.unwrap();
    assert!(platform.done.lock().unwrap().is_empty(), "the announcement waits behind the vote message");
    rt.dispatch(t0() + TimeDelta::seconds(31)).await.unwrap();
    let done = platform.done.lock().unwrap().clone();
    assert!(matches!(done[0], Effect::PostVote { .. }), "{done:#?}");
    assert!(done.iter().any(|e| matches!(e, Effect::Post { text, .. } if text.contains("passed"))), "{done:#?}");
}
