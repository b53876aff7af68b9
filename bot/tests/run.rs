//! `polity run` as a user runs it: the binary, a `polity.toml` with the Discord bot's token
//! (pointed at the fake Discord) and its HTTP server on a free port, the invite link and the
//! governed server printed, a command answered, and a clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_tests::db::TestDb;
use polity_tests::discord::FakeDiscord;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const GUILD: &str = "700000000000000001";
const GENERAL: &str = "100000000000000001";
const ALICE: &str = "300000000000000001";

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polity_run_serves_discord_from_its_configuration_and_stops_cleanly() {
    let fake = FakeDiscord::start().await;
    fake.add_guild(GUILD, "Polity test", ALICE);
    fake.add_channel(GUILD, GENERAL, "general");
    fake.add_member(GUILD, ALICE, "alice", None, &[]);
    let db = TestDb::sqlite("run_discord");
    let dir = std::env::temp_dir().join(format!("polity-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("polity.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\n\n[platforms.discord]\ntoken = \"{TOKEN}\"\nbase_url = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
            db.url(),
            fake.url()
        ),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_polity"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("POLITY_DISCORD_TOKEN")
        .env("RUST_LOG", "warn")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    within("the governed server to be printed", async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if line.starts_with("Governing the Discord server") {
                break;
            }
        }
    })
    .await;
    let printed = printed.join("\n");
    assert!(printed.contains("Polity is on Discord. Add it to a server with:"), "{printed}");
    assert!(
        printed.contains(
            "https://discord.com/oauth2/authorize?client_id=900000000000000002&scope=bot+applications.commands&permissions=2251800082197714"
        ),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "Governing the Discord server \"Polity test\" ({GUILD}) as the community \"Polity test\"."
        )),
        "{printed}"
    );

    // The HTTP server beside it says the Discord connection is up.
    let base = printed
        .lines()
        .find_map(|l| l.strip_prefix("Serving HTTP on ")?.split_once(": ").map(|(base, _)| base.to_string()))
        .unwrap_or_else(|| panic!("no HTTP address in: {printed}"));
    let health: serde_json::Value =
        within("/healthz", reqwest::get(format!("{base}/healthz"))).await.unwrap().json().await.unwrap();
    assert_eq!(health["connections"]["discord"]["up"], true, "{health}");

    let asked = fake.slash(ALICE, GUILD, GENERAL, &["whoami"], vec![]);
    let answer = within("the answer to /whoami", fake.response(&asked)).await;
    assert!(answer.data["content"].as_str().unwrap().starts_with("You are alice, an admin."), "{answer:?}");
    // The token was sent to Discord the way Discord wants it, and never printed.
    assert!(fake.requests().iter().all(|r| r.authorization.as_deref() == Some(&format!("Bot {TOKEN}"))));
    assert!(!printed.contains(TOKEN));

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let out = within("polity run to exit", child.wait_with_output()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(TOKEN), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_ends_polity_run_with_a_clear_error() {
    let fake = FakeDiscord::start().await;
    fake.add_guild(GUILD, "Polity test", ALICE);
    fake.require_token(TOKEN);
    let db = TestDb::sqlite("run_refused");
    let wrong = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.wrong-token-never-shown";
    let dir = std::env::temp_dir().join(format!("polity-run-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("polity.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\n\n[platforms.discord]\nbase_url = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n",
            db.url(),
            fake.url()
        ),
    )
    .unwrap();
    let out = within(
        "polity run to give up",
        Command::new(env!("CARGO_BIN_EXE_polity"))
            .args(["--config", config.to_str().unwrap(), "run"])
            .env_remove("POLITY_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env("POLITY_DISCORD_TOKEN", wrong)
            .env("RUST_LOG", "warn")
            .current_dir(&dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("error: the Discord connection ended"), "{stderr}");
    assert!(!stderr.contains("wrong-token") && !stdout.contains("wrong-token"), "{stdout}\n{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
