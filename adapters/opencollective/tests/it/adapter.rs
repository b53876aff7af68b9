//! Starting a connection and `/integration test`.

use crate::{CONNECTION, config, connect, settings, start_with};
use polity_governance::ids::AccountRef;
use polity_governance::platform::ActionKind;
use polity_opencollective::{EXPENSES, OpenCollectiveAdapter};
use polity_port::{Adapter, AdapterError, Incoming, PollSpec, SpaceInfo, Start, TestFailure};
use polity_tests::opencollective::{
    ADMIN_TOKEN, COLLECTIVE, FakeOpenCollective, HOST_ADMIN_TOKEN, MEMBER_TOKEN, OTHER_ADMIN_TOKEN,
};
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;

#[tokio::test]
async fn a_connection_announces_its_collective_owned_by_the_tokens_owner() {
    let fake = FakeOpenCollective::start().await;
    let mut connected = connect(&fake, ADMIN_TOKEN).await;
    let Some(Incoming::Space(space)) = connected.incoming.recv().await else { panic!("no space") };
    assert_eq!(
        space,
        SpaceInfo {
            space: COLLECTIVE.into(),
            name: "Tide Pool".into(),
            owner: (AccountRef::new(CONNECTION, "alice"), "Alice Admin".into()),
            members: vec![],
        }
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].operation.as_str(), &sent[0].variables), ("PolityStart", &json!({"slug": COLLECTIVE})));
    assert_eq!(sent[0].token.as_deref(), Some(ADMIN_TOKEN));
    let poller = connected.connection.poller().expect("a poller");
    assert_eq!(poller.polls(), vec![PollSpec { name: EXPENSES, every: Duration::from_secs(300) }]);
    assert_eq!(connected.platform().name(), CONNECTION);
    // It runs until it is shut down.
    let stopped = tokio::time::timeout(Duration::from_millis(20), connected.connection.stopped()).await;
    assert!(stopped.is_err(), "a connection does not stop by itself");
    connected.connection.shutdown().await;
}

#[tokio::test]
async fn a_refused_token_or_an_unknown_collective_stops_the_start() {
    let fake = FakeOpenCollective::start().await;
    let (events, _incoming) = mpsc::channel(4);
    let start = |config| OpenCollectiveAdapter.start(config, Start::new(CONNECTION, events.clone()));
    let Err(refused) = start(config(&fake, "tok-stolen-1234")).await else { panic!("started") };
    assert_eq!(refused, AdapterError::Start("Open Collective refused the personal token".into()));
    let mut unknown = config(&fake, ADMIN_TOKEN);
    unknown["collective"] = json!("no-such-collective");
    let Err(AdapterError::Start(why)) = start(unknown).await else { panic!("started") };
    assert!(why.contains("no collective `no-such-collective`"), "{why}");
}

#[tokio::test]
async fn the_test_names_the_admin_behind_the_token() {
    let fake = FakeOpenCollective::start().await;
    let works = OpenCollectiveAdapter.test(config(&fake, ADMIN_TOKEN), settings(&fake)).await;
    assert_eq!(works, Ok("the token belongs to Alice Admin (@alice), an admin of Tide Pool".into()));
    let host = OpenCollectiveAdapter.test(config(&fake, HOST_ADMIN_TOKEN), settings(&fake)).await;
    assert_eq!(
        host,
        Ok("the token belongs to Hana Host (@hana), an admin of Commons Host, which hosts Tide Pool".into())
    );
}

#[tokio::test]
async fn the_test_refuses_a_token_of_someone_who_is_no_admin() {
    let fake = FakeOpenCollective::start().await;
    for token in [MEMBER_TOKEN, OTHER_ADMIN_TOKEN] {
        let Err(TestFailure::MissingPermission(why)) =
            OpenCollectiveAdapter.test(config(&fake, token), settings(&fake)).await
        else {
            panic!("{token} passed")
        };
        assert!(why.contains("is not an admin of tidepool: an admin's token can approve and reject expenses"), "{why}");
    }
}

#[tokio::test]
async fn the_test_says_a_bad_token_without_repeating_it() {
    let fake = FakeOpenCollective::start().await;
    let failed = OpenCollectiveAdapter.test(config(&fake, "tok-revoked-9999"), settings(&fake)).await;
    assert_eq!(failed, Err(TestFailure::BadCredentials("Open Collective refused the personal token".into())));
}

#[tokio::test]
async fn the_test_says_when_nothing_answers() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}/graphql/v2", listener.local_addr().unwrap());
    drop(listener);
    let config = json!({ "collective": COLLECTIVE, "token": ADMIN_TOKEN, "api": gone });
    let Err(TestFailure::Unreachable(why)) = OpenCollectiveAdapter.test(config.clone(), Default::default()).await
    else {
        panic!("reached")
    };
    assert!(why.contains("no answer"), "{why}");
    let (events, _incoming) = mpsc::channel(4);
    let started = OpenCollectiveAdapter.start(config, Start::new(CONNECTION, events)).await;
    let Err(AdapterError::Start(why)) = started else { panic!("started") };
    assert!(why.contains("no answer"), "{why}");
}

#[tokio::test]
async fn the_adapter_declares_its_webhooks_and_actions() {
    let adapter = OpenCollectiveAdapter;
    let hooks = adapter.webhooks().expect("webhooks");
    assert_eq!(hooks.name(), "opencollective");
    assert!(hooks.secret_in_url(), "Open Collective signs nothing");
    let actions: Vec<(String, ActionKind)> = adapter.actions().into_iter().map(|a| (a.name, a.kind)).collect();
    let expected = [
        ("opencollective.process_expense", ActionKind::Action),
        ("opencollective.comment", ActionKind::Action),
        ("opencollective.expense_created", ActionKind::Trigger),
        ("opencollective.expense_approved", ActionKind::Trigger),
        ("opencollective.expense_rejected", ActionKind::Trigger),
        ("opencollective.expense_paid", ActionKind::Trigger),
        ("opencollective.expense_deleted", ActionKind::Trigger),
    ];
    assert_eq!(actions, expected.map(|(n, k)| (n.to_string(), k)).to_vec());
    let spec = adapter.spec();
    assert_eq!((spec.name, spec.space, spec.space_setting()), ("opencollective", "collective", None));
    assert!(adapter.check(&json!({"collective": COLLECTIVE, "token": "t", "unknown": 1})).is_err());
    let no_secret = adapter.connection_config(None, &crate::object(json!({"collective": COLLECTIVE})), None);
    assert!(matches!(no_secret, Err(AdapterError::Config(why)) if why.contains("personal token")));
}

#[tokio::test]
async fn a_started_connection_is_the_configured_one() {
    let fake = FakeOpenCollective::start().await;
    let mut with_page = config(&fake, ADMIN_TOKEN);
    with_page["poll_secs"] = json!(60);
    let connected = start_with(with_page).await;
    let polls = connected.connection.poller().expect("a poller").polls();
    assert_eq!(polls[0].every, Duration::from_secs(60));
}
