//! The console keeps Polity's promises through SIGKILL: a busy named session (20 proposals,
//! about a hundred reactions with changes and removals, deadlines passing) is killed at
//! many points and run again on the same input each time, and its record ends the same as
//! an uninterrupted run's: every proposal, ballot, decision and audit line, every vote
//! message and announcement posted at most once, under the same number.
//!
//! The kill points are drawn from a fixed seed; `POLITY_CRASH_KILLS=N` asks for more kills
//! (a longer run, for benchmarks and soak testing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use support::TestDb;

/// A small deterministic generator (xorshift), so the kill points are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const MEMBERS: [&str; 6] = ["ann", "ben", "cat", "dan", "eve", "fay"];
const PROPOSALS: u64 = 20;

/// The busy scenario: 20 proposals (vote messages 1 to 20), then reactions, changed and
/// taken back, in a drawn order, with members chatting and deadlines passing in between.
fn scenario() -> String {
    let mut rng = Rng(0x5EED_CAFE);
    let mut s = String::from("/kit install direct-democracy\n");
    for m in MEMBERS {
        s.push_str(&format!("/as {m}\n"));
    }
    for p in 1..=PROPOSALS {
        let who = MEMBERS[rng.below(MEMBERS.len() as u64) as usize];
        s.push_str(&format!("/as {who}\n/propose Item {p}\n"));
    }
    let emoji = ["👍", "👎", "🤷"];
    for i in 0..100 {
        let who = MEMBERS[rng.below(MEMBERS.len() as u64) as usize];
        let msg = 1 + rng.below(PROPOSALS);
        let e = emoji[rng.below(3) as usize];
        let sign = if rng.below(5) == 0 { '-' } else { '+' };
        s.push_str(&format!("/as {who}\n{sign}{e} {msg}\n"));
        if i % 40 == 39 {
            s.push_str("/wait 24h\n");
        }
        if i % 10 == 4 {
            s.push_str(&format!("Chat {i}\n"));
        }
    }
    s.push_str("/wait 73h\n/proposals\n");
    s
}

fn console(db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.args(["console", "--session", "crash"])
        .env("DATABASE_URL", db)
        .env_remove("POLITY_DATABASE_URL")
        .env("RUST_LOG", "error")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Runs the whole input; kills the process after `kill_after` lines of output, if it gets
/// that far. Returns what it printed and whether it ended by itself.
fn run(db: &str, input: &str, kill_after: Option<usize>) -> (Vec<String>, bool) {
    let mut child = console(db).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        // A killed process closes the pipe: the rest of the input is not needed.
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut printed = Vec::new();
    let mut killed = false;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        printed.push(line.unwrap());
        if Some(printed.len()) == kill_after {
            child.kill().unwrap();
            killed = true;
            break;
        }
    }
    let status = child.wait().unwrap();
    writer.join().unwrap();
    assert!(killed || status.success(), "the console failed: {status}\n{}", printed.join("\n"));
    (printed, !killed)
}

fn export(db: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_polity"))
        .args(["export", "--format", "json"])
        .env("DATABASE_URL", db)
        .env_remove("POLITY_DATABASE_URL")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The record without its times (two runs happen at different moments).
fn timeless(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !(k.ends_with("_at") || *k == "at" || *k == "id" && m.contains_key("event")))
                .map(|(k, v)| (k.clone(), timeless(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(timeless).collect()),
        Value::String(s) => Value::String(without_dates(s)),
        other => other.clone(),
    }
}

/// Text with its dates and times (`2026-12-04 11:22:35 UTC`) taken out.
fn without_dates(s: &str) -> String {
    let mut out = String::new();
    for word in s.split(' ') {
        let is_date = word.len() >= 10 && word.as_bytes()[4] == b'-' && word[..4].bytes().all(|b| b.is_ascii_digit());
        let is_time = word.len() == 8 && word.as_bytes()[2] == b':' && word.as_bytes()[5] == b':';
        out.push_str(if is_date {
            "DATE"
        } else if is_time {
            "TIME"
        } else {
            word
        });
        out.push(' ');
    }
    out
}

/// Each message posted (not edits), by number: vote messages, announcements, members' chat.
fn posts(lines: &[String]) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for l in lines {
        let Some(rest) = l.strip_prefix("[#general] msg ") else { continue };
        let Some((n, text)) = rest.split_once(" by ") else { continue };
        out.entry(n.parse().unwrap()).or_default().push(without_dates(text));
    }
    out
}

fn killed_at_many_points(db_whole: &str, db_killed: &str) {
    let input = scenario();
    let (whole, ended) = run(db_whole, &input, None);
    assert!(ended);
    let expected = posts(&whole);
    assert_eq!(
        expected.values().filter(|t| t[0].starts_with("polity: ") && t[0].contains(" — vote ")).count(),
        PROPOSALS as usize,
        "every proposal's vote was posted: {expected:#?}"
    );
    let announced = expected.values().filter(|t| t[0].contains(" passed: ") || t[0].contains(" failed: ")).count();
    assert!(announced >= PROPOSALS as usize / 2, "the scenario decides proposals: {expected:#?}");

    let kills: usize = std::env::var("POLITY_CRASH_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(12);
    let mut rng = Rng(0xC0FF_EE11);
    let mut all = Vec::new();
    let mut runs = 0;
    loop {
        // Early kills are denser: a restarted run prints only what is left.
        let kill_after = (runs < kills).then(|| 1 + rng.below(12) as usize);
        let (printed, ended) = run(db_killed, &input, kill_after);
        all.extend(printed);
        runs += 1;
        if ended {
            break;
        }
        assert!(runs < kills + 5, "the session never finished");
    }

    // Nothing posted twice, and each post under the number the uninterrupted run gave it.
    let seen = posts(&all);
    for (n, texts) in &seen {
        assert_eq!(texts.len(), 1, "message {n} was posted {} times: {texts:#?}", texts.len());
        assert_eq!(Some(&texts[0]), expected.get(n).map(|t| &t[0]), "message {n} differs");
    }
    // The record: every proposal, ballot, decision and audit line the same.
    let (a, b) = (timeless(&export(db_whole)), timeless(&export(db_killed)));
    let proposals = |v: &Value| v["communities"][0]["proposals"].clone();
    assert_eq!(proposals(&a), proposals(&b), "proposals, ballots and decisions differ");
    let audit = |v: &Value| v["communities"][0]["audit"].clone();
    assert_eq!(audit(&a), audit(&b), "the audit logs differ");
}

fn killed_at_many_points_on(db: &str) {
    // `db` is the killed run's; the uninterrupted run gets a database of its own.
    let whole = if db.starts_with("sqlite") {
        TestDb::sqlite("console_crash_whole")
    } else {
        TestDb::postgres("console_crash_whole").unwrap()
    };
    killed_at_many_points(whole.url(), db);
}

/// Sending lines a named session handled before changes nothing: not even `/wait`.
fn a_resent_input_is_a_duplicate(db: &str) {
    let input =
        "/kit install direct-democracy\n/as ann\n/as ben\n/as ann\n/propose Resend\n+👍 1\n/as ben\n+👎 1\n/wait 71h\n";
    let (first, _) = run(db, input, None);
    assert!(first.iter().any(|l| l.contains("(2 of 3 voted)")), "{first:#?}");
    let (again, _) = run(db, input, None);
    // Only the banner, which says where the session goes on: as ben.
    let banner = "Polity console: you are ben in #general of \"console\". /help lists commands, /quit ends.";
    assert_eq!(again, [banner], "nothing is done twice: {again:#?}");
    // The session continues where it was: as ben, 71 hours on; 2 more hours pass the deadline.
    let (more, _) = run(db, &format!("{input}/whoami\n/wait 2h\n"), None);
    assert!(more.iter().any(|l| l.starts_with("[only ben]")), "{more:#?}");
    assert!(more.iter().any(|l| l.contains("msg 2 by polity: Proposal #1 failed")), "{more:#?}");
}

on_every_database!(killed_at_many_points_on, a_resent_input_is_a_duplicate);
