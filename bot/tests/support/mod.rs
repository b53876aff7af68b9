//! Test support shared by the bot's tests: databases (from `polity-tests`), the console
//! binary, and running a scenario on every database.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

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

/// A platform declared by a test, with no connection behind it: what `/integration add`
/// offers and asks for, as a real adapter would declare it. Starting or testing it fails.
pub struct Declared(pub &'static polity_port::PlatformSpec);

impl polity_port::Adapter for Declared {
    fn spec(&self) -> &'static polity_port::PlatformSpec {
        self.0
    }
    fn check(&self, _config: &serde_json::Value) -> Result<(), polity_port::AdapterError> {
        Ok(())
    }
    fn start(
        &self,
        _config: serde_json::Value,
        _start: polity_port::Start,
    ) -> polity_port::BoxFuture<'static, Result<Box<dyn polity_port::Connection>, polity_port::AdapterError>> {
        Box::pin(async { Err(polity_port::AdapterError::Start("a declared test platform does not run".into())) })
    }
    fn connection_config(
        &self,
        _bot: Option<&serde_json::Value>,
        settings: &serde_json::Map<String, serde_json::Value>,
        _secret: Option<&str>,
    ) -> Result<serde_json::Value, polity_port::AdapterError> {
        Ok(serde_json::Value::Object(settings.clone()))
    }
    fn test(
        &self,
        _config: serde_json::Value,
        _settings: serde_json::Map<String, serde_json::Value>,
    ) -> polity_port::BoxFuture<'static, Result<String, polity_port::TestFailure>> {
        Box::pin(async { Err(polity_port::TestFailure::Unreachable("a declared test platform has no server".into())) })
    }
}

const fn setting(name: &'static str, help: &'static str) -> polity_port::Setting {
    polity_port::Setting { name, help, names_space: false }
}

/// Slack as its adapter declares it, for tests of `/integration`.
pub static SLACK: polity_port::PlatformSpec = polity_port::PlatformSpec {
    name: "slack",
    title: "Slack",
    space: "workspace",
    controllers: "a workspace admin",
    secret: Some("the bot token (xoxb-...)"),
    settings: &[setting("workspace", "the workspace's id")],
    env: &[],
};

/// GitHub as its adapter declares it, for tests of `/integration`.
pub static GITHUB: polity_port::PlatformSpec = polity_port::PlatformSpec {
    name: "github",
    title: "GitHub",
    space: "repository",
    controllers: "a repository admin",
    secret: Some("the token"),
    settings: &[setting("repository", "OWNER/NAME")],
    env: &[],
};

/// SourceCred as its adapter declares it (no secret), for tests of `/integration`.
pub static SOURCECRED: polity_port::PlatformSpec = polity_port::PlatformSpec {
    name: "sourcecred",
    title: "SourceCred",
    space: "instance",
    controllers: "its operator",
    secret: None,
    settings: &[setting("base_url", "the instance's public URL")],
    env: &[],
};

/// Registers the declared test platforms with `rt`.
pub fn declare_platforms(rt: &mut polity::runtime::Runtime) {
    for spec in [&SLACK, &GITHUB, &SOURCECRED] {
        rt.registry_mut().register(std::sync::Arc::new(Declared(spec)));
    }
}
