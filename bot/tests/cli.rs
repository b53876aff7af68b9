//! The `polity` command line through the real binary: `export`, `policy check`,
//! `policy test`, `run` without a platform, and a configuration file with a typo. Each test
//! runs in a directory of its own (so no stray `polity.toml` is read) on its own SQLite file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use polity::store::Store;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::TestDb;

/// A directory of its own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("polity_cli_{name}_{}_{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _gone = std::fs::remove_dir_all(&self.0);
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs `polity ARGS` in `dir` with `stdin`, on the database `db` (if any) and the secret key
/// `key` (if any); nothing else from the environment reaches it.
fn polity(dir: &TempDir, db: Option<&str>, key: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polity"));
    cmd.args(args)
        .current_dir(&dir.0)
        .env_remove("POLITY_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("POLITY_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(db) = db {
        cmd.env("DATABASE_URL", db);
    }
    if let Some(key) = key {
        cmd.env("POLITY_SECRET_KEY", key);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

// ===================================================================== export

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const TOKEN: &str = "xoxb-never-export-this-token";
const PROPOSAL: &str = "Buy a new server, the \"big\" one";

/// A record of CSV, parsed the way RFC 4180 readers do, to check the quoting round-trips.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => {
                assert!(field.is_empty(), "a quote inside an unquoted field: {field}");
                quoted = true;
            }
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(!quoted && field.is_empty() && row.is_empty(), "the CSV does not end with a whole line");
    rows
}

#[tokio::test]
async fn export_after_a_console_scenario() {
    let dir = TempDir::new("export");
    let db = TestDb::sqlite("cli_export");
    let script = format!(
        "/kit install direct-democracy\n/as alice\n/as bob\n/as carol\n/as alice\n/propose {PROPOSAL}\n\
         +:+1: 1\n/as bob\n+👍 1\n/as carol\n+thumbsup 1\n"
    );
    let console = polity(&dir, Some(db.url()), None, &["console"], &script);
    assert!(console.success() && console.stdout.contains("Proposal #1 passed"), "{console}");

    // A platform connection with a token: nothing of it may reach the export.
    let store = Store::connect(db.url()).await.unwrap().with_secret_key(Some(KEY));
    let (community, _) = store.communities().await.unwrap()[0].clone();
    store
        .put_connection(community, "slack-eng", "slack", &json!({"team": "T-secret-team"}), Some(TOKEN))
        .await
        .unwrap();
    drop(store);

    // JSON, the default.
    let out = polity(&dir, Some(db.url()), Some(KEY), &["export"], "");
    assert!(out.success(), "{out}");
    assert!(!out.stdout.contains(TOKEN) && !out.stdout.contains("T-secret-team"), "{out}");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    let communities = doc["communities"].as_array().unwrap();
    assert_eq!(communities.len(), 1, "{doc:#}");
    let c = &communities[0];
    assert_eq!(c["name"], "console");
    assert_eq!(c["id"], community.0);
    let proposals = c["proposals"].as_array().unwrap();
    assert_eq!(proposals.len(), 1, "{doc:#}");
    let p = &proposals[0];
    assert_eq!(p["id"], 1);
    assert_eq!(p["state"], "passed");
    assert_eq!(p["policy"], "Majority of members");
    assert_eq!(p["proposer"], "alice");
    assert_eq!(p["action"]["kind"], "polity.propose");
    assert_eq!(p["action"]["summary"], PROPOSAL);
    assert_eq!(p["action"]["initiator"], "console:alice");
    assert!(p["opened_at"].is_string() && p["closes_at"].is_string() && p["decided_at"].is_string(), "{p:#}");
    assert_eq!(p["winner"], "yes");
    assert_eq!(p["tally"]["options"], json!([{"option": "yes", "votes": 3}, {"option": "no", "votes": 0}]));
    assert_eq!((p["tally"]["cast"].as_u64(), p["tally"]["eligible"].as_u64()), (Some(3), Some(4)));
    assert_eq!(p["decision"]["outcome"], "passed");
    assert_eq!(p["decision"]["at"], p["decided_at"]);
    assert!(p["decision"]["text"].as_str().unwrap().starts_with("Proposal #1 passed"), "{p:#}");
    let ballots = p["ballots"].as_array().unwrap();
    let voters: Vec<&str> = ballots.iter().map(|b| b["voter"].as_str().unwrap()).collect();
    assert_eq!(voters, ["alice", "bob", "carol"], "{p:#}");
    for b in ballots {
        assert_eq!(b["proposal"], 1);
        assert_eq!(b["choice"], "yes");
        assert_eq!(b["via"], "reaction");
        assert_eq!(b["account"], format!("console:{}", b["voter"].as_str().unwrap()));
        assert!(b["cast_at"].is_string(), "{b:#}");
    }
    // The audit log, oldest first: opened, three ballots, decided.
    let audit = c["audit"].as_array().unwrap();
    let ids: Vec<i64> = audit.iter().map(|a| a["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let about_1: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a["proposal"] == 1)
        .map(|a| (a["event"].as_str().unwrap(), a["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        about_1,
        [
            ("proposed", "proposal #1 opened for polity.propose under \"Majority of members\""),
            ("ballot_cast", "console:alice voted yes on #1"),
            ("ballot_cast", "console:bob voted yes on #1"),
            ("ballot_cast", "console:carol voted yes on #1"),
            ("decided", "proposal #1 passed"),
        ],
        "{doc:#}"
    );
    let alice_voted = audit.iter().find(|a| a["event"] == "ballot_cast").unwrap();
    assert_eq!(alice_voted["who"], "alice");

    // CSV: the header, then one row per record, quoted where needed.
    let out = polity(&dir, Some(db.url()), Some(KEY), &["export", "--format", "csv"], "");
    assert!(out.success(), "{out}");
    assert!(!out.stdout.contains(TOKEN) && !out.stdout.contains("T-secret-team"), "{out}");
    assert_eq!(out.stdout.lines().next(), Some("community,record,proposal,at,who,what,detail"));
    let proposal_line = out.stdout.lines().find(|l| l.starts_with("console,proposal,1,")).unwrap();
    assert!(
        proposal_line
            .ends_with(r#",alice,polity.propose,"policy ""Majority of members"": Buy a new server, the ""big"" one""#),
        "{proposal_line}"
    );
    let rows = parse_csv(&out.stdout);
    assert!(rows.iter().all(|r| r.len() == 7), "{rows:?}");
    let of = |record: &str| rows.iter().filter(|r| r[1] == record).collect::<Vec<_>>();
    let proposal = of("proposal");
    assert_eq!(proposal.len(), 1, "{rows:?}");
    assert_eq!(proposal[0][6], format!("policy \"Majority of members\": {PROPOSAL}"));
    assert_eq!(proposal[0][3], p["opened_at"].as_str().unwrap());
    let ballots: Vec<(&str, &str, &str)> =
        of("ballot").iter().map(|r| (r[4].as_str(), r[5].as_str(), r[6].as_str())).collect();
    assert_eq!(
        ballots,
        [
            ("alice", "yes", "console:alice via reaction"),
            ("bob", "yes", "console:bob via reaction"),
            ("carol", "yes", "console:carol via reaction")
        ]
    );
    let decision = of("decision");
    assert_eq!(decision.len(), 1, "{rows:?}");
    assert_eq!(decision[0][2..6], ["1", p["decided_at"].as_str().unwrap(), "Majority of members", "passed"]);
    assert_eq!(decision[0][6], "winner yes; yes 3 · no 0 · abstain 0 (3 of 4 voted)");
    let audit_rows = of("audit");
    assert_eq!(audit_rows.len(), audit.len());
    assert!(audit_rows.iter().all(|r| r[0] == "console"), "{rows:?}");
    assert!(audit_rows.iter().any(|r| r[5] == "proposed" && r[6] == about_1[0].1), "{rows:?}");

    // One community by name; an unknown name is an error that says which exist.
    let out = polity(&dir, Some(db.url()), Some(KEY), &["export", "--community", "console"], "");
    assert!(out.success(), "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap()["communities"].as_array().unwrap().len(), 1);
    let out = polity(&dir, Some(db.url()), Some(KEY), &["export", "--community", "nope"], "");
    assert!(!out.success(), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(out.stderr.contains("there is no community named `nope`") && out.stderr.contains("`console`"), "{out}");
}

#[test]
fn export_of_an_empty_database() {
    let dir = TempDir::new("export_empty");
    let db = TestDb::sqlite("cli_export_empty");
    let out = polity(&dir, Some(db.url()), None, &["export"], "");
    assert!(out.success(), "{out}");
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), json!({"communities": []}));
    let out = polity(&dir, Some(db.url()), None, &["export", "--format", "csv"], "");
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "community,record,proposal,at,who,what,detail\n");
    let out = polity(&dir, Some(db.url()), None, &["export", "--format", "xml"], "");
    assert!(!out.success() && out.stderr.contains("xml"), "{out}");
}

// ===================================================================== policy check / test

const BIG_EXPENSES: &str = r#"name = "Big expenses need a vote"
kind = "trigger"
actions = ["opencollective.expense_created"]
filter = "action.amount > 50000"

[vote]
on = "console:#finance"
voters = "everyone"
quorum = 3
pass = "2/3"
closes = "72h"

[pass]
do = [{ action = "message", text = "Approved: {{action.description}}" }]

[fail]
do = [{ action = "message", text = "Rejected: {{action.description}}" }]
"#;

#[test]
fn policy_check_a_valid_and_a_broken_file() {
    let dir = TempDir::new("check");
    let good = dir.file("big.toml", BIG_EXPENSES);
    let out = polity(&dir, None, None, &["policy", "check", good.to_str().unwrap()], "");
    assert!(out.success(), "{out}");
    assert!(
        out.stdout.contains(
            "\"Big expenses need a vote\" is a valid trigger policy covering opencollective.expense_created."
        ),
        "{out}"
    );

    let bad_threshold = dir.file("threshold.toml", &BIG_EXPENSES.replace("pass = \"2/3\"", "pass = \"most\""));
    let out = polity(&dir, None, None, &["policy", "check", bad_threshold.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1), "{out}");
    let expected = format!("{}:10: `pass = \"most\"` is not a threshold", bad_threshold.display());
    assert!(out.stderr.lines().any(|l| l.starts_with(&expected)), "{out}");
    assert!(out.stdout.is_empty(), "{out}");

    let typo = dir.file("typo.toml", &BIG_EXPENSES.replace("closes = \"72h\"", "closes = \"72h\"\ncolour = 3"));
    let out = polity(&dir, None, None, &["policy", "check", typo.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1), "{out}");
    let expected = format!("{}:12: unknown field `colour`", typo.display());
    assert!(out.stderr.lines().any(|l| l.starts_with(&expected)), "{out}");

    let script = dir.file("script.toml", &BIG_EXPENSES.replace("action.amount > 50000", "action.amount >"));
    let out = polity(&dir, None, None, &["policy", "check", script.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1), "{out}");
    let expected = format!("{}:4: ", script.display());
    assert!(out.stderr.lines().any(|l| l.starts_with(&expected) && l.contains("filter")), "{out}");
}

const MEMBERS_AND_AN_EXPENSE: &str = "# three members, then a big expense\n/as alice\n/as bob\n/as carol\n\
     event opencollective.expense_created amount=60000 description=\"New laptop\"\n";

#[test]
fn policy_test_a_passing_scenario() {
    let dir = TempDir::new("policy_test_pass");
    let policy = dir.file("big.toml", BIG_EXPENSES);
    let scenario = dir.file(
        "approve.txt",
        &format!(
            "{MEMBERS_AND_AN_EXPENSE}expect #1 proposed\n/as alice\n+👍 1\n/as bob\n+:+1: 1\n/as carol\n+thumbsup 1\n\
             expect #1 passed\nexpect output Approved: New laptop\n"
        ),
    );
    let out = polity(&dir, None, None, &["policy", "test", policy.to_str().unwrap(), scenario.to_str().unwrap()], "");
    assert!(out.success(), "{out}");
    let s = scenario.display();
    assert!(out.stdout.contains("[#finance] msg 1 by polity: Proposal #1:"), "{out}");
    assert!(out.stdout.contains(&format!("✓ {s}:6: proposal #1 is proposed")), "{out}");
    assert!(out.stdout.contains(&format!("✓ {s}:13: proposal #1 is passed")), "{out}");
    assert!(out.stdout.contains(&format!("✓ {s}:14: output has \"Approved: New laptop\"")), "{out}");
    assert!(out.stdout.trim_end().ends_with("every expectation met"), "{out}");
    assert!(!out.stdout.contains('✗'), "{out}");
}

#[test]
fn policy_test_a_failing_scenario() {
    let dir = TempDir::new("policy_test_fail");
    let policy = dir.file("big.toml", BIG_EXPENSES);
    let scenario = dir.file(
        "reject.txt",
        &format!(
            "{MEMBERS_AND_AN_EXPENSE}/as alice\n+👎 1\n/as bob\n+:-1: 1\n/as carol\n+👍 1\n\
             expect output Rejected: New laptop\nexpect #1 passed\n"
        ),
    );
    let out = polity(&dir, None, None, &["policy", "test", policy.to_str().unwrap(), scenario.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1), "{out}");
    let s = scenario.display();
    assert!(out.stdout.contains(&format!("✓ {s}:12: output has \"Rejected: New laptop\"")), "{out}");
    assert!(out.stdout.contains(&format!("✗ {s}:13: proposal #1 is failed, not passed")), "{out}");
    assert!(out.stdout.contains("1 expectation(s) not met"), "{out}");
    assert!(!out.stdout.contains("every expectation met"), "{out}");
}

// ===================================================================== run and configuration

#[test]
fn run_without_a_platform_says_how_to_try_polity() {
    let dir = TempDir::new("run");
    let db = TestDb::sqlite("cli_run");
    let out = polity(&dir, Some(db.url()), None, &["run"], "");
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("polity console"), "{out}");
}

#[test]
fn a_configuration_file_with_an_unknown_key_is_refused() {
    let dir = TempDir::new("config");
    let db = TestDb::sqlite("cli_config");
    let config = dir.file("custom.toml", &format!("database_url = \"{}\"\ndatabse_url = \"typo\"\n", db.url()));
    for command in ["migrate", "export", "run"] {
        let out = polity(&dir, None, None, &["--config", config.to_str().unwrap(), command], "");
        assert!(!out.success(), "{command}: {out}");
        assert!(out.stderr.contains("databse_url"), "{command}: {out}");
        assert!(out.stdout.is_empty(), "{command}: {out}");
    }
    // Without the typo, the same file is read.
    let config = dir.file("custom.toml", &format!("database_url = \"{}\"\n", db.url()));
    let out = polity(&dir, None, None, &["--config", config.to_str().unwrap(), "migrate"], "");
    assert!(out.success(), "{out}");
    assert!(!dir.0.join("polity.db").exists(), "the default database was created: {out}");
}

/// Each worked example of the policy guide that comes with a scenario (a `text` block right
/// after its `toml` block) passes it under `polity policy test`, so the guide cannot rot.
#[test]
fn the_policy_guides_scenarios_pass() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policies.md")).unwrap();
    let mut blocks: Vec<(String, String)> = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
            blocks.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    let dir = TempDir::new("guide_scenarios");
    let mut played = 0;
    for pair in blocks.windows(2) {
        let [(first, policy), (second, scenario)] = pair else { continue };
        if first != "toml" || second != "text" {
            continue;
        }
        let p = dir.file(&format!("policy{played}.toml"), policy);
        let s = dir.file(&format!("scenario{played}.txt"), scenario);
        let out = polity(&dir, None, None, &["policy", "test", p.to_str().unwrap(), s.to_str().unwrap()], "");
        assert!(out.success() && out.stdout.contains("every expectation met"), "{policy}\n{out}");
        played += 1;
    }
    assert!(played >= 2, "the guide's scenarios were found: {played}");
}

#[test]
fn policy_check_refuses_an_action_no_platform_declares_and_names_the_nearest() {
    let dir = TempDir::new("policy_check_names");
    let typo = dir.file(
        "typo.toml",
        "name = \"Renames\"\nkind = \"platform\"\nactions = [\"discord.renam_channel\"]\n[vote]\nquorum = 1\n",
    );
    let out = polity(&dir, None, None, &["policy", "check", typo.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(
        out.stderr
            .contains("`discord.renam_channel` is not an action of discord (did you mean `discord.rename_channel`?)"),
        "{out}"
    );
    let unknown = dir.file(
        "unknown.toml",
        "name = \"Elsewhere\"\nkind = \"platform\"\nactions = [\"matrix.message\"]\n[vote]\nquorum = 1\n",
    );
    let out = polity(&dir, None, None, &["policy", "check", unknown.to_str().unwrap()], "");
    assert!(out.success(), "{out}");
    assert!(out.stderr.contains("warning: `matrix.message`: this build of Polity has no platform `matrix`"), "{out}");
}

#[test]
fn a_scenario_with_mistakes_names_each_line_and_plays_nothing() {
    let dir = TempDir::new("policy_test_mistakes");
    let policy = dir.file(
        "renames.toml",
        "name = \"Renames\"\nkind = \"platform\"\nactions = [\"discord.rename_channel\"]\n[vote]\nquorum = 1\n",
    );
    let scenario = dir.file(
        "bad.txt",
        "/as dave\nevent discord.renam_channel by=dave channel=general\nevent discord.rename_channel colour=red\n\
         event discord.post_message channel=1 text=hi\nexpect #1 won\nexpect #1 proposed\n",
    );
    let out = polity(&dir, None, None, &["policy", "test", policy.to_str().unwrap(), scenario.to_str().unwrap()], "");
    assert_eq!(out.code, Some(2), "{out}");
    let s = scenario.display();
    for line in [
        format!(
            "{s}:2: `discord.renam_channel` is not something that happens on discord: it has discord.message, discord.rename_channel"
        ),
        format!(
            "{s}:3: `colour` is not a field of discord.rename_channel: its fields are channel, old_name, name, by, in"
        ),
        format!("{s}:4: `discord.post_message` is something a policy does"),
        format!("{s}:5: `won` is not a state"),
        "the scenario has 4 mistake(s): nothing was played".to_string(),
    ] {
        assert!(out.stderr.lines().any(|l| l.starts_with(&line)), "{line}\n{out}");
    }
    assert!(out.stdout.is_empty(), "nothing was played: {out}");
}

#[test]
fn docs_actions_md_is_what_the_platforms_declare() {
    let dir = TempDir::new("actions_md");
    let out = polity(&dir, None, None, &["actions", "--markdown"], "");
    assert!(out.success(), "{out}");
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/actions.md")).unwrap();
    assert!(
        doc == out.stdout,
        "docs/actions.md is out of date: run `cargo run -- actions --markdown > docs/actions.md`\n{}",
        out.stdout
    );
    assert!(doc.contains("| `discord.rename_channel` |") && doc.contains("`old_name`: the name before"));
}

#[test]
fn init_writes_a_config_with_a_key_it_never_shows_and_keeps_an_existing_one() {
    let dir = TempDir::new("init");
    let config = dir.0.join("polity.toml");
    let out = polity(&dir, None, None, &["--config", config.to_str().unwrap(), "init"], "");
    assert!(out.success(), "{out}");
    let written = std::fs::read_to_string(&config).unwrap();
    let key = written.lines().find_map(|l| l.strip_prefix("secret_key = ")).unwrap().trim_matches('"').to_string();
    assert!(key.len() >= 40 && !out.stdout.contains(&key) && !out.stderr.contains(&key), "{out}");
    // The file it wrote is a configuration Polity runs with.
    let out = polity(&dir, None, None, &["--config", config.to_str().unwrap(), "migrate"], "");
    assert!(out.success(), "{out}");
    // Never over an existing one, unless asked.
    let out = polity(&dir, None, None, &["--config", config.to_str().unwrap(), "init"], "");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("already exists"), "{out}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);
}

#[test]
fn a_plain_sqlite_url_makes_its_file_and_a_missing_database_says_how_to_make_it() {
    let dir = TempDir::new("db_urls");
    let out = polity(&dir, Some("sqlite://mine.db"), None, &["migrate"], "");
    assert!(out.success(), "{out}");
    assert!(dir.0.join("mine.db").exists());
    let out = polity(&dir, Some("sqlite:///nonexistent-dir-of-polity/x.db"), None, &["migrate"], "");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("check that its directory exists and that Polity may write there"), "{out}");
    let Some(pg) = std::env::var("POLITY_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        polity_tests::db::skipped_postgres(
            "a_plain_sqlite_url_makes_its_file_and_a_missing_database_says_how_to_make_it",
        );
        return;
    };
    let (server, _) = pg.rsplit_once('/').unwrap();
    let missing = format!("{server}/polity_no_such_database_42");
    let out = polity(&dir, Some(&missing), None, &["migrate"], "");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr.contains("create it first (`createdb polity_no_such_database_42`"), "{out}");
    assert_eq!(out.stderr.matches("does not exist").count(), 1, "said once: {out}");
}

/// The README's console transcript is what `polity console` prints for its typed lines
/// (edits abridged with `…` match on both sides of it; times are the run's own).
#[test]
fn the_readmes_console_transcript_is_what_the_console_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let (_, after) = readme.split_once("## A proposal passing by reactions").unwrap();
    let (_, block) = after.split_once("```text\n").unwrap();
    let (block, _) = block.split_once("```").unwrap();
    let printed = |l: &str| l.starts_with('[') || l.starts_with("Polity console:");
    let typed: String = block.lines().filter(|l| !printed(l)).map(|l| format!("{l}\n")).collect();
    let dir = TempDir::new("readme_transcript");
    let out = polity(&dir, Some("sqlite://polity.db?mode=rwc"), None, &["console"], &typed);
    assert!(out.success(), "{out}");
    let shown: Vec<&str> = out.stdout.lines().collect();
    let closes = |l: &str| l.split(" — closes ").next().unwrap_or(l).to_string();
    for expected in block.lines().filter(|l| printed(l)) {
        let found = match expected.split_once(" … ") {
            Some((head, tail)) => shown.iter().any(|l| l.starts_with(head) && l.ends_with(tail)),
            None => shown.iter().any(|l| closes(l) == closes(expected)),
        };
        assert!(found, "the README shows a line the console does not print:\n{expected}\n\n{out}");
    }
}
