//! The store: Polity's state in SQLite (the embedded default) or PostgreSQL, one schema
//! (`polity-migrations`) for both, chosen by URL.
//!
//! Everything one engine step changed is written by [`Store::record_step`] in one
//! transaction: the inbox entry that makes the input idempotent, the community, policies
//! and proposals it changed, the effects it implies (the outbox) and its audit lines. The
//! dispatcher then takes due effects from the outbox ([`Store::due_effects`]), marks each
//! in flight before the platform call and done, retried or failed after it.
//!
//! Ids the engine allocates (communities, members, policies, proposals) are stored as they
//! are, scoped by community: `(community_id, id)` keys. Timestamps are kept to the
//! microsecond. Secrets (platform tokens) are encrypted with `POLITY_SECRET_KEY`
//! ([`secrets`]) and never logged.

mod codec;
pub use codec::text_safe;
mod community;
mod console_ledger;
pub mod entities;
mod installs;
pub mod links;
pub mod polls;
pub mod secrets;
mod shadow;
#[cfg(test)]
mod shadow_tests;
mod step;

pub use secrets::{Secret, SecretKey};

use chrono::{DateTime, Utc};
use codec::{from_json, to_json, ts};
use entities::{audit_log, communities, inbox, outbox, platform_connections, policies, proposals, scheduled_jobs};
use entities::{ballots, settings, vote_messages};
use polity_governance::policy::CompiledPolicy;
use polity_governance::{Audit, Community, CommunityId, Effect, MessageRef, PolicyId, Proposal, ProposalId};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// What went wrong in the store; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    #[error("the database holds a row Polity cannot read ({0}): was it written by a newer Polity, or edited by hand?")]
    Corrupt(String),
    #[error(
        "secrets need a secret key and none is set: set POLITY_SECRET_KEY to the key the stored secrets were written with (on a new installation, a fresh one from `openssl rand -base64 32`)"
    )]
    SecretKeyMissing,
    #[error(
        "POLITY_SECRET_KEY is not the key the stored secrets were written with: set it to that key (without it they cannot be read; `polity` never stores the key itself)"
    )]
    SecretKeyWrong,
    #[error(
        "POLITY_SECRET_KEY is not a valid key ({0}): it must be 32 random bytes in base64, e.g. from `openssl rand -base64 32`"
    )]
    SecretKeyInvalid(String),
    #[error("there is no {0} in the database: check the community's name or id")]
    UnknownCommunity(CommunityId),
    #[error("a community named `{0}` (or with that id) already exists: choose another name")]
    CommunityExists(String),
    #[error("there is no outbox row {0} (or it is no longer pending)")]
    UnknownEffect(i64),
    #[error("{0} of the inputs this transaction recorded were recorded meanwhile by another writer of this database")]
    RecordedElsewhere(usize),
    #[error("the setting `{0}` belongs to the store itself and cannot be set: choose another key")]
    ReservedSetting(String),
    #[error("`{0}` is not a database URL Polity knows: use sqlite://FILE?mode=rwc, sqlite::memory: or postgres://...")]
    UnsupportedUrl(String),
    /// The database cannot be opened, with what to do about it.
    #[error("{0}")]
    Open(String),
}

/// An input as it arrived, before the engine saw it: its source (`discord`, `webhook:github`,
/// `scheduler`), the dedup key its platform's ids give it, and the payload as JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct InboxEntry {
    pub source: String,
    pub dedup_key: String,
    pub payload: serde_json::Value,
    /// The caller made sure, inside the same transaction, that the input is not recorded
    /// yet: its row is then written with the transaction's others in one statement at the
    /// commit (a writer that recorded it meanwhile fails the commit).
    pub checked: bool,
}

/// One stored version of one policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    pub id: PolicyId,
    pub name: String,
    /// 1 for the first version of this name, then 2, 3 ...
    pub version: i32,
    pub source: String,
    pub active: bool,
    pub installed_at: DateTime<Utc>,
}

impl From<policies::Model> for StoredPolicy {
    fn from(r: policies::Model) -> Self {
        Self {
            id: PolicyId(r.id),
            name: r.name,
            version: r.version,
            source: r.source,
            active: r.active,
            installed_at: r.installed_at,
        }
    }
}

/// What a start reads of one community ([`Store::load_states`]).
#[derive(Clone, Debug)]
pub struct CommunityState {
    pub community: Community,
    /// Every version of every policy, oldest first.
    pub policies: Vec<StoredPolicy>,
    /// The open proposals, by id.
    pub proposals: Vec<Proposal>,
    /// The largest proposal id it has used.
    pub last: Option<ProposalId>,
}

/// An effect to perform, from the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub community: CommunityId,
    pub proposal: Option<ProposalId>,
    pub effect: Effect,
    /// How many times it was started before (0 the first time it is due).
    pub attempts: i32,
}

/// Why a database cannot be opened, and the fix, without the URL's password.
fn open_error(backend: Backend, url: &str, e: &DbErr) -> StoreError {
    let said = e.to_string();
    let name = url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_string();
    let fix = match backend {
        Backend::Postgres if said.contains("does not exist") && said.contains("database") => {
            format!(": create it first (`createdb {name}`, or `CREATE DATABASE {name};` in psql)")
        }
        Backend::Postgres if said.contains("password") || said.contains("authentication") => {
            ": check the user and password in the URL".to_string()
        }
        Backend::Postgres if said.contains("onnect") => {
            ": is PostgreSQL running, and listening at that host and port?".to_string()
        }
        Backend::Sqlite if said.contains("unable to open") => {
            ": check that its directory exists and that Polity may write there".to_string()
        }
        _ => String::new(),
    };
    StoreError::Open(format!("the database cannot be opened ({said}){fix}"))
}

/// One line of the governance record.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub text: String,
    pub event: serde_json::Value,
}

/// A platform connection as stored, without its secret (see [`Store::connection_secret`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Connection {
    pub name: String,
    pub platform: String,
    pub config: serde_json::Value,
    pub has_secret: bool,
}

/// Everything one engine step changed, written in one transaction by [`Store::record_step`].
#[derive(Clone, Debug)]
pub struct StepRecord<'a> {
    pub community: CommunityId,
    pub now: DateTime<Utc>,
    /// The input, when it came from outside: a second input with the same source and dedup
    /// key makes the whole record a [`Recorded::Duplicate`] that writes nothing.
    pub inbox: Option<InboxEntry>,
    /// Proposals to write as they are now, with their ballots and vote messages.
    pub proposals: Vec<&'a Proposal>,
    /// When the community itself changed: members, accounts, roles, permissions and member
    /// roles are made to match it exactly.
    pub community_state: Option<&'a Community>,
    /// Policy versions installed in this step; each becomes the active version of its name.
    pub new_policies: Vec<&'a CompiledPolicy>,
    /// Policy versions removed in this step (they stay stored, inactive).
    pub removed_policies: Vec<PolicyId>,
    /// Effects to perform, in order: outbox rows due at `now`.
    pub effects: &'a [Effect],
    pub audit: &'a [Audit],
    /// Platform connections this step enables (staged earlier, now allowed) or removes.
    pub connections: Vec<ConnectionChange>,
    /// The outbox row whose result this step records (a vote message posted, linked to its
    /// proposal): marked done with that result in the same transaction.
    pub finishes: Option<(i64, serde_json::Value)>,
    /// The outbox row Polity gave up on, with why: marked failed in the same transaction as
    /// the audit line and the notices that say so.
    pub fails: Option<(i64, String)>,
    /// The outbox row that failed for now, with why and when it is tried again: put back
    /// in the same transaction as the audit line that says so.
    pub retries: Option<(i64, String, DateTime<Utc>)>,
}

/// A change to a platform connection that a governance step carries out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionChange {
    /// Stored, its secret sealed, not yet enabled (the request waits for its decision).
    Stage {
        name: String,
        platform: String,
        config: serde_json::Value,
        secret: Option<Secret>,
        /// The webhook secret Polity generated for it (its platform delivers webhooks).
        hook_secret: Option<Secret>,
    },
    Enable(String),
    Remove(String),
}

impl<'a> StepRecord<'a> {
    /// A record that changes nothing yet: fill in what the step changed.
    pub fn new(community: CommunityId, now: DateTime<Utc>) -> Self {
        Self {
            community,
            now,
            inbox: None,
            proposals: Vec::new(),
            community_state: None,
            new_policies: Vec::new(),
            removed_policies: Vec::new(),
            effects: &[],
            audit: &[],
            connections: Vec::new(),
            finishes: None,
            fails: None,
            retries: None,
        }
    }
}

/// Whether a database host is this machine: a loopback name or address, or a socket path.
fn is_this_machine(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
#[test]
fn only_loopback_hosts_are_this_machine() {
    for here in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "/var/run/postgresql"] {
        assert!(is_this_machine(here), "{here}");
    }
    for there in ["db.example.org", "10.0.0.5", "192.168.1.1", "::2", "localhost.example.org", ""] {
        assert!(!is_this_machine(there), "{there}");
    }
}

/// A read of the store as of one moment ([`Store::snapshot`]); it writes nothing and ends
/// when dropped.
pub struct Snapshot(DatabaseTransaction);

/// Steps being recorded in one transaction ([`Store::begin_batch`]).
pub struct Batch {
    txn: DatabaseTransaction,
    /// What the batch wrote of each proposal, for the steps after it (see [`shadow`]).
    written: std::sync::Arc<shadow::Pending>,
}

impl Batch {
    /// Makes every step recorded in the batch durable at once.
    ///
    /// # Errors
    /// A database error: nothing of the batch is written then.
    pub async fn commit(self) -> Result<(), StoreError> {
        step::write_held(&self.txn, &self.written).await?;
        self.txn.commit().await?;
        self.written.commit();
        Ok(())
    }

    /// Writes nothing of the batch.
    ///
    /// # Errors
    /// A database error.
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.txn.rollback().await?)
    }

    /// A savepoint inside the batch: one input's writes, kept with the batch when it is
    /// committed, taken back alone when it is rolled back.
    ///
    /// # Errors
    /// A database error.
    pub async fn savepoint(&self) -> Result<Batch, StoreError> {
        Ok(Batch { txn: self.txn.begin().await?, written: shadow::Pending::nested(&self.written) })
    }
}

/// What [`Store::record_step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// The input was recorded before: nothing was written.
    Duplicate,
    /// Written; the outbox ids of the effects, in order.
    Done { outbox: Vec<i64> },
}

/// Outbox statuses.
pub mod status {
    use sea_orm::sea_query::{Expr, SimpleExpr};

    pub const PENDING: &str = "pending";
    pub const IN_FLIGHT: &str = "in_flight";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";

    /// Pending or in flight, written as the partial index `ix_outbox_outstanding` is (the
    /// statuses as literals, not parameters), so both databases use it.
    pub(crate) fn outstanding() -> SimpleExpr {
        Expr::cust("\"status\" IN ('pending', 'in_flight')")
    }

    /// Failed, as the partial index `ix_outbox_failed` is written.
    pub(crate) fn failed() -> SimpleExpr {
        Expr::cust("\"status\" = 'failed'")
    }
}

/// The one kind of scheduled job so far: an open proposal's deadline.
const DEADLINE: &str = "deadline";
/// The settings key of the value that tells whether the secret key is the right one.
const SECRET_CHECK_KEY: &str = "secret_key_check";
const SECRET_CHECK_TEXT: &str = "polity secret key check";
const SECRET_CHECK_CONTEXT: &str = "polity settings secret_key_check";

fn secret_context(community: CommunityId, name: &str) -> String {
    format!("polity platform_connections community={} name={name}", community.0)
}

/// What a connection's webhook secret is sealed for: not its other secret's context, so one
/// ciphertext can never be passed off as the other.
fn hook_secret_context(community: CommunityId, name: &str) -> String {
    format!("polity platform_connections hook community={} name={name}", community.0)
}

/// A connection's secrets, as typed or generated, to be sealed.
#[derive(Clone, Copy, Default)]
struct Secrets<'a> {
    secret: Option<&'a str>,
    hook: Option<&'a str>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Polity's database. Cloning shares the connection pool.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    backend: Backend,
    /// The secret key, none, or why the configured text is not a key (reported when a
    /// secret is needed, and by [`Store::check_secret_key`]).
    key: Result<Option<SecretKey>, String>,
    /// What is stored of the open proposals this process wrote (see [`shadow`]).
    written: shadow::Shadow,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .field("secret_key", &self.key.as_ref().map(|k| k.as_ref().map(|_| "[redacted]")))
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `url`: `sqlite://polity.db?mode=rwc` (a file, created if need
    /// be), `sqlite::memory:` or `postgres://USER@HOST/DB`. SQLite runs with WAL, foreign
    /// keys on and a busy timeout; an in-memory database lives on one connection.
    ///
    /// # Errors
    /// An unknown URL scheme, or the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            // Never echo the whole URL: it may hold a password.
            let scheme = url.split_once(':').map_or("", |(s, _)| s);
            return Err(StoreError::UnsupportedUrl(format!("{scheme}:...")));
        };
        let mut opts = ConnectOptions::new(url);
        opts.sqlx_logging(false);
        if backend == Backend::Sqlite {
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            // `sqlite://mine.db` makes the file when it is missing, as `?mode=rwc` does; a
            // read-only URL is left read-only.
            let create = !in_memory && !url.contains("mode=ro");
            opts.map_sqlx_sqlite_opts(move |o| {
                let o = o.foreign_keys(true).busy_timeout(Duration::from_secs(10)).create_if_missing(create);
                if in_memory {
                    o
                } else {
                    // A page cache of 512 KiB a connection rather than SQLite's 2 MiB: the
                    // file's pages stay in the operating system's cache, and each of the
                    // pool's connections held 2 MiB of copies of them.
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .pragma("cache_size", "-512")
                }
            });
            if in_memory {
                // Each connection to `:memory:` would be a database of its own: keep one, forever.
                opts.max_connections(1).min_connections(1).idle_timeout(None).max_lifetime(None);
            } else {
                // WAL lets a reader run beside the writer; writers queue (IMMEDIATE + busy
                // timeout). Two, not more: SQLite writes one at a time whatever the pool, and
                // each connection's worker thread keeps a heap of its own (a restart with
                // 10,000 open proposals held 4 MiB more with four, and was no faster).
                opts.max_connections(2);
            }
        }
        if backend == Backend::Postgres && !url.contains("sslmode=") && std::env::var_os("PGSSLMODE").is_none() {
            // Without an `sslmode`, the client tries TLS (`prefer`). To this machine it
            // protects nothing, and it costs: the client leaves Nagle's algorithm on, so a
            // statement larger than one TLS record (16 KiB) waited for the server's delayed
            // acknowledgement, 40 ms a time (batches of 128 ballots: 870/s over TLS, 6,350/s
            // without). Elsewhere TLS stays as asked.
            opts.map_sqlx_postgres_opts(|o| {
                if is_this_machine(o.get_host()) { o.ssl_mode(sea_orm::sqlx::postgres::PgSslMode::Disable) } else { o }
            });
        }
        let db = Database::connect(opts).await.map_err(|e| open_error(backend, url, &e))?;
        Ok(Self { db, backend, key: Ok(None), written: shadow::Shadow::default() })
    }

    /// Brings the schema up to date (a no-op when it is), saying at info in one line how many
    /// migrations it applies (sea-orm's migrator says it migration by migration, at info too:
    /// `polity`'s default log filter keeps that for when it is asked for).
    ///
    /// # Errors
    /// A migration failed.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        use polity_migrations::MigratorTrait;
        let pending = polity_migrations::Migrator::get_pending_migrations(&self.db).await?.len();
        if pending == 0 {
            tracing::debug!(backend = self.backend_name(), "the database schema is up to date");
            return Ok(());
        }
        tracing::info!(
            backend = self.backend_name(),
            "bringing the database schema up to date: applying {pending} migrations"
        );
        polity_migrations::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// `sqlite` or `postgres`.
    /// Whether secrets can be stored (a secret key was given).
    pub fn has_secret_key(&self) -> bool {
        matches!(self.secret_key(), Ok(Some(_)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The connection pool, for what the store does not cover (health checks, tests).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Sets the key that encrypts secrets (`POLITY_SECRET_KEY`: 32 bytes, base64). Text that
    /// is not such a key is reported as [`StoreError::SecretKeyInvalid`] by
    /// [`Store::check_secret_key`] and whenever a secret is read or written.
    #[must_use]
    pub fn with_secret_key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(SecretKey::parse).transpose();
        self
    }

    /// The secret key, if one is set and valid.
    fn secret_key(&self) -> Result<Option<&SecretKey>, StoreError> {
        self.key.as_ref().map(Option::as_ref).map_err(|e| StoreError::SecretKeyInvalid(e.clone()))
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// two writers queue on the busy timeout instead of failing when a read turns into a write.
    async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        self.db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await
    }

    // ----- communities -----

    /// Stores a new community (the engine's, with its id) and its members and roles.
    ///
    /// # Errors
    /// [`StoreError::CommunityExists`] when its name or id is taken.
    pub async fn create_community(&self, c: &Community) -> Result<(), StoreError> {
        let now = Utc::now();
        let txn = self.begin().await?;
        let taken = communities::Entity::find()
            .filter(communities::Column::Id.eq(c.id.0).or(communities::Column::Name.eq(c.name.clone())))
            .count(&txn)
            .await?;
        if taken > 0 {
            txn.rollback().await?;
            return Err(StoreError::CommunityExists(c.name.clone()));
        }
        communities::Entity::insert(communities::ActiveModel {
            id: Set(c.id.0),
            name: Set(c.name.clone()),
            created_at: Set(ts(now)),
        })
        .exec_without_returning(&txn)
        .await?;
        community::sync_community(&txn, c, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// # Errors
    /// A database error.
    pub async fn community_id(&self, name: &str) -> Result<Option<CommunityId>, StoreError> {
        let row = communities::Entity::find().filter(communities::Column::Name.eq(name)).one(&self.db).await?;
        Ok(row.map(|r| CommunityId(r.id)))
    }

    /// The id a new community gets: one more than the largest.
    ///
    /// # Errors
    /// A database error.
    pub async fn next_community_id(&self) -> Result<CommunityId, StoreError> {
        let last = communities::Entity::find().order_by_desc(communities::Column::Id).one(&self.db).await?;
        Ok(CommunityId(last.map_or(1, |r| r.id + 1)))
    }

    /// Every community, by id.
    ///
    /// # Errors
    /// A database error.
    pub async fn communities(&self) -> Result<Vec<(CommunityId, String)>, StoreError> {
        let rows = communities::Entity::find().order_by_asc(communities::Column::Id).all(&self.db).await?;
        Ok(rows.into_iter().map(|r| (CommunityId(r.id), r.name)).collect())
    }

    /// The community with its members, accounts, roles and permissions.
    ///
    /// # Errors
    /// [`StoreError::UnknownCommunity`], or a row that does not decode.
    pub async fn load_community(&self, id: CommunityId) -> Result<Community, StoreError> {
        community::load_community(&self.db, id).await
    }

    // ----- policies -----

    /// Every version of every policy of the community, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn load_policies(&self, id: CommunityId) -> Result<Vec<StoredPolicy>, StoreError> {
        let rows = policies::Entity::find()
            .filter(policies::Column::CommunityId.eq(id.0))
            .order_by_asc(policies::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(StoredPolicy::from).collect())
    }

    // ----- a start -----

    /// Everything a start reads of the communities `ids` (those that exist), in id order:
    /// each community with its policies, open proposals and last proposal id, in a dozen
    /// queries for all of them.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn load_states(&self, ids: &[CommunityId]) -> Result<Vec<CommunityState>, StoreError> {
        self.load_states_on(&self.db, ids).await
    }

    /// A read of the whole store as of one moment, on one connection, for
    /// [`Store::load_states_in`]: a start reading every community through it sees them all as
    /// they were at once, and on SQLite keeps one worker thread busy instead of each of the
    /// pool's (each keeps a heap of its own).
    ///
    /// # Errors
    /// A database error.
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(Snapshot(self.db.begin().await?))
    }

    /// [`Store::load_states`] inside a snapshot.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn load_states_in(
        &self,
        snapshot: &Snapshot,
        ids: &[CommunityId],
    ) -> Result<Vec<CommunityState>, StoreError> {
        self.load_states_on(&snapshot.0, ids).await
    }

    async fn load_states_on<C: ConnectionTrait>(
        &self,
        db: &C,
        ids: &[CommunityId],
    ) -> Result<Vec<CommunityState>, StoreError> {
        let raw: Vec<i64> = ids.iter().map(|c| c.0).collect();
        let communities = community::load_communities(db, &raw).await?;
        let mut policies: BTreeMap<i64, Vec<StoredPolicy>> = BTreeMap::new();
        for r in policies::Entity::find()
            .filter(policies::Column::CommunityId.is_in(raw.iter().copied()))
            .order_by_asc(policies::Column::CommunityId)
            .order_by_asc(policies::Column::Id)
            .all(db)
            .await?
        {
            policies.entry(r.community_id).or_default().push(StoredPolicy::from(r));
        }
        let mut proposals: BTreeMap<i64, Vec<Proposal>> = BTreeMap::new();
        for (c, p) in self.proposals_of(db, &raw, true, None).await? {
            proposals.entry(c).or_default().push(p);
        }
        let last: BTreeMap<i64, i64> = proposals::Entity::find()
            .select_only()
            .column(proposals::Column::CommunityId)
            .column_as(proposals::Column::Id.max(), "last")
            .filter(proposals::Column::CommunityId.is_in(raw.iter().copied()))
            .group_by(proposals::Column::CommunityId)
            .into_tuple::<(i64, i64)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        Ok(communities
            .into_iter()
            .map(|community| {
                let c = community.id.0;
                CommunityState {
                    policies: policies.remove(&c).unwrap_or_default(),
                    proposals: proposals.remove(&c).unwrap_or_default(),
                    last: last.get(&c).copied().map(ProposalId),
                    community,
                }
            })
            .collect())
    }

    // ----- proposals -----

    /// Forgets what this process knows it wrote of the community's proposals, so each is
    /// written whole the next time a step changes it. For a community reloaded from the
    /// store (another writer may have changed it meanwhile).
    pub fn forget_written(&self, id: CommunityId) {
        self.written.forget_community(id.0);
    }

    /// How many open proposals the store knows as it wrote them (see
    /// [`Store::forget_written`]).
    pub fn written_proposals(&self) -> usize {
        self.written.len()
    }

    /// The community's proposals (only the open ones when `open_only`) with their ballots
    /// and vote messages, by id.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn load_proposals(&self, id: CommunityId, open_only: bool) -> Result<Vec<Proposal>, StoreError> {
        self.proposals_where(id, open_only, None).await
    }

    /// One proposal with its ballots and vote messages.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn proposal(&self, id: CommunityId, p: ProposalId) -> Result<Option<Proposal>, StoreError> {
        Ok(self.proposals_where(id, false, Some(p)).await?.pop())
    }

    async fn proposals_where(
        &self,
        id: CommunityId,
        open_only: bool,
        only: Option<ProposalId>,
    ) -> Result<Vec<Proposal>, StoreError> {
        Ok(self.proposals_of(&self.db, &[id.0], open_only, only).await?.into_iter().map(|(_, p)| p).collect())
    }

    /// The proposals of the communities `ids` (only the open ones when `open_only`, only
    /// `only` when given) with their ballots and vote messages, by community and id: three
    /// queries for all of them.
    async fn proposals_of<C: ConnectionTrait>(
        &self,
        db: &C,
        ids: &[i64],
        open_only: bool,
        only: Option<ProposalId>,
    ) -> Result<Vec<(i64, Proposal)>, StoreError> {
        let open = codec::enum_name(&polity_governance::ProposalState::Proposed, "state")?;
        let in_ids = || ids.iter().copied();
        let mut rows = proposals::Entity::find().filter(proposals::Column::CommunityId.is_in(in_ids()));
        let mut ballot_rows = ballots::Entity::find().filter(ballots::Column::CommunityId.is_in(in_ids()));
        let mut message_rows = vote_messages::Entity::find().filter(vote_messages::Column::CommunityId.is_in(in_ids()));
        if let Some(p) = only {
            rows = rows.filter(proposals::Column::Id.eq(p.0));
            ballot_rows = ballot_rows.filter(ballots::Column::ProposalId.eq(p.0));
            message_rows = message_rows.filter(vote_messages::Column::ProposalId.eq(p.0));
        }
        if open_only {
            // Proposal ids are the community's own: a ballot of another community's closed
            // proposal with the same id may come along, and is left unused below.
            let open_ids = Query::select()
                .column(proposals::Column::Id)
                .from(proposals::Entity)
                .and_where(proposals::Column::CommunityId.is_in(in_ids()))
                .and_where(proposals::Column::State.eq(open.clone()))
                .to_owned();
            rows = rows.filter(proposals::Column::State.eq(open));
            ballot_rows = ballot_rows.filter(ballots::Column::ProposalId.in_subquery(open_ids.clone()));
            message_rows = message_rows.filter(vote_messages::Column::ProposalId.in_subquery(open_ids));
        }
        let rows =
            rows.order_by_asc(proposals::Column::CommunityId).order_by_asc(proposals::Column::Id).all(db).await?;
        let mut ballots_of: BTreeMap<(i64, i64), Vec<ballots::Model>> = BTreeMap::new();
        for b in ballot_rows.order_by_asc(ballots::Column::MemberId).all(db).await? {
            ballots_of.entry((b.community_id, b.proposal_id)).or_default().push(b);
        }
        let mut messages_of: BTreeMap<(i64, i64), Vec<vote_messages::Model>> = BTreeMap::new();
        for m in message_rows.order_by_asc(vote_messages::Column::Id).all(db).await? {
            messages_of.entry((m.community_id, m.proposal_id)).or_default().push(m);
        }
        rows.into_iter()
            .map(|r| {
                let key = (r.community_id, r.id);
                let b = ballots_of.remove(&key).unwrap_or_default();
                let m = messages_of.remove(&key).unwrap_or_default();
                Ok((key.0, codec::decode_proposal(r, b, m)?))
            })
            .collect()
    }

    /// The largest proposal id the community has used.
    ///
    /// # Errors
    /// A database error.
    pub async fn last_proposal_id(&self, id: CommunityId) -> Result<Option<ProposalId>, StoreError> {
        let last = proposals::Entity::find()
            .filter(proposals::Column::CommunityId.eq(id.0))
            .order_by_desc(proposals::Column::Id)
            .one(&self.db)
            .await?;
        Ok(last.map(|r| ProposalId(r.id)))
    }

    /// The vote messages of a proposal, in the order platforms reported them.
    ///
    /// # Errors
    /// A database error.
    pub async fn vote_messages(&self, id: CommunityId, p: ProposalId) -> Result<Vec<MessageRef>, StoreError> {
        // An open proposal this process wrote: as its last committed write left them.
        if let Some(messages) = self.written.messages((id.0, p.0)) {
            return Ok(messages);
        }
        vote_messages_of(&self.db, id.0, p).await
    }

    /// Links a vote message to a proposal decided while the message was on its way, and marks
    /// its post done, in one transaction (the engine no longer holds the proposal).
    ///
    /// # Errors
    /// A database error; nothing is written then.
    pub async fn link_closed_vote_message(
        &self,
        id: CommunityId,
        p: ProposalId,
        message: &MessageRef,
        effect: i64,
        result: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Written outside the steps: the proposal is written whole, should it be again.
        self.written.forget((id.0, p.0));
        let txn = self.begin().await?;
        step::link_vote_message(&txn, id.0, p, message, ts(now)).await?;
        let update =
            EffectUpdate { to: status::DONE, error: None, result: Some(to_json(result, "effect result")?), next: None };
        set_effect(&txn, effect, update, now).await?;
        txn.commit().await?;
        Ok(())
    }

    // ----- the step -----

    /// Whether an input with this source and dedup key was recorded.
    ///
    /// # Errors
    /// A database error.
    pub async fn seen(&self, source: &str, dedup_key: &str) -> Result<bool, StoreError> {
        seen_on(&self.db, source, dedup_key).await
    }

    /// Writes everything one engine step changed in one transaction; see [`StepRecord`].
    ///
    /// # Errors
    /// A database error; nothing is written then.
    pub async fn record_step(&self, rec: StepRecord<'_>) -> Result<Recorded, StoreError> {
        let batch = self.begin_batch().await?;
        match self.record_in(&batch, &rec).await? {
            Recorded::Duplicate => {
                batch.rollback().await?;
                Ok(Recorded::Duplicate)
            }
            done => {
                batch.commit().await?;
                Ok(done)
            }
        }
    }

    /// A transaction that several steps are recorded in, committed together (group commit).
    ///
    /// # Errors
    /// A database error.
    pub async fn begin_batch(&self) -> Result<Batch, StoreError> {
        Ok(Batch { txn: self.begin().await?, written: shadow::Pending::new(&self.written) })
    }

    /// Writes one step's record inside `batch`; see [`StepRecord`]. A duplicate input writes
    /// nothing of its own (connections it staged excepted: a caller that stages rolls back).
    ///
    /// # Errors
    /// A database error: the batch is then to be rolled back.
    pub async fn record_in(&self, batch: &Batch, rec: &StepRecord<'_>) -> Result<Recorded, StoreError> {
        // Connections staged by this step come first, so the step can enable them.
        for change in &rec.connections {
            if let ConnectionChange::Stage { name, platform, config, secret, hook_secret } = change {
                let secrets = Secrets {
                    secret: secret.as_ref().map(Secret::expose),
                    hook: hook_secret.as_ref().map(Secret::expose),
                };
                self.write_connection(&batch.txn, rec.community, name, platform, config, secrets, true).await?;
            }
        }
        step::record(&batch.txn, &batch.written, rec).await
    }

    /// Whether an input with this source and dedup key was recorded, in `batch` or before.
    ///
    /// # Errors
    /// A database error.
    pub async fn seen_in(&self, batch: &Batch, source: &str, dedup_key: &str) -> Result<bool, StoreError> {
        if batch.written.holds_input(source, dedup_key) {
            return Ok(true);
        }
        seen_on(&batch.txn, source, dedup_key).await
    }

    /// Which of these inputs (source, dedup key) were recorded, in `batch` or before, asked
    /// in one query.
    ///
    /// # Errors
    /// A database error.
    pub async fn seen_many_in(
        &self,
        batch: &Batch,
        keys: &[(&str, &str)],
    ) -> Result<std::collections::HashSet<(String, String)>, StoreError> {
        let mut found = std::collections::HashSet::new();
        // In chunks, well below the bound parameters a statement may have.
        for chunk in keys.chunks(400) {
            let sources: std::collections::BTreeSet<&str> = chunk.iter().map(|(s, _)| *s).collect();
            let dedup: std::collections::BTreeSet<&str> = chunk.iter().map(|(_, k)| *k).collect();
            // Both columns are matched as lists (a superset of the pairs, which the unique
            // index answers, by key first: see migration 22); the pairs asked for are picked
            // out here.
            let rows: Vec<(String, String)> = inbox::Entity::find()
                .select_only()
                .column(inbox::Column::Source)
                .column(inbox::Column::DedupKey)
                .filter(inbox::Column::Source.is_in(sources))
                .filter(inbox::Column::DedupKey.is_in(dedup))
                .into_tuple()
                .all(&batch.txn)
                .await?;
            let asked: std::collections::HashSet<(&str, &str)> = chunk.iter().copied().collect();
            found.extend(rows.into_iter().filter(|(s, k)| asked.contains(&(s.as_str(), k.as_str()))));
        }
        Ok(found)
    }

    // ----- the outbox -----

    /// Effects due at `now`, oldest first: pending ones, and in-flight ones a crash left
    /// behind (their platform call may or may not have happened).
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn due_effects(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<OutboxRow>, StoreError> {
        self.due_effects_after(now, 0, limit).await
    }

    /// [`Self::due_effects`] whose id is above `after`, to read them page by page.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn due_effects_after(
        &self,
        now: DateTime<Utc>,
        after: i64,
        limit: u64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        use sea_orm::QueryTrait;
        let mut statement = outbox::Entity::find()
            .filter(status::outstanding())
            .filter(outbox::Column::NextAttemptAt.lte(ts(now)))
            .filter(outbox::Column::Id.gt(after))
            .order_by_asc(outbox::Column::Id)
            .build(self.db.get_database_backend());
        // The count is written into the statement rather than bound: SQLite plans with a
        // bound LIMIT's value, so binding it again expires the cached statement and every
        // run compiled it anew. (A number, so nothing a user sends reaches the text.)
        statement.sql.push_str(&format!(" LIMIT {limit}"));
        let rows = outbox::Entity::find().from_raw_sql(statement).all(&self.db).await?;
        rows.into_iter().map(outbox_row).collect()
    }

    /// Effects that failed before and wait for their retry after `now`, oldest first.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn retrying_effects(&self, now: DateTime<Utc>) -> Result<Vec<(OutboxRow, DateTime<Utc>)>, StoreError> {
        let rows = outbox::Entity::find()
            .filter(status::outstanding())
            .filter(outbox::Column::Status.eq(status::PENDING))
            .filter(outbox::Column::NextAttemptAt.gt(ts(now)))
            .filter(outbox::Column::Attempts.gt(0))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                let at = r.next_attempt_at;
                outbox_row(r).map(|row| (row, at))
            })
            .collect()
    }

    /// When the first pending effect due after `after` is due.
    ///
    /// # Errors
    /// A database error.
    pub async fn next_effect_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = outbox::Entity::find()
            .filter(status::outstanding())
            .filter(outbox::Column::Status.eq(status::PENDING))
            .filter(outbox::Column::NextAttemptAt.gt(ts(after)))
            .order_by_asc(outbox::Column::NextAttemptAt)
            .one(&self.db)
            .await?;
        Ok(row.map(|r| r.next_attempt_at))
    }

    /// When the next pending or in-flight effect is due.
    ///
    /// # Errors
    /// A database error.
    pub async fn next_effect_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = outbox::Entity::find()
            .filter(status::outstanding())
            .order_by_asc(outbox::Column::NextAttemptAt)
            .one(&self.db)
            .await?;
        Ok(row.map(|r| r.next_attempt_at))
    }

    /// Marks an effect in flight and counts the attempt: commit this before the platform call.
    ///
    /// # Errors
    /// [`StoreError::UnknownEffect`] when it is not pending or in flight.
    pub async fn start_effect(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        let res = outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, Expr::value(status::IN_FLIGHT))
            .col_expr(outbox::Column::Attempts, Expr::col(outbox::Column::Attempts).add(1))
            .col_expr(outbox::Column::UpdatedAt, Expr::value(ts(now)))
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::Status.is_in([status::PENDING, status::IN_FLIGHT]))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Err(StoreError::UnknownEffect(id));
        }
        Ok(())
    }

    /// Marks an effect done, with what the platform returned (a posted message's id ...).
    ///
    /// # Errors
    /// [`StoreError::UnknownEffect`].
    pub async fn finish_effect(
        &self,
        id: i64,
        result: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = to_json(result, "effect result")?;
        self.set_effect(id, status::DONE, None, Some(result), None, now).await
    }

    /// Puts an effect back to pending, due again `at`, keeping the error.
    ///
    /// # Errors
    /// [`StoreError::UnknownEffect`].
    pub async fn retry_effect(
        &self,
        id: i64,
        at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.set_effect(id, status::PENDING, Some(error), None, Some(at), now).await
    }

    /// Puts a pending effect off until `at` without counting an attempt (a tally edit paced
    /// to the platform's taste).
    ///
    /// # Errors
    /// [`StoreError::UnknownEffect`].
    pub async fn postpone_effect(&self, id: i64, at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_effect(id, status::PENDING, None, None, Some(at), now).await
    }

    /// The effects of a community still to perform (pending or in flight), oldest first,
    /// optionally only those of one proposal.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn outstanding_effects(
        &self,
        community: CommunityId,
        proposal: Option<ProposalId>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut query =
            outbox::Entity::find().filter(outbox::Column::CommunityId.eq(community.0)).filter(status::outstanding());
        if let Some(p) = proposal {
            query = query.filter(outbox::Column::ProposalId.eq(p.0));
        }
        let rows = query.order_by_asc(outbox::Column::Id).all(&self.db).await?;
        rows.into_iter().map(outbox_row).collect()
    }

    /// Gives an effect up, keeping the error.
    ///
    /// # Errors
    /// [`StoreError::UnknownEffect`].
    pub async fn fail_effect(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.set_effect(id, status::FAILED, Some(error), None, None, now).await
    }

    async fn set_effect(
        &self,
        id: i64,
        to: &str,
        error: Option<&str>,
        result: Option<String>,
        next: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        set_effect(&self.db, id, EffectUpdate { to, error, result, next }, now).await
    }

    /// The effects given up on, with the error that ended each, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn failed_effects(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let rows =
            outbox::Entity::find().filter(status::failed()).order_by_asc(outbox::Column::Id).all(&self.db).await?;
        Ok(rows.into_iter().map(|r| (r.id, r.last_error.unwrap_or_default())).collect())
    }

    /// The reasons a proposal's effects failed for good, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn failed_effects_of(
        &self,
        community: CommunityId,
        proposal: ProposalId,
    ) -> Result<Vec<String>, StoreError> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::CommunityId.eq(community.0))
            .filter(outbox::Column::ProposalId.eq(proposal.0))
            .filter(status::failed())
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().filter_map(|r| r.last_error).collect())
    }

    /// How many effects are pending or in flight.
    ///
    /// # Errors
    /// A database error.
    pub async fn pending_effects(&self) -> Result<u64, StoreError> {
        Ok(outbox::Entity::find().filter(status::outstanding()).count(&self.db).await?)
    }

    // ----- the scheduler -----

    /// The earliest deadline of an open proposal, in any community.
    ///
    /// # Errors
    /// A database error.
    pub async fn next_deadline(&self) -> Result<Option<(CommunityId, DateTime<Utc>)>, StoreError> {
        let row = scheduled_jobs::Entity::find()
            .filter(scheduled_jobs::Column::Kind.eq(DEADLINE))
            .order_by_asc(scheduled_jobs::Column::DueAt)
            .order_by_asc(scheduled_jobs::Column::Id)
            .one(&self.db)
            .await?;
        Ok(row.map(|r| (CommunityId(r.community_id), r.due_at)))
    }

    // ----- the audit log -----

    /// The community's latest audit lines, newest first.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn audit(&self, id: CommunityId, limit: u64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = audit_log::Entity::find()
            .filter(audit_log::Column::CommunityId.eq(id.0))
            .order_by_desc(audit_log::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(AuditRow {
                    id: r.id,
                    at: r.at,
                    event: from_json(&r.event, &format!("audit row {}", r.id))?,
                    text: r.text,
                })
            })
            .collect()
    }

    // ----- settings -----

    /// A setting by key (`console.last_message` ...).
    ///
    /// # Errors
    /// A database error.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(settings::Entity::find_by_id(key).one(&self.db).await?.map(|r| r.value))
    }

    /// Sets a setting. The store's own keys (the secret key check) cannot be set this way.
    ///
    /// # Errors
    /// [`StoreError::ReservedSetting`], or a database error.
    pub async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        if key == SECRET_CHECK_KEY {
            return Err(StoreError::ReservedSetting(key.to_string()));
        }
        settings::Entity::insert(settings::ActiveModel { key: Set(key.to_string()), value: Set(value.to_string()) })
            .on_conflict(OnConflict::column(settings::Column::Key).update_column(settings::Column::Value).to_owned())
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    // ----- platform connections and secrets -----

    /// Stores (or replaces) a platform connection; its secret, if any, encrypted.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] when there is a secret and no key,
    /// [`StoreError::SecretKeyWrong`] when other secrets were written with another key.
    pub async fn put_connection(
        &self,
        id: CommunityId,
        name: &str,
        platform: &str,
        config: &serde_json::Value,
        secret: Option<&str>,
    ) -> Result<(), StoreError> {
        self.put(id, name, platform, config, Secrets { secret, hook: None }).await
    }

    /// [`Store::put_connection`] with the webhook secret Polity generated for it.
    ///
    /// # Errors
    /// As [`Store::put_connection`].
    pub async fn put_connection_with_hook(
        &self,
        id: CommunityId,
        name: &str,
        platform: &str,
        config: &serde_json::Value,
        secret: Option<&str>,
        hook_secret: &str,
    ) -> Result<(), StoreError> {
        self.put(id, name, platform, config, Secrets { secret, hook: Some(hook_secret) }).await
    }

    /// Writes a connection in a transaction of its own.
    async fn put(
        &self,
        id: CommunityId,
        name: &str,
        platform: &str,
        config: &serde_json::Value,
        secrets: Secrets<'_>,
    ) -> Result<(), StoreError> {
        let txn = self.begin().await?;
        self.write_connection(&txn, id, name, platform, config, secrets, false).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Writes a connection inside `txn`, its secret sealed. With `new_only`, a connection of
    /// that name must not exist yet.
    #[allow(clippy::too_many_arguments)]
    async fn write_connection<C: sea_orm::ConnectionTrait>(
        &self,
        txn: &C,
        id: CommunityId,
        name: &str,
        platform: &str,
        config: &serde_json::Value,
        secrets: Secrets<'_>,
        new_only: bool,
    ) -> Result<(), StoreError> {
        let now = ts(Utc::now());
        let config = to_json(config, "connection config")?;
        if new_only {
            let taken = platform_connections::Entity::find()
                .filter(platform_connections::Column::CommunityId.eq(id.0))
                .filter(platform_connections::Column::Name.eq(name))
                .one(txn)
                .await?;
            if taken.is_some() {
                return Err(StoreError::Corrupt(format!("a connection named {name} exists already")));
            }
        }
        let ciphertext = match secrets.secret.or(secrets.hook) {
            None => None,
            Some(_) => Some(self.checked_key(txn).await?),
        };
        let (ciphertext, hook_ciphertext) = match ciphertext {
            None => (None, None),
            Some(key) => (
                secrets
                    .secret
                    .map(|s| key.seal(s, &secret_context(id, name)))
                    .transpose()
                    .map_err(StoreError::Corrupt)?,
                secrets
                    .hook
                    .map(|s| key.seal(s, &hook_secret_context(id, name)))
                    .transpose()
                    .map_err(StoreError::Corrupt)?,
            ),
        };
        let keeps_hook = hook_ciphertext.is_none();
        platform_connections::Entity::insert(platform_connections::ActiveModel {
            community_id: Set(id.0),
            name: Set(name.to_string()),
            platform: Set(platform.to_string()),
            config: Set(config),
            secret_ciphertext: Set(ciphertext),
            hook_secret_ciphertext: Set(hook_ciphertext),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .on_conflict({
            // A write without a webhook secret (a connection's settings rewritten) keeps the one
            // it has: it was shown once, and the platform holds it.
            let mut columns = vec![
                platform_connections::Column::Platform,
                platform_connections::Column::Config,
                platform_connections::Column::SecretCiphertext,
                platform_connections::Column::UpdatedAt,
            ];
            if !keeps_hook {
                columns.push(platform_connections::Column::HookSecretCiphertext);
            }
            OnConflict::columns([platform_connections::Column::CommunityId, platform_connections::Column::Name])
                .update_columns(columns)
                .to_owned()
        })
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }

    /// The community's platform connections, by name.
    ///
    /// # Errors
    /// A database error or a config that does not decode.
    pub async fn connections(&self, id: CommunityId) -> Result<Vec<Connection>, StoreError> {
        let rows = platform_connections::Entity::find()
            .filter(platform_connections::Column::CommunityId.eq(id.0))
            .order_by_asc(platform_connections::Column::Name)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Connection {
                    config: from_json(&r.config, &format!("config of connection {}", r.name))?,
                    has_secret: r.secret_ciphertext.is_some(),
                    name: r.name,
                    platform: r.platform,
                })
            })
            .collect()
    }

    /// Every community's connections to `platform`, oldest first.
    ///
    /// # Errors
    /// A database error or a row that does not decode.
    pub async fn connections_to(&self, platform: &str) -> Result<Vec<(CommunityId, Connection)>, StoreError> {
        let rows = platform_connections::Entity::find()
            .filter(platform_connections::Column::Platform.eq(platform))
            .order_by_asc(platform_connections::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    CommunityId(r.community_id),
                    Connection {
                        config: from_json(&r.config, &format!("config of connection {}", r.name))?,
                        has_secret: r.secret_ciphertext.is_some(),
                        name: r.name,
                        platform: r.platform,
                    },
                ))
            })
            .collect()
    }

    /// Replaces the secret of a connection that has one (a credential its platform rotated,
    /// such as a refresh token handed out anew), sealed as before; the rest of the connection
    /// is kept. Whether there was such a connection.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] or [`StoreError::SecretKeyWrong`].
    pub async fn replace_connection_secret(
        &self,
        id: CommunityId,
        name: &str,
        secret: &str,
    ) -> Result<bool, StoreError> {
        use platform_connections::Column as P;
        let txn = self.begin().await?;
        let key = self.checked_key(&txn).await?;
        let sealed = key.seal(secret, &secret_context(id, name)).map_err(StoreError::Corrupt)?;
        let replaced = platform_connections::Entity::update_many()
            .col_expr(P::SecretCiphertext, Expr::value(sealed))
            .col_expr(P::UpdatedAt, Expr::value(ts(Utc::now())))
            .filter(P::CommunityId.eq(id.0))
            .filter(P::Name.eq(name))
            .filter(P::SecretCiphertext.is_not_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(replaced.rows_affected == 1)
    }

    /// The decrypted secret of a connection; `None` when there is no such connection or it
    /// has no secret.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] or [`StoreError::SecretKeyWrong`].
    pub async fn connection_secret(&self, id: CommunityId, name: &str) -> Result<Option<Secret>, StoreError> {
        self.sealed(id, name, false).await
    }

    /// The decrypted webhook secret Polity generated for a connection; `None` when there is
    /// no such connection or it has none.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`] or [`StoreError::SecretKeyWrong`].
    pub async fn connection_hook_secret(&self, id: CommunityId, name: &str) -> Result<Option<Secret>, StoreError> {
        self.sealed(id, name, true).await
    }

    /// The secret key, for a secret about to be written: it must be the one the stored
    /// secrets were written with (the check row says so), and the first secret writes that row.
    pub(crate) async fn checked_key<C: sea_orm::ConnectionTrait>(&self, txn: &C) -> Result<&SecretKey, StoreError> {
        let key = self.secret_key()?.ok_or(StoreError::SecretKeyMissing)?;
        match settings::Entity::find_by_id(SECRET_CHECK_KEY).one(txn).await? {
            Some(row) => {
                if key.open(&row.value, SECRET_CHECK_CONTEXT).as_deref() != Some(SECRET_CHECK_TEXT) {
                    return Err(StoreError::SecretKeyWrong);
                }
            }
            None => {
                let value = key.seal(SECRET_CHECK_TEXT, SECRET_CHECK_CONTEXT).map_err(StoreError::Corrupt)?;
                settings::Entity::insert(settings::ActiveModel {
                    key: Set(SECRET_CHECK_KEY.to_string()),
                    value: Set(value),
                })
                .exec_without_returning(txn)
                .await?;
            }
        }
        Ok(key)
    }

    /// A connection's secret (or its webhook secret), opened under its own context.
    async fn sealed(&self, id: CommunityId, name: &str, hook: bool) -> Result<Option<Secret>, StoreError> {
        let row = platform_connections::Entity::find()
            .filter(platform_connections::Column::CommunityId.eq(id.0))
            .filter(platform_connections::Column::Name.eq(name))
            .one(&self.db)
            .await?;
        let stored = row.and_then(|r| if hook { r.hook_secret_ciphertext } else { r.secret_ciphertext });
        let Some(stored) = stored else {
            return Ok(None);
        };
        let key = self.secret_key()?.ok_or(StoreError::SecretKeyMissing)?;
        let context = if hook { hook_secret_context(id, name) } else { secret_context(id, name) };
        let plain = key.open(&stored, &context).ok_or(StoreError::SecretKeyWrong)?;
        Ok(Some(Secret::new(plain)))
    }

    /// Checks at start that the secret key can read the stored secrets: fine when there are
    /// none; otherwise the key must be set and be the one they were written with.
    ///
    /// # Errors
    /// [`StoreError::SecretKeyMissing`], [`StoreError::SecretKeyWrong`] or
    /// [`StoreError::SecretKeyInvalid`].
    pub async fn check_secret_key(&self) -> Result<(), StoreError> {
        self.secret_key()?;
        let check = settings::Entity::find_by_id(SECRET_CHECK_KEY).one(&self.db).await?;
        let a_secret = platform_connections::Entity::find()
            .filter(platform_connections::Column::SecretCiphertext.is_not_null())
            .one(&self.db)
            .await?;
        if check.is_none() && a_secret.is_none() {
            return Ok(());
        }
        let key = self.secret_key()?.ok_or(StoreError::SecretKeyMissing)?;
        let opens = match (&check, &a_secret) {
            (Some(row), _) => key.open(&row.value, SECRET_CHECK_CONTEXT).as_deref() == Some(SECRET_CHECK_TEXT),
            (None, Some(c)) => c
                .secret_ciphertext
                .as_deref()
                .and_then(|s| key.open(s, &secret_context(CommunityId(c.community_id), &c.name)))
                .is_some(),
            (None, None) => true,
        };
        if opens { Ok(()) } else { Err(StoreError::SecretKeyWrong) }
    }
}

/// Whether the inbox holds an input: one row's id looked up by the unique key.
async fn seen_on<C: sea_orm::ConnectionTrait>(db: &C, source: &str, dedup_key: &str) -> Result<bool, StoreError> {
    let found: Option<i64> = inbox::Entity::find()
        .select_only()
        .column(inbox::Column::Id)
        .filter(inbox::Column::Source.eq(source))
        .filter(inbox::Column::DedupKey.eq(dedup_key))
        .into_tuple()
        .one(db)
        .await?;
    Ok(found.is_some())
}

/// The vote messages of a proposal as stored, in the order platforms reported them.
pub(crate) async fn vote_messages_of<C: sea_orm::ConnectionTrait>(
    db: &C,
    cid: i64,
    p: ProposalId,
) -> Result<Vec<MessageRef>, StoreError> {
    let rows = vote_messages::Entity::find()
        .filter(vote_messages::Column::CommunityId.eq(cid))
        .filter(vote_messages::Column::ProposalId.eq(p.0))
        .order_by_asc(vote_messages::Column::Id)
        .all(db)
        .await?;
    Ok(rows.iter().map(codec::message_ref).collect())
}

/// The proposal an effect is about, read from its JSON (`proposal` field), so new effect
/// kinds need no change here.
fn outbox_row(r: outbox::Model) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: r.id,
        community: CommunityId(r.community_id),
        proposal: r.proposal_id.map(ProposalId),
        effect: from_json(&r.effect, &format!("outbox row {} effect", r.id))?,
        attempts: r.attempts,
    })
}

fn effect_proposal(effect_json: &serde_json::Value) -> Option<ProposalId> {
    effect_json.get("proposal").and_then(serde_json::Value::as_i64).map(ProposalId)
}

/// A change of an outbox row's status, with what goes with it.
pub(crate) struct EffectUpdate<'a> {
    pub to: &'a str,
    pub error: Option<&'a str>,
    pub result: Option<String>,
    pub next: Option<DateTime<Utc>>,
}

/// Sets an outbox row's status, on the pool or inside a transaction.
pub(crate) async fn set_effect<C: sea_orm::ConnectionTrait>(
    db: &C,
    id: i64,
    u: EffectUpdate<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut update = outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(u.to))
        .col_expr(outbox::Column::UpdatedAt, Expr::value(ts(now)));
    if let Some(e) = u.error {
        update = update.col_expr(outbox::Column::LastError, Expr::value(e));
    }
    if let Some(r) = u.result {
        update = update.col_expr(outbox::Column::Result, Expr::value(r));
    }
    if let Some(at) = u.next {
        update = update.col_expr(outbox::Column::NextAttemptAt, Expr::value(ts(at)));
    }
    let res = update.filter(outbox::Column::Id.eq(id)).exec(db).await?;
    if res.rows_affected == 0 {
        return Err(StoreError::UnknownEffect(id));
    }
    Ok(())
}
