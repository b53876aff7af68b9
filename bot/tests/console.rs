//! Console scenarios through the real `polity` binary: what a person trying Polity sees.
//! Each runs on its own SQLite file, and again on PostgreSQL when
//! `POLITY_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use support::TestDb;

fn run(db: &str, script: &str) -> String {
    support::run_console(db, None, script).0
}

fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

/// Messages the bot posted (not its edits).
fn posts_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    lines_with(out, needle).into_iter().filter(|l| !l.contains("] edited msg")).collect()
}

const MEMBERS: &str = "/kit install direct-democracy\n/as alice\n/as bob\n/as carol\n";

fn passes_early_by_reactions(db: &str) {
    let out = run(
        db,
        &format!("{MEMBERS}/as alice\n/propose Buy a new server\n+:+1: 1\n/as bob\n+👍 1\n/as carol\n+thumbsup 1\n"),
    );
    let vote = posts_with(&out, "msg 1 by polity: Proposal #1: alice proposes: Buy a new server");
    assert_eq!(vote.len(), 1, "{out}");
    assert!(vote[0].starts_with("[#general] msg 1 by polity:"), "{out}");
    assert!(out.contains("[only admin] The starter kit direct-democracy is installed:"), "{out}");
    assert!(out.contains("[only alice] Proposal #1 is open, under \"Majority of members\"."), "{out}");
    // The live tally after each ballot, then the outcome.
    assert!(
        out.contains("edited msg 1 by polity:") && out.contains("yes 1 · no 0 · abstain 0 (1 of 4 voted)"),
        "{out}"
    );
    assert!(out.contains("yes 2 · no 0 · abstain 0 (2 of 4 voted)"), "{out}");
    let announced = lines_with(&out, "passed: alice proposes: Buy a new server");
    assert_eq!(announced.len(), 1, "{out}");
    assert!(announced[0].starts_with("[#general] msg 2 by polity: Proposal #1 passed"), "{out}");
    assert!(lines_with(&out, "edited msg 1").last().unwrap().ends_with("PASSED"), "{out}");
}

fn the_deadline_decides(db: &str) {
    let out = run(db, &format!("{MEMBERS}/as alice\n/propose Weekly calls\n+👍 1\n/as bob\n+👎 1\n/wait 71h\n"));
    assert!(!out.contains("Proposal #1 failed") && !out.contains("Proposal #1 passed"), "{out}");
    let out = run(db, "/as carol\n+👎 1\n/wait 72h\n");
    assert!(out.contains("msg 2 by polity: Proposal #1 failed: alice proposes: Weekly calls"), "{out}");
}

fn a_restart_in_the_middle_of_a_vote(db: &str) {
    let first = run(db, &format!("{MEMBERS}/as alice\n/propose Adopt the style guide\n+👍 1\n"));
    assert!(first.contains("(1 of 4 voted)"), "{first}");
    assert!(!first.contains("passed"), "{first}");
    // A new process on the same database: the ballot cast before is still there.
    let second = run(db, "/as bob\n+👍 1\n/as carol\n+👍 1\n");
    assert!(second.contains("(2 of 4 voted)"), "{second}");
    assert!(second.contains("msg 2 by polity: Proposal #1 passed"), "{second}");
    // Message numbers continue where they stopped.
    let third = run(db, "/as alice\n/propose Another\n");
    assert!(third.contains("msg 3 by polity: Proposal #2: alice proposes: Another"), "{third}");
}

fn mistakes_get_clear_replies(db: &str) {
    let out = run(db, "/propose Nothing governs this\n+👍 99\n/as two words\n/wait soon\n/frobnicate\n/vote 7 yes\n");
    assert!(out.contains("[only admin] no policy decides plain proposals yet"), "{out}");
    assert!(out.contains("[only admin] There is no message 99 here."), "{out}");
    assert!(out.contains("[only admin] `/as NAME` takes one name"), "{out}");
    assert!(out.contains("[only admin] `/wait DURATION`"), "{out}");
    assert!(out.contains("[only admin] There is no command /frobnicate"), "{out}");
    assert!(out.contains("[only admin] there is no proposal #7"), "{out}");
}

/// Starts the console, types `lines` one by one, and kills the process (SIGKILL, no chance to
/// flush anything) as soon as it has printed a line containing `until`.
fn kill_after(db: &str, lines: &str, until: &str) -> String {
    use std::io::{BufRead, BufReader};
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
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(lines.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(until) {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    seen
}

fn killed_and_restarted(db: &str) {
    // Killed right after bob's ballot shows in the tally, with standard input still open.
    let before = kill_after(
        db,
        &format!("{MEMBERS}/as alice\n/propose Move to Fridays\n+👍 1\n/as bob\n+👍 1\n"),
        "(2 of 4 voted)",
    );
    assert!(before.contains("(2 of 4 voted)"), "{before}");
    let after = run(db, "/as carol\n+👍 1\n");
    assert!(after.contains("(3 of 4 voted) — PASSED"), "{after}");
    assert_eq!(posts_with(&after, "Proposal #1 passed").len(), 1, "{after}");
}

/// A line that is not UTF-8 is refused, and the next line is answered.
fn a_line_that_is_not_text_is_refused_and_the_session_goes_on(db: &str) {
    let (out, _) = support::run_console_bytes(db, None, b"hello \xff\n/help\n\xc3\n/whoami\n");
    assert_eq!(lines_with(&out, "That line was not read: it is not UTF-8 text (byte 7 is not)").len(), 1, "{out}");
    assert!(out.contains("That line was not read: it is not UTF-8 text (byte 1 is not). Nothing was done."), "{out}");
    assert!(out.contains("/propose"), "/help was answered: {out}");
    assert!(out.contains("[only admin] You are admin"), "/whoami was answered: {out}");
    assert!(!out.contains("msg 1 by admin"), "nothing was posted: {out}");
}

/// `/wait` past the last representable day is refused; the clock stays where it was.
fn waiting_past_the_end_of_time_is_refused(db: &str) {
    let waits = "/wait 3650d\n".repeat(1000);
    let out = run(db, &format!("{waits}/propose After the end\n"));
    let refused = lines_with(&out, "`/wait`: the console's clock cannot go past the year 9999.");
    assert!(refused.len() > 50 && refused.len() < 1000, "{} refusals", refused.len());
    assert!(out.contains("no policy decides plain proposals yet"), "the session went on: {out}");
    // The clock is kept: a new session is still at the end of time.
    let again = run(db, "/wait 3650d\n");
    assert!(again.contains("cannot go past the year 9999"), "{again}");
}

on_every_database!(
    a_line_that_is_not_text_is_refused_and_the_session_goes_on,
    waiting_past_the_end_of_time_is_refused,
    passes_early_by_reactions,
    the_deadline_decides,
    a_restart_in_the_middle_of_a_vote,
    killed_and_restarted,
    mistakes_get_clear_replies
);
