//! What the tests share: a clock they move, the community of the fake instance, members.

use chrono::{DateTime, Duration, TimeZone, Utc};
use polity_governance::ids::{AccountRef, MemberId};
use polity_port::{Incoming, MemberAccounts, SpaceInfo, Start};
use polity_sourcecred::{Clock, SourceCredConfig, SourceCredConnection};
use polity_tests::sourcecred::{CredAccount, FakeSourceCred, GRAIN};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// The connection's name, as a community named it.
pub const CONNECTION: &str = "cred";

/// A clock the test moves by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// At 2026-03-01 12:00:00 UTC.
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap())))
    }

    pub fn advance(&self, secs: i64) {
        *self.0.lock().unwrap() += Duration::seconds(secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// Ian (Discord, 12.5 grain), CamiloTD (GitHub), and a bot: 16.5 cred together.
pub fn community() -> Vec<CredAccount> {
    vec![
        CredAccount::user("Ian").discord("124564013970358272").cred(&[0.5, 1.25, 2.0]).balance(25 * GRAIN / 2),
        CredAccount::user("CamiloTD").github("CamiloTD").cred(&[0.0, 4.0, 8.5]),
        CredAccount::bot("sourcecred-bot")
            .alias(
                &polity_tests::sourcecred::alias::github_bot("dependabot"),
                "github/[@dependabot](https://github.com/dependabot)",
            )
            .cred(&[0.25]),
    ]
}

/// A fake instance serving [`community`].
pub async fn instance() -> FakeSourceCred {
    let fake = FakeSourceCred::start().await;
    fake.set_accounts(&community());
    fake
}

pub fn config(url: &str) -> Value {
    json!({ "url": url })
}

pub fn member(name: &str, accounts: &[(&str, &str)]) -> MemberAccounts {
    MemberAccounts {
        id: MemberId(7),
        name: name.into(),
        accounts: accounts.iter().map(|(p, a)| AccountRef::new(*p, *a)).collect(),
    }
}

/// What a connection is started with, and where its inputs arrive.
pub fn start() -> (Start, mpsc::Receiver<Incoming>) {
    let (events, incoming) = mpsc::channel(16);
    (Start::new(CONNECTION, events), incoming)
}

/// The one space a connection announces.
pub fn space(incoming: &mut mpsc::Receiver<Incoming>) -> SpaceInfo {
    match incoming.try_recv() {
        Ok(Incoming::Space(space)) => space,
        other => panic!("expected the instance's space, got {other:?}"),
    }
}

/// A connection on a clock of the test's, read on demand ([`SourceCredConnection::refresh_now`]).
pub async fn connect(url: &str, clock: Arc<ManualClock>) -> SourceCredConnection {
    let config = SourceCredConfig::read(&config(url)).unwrap();
    SourceCredConnection::start(&config, start().0, clock).await.unwrap()
}

/// An address where nothing listens.
pub async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}
