//! The adapter as the host uses it: started from a configuration, its space announced, its
//! cred looked up for members by what they linked.

use crate::support::{CONNECTION, community, config, instance, member, space, start};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Effect;
use polity_governance::platform::{PlatformError, Request};
use polity_port::{Adapter, CredSource};
use polity_sourcecred::{SPEC, SourceCredAdapter};
use polity_tests::sourcecred::FakeSourceCred;
use serde_json::{Map, json};
use std::sync::Arc;
use std::task::Poll;

#[tokio::test]
async fn the_host_starts_it_and_reads_cred_by_linked_accounts() {
    let fake = instance().await;
    let site = fake.url_under("cred");
    let adapter = SourceCredAdapter;
    assert_eq!((SPEC.name, SPEC.space, SPEC.secret), ("sourcecred", "instance", None));
    assert!(adapter.actions().is_empty());
    adapter.check(&config(&site)).unwrap();

    let (start, mut incoming) = start();
    let mut connection = adapter.start(config(&site), start).await.unwrap();
    let announced = space(&mut incoming);
    let host = site.trim_start_matches("http://").trim_end_matches("/cred").to_string();
    assert_eq!(announced.space, site);
    assert_eq!(announced.name, format!("SourceCred at {host}"));
    assert_eq!(announced.owner, (AccountRef::new(CONNECTION, "instance"), "SourceCred".to_string()));
    assert!(announced.members.is_empty());
    assert!(incoming.try_recv().is_err(), "the space is announced once");

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/cred/output/accounts.json");
    assert_eq!(seen[0].user_agent.as_deref(), Some("Polity"));
    assert_eq!((seen[0].if_none_match.as_deref(), seen[0].if_modified_since.as_deref()), (None, None));

    let cred: Arc<dyn CredSource> = connection.cred().expect("a SourceCred connection is a cred source");
    // By a Discord account, on Polity's own bot or a community's own Discord connection.
    for platform in ["discord", "discord-eng"] {
        let ian = cred.lookup(&member("someone", &[(platform, "124564013970358272")])).unwrap();
        assert_eq!((ian.cred, ian.grain, ian.identity.as_deref(), ian.reason), (3.75, 12.5, Some("Ian"), None));
    }
    // By a GitHub login, whatever its case.
    let camilo = cred.lookup(&member("cam", &[("slack", "U1"), ("github", "camilotd")])).unwrap();
    assert_eq!((camilo.cred, camilo.grain, camilo.identity.as_deref()), (12.5, 0.0, Some("CamiloTD")));
    // By the identity's name: the member's own, or an account on this connection.
    let ian = cred.lookup(&member("IAN", &[])).unwrap();
    assert_eq!(ian.identity.as_deref(), Some("Ian"));
    let bot = cred.lookup(&member("me", &[(CONNECTION, "SourceCred-Bot")])).unwrap();
    assert_eq!((bot.cred, bot.identity.as_deref()), (0.25, Some("sourcecred-bot")));
    // Someone it does not know: no cred, and why.
    let alice = cred.lookup(&member("alice", &[("discord", "123"), ("github", "alice")])).unwrap();
    assert_eq!((alice.cred, alice.grain, alice.identity), (0.0, 0.0, None));
    assert_eq!(
        alice.reason.as_deref(),
        Some(
            format!(
                "SourceCred at {host} knows no identity named alice, and none of alice's linked accounts (discord 123, github alice) is one of its aliases: link the Discord or GitHub account SourceCred knows alice by with /link"
            )
            .as_str()
        )
    );
    assert_eq!(cred.total().unwrap(), community().iter().map(|a| a.total_cred()).sum::<f64>());
    assert_eq!(cred.total().unwrap(), 16.5);

    // Nothing is done through it, and it runs until shut down.
    let platform = connection.scopes().platform(std::slice::from_ref(&announced.space));
    assert_eq!(platform.name(), CONNECTION);
    assert!(platform.actions().is_empty());
    let effect = Effect::Post { place: Place::new(CONNECTION, "x"), text: "hi".into() };
    let refused = platform.perform(Request { key: 1, effect: &effect, vote_messages: &[] as &[MessageRef] }).await;
    assert_eq!(refused, Err(PlatformError::Permanent("SourceCred takes no actions".into())));
    let mut stopped = connection.stopped();
    let running = std::future::poll_fn(|cx| Poll::Ready(stopped.as_mut().poll(cx).is_pending())).await;
    assert!(running, "a SourceCred connection never stops by itself");
    drop(stopped);
    connection.shutdown().await;
}

#[tokio::test]
async fn a_communitys_connection_is_made_from_its_url() {
    let fake = instance().await;
    let adapter = SourceCredAdapter;
    let mut settings = Map::new();
    let missing = adapter.connection_config(None, &settings, None).unwrap_err().to_string();
    assert!(missing.starts_with("a SourceCred connection needs url=..."), "{missing}");

    settings.insert("url".into(), json!(fake.url()));
    let config = adapter.connection_config(None, &settings, None).unwrap();
    assert_eq!(config, json!({ "url": fake.url() }));
    let (start, mut incoming) = start();
    let connection = adapter.start(config, start).await.unwrap();
    assert_eq!(space(&mut incoming).space, fake.url());
    let ian = connection.cred().unwrap().lookup(&member("x", &[("discord", "124564013970358272")])).unwrap();
    assert_eq!(ian.identity.as_deref(), Some("Ian"));
    assert_eq!(fake.requests()[0].path, "/output/accounts.json");
    connection.shutdown().await;
}

#[tokio::test]
async fn the_test_call_says_what_it_read() {
    let fake = instance().await;
    let said = SourceCredAdapter.test(config(&fake.url()), Map::new()).await.unwrap();
    assert_eq!(said, format!("SourceCred at {} answers: 3 identities, total cred 16.5", fake.url()));
}

#[tokio::test]
async fn a_compat_header_and_older_accounts_are_read() {
    let fake = FakeSourceCred::start().await;
    // A v0.8-era account (no allocationHistory, mergedIdentityIds, payoutAddresses) in a
    // compat header.
    fake.set_json(&json!([
        {"type": "sourcecred/credAccounts", "version": "0.1.0"},
        {"accounts": [{
            "account": {"active": true, "balance": "197950000000000000000", "paid": "0",
                "identity": {"address": "N\u{0}sourcecred\u{0}core\u{0}IDENTITY\u{0}abc\u{0}", "aliases": [], "id": "abc", "name": "METADREAMER", "subtype": "USER"}},
            "cred": [1.5], "totalCred": 1.5}],
         "intervals": [{"endTimeMs": 1, "startTimeMs": 0}], "unclaimedAliases": []}
    ]));
    let said = SourceCredAdapter.test(config(&fake.url()), Map::new()).await.unwrap();
    assert!(said.ends_with("answers: 1 identity, total cred 1.5"), "{said}");
    let (start, _incoming) = start();
    let connection = SourceCredAdapter.start(config(&fake.url()), start).await.unwrap();
    let found = connection.cred().unwrap().lookup(&member("metadreamer", &[])).unwrap();
    assert_eq!((found.cred, found.grain, found.identity.as_deref()), (1.5, 197.95, Some("METADREAMER")));
    connection.shutdown().await;
}
