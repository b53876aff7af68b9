//! `/link` across two platforms and `/policy dry-run`, through the real binary. Linking is
//! interactive: the code the bot shows is read from its output and typed back as the other
//! account.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::TestDb;

struct Console {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
    seen: String,
}

impl Console {
    fn start(db: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_polity"))
            .arg("console")
            .env("DATABASE_URL", db)
            .env_remove("POLITY_DATABASE_URL")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        Self { child, stdin, out, seen: String::new() }
    }

    fn type_lines(&mut self, lines: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Reads output until a line contains `needle`; returns that line.
    fn until(&mut self, needle: &str) -> String {
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "output ended before {needle:?}:\n{}", self.seen);
            self.seen.push_str(&line);
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Ends input and returns everything printed.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        assert!(self.child.wait().unwrap().success());
        self.seen + rest.as_str()
    }
}

fn link_across_two_platforms(db: &str) {
    let mut c = Console::start(db);
    c.type_lines("/as alice\n/link discord 1234\n");
    let line = c.until("/link confirm");
    let code: String = line.split("/link confirm ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{line}");
    // The wrong account, a wrong code, then the right one; then the code is spent.
    c.type_lines(&format!(
        "/as discord:999\n/link confirm {code}\n/as discord:1234\n/link confirm 12345x\n/link confirm {code}\n/whoami\n/link confirm {code}\n"
    ));
    // A code not used within ten minutes expires.
    c.type_lines("/as alice\n/link slack U55\n");
    let line = c.until("on slack as U55");
    let late: String = line.split("/link confirm ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    c.type_lines(&format!("/wait 11m\n/as slack:U55\n/link confirm {late}\n"));
    let out = c.finish();
    assert!(out.contains("[only slack:U55] That code has expired: run /link again for a new one."), "{out}");
    assert!(
        out.contains("[only discord:999] That code is not for this account: type it as the account you named."),
        "{out}"
    );
    assert!(out.contains("[only discord:1234] That code is wrong"), "{out}");
    assert!(out.contains("[only discord:1234] discord:1234 is now linked to alice."), "{out}");
    assert!(out.contains("[only discord:1234] You are alice."), "{out}");
    assert!(out.contains("accounts: console:alice (first seen), discord:1234 (confirmed by code)"), "{out}");
    assert!(out.contains("[only discord:1234] discord:1234 already belongs to alice"), "{out}");
}

fn dry_run_of_a_new_policy(db: &str) {
    let mut c = Console::start(db);
    c.type_lines("/as alice\nHello all\n/as bob\nA second message\n/as admin\n");
    c.until("A second message");
    let policy =
        r#"/policy install Gate name = "Gate"\nkind = "platform"\nactions = ["console.message"]\n[vote]\nquorum = 1"#;
    c.type_lines(&format!(
        "{policy}\n/policy dry-run Gate since:1h\n/policy dry-run Nope\n/policy dry-run Gate since:soon\n"
    ));
    let out = c.finish();
    assert!(out.contains("[only admin] \"Gate\" is installed: a platform policy."), "{out}");
    assert!(out.contains("In the last 1h, \"Gate\" would have (nothing of this was done):"), "{out}");
    assert!(out.contains("would undo console.message by console:alice"), "{out}");
    assert!(out.contains("would open proposal #1 and its vote: alice posted in #general: Hello all"), "{out}");
    assert!(out.contains("would undo console.message by console:bob"), "{out}");
    assert!(out.contains("There is no policy named \"Nope\""), "{out}");
    assert!(out.contains("since: `soon` is not a duration"), "{out}");
    // Nothing was done: no message was hidden, no vote was posted.
    assert!(!out.contains("polity hid msg"), "{out}");
    assert!(!out.contains("by polity: Proposal #"), "{out}");
}

#[test]
fn linking_accounts_across_two_platforms() {
    link_across_two_platforms(TestDb::sqlite("link").url());
    if let Some(db) = TestDb::postgres("link") {
        link_across_two_platforms(db.url());
    }
}

#[test]
fn a_dry_run_shows_what_a_new_policy_would_have_done() {
    dry_run_of_a_new_policy(TestDb::sqlite("dry_run").url());
    if let Some(db) = TestDb::postgres("dry_run") {
        dry_run_of_a_new_policy(db.url());
    }
}

fn guessing_codes_is_stopped(db: &str) {
    let mut c = Console::start(db);
    c.type_lines("/as alice\n/link discord 4321\n");
    let line = c.until("/link confirm");
    let code: String = line.split("/link confirm ").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    let wrong = if code == "000001" { "000002" } else { "000001" };
    let guesses = format!("/link confirm {wrong}\n").repeat(5);
    c.type_lines(&format!("/as discord:4321\n{guesses}/link confirm {code}\n"));
    let out = c.finish();
    assert_eq!(out.matches("That code is wrong").count(), 5, "{out}");
    assert!(out.contains("[only discord:4321] Too many wrong codes from this account"), "{out}");
    assert!(!out.contains("is now linked"), "{out}");
}

fn a_passed_change_that_cannot_be_carried_out_is_announced(db: &str) {
    let script = "/kit install moderators\n/role create treasurer\n/as alice\n/role request treasurer\n\
                  /as admin\n/role delete treasurer\n+👍 1\n";
    let mut c = Console::start(db);
    c.type_lines(script);
    let out = c.finish();
    assert!(out.contains("Proposal #1 asks to give alice the role treasurer"), "{out}");
    assert!(
        out.contains("by polity: Proposal #1 passed, but give alice the role treasurer could not be carried out: there is no role `treasurer`"),
        "{out}"
    );
}

#[test]
fn guessing_link_codes_is_stopped_after_five_wrong_ones() {
    guessing_codes_is_stopped(TestDb::sqlite("guess").url());
}

#[test]
fn a_change_that_can_no_longer_be_carried_out_is_announced_not_hidden() {
    a_passed_change_that_cannot_be_carried_out_is_announced(TestDb::sqlite("unapplied").url());
}
