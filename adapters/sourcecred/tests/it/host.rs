//! The adapter as the host uses it: started from a configuration, its space announced, its
//! cred looked up for members by what they linked.

use crate::support::{CONNECTION, community, config, instance, member, space, start};
use polity_governance::ids::{AccountRef, MessageRef, Place};
use polity_governance::io::Effect;
use polity_governance::platform::{PlatformError, Request};
use polity_port::{Adapter, CredSource};
use polity_sourcecred::{SPEC, SourceCredAdapter};
use polity_tests::sourcecred::{CredAccount, FakeSourceCred};
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
    // By a Discord account: the host names accounts by their platform's kind, whichever
    // connection brought them.
    let ian = cred.lookup(&member("someone", &[("discord", "124564013970358272")])).unwrap();
    assert_eq!((ian.cred, ian.grain, ian.identity.as_deref(), ian.reason), (3.75, 12.5, Some("Ian"), None));
    // A platform is matched exactly: a connection's name is none.
    for platform in ["discord-eng", "Discord", CONNECTION] {
        let nobody = cred.lookup(&member("someone", &[(platform, "124564013970358272")])).unwrap();
        assert_eq!(nobody.identity, None, "{platform}");
    }
    // By a GitHub login, whatever its case.
    let camilo = cred.lookup(&member("cam", &[("slack", "U1"), ("github", "camilotd")])).unwrap();
    assert_eq!((camilo.cred, camilo.grain, camilo.identity.as_deref()), (12.5, 0.0, Some("CamiloTD")));
    // By a SourceCred account (an admin's link) naming the identity; not by the member's
    // own name, which members choose.
    let bot = cred.lookup(&member("me", &[("sourcecred", "SourceCred-Bot")])).unwrap();
    assert_eq!((bot.cred, bot.identity.as_deref()), (0.25, Some("sourcecred-bot")));
    let ian = cred.lookup(&member("IAN", &[])).unwrap();
    assert_eq!(ian.identity, None);
    // Someone it does not know: no cred, and how to become known.
    let alice = cred.lookup(&member("alice", &[("discord", "123"), ("github", "alice")])).unwrap();
    assert_eq!((alice.cred, alice.grain, alice.identity), (0.0, 0.0, None));
    assert_eq!(
        alice.reason.as_deref(),
        Some(
            format!(
                "SourceCred at {host} has no identity with an alias for any of alice's linked accounts (discord 123, github alice): its operator adds the alias to their identity in the ledger"
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
    let refused = platform
        .perform(Request { key: 1, retried: false, effect: &effect, vote_messages: &[] as &[MessageRef] })
        .await;
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
async fn names_match_only_on_a_connection_that_says_so() {
    let fake = instance().await;
    let host = fake.url().trim_start_matches("http://").to_string();
    let adapter = SourceCredAdapter;
    let settings = |match_names: Option<&str>| {
        let mut settings = Map::new();
        settings.insert("url".into(), json!(fake.url()));
        if let Some(v) = match_names {
            settings.insert("match_names".into(), json!(v));
        }
        settings
    };
    // Ian on Discord is not Ian of SourceCred, unless the community says its names are.
    let someone_named_ian = member("Ian", &[("discord", "999")]);
    for (match_names, by_name) in [(None, false), (Some("false"), false), (Some("true"), true)] {
        let config = adapter.connection_config(None, &settings(match_names), None).unwrap();
        let (start, _incoming) = start();
        let connection = adapter.start(config, start).await.unwrap();
        let found = connection.cred().unwrap().lookup(&someone_named_ian).unwrap();
        if by_name {
            assert_eq!((found.cred, found.identity.as_deref()), (3.75, Some("Ian")));
        } else {
            assert_eq!((found.cred, found.identity), (0.0, None), "{match_names:?}");
            assert_eq!(
                found.reason,
                Some(format!(
                    "SourceCred at {host} has no identity with an alias for any of Ian's linked accounts (discord 999): its operator adds the alias to their identity in the ledger"
                ))
            );
        }
        connection.shutdown().await;
    }
    let refused = adapter.connection_config(None, &settings(Some("yes")), None).unwrap_err().to_string();
    assert!(refused.contains("match_names is `yes`: write match_names=true or match_names=false"), "{refused}");
    let setting = SPEC.setting("match_names").expect("match_names is a setting");
    assert_eq!(
        setting.help,
        "true to also match members by their Polity name to SourceCred identity names: only where admins choose members' names"
    );
}

#[tokio::test]
async fn a_discourse_account_is_not_matched_by_its_username() {
    let fake = FakeSourceCred::start().await;
    fake.set_accounts(&[CredAccount::user("Owi-Sixseven")
        .discourse("https://forum.nation3.org", "Owi_Sixseven")
        .cred(&[5.0])]);
    let (start, _incoming) = start();
    let connection = SourceCredAdapter.start(config(&fake.url()), start).await.unwrap();
    let cred = connection.cred().unwrap();
    // The same username on any forum would be hers: the host's account names no forum.
    let owi = cred.lookup(&member("owi", &[("discourse", "Owi_Sixseven")])).unwrap();
    assert_eq!((owi.cred, owi.identity), (0.0, None));
    assert!(
        owi.reason
            .unwrap()
            .contains("(discourse Owi_Sixseven is not matched: SourceCred's Discourse aliases name their forum")
    );
    // Her identity, linked as a SourceCred account, is.
    let owi = cred.lookup(&member("owi", &[("discourse", "Owi_Sixseven"), ("sourcecred", "owi-sixseven")])).unwrap();
    assert_eq!((owi.cred, owi.identity.as_deref()), (5.0, Some("Owi-Sixseven")));
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
    let found = connection.cred().unwrap().lookup(&member("m", &[("sourcecred", "metadreamer")])).unwrap();
    assert_eq!((found.cred, found.grain, found.identity.as_deref()), (1.5, 197.95, Some("METADREAMER")));
    connection.shutdown().await;
}
