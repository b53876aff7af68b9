//! The first hour of an operator whose Discord bot cannot connect: `polity run`'s host (the
//! real Discord adapter and serenity, against a fake Discord API on 127.0.0.1) says at info
//! why it waits, and stops within seconds when told to, saying that the bot never connected.
//!
//! Time is real here, bounded by timeouts rather than slept: the store is SQLite, whose
//! worker thread tokio's paused clock cannot see, so an auto-advanced clock would time out
//! its pool. What is waited for (serenity's 5 s between tries, the 1 s a connection that
//! never connected gets to close) is short, and nothing waits for a retry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use polity::run::{Bot, Host, NeverConnected, Pacing, Served, serve_host};
use polity::serve::SystemClock;
use polity::store::Store;
use polity_tests::db::TestDb;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{Notify, oneshot};
use tracing_subscriber::layer::SubscriberExt;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";

/// How long anything here may take before the test fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long a shutdown may take: the second a connection that never connected gets to close,
/// and the loop's last writes, with room for a busy machine. (Before, it was for ever.)
const PROMPTLY: Duration = Duration::from_secs(10);

/// The tests here run one at a time: failed attempts to connect are heard process-wide, by
/// platform, so one test's refused gateway would count as another's try.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the host logged, as the operator's terminal would show it at the default level.
#[derive(Clone, Default)]
struct Log {
    text: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// Waits until a line holds `wanted`.
    async fn until(&self, wanted: &str) {
        let waiting = async {
            while !self.text().contains(wanted) {
                self.written.notified().await;
            }
        };
        tokio::time::timeout(PATIENCE, waiting)
            .await
            .unwrap_or_else(|_| panic!("never logged {wanted:?}; logged:\n{}", self.text()));
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.lock().unwrap().extend_from_slice(buf);
        self.written.notify_one();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Logs what this thread's tasks log at info, through the layer `polity run` installs.
fn capture(log: &Log) -> tracing::subscriber::DefaultGuard {
    let writer = log.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .with_filter(tracing_subscriber::EnvFilter::new("info,sea_orm_migration=warn,serenity=warn")),
        )
        .with(polity::run::connect_attempts_layer(&polity::platforms::adapters()));
    tracing::subscriber::set_default(subscriber)
}

use tracing_subscriber::Layer as _;

/// How the fake Discord API answers.
#[derive(Clone, Copy)]
enum Api {
    /// `GET /gateway` and `/gateway/bot` name a gateway on 127.0.0.1 that refuses connections.
    RefusedGateway(u16),
    /// Every request is refused: 401, the token is not valid.
    Unauthorized,
    /// Requests are taken and never answered.
    Silent,
}

/// A port on 127.0.0.1 that refuses connections (bound, never listening) while it is kept.
fn refusing_port() -> (TcpSocket, u16) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Serves the fake Discord API on 127.0.0.1; answers its base URL, and a notice of each
/// request it took.
async fn fake_api(api: Api) -> (String, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Notify::new());
    let heard = Arc::clone(&asked);
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let heard = Arc::clone(&heard);
        async move {
            heard.notify_one();
            match api {
                Api::RefusedGateway(port) if uri.path().starts_with("/api/v10/gateway") => {
                    let gateway = json!({
                        "url": format!("ws://127.0.0.1:{port}"),
                        "shards": 1,
                        "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 },
                    });
                    axum::Json(gateway).into_response()
                }
                Api::RefusedGateway(_) => StatusCode::NOT_FOUND.into_response(),
                Api::Unauthorized => {
                    (StatusCode::UNAUTHORIZED, axum::Json(json!({ "message": "401: Unauthorized", "code": 0 })))
                        .into_response()
                }
                Api::Silent => std::future::pending().await,
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, asked)
}

/// `polity run`'s host with Polity's Discord bot on the fake API at `base_url`, on a fresh
/// SQLite database, until `stop` is sent (as a signal would) or it ends by itself.
async fn host(db: &TestDb, base_url: &str) -> (oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<Served>>) {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let discord = polity::platforms::adapters().into_iter().find(|a| a.spec().name == "discord").unwrap();
    let bot = Bot::new(discord, json!({ "token": TOKEN, "base_url": base_url }));
    let host = Host { bots: vec![bot], ..Host::default() };
    let (stop, stopped) = oneshot::channel::<()>();
    let (notices, _heard) = tokio::sync::mpsc::unbounded_channel();
    let running = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        serve_host(store, host, Pacing::default(), &SystemClock, shutdown, notices).await
    });
    (stop, running)
}

/// Sends the shutdown and waits for the host; answers how it ended and how long it took.
async fn shut_down(
    stop: oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<Served>>,
) -> (anyhow::Result<Served>, Duration) {
    let asked = Instant::now();
    stop.send(()).unwrap();
    let ended = tokio::time::timeout(PATIENCE, running).await.expect("the host ignored the shutdown").unwrap();
    (ended, asked.elapsed())
}

#[tokio::test]
async fn a_gateway_that_refuses_connections_is_retried_with_a_word_on_why_and_a_shutdown_stops_it_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let log = Log::default();
    let _logging = capture(&log);
    let (_refusing, port) = refusing_port();
    let (base_url, _asked) = fake_api(Api::RefusedGateway(port)).await;
    let db = TestDb::sqlite("operator_refused_gateway");
    let (stop, running) = host(&db, &base_url).await;

    // What it does, and why it waits, at the default level.
    log.until("discord: connecting Polity's Discord bot").await;
    log.until("discord: not reachable (connection refused), retrying in 5 s (1st try)").await;
    assert!(!running.is_finished(), "serenity retries for ever, so the host waits: {}", log.text());

    let (ended, took) = shut_down(stop, running).await;
    assert!(took < PROMPTLY, "stopping took {took:?}; logged:\n{}", log.text());
    let served = ended.unwrap();
    let [never] = served.never_connected.as_slice() else { panic!("{served:?}") };
    assert!(never.started && never.tries >= 1, "{never:?}");
    assert_eq!(never.last.as_deref(), Some("not reachable (connection refused)"));
    // `polity run` ends with this error, so with a non-zero exit.
    let error = served.connected().err().expect("an error: the bot never connected").to_string();
    assert!(
        error.starts_with("stopped before Polity's Discord bot connected (")
            && error.ends_with("the last: not reachable (connection refused))"),
        "{error}"
    );
    let logged = log.text();
    assert!(logged.contains("shutting down"), "{logged}");
    assert!(logged.contains("discord: stopped before it connected"), "{logged}");
    // serenity's own line is there too, at warn; its info lines are not.
    assert!(!logged.contains("Re-queueing"), "{logged}");
}

#[tokio::test]
async fn a_shutdown_while_the_bot_is_still_starting_stops_at_once() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let log = Log::default();
    let _logging = capture(&log);
    let (base_url, asked) = fake_api(Api::Silent).await;
    let db = TestDb::sqlite("operator_silent_api");
    let (stop, running) = host(&db, &base_url).await;

    // serenity asks where the gateway is, and hears nothing back, for ever.
    tokio::time::timeout(PATIENCE, asked.notified()).await.expect("the adapter never asked the API anything");
    log.until("discord: connecting Polity's Discord bot").await;
    assert!(!running.is_finished());

    let (ended, took) = shut_down(stop, running).await;
    assert!(took < PROMPTLY, "stopping took {took:?}; logged:\n{}", log.text());
    let served = ended.unwrap();
    assert_eq!(
        served.never_connected,
        [NeverConnected { title: "Discord", started: false, tries: 0, last: None }],
        "{}",
        log.text()
    );
    let error = served.connected().err().expect("an error: the bot never connected").to_string();
    assert_eq!(error, "stopped before Polity's Discord bot connected (it was still starting)");
    assert!(log.text().contains("discord: shutting down while Polity's Discord bot was still starting"));
}

#[tokio::test]
async fn an_api_that_answers_401_ends_the_run_by_itself_with_an_error() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let log = Log::default();
    let _logging = capture(&log);
    let (base_url, _asked) = fake_api(Api::Unauthorized).await;
    let db = TestDb::sqlite("operator_unauthorized");
    let (_stop, running) = host(&db, &base_url).await;

    // No shutdown needed: the bot gives up, and the host with it.
    let ended = tokio::time::timeout(PATIENCE, running).await.expect("the host kept waiting on a 401").unwrap();
    let error = ended.unwrap_err().to_string();
    assert!(error.starts_with("the Discord connection ended:") && error.contains("401"), "{error}");
}

#[test]
fn attempts_are_counted_in_words() {
    let never = NeverConnected { title: "Discord", started: true, tries: 1, last: Some("timed out".into()) };
    assert_eq!(never.to_string(), "stopped before Polity's Discord bot connected (1 try; the last: timed out)");
    let never = NeverConnected { title: "Discord", started: true, tries: 0, last: None };
    assert_eq!(never.to_string(), "stopped before Polity's Discord bot connected");
}
