//! The HTTP server of `polity run`, on axum: health, metrics and the platforms' webhooks.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | 200 with JSON saying whether the store and each connection are up; 503 while the store does not answer (within 2 s) |
//! | `GET /metrics` | Polity's metrics in Prometheus's text format ([`crate::metrics`]) |
//! | `POST /hooks/{platform}/{connection}` | a webhook delivery, recorded in the inbox before it is answered ([`hooks`]) |
//! | `POST /hooks/{platform}/{path}` | a request of Polity's own app on the platform (Slack's events, slash commands, button presses), answered by that bot's endpoint |
//! | `GET /{platform}/{page}` | a page of Polity's own app a browser is sent to (Slack's `install` link and `oauth` redirect), answered by that bot's endpoint; 404 for a platform without one |
//!
//! The server is handed its listener ([`serve_http`]), so tests bind port 0. It never steps
//! the engine itself: a webhook's inputs go to the serving loop as a job, and the answer
//! waits for the loop to have recorded them. It holds no lock across an await.

mod health;
pub mod hooks;

pub use health::Health;
pub use hooks::{
    BODY_LIMIT, HookEvent, WebhookError, WebhookPlatform, Webhooks, constant_time_eq, hmac_sha256, hmac_sha256_matches,
    hook_path, hook_source,
};

use crate::serve::{Clock, Input, SystemClock};
use crate::store::Store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long `GET /healthz` waits for the store before it calls it down.
pub const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the metrics' histograms are folded in when nobody scrapes them.
const METRICS_UPKEEP: Duration = Duration::from_secs(10);

/// What the routes share. Cloning shares it.
#[derive(Clone)]
pub struct HttpState {
    store: Store,
    health: Health,
    webhooks: Arc<Webhooks>,
    /// Polity's own bots' endpoints, by platform.
    endpoints: Arc<std::collections::HashMap<String, Arc<dyn polity_port::Endpoint>>>,
    inputs: mpsc::Sender<Input>,
    clock: Arc<dyn Clock>,
    metrics: &'static PrometheusHandle,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("health", &self.health)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// The server's state: the store (for health and the webhooks' connections), what the
    /// adapters say of their connections, and the serving loop's input (webhooks' inputs go
    /// there as jobs). Installs the metrics recorder if it is not yet.
    pub fn new(store: Store, health: Health, inputs: mpsc::Sender<Input>) -> Self {
        Self {
            store,
            health,
            webhooks: Arc::new(Webhooks::new()),
            endpoints: Arc::default(),
            inputs,
            clock: Arc::new(SystemClock),
            metrics: crate::metrics::install(),
        }
    }

    /// Serves these webhook platforms' deliveries.
    #[must_use]
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        self.webhooks = Arc::new(webhooks);
        self
    }

    /// Serves one more webhook platform's deliveries.
    #[must_use]
    pub fn with_webhook(mut self, platform: Arc<dyn WebhookPlatform>) -> Self {
        Arc::make_mut(&mut self.webhooks).register(platform);
        self
    }

    /// Serves Polity's own `platform` bot's app requests (`/hooks/{platform}/{path}`).
    #[must_use]
    pub fn with_endpoint(mut self, platform: &str, endpoint: Arc<dyn polity_port::Endpoint>) -> Self {
        Arc::make_mut(&mut self.endpoints).insert(platform.to_string(), endpoint);
        self
    }

    /// The time webhook signatures are checked at (the system clock by default).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// The routes, for a server of one's own.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/hooks/{platform}/{connection}", post(hooks::receive).layer(DefaultBodyLimit::max(BODY_LIMIT)))
        .route("/{platform}/{page}", get(hooks::page))
        .with_state(state)
}

/// Serves HTTP on `listener` until `shutdown` resolves, then finishes the requests under way.
///
/// # Errors
/// When the listener fails for good.
pub async fn serve_http(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.metrics;
    let app = router(state);
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let upkeep = async {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            metrics.run_upkeep();
        }
    };
    tokio::select! {
        served = server => served,
        never = upkeep => never,
    }
}

/// `GET /healthz`.
async fn healthz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let store_up = match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.db().ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!("health check: the store does not answer: {e}");
            false
        }
        Err(_) => {
            tracing::warn!("health check: the store did not answer within {STORE_CHECK_TIMEOUT:?}");
            false
        }
    };
    let connections: serde_json::Map<String, Value> =
        state.health.connections().into_iter().map(|(name, up)| (name, json!({ "up": up }))).collect();
    let body = json!({
        "status": if store_up { "ok" } else { "unavailable" },
        "store": { "up": store_up },
        "connections": connections,
    });
    (if store_up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// `GET /metrics`. The queues' depths are sampled now: the inputs waiting for the loop, and
/// the effects waiting in the outbox (left as last sampled when the store does not answer).
async fn metrics(State(state): State<HttpState>) -> Response {
    crate::metrics::input_queue_depth(state.inputs.max_capacity() - state.inputs.capacity());
    match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.pending_effects()).await {
        Ok(Ok(n)) => crate::metrics::queue_depth(n),
        Ok(Err(e)) => tracing::warn!("metrics: counting the outbox failed: {e}"),
        Err(_) => tracing::warn!("metrics: the store did not count the outbox within {STORE_CHECK_TIMEOUT:?}"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()).into_response()
}
