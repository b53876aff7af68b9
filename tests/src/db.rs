//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database when
//! `POLITY_TEST_DATABASE_URL` is set, dropped when the test ends. A test whose PostgreSQL
//! half is skipped for want of that variable says so on standard error.

use std::path::PathBuf;
use std::process::Command;

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

    /// A database of its own on the PostgreSQL server, or `None` when no server is configured
    /// (and then the test says that its PostgreSQL half is skipped).
    pub fn postgres(name: &str) -> Option<Self> {
        let Some(admin) = std::env::var("POLITY_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            skipped_postgres(name);
            return None;
        };
        let db = unique(name).to_lowercase();
        psql(&admin, &format!("CREATE DATABASE {db}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
        Some(Self { url: format!("{base}/{db}"), file: None, pg: Some((admin, db)) })
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Says that the PostgreSQL half of the running test did not run, so that a test that did
/// nothing there never passes in silence: `skipped: the PostgreSQL half of TEST
/// (POLITY_TEST_DATABASE_URL is not set)`. Written straight to the process's standard error,
/// so it shows beside the test's `ok`: libtest keeps a passing test's `eprintln!` to itself
/// unless run with `--nocapture`. The test is the running thread's (libtest names each test's thread
/// after it), else `name`. For tests that make their PostgreSQL database some other way.
pub fn skipped_postgres(name: &str) {
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or(name);
    let line = format!("skipped: the PostgreSQL half of {test} (POLITY_TEST_DATABASE_URL is not set)\n");
    // Nowhere to say it is nothing to fail a test over.
    let _unsaid = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
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
