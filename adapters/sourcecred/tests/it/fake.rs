//! The fake instance itself: what it serves is SourceCred's shape, as a static host serves it.

use polity_tests::sourcecred::{CredAccount, FIRST_DEPLOY, FakeSourceCred, GRAIN, http_date, id_of};
use serde_json::{Value, json};

#[test]
fn dates_and_ids() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(FIRST_DEPLOY), "Sun, 10 Jan 2021 00:00:00 GMT");
    assert_eq!(http_date(951_827_696), "Tue, 29 Feb 2000 12:34:56 GMT");
    assert_eq!(id_of("Ian").len(), 22);
    assert_eq!(id_of("Ian"), id_of("Ian"));
    assert_ne!(id_of("Ian"), id_of("ian"));
}

#[tokio::test]
async fn it_serves_sourcecreds_shape_with_validators() {
    let fake = FakeSourceCred::start().await;
    let ian = CredAccount::user("Ian").discord("124564013970358272").cred(&[0.5, 1.25, 2.0]).balance(25 * GRAIN / 2);
    fake.set_accounts(&[ian, CredAccount::bot("sourcecred-bot").cred(&[0.25])]);
    let client = reqwest::Client::new();
    let url = format!("{}/output/accounts.json", fake.url_under("cred"));
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        (etag.clone(), response.headers()["last-modified"].to_str().unwrap()),
        (fake.etag(), "Sun, 10 Jan 2021 01:00:00 GMT")
    );
    let text = response.text().await.unwrap();
    assert!(text.starts_with(r#"{"accounts":[{"account":{"active":true,"allocationHistory":[],"balance":"12500000000000000000","identity":{"address":"N\u0000sourcecred\u0000core\u0000IDENTITY\u0000"#), "{text}");
    assert!(text.contains(r#""aliases":[{"address":"N\u0000sourcecred\u0000discord\u0000MEMBER\u0000user\u0000124564013970358272\u0000","description":"discord/Ian#0001"}]"#), "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["accounts"][1]["cred"], json!([0.25, 0.0, 0.0]));
    assert_eq!(doc["accounts"][0]["totalCred"], json!(3.75));
    assert_eq!(doc["intervals"][2], json!({"endTimeMs": 1_610_236_800_000_u64, "startTimeMs": 1_609_632_000_000_u64}));
    assert_eq!(doc["unclaimedAliases"], json!([]));

    let again = client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let other = client.get(format!("{}/index.html", fake.url())).send().await.unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!((fake.request_count(), fake.not_modified()), (3, 1));
}
