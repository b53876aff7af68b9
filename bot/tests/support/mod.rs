//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database when
//! `POLITY_TEST_DATABASE_URL` is set, dropped when the test ends.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct TestDb {
    url: String,
    file: Option<PathBuf>,
    pg: Option<(String, String)>,
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("polity_{name}_{}_{nanos}", std::process::id())
}

impl TestDb {
    pub fn sqlite(name: &str) -> Self {
        let file = std::env::temp_dir().join(format!("{}.db", unique(name)));
        Self { url: format!("sqlite://{}?mode=rwc", file.display()), file: Some(file), pg: None }
    }

    /// A database of its own on the PostgreSQL server, or `None` when no server is configured.
    pub fn postgres(name: &str) -> Option<Self> {
        let admin = std::env::var("POLITY_TEST_DATABASE_URL").ok()?;
        let db = unique(name).to_lowercase();
        psql(&admin, &format!("CREATE DATABASE {db}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        Some(Self { url: format!("{base}/{db}"), file: None, pg: Some((admin, db)) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _gone = std::fs::remove_file(format!("{}{suffix}", f.display()));
            }
        }
        if let Some((admin, db)) = &self.pg {
            psql(admin, &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

/// Runs `polity console` on `db` with `script` as its input (and `POLITY_SECRET_KEY` when
/// given); returns what it printed, after checking it exited 0.
pub fn run_console(db: &str, secret_key: Option<&str>, script: &str) -> (String, String) {
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
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
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
