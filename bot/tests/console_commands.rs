//! Commands on the console, through the real `polity` binary: a member's proposal passing, a
//! member's change to governance put to the constitution and applied when it passes, and a
//! clear reply to each kind of mistake. Each runs on its own SQLite file, and again on
//! PostgreSQL when `POLITY_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use support::TestDb;

fn run(db: &str, script: &str) -> String {
    support::run_console(db, None, script).0
}

/// Asserts that `out` holds each of `lines`, in this order (other lines may come between).
fn assert_in_order(out: &str, lines: &[&str]) {
    let mut rest = out.lines();
    for want in lines {
        assert!(rest.any(|l| l == *want), "missing, or out of order: {want}\n--- output ---\n{out}");
    }
}

const MEMBERS: &str = "/kit install direct-democracy\n/as alice\n/as bob\n/as carol\n";
const CONSTITUTION: &str = "Majority of members changes governance";

fn a_members_proposal_passes(db: &str) {
    let out = run(
        db,
        &format!(
            "{MEMBERS}/as alice\n/propose Buy a new server\n/as bob\n/vote 1 yes\n/as carol\n+👍 1\n/proposal 1\n/as admin\n/vote #1 yes\n/as alice\n/proposals\n/proposals all\n"
        ),
    );
    assert_in_order(
        &out,
        &[
            "[only alice] Proposal #1 is open, under \"Majority of members\".",
            "[only bob] Your ballot on #1 is counted.",
            "[only carol] Proposal #1 [proposed]: alice proposes: Buy a new server",
            "[only carol] policy: Majority of members",
            "[only carol] tally: yes 2 · no 0 · abstain 0 (2 of 4 voted)",
            "[only carol] rule: pass majority, quorum 34%",
            "[only carol] voters: admin, alice, bob, carol",
            "[only carol]   bob voted yes (command)",
            "[only carol]   carol voted yes (reaction)",
            "[only admin] Your ballot on #1 is counted.",
            "[#general] msg 2 by polity: Proposal #1 passed: alice proposes: Buy a new server (yes 3 · no 0 · abstain 0 (3 of 4 voted))",
            "[only alice] No proposal is open.",
            "[only alice] #1 [passed] alice proposes: Buy a new server — Majority of members",
        ],
    );
    assert!(out.contains("[#general] msg 1 by polity: Proposal #1: alice proposes: Buy a new server — vote 👍 yes · 👎 no · 🤷 abstain"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("[only carol] closes: ") && l.ends_with(" UTC")), "{out}");
    let last_edit = out.lines().rfind(|l| l.contains("edited msg 1")).unwrap();
    assert!(last_edit.ends_with("tally: yes 3 · no 0 · abstain 0 (3 of 4 voted) — PASSED"), "{out}");
    assert_eq!(out.matches("Proposal #1 passed").count(), 1, "announced once:\n{out}");
}

fn a_members_role_grant_passes_by_reactions(db: &str) {
    let out = run(
        db,
        &format!(
            "{MEMBERS}/as admin\n/role create treasurer\n/as alice\n/role grant treasurer bob\n/as bob\n/whoami\n+👍 1\n/as carol\n+👍 1\n/as alice\n+👍 1\n/as bob\n/whoami\n/role list\n"
        ),
    );
    let asked = format!(
        "[only alice] Proposal #1 asks to give bob the role treasurer; \"{CONSTITUTION}\" decides, and it happens if it passes."
    );
    assert_in_order(
        &out,
        &[
            "[only admin] The role treasurer is created.",
            &asked,
            "[only bob] You are bob.",
            "[only bob] accounts: console:bob (first seen)",
            "[only bob] roles: everyone",
            "[#general] msg 2 by polity: Proposal #1 passed: alice asks to give bob the role treasurer (yes 3 · no 0 · abstain 0 (3 of 4 voted))",
            "[only bob] You are bob.",
            "[only bob] roles: everyone, treasurer",
            "[only bob] treasurer — may: nothing; members: bob",
        ],
    );
    assert!(
        out.contains(
            "[#general] msg 1 by polity: Proposal #1: alice asks to give bob the role treasurer — vote 👍 yes · 👎 no · 🤷 abstain — pass: majority, quorum 50% — closes "
        ),
        "{out}"
    );
    // Two ballots of four could not decide it yet.
    assert!(out.contains("tally: yes 2 · no 0 · abstain 0 (2 of 4 voted)\n"), "{out}");

    // The grant is in the record: a new process sees it.
    let out = run(db, "/as bob\n/whoami\n/audit 3\n");
    assert!(out.contains("[only bob] roles: everyone, treasurer\n"), "{out}");
    assert!(out.contains(" proposal #1 passed\n"), "{out}");
    assert!(out.trim_end().ends_with(" polity.role_grant carried out (proposal #1)"), "{out}");
}

fn every_mistake_gets_a_clear_reply(db: &str) {
    let council =
        r#"/policy install Council name = "Council"\nkind = "platform"\n[vote]\nvoters = "role:council"\nquorum = 1"#;
    let malformed = r#"/policy install Bad name = "Bad"\nkind = "platfrom"\n[vote]\nquorum = "many""#;
    let script = format!(
        "{MEMBERS}/as admin\n/role create council\n/role grant council carol\n{council}\n/as alice\n/propose Hire a designer policy:Council\n\
         /frobnicate\n/vote 1\n/whoami now\n/proposal 9\n/vote 9 yes\n/vote 1 yes\n+👍 1\n/unvote 1\n/cancel 9\n/role grant treasurer bob\n/role\n\
         /as admin\n{malformed}\n/policy install Bad name = \"Bad\"\\nkind = \n/permission grant council spend *\n/audit ten\n\
         /as carol\n/vote 1 maybe\n/vote 1 yes\n/vote 1 no\n/cancel 1\n/policy list\n"
    );
    let out = run(db, &script);
    assert_in_order(
        &out,
        &[
            "[only admin] \"Council\" is installed: a platform policy.",
            "[only alice] Proposal #1 is open, under \"Council\".",
            "[only alice] There is no command /frobnicate: /help lists the commands.",
            "[only alice] choice is missing (yes, no, abstain, an option, 1,3 or 3>1>2). Usage: /vote ID CHOICE",
            "[only alice] `now` is more than the command takes. Usage: /whoami",
            "[only alice] There is no proposal #9: `/proposals all` lists them.",
            "[only alice] there is no proposal #9: `/proposals` lists the open ones",
            "[only alice] only members with the role council can vote on proposal #1",
            // A reaction cannot be refused before it is made: it is taken off and explained.
            "[#general] polity removed alice's 👍 from msg 1",
            "[only alice] Your vote was not counted: only members with the role council can vote on proposal #1.",
            "[only alice] you have no ballot on #1",
            "[only alice] there is no proposal #9: `/proposals` lists the open ones",
            "[only alice] There is no role treasurer: `/role list` shows the roles.",
            "[only alice] /role needs one of: request, create, delete, list, grant, revoke, bind, unbind.",
            "[only admin] The policy is not valid:",
            "[only admin] line 2: `kind = \"platfrom\"` is not a kind: use platform, constitution or trigger",
            "[only admin] line 4: `quorum = \"many\"` must be a count like 3 or a share like \"40%\"",
            "[only admin] The policy is not valid:",
            "[only admin] permission must be one of propose, execute, vote. Usage: /permission grant ROLE propose|execute|vote ACTIONS",
            "[only admin] `ten` is not a number. Usage: /audit [COUNT]",
            "[only carol] `maybe` is not a choice in this vote: choose yes, no, abstain",
            "[only carol] Your ballot on #1 is counted.",
            "[#general] msg 2 by polity: Proposal #1 passed: alice proposes: Hire a designer (yes 1 · no 0 · abstain 0 (1 of 1 voted))",
            "[only carol] proposal #1 is closed",
            "[only carol] proposal #1 is closed",
        ],
    );
    // The TOML syntax error names its line too.
    let syntax = out.lines().skip_while(|l| !l.contains("line 4: `quorum")).nth(2).unwrap();
    assert!(syntax.starts_with("[only admin] line 2: "), "{out}");
    // None of the mistakes changed anything: one policy of that name, one proposal.
    assert!(out.contains("[only carol] Majority of members (platform; all of its kind)\n"), "{out}");
    assert!(out.contains("[only carol] Council (platform; all of its kind)\n"), "{out}");
    assert!(!out.contains("Bad ("), "{out}");
    assert!(!out.contains("Proposal #2"), "{out}");
    assert!(!out.contains("Sorry"), "no mistake is an internal failure:\n{out}");
}

/// NUL is valid UTF-8 but no database keeps it in text (PostgreSQL refuses it): a proposal,
/// a vote and a message carrying one are taken, shown with U+FFFD, and nothing is left
/// waiting for a retry.
fn text_with_nul_is_kept_as_the_replacement_character(db: &str) {
    let (out, err) = support::run_console(
        db,
        None,
        "/kit install direct-democracy\n/as alice\n/propose Buy a new\0server\n+👍 1\n/as bob\n/whoami\n",
    );
    assert!(out.contains("Proposal #1: alice proposes: Buy a new\u{FFFD}server"), "{out}");
    assert!(out.contains("[only bob] You are bob."), "the session went on: {out}");
    assert!(!err.contains("retry"), "nothing waits for a retry: {err}");
}

on_every_database!(
    text_with_nul_is_kept_as_the_replacement_character,
    a_members_proposal_passes,
    a_members_role_grant_passes_by_reactions,
    every_mistake_gets_a_clear_reply
);
