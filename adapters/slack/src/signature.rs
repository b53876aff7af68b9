//! Slack's request signatures: every request Slack sends to Polity's HTTP server carries
//! `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=HEX`, the HMAC-SHA256 of
//! `v0:{timestamp}:{raw body}` under the app's signing secret. Checked on the raw bytes, in
//! constant time, before anything is parsed; a timestamp more than five minutes from now is
//! a replay.

use chrono::{DateTime, Utc};
use http::HeaderMap;
use polity_port::webhook::{decode_sha256_hex, hmac_sha256_matches};

/// How far a request's timestamp may be from now: five minutes, as Slack advises.
pub const MAX_SKEW_SECS: i64 = 300;

/// Why a request's signature was refused (said in the log, never to the sender).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Slack-Request-Timestamp header")]
    NoTimestamp,
    #[error("X-Slack-Request-Timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("the request is {0} s from now, more than five minutes: a replay")]
    Stale(i64),
    #[error("no X-Slack-Signature header")]
    NoSignature,
    #[error("X-Slack-Signature is not v0= and 64 hex digits")]
    Malformed,
    #[error("the signature does not match the signing secret")]
    Mismatch,
}

/// Checks a request Slack signed: `headers` as received, `body` the raw bytes.
///
/// # Errors
/// [`SignatureError`] saying what is wrong.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8], now: DateTime<Utc>) -> Result<(), SignatureError> {
    let timestamp = headers
        .get("x-slack-request-timestamp")
        .ok_or(SignatureError::NoTimestamp)?
        .to_str()
        .map_err(|_| SignatureError::BadTimestamp)?
        .trim();
    let seconds: i64 = timestamp.parse().map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.timestamp().saturating_sub(seconds);
    if skew.saturating_abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale(skew));
    }
    let signature = headers.get("x-slack-signature").ok_or(SignatureError::NoSignature)?.as_bytes();
    let hex = signature.strip_prefix(b"v0=").ok_or(SignatureError::Malformed)?;
    let digest = decode_sha256_hex(hex).ok_or(SignatureError::Malformed)?;
    if hmac_sha256_matches(secret, &[b"v0:", timestamp.as_bytes(), b":", body], &digest) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Slack's own example ("Verifying requests from Slack").
    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: i64 = 1_531_420_618;
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn headers(timestamp: &str, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-slack-request-timestamp", timestamp.parse().unwrap_or_else(|_| unreachable!()));
        headers.insert("x-slack-signature", signature.parse().unwrap_or_else(|_| unreachable!()));
        headers
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).single().unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn slacks_published_example_verifies() {
        let verified =
            verify(&headers(&TIMESTAMP.to_string(), SIGNATURE), BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP + 10));
        assert_eq!(verified, Ok(()));
    }

    #[test]
    fn a_changed_body_secret_or_signature_is_refused() {
        let h = headers(&TIMESTAMP.to_string(), SIGNATURE);
        let now = at(TIMESTAMP);
        let mut body = BODY.as_bytes().to_vec();
        body[10] ^= 1;
        assert_eq!(verify(&h, &body, SECRET.as_bytes(), now), Err(SignatureError::Mismatch));
        assert_eq!(verify(&h, BODY.as_bytes(), b"another secret", now), Err(SignatureError::Mismatch));
        let flipped = SIGNATURE.replace("a2114", "a2115");
        assert_eq!(
            verify(&headers(&TIMESTAMP.to_string(), &flipped), BODY.as_bytes(), SECRET.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_future_and_malformed_requests_are_refused() {
        let h = headers(&TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(
            verify(&h, BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP + 301)),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(&h, BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP - 301)),
            Err(SignatureError::Stale(-301))
        );
        assert!(verify(&h, BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP + 300)).is_ok());
        for (timestamp, signature, error) in [
            ("soon", SIGNATURE, SignatureError::BadTimestamp),
            ("1531420618", "a2114d57", SignatureError::Malformed),
            ("1531420618", "v0=zz", SignatureError::Malformed),
            (
                "1531420618",
                "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                SignatureError::Malformed,
            ),
        ] {
            assert_eq!(
                verify(&headers(timestamp, signature), BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP)),
                Err(error)
            );
        }
        assert_eq!(
            verify(&HeaderMap::new(), BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP)),
            Err(SignatureError::NoTimestamp)
        );
        let mut only_time = HeaderMap::new();
        only_time.insert("x-slack-request-timestamp", "1531420618".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(
            verify(&only_time, BODY.as_bytes(), SECRET.as_bytes(), at(TIMESTAMP)),
            Err(SignatureError::NoSignature)
        );
    }
}
