//! The HTTP server against a real client on 127.0.0.1: health, metrics, and webhooks through
//! a test platform that signs its deliveries like GitHub (`X-Test-Signature: sha256=HEX`, an
//! HMAC-SHA256 of the raw body under the connection's secret). And `polity run` with only
//! the HTTP server configured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use polity::http::{
    BODY_LIMIT, Health, HookEvent, HttpState, WebhookError, WebhookPlatform, hmac_sha256, hmac_sha256_matches,
    hook_path, hook_source, serve_http,
};
use polity::runtime::{Runtime, request};
use polity::serve::{SystemClock, serve};
use polity::store::{SecretKey, Store};
use polity_governance::action::{Action, ActionType, PROPOSE};
use polity_governance::ids::{AccountRef, CommunityId, Place, ProposalId};
use polity_governance::io::Inbound;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use support::TestDb;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const SECRET: &str = "whsec-test-0123456789";
const PLATFORM: &str = "test";

/// The test platform: `{"event": "propose", "user": ..., "text": ...}` opens a proposal,
/// `{"event": "vote", "user": ..., "proposal": N, "choice": ...}` casts a ballot, `ping` is an
/// event Polity does not use. The delivery id is `X-Test-Delivery`.
struct TestHooks;

impl WebhookPlatform for TestHooks {
    fn name(&self) -> &str {
        PLATFORM
    }

    fn verify_and_parse(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Vec<HookEvent>, WebhookError> {
        let bad = |why: &str| WebhookError::BadSignature(why.into());
        let header = headers.get("x-test-signature").ok_or_else(|| bad("no X-Test-Signature header"))?;
        let hex_sig = header.to_str().ok().and_then(|h| h.strip_prefix("sha256=")).ok_or_else(|| bad("not sha256="))?;
        let sig = hex::decode(hex_sig).map_err(|_| bad("not hex"))?;
        if !hmac_sha256_matches(secret, &[body], &sig) {
            return Err(bad("does not match"));
        }
        // Only now is anything read.
        let delivery = headers
            .get("x-test-delivery")
            .and_then(|h| h.to_str().ok())
            .ok_or_else(|| WebhookError::Malformed("no X-Test-Delivery header".into()))?;
        let v: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        match v["events"].as_array() {
            Some(several) => several.iter().map(|e| event(e, delivery)).collect(),
            None => Ok(vec![event(&v, delivery)?]),
        }
    }
}

fn event(v: &Value, delivery: &str) -> Result<HookEvent, WebhookError> {
    let user = v["user"].as_str().unwrap_or("alice");
    let account = AccountRef::new(PLATFORM, user);
    let input = match v["event"].as_str() {
        Some("propose") => {
            let id = format!("{delivery}-{}", v["text"].as_str().unwrap_or(""));
            let action = Action::new(ActionType::new(PROPOSE).unwrap(), account.clone(), id)
                .at(Place::new(PLATFORM, "#general"))
                .requested()
                .with("text", v["text"].as_str().unwrap_or("a proposal"));
            Inbound::Action { action }
        }
        Some("vote") => Inbound::Vote {
            proposal: ProposalId(v["proposal"].as_i64().unwrap_or(0)),
            voter: account.clone(),
            choice: v["choice"].as_str().unwrap_or("yes").into(),
        },
        other => return Err(WebhookError::Unsupported(format!("{other:?}"))),
    };
    Ok(HookEvent { delivery_id: delivery.into(), input, from: Some((account, user.into())) })
}

const UNSIGNED: &str = "unsigned";
const URL_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const API_TOKEN: &str = "api-token";

/// A platform that does not sign its deliveries (like Open Collective): `{"id": N, "text":
/// ...}` claims that item N was proposed with that text. Nothing of the body is believed:
/// `confirm` asks "the platform's API" (`api`: item -> its true text, answering only the
/// connection's API token) and records what it says.
struct Unsigned {
    api: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    down: std::sync::atomic::AtomicBool,
}

impl WebhookPlatform for Unsigned {
    fn name(&self) -> &str {
        UNSIGNED
    }

    fn secret_in_url(&self) -> bool {
        true
    }

    fn verify_and_parse(
        &self,
        _headers: &HeaderMap,
        body: &[u8],
        secret: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<Vec<HookEvent>, WebhookError> {
        assert_eq!(secret, URL_TOKEN.as_bytes(), "handed the URL's secret");
        let v: Value = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let id = v["id"].as_i64().ok_or_else(|| WebhookError::Malformed("no id".into()))?;
        let account = AccountRef::new(UNSIGNED, "someone");
        let action = Action::new(ActionType::new(PROPOSE).unwrap(), account.clone(), format!("item-{id}"))
            .at(Place::new(UNSIGNED, "#general"))
            .requested()
            .with("text", v["text"].as_str().unwrap_or(""))
            .with("item", id);
        let from = Some((account, "someone".to_string()));
        Ok(vec![HookEvent { delivery_id: format!("item-{id}"), input: Inbound::Action { action }, from }])
    }

    fn confirm(
        &self,
        settings: serde_json::Map<String, Value>,
        credential: Option<String>,
        events: Vec<HookEvent>,
    ) -> polity_port::BoxFuture<'static, Result<Vec<HookEvent>, WebhookError>> {
        assert_eq!(settings.get("enabled"), Some(&json!(true)), "handed the connection's settings");
        let answer = if self.down.load(std::sync::atomic::Ordering::SeqCst) || credential.as_deref() != Some(API_TOKEN)
        {
            Err(WebhookError::Unconfirmed("the API did not answer".into()))
        } else {
            let api = self.api.lock().unwrap();
            Ok(events
                .into_iter()
                .filter_map(|mut e| {
                    let Inbound::Action { action } = &mut e.input else { return None };
                    let truth = api.get(&action.data["item"].as_i64()?)?;
                    action.data.insert("text".into(), json!(truth));
                    Some(e)
                })
                .collect())
        };
        Box::pin(async move { answer })
    }
}

/// A community with a test connection `main` (enabled, with a secret), a staged one, and the
/// serving loop and the HTTP server running on 127.0.0.1.
struct World {
    _db: TestDb,
    store: Store,
    community: CommunityId,
    health: Health,
    base: String,
    client: reqwest::Client,
    stop_loop: Option<oneshot::Sender<()>>,
    stop_http: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<anyhow::Result<Runtime>>>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    unsigned: Arc<Unsigned>,
}

impl World {
    async fn start(name: &str) -> Self {
        let db = TestDb::sqlite(name);
        let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(&SecretKey::generate()));
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store.clone()).await.unwrap();
        let admin = AccountRef::new(PLATFORM, "admin");
        let community = rt.ensure_community(name, "admin", admin.clone()).await.unwrap();
        let policy =
            "name = \"Majority\"\nkind = \"platform\"\n[vote]\nquorum = 0\npass = \"majority\"\ncloses = \"1h\"\n";
        let install = request("polity.policy_install", admin, Place::new(PLATFORM, "#general"), "install")
            .unwrap()
            .with("source", policy);
        rt.handle(community, "setup", "install", Inbound::Action { action: install }, Utc::now(), false).await.unwrap();
        store.put_connection(community, "main", PLATFORM, &json!({ "enabled": true }), Some(SECRET)).await.unwrap();
        store.put_connection(community, "staged", PLATFORM, &json!({ "enabled": false }), Some(SECRET)).await.unwrap();
        store.put_connection(community, "bare", PLATFORM, &json!({}), None).await.unwrap();

        let (tx, rx) = mpsc::channel(16);
        let (stop_loop, loop_stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            serve(rt, rx, &SystemClock, async {
                let _stop = loop_stopped.await;
            })
            .await
        });
        let health = Health::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        store
            .put_connection_with_hook(
                community,
                "oc",
                UNSIGNED,
                &json!({ "enabled": true }),
                Some(API_TOKEN),
                URL_TOKEN,
            )
            .await
            .unwrap();
        let unsigned = Arc::new(Unsigned {
            api: std::sync::Mutex::new([(7, "Reimburse the venue".to_string())].into()),
            down: std::sync::atomic::AtomicBool::new(false),
        });
        let state = HttpState::new(store.clone(), health.clone(), tx)
            .with_webhook(Arc::new(TestHooks))
            .with_webhook(unsigned.clone());
        let (stop_http, http_stopped) = oneshot::channel::<()>();
        let http = tokio::spawn(serve_http(listener, state, async {
            let _stop = http_stopped.await;
        }));
        Self {
            _db: db,
            store,
            community,
            health,
            base,
            client: reqwest::Client::new(),
            stop_loop: Some(stop_loop),
            stop_http: Some(stop_http),
            served: Some(served),
            http: Some(http),
            unsigned,
        }
    }

    fn main_path(&self) -> String {
        hook_path(PLATFORM, self.community, "main")
    }

    fn source(&self) -> String {
        hook_source(PLATFORM, self.community, "main")
    }

    /// Posts `body` to `path`, signed with `secret` (unsigned with `None`).
    async fn post(&self, path: &str, delivery: &str, body: &[u8], secret: Option<&str>) -> (StatusCode, String) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-test-delivery", delivery)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(secret) = secret {
            req = req
                .header("x-test-signature", format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &[body]))));
        }
        let resp = req.send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    async fn hook(&self, delivery: &str, body: &Value) -> (StatusCode, String) {
        self.post(&self.main_path(), delivery, body.to_string().as_bytes(), Some(SECRET)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// The audit lines of inputs (this world has no platform to perform effects, so the
    /// dispatcher's lines about giving up on them come and go beside them).
    async fn audit_len(&self) -> usize {
        let all = self.store.audit(self.community, 1000).await.unwrap();
        all.iter().filter(|a| !a.text.contains("could not be carried out")).count()
    }

    /// Stops the loop and the server, and checks both ended well. (The server holds a sender
    /// of the loop's input, so the loop runs until it is told.)
    async fn stop(mut self) {
        self.stop_loop.take().unwrap().send(()).unwrap();
        self.served.take().unwrap().await.unwrap().unwrap();
        self.stop_http.take().unwrap().send(()).unwrap();
        self.http.take().unwrap().await.unwrap().unwrap();
    }
}

fn propose(text: &str) -> Value {
    json!({ "event": "propose", "user": "alice", "text": text })
}

#[tokio::test]
async fn a_signed_delivery_is_recorded_before_it_is_answered_and_a_redelivery_changes_nothing() {
    let w = World::start("hooks_good").await;
    let (status, _) = w.hook("d1", &propose("Buy a new server")).await;
    assert_eq!(status, StatusCode::OK);
    // The answer came after the inbox had it: the proposal is open, no waiting needed.
    assert!(w.store.seen(&w.source(), "d1").await.unwrap());
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), Some(ProposalId(1)));
    let p = w.store.proposal(w.community, ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.action.data["text"], "Buy a new server");
    assert_eq!(p.proposer_name, "alice");

    // The platform delivers it again (it did not hear the answer): 200, and nothing changes.
    let audit = w.audit_len().await;
    let (status, _) = w.hook("d1", &propose("Buy a new server")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), Some(ProposalId(1)));
    assert_eq!(w.audit_len().await, audit);

    // A ballot by webhook counts.
    let (status, _) = w.hook("d2", &json!({ "event": "vote", "user": "alice", "proposal": 1, "choice": "yes" })).await;
    assert_eq!(status, StatusCode::OK);
    let p = w.store.proposal(w.community, ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.vote.unwrap().ballots.len(), 1);

    // A member's mistake (a vote on a proposal that does not exist) was still received.
    let (status, _) = w.hook("d3", &json!({ "event": "vote", "user": "alice", "proposal": 99 })).await;
    assert_eq!(status, StatusCode::OK);
    w.stop().await;
}

#[tokio::test]
async fn a_delivery_of_several_events_records_each_once() {
    let w = World::start("hooks_several").await;
    let body = json!({ "events": [propose("First"), propose("Second")] });
    assert_eq!(w.hook("d1", &body).await.0, StatusCode::OK);
    assert!(w.store.seen(&w.source(), "d1#0").await.unwrap() && w.store.seen(&w.source(), "d1#1").await.unwrap());
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), Some(ProposalId(2)));
    let audit = w.audit_len().await;
    assert_eq!(w.hook("d1", &body).await.0, StatusCode::OK);
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), Some(ProposalId(2)));
    assert_eq!(w.audit_len().await, audit);
    w.stop().await;
}

#[tokio::test]
async fn bad_or_missing_signatures_are_refused_and_nothing_is_stored() {
    let w = World::start("hooks_bad_signature").await;
    let audit = w.audit_len().await;
    let body = propose("Forged").to_string();
    let path = w.main_path();
    // Signed with another secret, not signed, signed but the body changed afterwards.
    assert_eq!(w.post(&path, "f1", body.as_bytes(), Some("not-the-secret")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(w.post(&path, "f2", body.as_bytes(), None).await.0, StatusCode::UNAUTHORIZED);
    let sig = hex::encode(hmac_sha256(SECRET.as_bytes(), &[body.as_bytes()]));
    let resp = w
        .client
        .post(format!("{}{path}", w.base))
        .header("x-test-delivery", "f3")
        .header("x-test-signature", format!("sha256={sig}"))
        .body(body.replace("Forged", "Forgex"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // A connection with no secret cannot check a signature, so it takes nothing.
    let bare = hook_path(PLATFORM, w.community, "bare");
    assert_eq!(w.post(&bare, "f4", body.as_bytes(), Some("")).await.0, StatusCode::UNAUTHORIZED);
    for key in ["f1", "f2", "f3"] {
        assert!(!w.store.seen(&w.source(), key).await.unwrap(), "{key}");
    }
    assert!(!w.store.seen(&hook_source(PLATFORM, w.community, "bare"), "f4").await.unwrap());
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), None);
    assert_eq!(w.audit_len().await, audit);
    w.stop().await;
}

#[tokio::test]
async fn unknown_targets_oversized_bodies_and_unused_events_are_answered_without_storing() {
    let w = World::start("hooks_refusals").await;
    let audit = w.audit_len().await;
    let body = propose("Nowhere").to_string();
    let c = w.community;
    for path in [
        hook_path("nosuchplatform", c, "main"),
        hook_path(PLATFORM, c, "nosuch"),
        hook_path(PLATFORM, CommunityId(c.0 + 1), "main"),
        // Not enabled yet: its governance decision is still to come.
        hook_path(PLATFORM, c, "staged"),
        // The path names the community too.
        format!("/hooks/{PLATFORM}/main"),
    ] {
        assert_eq!(w.post(&path, "n1", body.as_bytes(), Some(SECRET)).await.0, StatusCode::NOT_FOUND, "{path}");
    }

    // An event Polity does not use: 202, nothing stored.
    let (status, _) = w.hook("p1", &json!({ "event": "ping" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!w.store.seen(&w.source(), "p1").await.unwrap());

    // Signed, but not JSON: 400.
    assert_eq!(w.post(&w.main_path(), "m1", b"not json", Some(SECRET)).await.0, StatusCode::BAD_REQUEST);

    // Exactly 1 MiB is read (a signed ping, padded); one byte more is refused.
    let prefix = r#"{"event":"ping","pad":""#;
    let suffix = r#""}"#;
    let pad = "x".repeat(BODY_LIMIT - prefix.len() - suffix.len());
    let full = format!("{prefix}{pad}{suffix}");
    assert_eq!(full.len(), BODY_LIMIT);
    assert_eq!(w.post(&w.main_path(), "big1", full.as_bytes(), Some(SECRET)).await.0, StatusCode::ACCEPTED);
    let over = format!("{prefix}{pad}x{suffix}");
    assert_eq!(over.len(), BODY_LIMIT + 1);
    assert_eq!(w.post(&w.main_path(), "big2", over.as_bytes(), Some(SECRET)).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    assert!(!w.store.seen(&w.source(), "n1").await.unwrap());
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), None);
    assert_eq!(w.audit_len().await, audit);
    w.stop().await;
}

#[tokio::test]
async fn healthz_says_which_connections_are_up_and_503_while_the_store_is_unreachable() {
    let w = World::start("hooks_health").await;
    w.health.set("discord", true);
    w.health.set("slack", false);
    let (status, body) = w.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({
            "status": "ok",
            "store": { "up": true },
            "connections": { "discord": { "up": true }, "slack": { "up": false } },
        })
    );

    // The database goes away (its pool is closed under the server).
    w.store.db().close_by_ref().await.unwrap();
    let (status, body) = w.get("/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "unavailable");
    assert_eq!(v["store"]["up"], false);
    assert_eq!(v["connections"]["discord"]["up"], true);

    // A webhook that cannot be looked up is not taken: the platform delivers it again.
    let (status, _) = w.hook("h1", &propose("While the store is down")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let mut w = w;
    w.stop_http.take().unwrap().send(()).unwrap();
    w.http.take().unwrap().await.unwrap().unwrap();
    // The loop's store is gone too: it may have ended with the store's error already, as it
    // would in production; dropping its stop ends it otherwise.
    drop(w.stop_loop.take());
    let _ended = w.served.take().unwrap().await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_after_traffic() {
    let w = World::start("hooks_metrics").await;
    assert_eq!(w.hook("d1", &propose("Count me")).await.0, StatusCode::OK);
    assert_eq!(w.hook("d2", &json!({ "event": "ping" })).await.0, StatusCode::ACCEPTED);
    // What the runtime reports as it works (the queues' depths are sampled at the scrape).
    polity::metrics::input_handled(&w.source());
    polity::metrics::input_duplicate(&w.source());
    polity::metrics::effect_performed(PLATFORM);
    polity::metrics::effect_retried(PLATFORM);
    polity::metrics::effect_failed(PLATFORM);
    polity::metrics::open_proposals(1);
    polity::metrics::decision_latency(Duration::from_millis(4));

    let resp = w.client.get(format!("{}/metrics", w.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = resp.text().await.unwrap();
    for line in [
        "polity_webhooks_total{platform=\"test\",outcome=\"received\"}",
        "polity_webhooks_total{platform=\"test\",outcome=\"unsupported\"}",
        "polity_inputs_handled_total{platform=\"test\"}",
        "polity_inputs_duplicate_total{platform=\"test\"}",
        "polity_effects_performed_total{platform=\"test\"}",
        "polity_effects_retried_total{platform=\"test\"}",
        "polity_effects_failed_total{platform=\"test\"}",
        "polity_outbox_queue_depth ",
        "polity_input_queue_depth ",
        "polity_open_proposals ",
        "# TYPE polity_decision_latency_seconds histogram",
        "polity_decision_latency_seconds_bucket{le=\"0.005\"}",
    ] {
        assert!(text.contains(line), "{line} is missing from:\n{text}");
    }
    w.stop().await;
}

// ===================================================================== polity run

fn polity_run(config: &std::path::Path, dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.args(["--config", config.to_str().unwrap(), "run"])
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("POLITY_DISCORD_TOKEN")
        .env_remove("POLITY_HTTP_LISTEN")
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polity_run_with_only_the_http_server_serves_health_and_stops_cleanly() {
    let db = TestDb::sqlite("run_http_only");
    let dir = std::env::temp_dir().join(format!("polity-run-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // No `[http]` in the file: the environment says where to listen, and that is configuration enough.
    let config = dir.join("polity.toml");
    std::fs::write(&config, format!("database_url = \"{}\"\n", db.url())).unwrap();
    let mut child = polity_run(&config, &dir).env("POLITY_HTTP_LISTEN", "127.0.0.1:0").spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("the HTTP address to be printed", lines.next_line()).await.unwrap().unwrap();
    let base = line
        .strip_prefix("Serving HTTP on ")
        .and_then(|l| l.split_once(": "))
        .map(|(base, _)| base.to_string())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let resp = within("/healthz", reqwest::get(format!("{base}/healthz"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({ "status": "ok", "store": { "up": true }, "connections": {} }));
    let resp = within("/metrics", reqwest::get(format!("{base}/metrics"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = within("polity run to exit", child.wait_with_output()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn polity_run_with_nothing_configured_says_how_and_a_taken_address_is_a_clear_error() {
    let db = TestDb::sqlite("run_nothing");
    let dir = std::env::temp_dir().join(format!("polity-run-nothing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("polity.toml");
    std::fs::write(&config, format!("database_url = \"{}\"\n", db.url())).unwrap();
    let out = within("polity run to refuse", polity_run(&config, &dir).output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("[platforms.discord]") && stderr.contains("[http]") && stderr.contains("polity console"),
        "{stderr}"
    );

    // An address that is taken is named, with what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    std::fs::write(&config, format!("database_url = \"{}\"\n\n[http]\nlisten = \"{addr}\"\n", db.url())).unwrap();
    let out = within("polity run to fail", polity_run(&config, &dir).output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("listening for HTTP on {addr}")), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_unsigned_platforms_delivery_needs_the_urls_token_and_is_recorded_as_its_api_says() {
    let w = World::start("hooks_unsigned").await;
    let path = hook_path(UNSIGNED, w.community, "oc");
    let source = hook_source(UNSIGNED, w.community, "oc");
    let body = json!({ "id": 7, "text": "Pay me 1,000,000" }).to_string();
    let post = |query: &str| w.client.post(format!("{}{path}{query}", w.base)).body(body.clone()).send();
    // No token, a wrong one, one that is a prefix of the right one: 401, nothing stored.
    for query in ["", "?token=", "?token=wrong", &format!("?token={}", &URL_TOKEN[..10]), "?other=1"] {
        assert_eq!(post(query).await.unwrap().status(), StatusCode::UNAUTHORIZED, "{query:?}");
    }
    assert!(!w.store.seen(&source, "item-7").await.unwrap());

    // The API does not answer: 503, so it comes again; nothing stored.
    w.unsigned.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let with_token = format!("?token={URL_TOKEN}");
    assert_eq!(post(&with_token).await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!w.store.seen(&source, "item-7").await.unwrap());
    w.unsigned.down.store(false, std::sync::atomic::Ordering::SeqCst);

    // The body lies about the text: what the API says is recorded.
    assert_eq!(post(&with_token).await.unwrap().status(), StatusCode::OK);
    assert!(w.store.seen(&source, "item-7").await.unwrap());
    let p = w.store.proposal(w.community, ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(p.action.data["text"], "Reimburse the venue");

    // A claim about an item the API does not know is not believed: 202, nothing stored.
    let invented = json!({ "id": 8, "text": "Invented" }).to_string();
    let resp = w.client.post(format!("{}{path}{with_token}", w.base)).body(invented).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(!w.store.seen(&source, "item-8").await.unwrap());
    assert_eq!(w.store.last_proposal_id(w.community).await.unwrap(), Some(ProposalId(1)));
    w.stop().await;
}
