//! `polity run` as an operator meets it when Discord's gateway cannot be reached: the binary
//! at its default log level, a `polity.toml` with the bot's token and a Discord API (a fake
//! on 127.0.0.1) whose gateway refuses connections. It says in one line what the database
//! needed and, at each try, why it waits; SIGINT stops it within seconds, with a non-zero
//! exit, since the bot never connected.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_tests::db::TestDb;
use serde_json::json;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::process::Command;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A Discord API on 127.0.0.1 whose `GET /gateway` and `/gateway/bot` name a gateway that
/// refuses connections (a port bound and never listened on, kept while the test runs).
async fn api_with_a_refusing_gateway() -> (String, TcpSocket) {
    let refusing = TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let gateway = format!("ws://{}", refusing.local_addr().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = json!({
        "url": gateway,
        "shards": 1,
        "session_start_limit": { "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1 },
    });
    let app = axum::Router::new()
        .route(
            "/api/v10/gateway",
            axum::routing::get({
                let answer = answer.clone();
                move || async move { axum::Json(answer) }
            }),
        )
        .route("/api/v10/gateway/bot", axum::routing::get(move || async move { axum::Json(answer) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, refusing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polity_run_says_why_it_waits_for_discord_and_stops_on_sigint_with_an_error() {
    let (api, _refusing) = api_with_a_refusing_gateway().await;
    let db = TestDb::sqlite("operator_run");
    let dir = std::env::temp_dir().join(format!("polity-operator-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("polity.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\n\n[platforms.discord]\ntoken = \"{TOKEN}\"\nbase_url = \"{api}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
            db.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_polity"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env_remove("RUST_LOG")
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("POLITY_DISCORD_TOKEN")
        .env("NO_COLOR", "1")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logged = Vec::new();
    within("a word on why it waits", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let waits = line.contains("discord: not reachable (connection refused), retrying in 5 s (1st try)");
            logged.push(line);
            if waits {
                break;
            }
        }
    })
    .await;

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let asked = Instant::now();
    let status = within("polity run to stop on SIGINT", child.wait()).await.unwrap();
    let took = asked.elapsed();
    while let Some(line) = lines.next_line().await.unwrap() {
        logged.push(line);
    }
    let logged = logged.join("\n");
    assert!(!status.success(), "{logged}");
    assert!(took < Duration::from_secs(10), "stopping took {took:?}:\n{logged}");
    assert!(
        logged.contains("error: stopped before Polity's Discord bot connected (")
            && logged.contains("the last: not reachable (connection refused))"),
        "{logged}"
    );
    // The database in one line, not sea-orm's forty.
    assert!(logged.contains("bringing the database schema up to date: applying"), "{logged}");
    assert!(!logged.contains("Applying migration") && !logged.contains("has been applied"), "{logged}");
    assert!(logged.contains("discord: connecting Polity's Discord bot"), "{logged}");
    assert!(!logged.contains(TOKEN), "{logged}");
    std::fs::remove_dir_all(&dir).unwrap();
}
