//! A test whose PostgreSQL half did not run (no `POLITY_TEST_DATABASE_URL`) still passes,
//! and says so where its `ok` shows, with or without `--nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use polity_tests::db::TestDb;
use std::process::Command;

/// A test with a PostgreSQL half and nothing else; run by the test below without the variable.
#[test]
fn only_a_postgresql_half() {
    if let Some(db) = TestDb::postgres("operator_skips") {
        assert!(db.url().starts_with("postgres"), "{}", db.url());
    }
}

#[test]
fn a_skipped_postgresql_half_says_so_and_passes() {
    for capture in [true, false] {
        let mut run = Command::new(std::env::current_exe().unwrap());
        run.args(["--exact", "only_a_postgresql_half"]).env_remove("POLITY_TEST_DATABASE_URL");
        if !capture {
            run.arg("--nocapture");
        }
        let out = run.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        let said = "skipped: the PostgreSQL half of only_a_postgresql_half (POLITY_TEST_DATABASE_URL is not set)";
        assert_eq!(stderr.matches(said).count(), 1, "capture {capture}: {stderr}");
    }
}
