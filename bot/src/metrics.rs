//! Polity's metrics: their names, and the small functions the runtime calls to count what it
//! does. They are recorded with the `metrics` crate and rendered in Prometheus's text format
//! by `GET /metrics` ([`crate::http`]).
//!
//! The recorder is installed once per process ([`install`], idempotent: a test binary runs
//! many servers). Before it is installed, and in tools that never install it (`polity
//! console`), the functions here cost next to nothing and record nothing.
//!
//! Labels name a platform (`discord`, `console`, `github`), never an id (a server, a
//! connection, a user), so the number of series stays small whatever the number of
//! communities.

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Inputs handled: stepped by the engine and recorded.
pub const INPUTS_HANDLED: &str = "polity_inputs_handled_total";
/// Inputs dropped because the inbox had them already (a redelivery, a replay).
pub const INPUTS_DUPLICATE: &str = "polity_inputs_duplicate_total";
/// Inputs the store could not write while it answered (a value it cannot keep): dropped
/// alone, logged, so they never hold up the others.
pub const INPUTS_DROPPED: &str = "polity_inputs_dropped_total";
/// Effects a platform performed.
pub const EFFECTS_PERFORMED: &str = "polity_effects_performed_total";
/// Effects that failed for now and will be tried again (a timeout, a 5xx, a 429).
pub const EFFECTS_RETRIED: &str = "polity_effects_retried_total";
/// Effects that failed for good (refused, or out of attempts).
pub const EFFECTS_FAILED: &str = "polity_effects_failed_total";
/// Effects waiting in the outbox, pending or in flight (sampled at each scrape).
pub const OUTBOX_DEPTH: &str = "polity_outbox_queue_depth";
/// Inputs waiting for the serving loop (sampled at each scrape).
pub const INPUT_QUEUE_DEPTH: &str = "polity_input_queue_depth";
/// Proposals open, in every community.
pub const OPEN_PROPOSALS: &str = "polity_open_proposals";
/// From the input that decided a proposal to the outcome's effects in the outbox.
pub const DECISION_LATENCY: &str = "polity_decision_latency_seconds";
/// Webhook deliveries answered, by platform and outcome (`received`, `unsupported`,
/// `bad_signature`, `malformed`, `unknown_connection`, `failed`).
pub const WEBHOOKS: &str = "polity_webhooks_total";

/// The buckets of [`DECISION_LATENCY`], in seconds: the goal is a p99 under 50 ms.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder as the process's recorder, the first time it is called,
/// and returns what renders it. Later calls return the same handle.
///
/// Should another recorder be installed already (never in Polity itself), the handle renders
/// nothing, and that is logged.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(Matcher::Full(DECISION_LATENCY.into()), LATENCY_BUCKETS) {
            Ok(b) => b,
            // Only an empty list of buckets is refused, and this one is not empty.
            Err(e) => {
                tracing::error!("the decision latency's buckets are refused ({e}); it is rendered as a summary");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::error!("another metrics recorder is installed, so /metrics shows nothing: {e}");
        }
        describe();
        handle
    })
}

/// Says what each metric means, for the `# HELP` lines.
fn describe() {
    describe_counter!(INPUTS_HANDLED, "Inputs stepped by the engine and recorded, by platform.");
    describe_counter!(INPUTS_DUPLICATE, "Inputs dropped as already recorded in the inbox, by platform.");
    describe_counter!(INPUTS_DROPPED, "Inputs the store could not write, dropped alone, by platform.");
    describe_counter!(EFFECTS_PERFORMED, "Effects performed, by platform.");
    describe_counter!(EFFECTS_RETRIED, "Effects that failed for now and will be retried, by platform.");
    describe_counter!(EFFECTS_FAILED, "Effects that failed for good, by platform.");
    describe_gauge!(OUTBOX_DEPTH, "Effects waiting in the outbox.");
    describe_gauge!(INPUT_QUEUE_DEPTH, "Inputs waiting for the serving loop.");
    describe_gauge!(OPEN_PROPOSALS, "Proposals open, in every community.");
    describe_histogram!(
        DECISION_LATENCY,
        Unit::Seconds,
        "From the input that decided a proposal to the outcome's effects in the outbox."
    );
    describe_counter!(WEBHOOKS, "Webhook deliveries answered, by platform and outcome.");
}

/// The platform an inbox source names, as a label: `discord:GUILD` and `command:discord` are
/// `discord`, `hook:github:3.main` is `github`, `console` is `console`.
pub fn platform_of_source(source: &str) -> &str {
    let rest = source.strip_prefix("hook:").or_else(|| source.strip_prefix("command:")).unwrap_or(source);
    rest.split(':').next().unwrap_or(rest)
}

/// An input from `platform` (see [`platform_of_source`]) was stepped and recorded.
pub fn input_handled(platform: &str) {
    counter!(INPUTS_HANDLED, "platform" => platform.to_owned()).increment(1);
}

/// An input from `platform` was dropped: the inbox had it already.
pub fn input_duplicate(platform: &str) {
    counter!(INPUTS_DUPLICATE, "platform" => platform.to_owned()).increment(1);
}

/// An input from `platform` could not be written and was dropped.
pub fn input_dropped(platform: &str) {
    counter!(INPUTS_DROPPED, "platform" => platform.to_owned()).increment(1);
}

/// A platform performed an effect.
pub fn effect_performed(platform: &str) {
    counter!(EFFECTS_PERFORMED, "platform" => platform.to_owned()).increment(1);
}

/// An effect failed for now and waits to be tried again.
pub fn effect_retried(platform: &str) {
    counter!(EFFECTS_RETRIED, "platform" => platform.to_owned()).increment(1);
}

/// An effect failed for good.
pub fn effect_failed(platform: &str) {
    counter!(EFFECTS_FAILED, "platform" => platform.to_owned()).increment(1);
}

/// How many effects wait in the outbox.
#[allow(clippy::cast_precision_loss)]
pub fn queue_depth(n: u64) {
    gauge!(OUTBOX_DEPTH).set(n as f64);
}

/// How many inputs wait for the serving loop.
#[allow(clippy::cast_precision_loss)]
pub fn input_queue_depth(n: usize) {
    gauge!(INPUT_QUEUE_DEPTH).set(n as f64);
}

/// How many proposals are open, in every community.
#[allow(clippy::cast_precision_loss)]
pub fn open_proposals(n: usize) {
    gauge!(OPEN_PROPOSALS).set(n as f64);
}

/// A proposal was decided: `elapsed` from receiving the input that decided it to its
/// outcome's effects written to the outbox.
pub fn decision_latency(elapsed: Duration) {
    histogram!(DECISION_LATENCY).record(elapsed.as_secs_f64());
}

/// A webhook delivery for `platform` was answered with `outcome`.
pub(crate) fn webhook(platform: &str, outcome: &'static str) {
    counter!(WEBHOOKS, "platform" => platform.to_owned(), "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_labelled_by_their_platform() {
        assert_eq!(platform_of_source("discord:discord"), "discord");
        assert_eq!(platform_of_source("discord:700000000000000001"), "discord");
        assert_eq!(platform_of_source("command:discord"), "discord");
        assert_eq!(platform_of_source("hook:github:3.main"), "github");
        assert_eq!(platform_of_source("console"), "console");
        assert_eq!(platform_of_source(""), "");
    }

    #[test]
    fn what_is_counted_is_rendered_and_installing_twice_is_harmless() {
        let handle = install();
        assert!(std::ptr::eq(handle, install()));
        // Labels of this test's own, since other tests in the process may count too.
        input_handled(platform_of_source("hook:metricstest:1.main"));
        effect_performed("metricstest");
        decision_latency(Duration::from_millis(3));
        open_proposals(2);
        let text = handle.render();
        assert!(text.contains("polity_inputs_handled_total{platform=\"metricstest\"} 1"), "{text}");
        assert!(text.contains("polity_effects_performed_total{platform=\"metricstest\"} 1"), "{text}");
        assert!(text.contains("polity_decision_latency_seconds_bucket{le=\"0.005\"}"), "{text}");
        assert!(text.contains("# TYPE polity_decision_latency_seconds histogram"), "{text}");
        assert!(text.contains("polity_open_proposals "), "{text}");
    }
}
