//! Reads after the first: conditional (`If-None-Match`, `If-Modified-Since`), a 304 keeping
//! the cache and counting as a good read, and the schedule every `refresh_secs`.

use crate::support::{ManualClock, community, config, connect, instance, member, space, start};
use polity_port::{Adapter, CredSource};
use polity_sourcecred::{Read, SourceCredAdapter};
use polity_tests::sourcecred::CredAccount;
use std::time::Duration;

#[tokio::test]
async fn a_read_after_the_first_is_conditional() {
    let fake = instance().await;
    let (etag, last_modified) = (fake.etag(), fake.last_modified());
    let connection = connect(&fake.url(), ManualClock::new()).await;
    assert_eq!(connection.refresh_now().await, Ok(Read::Unchanged));
    let seen = fake.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].if_none_match.as_deref(), Some(etag.as_str()));
    assert_eq!(seen[1].if_modified_since.as_deref(), Some(last_modified.as_str()));
    assert_eq!((seen[1].status, fake.not_modified()), (304, 1));
    assert_eq!(connection.instance().total().unwrap(), 16.5);

    // A new deployment is read in full, and its validators used next.
    let mut accounts = community();
    accounts.push(CredAccount::user("newcomer").discord("42").cred(&[1.0]));
    fake.set_accounts(&accounts);
    assert_eq!(connection.refresh_now().await, Ok(Read::Changed { identities: 4 }));
    let newcomer = connection.instance().lookup(&member("n", &[("discord", "42")])).unwrap();
    assert_eq!(newcomer.identity.as_deref(), Some("newcomer"));
    assert_eq!(connection.refresh_now().await, Ok(Read::Unchanged));
    assert_eq!(fake.requests()[3].if_none_match, Some(fake.etag()));
    assert_eq!(fake.not_modified(), 2);
}

#[tokio::test]
async fn last_modified_alone_works_and_so_does_neither() {
    let fake = instance().await;
    fake.set_validators(false, true);
    let connection = connect(&fake.url(), ManualClock::new()).await;
    assert_eq!(connection.refresh_now().await, Ok(Read::Unchanged));
    let seen = fake.requests();
    assert_eq!(
        (seen[1].if_none_match.as_deref(), seen[1].if_modified_since.clone()),
        (None, Some(fake.last_modified()))
    );

    let fake = instance().await;
    fake.set_validators(false, false);
    let connection = connect(&fake.url(), ManualClock::new()).await;
    assert_eq!(connection.refresh_now().await, Ok(Read::Changed { identities: 3 }));
    let seen = fake.requests();
    assert_eq!(
        (seen[1].if_none_match.as_deref(), seen[1].if_modified_since.as_deref(), seen[1].status),
        (None, None, 200)
    );
    assert_eq!(fake.not_modified(), 0);
}

#[tokio::test]
async fn a_304_is_a_good_read() {
    let fake = instance().await;
    let clock = ManualClock::new();
    let connection = connect(&fake.url(), clock.clone()).await;
    clock.advance(3000);
    assert_eq!(connection.refresh_now().await, Ok(Read::Unchanged));
    clock.advance(3000);
    // 6000 s after the document was fetched, 3000 s after it was confirmed.
    assert_eq!(connection.instance().total().unwrap(), 16.5);
}

/// The schedule, on tokio's clock: paused only to jump over `refresh_secs`, so the reads
/// themselves run on real sockets in real time (a paused clock would fire reqwest's timeout
/// while a request waits for its answer).
#[tokio::test]
async fn it_reads_again_every_refresh_secs() {
    let fake = instance().await;
    let (start, mut incoming) = start();
    let mut with_refresh = config(&fake.url());
    with_refresh["refresh_secs"] = 120.into();
    let connection = SourceCredAdapter.start(with_refresh, start).await.unwrap();
    space(&mut incoming);
    assert_eq!(fake.request_count(), 1);

    for read in 2..=3 {
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(119)).await;
        tokio::time::resume();
        tokio::task::yield_now().await;
        assert_eq!(fake.request_count(), read - 1, "not before refresh_secs");
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::time::resume();
        tokio::time::timeout(Duration::from_secs(10), fake.until_requests(read)).await.expect("a scheduled read");
    }
    let seen = fake.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen[1..].iter().all(|r| r.if_none_match == Some(fake.etag()) && r.status == 304), "{seen:?}");
    assert_eq!(fake.not_modified(), 2);
    assert_eq!(connection.cred().unwrap().total().unwrap(), 16.5);

    // Shut down: no more reads.
    connection.shutdown().await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(600)).await;
    tokio::time::resume();
    tokio::task::yield_now().await;
    assert_eq!(fake.request_count(), 3);
}
