//! Polity's own budget for Slack's rate limits, per workspace token: a request Slack would
//! refuse is refused before it is sent, with the time left, and the dispatcher parks that
//! effect's lane (and nothing else) until then. Nothing ever sleeps inside the client.
//!
//! - Each method's tier, per minute (Slack's "Rate limits": Tier 1 1+, Tier 2 20+, Tier 3
//!   50+, Tier 4 100+), counted over a sliding minute. A method Polity does not know (a
//!   policy's passthrough call) is held to Tier 2.
//! - `chat.postMessage`: about one message per second per channel, short bursts allowed
//!   (three at most here, then one a second).
//! - A 429's `Retry-After` holds that method (and channel, for a per-channel limit) until it
//!   has passed, whatever the counts say.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

/// `chat.postMessage`'s per-channel burst, and how often a message may follow it.
const POST_BURST: usize = 3;
const POST_EVERY: Duration = Duration::from_secs(1);

/// How many calls of `method` Slack takes per minute per workspace.
pub fn per_minute(method: &str) -> usize {
    match method {
        "apps.connections.open" | "apps.uninstall" => 1,
        "conversations.rename"
        | "pins.add"
        | "pins.remove"
        | "users.list"
        | "conversations.list"
        | "conversations.create"
        | "conversations.archive"
        | "conversations.history" => 20,
        "chat.update"
        | "chat.delete"
        | "reactions.get"
        | "reactions.add"
        | "reactions.remove"
        | "conversations.info"
        | "conversations.open"
        | "conversations.invite"
        | "conversations.kick"
        | "conversations.join"
        | "conversations.members"
        | "team.info"
        | "chat.getPermalink" => 50,
        "users.info" | "chat.postEphemeral" | "views.open" | "views.update" | "auth.test" | "oauth.v2.access" => 100,
        // One a second per channel, and Slack allows several hundred a minute per workspace.
        "chat.postMessage" | "response_url" => 600,
        _ => 20,
    }
}

/// The budget of one token.
#[derive(Debug, Default)]
pub struct Budget {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// When each method's recent calls went out, within the last minute.
    calls: HashMap<String, VecDeque<Instant>>,
    /// When each channel's recent `chat.postMessage`s went out.
    posts: HashMap<String, VecDeque<Instant>>,
    /// A method (`method` or `method channel`) held by a 429 until then.
    held: HashMap<String, Instant>,
}

fn key(method: &str, channel: Option<&str>) -> String {
    match channel {
        Some(c) if method == "chat.postMessage" => format!("{method} {c}"),
        _ => method.to_string(),
    }
}

impl Budget {
    /// Counts one call of `method` (in `channel`) at `now`, or says how long until it may go.
    ///
    /// # Errors
    /// The time left before Slack would take it.
    pub fn take(&self, method: &str, channel: Option<&str>, now: Instant) -> Result<(), Duration> {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for held in [key(method, channel), method.to_string()] {
            if let Some(until) = inner.held.get(&held).copied() {
                if until > now {
                    return Err(until - now);
                }
                inner.held.remove(&held);
            }
        }
        let limit = per_minute(method);
        let calls = inner.calls.entry(method.to_string()).or_default();
        while calls.front().is_some_and(|t| now.duration_since(*t) >= MINUTE) {
            calls.pop_front();
        }
        if calls.len() >= limit
            && let Some(oldest) = calls.front()
        {
            return Err(MINUTE - now.duration_since(*oldest));
        }
        if method == "chat.postMessage"
            && let Some(channel) = channel
        {
            let posts = inner.posts.entry(channel.to_string()).or_default();
            // The burst refills one message a second.
            while posts
                .front()
                .is_some_and(|t| now.duration_since(*t) >= POST_EVERY * u32::try_from(POST_BURST).unwrap_or(3))
            {
                posts.pop_front();
            }
            if let Some(last) = posts.back()
                && posts.len() >= POST_BURST
                && now.duration_since(*last) < POST_EVERY
            {
                return Err(POST_EVERY - now.duration_since(*last));
            }
            posts.push_back(now);
            while posts.len() > POST_BURST {
                posts.pop_front();
            }
        }
        inner.calls.entry(method.to_string()).or_default().push_back(now);
        Ok(())
    }

    /// Holds `method` (in `channel`) until `until`: Slack answered 429.
    pub fn hold(&self, method: &str, channel: Option<&str>, until: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = inner.held.entry(key(method, channel)).or_insert(until);
        *held = (*held).max(until).min(Instant::now() + Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_channel_takes_a_burst_of_posts_then_one_a_second() {
        let budget = Budget::default();
        let now = Instant::now();
        for _ in 0..POST_BURST {
            assert_eq!(budget.take("chat.postMessage", Some("C1"), now), Ok(()));
        }
        assert_eq!(budget.take("chat.postMessage", Some("C1"), now), Err(POST_EVERY));
        // Another channel is not held back.
        assert_eq!(budget.take("chat.postMessage", Some("C2"), now), Ok(()));
        assert_eq!(budget.take("chat.postMessage", Some("C1"), now + POST_EVERY), Ok(()));
        assert!(budget.take("chat.postMessage", Some("C1"), now + POST_EVERY).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tier_counts_a_sliding_minute() {
        let budget = Budget::default();
        let now = Instant::now();
        for i in 0..20 {
            assert_eq!(budget.take("pins.add", None, now + Duration::from_secs(i)), Ok(()), "call {i}");
        }
        let late = now + Duration::from_secs(30);
        assert_eq!(budget.take("pins.add", None, late), Err(Duration::from_secs(30)));
        assert_eq!(budget.take("chat.update", None, late), Ok(()));
        assert_eq!(budget.take("pins.add", None, now + MINUTE), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_its_method_until_retry_after() {
        let budget = Budget::default();
        let now = Instant::now();
        budget.hold("chat.update", None, now + Duration::from_secs(30));
        assert_eq!(budget.take("chat.update", None, now + Duration::from_secs(10)), Err(Duration::from_secs(20)));
        assert_eq!(budget.take("reactions.add", None, now), Ok(()));
        assert_eq!(budget.take("chat.update", None, now + Duration::from_secs(30)), Ok(()));
        budget.hold("chat.postMessage", Some("C1"), now + Duration::from_secs(5));
        assert!(budget.take("chat.postMessage", Some("C1"), now).is_err());
        assert_eq!(budget.take("chat.postMessage", Some("C2"), now), Ok(()));
    }
}
