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
use polity_governance::platform::PlatformError;
use std::sync::Arc;
use std::time::Duration;
use support::{Answer, Recording, TestDb};

/// Answers each request with the next scripted answer (success once the script runs out),
/// and logs the requests; an edit with no message to edit fails the test.
fn scripted(answers: Vec<PlatformError>) -> Recording {
    Recording::new("chat").fail_next(answers).on_perform(|r| {
        if let Effect::EditVote { .. } = r.effect {
            assert!(!r.vote_messages.is_empty(), "an edit with no message to edit");
        }
    })
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// A community whose first effect (an announcement) meets `answers`.
async fn with_one_effect(db: &TestDb, answers: Vec<PlatformError>) -> (Runtime, Arc<Recording>) {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let mut rt = Runtime::open(store).await.unwrap();
    let platform = Arc::new(scripted(answers));
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

fn calls(p: &Recording) -> usize {
    p.log().count()
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
async fn an_effect_told_to_wait_waits_as_often_as_it_takes_and_is_never_given_up() {
    // An edit of a days-old vote message is refused for hours (Discord's budget for old
    // messages): far more refusals than a failing effect gets attempts.
    let db = TestDb::sqlite("rate_limited_long");
    let limited = || PlatformError::RateLimited { retry_after: Some(Duration::from_secs(3600)) };
    let (mut rt, p) = with_one_effect(&db, (0..30).map(|_| limited()).collect()).await;
    let mut now = t0();
    for _ in 0..30 {
        rt.dispatch(now).await.unwrap();
        now = rt.next_wake().await.unwrap().expect("still waiting, not given up");
    }
    rt.dispatch(now).await.unwrap();
    assert_eq!(calls(&p), 31);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert!(rt.store().failed_effects().await.unwrap().is_empty());
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
    // The first failure is in the audit log with why, once: not every retry.
    let c = rt.store().communities().await.unwrap()[0].0;
    let audit: Vec<String> = rt.store().audit(c, 100).await.unwrap().into_iter().map(|a| a.text).collect();
    let retried: Vec<&String> = audit.iter().filter(|a| a.contains("failed for now")).collect();
    assert_eq!(
        retried,
        [&format!(
            "posting the vote message (proposal #1) failed for now: chat: temporary failure: 502 Bad Gateway; tried again in {} s, \
             and the admins are told if it never succeeds",
            first.num_seconds()
        )],
        "{audit:?}"
    );

    let db = TestDb::sqlite("forbidden");
    let (mut rt, p) = with_one_effect(&db, vec![PlatformError::Permanent("403 Missing Permissions".into())]).await;
    rt.dispatch(t0()).await.unwrap();
    rt.dispatch(t0() + TimeDelta::hours(1)).await.unwrap();
    // The post once, then the admin's notice that it failed; never the post again.
    assert_eq!(calls(&p), 2, "a 403 is never retried");
    let told = AccountRef::new("chat", "admin");
    let notice = "Polity could not carry out posting the vote message for proposal #1: 403 Missing Permissions";
    assert_eq!(p.log().performed(), [Effect::Notify { account: told, text: notice.into(), at: None }]);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    assert_eq!(rt.next_wake().await.unwrap(), None);
    let c = rt.store().communities().await.unwrap()[0].0;
    let audit: Vec<String> = rt.store().audit(c, 100).await.unwrap().into_iter().map(|a| a.text).collect();
    assert!(
        audit.contains(
            &"posting the vote message (proposal #1) could not be carried out: 403 Missing Permissions; the admin was told"
                .to_string()
        ),
        "{audit:?}"
    );
    assert_eq!(rt.store().failed_effects().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_notice_that_fails_for_good_is_recorded_and_tells_nobody_again() {
    let db = TestDb::sqlite("notice_fails");
    let refused = || PlatformError::Permanent("403 Cannot send messages to this user".into());
    // The vote's post fails, and so does the notice that says so: nothing more is sent.
    let (mut rt, p) = with_one_effect(&db, vec![refused(), refused()]).await;
    rt.dispatch(t0()).await.unwrap();
    rt.dispatch(t0() + TimeDelta::hours(1)).await.unwrap();
    assert_eq!(calls(&p), 2);
    assert_eq!(rt.store().pending_effects().await.unwrap(), 0);
    let c = rt.store().communities().await.unwrap()[0].0;
    let audit: Vec<String> = rt.store().audit(c, 100).await.unwrap().into_iter().map(|a| a.text).collect();
    let failed: Vec<&String> = audit.iter().filter(|a| a.contains("could not be carried out")).collect();
    assert_eq!(failed.len(), 2, "{audit:?}");
    // Newest first.
    assert!(failed[0].starts_with("a direct message to chat:admin could not be carried out"), "{audit:?}");
    assert!(failed[0].ends_with("there is no admin to tell"), "{audit:?}");
}

#[tokio::test]
async fn a_request_that_never_ends_times_out_and_is_retried_with_backoff() {
    let db = TestDb::sqlite("timeout");
    let (mut rt, _) = with_one_effect(&db, vec![]).await;
    // Never answers: a platform that hangs.
    rt.add_platform(Arc::new(Recording::new("chat").always(Answer::Hang)));
    rt.set_effect_timeout(Duration::from_millis(1));
    assert_eq!(rt.dispatch(t0()).await.unwrap(), 0, "nothing was performed, and dispatch returned");
    // Still to do, tried again after the backoff: a timeout is a temporary failure.
    assert_eq!(rt.store().pending_effects().await.unwrap(), 1);
    assert_eq!(rt.next_wake().await.unwrap(), Some(t0() + TimeDelta::seconds(2)));
    assert!(rt.store().failed_effects().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_platform_that_declares_its_own_time_limit_is_held_to_it() {
    let db = TestDb::sqlite("timeout_declared");
    let (mut rt, _) = with_one_effect(&db, vec![]).await;
    // Polity's limit is an hour; the platform says a request of its takes at most 1 ms.
    let hangs = Recording::new("chat").always(Answer::Hang).request_timeout(Duration::from_millis(1));
    rt.add_platform(Arc::new(hangs));
    rt.set_effect_timeout(Duration::from_secs(3600));
    assert_eq!(rt.dispatch(t0()).await.unwrap(), 0, "nothing was performed, and dispatch returned");
    assert_eq!(rt.store().pending_effects().await.unwrap(), 1);
    assert_eq!(rt.next_wake().await.unwrap(), Some(t0() + TimeDelta::seconds(2)));
}

/// A vote decided while its message waits out a rate limit: the closing edit waits for the
/// message instead of being dropped, and reaches it once it is posted.
#[tokio::test]
async fn a_vote_decided_before_its_message_is_posted_still_gets_its_closing_edit() {
    let db = TestDb::sqlite("decided_before_posted");
    let limited = PlatformError::RateLimited { retry_after: Some(Duration::from_secs(30)) };
    let (mut rt, p) = with_one_effect(&db, vec![limited]).await;
    rt.dispatch(t0()).await.unwrap();
    assert!(p.log().performed().is_empty(), "the vote message waits for its 30 s");
    let c = CommunityId(1);
    let vote = Inbound::Vote {
        proposal: polity_governance::ProposalId(1),
        voter: AccountRef::new("chat", "admin"),
        choice: "yes".into(),
    };
    rt.handle(c, "chat", "v", vote, t0() + TimeDelta::seconds(1), false).await.unwrap();
    rt.dispatch(t0() + TimeDelta::seconds(1)).await.unwrap();
    assert!(p.log().performed().is_empty(), "the edit and the announcement wait behind the post");
    rt.dispatch(t0() + TimeDelta::seconds(31)).await.unwrap();
    let done = p.log().performed();
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
    let platform = Arc::new(scripted(Vec::new()));
    rt.add_platform(platform.clone());
    let vote = Inbound::Vote {
        proposal: polity_governance::ProposalId(1),
        voter: AccountRef::new("chat", "admin"),
        choice: "yes".into(),
    };
    rt.handle(CommunityId(1), "chat", "v", vote, t0() + TimeDelta::seconds(1), false).await.unwrap();
    rt.dispatch(t0() + TimeDelta::seconds(1)).await.unwrap();
    assert!(platform.log().performed().is_empty(), "the announcement waits behind the vote message");
    rt.dispatch(t0() + TimeDelta::seconds(31)).await.unwrap();
    let done = platform.log().performed();
    assert!(matches!(done[0], Effect::PostVote { .. }), "{done:#?}");
    assert!(done.iter().any(|e| matches!(e, Effect::Post { text, .. } if text.contains("passed"))), "{done:#?}");
}
