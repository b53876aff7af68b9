//! Polity's own rate budget for Discord's REST API, consulted before each request [`Rest`]
//! sends and learned from each answer, whatever the base URL (Discord, a proxy, a fake).
//!
//! Discord's model ([rate limits]): every answer says how many requests its bucket has left
//! (`X-RateLimit-Remaining`) and when the bucket refills (`X-RateLimit-Reset-After`, seconds;
//! `X-RateLimit-Reset`, epoch seconds). `X-RateLimit-Bucket` names the bucket, which several
//! routes may share; a bucket's count is kept per top-level resource (a channel, a guild, a
//! webhook: the "major parameter"), so `/channels/1/...` and `/channels/2/...` never wait for
//! each other. A 429 says how long to stay away (`retry_after` in the body, `Retry-After`),
//! and whether the stop is global (`"global": true`, `X-RateLimit-Global`,
//! `X-RateLimit-Scope: global`). On top of the buckets, a bot may send 50 requests a second.
//!
//! The budget never waits: a request that Discord would refuse is refused here, before it is
//! sent, with [`PlatformError::RateLimited`] and the time left, so the dispatcher parks the
//! effect's lane and the task that performs it ends at once. Header values it cannot read are
//! ignored; a wait longer than [`MAX_WAIT`] is held as [`MAX_WAIT`] (the next request after it
//! learns the truth again).
//!
//! Time is [`tokio::time::Instant`], so tests move it with tokio's paused clock.
//!
//! [rate limits]: https://discord.com/developers/docs/topics/rate-limits
//! [`Rest`]: crate::rest::Rest
//! [`PlatformError::RateLimited`]: polity_governance::platform::PlatformError::RateLimited

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Discord's global limit: requests a bot may send in any one second.
pub const GLOBAL_PER_SECOND: usize = 50;
/// The longest wait the budget holds: a longer one is cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Past this many known buckets, those that have refilled are forgotten.
const PRUNE_ABOVE: usize = 1024;
/// The longest bucket name kept (Discord's are short hashes).
const MAX_BUCKET_NAME: usize = 128;

/// The segments whose following id is a major parameter (a top-level resource).
const MAJOR: [&str; 3] = ["channels", "guilds", "webhooks"];

/// One request's place in the budget: its route with the major parameter kept and every
/// other id replaced (`PATCH /channels/123`, `PUT /channels/123/messages/{id}/reactions/{emoji}/@me`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteKey {
    /// Method and path with the major parameter kept.
    route: String,
    /// Method and path with the major parameter replaced too: what `X-RateLimit-Bucket`
    /// names are learned for.
    template: String,
    /// The major parameter (`channels/123`), empty when the route has none.
    major: String,
}

impl RouteKey {
    /// The key of `method` on `path` (from `/api/v10/...` or without that prefix; a query is
    /// left out).
    pub fn new(method: &str, path: &str) -> Self {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.first() == Some(&"api") {
            segments.remove(0);
            if segments.first().is_some_and(|v| v.starts_with('v') && v[1..].chars().all(|c| c.is_ascii_digit())) {
                segments.remove(0);
            }
        }
        let mut route = method.to_ascii_uppercase();
        let mut template = route.clone();
        route.push(' ');
        template.push(' ');
        let mut major = String::new();
        for (i, seg) in segments.iter().enumerate() {
            let previous = i.checked_sub(1).and_then(|p| segments.get(p)).copied();
            let (kept, general) = if i == 1 && previous.is_some_and(|p| MAJOR.contains(&p)) {
                major = format!("{}/{seg}", segments[0]);
                (*seg, "{major}")
            } else if i == 2 && segments[0] == "webhooks" {
                // A webhook's token: part of its top-level resource, but a secret; the
                // webhook's id alone keys it (stricter, never looser).
                ("{token}", "{token}")
            } else if previous == Some("reactions") {
                ("{emoji}", "{emoji}")
            } else if seg.chars().all(|c| c.is_ascii_digit()) {
                ("{id}", "{id}")
            } else {
                (*seg, *seg)
            };
            route.push('/');
            route.push_str(kept);
            template.push('/');
            template.push_str(general);
        }
        Self { route, template, major }
    }

    /// Method and path with the major parameter kept.
    pub fn route(&self) -> &str {
        &self.route
    }
}

/// What is known of one bucket for one major parameter.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Requests left until `reset`; `None`: unknown.
    remaining: Option<u64>,
    /// When the bucket refills; `None`: unknown.
    reset: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Route template -> the bucket Discord named for it.
    names: HashMap<String, String>,
    /// (bucket name, or the template while none is known; major parameter) -> its state.
    buckets: HashMap<(String, String), Bucket>,
    /// Until when a global 429 stops every request.
    global_stop: Option<Instant>,
    /// When each of the requests of the last second was sent, oldest first.
    sent: VecDeque<Instant>,
}

impl Inner {
    fn bucket_id(&self, key: &RouteKey) -> (String, String) {
        let name = self.names.get(&key.template).cloned().unwrap_or_else(|| key.template.clone());
        (name, key.major.clone())
    }
}

/// The budget of one bot token, shared by every clone (every connection made from the same
/// [`Rest`](crate::rest::Rest)). Its lock is never held across an await.
#[derive(Clone, Debug, Default)]
pub struct Budget {
    inner: Arc<Mutex<Inner>>,
}

/// How long until `then`, if it is still ahead of `now`.
fn ahead(then: Instant, now: Instant) -> Option<Duration> {
    (then > now).then(|| then - now)
}

/// `now` plus `wait` cut to [`MAX_WAIT`].
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}

/// A header's value as text, if it is readable.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Seconds as a duration: finite and not negative, else nothing.
fn seconds(s: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(s).ok()
}

fn header_seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    header(headers, name).and_then(|v| v.parse::<f64>().ok()).and_then(seconds)
}

/// When the bucket refills, from `X-RateLimit-Reset-After`, else from `X-RateLimit-Reset`
/// against the wall clock.
fn reset_after(headers: &HeaderMap) -> Option<Duration> {
    header_seconds(headers, "x-ratelimit-reset-after").or_else(|| {
        let at = header(headers, "x-ratelimit-reset")?.parse::<f64>().ok()?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs_f64();
        seconds(at - now)
    })
}

/// A 429's wait: the body's `retry_after`, else the `Retry-After` header.
pub fn retry_after(headers: &HeaderMap, body: &Value) -> Option<Duration> {
    body.get("retry_after").and_then(Value::as_f64).and_then(seconds).or_else(|| header_seconds(headers, "retry-after"))
}

/// Whether a 429 stops every route, not one bucket.
fn is_global(headers: &HeaderMap, body: &Value) -> bool {
    body.get("global").and_then(Value::as_bool) == Some(true)
        || header(headers, "x-ratelimit-global").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || header(headers, "x-ratelimit-scope").is_some_and(|v| v.eq_ignore_ascii_case("global"))
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one request of `key`'s bucket and of the global budget, or answers how long
    /// until one is free (nothing taken then).
    ///
    /// # Errors
    /// The time left when the request would be refused by Discord: a global stop, the
    /// bucket spent until its reset, or 50 requests sent in the last second.
    pub fn take(&self, key: &RouteKey) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    fn take_at(&self, key: &RouteKey, now: Instant) -> Result<(), Duration> {
        let mut inner = self.lock();
        if let Some(wait) = inner.global_stop.and_then(|t| ahead(t, now)) {
            return Err(wait);
        }
        inner.global_stop = None;
        let id = inner.bucket_id(key);
        if let Some(bucket) = inner.buckets.get_mut(&id) {
            match bucket.reset.map(|t| ahead(t, now)) {
                Some(Some(wait)) if bucket.remaining == Some(0) => return Err(wait),
                Some(None) => *bucket = Bucket::default(),
                _ => {}
            }
        }
        while inner.sent.front().is_some_and(|t| ahead(*t + Duration::from_secs(1), now).is_none()) {
            inner.sent.pop_front();
        }
        if inner.sent.len() >= GLOBAL_PER_SECOND
            && let Some(wait) = inner.sent.front().and_then(|t| ahead(*t + Duration::from_secs(1), now))
        {
            return Err(wait);
        }
        inner.sent.push_back(now);
        if let Some(bucket) = inner.buckets.get_mut(&id)
            && let Some(n) = bucket.remaining.as_mut()
        {
            *n = n.saturating_sub(1);
        }
        Ok(())
    }

    /// Learns from Discord's answer to a request of `key`: its bucket's name, what is left
    /// and when it refills, and from a 429 (`status`) the stop it says, for the bucket or for
    /// every route.
    pub fn learn(&self, key: &RouteKey, status: u16, headers: &HeaderMap, body: &Value) {
        self.learn_at(key, status, headers, body, Instant::now());
    }

    fn learn_at(&self, key: &RouteKey, status: u16, headers: &HeaderMap, body: &Value, now: Instant) {
        let mut inner = self.lock();
        let named =
            header(headers, "x-ratelimit-bucket").filter(|n| n.len() <= MAX_BUCKET_NAME).map(|n| format!("bucket {n}"));
        if let Some(name) = named
            && inner.names.get(&key.template) != Some(&name)
        {
            // What was kept under the template (or an older name) moves to the new name.
            let old = inner.bucket_id(key);
            inner.names.insert(key.template.clone(), name);
            if let Some(state) = inner.buckets.remove(&old) {
                let new = inner.bucket_id(key);
                inner.buckets.entry(new).or_insert(state);
            }
        }
        let id = inner.bucket_id(key);
        let remaining = header(headers, "x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
        let reset = reset_after(headers).map(|d| after(now, d));
        let limited = status == 429;
        let global = limited && is_global(headers, body);
        let wait = if limited { retry_after(headers, body) } else { None };
        if global && let Some(wait) = wait {
            let until = after(now, wait);
            inner.global_stop = Some(inner.global_stop.map_or(until, |t| t.max(until)));
        }
        if remaining.is_some() || reset.is_some() || (limited && !global && wait.is_some()) {
            let bucket = inner.buckets.entry(id).or_default();
            if let Some(r) = remaining {
                bucket.remaining = Some(r);
            }
            if let Some(r) = reset {
                bucket.reset = Some(r);
            }
            if limited
                && !global
                && let Some(wait) = wait
            {
                bucket.remaining = Some(0);
                let until = after(now, wait);
                bucket.reset = Some(bucket.reset.map_or(until, |t| t.max(until)));
            }
        }
        if inner.buckets.len() > PRUNE_ABOVE {
            inner.buckets.retain(|_, b| b.reset.is_some_and(|t| t > now));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn routes_keep_their_major_parameter_and_generalize_the_other_ids() {
        let k = RouteKey::new("put", "/api/v10/channels/12/messages/34/reactions/%F0%9F%91%8D/@me");
        assert_eq!(k.route(), "PUT /channels/12/messages/{id}/reactions/{emoji}/@me");
        assert_eq!(k.template, "PUT /channels/{major}/messages/{id}/reactions/{emoji}/@me");
        assert_eq!(k.major, "channels/12");
        let k = RouteKey::new("DELETE", "/guilds/7/members/8/roles/9");
        assert_eq!((k.route(), k.major.as_str()), ("DELETE /guilds/7/members/{id}/roles/{id}", "guilds/7"));
        let k = RouteKey::new("POST", "/api/v10/users/@me/channels?x=1");
        assert_eq!((k.route(), k.major.as_str()), ("POST /users/@me/channels", ""));
        let k = RouteKey::new("PATCH", "/api/v10/webhooks/5/secret-token/messages/@original");
        assert_eq!(k.route(), "PATCH /webhooks/5/{token}/messages/@original");
        assert!(!format!("{k:?}").contains("secret"));
        assert_eq!(RouteKey::new("GET", "/channels/1/messages/2"), RouteKey::new("GET", "/channels/1/messages/3"));
        assert_ne!(RouteKey::new("GET", "/channels/1"), RouteKey::new("PATCH", "/channels/1"));
    }

    #[test]
    fn a_spent_bucket_refuses_until_its_reset_and_only_for_its_major_parameter() {
        let b = Budget::default();
        let t0 = Instant::now();
        let one = RouteKey::new("POST", "/channels/1/messages");
        let two = RouteKey::new("POST", "/channels/2/messages");
        b.take_at(&one, t0).unwrap();
        let h =
            headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "2.5"), ("x-ratelimit-bucket", "p")]);
        b.learn_at(&one, 200, &h, &Value::Null, t0);
        assert_eq!(b.take_at(&one, t0 + Duration::from_millis(500)), Err(Duration::from_secs(2)));
        b.take_at(&two, t0).unwrap();
        b.take_at(&one, t0 + Duration::from_millis(2500)).unwrap();
    }

    #[test]
    fn routes_that_discord_puts_in_one_bucket_share_it() {
        let b = Budget::default();
        let t0 = Instant::now();
        let edit = RouteKey::new("PATCH", "/channels/1/messages/5");
        let delete = RouteKey::new("DELETE", "/channels/1/messages/6");
        let shared = |left: &str| {
            headers(&[("x-ratelimit-remaining", left), ("x-ratelimit-reset-after", "4"), ("x-ratelimit-bucket", "m")])
        };
        b.learn_at(&delete, 204, &shared("3"), &Value::Null, t0);
        b.learn_at(&edit, 200, &shared("0"), &Value::Null, t0);
        assert_eq!(b.take_at(&delete, t0), Err(Duration::from_secs(4)));
        // Known remaining counts down locally until Discord says again.
        let other = RouteKey::new("DELETE", "/channels/9/messages/6");
        b.learn_at(&other, 204, &shared("1"), &Value::Null, t0);
        b.take_at(&other, t0).unwrap();
        assert_eq!(b.take_at(&other, t0), Err(Duration::from_secs(4)));
    }

    #[test]
    fn a_429_stops_its_bucket_for_retry_after_and_a_global_one_every_route() {
        let b = Budget::default();
        let t0 = Instant::now();
        let rename = RouteKey::new("PATCH", "/channels/1");
        let body = json!({ "message": "You are being rate limited.", "retry_after": 600.0, "global": false });
        b.learn_at(&rename, 429, &headers(&[("x-ratelimit-scope", "user")]), &body, t0);
        assert_eq!(b.take_at(&rename, t0), Err(Duration::from_secs(600)));
        b.take_at(&RouteKey::new("PATCH", "/channels/2"), t0).unwrap();

        let global = json!({ "message": "You are being rate limited.", "retry_after": 1.5, "global": true });
        b.learn_at(&rename, 429, &HeaderMap::new(), &global, t0);
        assert_eq!(b.take_at(&RouteKey::new("GET", "/users/@me"), t0), Err(Duration::from_millis(1500)));
        let by_header = Budget::default();
        let h = headers(&[("x-ratelimit-global", "true"), ("retry-after", "3")]);
        by_header.learn_at(&rename, 429, &h, &json!({}), t0);
        assert_eq!(by_header.take_at(&RouteKey::new("GET", "/users/@me"), t0), Err(Duration::from_secs(3)));
    }

    #[test]
    fn fifty_requests_a_second_then_a_wait_for_the_oldest_to_age() {
        let b = Budget::default();
        let t0 = Instant::now();
        for i in 0..GLOBAL_PER_SECOND {
            let key = RouteKey::new("GET", &format!("/channels/{i}"));
            b.take_at(&key, t0 + Duration::from_millis(i as u64)).unwrap();
        }
        let key = RouteKey::new("GET", "/channels/99");
        assert_eq!(b.take_at(&key, t0 + Duration::from_millis(100)), Err(Duration::from_millis(900)));
        b.take_at(&key, t0 + Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn garbage_is_ignored_and_huge_waits_are_cut() {
        let b = Budget::default();
        let t0 = Instant::now();
        let cases = [("0", "soon"), ("0", "-2"), ("0", "NaN"), ("0", "inf"), ("0", "1e300"), ("0", ""), ("-1", "2")];
        for (i, (remaining, reset)) in cases.into_iter().enumerate() {
            let key = RouteKey::new("POST", &format!("/channels/{i}/messages"));
            let h = headers(&[("x-ratelimit-remaining", remaining), ("x-ratelimit-reset-after", reset)]);
            b.learn_at(&key, 200, &h, &Value::Null, t0);
            b.take_at(&key, t0).unwrap();
        }
        let key = RouteKey::new("POST", "/channels/100/messages");
        let mut h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "1e9")]);
        h.insert("x-ratelimit-bucket", HeaderValue::from_bytes(&[0xff, 0xfe]).unwrap());
        b.learn_at(&key, 200, &h, &Value::Null, t0);
        assert_eq!(b.take_at(&key, t0), Err(MAX_WAIT));
        let limited = json!({ "retry_after": "soon", "global": "yes" });
        b.learn_at(&RouteKey::new("GET", "/users/@me"), 429, &headers(&[("retry-after", "x")]), &limited, t0);
        b.take_at(&RouteKey::new("GET", "/users/@me"), t0).unwrap();
    }
}
