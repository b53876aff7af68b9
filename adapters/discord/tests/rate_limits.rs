#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Polity's own rate budget in front of every request the platform sends, with the real
//! serenity client against a fake Discord (a local base URL, where serenity's own rate
//! limiter is off) that answers with Discord's rate-limit headers, on tokio's paused clock.
//!
//! Every wait is checked right after the answer it was learned from (no network in between),
//! since the paused clock may jump while a request is on the wire.

#[allow(dead_code)]
mod fake;

use fake::{FakeDiscord, message_json};
use polity_discord::DiscordPlatform;
use polity_governance::action::ActionType;
use polity_governance::ids::Place;
use polity_governance::io::Effect;
use polity_governance::platform::{Performed, Platform, PlatformError, Request};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const CHANNEL: &str = "100000000000000001";
const OTHER: &str = "100000000000000002";
const MESSAGE: &str = "200000000000000001";

fn discord(fake: &FakeDiscord) -> DiscordPlatform {
    DiscordPlatform::new("discord", TOKEN, &fake.url()).unwrap()
}

async fn perform(d: &DiscordPlatform, effect: &Effect) -> Result<Performed, PlatformError> {
    d.perform(Request { key: 42, retried: false, effect, vote_messages: &[] }).await
}

fn rename(channel: &str, name: &str) -> Effect {
    let params = json!({ "channel": channel, "name": name });
    Effect::Call {
        proposal: None,
        name: ActionType::new("discord.rename_channel").unwrap(),
        params: params.as_object().unwrap().clone(),
    }
}

fn post(channel: &str) -> Effect {
    Effect::Post { place: Place::new("discord", channel), text: "hello".into() }
}

fn channel_path(channel: &str) -> String {
    format!("/api/v10/channels/{channel}")
}

fn messages_path(channel: &str) -> String {
    format!("/api/v10/channels/{channel}/messages")
}

fn channel_json(channel: &str) -> Value {
    json!({ "id": channel, "type": 0, "guild_id": "700000000000000001", "name": "news", "position": 0, "permission_overwrites": [] })
}

/// The wait a refusal gives.
fn wait_of(r: &Result<Performed, PlatformError>) -> Duration {
    match r {
        Err(PlatformError::RateLimited { retry_after: Some(wait) }) => *wait,
        other => panic!("not rate limited with a wait: {other:?}"),
    }
}

/// Discord's 429 body.
fn limited(retry_after: f64, global: bool) -> Value {
    json!({ "message": "You are being rate limited.", "retry_after": retry_after, "global": global })
}

#[tokio::test(start_paused = true)]
async fn after_a_429_the_route_is_refused_at_once_without_asking_discord_and_other_channels_go_through() {
    let fake = FakeDiscord::start().await;
    // A channel's renames: two per ten minutes, spent.
    let headers = [
        ("X-RateLimit-Limit", "2"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-After", "600.000"),
        ("X-RateLimit-Bucket", "c5b9cc61e1ff3cfc5e2c3c8f4e2f2d16"),
        ("X-RateLimit-Scope", "user"),
        ("Retry-After", "600"),
    ];
    fake.answer("PATCH", &channel_path(CHANNEL), 429, limited(600.0, false), &headers, false).await;
    let fresh = [("X-RateLimit-Limit", "2"), ("X-RateLimit-Remaining", "1"), ("X-RateLimit-Reset-After", "600.000")];
    fake.answer("PATCH", &channel_path(OTHER), 200, channel_json(OTHER), &fresh, false).await;
    let d = discord(&fake);

    let first = perform(&d, &rename(CHANNEL, "news")).await;
    assert_eq!(first, Err(PlatformError::RateLimited { retry_after: Some(Duration::from_secs(600)) }));
    let again = perform(&d, &rename(CHANNEL, "news")).await;
    let wait = wait_of(&again);
    assert!(wait > Duration::from_secs(599) && wait <= Duration::from_secs(600), "{wait:?}");
    // A clone of the connection shares the budget.
    let wait = wait_of(&perform(&d.clone(), &rename(CHANNEL, "other")).await);
    assert!(wait > Duration::from_secs(599), "{wait:?}");
    assert_eq!(fake.calls().await.len(), 1, "the refused renames were sent");

    // Another channel is another bucket.
    perform(&d, &rename(OTHER, "news")).await.unwrap();
    let calls = fake.calls().await;
    assert_eq!(
        calls,
        [("PATCH".to_string(), channel_path(CHANNEL)), ("PATCH".to_string(), channel_path(OTHER))],
        "{calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_bucket_that_discords_headers_say_is_spent_is_refused_locally_until_its_reset() {
    let fake = FakeDiscord::start().await;
    let headers = [
        ("X-RateLimit-Limit", "5"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-After", "2.000"),
        ("X-RateLimit-Bucket", "80c17d2f203122d936070c88c8d10f33"),
    ];
    fake.answer("POST", &messages_path(CHANNEL), 200, message_json(CHANNEL, MESSAGE, "hello"), &headers, false).await;
    fake.answer("POST", &messages_path(OTHER), 200, message_json(OTHER, MESSAGE, "hello"), &[], false).await;
    let d = discord(&fake);

    perform(&d, &post(CHANNEL)).await.unwrap();
    assert_eq!(wait_of(&perform(&d, &post(CHANNEL)).await), Duration::from_secs(2));
    tokio::time::advance(Duration::from_millis(1500)).await;
    assert_eq!(wait_of(&perform(&d, &post(CHANNEL)).await), Duration::from_millis(500));
    assert_eq!(fake.calls().await.len(), 1, "a refused post was sent");

    tokio::time::advance(Duration::from_millis(500)).await;
    perform(&d, &post(CHANNEL)).await.unwrap();
    // Spent again; the same bucket in another channel is counted apart.
    assert_eq!(wait_of(&perform(&d, &post(CHANNEL)).await), Duration::from_secs(2));
    perform(&d, &post(OTHER)).await.unwrap();
    let calls = fake.calls().await;
    let posts = [messages_path(CHANNEL), messages_path(CHANNEL), messages_path(OTHER)];
    assert_eq!(calls.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(), posts, "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn routes_discord_puts_in_one_bucket_share_what_is_left_of_it() {
    let fake = FakeDiscord::start().await;
    let bucket = |left: &'static str| {
        [
            ("X-RateLimit-Limit", "5"),
            ("X-RateLimit-Remaining", left),
            ("X-RateLimit-Reset-After", "5"),
            ("X-RateLimit-Bucket", "messages"),
        ]
    };
    let message = format!("{}/{MESSAGE}", messages_path(CHANNEL));
    fake.answer("DELETE", &message, 204, Value::Null, &bucket("3"), false).await;
    fake.answer("PATCH", &message, 200, message_json(CHANNEL, MESSAGE, "x"), &bucket("0"), false).await;
    let d = discord(&fake);
    let delete = Effect::Call {
        proposal: None,
        name: ActionType::new("discord.delete_message").unwrap(),
        params: json!({ "channel": CHANNEL, "message": MESSAGE }).as_object().unwrap().clone(),
    };
    let edit = Effect::Call {
        proposal: None,
        name: ActionType::new("discord.edit_message").unwrap(),
        params: json!({ "channel": CHANNEL, "message": MESSAGE, "text": "x" }).as_object().unwrap().clone(),
    };

    perform(&d, &delete).await.unwrap();
    perform(&d, &edit).await.unwrap();
    // The edit spent the bucket the delete is in too.
    assert_eq!(wait_of(&perform(&d, &delete).await), Duration::from_secs(5));
    assert_eq!(fake.calls().await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_global_429_holds_every_route_back_until_it_is_over() {
    let fake = FakeDiscord::start().await;
    let headers = [("X-RateLimit-Global", "true"), ("X-RateLimit-Scope", "global"), ("Retry-After", "2")];
    fake.answer("POST", &messages_path(CHANNEL), 429, limited(1.5, true), &headers, true).await;
    fake.answer("PATCH", &channel_path(OTHER), 200, channel_json(OTHER), &[], false).await;
    let d = discord(&fake);

    assert_eq!(wait_of(&perform(&d, &post(CHANNEL)).await), Duration::from_millis(1500));
    assert_eq!(wait_of(&perform(&d, &rename(OTHER, "news")).await), Duration::from_millis(1500));
    assert_eq!(fake.calls().await.len(), 1);
    tokio::time::advance(Duration::from_millis(1500)).await;
    perform(&d, &rename(OTHER, "news")).await.unwrap();
    assert_eq!(fake.calls().await.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_headers_that_cannot_be_read_are_ignored() {
    let fake = FakeDiscord::start().await;
    let garbage = [
        ("X-RateLimit-Limit", "five"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset-After", "soon"),
        ("X-RateLimit-Reset", "yesterday"),
        ("X-RateLimit-Bucket", "naïve"),
        ("X-RateLimit-Global", "maybe"),
    ];
    fake.answer("POST", &messages_path(CHANNEL), 200, message_json(CHANNEL, MESSAGE, "hello"), &garbage, false).await;
    let negative = [("X-RateLimit-Remaining", "-1"), ("X-RateLimit-Reset-After", "-5"), ("X-RateLimit-Reset", "NaN")];
    fake.answer("POST", &messages_path(OTHER), 200, message_json(OTHER, MESSAGE, "hello"), &negative, false).await;
    // A 429 whose headers are garbage but whose body says how long.
    let odd = [("Retry-After", "later"), ("X-RateLimit-Reset-After", "inf"), ("X-RateLimit-Scope", "🙃")];
    fake.answer("PATCH", &channel_path(CHANNEL), 429, limited(30.0, false), &odd, false).await;
    let d = discord(&fake);

    // Remaining 0 without a reset that can be read holds nothing back.
    for _ in 0..3 {
        perform(&d, &post(CHANNEL)).await.unwrap();
        perform(&d, &post(OTHER)).await.unwrap();
    }
    assert_eq!(fake.calls().await.len(), 6);

    assert_eq!(wait_of(&perform(&d, &rename(CHANNEL, "news")).await), Duration::from_secs(30));
    assert_eq!(wait_of(&perform(&d, &rename(CHANNEL, "news")).await), Duration::from_secs(30));
    assert_eq!(fake.calls().await.len(), 7, "the refused rename was sent");
    // "maybe" global and an unknown scope stop nothing else.
    perform(&d, &post(CHANNEL)).await.unwrap();
    assert_eq!(fake.calls().await.len(), 8);
}
