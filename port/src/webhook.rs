//! Webhook platforms: the pure check and parse of one delivery, and the signature helpers
//! every adapter uses. The host's route (`POST /hooks/{platform}/{connection}`) calls
//! [`WebhookPlatform::verify_and_parse`] with the raw body before anything else touches it.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use polity_governance::ids::AccountRef;
use polity_governance::io::Inbound;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// One governance input from a webhook delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct HookEvent {
    /// The platform's id of the delivery (GitHub's `X-GitHub-Delivery`, Slack's `event_id`):
    /// the inbox's dedup key. A delivery of several events gets `ID#0`, `ID#1`, ... in the
    /// order the adapter returned them.
    pub delivery_id: String,
    /// The platform-neutral input.
    pub input: Inbound,
    /// The account behind the input and its display name (a new account becomes a member).
    pub from: Option<(AccountRef, String)>,
}

/// Why a delivery is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature is missing, malformed, stale or does not match: 401.
    #[error("bad or missing signature: {0}")]
    BadSignature(String),
    /// An event Polity does not use (a GitHub `ping`, a star): 202, nothing stored.
    #[error("an event Polity does not use: {0}")]
    Unsupported(String),
    /// Signed, but not what the platform sends: 400.
    #[error("a delivery Polity cannot read: {0}")]
    Malformed(String),
    /// What it claims could not be confirmed with the platform now (it did not answer): 503,
    /// so the platform may deliver it again (and a poll reads it anyway).
    #[error("the platform could not confirm the delivery: {0}")]
    Unconfirmed(String),
}

/// A platform that delivers by webhook.
pub trait WebhookPlatform: Send + Sync {
    /// The platform's name, as in `/hooks/{platform}/...` and its connections (`github`).
    fn name(&self) -> &str;

    /// Checks a delivery's signature against `secret` (the connection's secret) on the raw
    /// `body`, in constant time ([`constant_time_eq`], [`hmac_sha256_matches`]), before
    /// anything is parsed; then reads the events Polity uses. `now` is for signatures that
    /// carry a time (a stale one is a replay).
    ///
    /// # Errors
    /// [`WebhookError::BadSignature`] before anything is parsed, then
    /// [`WebhookError::Unsupported`] or [`WebhookError::Malformed`].
    fn verify_and_parse(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Vec<HookEvent>, WebhookError>;

    /// Whether the platform does not sign its deliveries, so the connection's webhook secret
    /// is in the URL it delivers to (`?token=SECRET`, Open Collective): the route compares it
    /// in constant time before [`WebhookPlatform::verify_and_parse`] is called (with the same
    /// secret).
    fn secret_in_url(&self) -> bool {
        false
    }

    /// Confirms what verified deliveries claim with the platform itself, before anything is
    /// recorded: a platform whose bodies cannot be trusted (unsigned) answers with the
    /// events as the platform's API says they are, and leaves out what it denies. `settings`
    /// and `credential` are the connection's (its stored settings, its typed token). By
    /// default the events stand as parsed.
    ///
    /// # Errors
    /// [`WebhookError::Unconfirmed`] when the platform did not answer.
    fn confirm(
        &self,
        settings: serde_json::Map<String, serde_json::Value>,
        credential: Option<String>,
        events: Vec<HookEvent>,
    ) -> polity_governance::platform::BoxFuture<'static, Result<Vec<HookEvent>, WebhookError>> {
        let _ = (settings, credential);
        Box::pin(async move { Ok(events) })
    }
}

/// A header's value as text, trimmed; `None` when it is missing, empty or not text.
pub fn header_text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// 32 bytes from 64 hex digits (an HMAC-SHA256 as signature headers write it).
pub fn decode_sha256_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let digit = |b: u8| (b as char).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

/// Checks a signature header written `{prefix}{64 hex digits}` (GitHub's and Discourse's
/// `sha256=...`) against the HMAC-SHA256 of `body` under `secret`, in constant time; `header`
/// is the header's raw value, if it came.
///
/// # Errors
/// [`WebhookError::BadSignature`] saying what is wrong (never the secret).
pub fn check_prefixed_sha256(
    header: Option<&[u8]>,
    prefix: &str,
    secret: &[u8],
    body: &[u8],
) -> Result<(), WebhookError> {
    let value = header.ok_or_else(|| WebhookError::BadSignature("no signature header".into()))?;
    let hex = value
        .strip_prefix(prefix.as_bytes())
        .ok_or_else(|| WebhookError::BadSignature(format!("the signature is not {prefix}HEX")))?;
    let digest = decode_sha256_hex(hex)
        .ok_or_else(|| WebhookError::BadSignature("the signature is not 64 hex digits".into()))?;
    if hmac_sha256_matches(secret, &[body], &digest) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature("the signature does not match the webhook's secret".into()))
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The HMAC-SHA256 of `parts`, one after another, under `secret`.
pub fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = sha256_mac(secret);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Whether `signature` is the HMAC-SHA256 of `parts` under `secret`, compared in constant time.
pub fn hmac_sha256_matches(secret: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let mut mac = sha256_mac(secret);
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(signature).is_ok()
}

fn sha256_mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length (a long one is hashed first), so this cannot fail.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}
