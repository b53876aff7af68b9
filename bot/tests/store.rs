//! The store's contract, run against SQLite always and against PostgreSQL when
//! `POLITY_TEST_DATABASE_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`): each
//! PostgreSQL test creates a database of its own through that URL and drops it at the end,
//! even when the test fails, so tests running in parallel never see each other's rows.
//!
//! Time never comes from the clock: every `now` is passed in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use polity::store::entities::{outbox, platform_connections};
use polity::store::{InboxEntry, Recorded, Secret, SecretKey, StepRecord, Store, StoreError};
use polity_governance::action::PROPOSE;
use polity_governance::community::LinkQuality;
use polity_governance::io::VoteOption;
use polity_governance::script::Sandbox;
use polity_governance::*;
use sea_orm::{ConnectionTrait, EntityTrait, Statement};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

// ===================================================================== the two backends

async fn sqlite_store() -> Store {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A PostgreSQL database made for one test, dropped (with its connections) when this is
/// dropped, which happens on panic too.
struct PgDatabase {
    admin_url: String,
    name: String,
}

const PG_PREFIX: &str = "polity_store_test_";

impl PgDatabase {
    async fn create() -> Option<(Self, Store)> {
        let Some(admin_url) = std::env::var("POLITY_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            polity_tests::db::skipped_postgres("a store contract test");
            return None;
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let salt = Utc::now().timestamp_subsec_nanos();
        let name = format!("{PG_PREFIX}{}_{}_{salt}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let admin = sea_orm::Database::connect(admin_url.as_str()).await.unwrap();
        sweep_stale_databases(&admin).await;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        admin.close().await.ok();
        let db = Self { admin_url: admin_url.clone(), name };
        let store = Store::connect(&with_database(&admin_url, &db.name)).await.unwrap();
        store.migrate().await.unwrap();
        Some((db, store))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // A runtime of its own on a thread of its own: this may run while a test's runtime
        // unwinds from a panic.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let admin = sea_orm::Database::connect(url.as_str()).await?;
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}

/// Drops the test databases of test processes that are gone (killed before they cleaned up).
async fn sweep_stale_databases(admin: &sea_orm::DatabaseConnection) {
    let sql = format!("SELECT datname FROM pg_database WHERE datname LIKE '{PG_PREFIX}%'");
    let Ok(rows) = admin.query_all_raw(Statement::from_string(admin.get_database_backend(), sql)).await else {
        return;
    };
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else { continue };
        let pid =
            name.strip_prefix(PG_PREFIX).and_then(|rest| rest.split('_').next()).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_none_or(|p| p == std::process::id() || std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive && cfg!(target_os = "linux") {
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.ok();
        }
    }
}

/// The URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let root = match base[host_start..].find('/') {
        Some(slash) => &base[..host_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{name}?{q}"),
        None => format!("{root}/{name}"),
    }
}

/// Each contract test, once per backend: `sqlite::NAME` and `postgres::NAME` (which passes
/// saying it was skipped when `POLITY_TEST_DATABASE_URL` is not set).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = super::sqlite_store().await;
                    super::$name(&store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((database, store)) = super::PgDatabase::create().await else {
                        return;
                    };
                    super::$name(&store).await;
                    drop(store);
                    drop(database);
                }
            )*
        }
    };
}

contract!(
    migrating_twice_is_fine,
    a_community_round_trips_with_its_members_accounts_and_roles,
    policy_versions_keep_one_active_per_name,
    proposals_round_trip_with_ballots_and_vote_messages,
    a_duplicate_input_writes_nothing,
    the_outbox_takes_effects_through_their_lifecycle,
    deadlines_follow_the_proposals,
    the_audit_log_reads_newest_first,
    communities_never_see_each_others_rows,
    secrets_are_encrypted_at_rest_and_read_back_with_the_key,
    a_missing_or_wrong_secret_key_is_named,
    settings_round_trip,
);

// ===================================================================== a small world

const PLATFORM: &str = "console";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

fn account(name: &str) -> AccountRef {
    AccountRef::new(PLATFORM, name)
}

fn vote_message(id: ProposalId) -> MessageRef {
    MessageRef::new(PLATFORM, "#general", format!("vote-{}", id.0))
}

fn proposal_action(who: &str, text: &str) -> Action {
    Action::new(ActionType::new(PROPOSE).unwrap(), account(who), format!("cmd-{who}-{text}"))
        .at(Place::new(PLATFORM, "#general"))
        .requested()
        .with("text", text)
}

/// Stays open until its deadline, whatever the ballots.
const MAJORITY: &str = r#"
name = "Majority"
kind = "platform"
[vote]
quorum = 2
pass = "majority"
closes = "24h"
early = false
"#;

const RANKED: &str = r#"
name = "Lunch"
kind = "platform"
[vote]
type = "ranked"
options = ["Pizza", "Tacos", "Soup"]
quorum = 1
closes = "48h"
early = false
"#;

/// One community driven through the engine, every step recorded as the runtime would.
struct World<'s> {
    store: &'s Store,
    engine: Engine,
    now: DateTime<Utc>,
    seq: u64,
}

impl<'s> World<'s> {
    /// `admin` (an admin) and the given members, in community `id`.
    async fn new(store: &'s Store, id: i64, members: &[&str]) -> Self {
        let mut c = Community::new(CommunityId(id), format!("community-{id}"));
        c.add_member("admin", account("admin"), true).unwrap();
        for m in members {
            c.add_member(m, account(m), false).unwrap();
        }
        store.create_community(&c).await.unwrap();
        Self { store, engine: Engine::new(c, Arc::new(Sandbox::default())), now: t0(), seq: 0 }
    }

    fn id(&self) -> CommunityId {
        self.engine.community.id
    }

    fn member(&self, name: &str) -> MemberId {
        self.engine.community.member_by_name(name).unwrap().id
    }

    async fn install(&mut self, toml: &str) -> PolicyId {
        let p = self.engine.install_policy(toml).unwrap();
        let mut rec = StepRecord::new(self.id(), self.now);
        rec.new_policies = vec![&*p];
        assert!(matches!(self.store.record_step(rec).await.unwrap(), Recorded::Done { .. }));
        p.id
    }

    /// One input through the engine, recorded under the next dedup key. A vote message
    /// posted by the step is reported back at once, as a platform would.
    async fn push(&mut self, input: Inbound) -> Step {
        let step = self.record(input).await;
        for e in &step.effects {
            if let Effect::PostVote { proposal, .. } = e {
                let posted =
                    Inbound::VoteMessagePosted { proposal: *proposal, message: vote_message(*proposal), link: None };
                self.record(posted).await;
            }
        }
        step
    }

    async fn record(&mut self, input: Inbound) -> Step {
        self.seq += 1;
        let step = self.engine.step(input.clone(), &Ctx::at(self.now)).unwrap();
        let proposals: Vec<&Proposal> = step.changed.iter().filter_map(|id| self.engine.proposal(*id)).collect();
        let rec = StepRecord {
            inbox: Some(InboxEntry {
                source: "test".into(),
                dedup_key: format!("{}-{}", self.id().0, self.seq),
                payload: serde_json::to_value(&input).unwrap(),
                checked: true,
            }),
            proposals,
            effects: &step.effects,
            audit: &step.audit,
            ..StepRecord::new(self.id(), self.now)
        };
        assert!(matches!(self.store.record_step(rec).await.unwrap(), Recorded::Done { .. }));
        step
    }

    async fn propose(&mut self, who: &str, text: &str) -> ProposalId {
        let step = self.push(Inbound::Action { action: proposal_action(who, text) }).await;
        *step.changed.iter().next().unwrap()
    }

    async fn react(&mut self, who: &str, id: ProposalId, emoji: &str, added: bool) {
        let input = Inbound::Reaction { message: vote_message(id), voter: account(who), emoji: emoji.into(), added };
        self.push(input).await;
    }

    async fn vote(&mut self, who: &str, id: ProposalId, choice: &str) {
        self.push(Inbound::Vote { proposal: id, voter: account(who), choice: choice.into() }).await;
    }

    /// The store holds exactly the engine's proposals.
    async fn assert_stored(&self) {
        let stored = self.store.load_proposals(self.id(), false).await.unwrap();
        let engine: Vec<Proposal> = self.engine.proposals().cloned().collect();
        assert_eq!(stored, engine);
        let open = self.store.load_proposals(self.id(), true).await.unwrap();
        let engine_open: Vec<Proposal> = engine.iter().filter(|p| p.state.is_open()).cloned().collect();
        assert_eq!(open, engine_open);
        for p in &engine {
            assert_eq!(self.store.proposal(self.id(), p.id).await.unwrap().as_ref(), Some(p));
        }
    }
}

/// A bare community for tests that do not need the engine.
async fn bare_community(store: &Store, id: i64) -> CommunityId {
    let c = Community::new(CommunityId(id), format!("bare-{id}"));
    store.create_community(&c).await.unwrap();
    c.id
}

fn post(text: &str) -> Effect {
    Effect::Post { place: Place::new(PLATFORM, "#general"), text: text.into() }
}

// ===================================================================== the contract

async fn migrating_twice_is_fine(s: &Store) {
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    assert!(s.communities().await.unwrap().is_empty());
    assert_eq!(s.next_community_id().await.unwrap(), CommunityId(1));
    assert!(["sqlite", "postgres"].contains(&s.backend_name()));
}

async fn a_community_round_trips_with_its_members_accounts_and_roles(s: &Store) {
    let id = s.next_community_id().await.unwrap();
    let mut c = Community::new(id, "coop");
    let admin = c.add_member("admin", account("admin"), true).unwrap();
    let alice = c.add_member("alice", account("alice"), false).unwrap();
    let bob = c.add_member("bob", account("bob"), false).unwrap();
    let carol = c.add_member("carol", account("carol"), false).unwrap();
    c.create_role("mod", "moderators").unwrap();
    c.create_role("treasurer", "holds the money").unwrap();
    c.grant_permission("mod", Permission::Execute, ActionPattern::new("discord.*").unwrap()).unwrap();
    c.grant_permission("treasurer", Permission::Vote, ActionPattern::new("opencollective.pay").unwrap()).unwrap();
    c.grant_permission("treasurer", Permission::Propose, ActionPattern::any()).unwrap();
    c.grant_role(alice, "mod").unwrap();
    c.grant_role(alice, "treasurer").unwrap();
    c.grant_role(bob, "mod").unwrap();
    c.link_account(alice, AccountRef::new("discord", "111"), LinkQuality::CodeConfirmed).unwrap();
    c.link_account(alice, AccountRef::new("slack", "U1"), LinkQuality::AdminAsserted).unwrap();

    s.create_community(&c).await.unwrap();
    assert_eq!(s.load_community(id).await.unwrap(), c);
    assert_eq!(s.community_id("coop").await.unwrap(), Some(id));
    assert_eq!(s.community_id("nope").await.unwrap(), None);
    assert_eq!(s.next_community_id().await.unwrap(), CommunityId(id.0 + 1));
    assert_eq!(s.communities().await.unwrap(), vec![(id, "coop".to_string())]);
    assert!(matches!(s.create_community(&c).await, Err(StoreError::CommunityExists(_))));
    assert!(matches!(s.load_community(CommunityId(99)).await, Err(StoreError::UnknownCommunity(CommunityId(99)))));

    // Everything changes at once: removals, moves, renames, new grants.
    c.members.remove(&carol);
    let a = c.members.get_mut(&alice).unwrap();
    a.accounts.retain(|l| l.account.platform.as_str() != "discord");
    a.accounts.retain(|l| l.account.platform.as_str() != "slack");
    c.link_account(bob, AccountRef::new("slack", "U1"), LinkQuality::AdminAsserted).unwrap();
    c.link_account(alice, AccountRef::new("discord", "222"), LinkQuality::CodeConfirmed).unwrap();
    let b = c.members.get_mut(&bob).unwrap();
    b.name = "robert".into();
    b.admin = true;
    b.accounts[0].quality = LinkQuality::AdminAsserted;
    c.members.get_mut(&admin).unwrap().admin = false;
    c.revoke_role(alice, "treasurer").unwrap();
    c.roles.remove("treasurer");
    c.revoke_permission("mod", Permission::Execute, &ActionPattern::new("discord.*").unwrap()).unwrap();
    c.grant_permission("mod", Permission::Execute, ActionPattern::new("discord.rename_channel").unwrap()).unwrap();
    c.create_role("greeter", "says hello").unwrap();
    c.roles.get_mut("mod").unwrap().description = "keep the peace".into();
    let dave = c.add_member("dave", account("dave"), false).unwrap();
    c.grant_role(dave, "greeter").unwrap();

    let rec = StepRecord { community_state: Some(&c), ..StepRecord::new(id, t0()) };
    s.record_step(rec).await.unwrap();
    assert_eq!(s.load_community(id).await.unwrap(), c);

    // Writing the same state again changes nothing.
    let rec = StepRecord { community_state: Some(&c), ..StepRecord::new(id, t0() + TimeDelta::hours(1)) };
    s.record_step(rec).await.unwrap();
    assert_eq!(s.load_community(id).await.unwrap(), c);

    // And the engine's own changes land the same way.
    let mut w = World::new(s, id.0 + 1, &["erin"]).await;
    let erin = w.member("erin");
    w.engine.community.link_account(erin, AccountRef::new("discord", "333"), LinkQuality::CodeConfirmed).unwrap();
    let rec = StepRecord { community_state: Some(&w.engine.community), ..StepRecord::new(w.id(), w.now) };
    s.record_step(rec).await.unwrap();
    assert_eq!(s.load_community(w.id()).await.unwrap(), w.engine.community);
}

async fn policy_versions_keep_one_active_per_name(s: &Store) {
    let mut w = World::new(s, 1, &["alice"]).await;
    let v1 = w.install(MAJORITY).await;
    let lunch = w.install(RANKED).await;
    w.now += TimeDelta::hours(1);
    let v2 = w.install(&MAJORITY.replace("quorum = 2", "quorum = 3")).await;
    let removed = w.engine.remove_policy("Lunch").unwrap();
    assert_eq!(removed, lunch);
    let rec = StepRecord { removed_policies: vec![removed], ..StepRecord::new(w.id(), w.now) };
    s.record_step(rec).await.unwrap();

    let stored = s.load_policies(w.id()).await.unwrap();
    let summary: Vec<(PolicyId, &str, i32, bool)> =
        stored.iter().map(|p| (p.id, p.name.as_str(), p.version, p.active)).collect();
    assert_eq!(summary, vec![(v1, "Majority", 1, false), (lunch, "Lunch", 1, false), (v2, "Majority", 2, true)]);
    assert_eq!(stored[0].installed_at, t0());
    assert_eq!(stored[2].installed_at, t0() + TimeDelta::hours(1));
    assert!(stored[2].source.contains("quorum = 3"));

    // What the runtime does at start: the restored engine has the same policies.
    let mut restored = Engine::new(s.load_community(w.id()).await.unwrap(), Arc::new(Sandbox::default()));
    for p in &stored {
        restored.restore_policy(p.id, &p.source, p.active).unwrap();
    }
    let names = |e: &Engine| e.policies().iter().map(|p| (p.id, p.name().to_string())).collect::<Vec<_>>();
    assert_eq!(names(&restored), names(&w.engine));
    assert_eq!(restored.history("Majority").len(), 2);
    assert!(s.load_policies(CommunityId(42)).await.unwrap().is_empty());
}

async fn proposals_round_trip_with_ballots_and_vote_messages(s: &Store) {
    let mut w = World::new(s, 1, &["alice", "bob", "carol", "dave"]).await;
    w.install(MAJORITY).await;
    assert_eq!(s.last_proposal_id(w.id()).await.unwrap(), None);

    let p1 = w.propose("alice", "Buy a new server").await;
    w.assert_stored().await;
    assert_eq!(s.vote_messages(w.id(), p1).await.unwrap(), vec![vote_message(p1)]);

    w.react("bob", p1, "👍", true).await;
    w.react("carol", p1, "👎", true).await;
    w.now += TimeDelta::minutes(5);
    w.react("carol", p1, "👍", true).await; // replaces carol's ballot
    w.vote("dave", p1, "abstain").await;
    w.react("bob", p1, "👍", false).await; // withdraws bob's ballot
    w.assert_stored().await;
    let ballots = &s.proposal(w.id(), p1).await.unwrap().unwrap().vote.unwrap().ballots;
    assert_eq!(ballots.keys().copied().collect::<Vec<_>>(), vec![w.member("carol"), w.member("dave")]);

    // A second vote message (another platform reported one) is appended in order.
    let extra = MessageRef::new("discord", "#general", "9001");
    w.record(Inbound::VoteMessagePosted { proposal: p1, message: extra.clone(), link: None }).await;
    assert_eq!(s.vote_messages(w.id(), p1).await.unwrap(), vec![vote_message(p1), extra]);

    // A ranked vote: ballots that are lists of options.
    w.install(RANKED).await;
    w.now += TimeDelta::hours(1);
    let action = proposal_action("bob", "Lunch on Friday").with("policy", "Lunch");
    let step = w.push(Inbound::Action { action }).await;
    let p2 = *step.changed.iter().next().unwrap();
    w.react("alice", p2, "2️⃣", true).await;
    w.react("alice", p2, "1️⃣", true).await;
    w.vote("carol", p2, "3>1").await;
    w.assert_stored().await;
    assert_eq!(s.last_proposal_id(w.id()).await.unwrap(), Some(p2));

    // The first closes at its deadline; the second stays open.
    w.now = t0() + TimeDelta::hours(24);
    w.push(Inbound::Tick).await;
    assert!(!w.engine.proposal(p1).unwrap().state.is_open());
    assert!(w.engine.proposal(p2).unwrap().state.is_open());
    w.assert_stored().await;
    let open = s.load_proposals(w.id(), true).await.unwrap();
    assert_eq!(open.iter().map(|p| p.id).collect::<Vec<_>>(), vec![p2]);
    assert_eq!(s.proposal(w.id(), ProposalId(99)).await.unwrap(), None);

    // A proposal built by hand, with every optional part filled in.
    let mut p3 = w.engine.proposal(p1).unwrap().clone();
    p3.id = ProposalId(3);
    p3.proposer = None;
    p3.winner = Some("yes".into());
    p3.data = json!({"amount": 1250, "tags": ["a", "b"], "nested": {"x": null}});
    p3.process = Some(polity_governance::proposal::ProcessState { status: "open".into(), outcome: json!({"yes": 3}) });
    p3.reverted = true;
    p3.vote.as_mut().unwrap().messages.clear();
    let rec = StepRecord { proposals: vec![&p3], ..StepRecord::new(w.id(), w.now) };
    s.record_step(rec).await.unwrap();
    assert_eq!(s.proposal(w.id(), p3.id).await.unwrap(), Some(p3));
}

async fn a_duplicate_input_writes_nothing(s: &Store) {
    let mut w = World::new(s, 1, &["alice", "bob"]).await;
    w.install(MAJORITY).await;
    let input = Inbound::Action { action: proposal_action("alice", "Paint the shed") };
    let step = w.engine.step(input.clone(), &Ctx::at(w.now)).unwrap();
    let proposals: Vec<&Proposal> = step.changed.iter().filter_map(|id| w.engine.proposal(*id)).collect();
    let entry = InboxEntry {
        source: "discord".into(),
        dedup_key: "interaction-1".into(),
        payload: json!({"n": 1}),
        checked: false,
    };
    let rec = StepRecord {
        inbox: Some(entry.clone()),
        proposals: proposals.clone(),
        effects: &step.effects,
        audit: &step.audit,
        ..StepRecord::new(w.id(), w.now)
    };
    assert!(!s.seen("discord", "interaction-1").await.unwrap());
    let Recorded::Done { outbox } = s.record_step(rec.clone()).await.unwrap() else { panic!("first delivery") };
    assert_eq!(outbox.len(), step.effects.len());
    assert!(outbox.windows(2).all(|w| w[0] < w[1]));
    assert!(s.seen("discord", "interaction-1").await.unwrap());
    assert!(!s.seen("discord", "interaction-2").await.unwrap());
    assert!(!s.seen("slack", "interaction-1").await.unwrap());

    let before = (s.audit(w.id(), 100).await.unwrap(), s.pending_effects().await.unwrap());
    // The second delivery, even with different content, writes nothing at all.
    let extra = [post("should never be posted")];
    let audit = [Audit::Decided { proposal: ProposalId(1), outcome: "passed".into() }];
    let dup = StepRecord { effects: &extra, audit: &audit, ..rec.clone() };
    assert_eq!(s.record_step(dup).await.unwrap(), Recorded::Duplicate);
    assert_eq!((s.audit(w.id(), 100).await.unwrap(), s.pending_effects().await.unwrap()), before);
    assert_eq!(s.load_proposals(w.id(), false).await.unwrap().len(), 1);

    // Two deliveries racing: exactly one is recorded.
    let racing = InboxEntry { dedup_key: "interaction-3".into(), ..entry.clone() };
    let a = StepRecord { inbox: Some(racing.clone()), proposals: Vec::new(), ..rec.clone() };
    let b = StepRecord { inbox: Some(racing), proposals: Vec::new(), ..rec.clone() };
    let (ra, rb) = tokio::join!(s.record_step(a), s.record_step(b));
    let results = [ra.unwrap(), rb.unwrap()];
    assert_eq!(results.iter().filter(|r| **r == Recorded::Duplicate).count(), 1, "{results:?}");

    // An input its caller checked is written at the commit, with the transaction's others;
    // if another writer recorded it after the check, the commit fails and writes nothing.
    let before = (s.audit(w.id(), 100).await.unwrap(), s.pending_effects().await.unwrap());
    let checked = InboxEntry { checked: true, ..entry.clone() };
    let late =
        StepRecord { inbox: Some(checked), effects: &extra, audit: &audit, proposals: Vec::new(), ..rec.clone() };
    let batch = s.begin_batch().await.unwrap();
    assert!(matches!(s.record_in(&batch, &late).await.unwrap(), Recorded::Done { .. }));
    // Held in the transaction: the same input again is a duplicate there.
    assert!(s.seen_in(&batch, "discord", "interaction-1").await.unwrap());
    assert_eq!(s.record_in(&batch, &late).await.unwrap(), Recorded::Duplicate);
    assert!(matches!(batch.commit().await, Err(StoreError::RecordedElsewhere(1))));
    assert_eq!((s.audit(w.id(), 100).await.unwrap(), s.pending_effects().await.unwrap()), before);

    // Steps without an inbox entry (the runtime's own) are always written.
    let rec = StepRecord { audit: &audit, ..StepRecord::new(w.id(), w.now) };
    assert_eq!(s.record_step(rec.clone()).await.unwrap(), Recorded::Done { outbox: vec![] });
    assert_eq!(s.record_step(rec).await.unwrap(), Recorded::Done { outbox: vec![] });
}

async fn the_outbox_takes_effects_through_their_lifecycle(s: &Store) {
    let c = bare_community(s, 1).await;
    let now = t0();
    let effects = [
        post("one"),
        post("two"),
        Effect::Notify { account: account("alice"), text: "three".into(), at: None },
        Effect::EditVote { proposal: ProposalId(7), text: "four".into(), closed: false },
        Effect::PostVote {
            proposal: ProposalId(8),
            place: Place::new(PLATFORM, "#general"),
            text: "five".into(),
            options: vec![VoteOption { emoji: "👍".into(), label: "yes".into(), press: None }],
        },
    ];
    let rec = StepRecord { effects: &effects, ..StepRecord::new(c, now) };
    let Recorded::Done { outbox: ids } = s.record_step(rec).await.unwrap() else { panic!() };
    let [one, two, three, four, five] = ids[..] else { panic!("{ids:?}") };

    assert!(s.due_effects(now - TimeDelta::seconds(1), 10).await.unwrap().is_empty());
    let due = s.due_effects(now, 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert_eq!(due.iter().map(|r| r.effect.clone()).collect::<Vec<_>>(), effects.to_vec());
    assert!(due.iter().all(|r| r.attempts == 0 && r.community == c));
    assert_eq!(
        due.iter().map(|r| r.proposal).collect::<Vec<_>>(),
        [None, None, None, Some(ProposalId(7)), Some(ProposalId(8))]
    );
    assert_eq!(s.due_effects(now, 2).await.unwrap().len(), 2);
    assert_eq!(s.next_effect_at().await.unwrap(), Some(now));
    assert_eq!(s.pending_effects().await.unwrap(), 5);

    // Started, then the process died: the row comes back, its attempt counted.
    s.start_effect(one, now).await.unwrap();
    let again = s.due_effects(now, 10).await.unwrap();
    assert_eq!((again[0].id, again[0].attempts), (one, 1));

    // Rate limited: due again a minute later, not before.
    let later = now + TimeDelta::minutes(1);
    s.retry_effect(one, later, "429: slow down", now).await.unwrap();
    assert!(!s.due_effects(now, 10).await.unwrap().iter().any(|r| r.id == one));
    let row = s.due_effects(later, 10).await.unwrap().into_iter().find(|r| r.id == one).unwrap();
    assert_eq!(row.attempts, 1);
    let stored = outbox::Entity::find_by_id(one).one(s.db()).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.last_error.as_deref()), ("pending", Some("429: slow down")));

    s.start_effect(two, now).await.unwrap();
    s.finish_effect(two, &json!({"message": "m-2"}), now).await.unwrap();
    s.start_effect(three, now).await.unwrap();
    s.fail_effect(three, "no such user", now).await.unwrap();
    let due: Vec<i64> = s.due_effects(later, 10).await.unwrap().iter().map(|r| r.id).collect();
    assert_eq!(due, vec![one, four, five]);
    assert_eq!(s.pending_effects().await.unwrap(), 3);
    let done = outbox::Entity::find_by_id(two).one(s.db()).await.unwrap().unwrap();
    assert_eq!((done.status.as_str(), done.attempts), ("done", 1));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(done.result.as_deref().unwrap()).unwrap(),
        json!({"message": "m-2"})
    );
    let failed = outbox::Entity::find_by_id(three).one(s.db()).await.unwrap().unwrap();
    assert_eq!((failed.status.as_str(), failed.last_error.as_deref()), ("failed", Some("no such user")));

    // What is left: four and five now, one a minute later.
    assert_eq!(s.next_effect_at().await.unwrap(), Some(now));
    for id in [four, five] {
        s.start_effect(id, now).await.unwrap();
        s.finish_effect(id, &json!(null), now).await.unwrap();
    }
    assert_eq!(s.next_effect_at().await.unwrap(), Some(later));
    s.start_effect(one, later).await.unwrap();
    s.finish_effect(one, &json!({"ok": true}), later).await.unwrap();
    assert_eq!(s.next_effect_at().await.unwrap(), None);
    assert_eq!(s.pending_effects().await.unwrap(), 0);
    assert!(s.due_effects(later + TimeDelta::days(1), 10).await.unwrap().is_empty());

    // Times keep their fractions of a second, and compare by them.
    let fine = [post("six")];
    let Recorded::Done { outbox: six } =
        s.record_step(StepRecord { effects: &fine, ..StepRecord::new(c, later) }).await.unwrap()
    else {
        panic!()
    };
    let at = later + TimeDelta::milliseconds(1500);
    s.retry_effect(six[0], at, "busy", later).await.unwrap();
    assert!(s.due_effects(at - TimeDelta::microseconds(1), 10).await.unwrap().is_empty());
    assert_eq!(s.due_effects(at, 10).await.unwrap().len(), 1);
    assert_eq!(s.due_effects(later + TimeDelta::seconds(2), 10).await.unwrap().len(), 1);
    assert_eq!(s.next_effect_at().await.unwrap(), Some(at));
    s.fail_effect(six[0], "gave up", at).await.unwrap();

    // Finished rows cannot be started again; unknown rows are named.
    assert!(matches!(s.start_effect(two, later).await, Err(StoreError::UnknownEffect(id)) if id == two));
    assert!(matches!(s.finish_effect(9999, &json!(null), later).await, Err(StoreError::UnknownEffect(9999))));
}

async fn deadlines_follow_the_proposals(s: &Store) {
    assert_eq!(s.next_deadline().await.unwrap(), None);
    let mut one = World::new(s, 1, &["alice", "bob"]).await;
    one.install(MAJORITY).await;
    let mut two = World::new(s, 2, &["carol"]).await;
    two.install(MAJORITY).await;

    let p = one.propose("alice", "First").await;
    assert_eq!(s.next_deadline().await.unwrap(), Some((one.id(), t0() + TimeDelta::hours(24))));
    two.now += TimeDelta::hours(2);
    two.propose("carol", "Second").await;
    assert_eq!(s.next_deadline().await.unwrap(), Some((one.id(), t0() + TimeDelta::hours(24))));

    // Ballots do not move the deadline; closing the proposal removes it.
    one.react("bob", p, "👍", true).await;
    assert_eq!(s.next_deadline().await.unwrap(), Some((one.id(), t0() + TimeDelta::hours(24))));
    one.push(Inbound::Cancel { proposal: p, by: account("alice") }).await;
    assert_eq!(s.next_deadline().await.unwrap(), Some((two.id(), t0() + TimeDelta::hours(26))));

    two.now = t0() + TimeDelta::hours(26);
    two.push(Inbound::Tick).await;
    assert!(two.engine.proposals().all(|p| !p.state.is_open()));
    assert_eq!(s.next_deadline().await.unwrap(), None);
}

async fn the_audit_log_reads_newest_first(s: &Store) {
    let c = bare_community(s, 1).await;
    let other = bare_community(s, 2).await;
    let line = |n: i64| Audit::Decided { proposal: ProposalId(n), outcome: "passed".into() };
    let first = [line(1), line(2)];
    let second = [line(3)];
    s.record_step(StepRecord { audit: &first, ..StepRecord::new(c, t0()) }).await.unwrap();
    s.record_step(StepRecord { audit: &second, ..StepRecord::new(c, t0() + TimeDelta::minutes(1)) }).await.unwrap();
    s.record_step(StepRecord { audit: &[line(9)], ..StepRecord::new(other, t0()) }).await.unwrap();

    let rows = s.audit(c, 10).await.unwrap();
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["proposal #3 passed", "proposal #2 passed", "proposal #1 passed"]);
    assert!(rows.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(rows[0].event, serde_json::to_value(line(3)).unwrap());
    assert_eq!(serde_json::from_value::<Audit>(rows[2].event.clone()).unwrap(), line(1));
    assert_eq!(rows[0].at, t0() + TimeDelta::minutes(1));
    assert_eq!(rows[2].at, t0());
    assert_eq!(s.audit(c, 2).await.unwrap().len(), 2);
    assert_eq!(s.audit(other, 10).await.unwrap().len(), 1);
}

async fn communities_never_see_each_others_rows(s: &Store) {
    // Same member ids, same proposal ids, same console vote message ids.
    let mut one = World::new(s, 1, &["alice", "bob"]).await;
    let mut two = World::new(s, 2, &["alice", "bob"]).await;
    for w in [&mut one, &mut two] {
        w.install(MAJORITY).await;
        let p = w.propose("alice", "Same words").await;
        w.react("bob", p, "👍", true).await;
    }
    two.react("alice", ProposalId(1), "👎", true).await;
    one.assert_stored().await;
    two.assert_stored().await;
    assert_eq!(s.vote_messages(one.id(), ProposalId(1)).await.unwrap(), vec![vote_message(ProposalId(1))]);
    assert_eq!(s.vote_messages(two.id(), ProposalId(1)).await.unwrap(), vec![vote_message(ProposalId(1))]);
    assert_eq!(s.load_community(one.id()).await.unwrap(), one.engine.community);
    assert_eq!(s.load_community(two.id()).await.unwrap(), two.engine.community);
    assert_eq!(s.load_policies(two.id()).await.unwrap().len(), 1);
    assert_eq!(s.communities().await.unwrap().len(), 2);
}

async fn secrets_are_encrypted_at_rest_and_read_back_with_the_key(s: &Store) {
    let c = bare_community(s, 1).await;
    let key = SecretKey::generate();
    let keyed = s.clone().with_secret_key(Some(&key));
    // Nothing stored yet: no key is needed, and any key will do.
    s.check_secret_key().await.unwrap();
    keyed.check_secret_key().await.unwrap();

    let token = "xoxb-very-secret-token";
    keyed.put_connection(c, "slack-eng", "slack", &json!({"team": "T1"}), Some(token)).await.unwrap();
    keyed.put_connection(c, "console", "console", &json!({}), None).await.unwrap();
    let row = platform_connections::Entity::find().all(s.db()).await.unwrap();
    let slack = row.iter().find(|r| r.name == "slack-eng").unwrap();
    let stored = slack.secret_ciphertext.clone().unwrap();
    assert!(!stored.contains(token) && !slack.config.contains(token), "{stored}");
    assert_eq!(keyed.connection_secret(c, "slack-eng").await.unwrap().unwrap().expose(), token);
    assert_eq!(keyed.connection_secret(c, "console").await.unwrap(), None);
    assert_eq!(keyed.connection_secret(c, "nope").await.unwrap(), None);
    let conns = keyed.connections(c).await.unwrap();
    let summary: Vec<(&str, &str, bool)> =
        conns.iter().map(|c| (c.name.as_str(), c.platform.as_str(), c.has_secret)).collect();
    assert_eq!(summary, [("console", "console", false), ("slack-eng", "slack", true)]);
    assert_eq!(conns[1].config, json!({"team": "T1"}));
    keyed.check_secret_key().await.unwrap();

    // Replacing a connection replaces its secret, under a fresh nonce.
    keyed.put_connection(c, "slack-eng", "slack", &json!({"team": "T2"}), Some("rotated")).await.unwrap();
    assert_eq!(keyed.connection_secret(c, "slack-eng").await.unwrap().unwrap().expose(), "rotated");
    let again = platform_connections::Entity::find().all(s.db()).await.unwrap();
    assert_ne!(again.iter().find(|r| r.name == "slack-eng").unwrap().secret_ciphertext.as_ref(), Some(&stored));

    // A ciphertext moved to another row does not open there.
    let sql = format!("UPDATE platform_connections SET secret_ciphertext = '{stored}' WHERE name = 'console'");
    s.db().execute_unprepared(&sql).await.unwrap();
    assert!(matches!(keyed.connection_secret(c, "console").await, Err(StoreError::SecretKeyWrong)));

    // A webhook secret is sealed apart from the token, and a later write of the connection's
    // settings keeps it (it was shown once; the platform holds it).
    keyed
        .put_connection_with_hook(c, "oc", "opencollective", &json!({"collective": "a"}), Some("tok"), "hook-secret")
        .await
        .unwrap();
    let oc = platform_connections::Entity::find().all(s.db()).await.unwrap();
    let oc = oc.iter().find(|r| r.name == "oc").unwrap();
    assert!(!oc.hook_secret_ciphertext.as_ref().unwrap().contains("hook-secret"));
    assert_ne!(oc.hook_secret_ciphertext, oc.secret_ciphertext);
    keyed.put_connection(c, "oc", "opencollective", &json!({"collective": "b"}), Some("tok2")).await.unwrap();
    assert_eq!(keyed.connection_hook_secret(c, "oc").await.unwrap().unwrap().expose(), "hook-secret");
    assert_eq!(keyed.connection_secret(c, "oc").await.unwrap().unwrap().expose(), "tok2");
    assert_eq!(keyed.connection_hook_secret(c, "slack-eng").await.unwrap(), None);
    // The token's ciphertext does not open as the webhook secret.
    let sql = "UPDATE platform_connections SET hook_secret_ciphertext = secret_ciphertext WHERE name = 'oc'";
    s.db().execute_unprepared(sql).await.unwrap();
    assert!(matches!(keyed.connection_hook_secret(c, "oc").await, Err(StoreError::SecretKeyWrong)));

    // In memory a secret never shows itself.
    let secret = keyed.connection_secret(c, "slack-eng").await.unwrap().unwrap();
    assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    assert!(!format!("{keyed:?}").contains(&key));
}

async fn a_missing_or_wrong_secret_key_is_named(s: &Store) {
    let c = bare_community(s, 1).await;
    let right = s.clone().with_secret_key(Some(&SecretKey::generate()));
    let wrong = s.clone().with_secret_key(Some(&SecretKey::generate()));
    let bad = s.clone().with_secret_key(Some("not a key"));
    assert!(matches!(bad.check_secret_key().await, Err(StoreError::SecretKeyInvalid(_))));
    right.put_connection(c, "discord", "discord", &json!({}), Some("bot-token")).await.unwrap();

    let missing = s.check_secret_key().await.unwrap_err();
    assert!(matches!(missing, StoreError::SecretKeyMissing));
    assert!(missing.to_string().contains("POLITY_SECRET_KEY"), "{missing}");
    assert!(matches!(s.connection_secret(c, "discord").await, Err(StoreError::SecretKeyMissing)));
    assert!(matches!(
        s.put_connection(c, "gh", "github", &json!({}), Some("x")).await,
        Err(StoreError::SecretKeyMissing)
    ));
    // A connection without a secret needs no key.
    s.put_connection(c, "console", "console", &json!({}), None).await.unwrap();

    let wrong_err = wrong.check_secret_key().await.unwrap_err();
    assert!(matches!(wrong_err, StoreError::SecretKeyWrong));
    assert!(wrong_err.to_string().contains("POLITY_SECRET_KEY"), "{wrong_err}");
    assert!(matches!(wrong.connection_secret(c, "discord").await, Err(StoreError::SecretKeyWrong)));
    // A second key never gets to write secrets the first cannot read.
    assert!(matches!(
        wrong.put_connection(c, "gh", "github", &json!({}), Some("x")).await,
        Err(StoreError::SecretKeyWrong)
    ));
    assert!(matches!(bad.connection_secret(c, "discord").await, Err(StoreError::SecretKeyInvalid(_))));

    right.check_secret_key().await.unwrap();
    assert_eq!(right.connection_secret(c, "discord").await.unwrap().unwrap().expose(), "bot-token");
}

async fn settings_round_trip(s: &Store) {
    assert_eq!(s.setting("console.last_message").await.unwrap(), None);
    s.put_setting("console.last_message", "12").await.unwrap();
    s.put_setting("console.last_message", "13").await.unwrap();
    assert_eq!(s.setting("console.last_message").await.unwrap().as_deref(), Some("13"));
    assert!(matches!(s.put_setting("secret_key_check", "x").await, Err(StoreError::ReservedSetting(_))));
}

// ===================================================================== backend specifics

#[tokio::test]
async fn a_sqlite_file_runs_in_wal_mode_with_foreign_keys() {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "polity-store-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("polity.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        let s = Store::connect(&url).await.unwrap();
        s.migrate().await.unwrap();
        assert_eq!(s.backend_name(), "sqlite");
        let pragma = |sql: &str| Statement::from_string(sea_orm::DbBackend::Sqlite, sql.to_string());
        let mode = s.db().query_one_raw(pragma("PRAGMA journal_mode")).await.unwrap().unwrap();
        assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
        let fk = s.db().query_one_raw(pragma("PRAGMA foreign_keys")).await.unwrap().unwrap();
        assert_eq!(fk.try_get_by_index::<i64>(0).unwrap(), 1);
        let c = bare_community(&s, 1).await;
        s.db().close_by_ref().await.ok();
        // Reopened, the data is there.
        let s = Store::connect(&url).await.unwrap();
        s.migrate().await.unwrap();
        assert_eq!(s.communities().await.unwrap(), vec![(c, "bare-1".to_string())]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn unknown_database_urls_are_refused_without_echoing_them() {
    let err = Store::connect("mysql://user:hunter2@host/db").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)));
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn secrets_print_redacted() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(s.to_string(), "[redacted]");
    assert_eq!(s.expose(), "hunter2");
}

#[test]
fn test_database_urls_are_rewritten() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u:p@h/test?sslmode=disable", "x"), "postgres://u:p@h/x?sslmode=disable");
    assert_eq!(with_database("postgres://h:5432", "x"), "postgres://h:5432/x");
}
