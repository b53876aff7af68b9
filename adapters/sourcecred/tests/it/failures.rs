//! An instance that cannot be read: lookups are an error (never "no cred") with where and
//! why, the last good read is kept until it is too old, and the test call says what failed.

use crate::support::{ManualClock, closed_port, community, config, connect, instance, member, space, start};
use polity_port::{Adapter, CredSource, TestFailure};
use polity_sourcecred::{Read, SourceCredAdapter};
use polity_tests::sourcecred::FakeSourceCred;
use serde_json::Map;

fn ian() -> polity_port::MemberAccounts {
    member("someone", &[("discord", "124564013970358272")])
}

#[tokio::test]
async fn an_unreachable_instance_starts_and_answers_why() {
    let url = closed_port().await;
    let (start, mut incoming) = start();
    let connection =
        SourceCredAdapter.start(config(&url), start).await.expect("an unreachable instance is no start failure");
    assert_eq!(space(&mut incoming).space, url);
    let cred = connection.cred().unwrap();
    let e = cred.lookup(&ian()).unwrap_err();
    assert!(
        e.starts_with(&format!(
            "SourceCred at {url} has not been read yet: GET {url}/output/accounts.json: could not connect ("
        )),
        "{e}"
    );
    assert!(e.to_lowercase().contains("refused"), "{e}");
    assert_eq!(cred.total().unwrap_err(), e);
    connection.shutdown().await;

    match SourceCredAdapter.test(config(&url), Map::new()).await {
        Err(TestFailure::Unreachable(why)) => {
            assert!(
                why.starts_with(&format!("SourceCred at {url}: GET {url}/output/accounts.json: could not connect")),
                "{why}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn the_test_call_tells_a_server_error_from_a_wrong_address() {
    let fake = instance().await;
    fake.answer_status(500);
    match SourceCredAdapter.test(config(&fake.url()), Map::new()).await {
        Err(TestFailure::Unreachable(why)) => assert!(why.ends_with("HTTP 500 Internal Server Error"), "{why}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    fake.answer_status(404);
    let url = format!("{}/output/accounts.json", fake.url());
    assert_eq!(
        SourceCredAdapter.test(config(&fake.url()), Map::new()).await,
        Err(TestFailure::Other(format!("no output/accounts.json at {url}: is this the instance's site?")))
    );
    fake.serve();
    fake.set_body("<!DOCTYPE html><p>Not an instance</p>");
    match SourceCredAdapter.test(config(&fake.url()), Map::new()).await {
        Err(TestFailure::Other(why)) => {
            assert!(
                why.starts_with(&format!("{url} is not a SourceCred accounts.json: the document is not JSON")),
                "{why}"
            );
        }
        other => panic!("expected Other, got {other:?}"),
    }
    // Polity's test call asked four times, never conditionally.
    assert!(fake.requests().iter().all(|r| r.if_none_match.is_none() && r.if_modified_since.is_none()));
}

#[tokio::test]
async fn a_bad_document_keeps_the_last_good_read_until_it_is_too_old() {
    let fake = instance().await;
    let clock = ManualClock::new();
    let connection = connect(&fake.url(), clock.clone()).await;
    let cred = connection.instance();
    assert_eq!(cred.lookup(&ian()).unwrap().cred, 3.75);

    fake.set_body(r#"{"accounts": [{"account": {"identity": {"id": "x"}}}]}"#);
    let why = connection.refresh_now().await.unwrap_err();
    assert!(
        why.ends_with("is not a SourceCred accounts.json: `accounts[0].account.identity.name` is missing"),
        "{why}"
    );
    clock.advance(3600);
    assert_eq!(cred.lookup(&ian()).unwrap().cred, 3.75, "an hour old is not too old yet");
    assert_eq!(cred.total().unwrap(), 16.5);

    fake.set_body("{\"accounts\": [");
    connection.refresh_now().await.unwrap_err();
    clock.advance(1);
    let e = cred.lookup(&ian()).unwrap_err();
    let site = fake.url();
    assert!(
        e.starts_with(&format!("SourceCred at {site} could not be read since 2026-03-01 12:00:00 UTC: {site}/output/accounts.json is not a SourceCred accounts.json: the document is not JSON: EOF")),
        "{e}"
    );
    assert_eq!(cred.total().unwrap_err(), e);

    // Deployed again: read again.
    fake.set_accounts(&community()[..1]);
    assert_eq!(connection.refresh_now().await, Ok(Read::Changed { identities: 1 }));
    assert_eq!(cred.total().unwrap(), 3.75);
}

#[tokio::test]
async fn an_instance_down_at_start_is_read_once_it_answers() {
    let fake = instance().await;
    fake.answer_status(503);
    let clock = ManualClock::new();
    let connection = connect(&fake.url(), clock).await;
    let e = connection.instance().lookup(&ian()).unwrap_err();
    assert_eq!(
        e,
        format!(
            "SourceCred at {0} has not been read yet: GET {0}/output/accounts.json: HTTP 503 Service Unavailable",
            fake.url()
        )
    );
    fake.answer_status(404);
    let e = connection.refresh_now().await.unwrap_err();
    assert!(e.starts_with("no output/accounts.json at"), "{e}");
    assert!(connection.instance().lookup(&ian()).unwrap_err().ends_with("is this the instance's site?"));
    fake.serve();
    assert_eq!(connection.refresh_now().await, Ok(Read::Changed { identities: 3 }));
    assert_eq!(connection.instance().lookup(&ian()).unwrap().identity.as_deref(), Some("Ian"));
    // Nothing was cached before, so nothing was asked conditionally.
    assert!(fake.requests().iter().all(|r| r.if_none_match.is_none()));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let elsewhere = instance().await;
    let moved = instance().await;
    let url = format!("{}/output/accounts.json", moved.url());
    let port = elsewhere.url().rsplit(':').next().unwrap().to_string();
    // To another host (`localhost` is not `127.0.0.1`), or to its own: neither is followed.
    for location in [format!("http://localhost:{port}/output/accounts.json"), format!("{}/cred", url)] {
        moved.redirect_to(&location);
        let why = format!(
            "{url} answered HTTP 301 Moved Permanently, to {location}: redirects are not followed, so give url as the address accounts.json is served at"
        );
        assert_eq!(
            SourceCredAdapter.test(config(&moved.url()), Map::new()).await,
            Err(TestFailure::Other(why.clone()))
        );
        let connection = connect(&moved.url(), ManualClock::new()).await;
        assert_eq!(
            connection.instance().lookup(&ian()).unwrap_err(),
            format!("SourceCred at {} has not been read yet: {why}", moved.url())
        );
    }
    assert_eq!(elsewhere.request_count(), 0, "the other host was never asked");
    let seen = moved.requests();
    assert_eq!(seen.len(), 4, "one request each, none followed: {seen:?}");
    assert!(seen.iter().all(|r| r.status == 301 && r.path == "/output/accounts.json"), "{seen:?}");

    // A connection that has read keeps its last good read while redirected.
    moved.serve();
    let connection = connect(&moved.url(), ManualClock::new()).await;
    moved.redirect_to(&format!("{}/output/accounts.json", elsewhere.url()));
    let e = connection.refresh_now().await.unwrap_err();
    assert!(e.contains("redirects are not followed"), "{e}");
    assert_eq!(connection.instance().lookup(&ian()).unwrap().cred, 3.75);
    assert_eq!(elsewhere.request_count(), 0);
}

#[tokio::test]
async fn a_document_over_32_mib_is_refused_unread() {
    let fake = instance().await;
    let connection = connect(&fake.url(), ManualClock::new()).await;
    fake.set_body(vec![b' '; 32 * 1024 * 1024 + 1]);
    let e = connection.refresh_now().await.unwrap_err();
    assert!(e.ends_with("is not a SourceCred accounts.json: the document is larger than 32 MiB"), "{e}");
    assert_eq!(connection.instance().total().unwrap(), 16.5);
}

#[tokio::test]
async fn an_empty_instance_knows_nobody() {
    let fake = FakeSourceCred::start().await;
    let connection = connect(&fake.url(), ManualClock::new()).await;
    let nobody = connection.instance().lookup(&member("bob", &[])).unwrap();
    assert_eq!(nobody.identity, None);
    assert!(nobody.reason.unwrap().ends_with(
        "cannot know bob, who has no linked Discord or GitHub account: link the one SourceCred knows bob by with /link"
    ));
    assert_eq!(connection.instance().total().unwrap(), 0.0);
}
