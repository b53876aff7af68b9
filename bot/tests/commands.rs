//! Every command of the catalogue, run as the console runs it: `polity_commands::handle` over
//! the runtime's `CommunityPorts`, on an in-memory store, with a platform that records every
//! effect it is asked to perform. Each command's success and each of its mistakes are checked
//! by the exact words the user reads, and a mistake must change nothing: the community, the
//! policies, the proposals, the audit log and the outbox are the same before and after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::ports::CommunityPorts;
use polity::runtime::{Handled, Runtime};
use polity::store::entities::{inbox, link_codes, outbox, platform_connections};
use polity::store::{AuditRow, Connection, SecretKey, Store, StoredPolicy};
use polity_commands::catalogue::CATALOGUE;
use polity_commands::{Invocation, Reply, SecretPrompt};
use polity_governance::action::{Action, ActionType};
use polity_governance::community::Community;
use polity_governance::ids::{AccountRef, CommunityId, MessageRef, Place, ProposalId};
use polity_governance::io::{Effect, Inbound};
use polity_governance::platform::{ActionInfo, ActionKind};
use polity_governance::proposal::{Proposal, ProposalState};
use sea_orm::{EntityTrait, PaginatorTrait};
use std::sync::Arc;

const PLATFORM: &str = "chat";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn account(name: &str) -> AccountRef {
    AccountRef::new(PLATFORM, name)
}

fn general() -> Place {
    Place::new(PLATFORM, "#general")
}

/// The platform: it performs everything by writing it down; posts get message ids.
fn chat() -> support::Recording {
    support::Recording::new(PLATFORM).reactions().edits().ephemeral().messages(support::Messages::VotesAndPosts).offers(
        vec![
            ActionInfo::new("chat.poll", ActionKind::Process, "a poll of the platform's own", &[]),
            ActionInfo::new("chat.member_joined", ActionKind::Trigger, "someone joined", &[("member", "who")]),
            ActionInfo::new("chat.pin", ActionKind::Action, "pin a message", &[("message", "which")]),
            ActionInfo::new(
                "chat.rename_channel",
                ActionKind::Governable,
                "a channel renamed",
                &[("name", "the new name")],
            ),
            ActionInfo::new("chat.message", ActionKind::Governable, "a member's message", &[("text", "the message")]),
        ],
    )
}

/// Everything a command could change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    community: Community,
    stored_community: Community,
    active_policies: Vec<String>,
    policies: Vec<StoredPolicy>,
    proposals: Vec<Proposal>,
    audit: Vec<AuditRow>,
    pending_effects: u64,
    outbox_rows: u64,
    inbox_rows: u64,
    performed: Vec<Effect>,
    connections: Vec<Connection>,
    link_codes: Vec<link_codes::Model>,
}

/// One community (`admin`, an admin, and the members alice, bob and carol) on a fresh
/// in-memory store; the clock moves a second per command.
struct Env {
    rt: Runtime,
    c: CommunityId,
    performed: support::Log,
    now: DateTime<Utc>,
    seq: u32,
}

impl Env {
    async fn new() -> Self {
        Self::build(None).await
    }

    /// An environment whose store can keep secrets (`POLITY_SECRET_KEY` is set).
    async fn with_secret_key() -> Self {
        Self::build(Some(&SecretKey::generate())).await
    }

    async fn build(secret_key: Option<&str>) -> Self {
        let store = Store::connect("sqlite::memory:").await.unwrap().with_secret_key(secret_key);
        store.migrate().await.unwrap();
        let mut rt = Runtime::open(store).await.unwrap();
        support::declare_platforms(&mut rt);
        let chat = chat();
        let performed = chat.log();
        rt.add_platform(Arc::new(chat));
        let c = rt.ensure_community("test", "admin", account("admin")).await.unwrap();
        for name in ["alice", "bob", "carol"] {
            assert!(rt.admit(c, &account(name), name));
        }
        rt.save_community(c, t0()).await.unwrap();
        Self { rt, c, performed, now: t0(), seq: 0 }
    }

    /// An environment with a starter kit installed by the admin.
    async fn with_kit(kit: &str) -> Self {
        let mut env = Self::new().await;
        let reply = env.run("admin", &format!("/kit install {kit}")).await;
        assert!(reply.starts_with(&format!("The starter kit {kit} is installed: ")), "{reply}");
        env
    }

    fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("invocation-{}", self.seq)
    }

    /// Runs a command line as `who` under a new invocation id, then performs what it caused.
    async fn run(&mut self, who: &str, line: &str) -> String {
        self.run_as(&account(who), line).await
    }

    /// Runs a command line as any account (one on another platform, say).
    async fn run_as(&mut self, invoker: &AccountRef, line: &str) -> String {
        let id = self.next_id();
        let reply = self.reply_as_with_id(invoker, &id, line).await;
        assert_eq!(reply.attachment, None, "{line}");
        reply.text
    }

    /// Moves the clock on (the next command runs a second after that).
    fn wait(&mut self, d: TimeDelta) {
        self.now += d;
    }

    /// Runs a command line as `who` under the invocation id `id` (a platform retrying a
    /// delivery sends the same id again).
    async fn run_with_id(&mut self, who: &str, id: &str, line: &str) -> String {
        let reply = self.reply_with_id(who, id, line).await;
        assert_eq!(reply.attachment, None, "{line}");
        reply.text
    }

    /// The whole reply, attachment included.
    async fn reply(&mut self, who: &str, line: &str) -> Reply {
        let id = self.next_id();
        self.reply_with_id(who, &id, line).await
    }

    async fn reply_with_id(&mut self, who: &str, id: &str, line: &str) -> Reply {
        self.reply_as_with_id(&account(who), id, line).await
    }

    async fn reply_as_with_id(&mut self, invoker: &AccountRef, id: &str, line: &str) -> Reply {
        self.now += TimeDelta::seconds(1);
        let inv = Invocation { invoker: invoker.clone(), place: general(), id: id.to_string() };
        let mut ports = CommunityPorts::new(&mut self.rt, self.c, "command:test", id, self.now);
        let reply = polity_commands::handle(&mut ports, &inv, line).await.unwrap();
        assert!(reply.ephemeral, "command replies are for the invoker only: {line} -> {}", reply.text);
        self.rt.dispatch(self.now).await.unwrap();
        reply
    }

    /// Runs a mistake: asserts its reply and that it changed nothing at all.
    async fn mistake(&mut self, who: &str, line: &str, expected: &str) {
        let reply = self.refused(who, line).await;
        assert_eq!(reply, expected, "{who}: {line}");
    }

    /// Runs a line that must change nothing at all (a mistake, a question); returns the reply.
    async fn refused(&mut self, who: &str, line: &str) -> String {
        self.refused_as(&account(who), line).await
    }

    /// [`Env::mistake`] as any account.
    async fn mistake_as(&mut self, invoker: &AccountRef, line: &str, expected: &str) {
        let reply = self.refused_as(invoker, line).await;
        assert_eq!(reply, expected, "{invoker}: {line}");
    }

    async fn refused_as(&mut self, invoker: &AccountRef, line: &str) -> String {
        let before = self.snapshot().await;
        let reply = self.run_as(invoker, line).await;
        let after = self.snapshot().await;
        assert_eq!(before, after, "`{line}` changed something; it replied: {reply}");
        reply
    }

    /// Types the secret an `/integration add` asked for, as `who` (what an adapter does with
    /// the private answer), then performs what it caused.
    async fn type_secret(&mut self, who: &str, prompt: SecretPrompt, secret: &str) -> Reply {
        self.now += TimeDelta::seconds(1);
        let id = self.next_id();
        let inv = Invocation { invoker: account(who), place: general(), id: id.clone() };
        let mut ports = CommunityPorts::new(&mut self.rt, self.c, "command:test", &id, self.now);
        let reply = polity_commands::integration::add_with_secret(&mut ports, &inv, prompt, secret).await.unwrap();
        assert!(reply.ephemeral, "the answer to a secret is for the invoker only: {}", reply.text);
        assert_eq!((reply.attachment.clone(), reply.secret_prompt.clone()), (None, None), "{}", reply.text);
        self.rt.dispatch(self.now).await.unwrap();
        reply
    }

    /// A secret typed in answer to a prompt that must change nothing at all; returns the reply.
    async fn secret_refused(&mut self, who: &str, prompt: SecretPrompt, secret: &str) -> String {
        let before = self.snapshot().await;
        let reply = self.type_secret(who, prompt, secret).await.text;
        assert_eq!(before, self.snapshot().await, "typing a secret changed something; it replied: {reply}");
        reply
    }

    /// `who` posts `text` in #general: a governable `chat.message` the platform reports as
    /// already performed.
    async fn message(&mut self, who: &str, text: &str) {
        self.now += TimeDelta::seconds(1);
        let id = self.next_id();
        let kind = ActionType::new("chat.message").unwrap();
        let action = Action::new(kind, account(who), format!("msg-{id}")).at(general()).with("text", text);
        let handled = self.rt.handle(self.c, PLATFORM, &id, Inbound::Action { action }, self.now, false).await.unwrap();
        assert!(matches!(handled, Handled::Done(_)));
        self.rt.dispatch(self.now).await.unwrap();
    }

    async fn snapshot(&self) -> Snapshot {
        let store = self.rt.store();
        let engine = self.rt.engine(self.c).unwrap();
        Snapshot {
            community: engine.community.clone(),
            stored_community: store.load_community(self.c).await.unwrap(),
            active_policies: engine.policies().iter().map(|p| p.name().to_string()).collect(),
            policies: store.load_policies(self.c).await.unwrap(),
            proposals: store.load_proposals(self.c, false).await.unwrap(),
            audit: store.audit(self.c, 10_000).await.unwrap(),
            pending_effects: store.pending_effects().await.unwrap(),
            outbox_rows: outbox::Entity::find().count(store.db()).await.unwrap(),
            inbox_rows: inbox::Entity::find().count(store.db()).await.unwrap(),
            performed: self.performed(),
            connections: store.connections(self.c).await.unwrap(),
            link_codes: link_codes::Entity::find().all(store.db()).await.unwrap(),
        }
    }

    fn performed(&self) -> Vec<Effect> {
        self.performed.performed()
    }

    /// Reacts with `emoji` on the vote message of proposal `p`, as `who`.
    async fn react(&mut self, who: &str, p: i64, emoji: &str) {
        self.now += TimeDelta::seconds(1);
        let message = self.vote_message(p).await;
        let input = Inbound::Reaction { message, voter: account(who), emoji: emoji.into(), added: true };
        let key = self.next_id();
        let handled = self.rt.handle(self.c, PLATFORM, &key, input, self.now, false).await.unwrap();
        assert!(matches!(handled, Handled::Done(_)));
        self.rt.dispatch(self.now).await.unwrap();
    }

    async fn vote_message(&self, p: i64) -> MessageRef {
        let messages = self.rt.store().vote_messages(self.c, ProposalId(p)).await.unwrap();
        assert_eq!(messages.len(), 1, "proposal #{p} has one vote message");
        messages[0].clone()
    }

    async fn proposal(&self, p: i64) -> Proposal {
        self.rt.store().proposal(self.c, ProposalId(p)).await.unwrap().unwrap()
    }

    /// A member's roles, as held in memory and as recorded (they must agree).
    async fn roles(&self, name: &str) -> Vec<String> {
        let engine = &self.rt.engine(self.c).unwrap().community;
        let stored = self.rt.store().load_community(self.c).await.unwrap();
        let of = |c: &Community| c.member_by_name(name).map(|m| c.roles_of(m.id)).unwrap();
        assert_eq!(of(engine), of(&stored), "memory and the store agree on {name}'s roles");
        of(engine)
    }

    fn community(&self) -> &Community {
        &self.rt.engine(self.c).unwrap().community
    }

    fn active_policies(&self) -> Vec<String> {
        self.rt.engine(self.c).unwrap().policies().iter().map(|p| p.name().to_string()).collect()
    }
}

fn posted_votes(effects: &[Effect]) -> Vec<ProposalId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::PostVote { proposal, .. } => Some(*proposal),
            _ => None,
        })
        .collect()
}

fn closes(at: DateTime<Utc>, after: TimeDelta) -> String {
    (at + after).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

const DIRECT_DEMOCRACY: &str = "Every member votes. A proposal passes with a majority of the ballots, a third of the members voting, within 72 hours; changes to governance need half of the members voting, within a week.";
const CONSTITUTION: &str = "Majority of members changes governance";

/// A platform policy only members with the role `council` vote under (inline, as typed on
/// the console: `\n` between lines).
const COUNCIL: &str = r#"name = "Council"\nkind = "platform"\n[vote]\nvoters = "role:council"\nquorum = 1"#;

// ----- /propose -----

#[tokio::test]
async fn propose_opens_a_proposal_under_the_community_policy_or_the_named_one() {
    let mut env = Env::with_kit("direct-democracy").await;
    let opened = env.now + TimeDelta::seconds(1);
    assert_eq!(
        env.run("alice", "/propose Buy a new server").await,
        "Proposal #1 is open, under \"Majority of members\"."
    );
    let p = env.proposal(1).await;
    assert_eq!(
        (p.state, p.proposer_name.as_str(), p.headline()),
        (ProposalState::Proposed, "alice", "alice proposes: Buy a new server".to_string())
    );
    assert_eq!(p.closes_at, Some(opened + TimeDelta::hours(72)));
    assert_eq!(posted_votes(&env.performed()), vec![ProposalId(1)], "its vote message was posted");

    assert_eq!(
        env.run("bob", &format!("/propose Rewrite the charter policy:{CONSTITUTION}")).await,
        format!("Proposal #2 is open, under \"{CONSTITUTION}\".")
    );
    assert_eq!(env.proposal(2).await.policy_name, CONSTITUTION);
    // Policy names are matched without regard to case.
    assert_eq!(
        env.run("bob", "/propose Meet on Fridays policy:majority OF members").await,
        "Proposal #3 is open, under \"Majority of members\"."
    );

    // A policy without a vote decides at once.
    let mut env = Env::with_kit("testing").await;
    assert_eq!(
        env.run("alice", "/propose Paint it blue").await,
        "Proposal #1 passed at once under \"Testing: every action passes\"."
    );
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert!(posted_votes(&env.performed()).is_empty(), "no vote message for a proposal decided at once");
}

#[tokio::test]
async fn propose_mistakes_change_nothing() {
    let mut env = Env::new().await;
    env.mistake(
        "alice",
        "/propose Buy a new server",
        "no policy decides plain proposals yet: install a starter kit (`/kit list`) or a platform policy",
    )
    .await;
    let mut env = Env::with_kit("direct-democracy").await;
    env.mistake(
        "alice",
        "/propose Buy a new server policy:Unanimity",
        "there is no policy named \"Unanimity\": `/policy list` shows the installed ones",
    )
    .await;
    env.mistake("alice", "/propose", "text is missing (what you propose). Usage: /propose TEXT [policy:POLICY]").await;
    env.mistake(
        "alice",
        "/propose policy:Majority of members",
        "text is missing (what you propose). Usage: /propose TEXT [policy:POLICY]",
    )
    .await;
    env.mistake("alice", "/propose Buy it policy:", "`policy:` needs a value. Usage: /propose TEXT [policy:POLICY]")
        .await;
    // Without the propose permission.
    assert_eq!(env.run("admin", "/permission revoke everyone propose *").await, "everyone may no longer propose *.");
    env.mistake(
        "alice",
        "/propose Buy a new server",
        "you may not make proposals here: ask an admin for a role with the propose permission",
    )
    .await;
}

// ----- /proposals and /proposal -----

#[tokio::test]
async fn proposals_lists_the_open_ones_or_all() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.mistake("alice", "/proposals", "No proposal is open.").await;
    env.mistake("alice", "/proposals all", "There are no proposals yet.").await;
    env.run("alice", "/propose Buy a new server").await;
    env.run("bob", "/propose Weekly calls").await;
    assert_eq!(env.run("bob", "/cancel 2").await, "Proposal #2 is cancelled.");
    let open = "#1 [proposed] alice proposes: Buy a new server — Majority of members";
    env.mistake("carol", "/proposals", open).await;
    env.mistake("carol", "/proposals open", open).await;
    env.mistake(
        "carol",
        "/proposals all",
        &format!("{open}\n#2 [cancelled] bob proposes: Weekly calls — Majority of members"),
    )
    .await;
    env.mistake("carol", "/proposals some", "which must be one of open, all. Usage: /proposals [open|all]").await;
}

#[tokio::test]
async fn proposal_shows_its_status_tally_voters_and_ballots() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/propose Buy a new server").await;
    let opened = env.now;
    assert_eq!(env.run("bob", "/vote 1 yes").await, "Your ballot on #1 is counted.");
    env.react("carol", 1, "👎").await;
    let shown = [
        "Proposal #1 [proposed]: alice proposes: Buy a new server".to_string(),
        "policy: Majority of members".into(),
        format!("closes: {}", closes(opened, TimeDelta::hours(72))),
        "tally: yes 1 · no 1 · abstain 0 (2 of 4 voted)".into(),
        "rule: pass majority, quorum 34%".into(),
        "voters: admin, alice, bob, carol".into(),
        "  bob voted yes (command)".into(),
        "  carol voted no (reaction)".into(),
    ]
    .join("\n");
    env.mistake("admin", "/proposal 1", &shown).await;
    env.mistake("admin", "/proposal #1", &shown).await;
    env.mistake("admin", "/proposal 9", "There is no proposal #9: `/proposals all` lists them.").await;
    env.mistake("admin", "/proposal nine", "`nine` is not a proposal number. Usage: /proposal ID").await;
    env.mistake("admin", "/proposal", "id is missing (the proposal's number). Usage: /proposal ID").await;

    // A closed proposal is still shown, with its outcome.
    env.react("alice", 1, "👍").await;
    env.react("admin", 1, "👍").await;
    let p = env.proposal(1).await;
    assert_eq!(p.state, ProposalState::Passed);
    let reply = env.run("bob", "/proposal 1").await;
    assert!(reply.starts_with("Proposal #1 [passed]: alice proposes: Buy a new server\n"), "{reply}");
    assert!(reply.contains("\ntally: yes 3 · no 1 · abstain 0 (4 of 4 voted)\n"), "{reply}");
}

#[tokio::test]
async fn a_policy_whose_voters_are_by_cred_warns_without_a_sourcecred_connection() {
    let mut env = Env::with_kit("direct-democracy").await;
    let policy = r#"name = "Cred"\nkind = "platform"\n[vote]\nvoters = "cred >= 50"\nquorum = 1"#;
    let reply = env.run("admin", &format!("/policy install Cred {policy}")).await;
    assert_eq!(
        reply,
        "\"Cred\" is installed: a platform policy.\nWarning: this community has no SourceCred connection, so nobody's cred is known: its votes wait for their voters until one is added (`/integration add sourcecred NAME base_url=...`)"
    );
}

#[tokio::test]
async fn a_secret_policy_keeps_the_ballots_out_of_proposal() {
    let mut env = Env::with_kit("direct-democracy").await;
    let secret = r#"name = "Secret ballot"\nkind = "platform"\n[vote]\nsecret = true\nquorum = 3"#;
    assert_eq!(
        env.run("admin", &format!("/policy install Secret {secret}")).await,
        "The TOML names the policy \"Secret ballot\", not \"Secret\": use the same name in both."
    );
    let secret = secret.replace("Secret ballot", "Secret");
    assert_eq!(
        env.run("admin", &format!("/policy install Secret {secret}")).await,
        "\"Secret\" is installed: a platform policy."
    );
    assert_eq!(
        env.run("alice", "/propose Elect a chair policy:Secret").await,
        "Proposal #1 is open, under \"Secret\"."
    );
    assert_eq!(env.run("bob", "/vote 1 no").await, "Your ballot on #1 is counted.");
    env.react("carol", 1, "👍").await;
    let shown = [
        "Proposal #1 [proposed]: alice proposes: Elect a chair",
        "policy: Secret",
        "tally: yes 1 · no 1 · abstain 0 (2 of 4 voted)",
        "rule: pass majority, quorum 3",
        "voters: admin, alice, bob, carol",
        "ballots are secret",
    ]
    .join("\n");
    env.mistake("alice", "/proposal 1", &shown).await;
    // Nor does the audit log say who voted what.
    let audit = env.run("alice", "/audit 2").await;
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(lines[0].ends_with(" chat:bob voted secretly on #1"), "{audit}");
    assert!(lines[1].ends_with(" chat:carol voted secretly on #1"), "{audit}");
    // Nor does the export.
    let csv = env.reply("alice", "/export csv").await.attachment.unwrap().content;
    let ballots: Vec<&str> = csv.lines().filter(|l| l.starts_with("test,ballot,1,")).collect();
    assert_eq!(ballots.len(), 2, "{csv}");
    assert!(ballots[0].ends_with(",bob,secret,chat:bob via command"), "{csv}");
    assert!(ballots[1].ends_with(",carol,secret,chat:carol via reaction"), "{csv}");
}

// ----- /vote and /unvote -----

#[tokio::test]
async fn vote_and_unvote_count_and_withdraw_a_ballot() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/propose Buy a new server").await;
    assert_eq!(env.run("bob", "/vote 1 yes").await, "Your ballot on #1 is counted.");
    assert_eq!(env.run("carol", "/vote #1 abstain").await, "Your ballot on #1 is counted.");
    let tally = env.proposal(1).await.tally().unwrap();
    assert_eq!((tally.counts.clone(), tally.abstain, tally.cast), (vec![1, 0], 1, 2));
    // The live tally was edited into the vote message.
    assert!(
        env.performed().iter().any(
            |e| matches!(e, Effect::EditVote { text, .. } if text.contains("yes 1 · no 0 · abstain 1 (2 of 4 voted)"))
        ),
        "{:?}",
        env.performed()
    );
    // Changing one's mind replaces the ballot.
    assert_eq!(env.run("bob", "/vote 1 no").await, "Your ballot on #1 is counted.");
    assert_eq!(env.proposal(1).await.tally().unwrap().counts, vec![0, 1]);

    assert_eq!(env.run("bob", "/unvote 1").await, "Your ballot on #1 is withdrawn.");
    assert_eq!(env.proposal(1).await.tally().unwrap().cast, 1);
    env.mistake("bob", "/unvote 1", "you have no ballot on #1").await;
    env.mistake("admin", "/unvote 1", "you have no ballot on #1").await;
    env.mistake("bob", "/unvote 9", "there is no proposal #9: `/proposals` lists the open ones").await;
    env.mistake("bob", "/unvote", "id is missing (the proposal's number). Usage: /unvote ID").await;
}

#[tokio::test]
async fn vote_mistakes_change_nothing() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/propose Buy a new server").await;
    env.mistake("bob", "/vote 1 maybe", "`maybe` is not a choice in this vote: choose yes, no, abstain").await;
    env.mistake("bob", "/vote 9 yes", "there is no proposal #9: `/proposals` lists the open ones").await;
    env.mistake(
        "bob",
        "/vote 1",
        "choice is missing (yes, no, abstain, an option, 1,3 or 3>1>2). Usage: /vote ID CHOICE",
    )
    .await;
    env.mistake("bob", "/vote one yes", "`one` is not a proposal number. Usage: /vote ID CHOICE").await;
    env.mistake("bob", "/vote 0 yes", "`0` is not a proposal number. Usage: /vote ID CHOICE").await;
    // Someone who is not a member.
    env.mistake("zed", "/vote 1 yes", "only members of this community can vote on proposal #1").await;

    // Only the council votes under the council's policy.
    assert_eq!(env.run("admin", "/role create council").await, "The role council is created.");
    assert_eq!(env.run("admin", "/role grant council carol").await, "carol has the role council now.");
    assert_eq!(
        env.run("admin", &format!("/policy install Council {COUNCIL}")).await,
        "\"Council\" is installed: a platform policy."
    );
    assert_eq!(
        env.run("alice", "/propose Hire a designer policy:Council").await,
        "Proposal #2 is open, under \"Council\"."
    );
    env.mistake("bob", "/vote 2 yes", "only members with the role council can vote on proposal #2").await;

    // A decided proposal takes no more ballots.
    assert_eq!(env.run("carol", "/vote 2 yes").await, "Your ballot on #2 is counted.");
    assert_eq!(env.proposal(2).await.state, ProposalState::Passed);
    env.mistake("carol", "/vote 2 no", "proposal #2 is closed").await;
    env.mistake("carol", "/unvote 2", "proposal #2 is closed").await;
}

// ----- /cancel -----

#[tokio::test]
async fn cancel_is_for_the_proposer_or_an_admin() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/propose Buy a new server").await;
    env.run("alice", "/propose Weekly calls").await;
    env.mistake("bob", "/cancel 1", "only the proposer or an admin can cancel proposal #1").await;
    env.mistake("bob", "/cancel 7", "there is no proposal #7: `/proposals` lists the open ones").await;
    env.mistake("bob", "/cancel", "id is missing (the proposal's number). Usage: /cancel ID").await;

    let before = env.performed().len();
    assert_eq!(env.run("alice", "/cancel 1").await, "Proposal #1 is cancelled.");
    assert_eq!(env.proposal(1).await.state, ProposalState::Cancelled);
    let announced: Vec<Effect> = env.performed()[before..].to_vec();
    assert!(
        announced.iter().any(
            |e| matches!(e, Effect::Post { text, .. } if text.starts_with("Proposal #1 was cancelled: alice proposes: Buy a new server"))
        ),
        "{announced:?}"
    );
    assert_eq!(env.run("admin", "/cancel 2").await, "Proposal #2 is cancelled.");
    assert_eq!(env.proposal(2).await.state, ProposalState::Cancelled);
    env.mistake("alice", "/cancel 1", "proposal #1 is closed").await;
    env.mistake("admin", "/cancel 2", "proposal #2 is closed").await;
}

// ----- /whoami -----

#[tokio::test]
async fn whoami_says_who_you_are_and_what_you_may_do() {
    let mut env = Env::new().await;
    env.mistake(
        "alice",
        "/whoami",
        "You are alice.\naccounts: chat:alice (first seen)\nroles: everyone\npermissions: propose *, vote *",
    )
    .await;
    env.mistake(
        "admin",
        "/whoami",
        "You are admin, an admin.\naccounts: chat:admin (first seen)\nroles: everyone\npermissions: everything (admin)",
    )
    .await;
    env.mistake("zed", "/whoami", "chat:zed is not a member of this community yet.").await;
    env.mistake("alice", "/whoami please", "`please` is more than the command takes. Usage: /whoami").await;

    env.run("admin", "/role create treasurer").await;
    env.run("admin", "/permission grant treasurer execute opencollective.*").await;
    env.run("admin", "/role grant treasurer alice").await;
    env.mistake(
        "alice",
        "/whoami",
        "You are alice.\naccounts: chat:alice (first seen)\nroles: everyone, treasurer\npermissions: execute opencollective.*, propose *, vote *",
    )
    .await;
    // Without any permission.
    env.run("admin", "/permission revoke everyone propose *").await;
    env.run("admin", "/permission revoke everyone vote *").await;
    env.mistake("bob", "/whoami", "You are bob.\naccounts: chat:bob (first seen)\nroles: everyone\npermissions: none")
        .await;
}

// ----- /role request -----

#[tokio::test]
async fn role_request_needs_a_constitution_or_an_admin() {
    // A new community has no constitution: nobody but an admin changes governance.
    let mut env = Env::new().await;
    env.run("admin", "/role create treasurer").await;
    env.mistake(
        "alice",
        "/role request treasurer",
        "no constitution policy lets members ask for polity.role_request yet: an admin can do it, or install a starter kit with a constitution",
    )
    .await;
    assert_eq!(env.run("admin", "/role request treasurer").await, "You have the role treasurer now.");
    env.mistake("admin", "/role request treasurer", "You already have the role treasurer.").await;
    env.mistake("alice", "/role request ghost", "There is no role ghost: `/role list` shows the roles.").await;
    env.mistake("alice", "/role request everyone", "Every member has the role everyone already.").await;
    env.mistake("alice", "/role request", "role is missing (the role you ask for). Usage: /role request ROLE").await;

    // The testing kit's constitution passes every change at once.
    let mut env = Env::with_kit("testing").await;
    env.run("admin", "/role create treasurer").await;
    assert_eq!(env.run("bob", "/role request treasurer").await, "You have the role treasurer now.");
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"]);
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert_eq!(env.proposal(1).await.policy_name, "Testing: every change passes");
}

#[tokio::test]
async fn role_request_under_the_moderators_kit_is_a_proposal_the_moderators_decide() {
    let mut env = Env::with_kit("moderators").await;
    // The installer became a moderator.
    assert_eq!(env.roles("admin").await, ["everyone", "moderator"]);
    assert_eq!(
        env.run("alice", "/role request moderator").await,
        "Proposal #1 asks to give alice the role moderator; \"Moderators decide changes\" decides, and it happens if it passes."
    );
    assert_eq!(env.roles("alice").await, ["everyone"], "nothing changes before the vote");
    assert_eq!(posted_votes(&env.performed()), vec![ProposalId(1)]);
    let posted = env.performed();
    assert!(
        posted.iter().any(|e| matches!(e, Effect::PostVote { text, .. }
            if text.starts_with("Proposal #1: alice asks to take the role "))),
        "{posted:?}"
    );

    // bob is no moderator: his reaction is removed, and he is told why.
    env.react("bob", 1, "👍").await;
    let told = env.performed();
    assert!(
        told.iter().any(|e| matches!(e, Effect::Notify { account: to, text, .. }
            if to == &account("bob")
            && text == "Your vote was not counted: only members with the role moderator can vote on proposal #1.")),
        "{told:?}"
    );
    assert!(told.iter().any(|e| matches!(e, Effect::RemoveReaction { emoji, .. } if emoji == "👍")), "{told:?}");
    assert_eq!(env.proposal(1).await.tally().unwrap().cast, 0);
    env.mistake("bob", "/vote 1 yes", "only members with the role moderator can vote on proposal #1").await;

    env.react("admin", 1, "👍").await;
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert_eq!(env.roles("alice").await, ["everyone", "moderator"]);
    assert_eq!(
        env.run("alice", "/whoami").await,
        "You are alice.\naccounts: chat:alice (first seen)\nroles: everyone, moderator\npermissions: propose *, vote *"
    );
    let audit = env.run("alice", "/audit 3").await;
    assert!(audit.contains(" proposal #1 passed\n"), "{audit}");
    assert!(audit.ends_with(" polity.role_request carried out (proposal #1)"), "{audit}");
}

// ----- /kit -----

#[tokio::test]
async fn kit_list_and_install() {
    let mut env = Env::new().await;
    let list = env.run("alice", "/kit list").await;
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "Starter kits (`/kit install NAME`):");
    let names: Vec<&str> = lines[1..].iter().map(|l| l.split(" — ").next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "testing",
            "benevolent-dictator",
            "moderators",
            "direct-democracy",
            "consensus",
            "jury",
            "cred-voters",
            "expense-votes"
        ]
    );
    assert!(lines.contains(&format!("direct-democracy — {DIRECT_DEMOCRACY}").as_str()), "{list}");
    assert!(
        list.contains("Options: big=... (from how many cents an expense needs two thirds (50000 is 500.00); 50000 unless given), on=... (where the votes are held, PLATFORM:CHANNEL (discord:CHANNEL_ID))."),
        "{list}"
    );
    // A kit's options are checked before anything is requested.
    env.mistake(
        "admin",
        "/kit install expense-votes",
        "the kit expense-votes needs on=... (where the votes are held, PLATFORM:CHANNEL (discord:CHANNEL_ID)).",
    )
    .await;
    env.mistake("admin", "/kit install expense-votes on=chat:1 size=3", "the kit expense-votes has no option `size`: big=... (from how many cents an expense needs two thirds (50000 is 500.00); 50000 unless given), on=... (where the votes are held, PLATFORM:CHANNEL (discord:CHANNEL_ID)).").await;
    env.mistake("admin", "/kit install jury on=chat:1", "the kit jury has no options.").await;
    env.mistake("alice", "/kit list all", "`all` is more than the command takes. Usage: /kit list").await;

    env.mistake("admin", "/kit install anarchy", "there is no starter kit named \"anarchy\": `/kit list` shows them")
        .await;
    env.mistake("admin", "/kit install", "name is missing (the kit). Usage: /kit install NAME [OPTIONS]").await;
    env.mistake("admin", "/kit", "/kit needs one of: list, install.").await;

    assert_eq!(
        env.run("admin", "/kit install direct-democracy").await,
        format!("The starter kit direct-democracy is installed: {DIRECT_DEMOCRACY}")
    );
    assert_eq!(env.active_policies(), ["Majority of members", CONSTITUTION]);
    assert!(env.performed().is_empty(), "a governance change is no platform effect");

    // A member's kit install now goes to the constitution.
    assert_eq!(
        env.run("alice", "/kit install consensus").await,
        format!(
            "Proposal #1 asks to install the starter kit consensus; \"{CONSTITUTION}\" decides, and it happens if it passes."
        )
    );
    assert_eq!(env.active_policies(), ["Majority of members", CONSTITUTION]);
    for who in ["alice", "bob", "carol"] {
        env.react(who, 1, "👍").await;
    }
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert_eq!(
        env.active_policies(),
        [
            "Majority of members",
            CONSTITUTION,
            "No objection within 48 hours",
            "No objection to changes within 72 hours"
        ]
    );
}

// ----- /policy -----

#[tokio::test]
async fn policy_install_keeps_every_version() {
    let mut env = Env::new().await;
    env.run("admin", "/role create council").await;
    env.run("admin", "/role grant council alice").await;
    assert_eq!(
        env.run("admin", &format!("/policy install Council {COUNCIL}")).await,
        "\"Council\" is installed: a platform policy."
    );
    let first = env.now;
    assert_eq!(env.active_policies(), ["Council"]);
    let v2 = COUNCIL.replace("quorum = 1", "quorum = 2");
    assert_eq!(
        env.run("admin", &format!("/policy install council {v2}")).await,
        "A new version of \"Council\" is installed (`/policy history` keeps the old ones)."
    );
    let second = env.now;
    assert_eq!(env.active_policies(), ["Council"]);
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    env.mistake(
        "alice",
        "/policy history Council",
        &format!("\"Council\":\nversion 1, installed {}\nversion 2 (active), installed {}", at(first), at(second)),
    )
    .await;
    env.mistake(
        "alice",
        "/policy show council",
        "Council (platform policy):\nname = \"Council\"\nkind = \"platform\"\n[vote]\nvoters = \"role:council\"\nquorum = 2",
    )
    .await;
    // A policy may also arrive with real line breaks (Slack's multi-line messages).
    let constitution = "name = \"Charter\"\nkind = \"constitution\"\n[vote]\nquorum = 2\npass = \"2/3\"";
    assert_eq!(
        env.run("admin", &format!("/policy install Charter\n{constitution}")).await,
        "\"Charter\" is installed: a constitution policy."
    );
    assert_eq!(env.active_policies(), ["Council", "Charter"]);
}

#[tokio::test]
async fn policy_install_mistakes_change_nothing() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.mistake(
        "admin",
        r#"/policy install Bad name = "Bad"\nkind = "platfrom"\n[vote]\nquorum = "many""#,
        "The policy is not valid:\nline 2: `kind = \"platfrom\"` is not a kind: use platform, constitution or trigger\nline 4: `quorum = \"many\"` must be a count like 3 or a share like \"40%\"",
    )
    .await;
    let reply =
        env.refused("admin", r#"/policy install Bad name = "Bad"\nkind = "platform"\n[vote]\nclosed = "1h""#).await;
    assert!(reply.starts_with("The policy is not valid:\nline 4: "), "{reply}");
    assert!(reply.contains("closed"), "{reply}");
    let reply = env.refused("admin", r#"/policy install Bad name = "Bad"\nkind = "#).await;
    assert!(reply.starts_with("The policy is not valid:\nline 2: "), "{reply}");
    env.mistake(
        "admin",
        &format!("/policy install Senate {COUNCIL}"),
        "The TOML names the policy \"Council\", not \"Senate\": use the same name in both.",
    )
    .await;
    env.mistake(
        "admin",
        "/policy install Council",
        "toml is missing (the policy's TOML; on the console, `\\n` separates its lines). Usage: /policy install NAME TOML",
    )
    .await;
    // The vote of a policy that is not valid is never opened: a member's invalid policy is
    // refused before it reaches the constitution.
    env.mistake(
        "alice",
        r#"/policy install Bad name = "Bad"\nkind = "platfrom""#,
        "The policy is not valid:\nline 2: `kind = \"platfrom\"` is not a kind: use platform, constitution or trigger",
    )
    .await;
}

#[tokio::test]
async fn a_members_policy_install_and_remove_go_to_the_constitution() {
    let mut env = Env::with_kit("direct-democracy").await;
    assert_eq!(
        env.run("alice", &format!("/policy install Council {COUNCIL}")).await,
        format!(
            "Proposal #1 asks to install the policy \"Council\"; \"{CONSTITUTION}\" decides, and it happens if it passes."
        )
    );
    assert_eq!(env.active_policies(), ["Majority of members", CONSTITUTION]);
    env.react("alice", 1, "👍").await;
    env.react("bob", 1, "👍").await;
    assert_eq!(env.proposal(1).await.state, ProposalState::Proposed, "2 of 4 cannot decide yet");
    env.react("carol", 1, "👍").await;
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert_eq!(env.active_policies(), ["Majority of members", CONSTITUTION, "Council"]);

    assert_eq!(
        env.run("bob", "/policy remove council").await,
        format!(
            "Proposal #2 asks to remove the policy \"Council\"; \"{CONSTITUTION}\" decides, and it happens if it passes."
        )
    );
    for who in ["admin", "alice", "carol"] {
        env.react(who, 2, "👎").await;
    }
    assert_eq!(env.proposal(2).await.state, ProposalState::Failed);
    assert_eq!(
        env.active_policies(),
        ["Majority of members", CONSTITUTION, "Council"],
        "a failed proposal changes nothing"
    );
}

#[tokio::test]
async fn policy_list_show_history_and_remove() {
    let mut env = Env::new().await;
    env.mistake("alice", "/policy list", "No policy is installed: `/kit list` shows ready-made ones.").await;
    env.run("admin", "/kit install direct-democracy").await;
    env.mistake(
        "alice",
        "/policy list",
        &format!("Majority of members (platform; all of its kind)\n{CONSTITUTION} (constitution; all of its kind)"),
    )
    .await;
    let covering = r#"name = "Renames"\nkind = "platform"\nactions = ["discord.rename_channel", "slack.*"]"#;
    env.run("admin", &format!("/policy install Renames {covering}")).await;
    env.mistake(
        "alice",
        "/policy list",
        &format!(
            "Majority of members (platform; all of its kind)\n{CONSTITUTION} (constitution; all of its kind)\nRenames (platform; discord.rename_channel, slack.*)"
        ),
    )
    .await;
    let shown = env.run("alice", "/policy show Majority of members").await;
    assert!(shown.starts_with("Majority of members (platform policy):\n"), "{shown}");
    assert!(shown.contains("quorum = \"34%\""), "{shown}");
    env.mistake(
        "alice",
        "/policy show Unanimity",
        "There is no policy named \"Unanimity\": `/policy list` shows the installed ones.",
    )
    .await;
    env.mistake("alice", "/policy show", "name is missing (the policy). Usage: /policy show NAME").await;
    env.mistake(
        "alice",
        "/policy history majority of members",
        &format!("\"majority of members\":\nversion 1 (active), installed {}", t0().format("%Y-%m-%d %H:%M UTC")),
    )
    .await;
    env.mistake("alice", "/policy history Unanimity", "No policy named \"Unanimity\" was ever installed.").await;

    env.mistake(
        "admin",
        "/policy remove Unanimity",
        "There is no policy named \"Unanimity\": `/policy list` shows the installed ones.",
    )
    .await;
    assert_eq!(env.run("admin", "/policy remove renames").await, "\"Renames\" is removed; its versions are kept.");
    assert_eq!(env.active_policies(), ["Majority of members", CONSTITUTION]);
    let history = env.run("alice", "/policy history Renames").await;
    assert!(history.starts_with("\"Renames\":\nversion 1, installed "), "{history}");
    assert!(!history.contains("(active)"), "{history}");
    env.mistake(
        "admin",
        "/policy remove Renames",
        "There is no policy named \"Renames\": `/policy list` shows the installed ones.",
    )
    .await;
    env.mistake(
        "alice",
        "/policy show Renames",
        "There is no policy named \"Renames\": `/policy list` shows the installed ones.",
    )
    .await;
}

// ----- /role create, delete, list, grant, revoke -----

#[tokio::test]
async fn role_create_delete_and_list() {
    let mut env = Env::new().await;
    env.mistake(
        "alice",
        "/role list",
        "everyone — may: propose *, vote *; members: every member\nadmins (may do everything): admin",
    )
    .await;
    assert_eq!(env.run("admin", "/role create treasurer keeps the money").await, "The role treasurer is created.");
    assert_eq!(env.community().roles["treasurer"].description, "keeps the money");
    assert_eq!(env.run("admin", "/role create scribe").await, "The role scribe is created.");
    env.run("admin", "/role grant treasurer alice").await;
    env.run("admin", "/role grant treasurer bob").await;
    env.mistake(
        "alice",
        "/role list",
        "everyone — may: propose *, vote *; members: every member\nscribe — may: nothing; members: none\ntreasurer — may: nothing; members: alice, bob\nadmins (may do everything): admin",
    )
    .await;

    env.mistake("admin", "/role create treasurer", "The role treasurer already exists.").await;
    env.mistake("admin", "/role create everyone", "The role everyone already exists.").await;
    env.mistake(
        "admin",
        "/role create Treasurer",
        "`Treasurer` is not a role name: use lowercase letters, digits, `-` and `_`",
    )
    .await;
    env.mistake(
        "admin",
        "/role create tre$urer",
        "`tre$urer` is not a role name: use lowercase letters, digits, `-` and `_`",
    )
    .await;
    env.mistake("admin", "/role create", "role is missing (the new role). Usage: /role create ROLE [DESCRIPTION]")
        .await;

    env.mistake("admin", "/role delete everyone", "The role everyone belongs to every member and cannot be deleted.")
        .await;
    env.mistake("admin", "/role delete ghost", "There is no role ghost: `/role list` shows the roles.").await;
    assert_eq!(env.run("admin", "/role delete treasurer").await, "The role treasurer is deleted.");
    assert!(!env.community().roles.contains_key("treasurer"));
    assert_eq!(env.roles("alice").await, ["everyone"], "its members lost it");
    env.mistake("admin", "/role delete treasurer", "There is no role treasurer: `/role list` shows the roles.").await;
    env.mistake(
        "admin",
        "/role fly",
        "/role needs one of: request, create, delete, list, grant, revoke, bind, unbind.",
    )
    .await;
}

#[tokio::test]
async fn role_grant_and_revoke() {
    let mut env = Env::new().await;
    env.run("admin", "/role create treasurer").await;
    assert_eq!(env.run("admin", "/role grant treasurer alice").await, "alice has the role treasurer now.");
    assert_eq!(env.roles("alice").await, ["everyone", "treasurer"]);
    // Member names are matched without regard to case; the reply uses the member's own.
    assert_eq!(env.run("admin", "/role grant treasurer BOB").await, "bob has the role treasurer now.");
    env.mistake("admin", "/role grant treasurer alice", "alice already has the role treasurer.").await;
    env.mistake("admin", "/role grant ghost alice", "There is no role ghost: `/role list` shows the roles.").await;
    env.mistake("admin", "/role grant Treasurer alice", "There is no role Treasurer: `/role list` shows the roles.")
        .await;
    env.mistake("admin", "/role grant everyone alice", "There is no role everyone: `/role list` shows the roles.")
        .await;
    env.mistake("admin", "/role grant treasurer zed", "There is no member named zed.").await;
    env.mistake("admin", "/role grant treasurer", "member is missing (the member). Usage: /role grant ROLE MEMBER")
        .await;
    env.mistake(
        "admin",
        "/role grant treasurer alice bob",
        "`bob` is more than the command takes. Usage: /role grant ROLE MEMBER",
    )
    .await;

    assert_eq!(env.run("admin", "/role revoke treasurer alice").await, "alice no longer has the role treasurer.");
    assert_eq!(env.roles("alice").await, ["everyone"]);
    env.mistake("admin", "/role revoke treasurer alice", "alice does not have the role treasurer.").await;
    env.mistake("admin", "/role revoke treasurer carol", "carol does not have the role treasurer.").await;
    env.mistake("admin", "/role revoke ghost bob", "There is no role ghost: `/role list` shows the roles.").await;
    env.mistake("admin", "/role revoke treasurer zed", "There is no member named zed.").await;
    env.mistake("admin", "/role revoke everyone bob", "There is no role everyone: `/role list` shows the roles.").await;
    assert!(env.performed().is_empty(), "changes to governance are no platform effects");
}

// ----- /permission -----

#[tokio::test]
async fn permission_grant_and_revoke() {
    let mut env = Env::new().await;
    env.run("admin", "/role create treasurer").await;
    assert_eq!(
        env.run("admin", "/permission grant treasurer execute opencollective.*").await,
        "treasurer may execute opencollective.* now."
    );
    assert_eq!(
        env.run("admin", "/permission grant treasurer vote opencollective.process_expense").await,
        "treasurer may vote opencollective.process_expense now."
    );
    let grants: Vec<String> =
        env.community().roles["treasurer"].grants.iter().map(|(p, a)| format!("{p} {a}")).collect();
    assert_eq!(grants, ["execute opencollective.*", "vote opencollective.process_expense"]);

    env.mistake(
        "admin",
        "/permission grant treasurer execute opencollective.*",
        "treasurer may already execute opencollective.*.",
    )
    .await;
    env.mistake("admin", "/permission grant ghost execute *", "There is no role ghost: `/role list` shows the roles.")
        .await;
    env.mistake(
        "admin",
        "/permission grant treasurer spend *",
        "permission must be one of propose, execute, vote. Usage: /permission grant ROLE propose|execute|vote ACTIONS",
    )
    .await;
    env.mistake(
        "admin",
        "/permission grant treasurer execute OpenCollective",
        "`OpenCollective` is not an action name: write PLATFORM.NAME in lowercase, e.g. discord.rename_channel",
    )
    .await;
    env.mistake(
        "admin",
        "/permission grant treasurer execute Discord.*",
        "`Discord.*` is not an action pattern: write PLATFORM.* in lowercase, e.g. discord.*",
    )
    .await;
    env.mistake(
        "admin",
        "/permission grant treasurer execute",
        "actions is missing (an action type, PLATFORM.* or *). Usage: /permission grant ROLE propose|execute|vote ACTIONS",
    )
    .await;

    assert_eq!(
        env.run("admin", "/permission revoke treasurer execute opencollective.*").await,
        "treasurer may no longer execute opencollective.*."
    );
    env.mistake(
        "admin",
        "/permission revoke treasurer execute opencollective.*",
        "treasurer was never granted execute opencollective.*: `/role list` shows its permissions.",
    )
    .await;
    env.mistake("admin", "/permission revoke ghost vote *", "There is no role ghost: `/role list` shows the roles.")
        .await;
    env.mistake(
        "admin",
        "/permission revoke treasurer fly *",
        "permission must be one of propose, execute, vote. Usage: /permission revoke ROLE propose|execute|vote ACTIONS",
    )
    .await;
    // The implicit role `everyone` can be changed too.
    assert_eq!(env.run("admin", "/permission revoke everyone vote *").await, "everyone may no longer vote *.");
    assert_eq!(env.community().roles["everyone"].grants.len(), 1);
}

// ----- /audit -----

#[tokio::test]
async fn audit_shows_the_latest_lines_newest_last() {
    let mut env = Env::new().await;
    env.mistake("alice", "/audit", "The record is empty.").await;
    for role in ["a", "b", "c"] {
        env.run("admin", &format!("/role create {role}")).await;
    }
    // Each change leaves two lines: who did it by which right, and that it was carried out.
    let line =
        |secs: i64, text: &str| format!("{} UTC {text}", (t0() + TimeDelta::seconds(secs)).format("%Y-%m-%d %H:%M:%S"));
    let by_admin = "polity.role_create by chat:admin carried out: the initiator may execute it";
    env.mistake(
        "alice",
        "/audit 3",
        &[line(3, "polity.role_create carried out"), line(4, by_admin), line(4, "polity.role_create carried out")]
            .join("\n"),
    )
    .await;
    let all = env.run("alice", "/audit").await;
    assert_eq!(all.lines().count(), 6, "{all}");
    assert!(all.starts_with(&line(2, by_admin)), "{all}");
    for role in 0..12 {
        env.run("admin", &format!("/role create r{role}")).await;
    }
    assert_eq!(env.run("alice", "/audit").await.lines().count(), 20, "20 lines by default");
    assert_eq!(env.run("alice", "/audit 25").await.lines().count(), 25);
    assert_eq!(env.run("alice", "/audit 0").await.lines().count(), 1, "at least one line");
    env.mistake("alice", "/audit ten", "`ten` is not a number. Usage: /audit [COUNT]").await;
    env.mistake("alice", "/audit -1", "`-1` is not a number. Usage: /audit [COUNT]").await;
}

// ----- /help and the parser -----

#[tokio::test]
async fn help_lists_every_command_or_explains_one() {
    let mut env = Env::new().await;
    let all = env.run("alice", "/help").await;
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "Commands:");
    assert_eq!(lines.len(), CATALOGUE.len() + 1, "{all}");
    for spec in CATALOGUE {
        assert!(lines.contains(&format!("{} — {}", spec.usage(), spec.help).as_str()), "{all}");
    }
    assert!(lines.contains(&"/propose TEXT [policy:POLICY] — Put a decision to a vote."), "{all}");
    assert!(lines.contains(&"/role grant ROLE MEMBER — Give a member a role."), "{all}");

    env.mistake(
        "alice",
        "/help vote",
        "/vote ID CHOICE — Vote on a proposal, as a reaction would.\n  ID: the proposal's number\n  CHOICE: yes, no, abstain, an option, 1,3 or 3>1>2",
    )
    .await;
    env.mistake(
        "alice",
        "/help /propose",
        "/propose TEXT [policy:POLICY] — Put a decision to a vote.\n  TEXT: what you propose\n  policy:POLICY: the policy to decide it (default: the community's) (optional)",
    )
    .await;
    let governs = "  Changes governance: done at once if you may execute it, otherwise put to a vote.";
    env.mistake(
        "alice",
        "/help role grant",
        &format!("/role grant ROLE MEMBER — Give a member a role.\n  ROLE: the role\n  MEMBER: the member\n{governs}"),
    )
    .await;
    let kit = env.run("alice", "/help kit").await;
    assert_eq!(
        kit,
        format!(
            "/kit list — The starter kits.\n/kit install NAME [OPTIONS] — Install a starter kit: its roles, permissions and policies (some take options, key=value: `/kit list` says).\n  NAME: the kit\n  OPTIONS: its options, key=value (optional)\n{governs}"
        )
    );
    let role = env.run("alice", "/help role").await;
    let usages: Vec<&str> =
        role.lines().filter(|l| l.starts_with('/')).map(|l| l.split(" — ").next().unwrap()).collect();
    assert_eq!(
        usages,
        [
            "/role request ROLE",
            "/role create ROLE [DESCRIPTION]",
            "/role delete ROLE",
            "/role list",
            "/role grant ROLE MEMBER",
            "/role revoke ROLE MEMBER",
            "/role bind ROLE TO",
            "/role unbind ROLE TO"
        ]
    );
    env.mistake("alice", "/help frobnicate", "There is no command /frobnicate: /help lists the commands.").await;
}

#[tokio::test]
async fn parser_mistakes_say_what_to_write() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.mistake("alice", "/frobnicate now", "There is no command /frobnicate: /help lists the commands.").await;
    env.mistake("alice", "/", "Type a command: /help lists them.").await;
    env.mistake("alice", "", "Type a command: /help lists them.").await;
    env.mistake("alice", "/permission", "/permission needs one of: grant, revoke.").await;
    env.mistake("alice", "/unvote 1 2", "`2` is more than the command takes. Usage: /unvote ID").await;
    env.mistake("alice", "/proposals open now", "`now` is more than the command takes. Usage: /proposals [open|all]")
        .await;
    env.mistake(
        "alice",
        "/permission grant",
        "role is missing (the role). Usage: /permission grant ROLE propose|execute|vote ACTIONS",
    )
    .await;
    // Command words are read without regard to case.
    assert_eq!(
        env.run("alice", "/PROPOSE Buy a new server").await,
        "Proposal #1 is open, under \"Majority of members\"."
    );
}

// ----- retries -----

#[tokio::test]
async fn a_retried_invocation_is_a_duplicate() {
    let mut env = Env::with_kit("direct-democracy").await;
    assert_eq!(
        env.run_with_id("alice", "retry-1", "/propose Buy a new server").await,
        "Proposal #1 is open, under \"Majority of members\"."
    );
    let before = env.snapshot().await;
    assert_eq!(
        env.run_with_id("alice", "retry-1", "/propose Buy a new server").await,
        "That proposal was already made."
    );
    assert_eq!(before, env.snapshot().await, "the retry changed nothing");

    // A governance change, done at once the first time.
    assert_eq!(
        env.run_with_id("admin", "retry-2", "/kit install consensus").await,
        "The starter kit consensus is installed: Lazy consensus. A proposal passes when its deadline comes and nobody objected with 👎 (or as soon as every member has voted without objection); one objection stops it."
    );
    let before = env.snapshot().await;
    assert_eq!(
        env.run_with_id("admin", "retry-2", "/kit install consensus").await,
        "That request was already received."
    );
    assert_eq!(before, env.snapshot().await);

    let policy = r#"name = "Council"\nkind = "platform""#;
    env.run_with_id("admin", "retry-3", &format!("/policy install Council {policy}")).await;
    let before = env.snapshot().await;
    assert_eq!(
        env.run_with_id("admin", "retry-3", &format!("/policy install Council {policy}")).await,
        "That request was already received."
    );
    assert_eq!(before, env.snapshot().await, "no second version");

    // A member's governance change, put to a vote the first time.
    let env2 = &mut Env::with_kit("direct-democracy").await;
    env2.run("admin", "/role create treasurer").await;
    let asked = env2.run_with_id("alice", "retry-4", "/role grant treasurer bob").await;
    assert!(asked.starts_with("Proposal #1 asks to give bob the role treasurer"), "{asked}");
    let before = env2.snapshot().await;
    assert_eq!(
        env2.run_with_id("alice", "retry-4", "/role grant treasurer bob").await,
        "That request was already received."
    );
    assert_eq!(before, env2.snapshot().await, "one proposal, not two");

    // A ballot and a cancellation retried.
    assert_eq!(env.run_with_id("bob", "retry-5", "/vote 1 yes").await, "Your ballot on #1 is counted.");
    let before = env.snapshot().await;
    assert_eq!(env.run_with_id("bob", "retry-5", "/vote 1 yes").await, "Your ballot on #1 is counted.");
    assert_eq!(before, env.snapshot().await);
    assert_eq!(env.run_with_id("alice", "retry-6", "/cancel 1").await, "Proposal #1 is cancelled.");
    let before = env.snapshot().await;
    assert_eq!(env.run_with_id("alice", "retry-6", "/cancel 1").await, "Proposal #1 is cancelled.");
    assert_eq!(before, env.snapshot().await);
}

// ----- governance by members -----

#[tokio::test]
async fn a_members_role_grant_becomes_a_constitution_proposal_and_is_applied_when_it_passes() {
    let mut env = Env::with_kit("direct-democracy").await;
    assert_eq!(env.run("admin", "/role create treasurer").await, "The role treasurer is created.");
    assert_eq!(
        env.run("alice", "/role grant treasurer bob").await,
        format!(
            "Proposal #1 asks to give bob the role treasurer; \"{CONSTITUTION}\" decides, and it happens if it passes."
        )
    );
    let p = env.proposal(1).await;
    assert_eq!(p.policy_name, CONSTITUTION);
    assert_eq!(p.headline(), "alice asks to give bob the role treasurer");
    assert_eq!(p.closes_at, Some(env.now + TimeDelta::days(7)));
    assert_eq!(env.roles("bob").await, ["everyone"], "not before the vote");
    // A second request for the same change before the first is decided is its own proposal.
    assert!(
        env.run("carol", "/role grant treasurer bob")
            .await
            .starts_with("Proposal #2 asks to give bob the role treasurer")
    );

    env.react("alice", 1, "👍").await;
    env.react("bob", 1, "👍").await;
    assert_eq!(env.roles("bob").await, ["everyone"]);
    env.react("carol", 1, "👍").await;
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"], "applied when it passed");
    assert!(
        env.performed().iter().any(|e| matches!(e, Effect::Post { text, .. }
            if text.starts_with("Proposal #1 passed: alice asks to give bob the role treasurer"))),
        "the outcome was announced"
    );

    // The second proposal passing later finds the role already granted: nothing breaks.
    for who in ["alice", "bob", "carol"] {
        env.react(who, 2, "👍").await;
    }
    assert_eq!(env.proposal(2).await.state, ProposalState::Passed);
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"]);

    // A change the members vote down is not applied.
    assert!(
        env.run("bob", "/role revoke treasurer bob")
            .await
            .starts_with("Proposal #3 asks to take the role treasurer from bob")
    );
    for who in ["admin", "alice", "carol"] {
        env.react(who, 3, "👎").await;
    }
    assert_eq!(env.proposal(3).await.state, ProposalState::Failed);
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"]);
}

#[tokio::test]
async fn members_governance_commands_each_become_a_constitution_proposal() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("admin", "/role create treasurer").await;
    let asks = |n: i64, what: &str| {
        format!("Proposal #{n} asks to {what}; \"{CONSTITUTION}\" decides, and it happens if it passes.")
    };
    let cases = [
        ("/role create scribe", "create the role scribe"),
        ("/role delete treasurer", "delete the role treasurer"),
        ("/role request treasurer", "give alice the role treasurer"),
        ("/permission grant treasurer execute opencollective.*", "let treasurer execute opencollective.*"),
        ("/permission revoke everyone vote *", "stop everyone from vote *"),
        ("/policy remove Majority of members", "remove the policy \"Majority of members\""),
    ];
    for (n, (line, what)) in cases.iter().enumerate() {
        let before = env.community().clone();
        assert_eq!(env.run("alice", line).await, asks(n as i64 + 1, what), "{line}");
        assert_eq!(&before, env.community(), "{line} changed nothing yet");
    }
    // Each applies when it passes.
    for n in 1..=cases.len() as i64 {
        for who in ["alice", "bob", "carol"] {
            env.react(who, n, "👍").await;
        }
        assert_eq!(env.proposal(n).await.state, ProposalState::Passed, "proposal #{n}");
    }
    let c = env.community();
    assert!(c.roles.contains_key("scribe"));
    assert!(!c.roles.contains_key("treasurer"), "deleted");
    assert_eq!(
        env.roles("alice").await,
        ["everyone"],
        "the role alice asked for was deleted before her request passed"
    );
    assert_eq!(env.active_policies(), [CONSTITUTION]);
    let audit = env.run("admin", "/audit 40").await;
    assert!(audit.contains("polity.role_request could not be applied: there is no role `treasurer`"), "{audit}");
}

#[tokio::test]
async fn a_member_who_may_execute_a_change_makes_it_at_once() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("admin", "/role create steward").await;
    env.run("admin", "/role create treasurer").await;
    env.run("admin", "/permission grant steward execute polity.role_grant").await;
    env.run("admin", "/role grant steward alice").await;
    assert_eq!(env.run("alice", "/role grant treasurer bob").await, "bob has the role treasurer now.");
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"]);
    // Only that change: revoking still goes to a vote.
    assert!(
        env.run("alice", "/role revoke treasurer bob")
            .await
            .starts_with("Proposal #1 asks to take the role treasurer from bob;")
    );
    assert_eq!(env.roles("bob").await, ["everyone", "treasurer"]);
}

#[tokio::test]
async fn a_member_without_the_propose_permission_cannot_ask_for_changes() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("admin", "/role create treasurer").await;
    env.run("admin", "/permission revoke everyone propose *").await;
    env.mistake(
        "alice",
        "/role grant treasurer bob",
        &format!("you may not propose polity.role_grant: the policy \"{CONSTITUTION}\" governs it"),
    )
    .await;
}

// ----- /actions and /export -----

#[tokio::test]
async fn actions_lists_what_policies_can_use_by_kind() {
    let mut env = Env::new().await;
    let reply = env.refused("alice", "/actions").await;
    let headings: Vec<&str> = reply.lines().filter(|l| !l.starts_with("  ")).collect();
    assert_eq!(
        headings,
        [
            "Governable (platform policies revert and re-execute them):",
            "Triggers (start trigger policies):",
            "Actions (`do = [{ action = ... }]`, `polity.act`):",
            "Processes (`polity.start_process`):",
            "Changes to governance (constitution policies decide them):",
        ]
    );
    let lines: Vec<&str> = reply.lines().collect();
    for line in [
        "  chat.rename_channel — a channel renamed — name (the new name)",
        "  polity.propose — a plain proposal (/propose) — text (the proposal), policy (optional)",
        "  polity.role_grant — give a member a role — role (the role), member (the member's name)",
        "  chat.member_joined — someone joined — member (who)",
        "  chat.pin — pin a message — message (which)",
        "  message — post where the vote was held — text (what to say), on (PLATFORM:CHANNEL, optional)",
        "  chat.poll — a poll of the platform's own",
    ] {
        assert!(lines.contains(&line), "{line}\n{reply}");
    }
    // Sorted by name within each kind.
    let governable: Vec<&str> = lines[1..]
        .iter()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim_start().split(' ').next().unwrap())
        .collect();
    let mut sorted = governable.clone();
    sorted.sort_unstable();
    assert_eq!(governable, sorted);
    assert_eq!(governable[..2], ["chat.message", "chat.rename_channel"]);
    env.mistake("alice", "/actions all", "`all` is more than the command takes. Usage: /actions").await;
}

#[tokio::test]
async fn export_hands_over_the_record_as_a_file() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/propose Buy a new server").await;
    env.run("bob", "/vote 1 yes").await;

    let before = env.snapshot().await;
    let json = env.reply("carol", "/export").await;
    assert_eq!(json.text, "The governance record (polity-export.json):");
    let file = json.attachment.unwrap();
    assert_eq!(file.name, "polity-export.json");
    let record: serde_json::Value = serde_json::from_str(&file.content).unwrap();
    let community = &record["communities"][0];
    assert_eq!(record["communities"].as_array().unwrap().len(), 1);
    assert_eq!(community["name"], "test");
    assert_eq!(community["proposals"][0]["proposer"], "alice");
    assert_eq!(community["proposals"][0]["state"], "proposed");
    assert_eq!(community["proposals"][0]["ballots"][0]["voter"], "bob");
    assert_eq!(community["proposals"][0]["ballots"][0]["choice"], "yes");
    assert_eq!(env.reply("carol", "/export json").await.attachment.unwrap().name, "polity-export.json");

    let csv = env.reply("carol", "/export csv").await;
    assert_eq!(csv.text, "The governance record (polity-export.csv):");
    let file = csv.attachment.unwrap();
    assert_eq!(file.name, "polity-export.csv");
    let lines: Vec<&str> = file.content.lines().collect();
    assert_eq!(lines[0], "community,record,proposal,at,who,what,detail");
    assert!(
        lines.iter().any(|l| l.starts_with("test,proposal,1,") && l.contains(",alice,polity.propose,")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("test,ballot,1,") && l.ends_with(",bob,yes,chat:bob via command")),
        "{lines:?}"
    );
    assert_eq!(before, env.snapshot().await, "an export changes nothing");

    env.mistake("carol", "/export xml", "format must be one of json, csv. Usage: /export [json|csv]").await;
}

// ----- /link -----

/// The code a `/link` reply shows.
fn link_code(reply: &str) -> String {
    let code = reply.split("`/link confirm ").nth(1).and_then(|r| r.split('`').next()).unwrap();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "a six-digit code: {reply}");
    code.to_string()
}

fn link_reply(account: &str, code: &str) -> String {
    let (platform, name) = account.split_once(':').unwrap();
    format!(
        "To link {account} to you, type `/link confirm {code}` on {platform} as {name} within 10 minutes. The code works once."
    )
}

#[tokio::test]
async fn link_confirms_another_account_with_the_code_it_types() {
    let mut env = Env::new().await;
    let discord = AccountRef::new("discord", "1234");
    env.mistake_as(&discord, "/whoami", "discord:1234 is not a member of this community yet.").await;

    let reply = env.run("alice", "/link discord 1234").await;
    let code = link_code(&reply);
    assert_eq!(reply, link_reply("discord:1234", &code));
    // The platform's name is not case-sensitive.
    let reply = env.run("bob", "/link Discord 77").await;
    assert_eq!(reply, link_reply("discord:77", &link_code(&reply)));
    assert_ne!(code, link_code(&reply), "every code is its own");

    assert_eq!(env.run_as(&discord, &format!("/link confirm {code}")).await, "discord:1234 is now linked to alice.");
    let alice = "You are alice.\naccounts: chat:alice (first seen), discord:1234 (confirmed by code)\nroles: everyone\npermissions: propose *, vote *";
    env.mistake_as(&discord, "/whoami", alice).await;
    env.mistake("alice", "/whoami", alice).await;
    // Recorded, not only in memory.
    let stored = env.rt.store().load_community(env.c).await.unwrap();
    assert_eq!(stored.member_by_account(&discord).map(|m| m.name.as_str()), Some("alice"));
    assert_eq!(&stored, env.community());
    let audit = env.run("admin", "/audit").await;
    assert_eq!(audit, "2026-11-22 12:00:04 UTC polity.link_account carried out");
    // Nothing was posted or sent anywhere.
    assert_eq!(env.performed(), []);

    // A linked account acts as its member: the admin's may change governance.
    let code = link_code(&env.run("admin", "/link matrix root").await);
    let matrix = AccountRef::new("matrix", "root");
    assert_eq!(env.run_as(&matrix, &format!("/link confirm {code}")).await, "matrix:root is now linked to admin.");
    assert_eq!(env.run_as(&matrix, "/role create scribe").await, "The role scribe is created.");
    env.mistake_as(
        &discord,
        "/role create clerk",
        "no constitution policy lets members ask for polity.role_create yet: an admin can do it, or install a starter kit with a constitution",
    )
    .await;
}

#[tokio::test]
async fn an_account_already_admitted_on_its_platform_links_and_its_member_merges_without_voting_twice() {
    let mut env = Env::with_kit("direct-democracy").await;
    // Dave's Discord account took part before anyone linked it: a member of its own, as
    // every member of a Discord server is when the server arrives.
    let discord = AccountRef::new("discord", "1234");
    assert!(env.rt.admit(env.c, &discord, "dave"));
    env.rt.save_community(env.c, env.now).await.unwrap();
    assert!(env.run("alice", "/propose Paint the shed").await.starts_with("Proposal #1 is open"));
    // Both of Dave's members vote.
    assert_eq!(env.run("alice", "/vote 1 yes").await, "Your ballot on #1 is counted.");
    assert_eq!(env.run_as(&discord, "/vote 1 no").await, "Your ballot on #1 is counted.");
    let eligible_before = env.proposal(1).await.vote.unwrap().eligible.len();

    let code = link_code(&env.run("alice", "/link discord 1234").await);
    assert_eq!(env.run_as(&discord, &format!("/link confirm {code}")).await, "discord:1234 is now linked to alice.");
    let alice = "You are alice.\naccounts: chat:alice (first seen), discord:1234 (first seen)\nroles: everyone\npermissions: propose *, vote *";
    env.mistake_as(&discord, "/whoami", alice).await;
    assert!(env.community().member_by_name("dave").is_none(), "dave's member is merged into alice");
    // One person, one ballot: alice's own stands; dave's place among the voters is hers.
    let vote = env.proposal(1).await.vote.unwrap();
    assert_eq!(vote.eligible.len(), eligible_before - 1);
    assert_eq!(vote.ballots.len(), 1);
    let stored = env.rt.store().load_community(env.c).await.unwrap();
    assert_eq!(&stored, env.community());
    let stored = env.rt.store().proposal(env.c, polity_governance::ProposalId(1)).await.unwrap().unwrap();
    assert_eq!(stored.vote.unwrap().ballots.len(), 1, "recorded, not only in memory");
}

#[tokio::test]
async fn link_mistakes_change_nothing() {
    let mut env = Env::new().await;
    env.mistake(
        "zed",
        "/link discord 1",
        "You are not a member of this community yet: take part here first, then link.",
    )
    .await;
    env.mistake("alice", "/link chat alice", "That is the account you are using now.").await;
    env.mistake("alice", "/link CHAT alice", "That is the account you are using now.").await;
    let code = link_code(&env.run("bob", "/link chat alice").await);
    assert!(
        env.run("bob", "/link chat alice")
            .await
            .ends_with("chat:alice is the member alice now: once linked, alice and you are one member."),
        "{code}"
    );
    let alice = AccountRef::new("discord", "4321");
    let reply = env.run("alice", "/link discord 4321").await;
    assert_eq!(
        env.run_as(&alice, &format!("/link confirm {}", link_code(&reply))).await,
        "discord:4321 is now linked to alice."
    );
    // An admin's standing never passes to a member who is not one.
    env.mistake(
        "carol",
        "/link chat admin",
        "chat:admin is an admin's account (admin): it can be linked only to another admin.",
    )
    .await;
    // A member with several accounts is someone established: nobody else can take one.
    env.mistake("bob", "/link chat alice", "chat:alice already belongs to alice.").await;
    env.mistake("alice", "/link discord", "account is missing (your account there). Usage: /link PLATFORM ACCOUNT")
        .await;
    env.mistake("alice", "/link confirm", "code is missing (the code /link showed you). Usage: /link confirm CODE")
        .await;

    let discord = AccountRef::new("discord", "1234");
    let code = link_code(&env.run("alice", "/link discord 1234").await);
    // Typed by an account that is already a member: whatever the code, it would link nothing.
    env.mistake(
        "carol",
        &format!("/link confirm {code}"),
        "chat:carol already belongs to carol: type the code as the account you want to link.",
    )
    .await;
    // Typed by another account than the one named.
    let other = AccountRef::new("discord", "999");
    env.mistake_as(
        &other,
        &format!("/link confirm {code}"),
        "That code is not for this account: type it as the account you named.",
    )
    .await;
    env.mistake_as(
        &discord,
        "/link confirm 12345x",
        "That code is wrong: check it, or run /link again where you are a member.",
    )
    .await;
    // None of that used the code up.
    assert_eq!(env.run_as(&discord, &format!("/link confirm {code}")).await, "discord:1234 is now linked to alice.");

    // A used code works no more, whoever types it.
    env.mistake_as(
        &other,
        &format!("/link confirm {code}"),
        "That code was already used: run /link again for a new one.",
    )
    .await;
    // The linked account is a member now.
    env.mistake_as(
        &discord,
        &format!("/link confirm {code}"),
        "discord:1234 already belongs to alice: type the code as the account you want to link.",
    )
    .await;
    env.mistake("alice", "/link discord 1234", "discord:1234 already belongs to you.").await;
    env.mistake("bob", "/link discord 1234", "discord:1234 already belongs to alice.").await;
    env.mistake_as(&discord, "/link chat alice", "chat:alice already belongs to you.").await;
}

#[tokio::test]
async fn a_link_code_expires_after_ten_minutes() {
    let mut env = Env::new().await;
    let slack = AccountRef::new("slack", "U1");
    let code = link_code(&env.run("carol", "/link slack U1").await);
    // Ten minutes and a second later.
    env.wait(TimeDelta::minutes(10));
    env.mistake_as(&slack, &format!("/link confirm {code}"), "That code has expired: run /link again for a new one.")
        .await;
    // A new code, typed within its ten minutes.
    let code = link_code(&env.run("carol", "/link slack U1").await);
    env.wait(TimeDelta::minutes(9) + TimeDelta::seconds(58));
    assert_eq!(env.run_as(&slack, &format!("/link confirm {code}")).await, "slack:U1 is now linked to carol.");
    env.mistake(
        "carol",
        "/whoami",
        "You are carol.\naccounts: chat:carol (first seen), slack:U1 (confirmed by code)\nroles: everyone\npermissions: propose *, vote *",
    )
    .await;
}

// ----- /policy dry-run -----

/// A platform policy over messages in the chat (inline, as typed on the console).
const MESSAGES: &str = r#"name = "Messages"\nkind = "platform"\nactions = ["chat.message"]\n[vote]\nvoters = "everyone"\nquorum = 2\ncloses = "1h""#;

#[tokio::test]
async fn policy_dry_run_plays_recent_actions_without_doing_anything() {
    let mut env = Env::new().await;
    // Said before any policy governed messages: allowed, and recorded.
    env.message("alice", "hello all").await;
    env.message("bob", "buy pizza").await;
    // The admin may execute everything: no policy would have governed this one.
    env.message("admin", "a note from the admin").await;
    env.wait(TimeDelta::hours(2));
    assert_eq!(
        env.run("admin", &format!("/policy install Messages {MESSAGES}")).await,
        "\"Messages\" is installed: a platform policy."
    );
    assert_eq!(env.performed(), [], "nothing governed the messages when they were said");

    let reply = env.refused("carol", "/policy dry-run Messages").await;
    assert_eq!(
        reply,
        [
            "In the last 7d, \"Messages\" would have (nothing of this was done):",
            "2026-11-22 12:00: would undo chat.message by chat:alice",
            "2026-11-22 12:00: would open proposal #1 and its vote: alice posted in #general: hello all",
            "2026-11-22 12:00: would undo chat.message by chat:bob",
            "2026-11-22 12:00: would open proposal #2 and its vote: bob posted in #general: buy pizza",
            "2026-11-22 14:00: would post \"Proposal #1 expired without enough ballots: alice posted in #general: hello all (yes 0 · no 0 · abstain 0 (0 of 4 voted))\"",
            "2026-11-22 14:00: would post \"Proposal #2 expired without enough ballots: bob posted in #general: buy pizza (yes 0 · no 0 · abstain 0 (0 of 4 voted))\"",
            "2026-11-22 14:00: proposal #1 would be expired (with no ballots cast)",
            "2026-11-22 14:00: proposal #2 would be expired (with no ballots cast)",
        ]
        .join("\n")
    );
    // The same, with the period named; the name is not case-sensitive.
    let reply = env.refused("carol", "/policy dry-run messages since:1d").await;
    assert!(reply.starts_with("In the last 1d, \"Messages\" would have (nothing of this was done):\n"), "{reply}");
    assert_eq!(reply.lines().count(), 9, "{reply}");
    // Only the last hour: the messages are older.
    assert_eq!(
        env.refused("carol", "/policy dry-run Messages since:1h").await,
        "In the last 1h, \"Messages\" would have done nothing."
    );

    // Nothing the dry run played happened: the first real proposal is still #1.
    env.message("carol", "now it counts").await;
    let p = env.proposal(1).await;
    assert_eq!((p.policy_name.as_str(), p.headline()), ("Messages", "carol posted in #general: now it counts".into()));
    assert_eq!(env.rt.store().load_proposals(env.c, false).await.unwrap().len(), 1);
}

#[tokio::test]
async fn policy_dry_run_mistakes_change_nothing() {
    let mut env = Env::new().await;
    env.message("alice", "hello").await;
    env.mistake(
        "alice",
        "/policy dry-run Messages",
        "There is no policy named \"Messages\": `/policy list` shows the installed ones.",
    )
    .await;
    env.run("admin", &format!("/policy install Messages {MESSAGES}")).await;
    env.mistake(
        "alice",
        "/policy dry-run Nope since:1d",
        "There is no policy named \"Nope\": `/policy list` shows the installed ones.",
    )
    .await;
    env.mistake(
        "alice",
        "/policy dry-run Messages since:soon",
        "since: `soon` is not a duration: `s` has no number before it",
    )
    .await;
    env.mistake(
        "alice",
        "/policy dry-run Messages since:",
        "`since:` needs a value. Usage: /policy dry-run NAME [since:SINCE]",
    )
    .await;
    env.mistake(
        "alice",
        "/policy dry-run",
        "name is missing (the installed policy). Usage: /policy dry-run NAME [since:SINCE]",
    )
    .await;
}

#[tokio::test]
async fn policy_dry_run_leaves_out_what_was_done_by_permission() {
    let mut env = Env::new().await;
    env.run("admin", "/role create steward").await;
    env.run("admin", "/permission grant steward execute chat.message").await;
    env.run("admin", "/role grant steward carol").await;
    env.message("carol", "the steward speaks").await;
    env.message("admin", "so does the admin").await;
    env.run("admin", &format!("/policy install Messages {MESSAGES}")).await;
    assert_eq!(
        env.refused("bob", "/policy dry-run Messages").await,
        "In the last 7d, \"Messages\" would have done nothing."
    );
    // A constitution installed after the admin's changes: each was made by permission.
    let constitution = r#"name = "Council"\nkind = "constitution"\n[vote]\nvoters = "everyone"\nquorum = 1"#;
    env.run("admin", &format!("/policy install Council {constitution}")).await;
    assert_eq!(
        env.refused("bob", "/policy dry-run Council since:1h").await,
        "In the last 1h, \"Council\" would have done nothing."
    );
    // Anyone else's message would have been put to the vote.
    env.message("bob", "hi").await;
    let reply = env.refused("bob", "/policy dry-run Messages").await;
    assert_eq!(
        reply,
        [
            "In the last 7d, \"Messages\" would have (nothing of this was done):",
            "2026-11-22 12:00: would undo chat.message by chat:bob",
            "2026-11-22 12:00: would open proposal #1 and its vote: bob posted in #general: hi",
        ]
        .join("\n")
    );
}

// ----- /integration -----

/// Where nothing listens (the discard port on this machine): a platform that cannot be reached.
const NOWHERE: &str = "http://127.0.0.1:9";

const NO_CONNECTION: &str = "No platform is connected: `/integration add PLATFORM NAME` connects one.";

/// Runs `/integration add` as `who`: it must only ask for the secret, changing nothing yet.
async fn ask_secret(env: &mut Env, who: &str, line: &str) -> SecretPrompt {
    let before = env.snapshot().await;
    let reply = env.reply(who, line).await;
    assert_eq!(before, env.snapshot().await, "asking for a secret changes nothing: {line}");
    assert_eq!(reply.attachment, None);
    let prompt = reply.secret_prompt.unwrap_or_else(|| panic!("{line} asks for a secret: {}", reply.text));
    let asked = format!(
        " bot does not run here, so {} needs {} of the community's own. Type it where only you see it (on the console: the next line). It is stored encrypted and never shown again.",
        prompt.name, prompt.label
    );
    assert!(reply.text.starts_with("Polity's own ") && reply.text.ends_with(&asked), "{}", reply.text);
    prompt
}

/// The stored secret of a connection, still encrypted.
async fn ciphertext(env: &Env, name: &str) -> Option<String> {
    let rows = platform_connections::Entity::find().all(env.rt.store().db()).await.unwrap();
    rows.into_iter().find(|r| r.name == name && r.community_id == env.c.0).and_then(|r| r.secret_ciphertext)
}

/// Asserts `secret` appears nowhere Polity writes or says anything: the replies given, the
/// audit log, the inbox, the outbox, the effects performed, the export.
async fn assert_never_shown(env: &mut Env, secret: &str, replies: &[String]) {
    for r in replies {
        assert!(!r.contains(secret), "a reply shows the secret: {r}");
    }
    let store = env.rt.store();
    for a in store.audit(env.c, 10_000).await.unwrap() {
        assert!(!a.text.contains(secret) && !a.event.to_string().contains(secret), "{a:?}");
    }
    for row in inbox::Entity::find().all(store.db()).await.unwrap() {
        assert!(!row.payload.contains(secret), "{row:?}");
    }
    for row in outbox::Entity::find().all(store.db()).await.unwrap() {
        assert!(!format!("{row:?}").contains(secret), "{row:?}");
    }
    for c in store.connections(env.c).await.unwrap() {
        assert!(!format!("{c:?}").contains(secret), "{c:?}");
    }
    for e in env.performed() {
        assert!(!format!("{e:?}").contains(secret), "{e:?}");
    }
    for format in ["json", "csv"] {
        let export = env.reply("admin", &format!("/export {format}")).await.attachment.unwrap();
        assert!(!export.content.contains(secret), "the {format} export shows the secret");
    }
}

#[tokio::test]
async fn integration_add_list_test_and_remove_keep_the_secret_secret() {
    const SECRET: &str = "xoxb-2024-polity-very-secret-token";
    let mut env = Env::with_secret_key().await;
    let mut replies = Vec::new();
    env.mistake("alice", "/integration list", NO_CONNECTION).await;

    let prompt =
        ask_secret(&mut env, "admin", &format!("/integration add Discord main guild=123 base_url={NOWHERE}")).await;
    let mut config = serde_json::Map::new();
    config.insert("guild".into(), "123".into());
    config.insert("base_url".into(), NOWHERE.into());
    assert_eq!(
        prompt,
        SecretPrompt { platform: "discord".into(), name: "main".into(), config, label: "the bot token".into() }
    );
    // Typed with the spaces a paste brings along.
    let reply = env.type_secret("admin", prompt, &format!("  {SECRET}\n")).await;
    assert_eq!(reply.text, "main (discord) is connected. `/integration test main` checks it.");
    replies.push(reply.text);

    let list = env.refused("alice", "/integration list").await;
    assert_eq!(list, "main — discord, enabled, secret stored");
    replies.push(list);
    // The test is a real call, to where the connection says Discord is: nothing answers.
    let test = env.refused("alice", "/integration test main").await;
    assert!(
        test.starts_with("main (discord) failed its test: the platform could not be reached: temporary failure: GET /api/v10/users/@me:"),
        "{test}"
    );
    replies.push(test);

    // Stored encrypted, and readable with the key, trimmed.
    let stored = ciphertext(&env, "main").await.unwrap();
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.contains(SECRET) && !stored.contains("very-secret"), "{stored}");
    let secret = env.rt.store().connection_secret(env.c, "main").await.unwrap().unwrap();
    assert_eq!(secret.expose(), SECRET);
    let connection = &env.rt.store().connections(env.c).await.unwrap()[0];
    assert_eq!(connection.config, serde_json::json!({ "guild": "123", "base_url": NOWHERE, "enabled": true }));

    let audit = env.run("admin", "/audit").await;
    assert_eq!(
        audit,
        "2026-11-22 12:00:03 UTC polity.integration_add by chat:admin carried out: the initiator may execute it\n2026-11-22 12:00:03 UTC polity.integration_add carried out"
    );
    replies.push(audit);
    assert_never_shown(&mut env, SECRET, &replies).await;

    let removed = env.run("admin", "/integration remove main").await;
    assert_eq!(removed, "main (discord) is disconnected and its settings and secret deleted.");
    env.mistake("alice", "/integration list", NO_CONNECTION).await;
    assert_eq!(ciphertext(&env, "main").await, None);
    assert_eq!(env.rt.store().connection_secret(env.c, "main").await.unwrap(), None);
    env.mistake(
        "alice",
        "/integration test main",
        "There is no connection named main: `/integration list` shows them.",
    )
    .await;
    // The name is free again.
    ask_secret(&mut env, "admin", "/integration add slack main").await;
}

#[tokio::test]
async fn integration_mistakes_change_nothing() {
    let mut env = Env::with_secret_key().await;
    let prompt_for_main = ask_secret(&mut env, "admin", "/integration add discord main").await;
    env.type_secret("admin", prompt_for_main, "tok-main").await;

    env.mistake(
        "admin",
        "/integration add myspace mine",
        "Polity does not connect to `myspace`: choose discord, opencollective, discourse, loomio, reddit, slack, github, sourcecred.",
    )
    .await;
    for name in ["Main", "my.bot", "a-name-that-is-far-too-long-for-polity"] {
        env.mistake(
            "admin",
            &format!("/integration add discord {name}"),
            &format!("`{name}` is not a connection name: use up to 32 lowercase letters, digits, `-` and `_`."),
        )
        .await;
    }
    env.mistake(
        "admin",
        "/integration add slack main",
        "A connection named main exists already: `/integration list` shows them.",
    )
    .await;
    env.mistake(
        "admin",
        "/integration add discord other guild=1 colour=blue",
        "`colour` is not a setting of Discord: use guild, base_url.",
    )
    .await;
    for bad in ["x", "guild=", "=1"] {
        env.mistake(
            "admin",
            &format!("/integration add discord other {bad}"),
            &format!("`{bad}` is not a setting: write key=value."),
        )
        .await;
    }
    env.mistake(
        "admin",
        "/integration add discord",
        "name is missing (a name for the connection). Usage: /integration add PLATFORM NAME [SETTINGS]",
    )
    .await;
    env.mistake(
        "admin",
        "/integration test nope",
        "There is no connection named nope: `/integration list` shows them.",
    )
    .await;
    env.mistake(
        "admin",
        "/integration remove nope",
        "There is no connection named nope: `/integration list` shows them.",
    )
    .await;
    env.mistake("admin", "/integration", "/integration needs one of: add, list, test, remove, confirm.").await;

    // Nothing typed when the secret was asked for.
    let p = ask_secret(&mut env, "admin", "/integration add discord other").await;
    assert_eq!(
        env.secret_refused("admin", p.clone(), "  \n").await,
        "Nothing was typed, so other is not connected: run /integration add again."
    );
    // The name was taken between the prompt and the answer.
    let taken = ask_secret(&mut env, "admin", "/integration add github code").await;
    env.type_secret("admin", p.clone(), "tok-other").await;
    let renamed = SecretPrompt { name: "other".into(), ..taken };
    assert_eq!(
        env.secret_refused("admin", renamed, "tok-code").await,
        "A connection named other exists already: `/integration list` shows them."
    );
    assert_eq!(
        env.refused("admin", "/integration list").await,
        "main — discord, enabled, secret stored\nother — discord, enabled, secret stored"
    );
    assert_eq!(env.rt.store().connection_secret(env.c, "other").await.unwrap().unwrap().expose(), "tok-other");
}

#[tokio::test]
async fn integration_secrets_need_a_secret_key_but_sourcecred_needs_none() {
    let mut env = Env::new().await;
    // Said before the secret is typed, not after; what is typed anyway is read privately.
    let reply = env.reply("admin", "/integration add discord main").await;
    assert_eq!(
        reply.text,
        "Polity cannot store secrets without a secret key: run `polity init` (or set POLITY_SECRET_KEY to 32 random bytes in base64, e.g. from `openssl rand -base64 32`) and start Polity again. Anything typed next is read where only you see it and dropped."
    );
    let p = reply.secret_prompt.unwrap();
    assert_eq!(
        env.secret_refused("admin", p, "tok").await,
        "Polity cannot store secrets without POLITY_SECRET_KEY (base64 of 32 bytes): set it and start Polity again."
    );
    env.mistake("admin", "/integration list", NO_CONNECTION).await;

    // SourceCred has no secret: connected at once, with no prompt.
    let reply = env.reply("admin", "/integration add sourcecred cred base_url=https://cred.example.org").await;
    assert_eq!(reply.secret_prompt, None);
    assert_eq!(reply.text, "cred (sourcecred) is connected. `/integration test cred` checks it.");
    assert_eq!(env.refused("alice", "/integration list").await, "cred — sourcecred, enabled, no secret");
    assert_eq!(ciphertext(&env, "cred").await, None);
    assert_eq!(
        env.refused("alice", "/integration test cred").await,
        "cred (sourcecred) failed its test: the platform could not be reached: a declared test platform has no server"
    );
}

#[tokio::test]
async fn a_members_integration_waits_for_its_proposal_to_pass() {
    const SECRET: &str = "ghp_members-own-secret-token-42";
    let mut env = Env::with_secret_key().await;
    env.run("admin", "/kit install direct-democracy").await;
    let p = ask_secret(&mut env, "alice", "/integration add github code repository=org/repo").await;
    assert_eq!((p.platform.as_str(), p.label.as_str()), ("github", "the token"));
    let reply = env.type_secret("alice", p, SECRET).await.text;
    assert_eq!(
        reply,
        format!("Proposal #1 asks to connect github as code; \"{CONSTITUTION}\" decides, and it happens if it passes.")
    );
    let proposal = env.proposal(1).await;
    assert_eq!(proposal.policy_name, CONSTITUTION);
    assert_eq!(proposal.headline(), "alice asks to connect github as code");
    let waiting = env.refused("bob", "/integration list").await;
    assert_eq!(waiting, "code — github, waiting for its proposal to pass, secret stored");
    let test = env.refused("bob", "/integration test code").await;
    assert_eq!(test, "code waits for its proposal to pass before Polity uses it.");
    // Its name is taken while it waits.
    env.mistake(
        "bob",
        "/integration add discord code",
        "A connection named code exists already: `/integration list` shows them.",
    )
    .await;

    env.react("alice", 1, "👍").await;
    env.react("bob", 1, "👍").await;
    assert_eq!(env.refused("bob", "/integration list").await, waiting, "not before the vote is decided");
    env.react("carol", 1, "👍").await;
    assert_eq!(env.proposal(1).await.state, ProposalState::Passed);
    let enabled = env.refused("bob", "/integration list").await;
    assert_eq!(enabled, "code — github, enabled, secret stored");
    assert_eq!(env.rt.store().connection_secret(env.c, "code").await.unwrap().unwrap().expose(), SECRET);
    assert!(
        env.performed().iter().any(|e| matches!(e, Effect::Post { text, .. }
            if text.starts_with("Proposal #1 passed: alice asks to connect github as code"))),
        "the outcome was announced"
    );

    // Disconnecting is a change to governance too.
    let removing = env.run("bob", "/integration remove code").await;
    assert_eq!(
        removing,
        format!("Proposal #2 asks to disconnect code; \"{CONSTITUTION}\" decides, and it happens if it passes.")
    );
    assert_eq!(env.refused("bob", "/integration list").await, "code — github, enabled, secret stored");
    for who in ["alice", "bob", "carol"] {
        env.react(who, 2, "👍").await;
    }
    assert_eq!(env.proposal(2).await.state, ProposalState::Passed);
    env.mistake("bob", "/integration list", NO_CONNECTION).await;
    assert_eq!(ciphertext(&env, "code").await, None);

    assert_never_shown(&mut env, SECRET, &[reply, waiting, test, enabled, removing]).await;
}

// ----- known bugs: each test says what should happen -----

#[tokio::test]
async fn a_refused_integration_add_changes_nothing() {
    // No constitution: a member may not change governance at all.
    let mut env = Env::with_secret_key().await;
    env.mistake(
        "alice",
        "/integration add sourcecred cred",
        "no constitution policy lets members ask for polity.integration_add yet: an admin can do it, or install a starter kit with a constitution",
    )
    .await;
    let p = ask_secret(&mut env, "alice", "/integration add discord main").await;
    assert_eq!(
        env.secret_refused("alice", p, "tok-refused").await,
        "no constitution policy lets members ask for polity.integration_add yet: an admin can do it, or install a starter kit with a constitution"
    );
    assert_eq!(ciphertext(&env, "main").await, None, "no secret is kept for a refused request");
}

#[tokio::test]
async fn a_rejected_integration_is_forgotten_with_its_secret() {
    let mut env = Env::with_secret_key().await;
    env.run("admin", "/kit install direct-democracy").await;
    let p = ask_secret(&mut env, "alice", "/integration add github code").await;
    env.type_secret("alice", p, "tok-rejected").await;
    for who in ["admin", "bob", "carol"] {
        env.react(who, 1, "👎").await;
    }
    assert_eq!(env.proposal(1).await.state, ProposalState::Failed);
    assert_eq!(env.rt.store().connection_secret(env.c, "code").await.unwrap(), None);
    env.mistake("bob", "/integration list", NO_CONNECTION).await;
}

#[tokio::test]
async fn a_retried_integration_add_is_a_duplicate() {
    let mut env = Env::new().await;
    assert_eq!(
        env.run_with_id("admin", "retry-1", "/integration add sourcecred cred").await,
        "cred (sourcecred) is connected. `/integration test cred` checks it."
    );
    assert_eq!(
        env.run_with_id("admin", "retry-1", "/integration add sourcecred cred").await,
        "That request was already received."
    );
}

#[tokio::test]
async fn policy_dry_run_says_only_what_the_policy_itself_would_do() {
    let mut env = Env::with_kit("direct-democracy").await;
    env.run("alice", "/role create scribe").await;
    env.run("alice", "/propose Lunch on Friday").await;
    assert_eq!(
        env.refused("bob", "/policy dry-run \"Majority of members\"").await,
        "In the last 7d, \"Majority of members\" would have (nothing of this was done):\n2026-11-22 12:00: would open proposal #1 and its vote: alice proposes: Lunch on Friday"
    );
    assert_eq!(
        env.refused("bob", &format!("/policy dry-run \"{CONSTITUTION}\"")).await,
        format!(
            "In the last 7d, \"{CONSTITUTION}\" would have (nothing of this was done):\n2026-11-22 12:00: would open proposal #1 and its vote: alice asks to create the role scribe"
        )
    );
}

#[tokio::test]
async fn with_polity_s_own_discord_bot_running_a_server_joins_by_invite_with_no_token() {
    const INVITE: &str =
        "https://discord.com/oauth2/authorize?client_id=9&scope=bot+applications.commands&permissions=1";
    let mut env = Env::new().await;
    env.rt.set_invite("discord", INVITE.into());
    // Which server must be said.
    env.mistake(
        "admin",
        "/integration add discord main",
        "Say which server joins this community: `/integration add discord main guild=ID` (in Discord, Developer Mode → right-click the server → Copy Server ID).",
    )
    .await;
    // No token is asked for (none is needed, and no secret key either); the invite is given,
    // with the one-time code the server's owner or an admin confirms it with, inside it.
    let reply = env.reply("admin", "/integration add discord main guild=700000000000000001").await;
    assert_eq!(reply.secret_prompt, None);
    let stored = env.rt.store().connections(env.c).await.unwrap();
    assert_eq!(stored[0].config["guild"], "700000000000000001");
    let code = stored[0].config["join_code"].as_str().unwrap().to_string();
    assert!(code.len() == 10 && code.chars().all(|c| c.is_ascii_digit()), "{code}");
    assert_eq!(
        reply.text,
        format!(
            "main (discord) is connected. `/integration test main` checks it.\nAdd Polity's bot to the server with {INVITE}\nThe server joins this community once its owner or an admin types `/integration confirm {code}` there: keep the code for them alone."
        )
    );
    assert_eq!(env.refused("alice", "/integration list").await, "main — discord, enabled, no secret");
    // Other platforms still need their secret (which this store, with no key, cannot keep).
    let reply = env.reply("admin", "/integration add slack team").await;
    assert!(reply.text.starts_with("Polity cannot store secrets without a secret key"), "{}", reply.text);
}

// ----- names a policy uses that do not exist -----

#[tokio::test]
async fn a_policy_naming_an_action_or_role_that_does_not_exist_is_refused_or_warned_about() {
    let mut env = Env::with_kit("direct-democracy").await;
    // Polity's own actions are always here: a name it does not have is a mistake, with the
    // nearest.
    let typo = r#"name = "Typo"\nkind = "constitution"\nactions = ["polity.role_grnt"]\n[vote]\nquorum = 1"#;
    let reply = env.run("admin", &format!("/policy install Typo {typo}")).await;
    assert!(
        reply.starts_with("The policy is not valid:\n`polity.role_grnt` is not an action of polity (did you mean `polity.role_grant`?): it has "),
        "{reply}"
    );
    assert!(!env.run("admin", "/policy list").await.contains("Typo"));
    // Discord is not connected here: the name is checked against what Discord declares, and
    // only warned about.
    let discord = r#"name = "Renames"\nkind = "platform"\nactions = ["discord.renam_channel"]\n[vote]\nquorum = 1"#;
    let reply = env.run("admin", &format!("/policy install Renames {discord}")).await;
    assert!(reply.starts_with("\"Renames\" is installed: a platform policy.\nWarning: `discord.renam_channel` is not an action of discord (discord is not connected here) (did you mean `discord.rename_channel`?)"), "{reply}");

    // A role nobody has: installed, with a warning; a vote under it says why it ends at once.
    let reply = env.run("admin", &format!("/policy install Council {COUNCIL}")).await;
    assert_eq!(
        reply,
        "\"Council\" is installed: a platform policy.\nWarning: there is no role `council` here: until it exists and someone holds it, nobody may vote under this policy (`/role create council`, `/role grant council NAME`)"
    );
    let reply = env.run("alice", "/propose Hire a designer policy:Council").await;
    assert_eq!(
        reply,
        "Proposal #1 expired at once under \"Council\": nobody may vote on it: `voters = \"role:council\"` matches no member allowed to vote on polity.propose."
    );
}

#[tokio::test]
async fn a_policy_name_with_spaces_needs_quotes_only_where_something_follows_it_and_says_so() {
    let mut env = Env::with_kit("direct-democracy").await;
    let toml =
        r#"name = "Two moderators approve"\nkind = "platform"\nactions = ["polity.propose"]\n[vote]\nquorum = 1"#;
    assert_eq!(
        env.run("admin", &format!("/policy install Two moderators approve {toml}")).await,
        "A policy name with spaces goes in quotes when something follows it: `/policy install \"Two moderators approve\" name = ...`."
    );
    assert_eq!(
        env.run("admin", &format!("/policy install \"Two moderators approve\" {toml}")).await,
        "\"Two moderators approve\" is installed: a platform policy."
    );
    // Names that are not ASCII are compared as text, never cut inside a character.
    for typed in ["規則", "Two\u{a0}words"] {
        let toml = format!(r#"name = "{typed}集"\nkind = "platform"\n[vote]\nquorum = 1"#);
        let reply = env.run("admin", &format!("/policy install 規 {toml}")).await;
        assert!(reply.starts_with("The TOML names the policy"), "{reply}");
    }
    // Where the name comes last, quotes are optional.
    for line in ["/policy show Two moderators approve", "/policy show \"Two moderators approve\""] {
        assert!(env.run("admin", line).await.starts_with("Two moderators approve (platform policy):"), "{line}");
    }
    for line in ["/policy dry-run Two moderators approve since:1d", "/policy dry-run \"Two moderators approve\""] {
        let reply = env.run("admin", line).await;
        assert!(reply.contains("\"Two moderators approve\" would have"), "{line}: {reply}");
    }
}
