//! Test support shared by the bot's tests: databases (from `polity-tests`), the console
//! binary, and running a scenario on every database.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

pub use polity_tests::db::TestDb;

/// A clock that moves only when the test says (`clock.0.send_replace(t)`).
pub struct HandClock(pub tokio::sync::watch::Sender<chrono::DateTime<chrono::Utc>>);

impl polity::serve::Clock for HandClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.borrow()
    }
    fn sleep_until(&self, at: chrono::DateTime<chrono::Utc>) -> polity_governance::platform::BoxFuture<'_, ()> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, so waiting cannot fail.
            let _reached = rx.wait_for(|now| *now >= at).await;
        })
    }
}

/// Runs `polity console` on `db` with `script` as its input (and `POLITY_SECRET_KEY` when
/// given); returns what it printed, after checking it exited 0.
pub fn run_console(db: &str, secret_key: Option<&str>, script: &str) -> (String, String) {
    run_console_bytes(db, secret_key, script.as_bytes())
}

/// [`run_console`] with any bytes as input, text or not.
pub fn run_console_bytes(db: &str, secret_key: Option<&str>, script: &[u8]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.arg("console")
        .env("DATABASE_URL", db)
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("POLITY_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = secret_key {
        cmd.env("POLITY_SECRET_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(script).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "polity console failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Runs each named scenario `fn(&str)` on a fresh SQLite database, and on a fresh PostgreSQL
/// database when `POLITY_TEST_DATABASE_URL` is set. The test file imports `TestDb`.
#[allow(unused_macros)]
macro_rules! on_every_database {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $name() {
                    let db = super::TestDb::sqlite(stringify!($name));
                    super::$name(db.url());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let Some(db) = super::TestDb::postgres(stringify!($name)) else { return };
                    super::$name(db.url());
                }
            )*
        }
    };
}
