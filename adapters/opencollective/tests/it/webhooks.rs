//! Deliveries: what they claim (`verify_and_parse`), and what the API confirms (`confirm`).

use crate::settings;
use chrono::Utc;
use http::HeaderMap;
use polity_governance::action::{ActionStatus, ActionType};
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use polity_opencollective::{OcWebhooks, Trigger, dedup_key};
use polity_port::webhook::{HookEvent, WebhookError, WebhookPlatform};
use polity_tests::opencollective::{
    ADMIN, ADMIN_TOKEN, COLLECTIVE, Failure, FakeOpenCollective, MEMBER, OTHER_ADMIN, OTHER_COLLECTIVE,
};
use serde_json::{Value, json};

fn parse(body: &Value) -> Result<Vec<HookEvent>, WebhookError> {
    OcWebhooks.verify_and_parse(&HeaderMap::new(), body.to_string().as_bytes(), b"url-token", Utc::now())
}

fn parse_one(body: &Value) -> HookEvent {
    let mut events = parse(body).expect("a delivery Polity uses");
    assert_eq!(events.len(), 1);
    events.remove(0)
}

async fn confirm(fake: &FakeOpenCollective, events: Vec<HookEvent>) -> Result<Vec<HookEvent>, WebhookError> {
    OcWebhooks.confirm(settings(fake), Some(ADMIN_TOKEN.into()), events).await
}

fn action(event: &HookEvent) -> &polity_governance::action::Action {
    let Inbound::Action { action } = &event.input else { panic!("not an action: {:?}", event.input) };
    action
}

/// The key a poll gives the same activity.
fn key_of(fake: &FakeOpenCollective, activity: i64, trigger: Trigger) -> String {
    let a = fake.activity(activity);
    dedup_key(a.expense, trigger, a.created_at)
}

#[tokio::test]
async fn each_expense_activity_is_a_claimed_trigger_event() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let created = fake.activities(id)[0].id;
    let approved = fake.approve(id, ADMIN);
    let paid = fake.pay(id, ADMIN);
    let other = fake.submit_expense(COLLECTIVE, MEMBER, "Hosting", 1_200, "EUR");
    let rejected = fake.reject(other, ADMIN);
    let deleted = fake.delete_expense(other, MEMBER);
    let cases = [
        (created, Trigger::Created, "PENDING"),
        (approved, Trigger::Approved, "APPROVED"),
        (paid, Trigger::Paid, "PAID"),
        (rejected, Trigger::Rejected, "REJECTED"),
        (deleted, Trigger::Deleted, "DELETED"),
    ];
    for (activity, trigger, status) in cases {
        let event = parse_one(&fake.webhook_payload(activity));
        assert_eq!(event.delivery_id, key_of(&fake, activity, trigger));
        let a = action(&event);
        assert_eq!(a.kind, ActionType::new(&trigger.action_name()).unwrap());
        assert_eq!(a.status, ActionStatus::Event, "a trigger, not a governed action");
        assert_eq!(a.initiator, AccountRef::new("opencollective", MEMBER));
        assert_eq!(a.data["status"], json!(status));
        assert_eq!(event.from, Some((AccountRef::new("opencollective", MEMBER), "Bob Builder".into())));
    }
    let first = parse_one(&fake.webhook_payload(created));
    let a = action(&first);
    assert_eq!(a.source_id, id.to_string());
    for (field, value) in [
        ("id", json!(id)),
        ("expense_id", json!(id)),
        ("id_v2", json!(fake.expense(id).id_v2)),
        ("amount", json!(60_000)),
        ("currency", json!("USD")),
        ("description", json!("Stickers")),
        ("submitter", json!(MEMBER)),
        ("submitter_name", json!("Bob Builder")),
        ("collective", json!(COLLECTIVE)),
        ("link", json!(format!("https://opencollective.com/tidepool/expenses/{id}"))),
    ] {
        assert_eq!(a.data[field], value, "{field}");
    }
}

#[tokio::test]
async fn other_activities_are_unsupported_and_unreadable_ones_malformed() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let mut updated = fake.webhook_payload(fake.activities(id)[0].id);
    updated["type"] = json!("collective.expense.updated");
    assert_eq!(parse(&updated), Err(WebhookError::Unsupported("collective.expense.updated".into())));
    let member = json!({"createdAt":"2022-10-19T15:29:44.538Z","id":4076674,"type":"collective.member.created","CollectiveId":528032,"data":{}});
    assert!(matches!(parse(&member), Err(WebhookError::Unsupported(_))));

    let good = fake.webhook_payload(fake.activities(id)[0].id);
    let mut no_type = good.clone();
    no_type.as_object_mut().unwrap().remove("type");
    let mut bad_time = good.clone();
    bad_time["createdAt"] = json!("yesterday");
    let mut no_number = good.clone();
    no_number["data"]["expense"].as_object_mut().unwrap().remove("id");
    let mut no_data = good;
    no_data.as_object_mut().unwrap().remove("data");
    for body in [no_type, bad_time, no_number, no_data] {
        assert!(matches!(parse(&body), Err(WebhookError::Malformed(_))), "{body}");
    }
    let not_json = OcWebhooks.verify_and_parse(&HeaderMap::new(), b"{not json", b"t", Utc::now());
    assert!(matches!(not_json, Err(WebhookError::Malformed(_))));
}

#[tokio::test]
async fn confirming_rebuilds_the_event_from_the_api() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let approved = fake.approve(id, ADMIN);
    let mut lying = fake.webhook_payload(approved);
    lying["data"]["expense"]["amount"] = json!(1);
    lying["data"]["expense"]["description"] = json!("Nothing to see");
    lying["data"]["fromCollective"]["slug"] = json!("mallory");
    let claimed = parse_one(&lying);
    assert_eq!(action(&claimed).data["amount"], json!(1), "the claim as it came");

    let confirmed = confirm(&fake, vec![claimed.clone()]).await.expect("confirmed");
    assert_eq!(confirmed.len(), 1);
    let event = &confirmed[0];
    assert_eq!(event.delivery_id, claimed.delivery_id, "the same key");
    let a = action(event);
    assert_eq!(a.data["amount"], json!(60_000), "the API wins");
    assert_eq!(a.data["description"], json!("Stickers"));
    assert_eq!(a.data["status"], json!("APPROVED"));
    assert_eq!(a.initiator, AccountRef::new("opencollective", MEMBER));
    assert_eq!(event.from, Some((AccountRef::new("opencollective", MEMBER), "Bob Builder".into())));
    let asked: Vec<String> = fake.requests().into_iter().map(|r| r.operation).collect();
    assert_eq!(asked, ["PolityExpense"]);
    assert_eq!(fake.requests()[0].variables, json!({"ref": {"legacyId": id}}));
}

#[tokio::test]
async fn claims_the_api_contradicts_are_left_out() {
    let fake = FakeOpenCollective::start().await;
    // Approved, says the delivery; the expense is still PENDING, with no approval.
    let pending = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let mut approved_claim = fake.webhook_payload(fake.activities(pending)[0].id);
    approved_claim["type"] = json!("collective.expense.approved");
    // Another collective's expense, delivered to this connection.
    let theirs = fake.submit_expense(OTHER_COLLECTIVE, MEMBER, "Driftwood's", 500, "USD");
    let other_claim = fake.webhook_payload(fake.activities(theirs)[0].id);
    // An expense that does not exist.
    let mut ghost = fake.webhook_payload(fake.activities(pending)[0].id);
    ghost["data"]["expense"]["id"] = json!(999_999);
    // Deleted, says the delivery; it still exists.
    let mut not_deleted = fake.webhook_payload(fake.activities(pending)[0].id);
    not_deleted["type"] = json!("collective.expense.deleted");
    // And one true delivery among them.
    let gone = fake.submit_expense(COLLECTIVE, MEMBER, "Old invoice", 2_500, "USD");
    let deleted = fake.delete_expense(gone, ADMIN);
    let true_claim = fake.webhook_payload(deleted);

    let claims: Vec<HookEvent> =
        [approved_claim, other_claim, ghost, not_deleted, true_claim].iter().map(parse_one).collect();
    let confirmed = confirm(&fake, claims).await.expect("the API answered");
    assert_eq!(confirmed.len(), 1, "{confirmed:?}");
    let event = &confirmed[0];
    assert_eq!(event.delivery_id, key_of(&fake, deleted, Trigger::Deleted));
    let a = action(event);
    assert_eq!(a.kind.as_str(), "opencollective.expense_deleted");
    assert_eq!((a.data["id"].clone(), a.data["status"].clone()), (json!(gone), json!("DELETED")));
    assert_eq!(a.data["amount"], json!(2_500), "from the deletion's activity");
    assert_eq!(a.data["description"], json!("Old invoice"));
}

#[tokio::test]
async fn a_deletion_of_another_collectives_expense_is_left_out() {
    let fake = FakeOpenCollective::start().await;
    let theirs = fake.submit_expense(OTHER_COLLECTIVE, MEMBER, "Driftwood's", 500, "USD");
    let deleted = fake.delete_expense(theirs, OTHER_ADMIN);
    let claim = parse_one(&fake.webhook_payload(deleted));
    assert_eq!(confirm(&fake, vec![claim]).await, Ok(vec![]));
}

#[tokio::test]
async fn a_delivery_the_api_cannot_confirm_now_is_unconfirmed() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Stickers", 60_000, "USD");
    let claim = parse_one(&fake.webhook_payload(fake.activities(id)[0].id));
    fake.set_down(Some(Failure::ServerError));
    let Err(WebhookError::Unconfirmed(why)) = confirm(&fake, vec![claim.clone()]).await else { panic!("confirmed") };
    assert!(why.contains("HTTP 500"), "{why}");
    fake.set_down(Some(Failure::RateLimited { retry_after: "3".into() }));
    assert!(matches!(confirm(&fake, vec![claim.clone()]).await, Err(WebhookError::Unconfirmed(_))));
    fake.set_down(None);
    let refused = OcWebhooks.confirm(settings(&fake), Some("tok-leaked-4242".into()), vec![claim.clone()]).await;
    let Err(WebhookError::Unconfirmed(why)) = refused else { panic!("confirmed") };
    assert!(!why.contains("tok-leaked-4242"), "{why}");
    assert_eq!(confirm(&fake, vec![claim]).await.map(|e| e.len()), Ok(1));
}

#[tokio::test]
async fn a_deletion_is_confirmed_whether_the_api_answers_its_expense_with_null_or_not_found() {
    let fake = FakeOpenCollective::start().await;
    let id = fake.submit_expense(COLLECTIVE, MEMBER, "Mistake", 300, "USD");
    let deleted = fake.delete_expense(id, MEMBER);
    let claim = parse_one(&fake.webhook_payload(deleted));
    let mut ghost = fake.webhook_payload(deleted);
    ghost["data"]["expense"]["id"] = json!(424_242);
    let ghost = parse_one(&ghost);
    let approved_claim = {
        let mut body = fake.webhook_payload(deleted);
        body["type"] = json!("collective.expense.approved");
        parse_one(&body)
    };
    for not_found in [false, true] {
        fake.missing_expense_not_found(not_found);
        let confirmed = confirm(&fake, vec![claim.clone()]).await.expect("confirmed");
        assert_eq!(confirmed.len(), 1, "NotFound: {not_found}");
        assert_eq!(confirmed[0].delivery_id, key_of(&fake, deleted, Trigger::Deleted));
        let a = action(&confirmed[0]);
        assert_eq!(a.kind.as_str(), "opencollective.expense_deleted");
        assert_eq!((&a.data["status"], &a.data["description"]), (&json!("DELETED"), &json!("Mistake")));
        // The deletion of an expense that never was, and an approval of the deleted one:
        // contradicted, so left out (not unconfirmed).
        assert_eq!(confirm(&fake, vec![ghost.clone(), approved_claim.clone()]).await, Ok(vec![]), "{not_found}");
    }
}
