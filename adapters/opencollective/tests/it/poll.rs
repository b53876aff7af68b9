//! The `expenses` poll: a baseline first, then what happened since, under the webhooks' keys.

use crate::connect;
use chrono::Duration;
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use polity_governance::platform::PlatformError;
use polity_opencollective::{EXPENSES, OcWebhooks, Trigger, dedup_key};
use polity_port::webhook::WebhookPlatform;
use polity_port::{Polled, Poller};
use polity_tests::opencollective::{
    ADMIN, ADMIN_TOKEN, COLLECTIVE, EPOCH, Failure, FakeOpenCollective, HOST_ADMIN_TOKEN, MEMBER, MEMBER_TOKEN,
    OTHER_COLLECTIVE,
};
use serde_json::json;
use std::sync::Arc;

async fn poller(fake: &FakeOpenCollective, token: &str) -> Arc<dyn Poller> {
    connect(fake, token).await.connection.poller().expect("a poller")
}

async fn poll(poller: &Arc<dyn Poller>, cursor: Option<&str>) -> Result<Polled, PlatformError> {
    poller.poll(EXPENSES, cursor.map(str::to_string)).await
}

fn keys(polled: &Polled) -> Vec<String> {
    polled.events.iter().map(|e| e.dedup_key.clone()).collect()
}

#[tokio::test]
async fn the_first_poll_sets_a_baseline_nothing_before_it_ever_comes_and_what_follows_does() {
    let fake = FakeOpenCollective::start().await;
    let old = fake.submit_expense(COLLECTIVE, MEMBER, "Old", 100, "USD");
    let newest_old = fake.approve(old, ADMIN);
    let connected_at = fake.activity(newest_old).created_at;
    let poller = poller(&fake, ADMIN_TOKEN).await;

    let first = poll(&poller, None).await.expect("polled");
    assert!(first.events.is_empty(), "connecting replays no history");
    let baseline = first.cursor.expect("a cursor");
    assert!(baseline.starts_with(&fake.activity(newest_old).created_at_text()), "{baseline}");

    // Polled again from the baseline (the next poll, or one after a restart) before anything
    // happened: the history before connecting does not come, and the cursor stays.
    let again = poll(&poller, Some(&baseline)).await.expect("polled");
    assert!(again.events.is_empty(), "history from before connecting: {:?}", keys(&again));
    assert_eq!(again.cursor, None);

    // Ten seconds later (within the overlap of the baseline): what happens after connecting
    // comes, what happened before does not; this collective's only.
    fake.advance(Duration::seconds(10));
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let created = fake.activities(id)[0].clone();
    let theirs = fake.submit_expense(OTHER_COLLECTIVE, MEMBER, "Not ours", 1, "USD");
    fake.approve(theirs, ADMIN);
    let second = poll(&poller, Some(&baseline)).await.expect("polled");
    let created_key = dedup_key(id, Trigger::Created, created.created_at);
    assert_eq!(keys(&second), vec![created_key.clone()]);
    let cursor = second.cursor.expect("a cursor");
    assert!(cursor.starts_with(&created.created_at_text()), "{cursor}");

    // A restart polls again from the stored cursor: what came already comes again (the host
    // drops it by its key), nothing is missed, nothing from before connecting comes back.
    let repeat = poll(&poller, Some(&cursor)).await.expect("polled");
    assert_eq!(keys(&repeat), vec![created_key.clone()]);
    assert_eq!(repeat.cursor, None);

    // Activities committed late, stamped before the last one read: the overlap brings the
    // one after connecting (a later activity of the old expense too), never one at the
    // baseline's millisecond or before.
    let now = fake.now();
    fake.change(|s| s.now = connected_at);
    fake.reject(old, ADMIN);
    fake.change(|s| s.now = connected_at - Duration::seconds(1));
    fake.set_status(old, "PAID", "collective.expense.paid", ADMIN);
    fake.change(|s| s.now = connected_at + Duration::seconds(5));
    let late = fake.pay(old, ADMIN);
    fake.change(|s| s.now = now);
    let late_key = dedup_key(old, Trigger::Paid, fake.activity(late).created_at);
    let third = poll(&poller, Some(&cursor)).await.expect("polled");
    assert_eq!(keys(&third), [late_key.clone(), created_key.clone()], "oldest first");
    assert_eq!(third.cursor, None);

    // Ten minutes on: the baseline is out of the overlap, the cursor a time again.
    fake.advance(Duration::minutes(10));
    let approved = fake.approve(id, ADMIN);
    let approval = fake.activity(approved);
    let fourth = poll(&poller, Some(&cursor)).await.expect("polled");
    assert_eq!(
        keys(&fourth),
        [late_key, created_key, dedup_key(id, Trigger::Approved, approval.created_at)],
        "from the cursor less the overlap (duplicates the host drops), then what is new"
    );
    assert_eq!(fourth.cursor.as_deref(), Some(approval.created_at_text().as_str()));

    // The webhook delivery of the same approval, confirmed, has the same key and content.
    let hooks = OcWebhooks;
    let body = fake.webhook_payload(approved).to_string();
    let claimed = hooks.verify_and_parse(&Default::default(), body.as_bytes(), b"t", chrono::Utc::now()).unwrap();
    let confirmed = hooks.confirm(crate::settings(&fake), Some(ADMIN_TOKEN.into()), claimed).await.unwrap();
    assert_eq!(confirmed[0].delivery_id, fourth.events[2].dedup_key);
    let (Inbound::Action { action: polled }, Inbound::Action { action: hooked }) =
        (&fourth.events[2].input, &confirmed[0].input)
    else {
        panic!("not actions")
    };
    assert_eq!(polled.data, hooked.data, "the same fields either way");
    assert_eq!(polled.initiator, hooked.initiator, "the payee is the same account either way");
    assert_eq!(polled.initiator, AccountRef::new("opencollective", MEMBER));
    assert_eq!(fourth.events[2].space.as_deref(), Some(COLLECTIVE));
    assert_eq!(fourth.events[2].from, Some((AccountRef::new("opencollective", MEMBER), "Bob Builder".into())));

    // Nothing new: nothing past the overlap, and the cursor stays.
    fake.advance(Duration::minutes(10));
    let fifth = poll(&poller, fourth.cursor.as_deref()).await.expect("polled");
    assert_eq!(fifth.cursor, None);
    let asked = fake.requests().into_iter().rfind(|r| r.operation == "PolityActivities").unwrap();
    assert_eq!(asked.variables["slug"], json!(COLLECTIVE));
    assert_eq!(
        asked.variables["from"],
        json!((approval.created_at - Duration::seconds(60)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );
    assert_eq!(keys(&fifth), [dedup_key(id, Trigger::Approved, approval.created_at)], "only repeats");
}

#[tokio::test]
async fn a_collective_without_activities_starts_from_the_epoch_and_deletions_are_read() {
    let fake = FakeOpenCollective::start().await;
    let poller = poller(&fake, HOST_ADMIN_TOKEN).await;
    let first = poll(&poller, None).await.expect("polled");
    assert!(first.cursor.as_deref().is_some_and(|c| c.starts_with("1970-01-01T00:00:00.000Z")), "{first:?}");
    assert_eq!(fake.now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true), EPOCH);
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Mistake", 300, "USD");
    let deleted = fake.delete_expense(id, MEMBER);
    let polled = poll(&poller, first.cursor.as_deref()).await.expect("polled");
    let deletion = fake.activity(deleted);
    assert_eq!(
        keys(&polled),
        [dedup_key(id, Trigger::Deleted, deletion.created_at)],
        "the creation of a deleted expense is told by its deletion"
    );
    let Inbound::Action { action } = &polled.events[0].input else { panic!("not an action") };
    assert_eq!(action.data["description"], json!("Mistake"));
    assert_eq!(action.data["status"], json!("DELETED"));
}

#[tokio::test]
async fn a_poll_fails_clearly() {
    let fake = FakeOpenCollective::start().await;
    let poller = poller(&fake, MEMBER_TOKEN).await;
    let Err(PlatformError::Permanent(why)) = poll(&poller, None).await else { panic!("polled") };
    assert!(why.contains("admins only"), "{why}");

    let poller = crate::poll::poller(&fake, ADMIN_TOKEN).await;
    fake.fail_next(Failure::RateLimited { retry_after: "2.5".into() });
    assert_eq!(
        poll(&poller, None).await.unwrap_err(),
        PlatformError::RateLimited { retry_after: Some(std::time::Duration::from_millis(2500)) }
    );
    fake.fail_next(Failure::ServerError);
    assert!(matches!(poll(&poller, None).await, Err(PlatformError::Transient(_))));
    fake.change(|s| s.tokens.retain(|t| t.token != ADMIN_TOKEN));
    assert_eq!(
        poll(&poller, None).await.unwrap_err(),
        PlatformError::Permanent("Open Collective refused the personal token".into())
    );
    assert!(matches!(poller.poll("members", None).await, Err(PlatformError::Permanent(_))));
}
