#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Loomio adapter against the fake Loomio, as the host uses it: a connection started from
//! its configuration, its group's members handed over, `/integration test`'s call, a poll
//! started and read as a `loomio.poll` process, and Loomio's refusals and rate limit.

use polity_governance::ProposalId;
use polity_governance::io::Effect;
use polity_governance::platform::{PlatformError, Request};
use polity_loomio::LoomioAdapter;
use polity_port::{Adapter, Incoming, Start, TestFailure};
use polity_tests::loomio::{API_KEY, ERIN, FRANK, FakeLoomio, GROUP, GROUP_KEY, OUTSIDER_KEY};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn config(loomio: &FakeLoomio, key: &str, api: &str) -> Value {
    json!({ "url": loomio.url(), "group_id": GROUP, "api_key": key, "api": api })
}

async fn start(
    loomio: &FakeLoomio,
    key: &str,
    api: &str,
) -> (Box<dyn polity_port::Connection>, mpsc::Receiver<Incoming>) {
    let (events, incoming) = mpsc::channel(16);
    let connection = LoomioAdapter.start(config(loomio, key, api), Start::new("loomio", events)).await.unwrap();
    (connection, incoming)
}

fn poll_effect(params: Value) -> Effect {
    let Value::Object(params) = params else { panic!("params are an object") };
    Effect::StartProcess {
        proposal: ProposalId(7),
        name: polity_governance::action::ActionType::new("loomio.poll").unwrap(),
        params,
    }
}

#[tokio::test]
async fn a_connection_hands_over_its_group_and_members_with_a_users_key_or_an_older_instances_group_key() {
    let loomio = FakeLoomio::start().await;
    for (key, api) in [(API_KEY, "b2"), (GROUP_KEY, "b1")] {
        let (_connection, mut incoming) = start(&loomio, key, api).await;
        let Some(Incoming::Space(space)) = incoming.recv().await else { panic!("no space") };
        assert_eq!(space.space, polity_loomio::space_of(&loomio.url(), GROUP));
        let names: Vec<&str> = space.members.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["Polity", "Erin", "Frank"], "{api}");
        assert_eq!(space.members[1].0.account.as_str(), ERIN.to_string());
    }
    // The user's key travels in the header, never in an address.
    let leaked = loomio
        .with(|s| s.requests.iter().any(|(_, path, query, _)| path.starts_with("/api/b2") && query.contains(API_KEY)));
    assert!(!leaked);
}

#[tokio::test]
async fn the_integration_test_says_what_is_wrong_with_a_key() {
    let loomio = FakeLoomio::start().await;
    let ok = LoomioAdapter.test(config(&loomio, API_KEY, "b2"), Default::default()).await.unwrap();
    assert!(ok.contains("has 3 members"), "{ok}");
    let bad = LoomioAdapter.test(config(&loomio, "not-a-key", "b2"), Default::default()).await.unwrap_err();
    assert!(matches!(bad, TestFailure::BadCredentials(_)), "{bad:?}");
    let outsider = LoomioAdapter.test(config(&loomio, OUTSIDER_KEY, "b2"), Default::default()).await.unwrap_err();
    assert!(matches!(outsider, TestFailure::MissingPermission(ref why) if why.contains("no members")), "{outsider:?}");
    let no_group = json!({ "url": loomio.url(), "group_id": 5, "api_key": API_KEY });
    let missing = LoomioAdapter.test(no_group, Default::default()).await.unwrap_err();
    assert!(matches!(missing, TestFailure::MissingPermission(ref why) if why.contains("no group 5")), "{missing:?}");
    let nowhere = json!({ "url": "http://127.0.0.1:9", "group_id": GROUP, "api_key": API_KEY });
    let unreachable = LoomioAdapter.test(nowhere, Default::default()).await.unwrap_err();
    assert!(matches!(unreachable, TestFailure::Unreachable(_)), "{unreachable:?}");
}

#[tokio::test]
async fn a_poll_process_is_started_once_and_read_as_its_votes_or_scores() {
    let loomio = FakeLoomio::start().await;
    let (connection, _incoming) = start(&loomio, API_KEY, "b2").await;
    let platform = connection.scopes().platform(&[polity_loomio::space_of(&loomio.url(), GROUP)]);
    let effect = poll_effect(json!({ "title": "Pick a venue", "details": "Where next?", "poll_type": "score",
        "options": ["library", "park"], "closes": "2026-12-24T18:00:00Z" }));
    let started =
        platform.perform(Request { key: 11, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap();
    let outcome = started.process.unwrap();
    let key = outcome["key"].as_str().unwrap().to_string();
    assert_eq!((outcome["status"].as_str(), outcome["library"].as_u64()), (Some("open"), Some(0)));
    assert_eq!(outcome["closes_at"], "2026-12-24T18:00:00.000Z");
    assert_eq!(outcome["hint"], format!("poll:{key}"));
    // Retried (its answer taken as lost): the poll is found, not made again.
    let again =
        platform.perform(Request { key: 11, retried: true, effect: &effect, vote_messages: &[] }).await.unwrap();
    assert_eq!(again.process.unwrap()["key"], key);
    assert_eq!(loomio.with(|s| s.polls.len()), 1);

    loomio.vote(ERIN, &key, "park");
    loomio.vote(FRANK, &key, "park");
    let (status, read) = platform.read_process(&outcome).await.unwrap();
    assert_eq!((status.as_str(), read["park"].as_f64(), read["voters"].as_u64()), ("open", Some(2.0), Some(2)));
    assert_eq!(read["undecided"].as_u64(), Some(1));
    loomio.close(&key);
    let (status, read) = platform.read_process(&read).await.unwrap();
    assert_eq!((status.as_str(), read["status"].as_str()), ("closed", Some("closed")));

    // A proposal's options are Loomio's own unless given, and read under their plain names.
    let proposal = poll_effect(json!({ "title": "Adopt it", "days": 2 }));
    let made =
        platform.perform(Request { key: 12, retried: false, effect: &proposal, vote_messages: &[] }).await.unwrap();
    let made = made.process.unwrap();
    loomio.vote(ERIN, made["key"].as_str().unwrap(), "agree");
    let (_, read) = platform.read_process(&made).await.unwrap();
    assert_eq!(
        (read["agree"].as_u64(), read["disagree"].as_u64(), read["abstain"].as_u64()),
        (Some(1), Some(0), Some(0))
    );
}

#[tokio::test]
async fn a_poll_loomio_cannot_take_is_a_clear_error_and_its_rate_limit_holds_every_call() {
    let loomio = FakeLoomio::start().await;
    let (connection, _incoming) = start(&loomio, API_KEY, "b2").await;
    let platform = connection.scopes().platform(&[polity_loomio::space_of(&loomio.url(), GROUP)]);
    for (params, says) in [
        (json!({ "title": "x", "options": ["a", "b"] }), "needs `closes`"),
        (json!({ "title": "x", "days": 1, "poll_type": "vibes" }), "poll_type is one of"),
        (json!({ "title": "x", "days": 1, "poll_type": "poll", "options": ["only"] }), "2 to 50"),
        (json!({ "title": "x", "days": 1, "options": ["voters", "b"] }), "cannot be an option's name"),
        (json!({ "days": 1 }), "needs `title`"),
        (json!({ "title": "x", "days": 1, "voters": "everyone" }), "email addresses"),
    ] {
        let effect = poll_effect(params);
        let e = platform
            .perform(Request { key: 1, retried: false, effect: &effect, vote_messages: &[] })
            .await
            .unwrap_err();
        assert!(matches!(&e, PlatformError::Permanent(why) if why.contains(says)), "{says}: {e:?}");
    }
    assert_eq!(loomio.with(|s| s.polls.len()), 0);

    // Another community's platform refuses to act in this group.
    let elsewhere = connection.scopes().platform(&["https://other.example/g/1".into()]);
    let effect = poll_effect(json!({ "title": "Sneaky", "days": 1 }));
    let e =
        elsewhere.perform(Request { key: 2, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap_err();
    assert!(matches!(&e, PlatformError::Permanent(why) if why.contains("does not govern")), "{e:?}");

    // A 429 holds every call for its Retry-After: nothing is sent meanwhile.
    loomio.fail_next("POST", "/api/b2/polls", 120);
    let effect = poll_effect(json!({ "title": "Later", "days": 1 }));
    let e =
        platform.perform(Request { key: 3, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap_err();
    assert!(matches!(e, PlatformError::RateLimited { retry_after: Some(d) } if d.as_secs() == 120), "{e:?}");
    let sent = loomio.with(|s| s.requests.len());
    let e =
        platform.perform(Request { key: 3, retried: false, effect: &effect, vote_messages: &[] }).await.unwrap_err();
    assert!(matches!(e, PlatformError::RateLimited { .. }), "{e:?}");
    assert_eq!(loomio.with(|s| s.requests.len()), sent, "nothing sent while held");
}

#[tokio::test]
async fn the_groups_polls_are_read_on_a_schedule_as_the_same_triggers_a_webhook_brings() {
    let loomio = FakeLoomio::start().await;
    let (connection, _incoming) = start(&loomio, API_KEY, "b2").await;
    let platform = connection.scopes().platform(&[polity_loomio::space_of(&loomio.url(), GROUP)]);
    let made = |title: &str| poll_effect(json!({ "title": title, "days": 1 }));
    let old =
        platform.perform(Request { key: 1, retried: false, effect: &made("Older"), vote_messages: &[] }).await.unwrap();
    let poller = connection.poller().unwrap();
    assert!(poller.polls().iter().any(|p| p.name == polity_loomio::POLLS));
    let first = poller.poll(polity_loomio::POLLS, None).await.unwrap();
    assert!(first.events.is_empty(), "polls made before the connection are not news: {:?}", old.process);

    let new =
        platform.perform(Request { key: 2, retried: false, effect: &made("Newer"), vote_messages: &[] }).await.unwrap();
    let key = new.process.unwrap()["key"].as_str().unwrap().to_string();
    loomio.vote(ERIN, &key, "agree");
    loomio.close(&key);
    let read = poller.poll(polity_loomio::POLLS, first.cursor.clone()).await.unwrap();
    let keys: Vec<&str> = read.events.iter().map(|e| e.dedup_key.as_str()).collect();
    assert_eq!(keys, [format!("poll:{key}:created"), format!("poll:{key}:voters:1"), format!("poll:{key}:closed")]);
    let polity_governance::io::Inbound::Action { action } = &read.events[2].input else { panic!("not an action") };
    assert_eq!(action.kind.as_str(), polity_loomio::POLL_CLOSED);
    // Read again: the same keys, which the host's inbox keeps once.
    let again = poller.poll(polity_loomio::POLLS, read.cursor).await.unwrap();
    assert_eq!(again.events.len(), 3);
    assert_eq!(again.events[0].dedup_key, read.events[0].dedup_key);
}
