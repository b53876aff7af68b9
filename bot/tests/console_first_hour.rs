//! The first hour on the console, through the real `polity` binary, as a person types it: the
//! banner that says who and where you are, `/quit`, `/help` with the console's own lines, a
//! reply to a reaction that is no ballot, and `/export` writing the file it names. Each runs
//! on its own SQLite file, and again on PostgreSQL when `POLITY_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::TestDb;

const GOODBYE: &str = "Goodbye: what happened here is kept, and the next `polity console` goes on from it.";

fn banner(user: &str, channel: &str) -> String {
    format!("Polity console: you are {user} in {channel} of \"console\". /help lists commands, /quit ends.")
}

/// A directory of its own, removed with what is in it.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("polity_first_hour_{name}_{}_{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.0);
    }
}

/// `polity console` on `db` in `dir` (a named session with `session`; with `POLITY_SECRET_KEY`
/// when `key` is given), not yet given input.
fn start_with(db: &str, dir: &Path, session: Option<&str>, key: Option<&str>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.arg("console");
    if let Some(name) = session {
        cmd.args(["--session", name]);
    }
    cmd.env("DATABASE_URL", db)
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("POLITY_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        cmd.env("POLITY_SECRET_KEY", k);
    }
    cmd.spawn().unwrap()
}

fn start(db: &str, dir: &Path, session: Option<&str>) -> Child {
    start_with(db, dir, session, None)
}

/// Types `script` into a started console and returns what it printed, after checking it
/// exited 0.
fn finish(mut child: Child, script: &str) -> String {
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "polity console failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn run_in(db: &str, dir: &Path, session: Option<&str>, script: &str) -> String {
    finish(start(db, dir, session), script)
}

fn run(db: &str, script: &str) -> String {
    run_in(db, &std::env::temp_dir(), None, script)
}

/// Asserts that `out` holds each of `lines`, in this order (other lines may come between).
fn assert_in_order(out: &str, lines: &[&str]) {
    let mut rest = out.lines();
    for want in lines {
        assert!(rest.any(|l| l == *want), "missing, or out of order: {want}\n--- output ---\n{out}");
    }
}

fn the_banner_comes_first_and_says_who_and_where(db: &str) {
    let out = run(db, "/whoami\n");
    assert_eq!(out.lines().next(), Some(banner("admin", "#general").as_str()), "{out}");
    assert_eq!(out.matches("Polity console: ").count(), 1, "{out}");
    // It is the truth: /whoami agrees.
    assert!(out.contains("[only admin] You are admin, an admin."), "{out}");

    // A named session starts where it stopped, and its banner says so.
    let input = "/as bob\n/in #finance\n";
    let first = run_in(db, &std::env::temp_dir(), Some("first-hour"), input);
    assert_eq!(first.lines().next(), Some(banner("admin", "#general").as_str()), "{first}");
    let again = run_in(db, &std::env::temp_dir(), Some("first-hour"), input);
    assert_eq!(again, format!("{}\n", banner("bob", "#finance")), "nothing else is done twice");
}

fn quit_ends_the_session_with_a_goodbye(db: &str) {
    let out = run(
        db,
        "/kit install direct-democracy\n/as alice\n/as bob\n/as alice\n/propose Lunch at noon\n/quit\n/as bob\n+👍 1\n/whoami\n",
    );
    assert_in_order(
        &out,
        &[&banner("admin", "#general"), "[only alice] Proposal #1 is open, under \"Majority of members\".", GOODBYE],
    );
    assert!(out.contains("[#general] msg 1 by polity: Proposal #1: alice proposes: Lunch at noon"), "{out}");
    assert_eq!(out.lines().last(), Some(GOODBYE), "the goodbye is the last line:\n{out}");
    // Nothing typed after `/quit` was read.
    assert!(!out.contains("edited msg 1") && !out.contains("[only bob]"), "{out}");

    // `/exit` too; `/quit` with more after it is a mistake, and the session goes on.
    let out = run(db, "/quit now\n/whoami\n/exit\n/whoami\n");
    assert_in_order(
        &out,
        &[
            "[only admin] `/quit` takes nothing after it: it ends the session",
            "[only admin] You are admin, an admin.",
            GOODBYE,
        ],
    );
    assert_eq!(out.lines().last(), Some(GOODBYE), "{out}");
    assert_eq!(out.matches("You are admin").count(), 1, "nothing after `/exit` was read:\n{out}");

    // Quitting where a secret is asked for stores nothing: `/quit` is no secret.
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes, base64
    let child = start_with(db, &std::env::temp_dir(), None, Some(key));
    let out =
        finish(child, "/integration add discord main guild=42 base_url=http://127.0.0.1:9\n/quit\n/integration list\n");
    let asked = out.lines().position(|l| l.starts_with("[only admin] ") && l.contains("where only you see it"));
    assert!(asked.is_some(), "the secret was asked for:\n{out}");
    assert_eq!(out.lines().rev().take(2).collect::<Vec<_>>(), [GOODBYE, "[only admin] Nothing was stored."], "{out}");
    let out = finish(start_with(db, &std::env::temp_dir(), None, Some(key)), "/integration list\n");
    assert!(out.contains("[only admin] No platform is connected"), "{out}");

    // A named session run again on the same input stops at the same `/quit`.
    let input = "/as ann\n/quit\n/as ben\n/whoami\n";
    let first = run_in(db, &std::env::temp_dir(), Some("quitter"), input);
    assert_eq!(first, format!("{}\n{GOODBYE}\n", banner("admin", "#general")));
    let again = run_in(db, &std::env::temp_dir(), Some("quitter"), input);
    assert_eq!(again, format!("{}\n{GOODBYE}\n", banner("ann", "#general")));
}

fn help_shows_the_console_lines_besides_the_commands(db: &str) {
    let out = run(db, "/help\n/help propose\n");
    assert_in_order(
        &out,
        &[
            "[only admin] Commands:",
            "[only admin] /propose TEXT [policy:POLICY] — Put a decision to a vote.",
            "[only admin] /export [json|csv] — The governance record: proposals, ballots, decisions and the audit log.",
            "[only admin] On the console:",
            "[only admin] /as NAME — act as NAME (a new name is a new member); /as PLATFORM:ACCOUNT acts as an account on another platform",
            "[only admin] /in #CHANNEL — move to another channel",
            "[only admin] /wait DURATION — move the console's clock forward (90s, 15m, 72h, 3d, 1w, 1d12h), deciding what comes due",
            "[only admin] +EMOJI MSG — react to message number MSG: +👍 1 votes yes on a vote message (also +:+1: 1, +thumbsup 1)",
            "[only admin] -EMOJI MSG — take that reaction back: -👍 1",
            "[only admin] /quit, /exit — end the session (as the end of input does): what is pending is done first",
            "[only admin] any other line — a message in the current channel, numbered so it can be reacted to",
            // One command's help is about that command only.
            "[only admin] /propose TEXT [policy:POLICY] — Put a decision to a vote.",
        ],
    );
    for (usage, what) in polity_console::GRAMMAR {
        assert_eq!(out.matches(&format!("[only admin] {usage} — {what}\n")).count(), 1, "{usage}:\n{out}");
    }
    assert_eq!(out.matches("On the console:").count(), 1, "{out}");
}

fn a_reaction_that_is_no_ballot_is_answered(db: &str) {
    let options = "use 👍 yes, 👎 no, 🤷 abstain";
    let out = run(
        db,
        "/kit install direct-democracy\n/as alice\n/as bob\n/as alice\n/propose Buy a server\n+:smile: 1\nhello\n+👍 2\n\
         /as bob\n-:smile: 1\n+👍 1\n+thumbsup 1\n/as alice\n+:+1: 1\n/as admin\n+👎 1\n",
    );
    let smile = format!("[only alice] `:smile:` is not an option of proposal #1: {options}");
    let bob_smile = format!("[only bob] `:smile:` is not an option of proposal #1: {options}");
    let vote = out.lines().find(|l| l.starts_with("[#general] msg 1 by polity: ")).unwrap();
    assert!(vote.contains("Proposal #1: alice proposes: Buy a server — vote 👍 yes · 👎 no · 🤷 abstain"), "{out}");
    assert_in_order(
        &out,
        &[
            vote,
            &smile,
            "[#general] msg 2 by alice: hello",
            "[only alice] msg 2 is not a vote message: a reaction is a ballot only on a proposal's vote message (`/proposals` lists the open ones).",
            &bob_smile,
            "[#general] msg 3 by polity: Proposal #1 passed: alice proposes: Buy a server (yes 2 · no 0 · abstain 0 (2 of 3 voted))",
            "[only admin] Proposal #1 is closed (passed): its ballots no longer change.",
        ],
    );
    // The smiles cast nothing: bob's 👍 is the first ballot.
    let edits: Vec<&str> = out.lines().filter(|l| l.contains("edited msg 1")).collect();
    assert!(edits[0].ends_with("tally: yes 1 · no 0 · abstain 0 (1 of 3 voted)"), "{out}");
    // A reaction that is a ballot, or the same ballot again, gets no such reply.
    assert_eq!(out.matches("is not an option").count(), 2, "{out}");
    assert_eq!(out.matches("is not a vote message").count(), 1, "{out}");
    assert_eq!(out.matches("is closed (passed)").count(), 1, "{out}");
    assert!(!out.contains("Sorry"), "{out}");

    // A new process no longer holds the decided proposal: it is found in the record.
    let out = run(db, "-👍 1\n+🤷 3\n");
    assert_in_order(
        &out,
        &[
            "[only admin] Proposal #1 is closed (passed): its ballots no longer change.",
            "[only admin] msg 3 is not a vote message: a reaction is a ballot only on a proposal's vote message (`/proposals` lists the open ones).",
        ],
    );

    // The options listed are the vote's own.
    let lunch = r#"/policy install Lunch name = "Lunch"\nkind = "platform"\n[vote]\ntype = "choice"\noptions = ["Pizza", "Tacos"]"#;
    let out = run(db, &format!("{lunch}\n/propose Lunch? policy:Lunch\n+👍 4\n+2️⃣ 4\n"));
    assert!(out.contains("[#general] msg 4 by polity: Proposal #2: admin proposes: Lunch?"), "{out}");
    assert!(
        out.contains("[only admin] `👍` is not an option of proposal #2: use 1️⃣ Pizza, 2️⃣ Tacos, 🤷 abstain\n"),
        "{out}"
    );
    assert_eq!(out.matches("is not an option").count(), 1, "2️⃣ is one: {out}");
}

/// The path `/export` said it wrote, and the size it gave.
fn written(line: &str) -> (PathBuf, u64) {
    let rest = line.strip_prefix("[only alice] The governance record is written to ").unwrap();
    let (path, size) = rest.rsplit_once(" (").unwrap();
    (PathBuf::from(path), size.strip_suffix(" bytes).").unwrap().parse().unwrap())
}

fn export_writes_the_file_it_names(db: &str) {
    let dir = TempDir::new("export");
    let out = run_in(
        db,
        &dir.0,
        None,
        "/kit install direct-democracy\n/as alice\n/propose Buy a server\n/export\n/export csv\n/export json\n",
    );
    let said: Vec<(PathBuf, u64)> =
        out.lines().filter(|l| l.contains("The governance record is written to ")).map(written).collect();
    assert_eq!(said.len(), 3, "{out}");
    let here = dir.0.canonicalize().unwrap();
    for (path, size) in &said {
        assert!(path.is_absolute(), "{}", path.display());
        assert_eq!(path.parent().unwrap().canonicalize().unwrap(), here, "written where the console runs");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("polity-export-console-"), "{name}");
        assert_eq!(std::fs::metadata(path).unwrap().len(), *size, "{name}");
    }
    let (json, csv, again) = (&said[0].0, &said[1].0, &said[2].0);
    assert_ne!(json, again, "a second export is a file of its own");
    assert!(json.extension().is_some_and(|e| e == "json") && again.extension().is_some_and(|e| e == "json"));
    assert!(csv.extension().is_some_and(|e| e == "csv"));
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(doc["communities"][0]["name"], "console", "{doc:#}");
    assert_eq!(doc["communities"][0]["proposals"][0]["action"]["summary"], "Buy a server", "{doc:#}");
    let table = std::fs::read_to_string(csv).unwrap();
    assert_eq!(table.lines().next(), Some("community,record,proposal,at,who,what,detail"));
    assert!(table.contains("Buy a server"), "{table}");
    // The record is in the files, not on the screen.
    assert!(!out.contains("\"communities\"") && !out.contains("community,record"), "{out}");

    // Where no file can be written, it says so and shows the record instead.
    let gone = TempDir::new("gone");
    let child = start(db, &gone.0, None);
    std::fs::remove_dir(&gone.0).unwrap();
    let out = finish(child, "/as alice\n/export\n");
    assert!(
        out.contains(
            "[only alice] The governance record could not be written: the current directory cannot be found ("
        ),
        "{out}"
    );
    assert!(out.contains(". Here it is instead:\n[only alice] {\n"), "{out}");
    assert!(out.contains("\"Buy a server\""), "{out}");
    assert!(!out.contains("is written to"), "{out}");
}

on_every_database!(
    the_banner_comes_first_and_says_who_and_where,
    quit_ends_the_session_with_a_goodbye,
    help_shows_the_console_lines_besides_the_commands,
    a_reaction_that_is_no_ballot_is_answered,
    export_writes_the_file_it_names
);
