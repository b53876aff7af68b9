//! serenity's log lines as Polity's log treats them: its info lines left out unless asked
//! for, and its shard queuer's warnings read as failed attempts to connect, so `polity run`
//! says why the bot waits (`discord: not reachable (connection refused), retrying in 5 s`).

use polity_port::{ConnectAttempts, LogLines};
use std::time::Duration;

/// serenity's shard queuer starts Discord's gateway shards; when one fails to start it logs
/// why at warn (`[Shard Queuer] Err starting shard 0: ERROR`) and tries again 5 s later
/// (`WAIT_BETWEEN_BOOTS_IN_SECONDS` in serenity 0.12), for ever.
const SHARD_QUEUER: &str = "serenity::gateway::bridge::shard_queuer";
const SHARD_FAILED: &str = "[Shard Queuer] Err starting shard ";
const SHARD_RETRY: Duration = Duration::from_secs(5);

/// Discord's log lines.
pub(crate) const LOG_LINES: LogLines = LogLines {
    secret_detail: &[],
    quiet: &["serenity"],
    connect_attempts: Some(ConnectAttempts { target: SHARD_QUEUER, read: shard_attempt }),
};

/// The failed attempt a shard queuer's message tells of, if it tells of one: why, and when
/// serenity tries again.
fn shard_attempt(message: &str) -> Option<(String, Option<Duration>)> {
    let (_shard, error) = message.strip_prefix(SHARD_FAILED)?.split_once(": ")?;
    Some((why_not_connected(error), Some(SHARD_RETRY)))
}

/// Why a websocket did not connect, from the error's `Debug` text.
fn why_not_connected(error: &str) -> String {
    const UNREACHABLE: &[(&str, &str)] = &[
        ("ConnectionRefused", "connection refused"),
        ("TimedOut", "timed out"),
        ("ConnectionReset", "connection reset"),
        ("ConnectionAborted", "connection aborted"),
        ("HostUnreachable", "host unreachable"),
        ("NetworkUnreachable", "network unreachable"),
        ("failed to lookup address", "its host name does not resolve"),
        ("dns error", "its host name does not resolve"),
    ];
    if let Some((_, why)) = UNREACHABLE.iter().find(|(needle, _)| error.contains(needle)) {
        return format!("not reachable ({why})");
    }
    if let Some(status) = error.split_once("status: ").and_then(|(_, rest)| rest.get(..3))
        && status.bytes().all(|b| b.is_ascii_digit())
    {
        return format!("the gateway refused the connection (HTTP {status})");
    }
    if error.contains("Tls(") {
        return "the gateway's TLS handshake failed".to_string();
    }
    let short: String = error.chars().take(200).collect();
    format!("cannot connect ({short})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_queuers_failure_reads_as_an_attempt_in_words() {
        let refused = "[Shard Queuer] Err starting shard 0: Tungstenite(Io(Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }))";
        assert_eq!(shard_attempt(refused), Some(("not reachable (connection refused)".into(), Some(SHARD_RETRY))));
        let refused_http =
            "[Shard Queuer] Err starting shard 0: Tungstenite(Http(Response { status: 403, version: HTTP/1.1 }))";
        assert_eq!(shard_attempt(refused_http).unwrap().0, "the gateway refused the connection (HTTP 403)");
        assert_eq!(
            shard_attempt("[Shard Queuer] Err starting shard 0: Tls(x)").unwrap().0,
            "the gateway's TLS handshake failed"
        );
        assert_eq!(shard_attempt("[Shard Queuer] starting shard 0"), None);
        assert_eq!(shard_attempt("something else"), None);
    }
}
