//! `/integration` through the real binary: the secret is typed on a line of its own, never
//! printed, stored encrypted; a member's connection waits for its proposal to pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::{Command, Stdio};
use support::TestDb;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
const TOKEN: &str = "sup3r-s3cret-t0ken";

fn run(db: &str, key: Option<&str>, script: &str) -> String {
    let (stdout, stderr) = support::run_console(db, key, script);
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the secret was shown:\n{stdout}\n{stderr}");
    stdout
}

fn connections(db: &TestDb) {
    // Without a secret key, nothing is stored and the admin is told what to do.
    let out = run(db.url(), None, &format!("/integration add discord main\n{TOKEN}\n/integration list\n"));
    assert!(out.contains("Polity cannot store secrets without POLITY_SECRET_KEY"), "{out}");
    assert!(out.contains("No platform is connected"), "{out}");

    let out = run(
        db.url(),
        Some(KEY),
        &format!(
            "/integration add discord main guild=42 base_url=http://127.0.0.1:9\n{TOKEN}\n/integration list\n\
             /integration test main\n/integration add discord main\n/integration add myspace x\n\
             /integration add discord Bad!\n/integration add discord gh colour=blue\n/integration add discord forum guild=7\n\n"
        ),
    );
    assert!(
        out.contains("[only admin] Polity's own Discord bot does not run here, so main needs the bot token of the community's own. Type it where only you see it"),
        "{out}"
    );
    assert!(out.contains("[only admin] main (discord) is connected."), "{out}");
    assert!(out.contains("[only admin] main — discord, enabled, secret stored"), "{out}");
    // The test is a real call, to where the connection says Discord is: nothing answers there.
    assert!(out.contains("main (discord) failed its test: the platform could not be reached"), "{out}");
    assert!(out.contains("A connection named main exists already"), "{out}");
    assert!(out.contains("Polity does not connect to `myspace`"), "{out}");
    assert!(out.contains("`Bad!` is not a connection name"), "{out}");
    assert!(out.contains("`colour` is not a setting"), "{out}");
    assert!(out.contains("Nothing was typed, so forum is not connected"), "{out}");

    // A member's connection under a constitution waits for the vote, then is enabled.
    let out = run(
        db.url(),
        Some(KEY),
        &format!(
            "/kit install direct-democracy\n/as alice\n/as bob\n/integration add discord team guild=9\n{TOKEN}\n\
             /integration list\n+👍 1\n/as alice\n+👍 1\n/integration list\n"
        ),
    );
    assert!(out.contains("[only bob] Proposal #1 asks to connect discord as team"), "{out}");
    assert!(out.contains("team — discord, waiting for its proposal to pass, secret stored"), "{out}");
    assert!(out.contains("team — discord, enabled, secret stored"), "{out}");

    // Reopened with the wrong key, Polity refuses to start rather than lose the secrets.
    let mut wrong = Command::new(env!("CARGO_BIN_EXE_polity"));
    wrong
        .arg("console")
        .env("DATABASE_URL", db.url())
        .env("POLITY_SECRET_KEY", "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null());
    let out = wrong.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.to_lowercase().contains("key"), "{stderr}");
}

#[test]
fn platform_connections_keep_their_secrets_secret() {
    connections(&TestDb::sqlite("integration"));
    if let Some(db) = TestDb::postgres("integration") {
        connections(&db);
    }
}
